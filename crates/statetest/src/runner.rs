//! The run: finding fixture files, sharing them among worker threads, checking every case.

use crate::{
    divergence::first_divergence,
    options::{canonical_fork_name, parse_fork},
    progress::Tracker,
    roots::{logs_hash, state_root},
    CaseEnv, CaseExecutor, CaseIndexes, CaseOutcome, CaseValues, Failure, FailureKind, FileTime,
    IndexFilter, OutcomeSink, PathList, Report, RunnerError, RunnerOptions, Skip, SkipList,
};
use regex::Regex;
use revm::{
    context::{block::BlockEnv, cfg::CfgEnv},
    context_interface::result::{ExecutionResult, HaltReason},
    database::{CacheState, State},
    primitives::{hardfork::SpecId, AddressMap, B256, U256},
    statetest_types::{AccountInfo, SpecName, Test, TestSuite, TestUnit},
};
use std::{
    any::Any,
    collections::BTreeMap,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex, PoisonError,
    },
    time::Instant,
};
use walkdir::WalkDir;

/// The largest fixture file read (the largest in ethereum/tests is a few megabytes).
pub const MAX_FIXTURE_BYTES: u64 = 256 << 20;

/// Runs every selected case of the fixtures in `options.paths` with `executor`.
///
/// Files are shared among `options.threads` workers through a queue: first the files of
/// `options.heavy_first` (in that list's order), then the rest in path order. Each worker
/// takes the next file when it finishes one, so the slowest file starts at once and runs
/// alongside all the others. A failing case, or a file that cannot be read or parsed, is
/// recorded in the [`Report`] and the run goes on (unless `fail_fast`).
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
    run_inner(options, executor, None)
}

/// [`run`], handing every case's [`CaseOutcome`] to `sink` as it is known (in the order
/// [`OutcomeSink`] describes).
///
/// ```no_run
/// use shm_statetest::{run_observed, CaseOutcome, MainnetExecutor, RunnerOptions};
/// use std::ops::ControlFlow;
/// let print = |outcome: &CaseOutcome| {
///     eprintln!("{}", outcome.revme_json());
///     ControlFlow::Continue(())
/// };
/// let report = run_observed(&RunnerOptions::new(["add11.json"]), &MainnetExecutor, &print)?;
/// # Ok::<(), shm_statetest::RunnerError>(())
/// ```
pub fn run_observed<E: CaseExecutor + ?Sized>(
    options: &RunnerOptions,
    executor: &E,
    sink: &dyn OutcomeSink,
) -> Result<Report, RunnerError> {
    run_inner(options, executor, Some(sink))
}

