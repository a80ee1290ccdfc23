//! Runs over small folders built from copies of the fixtures: counts, filters, broken files,
//! failures and their details, pluggable executors, usage errors.

mod common;

use common::{fixture_text, fixtures, TempDir};
use revm::{
    context_interface::result::{EVMError, InvalidTransaction},
    primitives::{Address, U256},
};
use shm_statetest::{
    run, CaseEnv, CaseExecutor, CaseState, FailureKind, MainnetExecutor, Progress, Report,
    RunnerError, RunnerOptions, SkipList, FORK_NAMES,
};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fixture with one case on each of ten forks, one of them Constantinople.
const MULTI_FORK: &str = "Pyspecs/homestead/yul/yul.json";

fn options(dir: &TempDir) -> RunnerOptions {
    let mut options = RunnerOptions::new([dir.path()]);
    options.progress = Progress::Off;
    options.threads = Some(2);
    options
}

fn run_ok(options: &RunnerOptions) -> Report {
    run(options, &MainnetExecutor).expect("run starts")
}

#[test]
fn counts_passes_and_skips_constantinople_as_revme_does() {
    let dir = TempDir::new("counts");
    dir.copy_fixture(MULTI_FORK);
    dir.copy_fixture("stExample/add11.json");
    let report = run_ok(&options(&dir));
    assert_eq!(
        (report.passed, report.failed, report.skipped),
        (10, 0, 1),
        "{report:?}"
    );
    assert_eq!(report.files, 2);
    assert_eq!(report.skips[0].fork.as_deref(), Some("Constantinople"));
    assert_eq!(report.summary_line(), "10 passed, 0 failed, 1 skipped");
}

#[test]
fn fork_filter_runs_only_that_fork() {
    let dir = TempDir::new("fork");
    dir.copy_fixture(MULTI_FORK);
    dir.copy_fixture("stExample/add11.json");
    dir.copy_fixture("Pyspecs/shanghai/eip3855_push0/push0_key_sstore.json");

    let mut opts = options(&dir);
    opts.fork = Some("Shanghai".into());
    let report = run_ok(&opts);
    // One Shanghai case in each of two files; add11 has Cancun only.
    assert_eq!((report.passed, report.failed, report.skipped), (2, 0, 0));

    // Case-insensitive.
    opts.fork = Some("cancun".into());
    assert_eq!(run_ok(&opts).passed, 3);

    // Constantinople is never run: its cases are skipped.
    opts.fork = Some("Constantinople".into());
    let report = run_ok(&opts);
    assert_eq!((report.passed, report.skipped), (0, 1));
}

#[test]
fn unknown_fork_is_a_usage_error_listing_valid_names() {
    let dir = TempDir::new("badfork");
    dir.copy_fixture("stExample/add11.json");
    let mut opts = options(&dir);
    opts.fork = Some("Cancoon".into());
    match run(&opts, &MainnetExecutor) {
        Err(error @ RunnerError::UnknownFork { .. }) => {
            let text = error.to_string();
            assert!(text.contains("Cancoon"), "{text}");
            for name in FORK_NAMES {
                assert!(text.contains(name), "{name} missing from {text}");
            }
        }
        other => panic!("expected UnknownFork, got {other:?}"),
    }
}

#[test]
fn name_filter_selects_tests_by_regex() {
    let dir = TempDir::new("names");
    dir.copy_fixture("stExample/add11.json");
    dir.copy_fixture("stExample/add11_yml.json");
    dir.copy_fixture("stLogTests/log1_MaxTopic.json");
    let mut opts = options(&dir);
    opts.name_filter = Some(regex::Regex::new("^add11").unwrap());
    let report = run_ok(&opts);
    assert_eq!(report.passed, 2);
    opts.name_filter = Some(regex::Regex::new("^add11$").unwrap());
    assert_eq!(run_ok(&opts).passed, 1);
}

