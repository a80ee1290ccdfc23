//! Runs the Ethereum state tests (the `GeneralStateTests` fixtures) against an EVM and reports
//! what passed, failed and was skipped.
//!
//! The EVM is pluggable through [`CaseExecutor`]: [`MainnetExecutor`] runs stock revm, and an
//! EVM with other instructions or another journal runs the same fixtures by implementing the
//! trait. Each case is checked as `revme statetest` checks it: the expected exception, the logs
//! hash and the post-state root. [`run_observed`] also hands each case's [`CaseOutcome`] (in
//! revme's `--json-outcome` form) to an [`OutcomeSink`], in a fixed order; [`IndexFilter`]
//! selects cases by index; the slowest files ([`PathList::heavy_first`]) start first.
//!
//! ```no_run
//! use shm_statetest::{run, MainnetExecutor, RunnerOptions, SkipList};
//! let mut options = RunnerOptions::new(["GeneralStateTests"]);
//! options.fork = Some("Cancun".into());
//! options.skip = SkipList::load("tests/statetest-skip.txt")?;
//! let report = run(&options, &MainnetExecutor)?;
//! for failure in &report.failures {
//!     eprintln!("{failure}");
//! }
//! println!("{}", report.summary_line());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod divergence;
mod executor;
mod options;
mod outcome;
mod progress;
mod read;
mod report;
mod roots;
mod runner;
mod skip;

pub use executor::{CaseEnv, CaseError, CaseExecutor, CaseState, MainnetExecutor};
pub use options::{
    canonical_fork_name, IndexFilter, Progress, RunnerError, RunnerOptions, FORK_NAMES,
};
pub use outcome::{CaseOutcome, OutcomeSink};
pub use progress::Tracker;
pub use read::{check_kind, read_bytes_capped, read_capped, read_text_capped, ReadError};
pub use report::seconds as json_seconds;
pub use report::{
    AccountDivergence, CaseIndexes, CaseValues, Failure, FailureKind, FileTime, Report, Skip,
};
pub use roots::{logs_hash, state_root};
pub use runner::{find_fixture_files, run, run_observed, MAX_FIXTURE_BYTES};
pub use skip::{PathList, SkipEntry, SkipList, SkipListError, SHARED_MEMORY_OPCODE_CONFLICTS};
