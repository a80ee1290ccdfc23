//! The run: finding fixture files, sharing them among worker threads, checking every case.

use crate::{
    divergence::first_divergence,
    options::{canonical_fork_name, parse_fork},
    progress::Tracker,
    roots::{logs_hash, state_root},
    CaseEnv, CaseExecutor, CaseIndexes, CaseValues, Failure, FailureKind, Report, RunnerError,
    RunnerOptions, Skip, SkipList,
};
use regex::Regex;
use revm::{
    context::{block::BlockEnv, cfg::CfgEnv},
    context_interface::result::{ExecutionResult, HaltReason},
    database::{CacheState, State},
    primitives::{hardfork::SpecId, AddressMap, U256},
    statetest_types::{AccountInfo, SpecName, Test, TestSuite, TestUnit},
};
use std::{
    any::Any,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex, PoisonError,
    },
    time::Instant,
};
use walkdir::WalkDir;

/// Runs every selected case of the fixtures in `options.paths` with `executor`.
///
/// Files are shared among `options.threads` workers through a queue, in path order; each worker
/// takes the next file when it finishes one, so a slow file holds up only its own thread. A failing case, or a file that cannot be read or
/// parsed, is recorded in the [`Report`] and the run goes on (unless `fail_fast`).
///
/// # Errors
/// Usage errors only: no path, a missing path, a folder without fixtures, an unknown fork name,
/// a zero thread count.
///
/// ```no_run
/// use shm_statetest::{run, MainnetExecutor, RunnerOptions, SkipList};
/// let mut options = RunnerOptions::new(["GeneralStateTests"]);
/// options.skip = SkipList::load("tests/statetest-skip.txt")?;
/// let report = run(&options, &MainnetExecutor)?;
/// println!("{}", report.summary_line());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run<E: CaseExecutor + ?Sized>(
    options: &RunnerOptions,
    executor: &E,
) -> Result<Report, RunnerError> {
    let started = Instant::now();
    if options.paths.is_empty() {
        return Err(RunnerError::NoPaths);
    }
    if options.threads == Some(0) {
        return Err(RunnerError::ZeroThreads);
    }
    let fork = options.fork.as_deref().map(parse_fork).transpose()?;
    let files = find_fixture_files(&options.paths)?;

    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(files.len())
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|index| format!("statetest-{index}"))
        .build()
        .map_err(|error| RunnerError::ThreadPool(error.to_string()))?;

    let tracker = Tracker::new(options.progress, files.len(), "statetest", "cases");
    let checker = Checker {
        executor,
        selection: Selection {
            fork,
            names: options.name_filter.as_ref(),
        },
        skip: &options.skip,
        tracker: &tracker,
    };
    let prewarm = should_prewarm_kzg(
        options,
        threads,
        files.len(),
        checker.selection.fork.as_ref(),
    );
    let next_file = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let merged = Mutex::new(Report::default());

    pool.scope(|scope| {
        for worker in 0..threads {
            let (checker, tracker, files, next_file, stop, merged) =
                (&checker, &tracker, &files, &next_file, &stop, &merged);
            scope.spawn(move |_| {
                if worker == 0 && prewarm {
                    prewarm_kzg();
                }
                let mut local = Report::default();
                while !(options.fail_fast && stop.load(Ordering::Relaxed)) {
                    let Some(file) = files.get(next_file.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let failed_before = local.failed;
                    checker.run_file(file, &mut local);
                    if local.failed > failed_before {
                        stop.store(true, Ordering::Relaxed);
                    }
                    tracker.file_done();
                }
                merged
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .absorb(local);
            });
        }
    });
    tracker.finish();

    let mut report = merged.into_inner().unwrap_or_else(PoisonError::into_inner);
    report.sort();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Whether to load the KZG trusted setup up front: worth it only for a run over many files on
/// several threads that can reach the point-evaluation precompile (Cancun on).
fn should_prewarm_kzg(
    options: &RunnerOptions,
    threads: usize,
    files: usize,
    fork: Option<&SpecName>,
) -> bool {
    const MIN_FILES: usize = 64;
    let fork_has_kzg = fork.is_none_or(|fork| {
        unrunnable_fork(fork).is_none() && fork.to_spec_id().is_enabled_in(SpecId::CANCUN)
    });
    threads >= 2 && files >= MIN_FILES && options.name_filter.is_none() && fork_has_kzg
}

/// Loads the KZG trusted setup, which the point-evaluation precompile loads on first use (about
/// 3 s of CPU, the largest serial step of a full run). Done by one worker while the others
/// start on the files, it no longer stalls whichever thread first meets a blob test.
fn prewarm_kzg() {
    // Any input does: the setup is loaded before the proof is checked; the answer is unused.
    let _ = revm::precompile::kzg_point_evaluation::verify_kzg_proof(
        &[0; 48], &[0; 32], &[0; 32], &[0; 48],
    );
}

/// Every `.json` file under `paths` (a file given by name is taken whatever its extension),
/// in path order, each once.
///
/// # Errors
/// A path that does not exist, a folder that cannot be walked or holds no `.json` file.
pub fn find_fixture_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RunnerError> {
    let mut found: Vec<PathBuf> = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(RunnerError::PathNotFound(path.clone()));
        }
        if path.is_file() {
            found.push(path.clone());
            continue;
        }
        let before = found.len();
        for entry in WalkDir::new(path).follow_links(true) {
            let entry = entry.map_err(|error| RunnerError::Walk {
                path: path.clone(),
                message: error.to_string(),
            })?;
            let is_json = entry.path().extension().is_some_and(|ext| ext == "json");
            if entry.file_type().is_file() && is_json {
                found.push(entry.into_path());
            }
        }
        if found.len() == before {
            return Err(RunnerError::NoFixtures(path.clone()));
        }
    }
    // Path order, not largest first: measured on the full folder, running the big files back
    // to back makes the allocator trim and regrow its heap, doubling page faults (285k against
    // 130k) and system time, while the work queue already keeps the threads balanced.
    found.sort();
    // A file reached through two given paths is run once (equal paths are now adjacent).
    found.dedup();
    Ok(found)
}