#[test]
fn broken_file_is_one_failure_and_the_run_goes_on() {
    let dir = TempDir::new("broken");
    dir.copy_fixture("stExample/add11.json");
    dir.copy_fixture("stLogTests/log1_MaxTopic.json");
    let broken = dir.write("broken/truncated.json", "{\"oops\": {\"env\": ");
    dir.write("broken/not_a_fixture.json", "[1, 2, 3]");
    let report = run_ok(&options(&dir));
    assert_eq!((report.passed, report.failed), (2, 2), "{report:?}");
    let failure = report
        .failures
        .iter()
        .find(|f| f.file == broken)
        .expect("the truncated file failed");
    assert_eq!(failure.kind, FailureKind::UnparseableFile);
    assert!(failure.test.is_none());
    assert!(
        failure.message.contains("not a valid state-test fixture"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("line 1"), "{}", failure.message);
    assert_eq!(report.summary_line(), "2 passed, 2 failed");
}

#[test]
fn skip_list_skips_files_with_their_reason_and_case_count() {
    let dir = TempDir::new("skip");
    dir.copy_fixture(MULTI_FORK);
    dir.copy_fixture("stExample/add11.json");
    let mut opts = options(&dir);
    opts.skip = SkipList::parse("homestead/yul/yul.json # too yul\n", "<text>").unwrap();
    let report = run_ok(&opts);
    assert_eq!((report.passed, report.skipped), (1, 10));
    assert_eq!(report.skips.len(), 1);
    assert_eq!(report.skips[0].reason, "too yul");
    assert_eq!(report.skips[0].cases, 10);
}

#[test]
fn wrong_expectations_fail_with_expected_and_actual_values() {
    let dir = TempDir::new("wrong");
    let mut fixture: serde_json::Value =
        serde_json::from_str(&fixture_text("stExample/add11.json")).unwrap();
    let case = &mut fixture["add11"]["post"]["Cancun"][0];
    let expected_root = case["hash"].as_str().unwrap().to_string();
    case["hash"] = format!("0x{}", "11".repeat(32)).into();
    let file = dir.write("add11_wrong_root.json", &fixture.to_string());

    // Expecting an exception from a transaction that runs fine is a failure too.
    let mut fixture: serde_json::Value =
        serde_json::from_str(&fixture_text("stExample/add11.json")).unwrap();
    fixture["add11"]["post"]["Cancun"][0]["expectException"] = "TR_IntrinsicGas".into();
    dir.write("add11_wrong_exception.json", &fixture.to_string());

    let report = run_ok(&options(&dir));
    assert_eq!((report.passed, report.failed), (0, 2));
    let root = report.failures.iter().find(|f| f.file == file).unwrap();
    assert_eq!(root.kind, FailureKind::StateRoot);
    assert_eq!(root.test.as_deref(), Some("add11"));
    assert_eq!(root.fork.as_deref(), Some("Cancun"));
    assert_eq!(
        root.indexes.map(|i| (i.data, i.gas, i.value)),
        Some((0, 0, 0))
    );
    let actual = root.actual.as_ref().unwrap();
    assert_eq!(actual.state_root.unwrap().to_string(), expected_root);
    assert_eq!(
        root.expected
            .as_ref()
            .unwrap()
            .state_root
            .unwrap()
            .to_string(),
        format!("0x{}", "11".repeat(32))
    );
    // No expected post state in this fixture: no divergence to show.
    assert!(root.divergence.is_none());

    let exception = report.failures.iter().find(|f| f.file != file).unwrap();
    assert_eq!(exception.kind, FailureKind::Exception);
    assert_eq!(
        exception.expected.as_ref().unwrap().exception.as_deref(),
        Some("TR_IntrinsicGas")
    );
    assert!(
        exception.message.contains("TR_IntrinsicGas"),
        "{}",
        exception.message
    );
}

#[test]
fn expected_post_state_points_at_the_first_diverging_account() {
    // Build the fixture's `state` from the real post state, then change one balance.
    let dir = TempDir::new("diverge");
    let good = dir.copy_fixture("stExample/add11.json");
    let mut opts = options(&dir);
    let post_state = std::sync::Mutex::new(None);
    let recorder = |env: &CaseEnv<'_>, state: &mut CaseState| {
        let result = MainnetExecutor.execute(env, state);
        let accounts: serde_json::Map<String, serde_json::Value> = state
            .cache
            .trie_account()
            .into_iter()
            .map(|(address, account)| {
                let code = state
                    .cache
                    .contracts
                    .get(&account.info.code_hash)
                    .map(|code| code.original_bytes().to_string())
                    .unwrap_or_else(|| "0x".to_string());
                let storage: serde_json::Map<String, serde_json::Value> = account
                    .storage
                    .iter()
                    .map(|(k, v)| (format!("{k:#x}"), format!("{v:#x}").into()))
                    .collect();
                let value = serde_json::json!({
                    "balance": format!("{:#x}", account.info.balance),
                    "code": code,
                    "nonce": format!("{:#x}", account.info.nonce),
                    "storage": storage,
                });
                (address.to_string(), value)
            })
            .collect();
        *post_state.lock().unwrap() = Some(accounts);
        result
    };
    assert_eq!(run(&opts, &recorder).unwrap().passed, 1);
    let mut accounts = post_state.into_inner().unwrap().unwrap();
    std::fs::remove_file(good).unwrap();

    let first: Address = accounts.keys().map(|a| a.parse().unwrap()).min().unwrap();
    let key = first.to_string();
    let balance = U256::from_str_radix(
        accounts[&key]["balance"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    accounts[&key]["balance"] = format!("{:#x}", balance + U256::from(7)).into();

    let mut fixture: serde_json::Value =
        serde_json::from_str(&fixture_text("stExample/add11.json")).unwrap();
    let case = &mut fixture["add11"]["post"]["Cancun"][0];
    case["hash"] = format!("0x{}", "22".repeat(32)).into();
    case["state"] = serde_json::Value::Object(accounts);
    dir.write("add11_with_state.json", &fixture.to_string());

    opts.threads = Some(1);
    let report = run_ok(&opts);
    assert_eq!(report.failed, 1, "{report:?}");
    let divergence = report.failures[0]
        .divergence
        .as_ref()
        .expect("a divergence");
    assert_eq!(divergence.address, first);
    assert_eq!(divergence.field, "balance");
    assert_eq!(divergence.expected, (balance + U256::from(7)).to_string());
    assert_eq!(divergence.actual, balance.to_string());
    assert!(report.failures[0]
        .to_string()
        .contains("first diverging account"));
}

#[test]
fn a_plugged_executor_runs_every_case_and_its_errors_count() {
    let dir = TempDir::new("plug");
    dir.copy_fixture(MULTI_FORK);
    dir.copy_fixture("stExample/add11.json");

    let calls = AtomicUsize::new(0);
    let counting = |env: &CaseEnv<'_>, state: &mut CaseState| {
        calls.fetch_add(1, Ordering::Relaxed);
        MainnetExecutor.execute(env, state)
    };
    let report = run(&options(&dir), &counting).unwrap();
    assert_eq!(report.passed, 10);
    assert_eq!(calls.load(Ordering::Relaxed), 10);

    // An executor that rejects every transaction fails every case that expects none.
    let rejecting = |_: &CaseEnv<'_>, _: &mut CaseState| {
        Err(EVMError::Transaction(
            InvalidTransaction::RejectCallerWithCode,
        ))
    };
    let report = run(&options(&dir), &rejecting).unwrap();
    assert_eq!((report.passed, report.failed), (0, 10));
    assert!(report
        .failures
        .iter()
        .all(|f| f.kind == FailureKind::Exception));
    assert!(report.failures[0]
        .actual
        .as_ref()
        .unwrap()
        .exception
        .is_some());
}

