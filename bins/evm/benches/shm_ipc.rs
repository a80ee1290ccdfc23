//! Mapped regions and IPC (issue 5), each against its baseline in the same run:
//!
//! - `shared_rw`: transactions doing 8 × SHARED_READ or SHARED_WRITE of 32 B or
//!   1 MiB, over a pooled (heap) region and over a mapped one (a file in
//!   /dev/shm; each transaction also takes and releases the cross-process lock
//!   and commits). `map_only` is the same transaction without the 8 accesses.
//! - `handoff_4k`: one process writes a 4 KiB message, another observes it and
//!   answers with 4 KiB (a round trip). Baselines: a pair of Unix pipes and a
//!   Unix socket pair. Mapped: two regions, each message either a transaction
//!   (header lock word, undo record, commit; the reader waits on the commit
//!   generation: a hundred spins, then the futex the commit wakes) or a
//!   message-mode `publish` (no undo record), read by a reader that spins
//!   up to 50 µs before it sleeps, or (`message-sleeping`) sleeps at once.
//!   `*_publish_only` is the writer's side alone.
//! - `snapshot`: encode/decode of a region holding contract bytecode (every
//!   `*.hex` under /work/shared/bench-data, or `SHM_BENCH_DATA`), none / LZ4 / Zstd.
//!
//! The handoff's second process is this bench binary run again with
//! `SHM_IPC_CHILD` set.

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use shm_evm::{execute_shared, RunConfig, DEFAULT_RECEIVER};
use shm_manager::{RegionRequest, SharedMemoryConfig, SharedMemoryManager};
use shm_mapped::{MappedRegion, Namespace, RegionHeader, Snapshot, SnapshotRegion};
use shm_opcodes::GasSchedule;
use shm_primitives::{Address, Compression, RegionHandle, RegionOptions};

const MESSAGE: usize = 4096;
const ACCESSES: usize = 8;

fn persistent() -> RegionOptions {
    RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    }
}

/// A transaction: MAP the region named by the calldata, then `ACCESSES` × `op` of `size` bytes.
fn program(op: Option<&str>, size: usize) -> Bytes {
    let mut source = String::from("PUSH 0 PUSH 0 CALLDATALOAD SHARED_MAP POP\n");
    if let Some(op) = op {
        for _ in 0..ACCESSES {
            source.push_str(&format!(
                "PUSH 0 PUSH {size} PUSH 0 PUSH 0 CALLDATALOAD {op} POP\n"
            ));
        }
    }
    source.push_str("STOP\n");
    shm_evm::asm::assemble(&source).expect("the bench programs assemble")
}

fn shared_rw(c: &mut Criterion) {
    let root = tempfile::tempdir_in(shm_mapped::default_root()).unwrap();
    let pooled = SharedMemoryConfig::production();
    let mapped = SharedMemoryConfig {
        namespace_root: Some(root.path().to_path_buf()),
        ..SharedMemoryConfig::production().with_namespace("bench")
    };
    let mut group = c.benchmark_group("shared_rw");
    for (backing, config) in [("pooled", pooled), ("mapped", mapped)] {
        let manager = SharedMemoryManager::new(config.clone()).unwrap();
        let handle = manager
            .create_region(
                RegionRequest::new(1 << 20)
                    .owner(DEFAULT_RECEIVER)
                    .options(persistent()),
            )
            .unwrap();
        let mut cases = vec![("map_only".to_string(), program(None, 0))];
        for (op, name) in [("SHARED_READ", "read"), ("SHARED_WRITE", "write")] {
            for (size, label) in [(32, "32B"), (1 << 20, "1MiB")] {
                cases.push((format!("{name}/{label}"), program(Some(op), size)));
            }
        }
        for (case, code) in cases {
            let mut run = RunConfig::new(code);
            run.input = Bytes::from(handle.to_u256().to_be_bytes::<32>().to_vec());
            run.shared_memory = Some(config.clone());
            let out = execute_shared(&run, &manager, GasSchedule::default(), None).unwrap();
            assert!(
                out.result.is_success(),
                "{backing} {case}: {:?}",
                out.result
            );
            group.bench_function(BenchmarkId::new(backing, &case), |b| {
                b.iter(|| execute_shared(&run, &manager, GasSchedule::default(), None).unwrap())
            });
        }
    }
    group.finish();
}

// ----- cross-process handoff -----

/// How long a message-mode reader spins before it sleeps on the futex.
const MESSAGE_SPIN: Duration = Duration::from_micros(50);
const WAIT: Duration = Duration::from_secs(10);