/// Which tests and forks the options select.
struct Selection<'a> {
    fork: Option<SpecName>,
    names: Option<&'a Regex>,
}

impl Selection<'_> {
    fn test_selected(&self, name: &str) -> bool {
        self.names.is_none_or(|names| names.is_match(name))
    }

    fn fork_selected(&self, spec: &SpecName) -> bool {
        self.fork.as_ref().is_none_or(|fork| fork == spec)
    }

    /// Selected cases in `suite`.
    fn count(&self, suite: &TestSuite) -> usize {
        suite
            .0
            .iter()
            .filter(|(name, _)| self.test_selected(name))
            .flat_map(|(_, unit)| unit.post.iter())
            .filter(|(spec, _)| self.fork_selected(spec))
            .map(|(_, tests)| tests.len())
            .sum()
    }
}

/// Why a fork of the fixtures is never run, as revme decides.
fn unrunnable_fork(spec: &SpecName) -> Option<&'static str> {
    match spec {
        SpecName::Constantinople | SpecName::ByzantiumToConstantinopleAt5 => {
            Some("Constantinople never went live (replaced by ConstantinopleFix); revme skips it")
        }
        SpecName::Unknown => Some("fork unknown to revm 43"),
        _ => None,
    }
}

/// One case's coordinates, for messages and for looking the fixture up again.
struct Case<'a> {
    file: &'a Path,
    text: &'a str,
    name: &'a str,
    unit: &'a TestUnit,
    fork: &'a str,
    index: usize,
    test: &'a Test,
}

impl Case<'_> {
    fn indexes(&self) -> CaseIndexes {
        CaseIndexes {
            data: self.test.indexes.data,
            gas: self.test.indexes.gas,
            value: self.test.indexes.value,
        }
    }

    fn expected(&self) -> CaseValues {
        CaseValues {
            state_root: Some(self.test.hash),
            logs_hash: Some(self.test.logs),
            exception: self.test.expect_exception.clone(),
        }
    }

    fn failure(&self, kind: FailureKind, message: String, actual: Option<CaseValues>) -> Failure {
        Failure {
            file: self.file.to_path_buf(),
            test: Some(self.name.to_string()),
            fork: Some(self.fork.to_string()),
            indexes: Some(self.indexes()),
            kind,
            message,
            expected: Some(self.expected()),
            actual,
            divergence: None,
        }
    }

    /// The fixture's expected post state for this case (`postState`, or `state` read again
    /// from the file's text), if it has one. Only called on failure, so the re-parse is cheap.
    fn expected_post_state(&self) -> Option<AddressMap<AccountInfo>> {
        if !self.test.post_state.is_empty() {
            return Some(self.test.post_state.clone());
        }
        let root: serde_json::Value = serde_json::from_str(self.text).ok()?;
        let post = root.get(self.name)?.get("post")?.as_object()?;
        let (_, cases) = post
            .iter()
            .find(|(key, _)| canonical_fork_name(key).is_ok_and(|name| name == self.fork))?;
        let state = cases.get(self.index)?.get("state")?;
        serde_json::from_value(state.clone()).ok()
    }
}

