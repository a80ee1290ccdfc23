//! Regions in a mapped namespace: persistence, transaction-scoped files,
//! cross-manager locking and visibility, refusals. Two managers in one test
//! process open the files separately, so their file locks conflict exactly as
//! two processes' do; the tests at the end also run a second process.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shm_manager::{
    Intent, RegionSpec, SharedMemoryConfig, SharedMemoryManager, ShmError, TxRegions, HOST_CONTEXT,
};
use shm_primitives::{
    Address, AllocFlags, Permissions, RegionHandle, RegionOptions, SecurityLevel, WritePlan,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The namespace `ns` under `root`.
fn config(root: &Path) -> SharedMemoryConfig {
    SharedMemoryConfig {
        namespace_root: Some(root.to_path_buf()),
        lock_wait: Duration::from_millis(100),
        ..SharedMemoryConfig::testing().with_namespace("ns")
    }
}

fn manager(config: &SharedMemoryConfig) -> Arc<SharedMemoryManager> {
    SharedMemoryManager::new(config.clone()).unwrap()
}

/// Creates a persistent read-write region.
fn create(m: &SharedMemoryManager, name: &str, size: u64) -> Result<RegionHandle, ShmError> {
    let rw = Permissions::read_write();
    m.create_shared_region(name, size, rw, AllocFlags::PERSISTENT.into())
}

/// Asserts that a manager on `config` is refused with an error that says `text`.
fn refused(config: &SharedMemoryConfig, text: &str) -> ShmError {
    let err = SharedMemoryManager::new(config.clone()).unwrap_err();
    assert!(err.to_string().contains(text), "{err}");
    err
}

/// The region files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".shm"))
        .collect();
    names.sort();
    names
}

/// Writes `data` at `at` of `h` in a new transaction, which the caller ends.
fn hold(m: &Arc<SharedMemoryManager>, h: RegionHandle, at: u64, data: &[u8]) -> TxRegions {
    let mut tx = m.begin_transaction();
    let wait = m.config().lock_wait;
    let region = tx
        .resolve(h, HOST_CONTEXT, Intent::Write, None, wait)
        .unwrap();
    let plan = WritePlan::new(region.size, region.max_size, false, at, data.len() as u64);
    tx.write(&region, plan, data, &mut |_, _| {}).unwrap();
    tx
}

#[test]
fn persistent_regions_survive_and_transaction_regions_do_not() -> TestResult {
    let root = tempfile::tempdir()?;
    let config = config(root.path());
    let first = manager(&config);
    let dir = first.namespace_dir().unwrap().to_path_buf();
    let kept = create(&first, "kept", 5000)?;
    first.write_region(kept, 4000, b"page two")?;
    let mut tx = first.begin_transaction();
    let temp = tx.create(RegionSpec::new(64, Address::repeat_byte(1)))?;
    assert_ne!(temp.index(), kept.index());
    assert_eq!(files(&dir).len(), 2);
    tx.free_scoped(&[(temp, 64)]);
    tx.release();
    assert_eq!(files(&dir), vec![format!("r{:08}.shm", kept.index())]);
    drop(first);
    // The persistent file outlives its manager.
    assert_eq!(files(&dir).len(), 1);

    let second = manager(&config);
    assert_eq!(second.find_region("kept")?, kept);
    let mut buf = [0u8; 8];
    assert_eq!(second.read_region(kept, 4000, &mut buf)?, 8);
    assert_eq!(&buf, b"page two");
    let info = second.region_info(kept)?;
    assert_eq!(info.meta.size(), 5000);
    assert!(info.meta.options().persistent);
    // A new region never reuses the freed transaction region's generation.
    let rw = Permissions::read_write();
    let next = second.create_shared_region("next", 64, rw, RegionOptions::default())?;
    assert!(next.index() != kept.index());
    assert!(next.index() != temp.index() || next.generation() > temp.generation());
    second.free_region(kept)?;
    drop(second);
    // Freed and non-persistent files are gone.
    assert!(files(&dir).is_empty());
    Ok(())
}

