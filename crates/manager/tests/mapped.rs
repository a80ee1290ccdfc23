//! Regions in a mapped namespace: persistence, transaction-scoped files,
//! cross-manager locking and visibility, refusals. Two managers in one test
//! process open the files separately, so their file locks conflict exactly as
//! two processes' do (the `evm` binary's tests use real processes).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use shm_manager::{
    Intent, RegionSpec, SharedMemoryConfig, SharedMemoryManager, ShmError, HOST_CONTEXT,
};
use shm_primitives::{Address, Permissions, RegionOptions, SecurityLevel, WritePlan};

fn config(root: &tempfile::TempDir) -> SharedMemoryConfig {
    SharedMemoryConfig {
        namespace_root: Some(root.path().to_path_buf()),
        lock_wait: Duration::from_millis(100),
        ..SharedMemoryConfig::testing().with_namespace("ns")
    }
}

fn persistent() -> RegionOptions {
    RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    }
}

fn manager(config: &SharedMemoryConfig) -> Arc<SharedMemoryManager> {
    SharedMemoryManager::new(config.clone()).unwrap()
}

#[test]
fn persistent_regions_survive_and_transaction_regions_do_not() {
    let root = tempfile::tempdir().unwrap();
    let config = config(&root);
    let first = manager(&config);
    let dir = first.namespace_dir().unwrap().to_path_buf();
    let kept = first
        .create_shared_region("kept", 5000, Permissions::read_write(), persistent())
        .unwrap();
    first.write_region(kept, 4000, b"page two").unwrap();
    let mut tx = first.begin_transaction();
    let temp = tx
        .create(RegionSpec::new(64, Address::repeat_byte(1)))
        .unwrap();
    assert_ne!(temp.index(), kept.index());
    assert_eq!(
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "shm"))
            .count(),
        2
    );
    tx.free_scoped(&[(temp, 64)]);
    tx.release();
    let files = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".shm"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(files(&dir), vec![format!("r{:08}.shm", kept.index())]);
    drop(first);
    assert_eq!(
        files(&dir).len(),
        1,
        "the persistent file outlives its manager"
    );

    let second = manager(&config);
    assert_eq!(second.find_region("kept").unwrap(), kept);
    let mut buf = [0u8; 8];
    assert_eq!(second.read_region(kept, 4000, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"page two");
    let info = second.region_info(kept).unwrap();
    assert_eq!(info.meta.size(), 5000);
    assert!(info.meta.options().persistent);
    // A new region never reuses the freed transaction region's generation.
    let next = second
        .create_shared_region(
            "next",
            64,
            Permissions::read_write(),
            RegionOptions::default(),
        )
        .unwrap();
    assert!(next.index() != kept.index());
    assert!(next.index() != temp.index() || next.generation() > temp.generation());
    second.free_region(kept).unwrap();
    drop(second);
    assert!(
        files(&dir).is_empty(),
        "freed and non-persistent files are gone"
    );
}

#[test]
fn a_writer_holds_other_managers_off_until_its_transaction_ends() {
    let root = tempfile::tempdir().unwrap();
    let config = config(&root);
    let a = manager(&config);
    let h = a
        .create_shared_region("shared", 64, Permissions::read_write(), persistent())
        .unwrap();
    let b = manager(&config);
    assert_eq!(b.find_region("shared").unwrap(), h);

    let mut tx = a.begin_transaction();
    let region = tx
        .resolve(
            h,
            HOST_CONTEXT,
            Intent::Write,
            None,
            Duration::from_millis(100),
        )
        .unwrap();
    tx.write(
        &region,
        WritePlan::new(region.size, region.max_size, false, 0, 6),
        b"from a",
        &mut |_, _| {},
    )
    .unwrap();
    // B sees the bytes through the shared mapping, but cannot lock the region.
    let generation = b.mapped_region(h).unwrap().commit_generation();
    assert!(matches!(
        b.write_region(h, 0, b"from b"),
        Err(ShmError::RegionBusy { .. })
    ));
    tx.release();
    assert_eq!(
        b.mapped_region(h).unwrap().commit_generation(),
        generation + 1
    );
    b.write_region(h, 6, b"+b").unwrap();
    let mut buf = [0u8; 8];
    a.read_region(h, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"from a+b");
}

