//! The run: fixture files shared among worker threads, every selected test checked.

use crate::{
    chain::{run_test, BlockExecutors},
    fixture::FixtureFile,
    report::{Failure, FailureKind, Report, Skip},
};
use regex::Regex;
use shm_statetest::{find_fixture_files, Progress, RunnerError, SkipList, Tracker};
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

/// What [`run`] runs.
///
/// ```
/// let options = shm_blocktest::BlocktestOptions::new(["BlockchainTests"]);
/// assert!(options.name_filter.is_none() && options.threads.is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct BlocktestOptions {
    /// Fixture files, or folders searched recursively for `.json` files.
    pub paths: Vec<PathBuf>,
    /// Run only the tests whose name matches.
    pub name_filter: Option<Regex>,
    /// How progress is shown on stderr.
    pub progress: Progress,
    /// Files (or folders) not to run, with reasons.
    pub skip: SkipList,
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Stop taking new files after the first failure.
    pub fail_fast: bool,
}

impl BlocktestOptions {
    /// Options running `paths`, everything else at its default.
    pub fn new<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Self {
        Self {
            paths: paths.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// Runs every selected test of the fixtures in `options.paths` with block executors from
/// `executors` (alloy-evm's `EthBlockExecutor`, over `EthEvmFactory` or `ShmEvmFactory`).
///
/// # Errors
/// Usage errors only: no path, a missing path, a folder without fixtures, zero threads.
/// Failing tests and unreadable files are in the [`Report`].
pub fn run<X: BlockExecutors + ?Sized>(
    options: &BlocktestOptions,
    executors: &X,
) -> Result<Report, RunnerError> {
    let started = Instant::now();
    if options.paths.is_empty() {
        return Err(RunnerError::NoPaths);
    }
    if options.threads == Some(0) {
        return Err(RunnerError::ZeroThreads);
    }
    let files = find_fixture_files(&options.paths)?;
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(files.len())
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|index| format!("blocktest-{index}"))
        .build()
        .map_err(|error| RunnerError::ThreadPool(error.to_string()))?;
    let tracker = Tracker::new(options.progress, files.len(), "blocktest", "tests");
    let next_file = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let merged = Mutex::new(Report::default());

    pool.scope(|scope| {
        for _ in 0..threads {
            let (tracker, files, next_file, stop, merged) =
                (&tracker, &files, &next_file, &stop, &merged);
            scope.spawn(move |_| {
                let mut local = Report::default();
                while !(options.fail_fast && stop.load(Ordering::Relaxed)) {
                    let Some(file) = files.get(next_file.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let failed_before = local.failed;
                    run_file(file, options, executors, tracker, &mut local);
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

fn run_file<X: BlockExecutors + ?Sized>(
    file: &Path,
    options: &BlocktestOptions,
    executors: &X,
    tracker: &Tracker,
    report: &mut Report,
) {
    report.files += 1;
    let file_failed = |report: &mut Report, kind, message: String| {
        report.failed += 1;
        report.failures.push(Failure {
            file: file.to_path_buf(),
            test: None,
            block: None,
            kind,
            message,
        });
        tracker.file_failed();
    };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            return file_failed(
                report,
                FailureKind::UnreadableFile,
                format!("cannot read: {error}"),
            )
        }
    };
    let parsed = serde_json::from_str::<FixtureFile>(&text);
    let selected = |name: &str| {
        options
            .name_filter
            .as_ref()
            .is_none_or(|re| re.is_match(name))
    };
    if let Some(reason) = options.skip.reason_for(file) {
        let tests = parsed.map_or(1, |tests| {
            tests.keys().filter(|name| selected(name)).count()
        });
        if tests > 0 {
            report.skipped += tests;
            report.skips.push(Skip {
                file: file.to_path_buf(),
                tests,
                reason: reason.to_string(),
            });
        }
        return;
    }
    let tests = match parsed {
        Ok(tests) => tests,
        Err(error) => {
            return file_failed(
                report,
                FailureKind::UnparseableFile,
                format!("not a blockchain-test fixture: {error}"),
            )
        }
    };
    for (name, test) in &tests {
        if !selected(name) {
            continue;
        }
        report.blocks += test.blocks.len();
        let outcome = catch_unwind(AssertUnwindSafe(|| run_test(executors, test))).unwrap_or_else(
            |payload| {
                Err(crate::chain::TestFailure {
                    kind: FailureKind::Panic,
                    block: None,
                    message: format!("panicked: {}", panic_text(&*payload)),
                })
            },
        );
        match outcome {
            Ok(()) => {
                report.passed += 1;
                tracker.case_done(false);
            }
            Err(failure) => {
                report.failed += 1;
                report.failures.push(Failure {
                    file: file.to_path_buf(),
                    test: Some(name.clone()),
                    block: failure.block,
                    kind: failure.kind,
                    message: failure.message,
                });
                tracker.case_done(true);
            }
        }
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_string())
}