#[test]
fn a_writer_holds_other_managers_off_until_its_transaction_ends() -> TestResult {
    let root = tempfile::tempdir()?;
    let config = config(root.path());
    let a = manager(&config);
    let h = create(&a, "shared", 64)?;
    let b = manager(&config);
    assert_eq!(b.find_region("shared")?, h);

    let tx = hold(&a, h, 0, b"from a");
    // B sees the bytes through the shared mapping, but cannot lock the region.
    let generation = b.mapped_region(h).unwrap().commit_generation();
    let busy = b.write_region(h, 0, b"from b");
    assert!(matches!(busy, Err(ShmError::RegionBusy { .. })));
    tx.release();
    let committed = b.mapped_region(h).unwrap().commit_generation();
    assert_eq!(committed, generation + 1);
    b.write_region(h, 6, b"+b")?;
    let mut buf = [0u8; 8];
    a.read_region(h, 0, &mut buf)?;
    assert_eq!(&buf, b"from a+b");
    Ok(())
}

#[test]
fn handles_agree_across_managers() -> TestResult {
    let root = tempfile::tempdir()?;
    let config = config(root.path());
    let a = manager(&config);
    let b = manager(&config);
    let from_a = create(&a, "a", 64)?;
    // B attached before A made it: B learns it by handle, at its first use.
    assert_eq!(b.read_region(from_a, 0, &mut [0; 1]), Ok(1));
    a.write_region(from_a, 0, b"x")?;
    let mut byte = [0u8; 1];
    b.read_region(from_a, 0, &mut byte)?;
    assert_eq!(&byte, b"x");
    // B's own region takes another index, and a name taken in A is taken in B.
    let from_b = create(&b, "b", 64)?;
    assert_ne!(from_b.index(), from_a.index());
    assert!(matches!(create(&b, "a", 64), Err(ShmError::NameTaken(_))));
    Ok(())
}

#[test]
fn a_namespace_without_ipc_belongs_to_one_manager() {
    let root = tempfile::tempdir().unwrap();
    let mut config = config(root.path());
    config.enable_ipc = false;
    let first = manager(&config);
    refused(&config, "in use by another process");
    drop(first);
    manager(&config);
}

#[test]
fn corrupt_files_and_bad_checksums_refuse_the_attach() -> TestResult {
    let root = tempfile::tempdir()?;
    let mut paranoid = config(root.path());
    paranoid.security_level = SecurityLevel::Paranoid;
    let first = manager(&paranoid);
    let h = create(&first, "r", 64)?;
    first.write_region(h, 0, b"checked")?;
    let path = first.mapped_region(h).unwrap().path().to_path_buf();
    drop(first);
    manager(&paranoid);

    let file = OpenOptions::new().write(true).open(&path)?;
    file.write_all_at(b"X", 4096 + 2)?;
    let err = refused(&paranoid, "checksum");
    assert!(matches!(err, ShmError::Mapped(_)), "{err}");

    file.write_all_at(&7u32.to_le_bytes(), 8)?;
    refused(&paranoid, "format version 7");
    Ok(())
}

#[test]
fn an_unwritable_namespace_is_refused() -> TestResult {
    let root = tempfile::tempdir()?;
    let file_root = root.path().join("file");
    std::fs::write(&file_root, b"")?;
    let mut config = SharedMemoryConfig::testing().with_namespace("ns");
    config.namespace_root = Some(file_root);
    refused(&config, "not writable");
    let mut config = SharedMemoryConfig::testing();
    config.namespace = Some("ns".into());
    let err = SharedMemoryManager::new(config).unwrap_err();
    let refusal = ShmError::InvalidConfig("a namespace needs enable_memory_mapping");
    assert_eq!(err, refusal);
    Ok(())
}