fn run_inner<E: CaseExecutor + ?Sized>(
    options: &RunnerOptions,
    executor: &E,
    sink: Option<&dyn OutcomeSink>,
) -> Result<Report, RunnerError> {
    let started = Instant::now();
    if options.paths.is_empty() {
        return Err(RunnerError::NoPaths);
    }
    if options.threads == Some(0) {
        return Err(RunnerError::ZeroThreads);
    }
    let fork = options.fork.as_deref().map(parse_fork).transpose()?;
    let files = queue(find_fixture_files(&options.paths)?, &options.heavy_first);

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
            indexes: options.indexes,
        },
        skip: &options.skip,
        tracker: &tracker,
    };
    let outcomes = sink.map(|sink| Outcomes {
        sink,
        direct: threads == 1,
        ordered: Mutex::new((0, BTreeMap::new())),
        stopped: AtomicBool::new(false),
    });
    let next_file = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let merged = Mutex::new(Report::default());

    pool.scope(|scope| {
        for _ in 0..threads {
            let (checker, tracker, files, next_file, stop, merged, outcomes) = (
                &checker,
                &tracker,
                &files,
                &next_file,
                &stop,
                &merged,
                outcomes.as_ref(),
            );
            scope.spawn(move |_| {
                let mut local = Report::default();
                loop {
                    if (options.fail_fast && stop.load(Ordering::Relaxed))
                        || outcomes.is_some_and(Outcomes::stopped)
                    {
                        break;
                    }
                    let index = next_file.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(index) else {
                        break;
                    };
                    let failed_before = local.failed;
                    let file_started = Instant::now();
                    let mut emitter = Emitter::new(outcomes);
                    checker.run_file(file, &mut local, &mut emitter);
                    if let Some(outcomes) = outcomes {
                        outcomes.file_done(index, emitter.buffered);
                    }
                    if options.slowest > 0 {
                        local.slowest.push(FileTime {
                            file: file.clone(),
                            elapsed: file_started.elapsed(),
                        });
                    }
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
    report.sort(options.slowest);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The run queue: the files of `heavy_first` first, in that list's order (heaviest first),
/// then the others in path order.
///
/// Only the known-slow files move: measured on the full folder, running all big files back
/// to back makes the allocator trim and regrow its heap, doubling page faults (285k against
/// 130k) and system time, while the work queue already keeps the threads balanced.
fn queue(files: Vec<PathBuf>, heavy_first: &PathList) -> Vec<PathBuf> {
    let mut heavy: Vec<(usize, PathBuf)> = Vec::new();
    let mut rest: Vec<PathBuf> = Vec::new();
    for file in files {
        match heavy_first.position(&file) {
            Some(position) => heavy.push((position, file)),
            None => rest.push(file),
        }
    }
    heavy.sort();
    heavy
        .into_iter()
        .map(|(_, file)| file)
        .chain(rest)
        .collect()
}

/// Hands outcomes to the sink in queue order: at once with one thread, a file at a time
/// (once every earlier file is done) with several.
struct Outcomes<'a> {
    sink: &'a dyn OutcomeSink,
    direct: bool,
    /// The next file index to deliver, and the finished files waiting for it.
    ordered: Mutex<(usize, BTreeMap<usize, Vec<CaseOutcome>>)>,
    stopped: AtomicBool,
}

impl Outcomes<'_> {
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    fn deliver(&self, outcome: &CaseOutcome) {
        if !self.stopped() && self.sink.outcome(outcome).is_break() {
            self.stopped.store(true, Ordering::Relaxed);
        }
    }

    /// File `index` of the queue is done (its outcomes already delivered when `direct`).
    fn file_done(&self, index: usize, outcomes: Vec<CaseOutcome>) {
        if self.direct {
            return;
        }
        let mut ordered = self.ordered.lock().unwrap_or_else(PoisonError::into_inner);
        let (next, waiting) = &mut *ordered;
        waiting.insert(index, outcomes);
        while let Some(ready) = waiting.remove(next) {
            for outcome in &ready {
                self.deliver(outcome);
            }
            *next += 1;
        }
    }
}

/// Where a worker puts the outcomes of the file it runs.
struct Emitter<'a> {
    outcomes: Option<&'a Outcomes<'a>>,
    buffered: Vec<CaseOutcome>,
}

impl<'a> Emitter<'a> {
    fn new(outcomes: Option<&'a Outcomes<'a>>) -> Self {
        Self {
            outcomes,
            buffered: Vec::new(),
        }
    }

    fn wanted(&self) -> bool {
        self.outcomes.is_some()
    }

    fn emit(&mut self, outcome: CaseOutcome) {
        match self.outcomes {
            Some(outcomes) if outcomes.direct => outcomes.deliver(&outcome),
            Some(_) => self.buffered.push(outcome),
            None => {}
        }
    }
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
    found.sort();
    // A file reached through two given paths is run once (equal paths are now adjacent).
    found.dedup();
    Ok(found)
}

/// Which tests, forks and cases the options select.
struct Selection<'a> {
    fork: Option<SpecName>,
    names: Option<&'a Regex>,
    indexes: IndexFilter,
}

impl Selection<'_> {
    fn test_selected(&self, name: &str) -> bool {
        self.names.is_none_or(|names| names.is_match(name))
    }

    fn fork_selected(&self, spec: &SpecName) -> bool {
        self.fork.as_ref().is_none_or(|fork| fork == spec)
    }

    fn case_selected(&self, test: &Test, position: usize) -> bool {
        self.indexes.selects(case_indexes(test), position)
    }

    /// Selected cases in `suite`.
    fn count(&self, suite: &TestSuite) -> usize {
        suite
            .0
            .iter()
            .filter(|(name, _)| self.test_selected(name))
            .flat_map(|(_, unit)| unit.post.iter())
            .filter(|(spec, _)| self.fork_selected(spec))
            .map(|(_, tests)| {
                tests
                    .iter()
                    .enumerate()
                    .filter(|(position, test)| self.case_selected(test, *position))
                    .count()
            })
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
    spec: SpecId,
    index: usize,
    test: &'a Test,
}

fn case_indexes(test: &Test) -> CaseIndexes {
    CaseIndexes {
        data: test.indexes.data,
        gas: test.indexes.gas,
        value: test.indexes.value,
    }
}

impl Case<'_> {
    fn indexes(&self) -> CaseIndexes {
        case_indexes(self.test)
    }

    fn expected(&self) -> CaseValues {
        CaseValues {
            state_root: Some(self.test.hash),
            logs_hash: Some(self.test.logs),
            exception: self.test.expect_exception.clone(),
        }
    }

    /// The case's outcome: failed with `error` unless it is empty.
    fn outcome(
        &self,
        state_root: B256,
        logs_root: B256,
        executed: Option<&ExecutionResult<HaltReason>>,
        error: &str,
        evm_result: String,
    ) -> CaseOutcome {
        CaseOutcome {
            file: self.file.to_path_buf(),
            test: self.name.to_string(),
            spec: self.spec,
            fork: self.fork.to_string(),
            indexes: self.indexes(),
            state_root,
            logs_root,
            output: executed
                .and_then(|result| result.output().cloned())
                .unwrap_or_default(),
            gas_used: executed.map_or(0, ExecutionResult::tx_gas_used),
            pass: error.is_empty(),
            error: (!error.is_empty()).then(|| error.to_string()),
            evm_result,
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
    fn run_file(&self, file: &Path, report: &mut Report, emitter: &mut Emitter<'_>) {
        report.files += 1;
        let text = match crate::read_text_capped(file, MAX_FIXTURE_BYTES) {
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
                self.run_unit(file, &text, name, unit, report, emitter)
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

    fn run_unit(
        &self,
        file: &Path,
        text: &str,
        name: &str,
        unit: &TestUnit,
        report: &mut Report,
        emitter: &mut Emitter<'_>,
    ) {
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
            let selected =
                |(position, test): &(usize, &Test)| self.selection.case_selected(test, *position);
            let fork = format!("{spec:?}");
            if let Some(reason) = unrunnable_fork(spec) {
                let cases = tests.iter().enumerate().filter(selected).count();
                if cases > 0 {
                    report.skipped += cases;
                    report.skips.push(Skip {
                        file: file.to_path_buf(),
                        test: Some(name.to_string()),
                        fork: Some(fork),
                        cases,
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

            for (index, test) in tests.iter().enumerate().filter(selected) {
                let prestate = prestate.get_or_insert_with(|| unit.state());
                let case = Case {
                    file,
                    text,
                    name,
                    unit,
                    fork: &fork,
                    spec: spec.to_spec_id(),
                    index,
                    test,
                };
                let checked = self.run_case(&case, &cfg, &block, prestate, emitter.wanted());
                if let Some(outcome) = checked.outcome {
                    emitter.emit(outcome);
                }
                match checked.failure {
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

    /// Runs one case; with `want_outcome`, also describes it as revme's `--json-outcome` does.
    fn run_case(
        &self,
        case: &Case<'_>,
        cfg: &CfgEnv,
        block: &BlockEnv,
        prestate: &CacheState,
        want_outcome: bool,
    ) -> Checked {
        let test = case.test;
        let parts = &case.unit.transaction;
        let indexes = case.indexes();
        // An outcome for a case that failed before (or instead of) executing: the state is
        // the prestate.
        let not_run = |failure: Failure| {
            let outcome = want_outcome.then(|| {
                let root = state_root(prestate.trie_account());
                case.outcome(
                    root,
                    logs_hash(&[]),
                    None,
                    &failure.message,
                    failure.message.clone(),
                )
            });
            Checked::failed(failure, outcome)
        };
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
            return not_run(case.failure(FailureKind::InvalidCase, message, None));
        }
        let tx = match test.tx_env(case.unit) {
            Ok(tx) => tx,
            // A transaction that cannot even be built is the expected exception (revme
            // prints no outcome for it either).
            Err(_) if test.expect_exception.is_some() => return Checked::passed(None),
            Err(error) => {
                let message = format!("cannot build the transaction: {error}");
                return not_run(case.failure(FailureKind::InvalidCase, message, None));
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
                    return not_run(case.failure(FailureKind::Panic, message, None));
                }
            };

        let executed = match (result, &test.expect_exception) {
            (Err(error), expected) => {
                let outcome = |error_msg: Option<String>| {
                    want_outcome.then(|| {
                        let root = state_root(state.cache.trie_account());
                        let pass = error_msg.is_none();
                        let mut outcome =
                            case.outcome(root, logs_hash(&[]), None, "", error.to_string());
                        outcome.pass = pass;
                        outcome.error = error_msg;
                        outcome
                    })
                };
                if expected.is_some() {
                    return Checked::passed(outcome(None));
                }
                let revme_message = format!(
                    "unexpected exception: got {:?}, expected {:?}",
                    Some(error.to_string()),
                    None::<String>
                );
                let outcome = outcome(Some(revme_message));
                let actual = CaseValues {
                    exception: Some(error.to_string()),
                    ..CaseValues::default()
                };
                let message = format!("unexpected exception: {error}");
                return Checked::failed(
                    case.failure(FailureKind::Exception, message, Some(actual)),
                    outcome,
                );
            }
            (Ok(executed), _) => executed,
        };

        let actual = CaseValues {
            state_root: Some(state_root(state.cache.trie_account())),
            logs_hash: Some(logs_hash(executed.logs())),
            exception: None,
        };
        let outcome = |revme_message: Option<String>| {
            want_outcome.then(|| {
                let mut outcome = case.outcome(
                    actual.state_root.unwrap_or_default(),
                    actual.logs_hash.unwrap_or_default(),
                    Some(&executed),
                    "",
                    evm_result(&executed),
                );
                outcome.pass = revme_message.is_none();
                outcome.error = revme_message;
                outcome
            })
        };
        if let Some(expected) = &test.expect_exception {
            let revme_message = format!(
                "unexpected exception: got {:?}, expected {:?}",
                None::<String>,
                Some(expected)
            );
            let message = format!(
                "expected exception `{expected}`, but the transaction ran ({})",
                describe(&executed)
            );
            return Checked::failed(
                case.failure(FailureKind::Exception, message, Some(actual.clone())),
                outcome(Some(revme_message)),
            );
        }
        if let (Some(want), Some(got)) = (&case.unit.out, executed.output()) {
            if want != got {
                let revme_message = format!(
                    "unexpected output: got {:?}, expected {:?}",
                    Some(got),
                    Some(want)
                );
                let message = format!("output {got} differs from the expected {want}");
                return Checked::failed(
                    case.failure(FailureKind::Output, message, Some(actual.clone())),
                    outcome(Some(revme_message)),
                );
            }
        }
        let logs = actual.logs_hash.unwrap_or_default();
        if logs != test.logs {
            let revme_message = format!("logs root mismatch: got {logs}, expected {}", test.logs);
            let message = format!(
                "logs hash {logs} differs from the expected {} ({})",
                test.logs,
                describe(&executed)
            );
            return Checked::failed(
                case.failure(FailureKind::LogsHash, message, Some(actual.clone())),
                outcome(Some(revme_message)),
            );
        }
        let root = actual.state_root.unwrap_or_default();
        if root != test.hash {
            let revme_message = format!("state root mismatch: got {root}, expected {}", test.hash);
            let message = format!(
                "state root {root} differs from the expected {} ({})",
                test.hash,
                describe(&executed)
            );
            let divergence = case
                .expected_post_state()
                .and_then(|expected| first_divergence(&expected, state.cache.trie_account()));
            let outcome = outcome(Some(revme_message));
            return Checked::failed(
                Failure {
                    divergence,
                    ..case.failure(FailureKind::StateRoot, message, Some(actual))
                },
                outcome,
            );
        }
        Checked::passed(outcome(None))
    }
}

/// What checking one case found.
struct Checked {
    failure: Option<Failure>,
    outcome: Option<CaseOutcome>,
}

impl Checked {
    fn passed(outcome: Option<CaseOutcome>) -> Self {
        Self {
            failure: None,
            outcome,
        }
    }

    fn failed(failure: Failure, outcome: Option<CaseOutcome>) -> Self {
        Self {
            failure: Some(failure),
            outcome,
        }
    }
}

/// How the transaction ended, worded as revme's `evmResult`.
fn evm_result(result: &ExecutionResult<HaltReason>) -> String {
    match result {
        ExecutionResult::Success { reason, .. } => format!("Success: {reason:?}"),
        ExecutionResult::Revert { .. } => "Revert".to_string(),
        ExecutionResult::Halt { reason, .. } => format!("Halt: {reason:?}"),
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
