//! Mapped regions and IPC (issue 5), each against its baseline in the same run:
//!
//! - `shared_rw`: transactions doing 8 × SHARED_READ or SHARED_WRITE of 32 B or
//!   1 MiB, over a pooled (heap) region and over a mapped one (a file in
//!   /dev/shm; each transaction also takes and releases the cross-process lock
//!   and commits). `map_only` is the same transaction without the 8 accesses.
//! - `handoff_4k`: one process writes a 4 KiB message, another observes it and
//!   answers with 4 KiB (a round trip): through two mapped regions (the reader
//!   waits on the commit generation: a short spin, then a futex the commit
//!   wakes) versus a pair of Unix pipes.
//! - `snapshot`: encode/decode of a region holding contract bytecode (every
//!   `*.hex` under /work/shared/bench-data, or `SHM_BENCH_DATA`), none / LZ4 / Zstd.
//!
//! The handoff's second process is this bench binary run again with
//! `SHM_IPC_CHILD` set.

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::io::{Read, Write};
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

/// The other process of the handoff: echoes every 4 KiB message back.
fn child(dir: &Path) {
    if std::env::var_os("SHM_IPC_PIPE").is_some() {
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
        let now = wait_past(&ping, seen);
        seen = now;
        ping.read_at(0, &mut buf, Duration::from_secs(5)).unwrap();
        if buf[0] == 0xff {
            return;
        }
        pong.lock(Duration::from_secs(5)).unwrap();
        answer.write_at(0, &buf).unwrap();
        pong.unlock(Some(MESSAGE as u64)).unwrap();
    }
}

/// Waits until `region`'s commit generation passes `seen`; returns it.
fn wait_past(region: &MappedRegion, seen: u64) -> u64 {
    region.wait_for_commit(seen, Duration::from_secs(10))
}

fn spawn_child(dir: &Path, pipe: bool) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("SHM_IPC_CHILD", dir);
    if pipe {
        cmd.env("SHM_IPC_PIPE", "1");
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn handoff(c: &mut Criterion) {
    let root = tempfile::tempdir_in(shm_mapped::default_root()).unwrap();
    let ns = Namespace::open(root.path(), "handoff").unwrap();
    let make = |index| {
        let header = RegionHeader::new(
            RegionHandle::new(index, 1).unwrap(),
            MESSAGE as u64,
            Address::ZERO,
        );
        MappedRegion::create(ns.dir(), &header, MESSAGE as u64).unwrap()
    };
    let (ping, pong): (Arc<MappedRegion>, Arc<MappedRegion>) = (make(1), make(2));
    let mut message = [0x5au8; MESSAGE];
    let mut group = c.benchmark_group("handoff_4k");
    group.throughput(Throughput::Bytes(MESSAGE as u64));

    // The writer's side alone: lock, write 4 KiB (undo record first), commit, unlock.
    {
        let publish = make(3);
        let mut block = publish.clone().block();
        group.bench_function("mapped_publish_only", |b| {
            b.iter(|| {
                publish.lock(Duration::from_secs(5)).unwrap();
                block.write_at(0, &message).unwrap();
                publish.unlock(Some(MESSAGE as u64)).unwrap();
            })
        });
    }
    let mut shm_child = spawn_child(ns.dir(), false);
    let mut block = ping.clone().block();
    let mut seen = pong.commit_generation();
    group.bench_function("mapped_round_trip", |b| {
        b.iter(|| {
            message[1] = message[1].wrapping_add(1);
            ping.lock(Duration::from_secs(5)).unwrap();
            block.write_at(0, &message).unwrap();
            ping.unlock(Some(MESSAGE as u64)).unwrap();
            seen = wait_past(&pong, seen);
            let mut echo = [0u8; 2];
            pong.read_at(0, &mut echo, Duration::from_secs(5)).unwrap();
            assert_eq!(echo[1], message[1]);
        })
    });
    message[0] = 0xff;
    ping.lock(Duration::from_secs(5)).unwrap();
    block.write_at(0, &message).unwrap();
    ping.unlock(Some(MESSAGE as u64)).unwrap();
    shm_child.wait().unwrap();

    let mut pipe_child = spawn_child(ns.dir(), true);
    let mut to_child = pipe_child.stdin.take().unwrap();
    let mut from_child = pipe_child.stdout.take().unwrap();
    let mut answer = [0u8; MESSAGE];
    group.bench_function("pipe_round_trip", |b| {
        b.iter(|| {
            message[1] = message[1].wrapping_add(1);
            to_child.write_all(&message).unwrap();
            from_child.read_exact(&mut answer).unwrap();
            assert_eq!(answer[1], message[1]);
        })
    });
    drop(to_child);
    pipe_child.wait().unwrap();
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
        child(Path::new(&dir));
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