#[test]
fn handles_agree_across_managers() {
    let root = tempfile::tempdir().unwrap();
    let config = config(&root);
    let a = manager(&config);
    let b = manager(&config);
    let from_a = a
        .create_shared_region("a", 64, Permissions::read_write(), persistent())
        .unwrap();
    // B attached before A made it: B learns it by handle, at its first use.
    assert_eq!(b.read_region(from_a, 0, &mut [0; 1]), Ok(1));
    a.write_region(from_a, 0, b"x").unwrap();
    let mut byte = [0u8; 1];
    b.read_region(from_a, 0, &mut byte).unwrap();
    assert_eq!(&byte, b"x");
    // B's own region takes another index, and a name taken in A is taken in B.
    let from_b = b
        .create_shared_region("b", 64, Permissions::read_write(), persistent())
        .unwrap();
    assert_ne!(from_b.index(), from_a.index());
    assert!(matches!(
        b.create_shared_region("a", 64, Permissions::read_write(), persistent()),
        Err(ShmError::NameTaken(_))
    ));
}

#[test]
fn a_namespace_without_ipc_belongs_to_one_manager() {
    let root = tempfile::tempdir().unwrap();
    let config = SharedMemoryConfig {
        enable_ipc: false,
        ..config(&root)
    };
    let first = manager(&config);
    let err = SharedMemoryManager::new(config.clone()).unwrap_err();
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(first);
    manager(&config);
}

#[test]
fn corrupt_files_and_bad_checksums_refuse_the_attach() {
    let root = tempfile::tempdir().unwrap();
    let paranoid = SharedMemoryConfig {
        security_level: SecurityLevel::Paranoid,
        ..config(&root)
    };
    let first = manager(&paranoid);
    let h = first
        .create_shared_region("r", 64, Permissions::read_write(), persistent())
        .unwrap();
    first.write_region(h, 0, b"checked").unwrap();
    let path = first.mapped_region(h).unwrap().path().to_path_buf();
    drop(first);
    manager(&paranoid);

    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"X", 4096 + 2).unwrap();
    let err = SharedMemoryManager::new(paranoid.clone()).unwrap_err();
    assert!(matches!(err, ShmError::Mapped(_)), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");

    file.write_all_at(&7u32.to_le_bytes(), 8).unwrap();
    let err = SharedMemoryManager::new(paranoid).unwrap_err();
    assert!(err.to_string().contains("format version 7"), "{err}");
}

#[test]
fn an_unwritable_namespace_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let file_root = root.path().join("file");
    std::fs::write(&file_root, b"").unwrap();
    let err = SharedMemoryManager::new(SharedMemoryConfig {
        namespace_root: Some(file_root),
        ..SharedMemoryConfig::testing().with_namespace("ns")
    })
    .unwrap_err();
    assert!(err.to_string().contains("not writable"), "{err}");
    let err = SharedMemoryManager::new(SharedMemoryConfig {
        namespace: Some("ns".into()),
        ..SharedMemoryConfig::testing()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ShmError::InvalidConfig("a namespace needs enable_memory_mapping")
    );
}

// ----- other processes -----
//
// The tests below run a second process: this test binary again, in the
// helper mode of `helper_process_entry_point`, attached to the same namespace
// and driven line by line over its standard input. Its answers follow the
// marker `HELPER> ` (the test harness prints other text, on the same lines too).

const HELPER_ROOT: &str = "SHM_MANAGER_HELPER_ROOT";
const ANSWER: &str = "HELPER> ";

/// A second process attached to the namespace `ns` under a root.
struct Helper {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl Helper {
    fn spawn(root: &std::path::Path) -> Self {
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helper_process_entry_point",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ROOT, root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut helper = Self {
            child,
            input,
            output,
        };
        assert_eq!(helper.ask("ping"), "pong");
        helper
    }

