//! The Ethereum blockchain tests through alloy-evm's `EthBlockExecutor`: the whole
//! BlockchainTests folder (ValidBlocks, InvalidBlocks, TransitionTests) passes with EVMs from
//! `ShmEvmFactory` with shared memory off and on (through `ShmBlockExecutorFactory`), and
//! from alloy-evm's own `EthEvmFactory` (through `EthBlockExecutorFactory`); every entry of
//! the skip file is still needed.

use alloy_evm::eth::EthEvmFactory;
use shm_alloy_evm::ShmEvmFactory;
use shm_blocktest::{run, BlockExecutors, BlocktestOptions, FailureKind, Report};
use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
use shm_statetest::{Progress, SkipList};
use std::path::PathBuf;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/ethereum-tests/BlockchainTests"
);
const SKIP_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/blocktest-skip.txt");

fn skip_list() -> SkipList {
    SkipList::load(SKIP_FILE).unwrap_or_else(|error| panic!("{error}"))
}

fn run_all(executors: &impl BlockExecutors) -> Report {
    let mut options = BlocktestOptions::new([FIXTURES]);
    options.skip = skip_list();
    options.progress = Progress::Lines;
    let report = run(&options, executors).unwrap_or_else(|error| panic!("{error}"));
    for failure in &report.failures {
        eprintln!("{failure}");
    }
    println!("{}", report.summary_line());
    assert_eq!(report.failed, 0, "{}", report.summary_line());
    // 594 tests in the folder; the skips are few and each matched a file.
    assert_eq!(
        report.passed + report.skipped,
        594,
        "{}",
        report.summary_line()
    );
    assert!(report.skipped <= 3, "{}", report.summary_line());
    for entry in options.skip.entries() {
        let path = entry.path();
        assert!(
            report.skips.iter().any(|skip| skip
                .file
                .to_string_lossy()
                .contains(path.trim_end_matches(".json"))),
            "skip entry {path} matched no fixture"
        );
    }
    report
}

#[test]
fn blockchain_tests_pass_with_shared_memory_off() {
    let report = run_all(&ShmEvmFactory::off());
    assert!(report.blocks > 1_500, "{} blocks", report.blocks);
}

#[test]
fn blockchain_tests_pass_with_shared_memory_on() {
    let manager = SharedMemoryManager::new(SharedMemoryConfig::production()).unwrap();
    run_all(&ShmEvmFactory::on(manager.clone()));
    // Nothing leaked: every transaction-scoped region gone, every lock released.
    assert_eq!(manager.get_memory_stats().unwrap().active_regions, 0);
    assert!(manager.locked_regions().is_empty());
}

#[test]
fn blockchain_tests_pass_with_alloy_evms_own_factory() {
    run_all(&EthEvmFactory::default());
}

#[test]
fn every_skip_entry_fails_when_run() {
    for entry in skip_list().entries() {
        let mut options = BlocktestOptions::new([PathBuf::from(FIXTURES).join(entry.path())]);
        options.progress = Progress::Off;
        let report = run(&options, &ShmEvmFactory::off()).unwrap();
        assert!(
            report.failed > 0,
            "{} passes now ({}): remove it from the skip file",
            entry.path(),
            report.summary_line()
        );
        // The DAO files fail at a block's execution results, never on a fixture problem.
        for failure in &report.failures {
            assert!(
                matches!(
                    failure.kind,
                    FailureKind::UnexpectedRejection | FailureKind::WrongException
                ),
                "{failure}"
            );
        }
    }
}
