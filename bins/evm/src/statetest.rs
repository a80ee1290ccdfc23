//! `evm statetest`: runs the Ethereum state tests (GeneralStateTests fixtures) and reports
//! `N passed, N failed[, N skipped]`; per-case outcomes in revme's `--json-outcome` form,
//! index filters in revme's and geth's spelling, file names from standard input (geth's
//! batch mode), traces, and a traced re-run of the first failure.

use crate::{output, TraceArgs};
use shm_evm::{SharedMemoryExecutor, TraceOptions, TracingExecutor};
use shm_statetest::{
    run_observed, CaseOutcome, Failure, IndexFilter, MainnetExecutor, PathList, Progress, Report,
    RunnerError, RunnerOptions, SkipList,
};
use std::{
    collections::BTreeMap,
    io::{self, BufRead, BufWriter, Write},
    ops::ControlFlow,
    path::PathBuf,
    process::ExitCode,
    sync::{Mutex, PoisonError},
};

/// The checked-in skip file: fixtures invalid for revm 43.
const DEFAULT_SKIP_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/statetest-skip.txt"
);

/// Fixtures that expect 0xE0–0xE4 to be undefined, skipped when shared memory is on.
const SHARED_MEMORY_SKIP_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/statetest-skip-shm.txt"
);

/// Exit code when a test failed.
const EXIT_TEST_FAILURE: u8 = 1;
/// Exit code for usage errors: a missing path, an unknown fork, a bad regex or skip file.
const EXIT_USAGE: u8 = 2;
/// Exit code when standard output, the outcomes or a trace could not be written.
const EXIT_OUTPUT: u8 = 6;

/// The longest file name read from standard input in batch mode (Linux's PATH_MAX).
const MAX_PATH_LINE: u64 = 4096;

/// Steps of the first failure's re-run written at most: the trace is for a person to
/// read, and a failing loop could otherwise write billions of lines.
const RERUN_STEP_LIMIT: u64 = 100_000;

/// Arguments of `evm statetest`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StatetestArgs {
    /// Fixture files, or folders searched recursively for `.json` files. With none, file
    /// names are read from standard input, one per line, and each is run as it arrives
    /// (geth's batch mode).
    #[arg(num_args = 0..)]
    pub(crate) paths: Vec<PathBuf>,
    /// Run only this fork, by its fixture name (Cancun, Shanghai, Prague, ...).
    #[arg(long, visible_alias = "statetest.fork", value_name = "NAME")]
    pub(crate) fork: Option<String>,
    /// Run only the tests whose name matches this regular expression.
    #[arg(long = "run", value_name = "REGEX")]
    pub(crate) name_filter: Option<String>,
    /// Run only the cases with this data index (revme's `d`).
    #[arg(short = 'd', long = "data", value_name = "N")]
    pub(crate) data_index: Option<usize>,
    /// Run only the cases with this gas-limit index (revme's `g`).
    #[arg(short = 'g', long = "gas", value_name = "N")]
    pub(crate) gas_index: Option<usize>,
    /// Run only the cases with this value index (revme's `v`).
    #[arg(short = 'v', long = "value", value_name = "N")]
    pub(crate) value_index: Option<usize>,
    /// Run only the case at this position in each selected fork's list (geth's index).
    #[arg(long = "statetest.index", value_name = "N")]
    pub(crate) position: Option<usize>,
    /// Print the whole report as JSON on stdout (the summary line then goes to stderr).
    #[arg(long)]
    pub(crate) json: bool,
    /// Print one JSON line per case on stderr, in the form of `revme statetest
    /// --json-outcome`: stateRoot, logsRoot, output, gasUsed, pass, errorMsg, evmResult,
    /// postLogsHash, fork, test, d, g, v.
    #[arg(short = 'o', long)]
    pub(crate) json_outcome: bool,
    #[command(flatten)]
    pub(crate) trace: TraceArgs,
    /// Skip file (`<path relative to GeneralStateTests>  # reason` per line); by default the
    /// checked-in `tests/statetest-skip.txt`.
    #[arg(long, value_name = "PATH")]
    pub(crate) skip_file: Option<PathBuf>,
    /// Skip no file at all (neither the skip file nor, with `--shm`, the shared-memory one).
    #[arg(long, conflicts_with = "skip_file")]
    pub(crate) no_skip_file: bool,
    /// Show no progress on stderr (never shown with --json-outcome or a trace).
    #[arg(long)]
    pub(crate) no_progress: bool,
    /// Worker threads (default: one per core; one with a trace).
    #[arg(long, short = 'j', value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Stop taking new files after the first failure.
    #[arg(long)]
    pub(crate) fail_fast: bool,
    /// Print the N slowest files and their times after the summary.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) slowest: usize,
    /// Do not re-run the first failing case with a trace on stderr.
    #[arg(long)]
    pub(crate) no_rerun: bool,
    /// Run with shared memory on, with a preset (`production` when none is named); the
    /// fixtures listed in `tests/statetest-skip-shm.txt` are skipped then.
    #[arg(long, value_name = "PRESET", num_args = 0..=1, default_missing_value = "production")]
    pub(crate) shm: Option<String>,
}

