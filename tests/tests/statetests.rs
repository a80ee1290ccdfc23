//! The Ethereum state tests: the whole GeneralStateTests folder, run with stock revm and the
//! checked-in skip file, must pass; and every entry of that skip file must still be needed.

use shm_statetest::{run, MainnetExecutor, Progress, RunnerOptions, SkipList};
use std::path::PathBuf;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/ethereum-tests/GeneralStateTests"
);
const SKIP_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/statetest-skip.txt");

fn skip_list() -> SkipList {
    SkipList::load(SKIP_FILE).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn general_state_tests_pass_with_stock_revm() {
    let mut options = RunnerOptions::new([FIXTURES]);
    options.skip = skip_list();
    options.progress = Progress::Lines;
    let report = run(&options, &MainnetExecutor).unwrap_or_else(|error| panic!("{error}"));

    for failure in &report.failures {
        eprintln!("{failure}");
    }
    println!("{}", report.summary_line());
    assert_eq!(report.failed, 0, "{}", report.summary_line());
    assert!(report.passed > 0);
    // Every skip-file entry matched a fixture file (a stale entry would skip nothing).
    for entry in options.skip.entries() {
        let path = entry.path();
        assert!(
            report.skips.iter().any(|skip| skip.test.is_none()
                && skip.reason == entry.reason
                && skip
                    .file
                    .to_string_lossy()
                    .contains(path.trim_end_matches(".json"))),
            "skip entry {path} matched no fixture"
        );
    }
}

#[test]
fn every_skip_entry_fails_when_run() {
    for entry in skip_list().entries() {
        let path = PathBuf::from(FIXTURES).join(entry.path());
        let mut options = RunnerOptions::new([&path]);
        options.progress = Progress::Off;
        let report = run(&options, &MainnetExecutor).unwrap_or_else(|error| panic!("{error}"));
        assert!(
            report.failed > 0,
            "{} passes now ({}): remove it from the skip file",
            entry.path(),
            report.summary_line()
        );
    }
}
