//! The Ethereum state tests with shared memory on: every fixture passes except the
//! files of `tests/statetest-skip-shm.txt`, which expect 0xE0–0xE4 to be undefined (they
//! pass with shared memory off: `statetests.rs` runs them).

use shm_evm::SharedMemoryExecutor;
use shm_manager::SharedMemoryConfig;
use shm_statetest::{run, Progress, RunnerOptions, SkipList};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/ethereum-tests/GeneralStateTests"
);
const SKIP_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/statetest-skip.txt");
const SHM_SKIP_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/statetest-skip-shm.txt");

#[test]
fn general_state_tests_pass_with_shared_memory_on() {
    let mut options = RunnerOptions::new([FIXTURES]);
    options.skip = SkipList::load(SKIP_FILE).unwrap();
    let shm_skip = SkipList::load(SHM_SKIP_FILE).unwrap();
    assert_eq!(
        shm_skip.len(),
        6,
        "exactly the six files that expect 0xE0–0xE4 to be undefined"
    );
    options.skip.extend(shm_skip);
    options.progress = Progress::Lines;
    let executor = SharedMemoryExecutor::new(SharedMemoryConfig::production()).unwrap();
    let report = run(&options, &executor).unwrap_or_else(|error| panic!("{error}"));
    for failure in &report.failures {
        eprintln!("{failure}");
    }
    println!("{}", report.summary_line());
    assert_eq!(report.failed, 0, "{}", report.summary_line());
    assert!(report.passed > 20_000, "{}", report.summary_line());
    // Nothing leaked: every transaction-scoped region is gone, every lock released.
    let stats = executor.manager().get_memory_stats().unwrap();
    assert_eq!(stats.active_regions, 0);
    assert!(executor.manager().locked_regions().is_empty());
}

#[test]
fn the_shared_memory_skips_are_needed() {
    // Run with shared memory on, the six files have cases that fail.
    let mut options = RunnerOptions::new([format!("{FIXTURES}/stBadOpcode")]);
    options.progress = Progress::Off;
    options.name_filter =
        Some(regex::Regex::new("opcE[0-4]DiffPlaces|undefinedOpcodeFirstByte").unwrap());
    let executor = SharedMemoryExecutor::new(SharedMemoryConfig::production()).unwrap();
    let report = run(&options, &executor).unwrap();
    assert!(report.failed > 0, "{}", report.summary_line());
    for failure in &report.failures {
        let file = failure.file.to_string_lossy();
        assert!(
            [
                "opcE0",
                "opcE1",
                "opcE2",
                "opcE3",
                "opcE4",
                "undefinedOpcodeFirstByte"
            ]
            .iter()
            .any(|f| file.contains(f)),
            "unexpected failure in {file}"
        );
    }
}