    /// Sends one command and returns its answer.
    fn ask(&mut self, command: &str) -> String {
        use std::io::{BufRead, Write};
        writeln!(self.input, "{command}").unwrap();
        self.input.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(
                self.output.read_line(&mut line).unwrap() > 0,
                "the helper exited during {command:?}"
            );
            if let Some((_, answer)) = line.split_once(ANSWER) {
                return answer.trim_end().to_string();
            }
        }
    }

    fn handle(&mut self, command: &str) -> shm_primitives::RegionHandle {
        let answer = self.ask(command);
        let raw: u64 = answer
            .parse()
            .unwrap_or_else(|_| panic!("{command}: {answer}"));
        shm_primitives::RegionHandle::new(raw as u32, (raw >> 32) as u32).unwrap()
    }

    /// `kill -9`.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn helper_config(root: &std::path::Path) -> SharedMemoryConfig {
    SharedMemoryConfig {
        namespace_root: Some(root.to_path_buf()),
        lock_wait: Duration::from_secs(2),
        max_region_size: 1 << 20,
        ..SharedMemoryConfig::testing().with_namespace("ns")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The helper process: attaches a manager to the namespace named by the
/// environment and runs the commands it reads (nothing without that variable).
#[test]
fn helper_process_entry_point() {
    use std::io::BufRead;
    let Some(root) = std::env::var_os(HELPER_ROOT) else {
        return;
    };
    let manager = manager(&helper_config(std::path::Path::new(&root)));
    let parse = |word: &str| -> shm_primitives::RegionHandle {
        let raw: u64 = word.parse().unwrap();
        shm_primitives::RegionHandle::new(raw as u32, (raw >> 32) as u32).unwrap()
    };
    let mut held = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["ping"] => "pong".to_string(),
            // create NAME SIZE GROW: a persistent region (auto-growing if GROW is 1).
            ["create", name, size, grow] => {
                let options = RegionOptions {
                    persistent: true,
                    auto_grow: *grow == "1",
                    ..RegionOptions::default()
                };
                match manager.create_region(
                    shm_manager::RegionRequest::new(size.parse().unwrap())
                        .named(*name)
                        .options(options),
                ) {
                    Ok(h) => h.to_u64().to_string(),
                    Err(e) => format!("err {e}"),
                }
            }
            ["write", h, offset, data] => {
                match manager.write_region(parse(h), offset.parse().unwrap(), &unhex(data)) {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("err {e}"),
                }
            }
            ["free", h] => match manager.free_region(parse(h)) {
                Ok(()) => "ok".into(),
                Err(e) => format!("err {e}"),
            },
            // hold H OFFSET DATA: a transaction locks H, writes, and never ends.
            ["hold", h, offset, data] => {
                let mut tx = manager.begin_transaction();
                let region = tx
                    .resolve(
                        parse(h),
                        HOST_CONTEXT,
                        Intent::Write,
                        None,
                        Duration::from_secs(2),
                    )
                    .unwrap();
                let data = unhex(data);
                let plan = WritePlan::new(
                    region.size,
                    region.max_size,
                    false,
                    offset.parse().unwrap(),
                    data.len() as u64,
                );
                tx.write(&region, plan, &data, &mut |_, _| {}).unwrap();
                held.push(tx);
                "held".into()
            }
            _ => format!("err unknown command {line:?}"),
        };
        println!("{ANSWER}{answer}");
    }
}

#[test]
fn frees_reallocations_and_growth_in_another_process_are_seen_at_the_next_access() {
    let root = tempfile::tempdir().unwrap();
    let config = helper_config(root.path());
    let here = manager(&config);
    let mut other = Helper::spawn(root.path());

    // The other process makes a region; this one learns it by handle.
    let h = other.handle("create r 64 1");
    assert_eq!(
        other.ask(&format!("write {} 0 {}", h.to_u64(), hex(b"hello"))),
        "5"
    );
    let mut buf = [0u8; 5];
    here.read_region(h, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");

    // Growth there: the next access here sees the new size.
    assert_eq!(
        other.ask(&format!("write {} 4000 {}", h.to_u64(), hex(&[7; 100]))),
        "100"
    );
    let mut grown = [0u8; 100];
    assert_eq!(here.read_region(h, 4000, &mut grown).unwrap(), 100);
    assert_eq!(grown, [7; 100]);
    assert_eq!(here.region_info(h).unwrap().meta.size(), 4100);

    // A free there: the next access here finds the handle freed, as it would
    // after a free in this process, and the region leaves the registry.
    assert_eq!(other.ask(&format!("free {}", h.to_u64())), "ok");
    assert_eq!(
        here.read_region(h, 0, &mut buf),
        Err(ShmError::RegionFreed(h))
    );
    assert!(here.list_regions().unwrap().is_empty());

    // Re-made at the same index: the new handle is attached, the old stays freed.
    let h2 = other.handle("create r2 64 0");
    assert_eq!(
        (h2.index(), h2.generation()),
        (h.index(), h.generation() + 1)
    );
    here.read_region(h2, 0, &mut buf).unwrap();

    // Freed and re-made while this process still maps the old one: meeting
    // the new handle drops the stale region and attaches the new one.
    assert_eq!(other.ask(&format!("free {}", h2.to_u64())), "ok");
    let h3 = other.handle("create r3 64 0");
    assert_eq!(h3.index(), h.index());
    here.read_region(h3, 0, &mut buf).unwrap();
    assert_eq!(
        here.read_region(h2, 0, &mut buf),
        Err(ShmError::RegionFreed(h2))
    );
    assert_eq!(here.find_region("r3").unwrap(), h3);

    // A process that attached after the frees: a handle the namespace issued
    // reads as freed there too (its table remembers it), not as unknown.
    assert_eq!(other.ask(&format!("free {}", h3.to_u64())), "ok");
    let late = manager(&config);
    for stale in [h, h3] {
        assert_eq!(
            late.read_region(stale, 0, &mut buf),
            Err(ShmError::RegionFreed(stale))
        );
    }
    // A handle never issued stays invalid.
    let never = shm_primitives::RegionHandle::new(h.index(), h3.generation() + 5).unwrap();
    assert!(matches!(
        late.read_region(never, 0, &mut buf),
        Err(ShmError::InvalidRegionHandle(_))
    ));
}

#[test]
fn a_process_killed_holding_a_lock_is_taken_over_at_once_and_rolled_back() {
    let root = tempfile::tempdir().unwrap();
    let mut config = helper_config(root.path());
    let here = manager(&config);
    let h = here
        .create_shared_region("r", 64, Permissions::read_write(), persistent())
        .unwrap();
    here.write_region(h, 0, b"committed").unwrap();

    let mut other = Helper::spawn(root.path());
    assert_eq!(
        other.ask(&format!("hold {} 0 {}", h.to_u64(), hex(b"DIRTY"))),
        "held"
    );
    config.lock_wait = Duration::from_millis(50);
    let impatient = manager(&config);
    assert!(matches!(
        impatient.read_region(h, 0, &mut [0; 9]),
        Err(ShmError::RegionBusy { .. })
    ));
    let path = here.mapped_region(h).unwrap().path().to_path_buf();
    let holder = |path: &std::path::Path| {
        shm_mapped::MappedRegion::open(path)
            .unwrap()
            .status()
            .holder
            .unwrap()
    };
    assert!(holder(&path).alive);

    other.kill();
    // The lock word still names the dead process; its lease says it is dead.
    assert!(!holder(&path).alive);
    let start = std::time::Instant::now();
    let mut buf = [0u8; 9];
    impatient.read_region(h, 0, &mut buf).unwrap();
    assert_eq!(
        &buf, b"committed",
        "the dead transaction's write is rolled back"
    );
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "taken over without waiting out the lock wait"
    );
}

