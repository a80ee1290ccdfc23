//! What a run found: counts, skips with reasons, and one [`Failure`] per failed case or file.

use revm::primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use std::{fmt, path::PathBuf, time::Duration};

/// The result of [`run`](crate::run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Cases (or whole files that could not be read) that failed: `failures.len()`.
    pub failed: usize,
    /// Cases skipped: by the skip lists, or on a fork the runner does not run.
    pub skipped: usize,
    /// The skips, grouped by file (and by test and fork for fork skips), with reasons.
    pub skips: Vec<Skip>,
    /// Every failure, sorted by file, test, fork and indexes.
    pub failures: Vec<Failure>,
    /// Fixture files taken up (all found, unless `fail_fast` stopped the run early).
    pub files: usize,
    /// Wall time of the run.
    #[serde(with = "seconds")]
    pub elapsed: Duration,
    /// The slowest files, slowest first, when asked for
    /// ([`RunnerOptions::slowest`](crate::RunnerOptions::slowest)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slowest: Vec<FileTime>,
}

/// How long one fixture file took (every selected case of it, on one thread).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileTime {
    /// The fixture file.
    pub file: PathBuf,
    /// Wall time spent on it.
    #[serde(with = "seconds")]
    pub elapsed: Duration,
}

impl Report {
    /// `N passed, N failed`, plus `, N skipped` when any case was skipped.
    ///
    /// ```
    /// let report = shm_statetest::Report { passed: 3, failed: 1, ..Default::default() };
    /// assert_eq!(report.summary_line(), "3 passed, 1 failed");
    /// ```
    pub fn summary_line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        line
    }

    /// Whether nothing failed.
    pub fn is_success(&self) -> bool {
        self.failed == 0
    }

    /// Adds another partial report's counts and lists into this one.
    pub(crate) fn absorb(&mut self, other: Report) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.skips.extend(other.skips);
        self.failures.extend(other.failures);
        self.files += other.files;
        self.slowest.extend(other.slowest);
    }

    /// Puts skips and failures in a stable order, whatever order the threads finished in,
    /// and keeps the `slowest` slowest files.
    pub(crate) fn sort(&mut self, slowest: usize) {
        self.slowest
            .sort_by(|a, b| b.elapsed.cmp(&a.elapsed).then_with(|| a.file.cmp(&b.file)));
        self.slowest.truncate(slowest);
        self.skips.sort_by(|a, b| {
            (&a.file, &a.test, &a.fork, &a.reason).cmp(&(&b.file, &b.test, &b.fork, &b.reason))
        });
        self.failures.sort_by(|a, b| {
            (&a.file, &a.test, &a.fork, a.indexes).cmp(&(&b.file, &b.test, &b.fork, b.indexes))
        });
    }
}

/// Cases not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    /// The fixture file.
    pub file: PathBuf,
    /// The test, when the skip concerns one test rather than the whole file.
    pub test: Option<String>,
    /// The fork, when the skip concerns one fork.
    pub fork: Option<String>,
    /// How many cases were skipped.
    pub cases: usize,
    /// Why.
    pub reason: String,
}

/// Which transaction variant of a test a case runs (`indexes` in the fixtures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CaseIndexes {
    /// Index into `transaction.data`.
    pub data: usize,
    /// Index into `transaction.gasLimit`.
    pub gas: usize,
    /// Index into `transaction.value`.
    pub value: usize,
}

/// What kind of check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The file could not be read.
    UnreadableFile,
    /// The file is not a valid state-test fixture.
    UnparseableFile,
    /// The case cannot be set up (an index out of range, a transaction that cannot be built
    /// while no exception is expected, an unusable fork).
    InvalidCase,
    /// An exception was expected and none occurred, or one occurred and none was expected.
    Exception,
    /// The output differs from the fixture's `out`.
    Output,
    /// The logs hash differs.
    LogsHash,
    /// The post-state root differs.
    StateRoot,
    /// The EVM or the fixture code panicked.
    Panic,
}

/// The values a case is checked on, expected or observed. `None` where not known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseValues {
    /// Post-state root.
    pub state_root: Option<B256>,
    /// Logs hash.
    pub logs_hash: Option<B256>,
    /// Exception (for the observed side: the EVM's error message).
    pub exception: Option<String>,
}

/// The first account whose post state differs from the fixture's expected post state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDivergence {
    /// The account.
    pub address: Address,
    /// What differs: `existence`, `balance`, `nonce`, `code` or `storage[<slot>]`.
    pub field: String,
    /// The fixture's value.
    pub expected: String,
    /// The value after execution.
    pub actual: String,
}

/// One failed case, or one file that could not be run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The fixture file.
    pub file: PathBuf,
    /// The test's name (`None` when the whole file failed).
    pub test: Option<String>,
    /// The fork (spec name as in the fixture).
    pub fork: Option<String>,
    /// The case's indexes.
    pub indexes: Option<CaseIndexes>,
    /// Which check failed.
    pub kind: FailureKind,
    /// One line saying what went wrong.
    pub message: String,
    /// What the fixture expects.
    pub expected: Option<CaseValues>,
    /// What the EVM produced.
    pub actual: Option<CaseValues>,
    /// The first diverging account, when the fixture carries an expected post state.
    pub divergence: Option<AccountDivergence>,
}

impl Failure {
    /// A failure of a whole file.
    pub(crate) fn of_file(file: PathBuf, kind: FailureKind, message: String) -> Self {
        Self {
            file,
            test: None,
            fork: None,
            indexes: None,
            kind,
            message,
            expected: None,
            actual: None,
            divergence: None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FAIL {}", self.file.display())?;
        if let Some(test) = &self.test {
            write!(f, " :: {test}")?;
        }
        if let Some(fork) = &self.fork {
            write!(f, " [{fork}]")?;
        }
        if let Some(i) = self.indexes {
            write!(f, " d={} g={} v={}", i.data, i.gas, i.value)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(d) = &self.divergence {
            write!(
                f,
                "\n  first diverging account {}: {} expected {}, got {}",
                d.address, d.field, d.expected, d.actual
            )?;
        }
        Ok(())
    }
}

/// Serialises a [`Duration`] as seconds (a float), which reads better in JSON
/// reports: `#[serde(with = "shm_statetest::json_seconds")]` (the block-test
/// report uses it too).
pub mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes `value` as seconds.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    /// Reads seconds into a [`Duration`].
    ///
    /// # Errors
    /// The deserializer's, or a negative or non-finite number.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
