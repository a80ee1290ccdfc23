//! The run queue and the outcome stream: heavy files first, outcomes in queue order whatever
//! the number of threads, index filters, a sink that stops the run, the slowest files.

mod common;

use common::TempDir;
use shm_statetest::{
    run, run_observed, CaseOutcome, IndexFilter, MainnetExecutor, PathList, Progress, RunnerOptions,
};
use std::{ops::ControlFlow, path::PathBuf, sync::Mutex};

/// Small fixtures of several cases each, in path order.
const FILES: [&str; 5] = [
    "stExample/accessListExample.json",
    "stExample/add11.json",
    "stLogTests/log1_MaxTopic.json",
    "stRevertTest/RevertOpcode.json",
    "stRevertTest/RevertOpcodeCalls.json",
];

fn folder(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    for file in FILES {
        dir.copy_fixture(file);
    }
    dir
}

fn options(dir: &TempDir, threads: usize) -> RunnerOptions {
    let mut options = RunnerOptions::new([dir.path()]);
    options.progress = Progress::Off;
    options.threads = Some(threads);
    options.heavy_first = PathList::new();
    options
}

/// (file, test, d, g, v) of every outcome, in the order the sink got them.
fn outcomes(options: &RunnerOptions) -> Vec<(PathBuf, String, usize, usize, usize)> {
    let seen = Mutex::new(Vec::new());
    let sink = |outcome: &CaseOutcome| {
        let i = outcome.indexes;
        seen.lock().unwrap().push((
            outcome.file.clone(),
            outcome.test.clone(),
            i.data,
            i.gas,
            i.value,
        ));
        ControlFlow::Continue(())
    };
    let report = run_observed(options, &MainnetExecutor, &sink).unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), report.passed + report.failed);
    seen
}

#[test]
fn outcomes_arrive_in_queue_order_with_any_number_of_threads() {
    let dir = folder("order");
    let one = outcomes(&options(&dir, 1));
    assert!(one.len() > FILES.len());
    // Path order.
    let files: Vec<&PathBuf> = one.iter().map(|o| &o.0).collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    for _ in 0..3 {
        assert_eq!(outcomes(&options(&dir, 2)), one);
    }
}

#[test]
fn heavy_files_go_first_in_the_lists_order() {
    let dir = folder("heavy");
    let mut opts = options(&dir, 1);
    opts.heavy_first = PathList::parse(
        "stRevertTest/RevertOpcodeCalls.json  # slowest\nstExample/add11.json  # next\n",
        "<test>",
    )
    .unwrap();
    let seen = outcomes(&opts);
    let mut files: Vec<String> = seen
        .iter()
        .map(|o| o.0.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.dedup();
    assert_eq!(
        files,
        [
            "RevertOpcodeCalls.json",
            "add11.json",
            "accessListExample.json",
            "log1_MaxTopic.json",
            "RevertOpcode.json"
        ]
    );
    // The order changes when files run, not what they find.
    let plain = outcomes(&options(&dir, 1));
    let mut a = seen.clone();
    let mut b = plain.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn the_default_heavy_list_names_fixtures_that_exist() {
    let list = PathList::heavy_first();
    assert!(list.len() >= 5);
    for entry in list.entries() {
        let path = common::fixtures().join(entry.path());
        assert!(path.is_file(), "{} is not a fixture", path.display());
    }
}

#[test]
fn index_filters_select_cases() {
    let dir = TempDir::new("indexes");
    dir.copy_fixture("stRevertTest/RevertOpcode.json");
    let all = outcomes(&options(&dir, 1));
    assert_eq!(all.len(), 4);
    let with = |indexes: IndexFilter| {
        let mut opts = options(&dir, 1);
        opts.indexes = indexes;
        outcomes(&opts)
    };
    let gas_one = with(IndexFilter {
        gas: Some(1),
        ..IndexFilter::default()
    });
    let expected: Vec<_> = all.iter().filter(|o| o.3 == 1).cloned().collect();
    assert!(!expected.is_empty());
    assert_eq!(gas_one, expected);
    let second = with(IndexFilter {
        position: Some(1),
        ..IndexFilter::default()
    });
    assert_eq!(second, vec![all[1].clone()]);
    let none = with(IndexFilter {
        data: Some(7),
        ..IndexFilter::default()
    });
    assert!(none.is_empty());
}

#[test]
fn a_sink_that_breaks_stops_the_run() {
    let dir = folder("break");
    let count = Mutex::new(0);
    let sink = |_: &CaseOutcome| {
        *count.lock().unwrap() += 1;
        ControlFlow::Break(())
    };
    let report = run_observed(&options(&dir, 1), &MainnetExecutor, &sink).unwrap();
    assert_eq!(*count.lock().unwrap(), 1);
    // The first file's cases finished; no other file was started.
    assert_eq!(report.files, 1);
}

#[test]
fn slowest_files_are_kept_slowest_first() {
    let dir = folder("slowest");
    let mut opts = options(&dir, 2);
    opts.slowest = 3;
    let report = run(&opts, &MainnetExecutor).unwrap();
    assert_eq!(report.slowest.len(), 3);
    assert!(report
        .slowest
        .windows(2)
        .all(|pair| pair[0].elapsed >= pair[1].elapsed));
    opts.slowest = 0;
    assert!(run(&opts, &MainnetExecutor).unwrap().slowest.is_empty());
}