/// How the echo process answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Echo {
    /// Reads 4 KiB from stdin and writes them back (a pipe or a Unix socket).
    Stream,
    /// Transactions: lock, journalled write, commit; waits on the commit
    /// generation (a hundred spins, then the futex).
    Transaction,
    /// Message mode: `publish` (no undo log); waits spinning, then the futex.
    Message,
    /// Message mode, waiting on the futex alone (no spin).
    MessageSleeping,
}

impl Echo {
    fn name(self) -> &'static str {
        match self {
            Echo::Stream => "stream",
            Echo::Transaction => "transaction",
            Echo::Message => "message",
            Echo::MessageSleeping => "message-sleeping",
        }
    }

    fn from_name(name: &str) -> Self {
        [
            Echo::Stream,
            Echo::Transaction,
            Echo::Message,
            Echo::MessageSleeping,
        ]
        .into_iter()
        .find(|e| e.name() == name)
        .expect("a known echo mode")
    }

    fn spin(self) -> Duration {
        match self {
            Echo::Message => MESSAGE_SPIN,
            _ => Duration::ZERO,
        }
    }
}

/// The other process of the handoff: echoes every 4 KiB message back.
fn child(dir: &Path, echo: Echo) {
    if echo == Echo::Stream {
        let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
        let mut buf = [0u8; MESSAGE];
        while input.read_exact(&mut buf).is_ok() {
            if output
                .write_all(&buf)
                .and_then(|()| output.flush())
                .is_err()
            {
                return;
            }
        }
        return;
    }
    let ping = MappedRegion::open(&dir.join(shm_mapped::region_file_name(1))).unwrap();
    let pong = MappedRegion::open(&dir.join(shm_mapped::region_file_name(2))).unwrap();
    let mut answer = pong.clone().block();
    // The regions start at generation 0: a message committed before this
    // process started is still new to it.
    let mut seen = 0;
    let mut buf = [0u8; MESSAGE];
    loop {
        seen = ping.wait_for_commit_spinning(seen, echo.spin(), WAIT);
        ping.read_at(0, &mut buf, WAIT).unwrap();
        if buf[0] == 0xff {
            return;
        }
        if echo == Echo::Transaction {
            pong.lock(WAIT).unwrap();
            answer.write_at(0, &buf).unwrap();
            pong.unlock(Some(MESSAGE as u64)).unwrap();
        } else {
            pong.publish(0, &buf, WAIT).unwrap();
        }
    }
}