/// Runs files and cases; shared by the worker threads.
struct Checker<'a, E: ?Sized> {
    executor: &'a E,
    selection: Selection<'a>,
    skip: &'a SkipList,
    tracker: &'a Tracker,
}

impl<E: CaseExecutor + ?Sized> Checker<'_, E> {
    fn run_file(&self, file: &Path, report: &mut Report) {
        report.files += 1;
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) => {
                let message = format!("cannot read the file: {error}");
                self.file_failed(report, file, FailureKind::UnreadableFile, message);
                return;
            }
        };
        let suite = serde_json::from_str::<TestSuite>(&text);

        if let Some(reason) = self.skip.reason_for(file) {
            // Count what would have run; a skipped file that does not even parse counts once.
            let cases = suite.map_or(1, |suite| self.selection.count(&suite));
            if cases > 0 {
                report.skipped += cases;
                report.skips.push(Skip {
                    file: file.to_path_buf(),
                    test: None,
                    fork: None,
                    cases,
                    reason: reason.to_string(),
                });
            }
            return;
        }

        let suite = match suite {
            Ok(suite) => suite,
            Err(error) => {
                let message = format!("not a valid state-test fixture: {error}");
                self.file_failed(report, file, FailureKind::UnparseableFile, message);
                return;
            }
        };

        for (name, unit) in &suite.0 {
            if !self.selection.test_selected(name) {
                continue;
            }
            // Setting a unit up runs fixture-type code that indexes and converts without
            // checks; a panic there fails the unit, not the run.
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                self.run_unit(file, &text, name, unit, report)
            }));
            if let Err(payload) = outcome {
                report.failed += 1;
                self.tracker.file_failed();
                report.failures.push(Failure {
                    test: Some(name.clone()),
                    ..Failure::of_file(
                        file.to_path_buf(),
                        FailureKind::Panic,
                        format!(
                            "panicked while setting the test up: {}",
                            panic_text(&*payload)
                        ),
                    )
                });
            }
        }
    }

    fn file_failed(&self, report: &mut Report, file: &Path, kind: FailureKind, message: String) {
        report.failed += 1;
        report
            .failures
            .push(Failure::of_file(file.to_path_buf(), kind, message));
        self.tracker.file_failed();
    }

    fn run_unit(&self, file: &Path, text: &str, name: &str, unit: &TestUnit, report: &mut Report) {
        // Built once per unit, cloned per case (the EVM mutates it).
        let mut prestate: Option<CacheState> = None;
        let mut cfg = CfgEnv::default();
        cfg.chain_id = unit
            .env
            .current_chain_id
            .unwrap_or(U256::ONE)
            .try_into()
            .unwrap_or(1);

        for (spec, tests) in &unit.post {
            if !self.selection.fork_selected(spec) {
                continue;
            }
            let fork = format!("{spec:?}");
            if let Some(reason) = unrunnable_fork(spec) {
                if !tests.is_empty() {
                    report.skipped += tests.len();
                    report.skips.push(Skip {
                        file: file.to_path_buf(),
                        test: Some(name.to_string()),
                        fork: Some(fork),
                        cases: tests.len(),
                        reason: reason.to_string(),
                    });
                }
                continue;
            }

            cfg.set_spec_and_mainnet_gas_params(spec.to_spec_id());
            // EIP-7691 raised the blob limit to 9 in Prague; Osaka's EIP-7594 caps a tx at 6.
            let prague_only = cfg.spec().is_enabled_in(SpecId::PRAGUE)
                && !cfg.spec().is_enabled_in(SpecId::OSAKA);
            cfg.set_max_blobs_per_tx(if prague_only { 9 } else { 6 });
            let block = unit.block_env(&mut cfg);
            let prestate = prestate.get_or_insert_with(|| unit.state());

            for (index, test) in tests.iter().enumerate() {
                let case = Case {
                    file,
                    text,
                    name,
                    unit,
                    fork: &fork,
                    index,
                    test,
                };
                match self.run_case(&case, &cfg, &block, prestate) {
                    None => {
                        report.passed += 1;
                        self.tracker.case_done(false);
                    }
                    Some(failure) => {
                        report.failed += 1;
                        report.failures.push(failure);
                        self.tracker.case_done(true);
                    }
                }
            }
        }
    }

    /// Runs one case; `None` when it passes.
    fn run_case(
        &self,
        case: &Case<'_>,
        cfg: &CfgEnv,
        block: &BlockEnv,
        prestate: &CacheState,
    ) -> Option<Failure> {
        let test = case.test;
        let parts = &case.unit.transaction;
        let indexes = case.indexes();
        // `Test::tx_env` indexes these without bounds checks.
        if indexes.data >= parts.data.len()
            || indexes.gas >= parts.gas_limit.len()
            || indexes.value >= parts.value.len()
        {
            let message = format!(
                "indexes out of range (the transaction has {} data, {} gas limits, {} values)",
                parts.data.len(),
                parts.gas_limit.len(),
                parts.value.len()
            );
            return Some(case.failure(FailureKind::InvalidCase, message, None));
        }
        let tx = match test.tx_env(case.unit) {
            Ok(tx) => tx,
            // A transaction that cannot even be built is the expected exception.
            Err(_) if test.expect_exception.is_some() => return None,
            Err(error) => {
                let message = format!("cannot build the transaction: {error}");
                return Some(case.failure(FailureKind::InvalidCase, message, None));
            }
        };

        let mut state = State::builder()
            .with_cached_prestate(prestate.clone())
            .build();
        let env = CaseEnv {
            cfg,
            block,
            tx: &tx,
        };
        let result =
            match catch_unwind(AssertUnwindSafe(|| self.executor.execute(&env, &mut state))) {
                Ok(result) => result,
                Err(payload) => {
                    let message = format!("the EVM panicked: {}", panic_text(&*payload));
                    return Some(case.failure(FailureKind::Panic, message, None));
                }
            };

        let executed = match (result, &test.expect_exception) {
            (Err(_), Some(_)) => return None,
            (Err(error), None) => {
                let actual = CaseValues {
                    exception: Some(error.to_string()),
                    ..CaseValues::default()
                };
                let message = format!("unexpected exception: {error}");
                return Some(case.failure(FailureKind::Exception, message, Some(actual)));
            }
            (Ok(executed), _) => executed,
        };

        let actual = CaseValues {
            state_root: Some(state_root(state.cache.trie_account())),
            logs_hash: Some(logs_hash(executed.logs())),
            exception: None,
        };
        if let Some(expected) = &test.expect_exception {
            let message = format!(
                "expected exception `{expected}`, but the transaction ran ({})",
                describe(&executed)
            );
            return Some(case.failure(FailureKind::Exception, message, Some(actual)));
        }
        if let (Some(want), Some(got)) = (&case.unit.out, executed.output()) {
            if want != got {
                let message = format!("output {got} differs from the expected {want}");
                return Some(case.failure(FailureKind::Output, message, Some(actual)));
            }
        }
        if actual.logs_hash != Some(test.logs) {
            let message = format!(
                "logs hash {} differs from the expected {} ({})",
                actual.logs_hash.unwrap_or_default(),
                test.logs,
                describe(&executed)
            );
            return Some(case.failure(FailureKind::LogsHash, message, Some(actual)));
        }
        if actual.state_root != Some(test.hash) {
            let message = format!(
                "state root {} differs from the expected {} ({})",
                actual.state_root.unwrap_or_default(),
                test.hash,
                describe(&executed)
            );
            let divergence = case
                .expected_post_state()
                .and_then(|expected| first_divergence(&expected, state.cache.trie_account()));
            return Some(Failure {
                divergence,
                ..case.failure(FailureKind::StateRoot, message, Some(actual))
            });
        }
        None
    }
}

/// A short account of how the transaction ended.
fn describe(result: &ExecutionResult<HaltReason>) -> String {
    let gas_used = result.tx_gas_used();
    match result {
        ExecutionResult::Success { reason, .. } => {
            format!("success: {reason:?}, gas used {gas_used}")
        }
        ExecutionResult::Revert { .. } => format!("reverted, gas used {gas_used}"),
        ExecutionResult::Halt { reason, .. } => format!("halted: {reason:?}, gas used {gas_used}"),
    }
}

/// The message of a panic payload.
fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_string())
}
