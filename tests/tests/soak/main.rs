//! Soak: many threads (and, over a mapped namespace, a second process) run
//! random transactions against one manager for a bounded time — shared
//! regions, nested calls, random reverts, halts and abandoned simulations,
//! copy-on-write views, transaction-scoped regions that grow, persistent
//! regions freed and recreated, host reads, writes and collections racing
//! them. Afterwards memory must be back at its baseline, the metrics must
//! agree with the registry, and no transaction may have seen another's
//! uncommitted bytes (the stamp invariant of `ledger.rs`).
//!
//! CI runs each soak for 10 seconds. A long run, with the memory curve and
//! throughput written to `$SOAK_OUT/<soak>/{samples.csv,summary.txt}` (and
//! `benches/soak.sh` to run it and plot it):
//!
//! ```sh
//! SOAK_SECS=3600 SOAK_OUT=target/soak cargo test --profile ci -p shm-tests --test soak -- --nocapture
//! ```
//!
//! `SOAK_THREADS` (EVM threads, default 3), `SOAK_SEED` (default: from the
//! clock, printed) change the mix.

mod check;
mod ledger;
mod program;
mod run;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
use shm_primitives::RegionHandle;

use crate::ledger::{ForeignMasks, Ledger, Seen, Writer};
use crate::run::{run_process, summary, sweep, write_out, Ran};
use crate::worker::{make_directory, read_directory, DIRECTORY};

fn duration() -> Duration {
    let secs = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(10.0);
    Duration::from_secs_f64(secs)
}