fn spawn_child(dir: &Path, echo: Echo, stdio: Option<(Stdio, Stdio)>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("SHM_IPC_CHILD", dir)
        .env("SHM_IPC_ECHO", echo.name());
    let (input, output) = stdio.unwrap_or_else(|| (Stdio::null(), Stdio::null()));
    cmd.stdin(input)
        .stdout(output)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn handoff(c: &mut Criterion) {
    let root = tempfile::tempdir_in(shm_mapped::default_root()).unwrap();
    let mut message = [0x5au8; MESSAGE];
    let mut echoed = [0u8; MESSAGE];
    let mut group = c.benchmark_group("handoff_4k");
    group.throughput(Throughput::Bytes(MESSAGE as u64));

    // Baselines in the same run: a pair of pipes, and a Unix socket pair.
    {
        let mut pipe_child = spawn_child(
            root.path(),
            Echo::Stream,
            Some((Stdio::piped(), Stdio::piped())),
        );
        let mut to_child = pipe_child.stdin.take().unwrap();
        let mut from_child = pipe_child.stdout.take().unwrap();
        group.bench_function("pipe_round_trip", |b| {
            b.iter(|| {
                message[1] = message[1].wrapping_add(1);
                to_child.write_all(&message).unwrap();
                from_child.read_exact(&mut echoed).unwrap();
                assert_eq!(echoed[1], message[1]);
            })
        });
        drop(to_child);
        pipe_child.wait().unwrap();
    }
    {
        let (mut here, there) = UnixStream::pair().unwrap();
        let input = Stdio::from(OwnedFd::from(there.try_clone().unwrap()));
        let output = Stdio::from(OwnedFd::from(there));
        let mut socket_child = spawn_child(root.path(), Echo::Stream, Some((input, output)));
        group.bench_function("unix_socket_round_trip", |b| {
            b.iter(|| {
                message[1] = message[1].wrapping_add(1);
                here.write_all(&message).unwrap();
                here.read_exact(&mut echoed).unwrap();
                assert_eq!(echoed[1], message[1]);
            })
        });
        here.shutdown(std::net::Shutdown::Both).unwrap();
        socket_child.wait().unwrap();
    }

    // Mapped regions: one namespace directory per mode (fresh regions, generation 0).
    for echo in [Echo::Transaction, Echo::Message, Echo::MessageSleeping] {
        let ns = Namespace::open(root.path(), echo.name()).unwrap();
        let make = |index| {
            let header = RegionHeader::new(
                RegionHandle::new(index, 1).unwrap(),
                MESSAGE as u64,
                Address::ZERO,
            );
            MappedRegion::create(ns.dir(), &header, MESSAGE as u64).unwrap()
        };
        let (ping, pong): (Arc<MappedRegion>, Arc<MappedRegion>) = (make(1), make(2));
        if echo != Echo::MessageSleeping {
            // The writer's side alone.
            let publish = make(3);
            let mut block = publish.clone().block();
            group.bench_function(format!("{}_publish_only", echo.name()), |b| {
                b.iter(|| {
                    if echo == Echo::Transaction {
                        publish.lock(WAIT).unwrap();
                        block.write_at(0, &message).unwrap();
                        publish.unlock(Some(MESSAGE as u64)).unwrap();
                    } else {
                        publish.publish(0, &message, WAIT).unwrap();
                    }
                })
            });
        }
        let mut child = spawn_child(ns.dir(), echo, None);
        let mut block = ping.clone().block();
        let mut seen = pong.commit_generation();
        let mut send = |message: &[u8; MESSAGE]| {
            if echo == Echo::Transaction {
                ping.lock(WAIT).unwrap();
                block.write_at(0, message).unwrap();
                ping.unlock(Some(MESSAGE as u64)).unwrap();
            } else {
                ping.publish(0, message, WAIT).unwrap();
            }
        };
        group.bench_function(format!("{}_round_trip", echo.name()), |b| {
            b.iter(|| {
                message[1] = message[1].wrapping_add(1);
                send(&message);
                seen = pong.wait_for_commit_spinning(seen, echo.spin(), WAIT);
                pong.read_at(0, &mut echoed, WAIT).unwrap();
                assert_eq!(echoed[1], message[1]);
            })
        });
        let mut stop = message;
        stop[0] = 0xff;
        send(&stop);
        child.wait().unwrap();
    }
    group.finish();
}

// ----- snapshots -----

fn hex_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            hex_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "hex") {
            out.push(path);
        }
    }
}

/// Contract bytecode: every `*.hex` of the bench data, decoded and concatenated.
fn contract_data() -> Vec<u8> {
    let dir = std::env::var_os("SHM_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/bench-data"));
    let mut files = Vec::new();
    hex_files(&dir, &mut files);
    let mut data = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let hex: String = text
            .trim()
            .trim_start_matches("0x")
            .split_whitespace()
            .collect();
        if let Ok(bytes) = decode_hex(&hex) {
            data.extend_from_slice(&bytes);
        }
    }
    assert!(
        !data.is_empty(),
        "no *.hex bench data under {}",
        dir.display()
    );
    data
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, ()> {
    if !hex.len().is_multiple_of(2) {
        return Err(());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| ()))
        .collect()
}

fn snapshot(c: &mut Criterion) {
    let data = contract_data();
    let header = RegionHeader::new(
        RegionHandle::new(1, 1).unwrap(),
        data.len() as u64,
        Address::ZERO,
    );
    let snapshot = Snapshot {
        regions: vec![SnapshotRegion {
            header,
            commit_generation: 1,
            data: data.clone(),
        }],
    };
    let mut group = c.benchmark_group("snapshot");
    group.throughput(Throughput::Bytes(data.len() as u64));
    for (name, how) in [
        ("none", Compression::None),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let encoded = snapshot.encode(Some(how)).unwrap();
        let stored = encoded.len() - 4096 - 16 - 12 - 32;
        eprintln!(
            "snapshot {name}: {} bytes of bytecode -> {stored} stored (ratio {:.2})",
            data.len(),
            data.len() as f64 / stored as f64
        );
        group.bench_function(BenchmarkId::new("dump", name), |b| {
            b.iter(|| black_box(snapshot.encode(Some(how)).unwrap()))
        });
        group.bench_function(BenchmarkId::new("load", name), |b| {
            b.iter(|| black_box(Snapshot::decode(&encoded, "bench".as_ref()).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, shared_rw, handoff, snapshot);

fn main() {
    if let Some(dir) = std::env::var_os("SHM_IPC_CHILD") {
        let echo = std::env::var("SHM_IPC_ECHO").unwrap_or_default();
        child(Path::new(&dir), Echo::from_name(&echo));
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
