//! `evm statetest`: runs the Ethereum state tests (GeneralStateTests fixtures) and reports
//! `N passed, N failed[, N skipped]`.

use shm_statetest::{CaseExecutor, MainnetExecutor, Progress, Report, RunnerOptions, SkipList};
use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

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

/// Arguments of `evm statetest`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StatetestArgs {
    /// Fixture files, or folders searched recursively for `.json` files.
    #[arg(required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Run only this fork, by its fixture name (Cancun, Shanghai, Prague, ...).
    #[arg(long, value_name = "NAME")]
    pub fork: Option<String>,
    /// Run only the tests whose name matches this regular expression.
    #[arg(long = "run", value_name = "REGEX")]
    pub name_filter: Option<String>,
    /// Print the whole report as JSON on stdout (the summary line then goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Skip file (`<path relative to GeneralStateTests>  # reason` per line); by default the
    /// checked-in `tests/statetest-skip.txt`.
    #[arg(long, value_name = "PATH")]
    pub skip_file: Option<PathBuf>,
    /// Skip no file at all (neither the skip file nor, with `--shm`, the shared-memory one).
    #[arg(long, conflicts_with = "skip_file")]
    pub no_skip_file: bool,
    /// Show no progress on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<usize>,
    /// Stop taking new files after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Run with shared memory on, with a preset (`production` when none is named); the
    /// fixtures listed in `tests/statetest-skip-shm.txt` are skipped then.
    #[arg(long, value_name = "PRESET", num_args = 0..=1, default_missing_value = "production")]
    pub shm: Option<String>,
}

/// Runs the state tests with stock revm. Exit code 0 when nothing failed, 1 when a test failed,
/// 2 on a usage error (reported in one line on stderr).
pub(crate) fn run(args: StatetestArgs) -> ExitCode {
    let Some(preset) = args.shm.clone() else {
        return run_with(args, &MainnetExecutor, SkipList::new());
    };
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_USAGE)
    };
    let config = match preset.parse() {
        Ok(config) => config,
        Err(error) => return usage(format!("shm: {error}")),
    };
    let executor = match shm_evm::SharedMemoryExecutor::new(config) {
        Ok(executor) => executor,
        Err(error) => return usage(format!("shm: {error}")),
    };
    let skip = if args.no_skip_file {
        SkipList::new()
    } else {
        match SkipList::load(SHARED_MEMORY_SKIP_FILE) {
            Ok(skip) => skip,
            Err(error) => return usage(error.to_string()),
        }
    };
    run_with(args, &executor, skip)
}

/// Runs the state tests with `executor`, skipping `extra_skip` on top of the skip file (for an
/// EVM whose opcodes differ from mainnet's, such as shared memory on).
pub(crate) fn run_with(
    args: StatetestArgs,
    executor: &impl CaseExecutor,
    extra_skip: SkipList,
) -> ExitCode {
    let json = args.json;
    let options = match options_from(args, extra_skip) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let report = match shm_statetest::run(&options, executor) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };

    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("error: cannot write the JSON report: {error}"),
        }
        eprintln!("{}", report.summary_line());
    } else {
        print_report(&report);
    }
    if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_TEST_FAILURE)
    }
}

/// Turns the arguments into runner options; `Err` is a one-line usage error.
fn options_from(args: StatetestArgs, extra_skip: SkipList) -> Result<RunnerOptions, String> {
    let mut skip = if args.no_skip_file {
        SkipList::new()
    } else if let Some(path) = &args.skip_file {
        SkipList::load(path).map_err(|error| error.to_string())?
    } else {
        // The default file sits in the source tree; a binary run elsewhere goes on without it.
        SkipList::load(DEFAULT_SKIP_FILE).unwrap_or_else(|error| {
            eprintln!("warning: {error}; running without a skip file");
            SkipList::new()
        })
    };
    skip.extend(extra_skip);

    let name_filter = args
        .name_filter
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|error| format!("invalid --run regex: {error}"))?;

    Ok(RunnerOptions {
        paths: args.paths,
        fork: args.fork,
        name_filter,
        progress: if args.no_progress {
            Progress::Off
        } else {
            Progress::Auto
        },
        skip,
        threads: args.threads,
        fail_fast: args.fail_fast,
    })
}

/// Failures one by one, skips grouped by reason, then the summary line.
fn print_report(report: &Report) {
    for failure in &report.failures {
        println!("{failure}");
    }
    let mut skipped_by_reason: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for skip in &report.skips {
        let entry = skipped_by_reason.entry(skip.reason.as_str()).or_default();
        entry.0 += skip.cases;
        entry.1 += 1;
    }
    for (reason, (cases, places)) in skipped_by_reason {
        println!("skipped {cases} cases in {places} places: {reason}");
    }
    println!(
        "{} files in {:.2}s",
        report.files,
        report.elapsed.as_secs_f64()
    );
    println!("{}", report.summary_line());
}