#[test]
fn a_panicking_executor_fails_its_case_not_the_run() {
    let dir = TempDir::new("panic");
    dir.copy_fixture("stExample/add11.json");
    let panicking =
        |_: &CaseEnv<'_>, _: &mut CaseState| -> Result<_, _> { panic!("executor exploded") };
    let report = run(&options(&dir), &panicking).unwrap();
    assert_eq!(report.failed, 1);
    assert_eq!(report.failures[0].kind, FailureKind::Panic);
    assert!(report.failures[0].message.contains("executor exploded"));
}

#[test]
fn usage_errors() {
    let empty = TempDir::new("empty");
    type IsExpected = fn(&RunnerError) -> bool;
    let cases: [(RunnerOptions, IsExpected); 4] = [
        (RunnerOptions::default(), |e| {
            matches!(e, RunnerError::NoPaths)
        }),
        (RunnerOptions::new([empty.path().join("missing")]), |e| {
            matches!(e, RunnerError::PathNotFound(_))
        }),
        (RunnerOptions::new([empty.path()]), |e| {
            matches!(e, RunnerError::NoFixtures(_))
        }),
        (
            RunnerOptions {
                threads: Some(0),
                ..RunnerOptions::new([fixtures().join("stExample")])
            },
            |e| matches!(e, RunnerError::ZeroThreads),
        ),
    ];
    for (options, expected) in cases {
        let error = run(&options, &MainnetExecutor).expect_err("usage error");
        assert!(expected(&error), "unexpected error {error:?}");
    }
}

#[test]
fn report_serialises_and_reads_back() {
    let dir = TempDir::new("serde");
    dir.copy_fixture(MULTI_FORK);
    dir.write("broken.json", "{");
    let report = run_ok(&options(&dir));
    let json = serde_json::to_string(&report).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.passed, report.passed);
    assert_eq!(back.failures, report.failures);
    assert_eq!(back.skips, report.skips);
    assert!((back.elapsed.as_secs_f64() - report.elapsed.as_secs_f64()).abs() < 1e-6);
}