/// The EVM the cases run on.
enum Engine {
    Stock,
    Shared(SharedMemoryExecutor),
}

/// Why a command ended early.
enum Stop {
    /// A usage error, already worded.
    Usage(String),
    /// Standard output, the outcomes or a trace could not be written.
    Output(String),
}

impl Stop {
    fn exit(self) -> ExitCode {
        match self {
            Stop::Usage(message) => {
                output::eprintln(&format!("error: {message}"));
                ExitCode::from(EXIT_USAGE)
            }
            Stop::Output(message) => {
                output::eprintln(&format!("error: {message}"));
                ExitCode::from(EXIT_OUTPUT)
            }
        }
    }
}

/// Runs `evm statetest`. Exit code 0 when nothing failed, 1 when a test failed, 2 on a usage
/// error (reported in one line on stderr), 6 when the output could not be written.
pub(crate) fn run(args: StatetestArgs) -> ExitCode {
    let (engine, extra_skip) = match engine(&args) {
        Ok(engine) => engine,
        Err(stop) => return stop.exit(),
    };
    let options = match options_from(&args, extra_skip) {
        Ok(options) => options,
        Err(stop) => return stop.exit(),
    };
    if args.paths.is_empty() {
        return batch(&args, &engine, options);
    }
    match run_paths(&args, &engine, &options, args.paths.clone()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_TEST_FAILURE),
        Err(stop) => stop.exit(),
    }
}

fn engine(args: &StatetestArgs) -> Result<(Engine, SkipList), Stop> {
    let Some(preset) = &args.shm else {
        return Ok((Engine::Stock, SkipList::new()));
    };
    let usage = |message: String| Stop::Usage(format!("shm: {message}"));
    let config = preset.parse().map_err(|error| usage(format!("{error}")))?;
    let executor = SharedMemoryExecutor::new(config).map_err(|error| usage(error.to_string()))?;
    let skip = if args.no_skip_file {
        SkipList::new()
    } else {
        SkipList::load(SHARED_MEMORY_SKIP_FILE).map_err(|error| Stop::Usage(error.to_string()))?
    };
    Ok((Engine::Shared(executor), skip))
}

/// Geth's batch mode: file names on standard input, one per line, each run as it arrives.
/// A name that cannot be run is reported on stderr and the next one is read.
fn batch(args: &StatetestArgs, engine: &Engine, options: RunnerOptions) -> ExitCode {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut worst = 0u8;
    loop {
        let line = match next_line(&mut input) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(stop) => return stop.exit(),
        };
        if line.as_os_str().is_empty() {
            continue;
        }
        let code = match run_paths(args, engine, &options, vec![line]) {
            Ok(true) => 0,
            Ok(false) => EXIT_TEST_FAILURE,
            Err(Stop::Usage(message)) => {
                output::eprintln(&format!("error: {message}"));
                EXIT_USAGE
            }
            Err(stop @ Stop::Output(_)) => return stop.exit(),
        };
        worst = worst.max(code);
    }
    ExitCode::from(worst)
}

/// The next file name on standard input (`None` at its end), without its line break.
fn next_line(input: &mut impl BufRead) -> Result<Option<PathBuf>, Stop> {
    use std::os::unix::ffi::OsStrExt;
    let mut bytes = Vec::new();
    let read = io::Read::take(input, MAX_PATH_LINE + 1)
        .read_until(b'\n', &mut bytes)
        .map_err(|error| Stop::Usage(format!("cannot read standard input: {error}")))?;
    if read == 0 {
        return Ok(None);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    } else if bytes.len() as u64 > MAX_PATH_LINE {
        return Err(Stop::Usage(format!(
            "standard input: a line longer than {MAX_PATH_LINE} bytes is no file name"
        )));
    }
    Ok(Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))))
}