// ----- other processes -----
//
// The tests below run a second process: this test binary again, in the
// helper mode of `helper_process_entry_point`, attached to the same namespace
// and driven line by line over its standard input. Its answers follow the
// marker `HELPER> ` (the test harness prints other text, on the same lines too).

const HELPER_ROOT: &str = "SHM_MANAGER_HELPER_ROOT";
const ANSWER: &str = "HELPER> ";

/// A second process attached to the namespace `ns` under a root; killed
/// (`kill -9`) when dropped.
struct Helper {
    child: std::process::Child,
    input: std::process::ChildStdin,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Helper {
    fn spawn(root: &Path) -> Self {
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_process_entry_point"])
            .args(["--nocapture", "--test-threads=1"])
            .env(HELPER_ROOT, root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut helper = Self { child, input, out };
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
            let read = self.out.read_line(&mut line).unwrap();
            assert!(read > 0, "the helper exited during {command:?}");
            if let Some((_, answer)) = line.split_once(ANSWER) {
                return answer.trim_end().to_string();
            }
        }
    }

    /// Sends a command whose answer is a handle.
    fn handle(&mut self, command: &str) -> RegionHandle {
        let answer = self.ask(command);
        shm_mapped::parse_handle(&answer).unwrap_or_else(|| panic!("{command}: {answer}"))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// As the tests with a helper process attach: a lock wait slow machines meet.
fn helper_config(root: &Path) -> SharedMemoryConfig {
    let mut config = config(root);
    config.lock_wait = Duration::from_secs(2);
    config
}

/// The helper process: attaches a manager to the namespace named by the
/// environment and runs the commands it reads (nothing without that variable).
#[test]
fn helper_process_entry_point() {
    use std::io::BufRead;
    let Some(root) = std::env::var_os(HELPER_ROOT) else {
        return;
    };
    let manager = manager(&helper_config(Path::new(&root)));
    let parse = |word: &str| shm_mapped::parse_handle(word).unwrap();
    let reply = |result: Result<String, ShmError>| result.unwrap_or_else(|e| format!("err {e}"));
    let mut held = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["ping"] => "pong".to_string(),
            ["create", name, size] => {
                let created = create(&manager, name, size.parse().unwrap());
                reply(created.map(|h| h.to_string()))
            }
            ["free", h] => reply(manager.free_region(parse(h)).map(|()| "ok".into())),
            // hold H: a transaction locks H, writes `DIRTY`, and never ends.
            ["hold", h] => {
                held.push(hold(&manager, parse(h), 0, b"DIRTY"));
                "held".into()
            }
            _ => format!("err unknown command {line:?}"),
        };
        println!("{ANSWER}{answer}");
    }
}

#[test]
fn frees_and_reallocations_in_another_process_are_seen_at_the_next_access() -> TestResult {
    let root = tempfile::tempdir()?;
    let config = helper_config(root.path());
    let here = manager(&config);
    let mut other = Helper::spawn(root.path());
    let mut buf = [0u8; 5];

    // The other process makes a region; this one learns it by handle.
    let h = other.handle("create r 64");
    here.read_region(h, 0, &mut buf)?;

    // A free there: the next access here finds the handle freed, as it would
    // after a free in this process, and the region leaves the registry.
    assert_eq!(other.ask(&format!("free {h}")), "ok");
    let freed = Err(ShmError::RegionFreed(h));
    assert_eq!(here.read_region(h, 0, &mut buf), freed);
    assert!(here.list_regions()?.is_empty());

    // Re-made at the same index: the new handle is attached, the old stays freed.
    let h2 = other.handle("create r2 64");
    let successor = RegionHandle::new(h.index(), h.generation() + 1);
    assert_eq!(Some(h2), successor);
    here.read_region(h2, 0, &mut buf)?;

    // Freed and re-made while this process still maps the old one: meeting
    // the new handle drops the stale region and attaches the new one.
    assert_eq!(other.ask(&format!("free {h2}")), "ok");
    let h3 = other.handle("create r3 64");
    assert_eq!(h3.index(), h.index());
    here.read_region(h3, 0, &mut buf)?;
    let freed = Err(ShmError::RegionFreed(h2));
    assert_eq!(here.read_region(h2, 0, &mut buf), freed);
    assert_eq!(here.find_region("r3")?, h3);

    // A process that attached after the frees: a handle the namespace issued
    // reads as freed there too (its table remembers it), not as unknown.
    assert_eq!(other.ask(&format!("free {h3}")), "ok");
    let late = manager(&config);
    for stale in [h, h3] {
        let freed = Err(ShmError::RegionFreed(stale));
        assert_eq!(late.read_region(stale, 0, &mut buf), freed);
    }
    // A handle never issued stays invalid.
    let never = RegionHandle::new(h.index(), h3.generation() + 5).unwrap();
    let invalid = late.read_region(never, 0, &mut buf);
    assert!(matches!(invalid, Err(ShmError::InvalidRegionHandle(_))));
    Ok(())
}

#[test]
fn a_process_killed_holding_a_lock_is_taken_over_at_once_and_rolled_back() -> TestResult {
    let root = tempfile::tempdir()?;
    let mut config = helper_config(root.path());
    let here = manager(&config);
    let h = create(&here, "r", 64)?;
    here.write_region(h, 0, b"committed")?;

    let mut other = Helper::spawn(root.path());
    assert_eq!(other.ask(&format!("hold {h}")), "held");
    config.lock_wait = Duration::from_millis(50);
    let impatient = manager(&config);
    let busy = impatient.read_region(h, 0, &mut [0; 9]);
    assert!(matches!(busy, Err(ShmError::RegionBusy { .. })));
    let path = here.mapped_region(h).unwrap().path().to_path_buf();
    let holder = || shm_mapped::MappedRegion::open(&path).map(|r| r.status().holder);
    assert!(holder()?.unwrap().alive);

    // Killed (`kill -9`): the lock word still names the dead process; its
    // lease says it is dead.
    drop(other);
    assert!(!holder()?.unwrap().alive);
    let start = std::time::Instant::now();
    let mut buf = [0u8; 9];
    impatient.read_region(h, 0, &mut buf)?;
    // The dead transaction's write is rolled back.
    assert_eq!(&buf, b"committed");
    let fast = start.elapsed() < Duration::from_millis(50);
    assert!(fast, "taken over without waiting out the lock wait");
    Ok(())
}

#[test]
fn a_lost_damaged_or_old_generations_table_refuses_the_namespace() -> TestResult {
    let root = tempfile::tempdir()?;
    let config = config(root.path());
    let first = manager(&config);
    let a = create(&first, "a", 64)?;
    first.free_region(a)?;
    let table = first.namespace_dir().unwrap().join("generations");
    drop(first);
    let intact = std::fs::read(&table)?;

    std::fs::remove_file(&table)?;
    let err = refused(&config, "missing");
    assert!(err.to_string().contains("generations"), "{err}");
    let mut damaged = intact.clone();
    *damaged.last_mut().unwrap() ^= 1;
    std::fs::write(&table, &damaged)?;
    refused(&config, "checksum");

    // The intact table: the freed handle is never issued again.
    std::fs::write(&table, &intact)?;
    let b = create(&manager(&config), "b", 64)?;
    assert_eq!(Some(b), RegionHandle::new(a.index(), a.generation() + 1));
    // An old copy of the table (a's generation for index 1) behind b's file.
    shm_mapped::Namespace::open(root.path(), "ns")?.rebuild_generations()?;
    let mut old = std::fs::read(&table)?;
    assert_eq!(a.index(), 1);
    old[16..20].copy_from_slice(&a.generation().to_le_bytes());
    let crc_at = old.len() - 4;
    let crc = crc32(&old[..crc_at]);
    old[crc_at..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&table, &old)?;
    refused(&config, &format!("has generation {}", b.generation()));
    Ok(())
}

/// CRC-32 (IEEE), bit by bit: small enough to write here.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}
