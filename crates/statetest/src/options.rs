//! What to run and how: [`RunnerOptions`], the fork names, and the usage errors of a run.

use crate::{PathList, SkipList};
use regex::Regex;
use revm::statetest_types::SpecName;
use std::path::PathBuf;

/// The fork names of the fixtures' `post` sections, as `--fork` accepts them.
pub const FORK_NAMES: [&str; 24] = [
    "Frontier",
    "FrontierToHomesteadAt5",
    "Homestead",
    "HomesteadToDaoAt5",
    "HomesteadToEIP150At5",
    "EIP150",
    "EIP158",
    "EIP158ToByzantiumAt5",
    "Byzantium",
    "ByzantiumToConstantinopleAt5",
    "ByzantiumToConstantinopleFixAt5",
    "Constantinople",
    "ConstantinopleFix",
    "Istanbul",
    "Berlin",
    "BerlinToLondonAt5",
    "London",
    "Paris",
    "Merge",
    "Shanghai",
    "Cancun",
    "Prague",
    "Osaka",
    "Amsterdam",
];

/// Other names the fixtures use for some forks, with the name they stand for.
const FORK_ALIASES: [(&str, &str); 2] =
    [("TangerineWhistle", "EIP150"), ("SpuriousDragon", "EIP158")];

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// An indicatif bar over the files, with the count of cases done.
    Bar,
    /// A plain line every few seconds.
    Lines,
    /// Nothing.
    Off,
}

/// Which cases of a selected test and fork run, by their indexes. `None` selects all.
///
/// ```
/// use shm_statetest::{CaseIndexes, IndexFilter};
/// let filter = IndexFilter { data: Some(1), ..IndexFilter::default() };
/// assert!(filter.selects(CaseIndexes { data: 1, gas: 0, value: 3 }, 7));
/// assert!(!filter.selects(CaseIndexes { data: 0, gas: 0, value: 0 }, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexFilter {
    /// The index into `transaction.data` (revme's `d`).
    pub data: Option<usize>,
    /// The index into `transaction.gasLimit` (revme's `g`).
    pub gas: Option<usize>,
    /// The index into `transaction.value` (revme's `v`).
    pub value: Option<usize>,
    /// The case's position in its fork's list of cases (geth's `--statetest.index`).
    pub position: Option<usize>,
}

impl IndexFilter {
    /// Whether the case with `indexes` at `position` in its fork's list is selected.
    pub fn selects(&self, indexes: crate::CaseIndexes, position: usize) -> bool {
        self.data.is_none_or(|data| data == indexes.data)
            && self.gas.is_none_or(|gas| gas == indexes.gas)
            && self.value.is_none_or(|value| value == indexes.value)
            && self.position.is_none_or(|wanted| wanted == position)
    }

    /// Whether every case is selected.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What [`run`](crate::run) runs.
///
/// ```
/// use shm_statetest::{Progress, RunnerOptions};
/// let mut options = RunnerOptions::new(["tests/GeneralStateTests"]);
/// options.fork = Some("Cancun".into());
/// options.name_filter = Some(regex::Regex::new("^add").unwrap());
/// options.indexes.data = Some(0);
/// options.progress = Progress::Off;
/// assert_eq!(options.paths.len(), 1);
/// assert!(!options.heavy_first.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Fixture files, or folders searched recursively for `.json` files.
    pub paths: Vec<PathBuf>,
    /// Run only this fork (a name of [`FORK_NAMES`], case-insensitive).
    pub fork: Option<String>,
    /// Run only the tests whose name matches.
    pub name_filter: Option<Regex>,
    /// Run only the cases with these indexes.
    pub indexes: IndexFilter,
    /// How progress is shown.
    pub progress: Progress,
    /// Files (or folders) not to run, with reasons.
    pub skip: SkipList,
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Stop taking new files after the first failure.
    pub fail_fast: bool,
    /// Files started before all others, in the list's order: the slow ones, so that
    /// the slowest case runs alongside the rest rather than alone at the end. By
    /// default [`PathList::heavy_first`].
    pub heavy_first: PathList,
    /// Keep the time of the `slowest` slowest files in the report (0: none).
    pub slowest: usize,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            fork: None,
            name_filter: None,
            indexes: IndexFilter::default(),
            progress: Progress::default(),
            skip: SkipList::default(),
            threads: None,
            fail_fast: false,
            heavy_first: PathList::heavy_first(),
            slowest: 0,
        }
    }
}

impl RunnerOptions {
    /// Options running `paths` with everything else at its default.
    pub fn new<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Self {
        Self {
            paths: paths.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// Why a run could not start. Failing fixtures are not errors: they are in the [`Report`](crate::Report).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// No path was given.
    #[error("no fixture path given")]
    NoPaths,
    /// A path does not exist.
    #[error("path does not exist: {0}")]
    PathNotFound(PathBuf),
    /// A folder holds no `.json` file.
    #[error("no .json fixture files under {0}")]
    NoFixtures(PathBuf),
    /// A folder could not be walked.
    #[error("cannot list {path}: {message}")]
    Walk {
        /// The folder.
        path: PathBuf,
        /// The underlying error.
        message: String,
    },
    /// The fork name is not one of [`FORK_NAMES`].
    #[error("unknown fork `{name}`; valid names: {valid}")]
    UnknownFork {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// `threads` is zero.
    #[error("the thread count must be at least 1")]
    ZeroThreads,
    /// The worker pool could not be started.
    #[error("cannot start the worker threads: {0}")]
    ThreadPool(String),
}

/// The canonical fixture name for `name` (case-insensitive; aliases accepted).
///
/// ```
/// assert_eq!(shm_statetest::canonical_fork_name("cancun").unwrap(), "Cancun");
/// assert!(shm_statetest::canonical_fork_name("Cancoon").is_err());
/// ```
pub fn canonical_fork_name(name: &str) -> Result<&'static str, RunnerError> {
    let name = name.trim();
    FORK_NAMES
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(name))
        .or_else(|| {
            FORK_ALIASES
                .iter()
                .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
                .map(|(_, canonical)| *canonical)
        })
        .ok_or_else(|| RunnerError::UnknownFork {
            name: name.to_string(),
            valid: FORK_NAMES.join(", "),
        })
}

/// The [`SpecName`] for a fork name (see [`canonical_fork_name`]).
pub(crate) fn parse_fork(name: &str) -> Result<SpecName, RunnerError> {
    let canonical = canonical_fork_name(name)?;
    let unknown = || RunnerError::UnknownFork {
        name: name.to_string(),
        valid: FORK_NAMES.join(", "),
    };
    // Deserialise the name, as the fixtures' keys are, so both agree on every variant.
    match serde_json::from_value(serde_json::Value::String(canonical.to_string())) {
        Ok(SpecName::Unknown) | Err(_) => Err(unknown()),
        Ok(spec) => Ok(spec),
    }
}