/// Runs `paths`, prints the report, and re-runs the first failure with a trace. `Ok(true)`
/// when nothing failed.
fn run_paths(
    args: &StatetestArgs,
    engine: &Engine,
    options: &RunnerOptions,
    paths: Vec<PathBuf>,
) -> Result<bool, Stop> {
    let options = RunnerOptions {
        paths,
        ..options.clone()
    };
    let trace = args.trace.enabled().then(|| TraceOptions {
        summary: false,
        ..args.trace.options()
    });
    let outcome_sink = args.json_outcome.then(OutcomeLines::default);
    let sink: &dyn shm_statetest::OutcomeSink = match &outcome_sink {
        Some(lines) => lines,
        None => &|_: &CaseOutcome| ControlFlow::Continue(()),
    };
    let report = execute(&options, engine, trace, sink)?;
    if let Some(lines) = outcome_sink {
        if let Some(error) = lines
            .error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(Stop::Output(format!("cannot write the outcomes: {error}")));
        }
    }
    print_report(&report, args.json)
        .map_err(|error| Stop::Output(format!("cannot write to standard output: {error}")))?;
    let rerun = !(args.no_rerun || args.json_outcome || args.json || args.trace.enabled());
    if rerun {
        if let Some(failure) = report.failures.iter().find(|f| f.indexes.is_some()) {
            rerun_with_trace(failure, engine, args.trace.options())?;
        }
    }
    Ok(report.is_success())
}

/// One run over `engine`, traced when `trace` is set.
fn execute(
    options: &RunnerOptions,
    engine: &Engine,
    trace: Option<TraceOptions>,
    sink: &dyn shm_statetest::OutcomeSink,
) -> Result<Report, Stop> {
    let usage = |error: RunnerError| Stop::Usage(error.to_string());
    let Some(trace) = trace else {
        return match engine {
            Engine::Stock => run_observed(options, &MainnetExecutor, sink).map_err(usage),
            Engine::Shared(executor) => run_observed(options, executor, sink).map_err(usage),
        };
    };
    let out = BufWriter::new(io::stderr());
    let tracing = match engine {
        Engine::Stock => TracingExecutor::stock(out, trace),
        Engine::Shared(executor) => TracingExecutor::shared(executor, out, trace),
    };
    let report = run_observed(options, &tracing, sink).map_err(usage)?;
    check_trace(&tracing)?;
    Ok(report)
}

fn check_trace<W: Write + Send>(tracing: &TracingExecutor<W>) -> Result<(), Stop> {
    match tracing.take_error() {
        Some(error) => Err(Stop::Output(format!("cannot write the trace: {error}"))),
        None => Ok(()),
    }
}

/// Runs the case of `failure` again, alone, with an EIP-3155 trace on stderr.
fn rerun_with_trace(failure: &Failure, engine: &Engine, trace: TraceOptions) -> Result<(), Stop> {
    let (Some(test), Some(fork), Some(indexes)) = (&failure.test, &failure.fork, failure.indexes)
    else {
        return Ok(());
    };
    output::eprintln(&format!(
        "re-running the first failure with an EIP-3155 trace: {} :: {test} [{fork}] d={} g={} v={}",
        failure.file.display(),
        indexes.data,
        indexes.gas,
        indexes.value
    ));
    let mut options = RunnerOptions::new([&failure.file]);
    options.fork = Some(fork.clone());
    options.name_filter = regex::Regex::new(&format!("^{}$", regex::escape(test))).ok();
    options.indexes = IndexFilter {
        data: Some(indexes.data),
        gas: Some(indexes.gas),
        value: Some(indexes.value),
        position: None,
    };
    options.progress = Progress::Off;
    options.threads = Some(1);
    options.heavy_first = PathList::new();
    let trace = TraceOptions {
        summary: false,
        step_limit: Some(RERUN_STEP_LIMIT),
        ..trace
    };
    let out = BufWriter::new(io::stderr());
    let tracing = match engine {
        Engine::Stock => TracingExecutor::stock(out, trace),
        Engine::Shared(executor) => TracingExecutor::shared(executor, out, trace),
    };
    let ignore = |_: &CaseOutcome| ControlFlow::Continue(());
    // The case ran once already; a usage error now would be a bug of the re-run, not of
    // the user's command, so it is reported and the command's own result stands.
    if let Err(error) = run_observed(&options, &tracing, &ignore) {
        output::eprintln(&format!("warning: the re-run did not start: {error}"));
    }
    check_trace(&tracing)?;
    if tracing.truncated() {
        output::eprintln(&format!(
            "(the trace stops after {RERUN_STEP_LIMIT} steps; run the case alone with --trace for all of it)"
        ));
    }
    Ok(())
}