fn workers() -> usize {
    std::env::var("SOAK_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

fn seed() -> u64 {
    std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Samples: about 400 over the run, at most 5 a second.
fn sample_every(duration: Duration) -> Duration {
    (duration / 400).max(Duration::from_millis(200))
}

/// Fails with every violation the ledger found.
fn assert_no_violations(ledger: &Ledger, what: &str) {
    let violations = ledger.violations();
    assert!(
        violations.is_empty(),
        "{what}: {} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// Nothing is left of any transaction: no lock, no copy-on-write page, no
/// pending free.
fn assert_released(manager: &SharedMemoryManager) {
    assert_eq!(manager.locked_regions(), Vec::new(), "locks left");
    let stats = manager.get_memory_stats().unwrap();
    assert_eq!(stats.cow_pages, 0, "copy-on-write pages left");
    assert_eq!(manager.cow_pages(), 0);
    assert_eq!(stats.pending_frees, 0, "frees left pending");
}

/// The metrics agree with the registry.
fn assert_metrics_agree(manager: &SharedMemoryManager) {
    let stats = manager.get_memory_stats().unwrap();
    let metrics = manager.metrics_snapshot();
    assert_eq!(
        metrics.regions_created - metrics.regions_destroyed,
        stats.active_regions as u64,
        "created − destroyed = active ({metrics:?})"
    );
    assert_eq!(
        metrics.memory_bytes, stats.total_bytes,
        "the memory gauge equals the bytes of the live regions"
    );
}

/// The live regions are exactly the directory and its entries, persistent.
fn assert_only_directory_left(manager: &SharedMemoryManager, directory: RegionHandle) -> usize {
    let entries = read_directory(manager, directory);
    let mut live: Vec<u64> = manager
        .list_regions()
        .unwrap()
        .iter()
        .map(|i| i.meta.handle().to_u64())
        .collect();
    live.sort_unstable();
    let mut expected: Vec<u64> = entries.iter().map(|(_, h)| *h).collect();
    expected.push(directory.to_u64());
    expected.sort_unstable();
    assert_eq!(live, expected, "no region leaked, none lost");
    let stats = manager.get_memory_stats().unwrap();
    assert_eq!(stats.persistent_regions, expected.len());
    expected.len()
}

/// Frees every region left; afterwards nothing is held.
fn free_everything(manager: &SharedMemoryManager, directory: RegionHandle) {
    for (_, raw) in read_directory(manager, directory) {
        manager
            .free_region(RegionHandle::from_u64(raw).unwrap())
            .unwrap();
    }
    manager.free_region(directory).unwrap();
    manager.garbage_collect().unwrap();
    let stats = manager.get_memory_stats().unwrap();
    assert_eq!(
        (stats.active_regions, stats.total_bytes, stats.mappings),
        (0, 0, 0)
    );
    let metrics = manager.metrics_snapshot();
    assert_eq!(metrics.regions_created, metrics.regions_destroyed);
    assert_eq!(metrics.memory_bytes, 0);
    assert!(
        stats.pool_classes.iter().all(|c| c.allocated == 0),
        "every pool block is back: {:?}",
        stats.pool_classes
    );
    assert_eq!(stats.large_bytes, 0);
}

/// The soak did what it is for (a soak that ran nothing proves nothing).
fn assert_exercised(ran: &Ran) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &ran.counters;
    let at_least = |what: &str, n: u64, min: u64| {
        assert!(n >= min, "only {n} {what} (at least {min} expected)");
    };
    at_least("transactions", c.transactions.load(Relaxed), 100);
    at_least("successful transactions", c.succeeded.load(Relaxed), 30);
    at_least("reverted transactions", c.reverted.load(Relaxed), 1);
    at_least("abandoned transactions", c.abandoned.load(Relaxed), 5);
    at_least("checked reads", c.reads_checked.load(Relaxed), 100);
    at_least("verified stamps", ran.ledger.checked(), 10);
    at_least("host writes", c.host_writes.load(Relaxed), 10);
}

#[test]
fn soak_heap_backed() {
    let (duration, workers, seed) = (duration(), workers(), seed());
    println!("soak_heap_backed: SOAK_SEED={seed}");
    let manager = SharedMemoryManager::new(SharedMemoryConfig::production()).unwrap();
    let baseline = manager.get_memory_stats().unwrap();
    let directory = make_directory(&manager);
    let ran = run_process(
        &manager,
        false,
        directory,
        0,
        workers,
        duration,
        seed,
        sample_every(duration),
    );
    let text = summary("heap", &ran, workers);
    println!("{text}");
    write_out("heap", &ran, &text);

    let stamped = sweep(&manager, directory, &ran.ledger);
    assert_eq!(ran.ledger.drain_pending(), 0, "every writer decided");
    assert_no_violations(&ran.ledger, "heap soak");
    assert!(ran.ledger.take_foreign().is_empty(), "one process");
    assert_released(&manager);
    assert_metrics_agree(&manager);
    let live = assert_only_directory_left(&manager, directory);
    let stats = manager.get_memory_stats().unwrap();
    assert_eq!(
        stats
            .pool_classes
            .iter()
            .map(|c| c.allocated)
            .sum::<usize>(),
        live,
        "one pool block per live region, no other block out"
    );
    println!("  {stamped} stamped slots at the end, {live} regions live");
    assert_exercised(&ran);
    assert_eq!(
        ran.counters
            .invalid_handle
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a handle the directory gave was called invalid"
    );

    free_everything(&manager, directory);
    // Every block is back (`free_everything`), no class lost capacity, and
    // the collection gave the surplus back to the system.
    let after = manager.get_memory_stats().unwrap();
    for (class, before) in after.pool_classes.iter().zip(&baseline.pool_classes) {
        assert_eq!(class.capacity, before.capacity);
    }
    assert!(
        after.pool_reserved_bytes <= baseline.pool_reserved_bytes,
        "the pools hold no more than when the manager was new ({} > {})",
        after.pool_reserved_bytes,
        baseline.pool_reserved_bytes
    );
}

/// The checker can fail: a host thread that writes stamps nobody commits,
/// and half slots, is caught — by the dirty-read inspector, by the ledger
/// and by the replays of the transactions that read them.
#[test]
fn the_checker_sees_bytes_nobody_committed() {
    let manager = SharedMemoryManager::new(SharedMemoryConfig::production()).unwrap();
    let directory = make_directory(&manager);
    let ran = run_process(
        &manager,
        true,
        directory,
        0,
        2,
        Duration::from_secs(3),
        seed(),
        Duration::from_millis(500),
    );
    sweep(&manager, directory, &ran.ledger);
    ran.ledger.drain_pending();
    let violations = ran.ledger.violations().join("\n");
    for caught in ["dirty read", "never committed as final", "torn"] {
        assert!(
            violations.contains(caught),
            "the saboteur's bytes were not reported as {caught:?}:\n{violations}"
        );
    }
}

// ----- a mapped namespace, with a second process attached -----

const HELPER_ROOT: &str = "SHM_SOAK_HELPER_ROOT";
const HELPER_WORKERS: usize = 2;

/// A namespace root of our own in the temporary directory, removed on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!("shm-soak-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mapped_config(root: &Path) -> SharedMemoryConfig {
    SharedMemoryConfig {
        namespace_root: Some(root.to_path_buf()),
        ..SharedMemoryConfig::production().with_namespace("soak")
    }
}

fn region_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("soak"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".shm"))
        .collect();
    names.sort();
    names
}

fn seen_lines(seen: &[Seen]) -> String {
    seen.iter()
        .map(|s| format!("{} {} {}\n", s.writer.thread, s.writer.seq, s.write))
        .collect()
}

fn parse_seen(text: &str, process: u8) -> Vec<Seen> {
    text.lines()
        .map(|line| {
            let v: Vec<u64> = line.split(' ').map(|w| w.parse().unwrap()).collect();
            Seen {
                writer: Writer {
                    process,
                    thread: v[0] as u8,
                    seq: v[1],
                },
                write: v[2] as u8,
            }
        })
        .collect()
}

#[test]
fn soak_mapped_namespace_with_a_second_process() {
    let (duration, workers, seed) = (duration(), workers(), seed());
    println!("soak_mapped_namespace_with_a_second_process: SOAK_SEED={seed}");
    let root = TempRoot::new();
    let manager = SharedMemoryManager::new(mapped_config(&root.0)).unwrap();
    let directory = make_directory(&manager);

    // The other process: this test binary again, in `soak_helper_process`.
    let out = root.0.join("helper-out");
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "soak_helper_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ROOT, &root.0)
        .env("SOAK_SECS", duration.as_secs_f64().to_string())
        .env("SOAK_SEED", (seed ^ 0x5eed).to_string())
        .env_remove("SOAK_OUT")
        .spawn()
        .unwrap();
    // Both processes run their transactions once the helper is attached.
    // (Attaching while another process creates and frees regions is
    // `security.rs`'s `attaching_while_another_process_makes_and_frees_regions`.)
    let attached = Instant::now() + Duration::from_secs(60);
    while !out.join("attached").exists() {
        if let Some(status) = helper.try_wait().unwrap() {
            panic!("the helper process ended before it attached: {status}");
        }
        assert!(
            Instant::now() < attached,
            "the helper process did not attach"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let ran = run_process(
        &manager,
        false,
        directory,
        0,
        workers,
        duration,
        seed,
        sample_every(duration),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = helper.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = helper.kill();
            panic!("the helper process did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the helper process failed: {status}");
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let helper_violations = read("violations.txt");
    assert!(
        helper_violations.is_empty(),
        "the helper process found violations:\n{helper_violations}"
    );
    let text = summary("mapped (this process)", &ran, workers);
    let helper_summary = read("summary.txt");
    println!("{text}{helper_summary}");
    write_out("mapped", &ran, &format!("{text}{helper_summary}"));

    // Each process's reads of the other's stamps, against the other's verdicts.
    let stamped = sweep(&manager, directory, &ran.ledger);
    let decided: Vec<u64> = read("decided.txt")
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let helper_masks = ForeignMasks::parse(&read("masks.txt"), decided);
    helper_masks.check(&ran.ledger.take_foreign(), &ran.ledger);
    ran.ledger
        .check_foreign(parse_seen(&read("foreign.txt"), 0));
    assert_eq!(ran.ledger.drain_pending(), 0, "every writer decided");
    assert_no_violations(&ran.ledger, "mapped soak");
    assert_exercised(&ran);

    assert_released(&manager);
    let entries = read_directory(&manager, directory);
    // Regions the other process made, grew and freed move this process's
    // metrics too (`security.rs` `metrics_follow_regions_another_process_frees`).
    assert_metrics_agree(&manager);
    assert_eq!(
        ran.counters
            .invalid_handle
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a handle the directory gave was called invalid (threads meeting the other process's new handle at once)"
    );
    assert_eq!(
        region_files(&root.0).len(),
        entries.len() + 1,
        "the files of transaction-scoped and freed regions are gone: {:?}",
        region_files(&root.0)
    );
    drop(manager);
    // A third process's view: exactly the directory and its regions, none
    // locked, none with a transaction open; freed through it, nothing is left.
    let fresh = SharedMemoryManager::new(mapped_config(&root.0)).unwrap();
    assert_eq!(fresh.find_region(DIRECTORY).unwrap(), directory);
    let live = assert_only_directory_left(&fresh, directory);
    assert_eq!(live, entries.len() + 1);
    for info in fresh.list_regions().unwrap() {
        let status = fresh.mapped_region(info.meta.handle()).unwrap().status();
        assert!(status.holder.is_none(), "{status:?}");
        assert!(!status.undo_pending && !status.freed, "{status:?}");
    }
    assert_metrics_agree(&fresh);
    println!("  {stamped} stamped slots at the end, {live} regions live");
    free_everything(&fresh, directory);
    assert_eq!(region_files(&root.0), Vec::<String>::new());
}

/// The second process of the mapped soak: attaches to the namespace its
/// parent names, runs its own workers and host thread, and leaves its
/// ledger for the parent (nothing without the variable).
#[test]
fn soak_helper_process() {
    let Some(root) = std::env::var_os(HELPER_ROOT) else {
        return;
    };
    let root = PathBuf::from(root);
    let manager = SharedMemoryManager::new(mapped_config(&root)).unwrap();
    let directory = manager.find_region(DIRECTORY).unwrap();
    let out = root.join("helper-out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("attached"), "").unwrap();
    let duration = duration();
    let ran: Ran = run_process(
        &manager,
        false,
        directory,
        1,
        HELPER_WORKERS,
        duration,
        seed(),
        sample_every(duration),
    );
    let pending = ran.ledger.drain_pending();
    if pending != 0 {
        ran.ledger
            .violation(format!("{pending} observations of undecided writers"));
    }
    let write = |name: &str, text: String| std::fs::write(out.join(name), text).unwrap();
    write("masks.txt", ran.ledger.dump_masks());
    write(
        "decided.txt",
        ran.ledger
            .decided_counts()
            .iter()
            .map(|n| format!("{n} "))
            .collect(),
    );
    write("foreign.txt", seen_lines(&ran.ledger.take_foreign()));
    let invalid = ran
        .counters
        .invalid_handle
        .load(std::sync::atomic::Ordering::Relaxed);
    if invalid > 0 {
        ran.ledger.violation(format!(
            "{invalid} handles the directory gave were called invalid in the second process"
        ));
    }
    write("violations.txt", ran.ledger.violations().join("\n"));
    write(
        "summary.txt",
        summary("mapped (second process)", &ran, HELPER_WORKERS),
    );
    drop(ran);
    let _: Arc<SharedMemoryManager> = manager;
}