#[test]
fn a_lost_or_damaged_generations_table_refuses_the_namespace() {
    let root = tempfile::tempdir().unwrap();
    let config = config(&root);
    let first = manager(&config);
    let h = first
        .create_shared_region("r", 64, Permissions::read_write(), persistent())
        .unwrap();
    first.free_region(h).unwrap();
    let dir = first.namespace_dir().unwrap().to_path_buf();
    drop(first);
    let table = dir.join("generations");
    let intact = std::fs::read(&table).unwrap();

    std::fs::remove_file(&table).unwrap();
    let err = SharedMemoryManager::new(config.clone()).unwrap_err();
    assert!(err.to_string().contains("generations"), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");

    let mut damaged = intact.clone();
    *damaged.last_mut().unwrap() ^= 1;
    std::fs::write(&table, &damaged).unwrap();
    let err = SharedMemoryManager::new(config.clone()).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");

    // The intact table: the freed handle is never issued again.
    std::fs::write(&table, &intact).unwrap();
    let again = manager(&config);
    let next = again
        .create_shared_region("s", 64, Permissions::read_write(), persistent())
        .unwrap();
    assert_eq!(
        (next.index(), next.generation()),
        (h.index(), h.generation() + 1)
    );
}

#[test]
fn a_table_behind_a_region_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let config = config(&root);
    let first = manager(&config);
    let a = first
        .create_shared_region("a", 64, Permissions::read_write(), persistent())
        .unwrap();
    first.free_region(a).unwrap();
    let b = first
        .create_shared_region("b", 64, Permissions::read_write(), persistent())
        .unwrap();
    assert_eq!(b.generation(), 2);
    let dir = first.namespace_dir().unwrap().to_path_buf();
    drop(first);
    // An old copy of the table (generation 1 for index 1) put back.
    let ns = shm_mapped::Namespace::open(root.path(), "ns").unwrap();
    ns.rebuild_generations().unwrap();
    let table = std::fs::read(dir.join("generations")).unwrap();
    let mut old = table.clone();
    old[16..20].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32(&old[..old.len() - 4]);
    let len = old.len();
    old[len - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(dir.join("generations"), &old).unwrap();
    let err = SharedMemoryManager::new(config).unwrap_err();
    assert!(err.to_string().contains("has generation 2"), "{err}");
}

/// CRC-32 (IEEE), bit by bit: small enough to write here.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
