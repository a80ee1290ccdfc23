//! Our per-case outcomes against `revme statetest --json-outcome`'s, recorded once with
//! revme 43.0.3 by `tests/data/revme-outcomes/record.sh` (revme is not needed here): the same
//! lines, in the same order, with the same fields in the same order and the same values — for
//! passing cases, rejected transactions, reverts, halts, logs, several forks, and one
//! synthetic fixture per kind of failure.

mod common;

use common::fixtures;
use serde_json::Value;
use shm_statetest::{
    run_observed, CaseOutcome, MainnetExecutor, Progress, RunnerOptions, SkipList,
};
use std::{
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::Mutex,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/revme-outcomes");

/// Every recorded fixture: (name, path).
fn recorded_fixtures() -> Vec<(String, PathBuf)> {
    let listed = std::fs::read_to_string(Path::new(DATA).join("fixtures.txt")).unwrap();
    let mut all: Vec<(String, PathBuf)> = listed
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next().unwrap().to_string();
            (name, fixtures().join(words.next().unwrap()))
        })
        .collect();
    for entry in std::fs::read_dir(Path::new(DATA).join("fixtures")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        all.push((name, path));
    }
    all.sort();
    all
}

/// Our outcome lines for one fixture file, as `evm statetest --json-outcome` prints them.
fn our_lines(path: &Path) -> Vec<String> {
    let mut options = RunnerOptions::new([path]);
    options.progress = Progress::Off;
    options.skip = SkipList::new();
    options.threads = Some(1);
    let lines = Mutex::new(Vec::new());
    let sink = |outcome: &CaseOutcome| {
        lines.lock().unwrap().push(outcome.revme_json().to_string());
        ControlFlow::Continue(())
    };
    run_observed(&options, &MainnetExecutor, &sink).unwrap();
    lines.into_inner().unwrap()
}

#[test]
fn outcomes_match_revmes_recorded_ones() {
    let fixtures = recorded_fixtures();
    assert!(fixtures.len() >= 13, "{fixtures:?}");
    let mut failing_seen = 0;
    for (name, path) in fixtures {
        let expected_path = Path::new(DATA)
            .join("expected")
            .join(format!("{name}.jsonl"));
        let expected: Vec<String> = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .lines()
            .map(str::to_string)
            .collect();
        assert!(!expected.is_empty(), "{name}: nothing recorded");
        let ours = our_lines(&path);
        assert_eq!(ours.len(), expected.len(), "{name}: number of outcomes");
        for (ours, theirs) in ours.iter().zip(&expected) {
            let ours_value: Value = serde_json::from_str(ours).unwrap();
            let theirs_value: Value = serde_json::from_str(theirs).unwrap();
            let (Value::Object(ours_fields), Value::Object(theirs_fields)) =
                (&ours_value, &theirs_value)
            else {
                panic!("{name}: not objects");
            };
            let ours_keys: Vec<&String> = ours_fields.keys().collect();
            let theirs_keys: Vec<&String> = theirs_fields.keys().collect();
            assert_eq!(ours_keys, theirs_keys, "{name}: fields and their order");
            for (key, value) in theirs_fields {
                assert_eq!(&ours_fields[key], value, "{name}: field {key}");
            }
            // Same fields, order and values: the same bytes.
            assert_eq!(ours, theirs, "{name}");
            if theirs_value["pass"] == false {
                failing_seen += 1;
            }
        }
    }
    // The synthetic fixtures' failures: state root, logs, missing and unexpected exception.
    assert_eq!(failing_seen, 4);
}