/// Writes each outcome as one line on stderr; the first write error stops the run.
#[derive(Default)]
struct OutcomeLines {
    error: Mutex<Option<io::Error>>,
}

impl shm_statetest::OutcomeSink for OutcomeLines {
    fn outcome(&self, outcome: &CaseOutcome) -> ControlFlow<()> {
        let line = format!("{}\n", outcome.revme_json());
        let mut err = io::stderr().lock();
        match err.write_all(line.as_bytes()).and_then(|()| err.flush()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => {
                self.error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(error);
                ControlFlow::Break(())
            }
        }
    }
}

/// Turns the arguments into runner options (paths left empty); `Err` is a one-line usage error.
fn options_from(args: &StatetestArgs, extra_skip: SkipList) -> Result<RunnerOptions, Stop> {
    let mut skip = if args.no_skip_file {
        SkipList::new()
    } else if let Some(path) = &args.skip_file {
        SkipList::load(path).map_err(|error| Stop::Usage(error.to_string()))?
    } else {
        // The default file sits in the source tree; a binary run elsewhere goes on without it.
        SkipList::load(DEFAULT_SKIP_FILE).unwrap_or_else(|error| {
            output::eprintln(&format!("warning: {error}; running without a skip file"));
            SkipList::new()
        })
    };
    skip.extend(extra_skip);

    let name_filter = args
        .name_filter
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|error| Stop::Usage(format!("invalid --run regex: {error}")))?;

    // Outcome lines and traces go to stderr: no progress there.
    let quiet = args.no_progress || args.json_outcome || args.trace.enabled();
    Ok(RunnerOptions {
        fork: args.fork.clone(),
        name_filter,
        indexes: IndexFilter {
            data: args.data_index,
            gas: args.gas_index,
            value: args.value_index,
            position: args.position,
        },
        progress: if quiet { Progress::Off } else { Progress::Auto },
        skip,
        threads: if args.trace.enabled() {
            Some(1)
        } else {
            args.threads
        },
        fail_fast: args.fail_fast,
        slowest: args.slowest,
        ..RunnerOptions::default()
    })
}

/// The report on stdout: failures one by one, skips grouped by reason, the slowest files,
/// then the summary line; or the whole report as JSON (the summary line then on stderr).
fn print_report(report: &Report, json: bool) -> io::Result<()> {
    if json {
        let text = serde_json::to_string_pretty(report).map_err(io::Error::other)?;
        output::println(&text)?;
        output::eprintln(&report.summary_line());
        return Ok(());
    }
    let mut text = String::new();
    for failure in &report.failures {
        text.push_str(&format!("{failure}\n"));
    }
    let mut skipped_by_reason: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for skip in &report.skips {
        let entry = skipped_by_reason.entry(skip.reason.as_str()).or_default();
        entry.0 += skip.cases;
        entry.1 += 1;
    }
    for (reason, (cases, places)) in skipped_by_reason {
        text.push_str(&format!(
            "skipped {cases} cases in {places} places: {reason}\n"
        ));
    }
    if !report.slowest.is_empty() {
        text.push_str("slowest files:\n");
        for file in &report.slowest {
            text.push_str(&format!(
                "  {:>8.3}s  {}\n",
                file.elapsed.as_secs_f64(),
                file.file.display()
            ));
        }
    }
    text.push_str(&format!(
        "{} files in {:.2}s\n{}\n",
        report.files,
        report.elapsed.as_secs_f64(),
        report.summary_line()
    ));
    output::print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines() {
        let mut input = io::Cursor::new(b"a.json\r\n\nb c.json\nlast".to_vec());
        let mut names = Vec::new();
        while let Some(name) = next_line(&mut input).ok().flatten() {
            names.push(name);
        }
        let expected: Vec<PathBuf> = ["a.json", "", "b c.json", "last"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(names, expected);
        let mut endless = io::Read::take(io::repeat(0), 1 << 20);
        let mut reader = io::BufReader::new(&mut endless);
        assert!(next_line(&mut reader).is_err());
    }
}
