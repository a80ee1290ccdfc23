//! `evm blocktest`: runs the Ethereum blockchain tests (BlockchainTests fixtures) through
//! alloy-evm's block executor with EVMs from `ShmEvmFactory` (its executors publishing the
//! region effects of what they commit), and reports `N passed, N failed, N skipped`.

use alloy_evm::eth::EthEvmFactory;
use shm_alloy_evm::ShmEvmFactory;
use shm_blocktest::{BlockExecutors, BlocktestOptions, Report};
use shm_manager::SharedMemoryManager;
use shm_statetest::{Progress, SkipList};
use std::{collections::BTreeMap, io::Write, path::PathBuf, process::ExitCode};

/// The checked-in skip file (fixtures that cannot pass, each with its verified reason).
const DEFAULT_SKIP_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/blocktest-skip.txt"
);

/// Exit code when a test failed.
const EXIT_TEST_FAILURE: u8 = 1;
/// Exit code for usage errors.
const EXIT_USAGE: u8 = 2;

/// Arguments of `evm blocktest`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BlocktestArgs {
    /// Fixture files, or folders searched recursively for `.json` files.
    #[arg(required = true, num_args = 1..)]
    pub(crate) paths: Vec<PathBuf>,
    /// Run only the tests whose name matches this regular expression.
    #[arg(long = "run", value_name = "REGEX")]
    pub(crate) name_filter: Option<String>,
    /// Print the whole report as JSON on stdout (the summary line then goes to stderr).
    #[arg(long)]
    pub(crate) json: bool,
    /// Skip file (`<path relative to BlockchainTests>  # reason` per line); by default the
    /// checked-in `tests/blocktest-skip.txt`.
    #[arg(long, value_name = "PATH")]
    pub(crate) skip_file: Option<PathBuf>,
    /// Skip no file at all.
    #[arg(long, conflicts_with = "skip_file")]
    pub(crate) no_skip_file: bool,
    /// Show no progress on stderr.
    #[arg(long)]
    pub(crate) no_progress: bool,
    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Stop taking new files after the first failure.
    #[arg(long)]
    pub(crate) fail_fast: bool,
    /// Run with shared memory on, with a preset (`production` when none is named).
    #[arg(long, value_name = "PRESET", num_args = 0..=1, default_missing_value = "production",
          conflicts_with = "eth_evm_factory")]
    pub(crate) shm: Option<String>,
    /// Build the EVMs with alloy-evm's own `EthEvmFactory` instead of `ShmEvmFactory` (a
    /// baseline for comparisons).
    #[arg(long)]
    pub(crate) eth_evm_factory: bool,
}

/// Runs the blockchain tests. Exit code 0 when nothing failed, 1 when a test failed, 2 on a
/// usage error (one line on stderr).
pub(crate) fn run(args: BlocktestArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_USAGE)
    };
    if args.eth_evm_factory {
        return run_with(args, &EthEvmFactory::default());
    }
    // No blockchain-test fixture needs 0xE0–0xE4 undefined, so shared memory on skips
    // nothing more (unlike `evm statetest --shm`).
    let Some(preset) = args.shm.clone() else {
        return run_with(args, &ShmEvmFactory::off());
    };
    let config = match preset.parse() {
        Ok(config) => config,
        Err(error) => return usage(format!("shm: {error}")),
    };
    let manager = match SharedMemoryManager::new(config) {
        Ok(manager) => manager,
        Err(error) => return usage(format!("shm: {error}")),
    };
    run_with(args, &ShmEvmFactory::on(manager))
}

fn run_with(args: BlocktestArgs, executors: &impl BlockExecutors) -> ExitCode {
    let json = args.json;
    let options = match options_from(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let report = match shm_blocktest::run(&options, executors) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let text = if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => text + "\n",
            Err(error) => {
                eprintln!("error: cannot write the JSON report: {error}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    } else {
        report_text(&report)
    };
    // A closed pipe or a full disk is one line on stderr, not a panic.
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("error: cannot write the report to standard output: {error}");
        return ExitCode::from(EXIT_USAGE);
    }
    if json {
        eprintln!("{}", report.summary_line());
    }
    if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_TEST_FAILURE)
    }
}

fn options_from(args: BlocktestArgs) -> Result<BlocktestOptions, String> {
    let skip = if args.no_skip_file {
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
    let name_filter = args
        .name_filter
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        // regex's message spans lines (pattern, caret, reason): keep it to one.
        .map_err(|error| {
            let error = error.to_string();
            format!(
                "invalid --run regex: {}",
                error.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })?;
    Ok(BlocktestOptions {
        paths: args.paths,
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
fn report_text(report: &Report) -> String {
    let mut text = String::new();
    for failure in &report.failures {
        text += &format!("{failure}\n");
    }
    let mut skipped_by_reason: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for skip in &report.skips {
        let entry = skipped_by_reason.entry(skip.reason.as_str()).or_default();
        entry.0 += skip.tests;
        entry.1 += 1;
    }
    for (reason, (tests, files)) in skipped_by_reason {
        text += &format!("skipped {tests} tests in {files} files: {reason}\n");
    }
    text += &format!(
        "{} files, {} blocks in {:.2}s\n{}\n",
        report.files,
        report.blocks,
        report.elapsed.as_secs_f64(),
        report.summary_line()
    );
    text
}
