//! What a run found: counts, skips with reasons, one [`Failure`] per failed test or file.

use serde::{Deserialize, Serialize};
use std::{fmt, path::PathBuf, time::Duration};

/// The result of [`run`](crate::run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Tests that passed.
    pub passed: usize,
    /// Tests (or whole files that could not be read) that failed: `failures.len()`.
    pub failed: usize,
    /// Tests skipped by the skip list.
    pub skipped: usize,
    /// The skips, by file, with reasons.
    pub skips: Vec<Skip>,
    /// Every failure, sorted by file and test.
    pub failures: Vec<Failure>,
    /// Fixture files taken up.
    pub files: usize,
    /// Blocks imported or rejected, over every test that ran.
    pub blocks: usize,
    /// Wall time of the run.
    #[serde(with = "shm_statetest::json_seconds")]
    pub elapsed: Duration,
}

impl Report {
    /// `N passed, N failed, N skipped`.
    ///
    /// ```
    /// let report = shm_blocktest::Report { passed: 3, failed: 1, ..Default::default() };
    /// assert_eq!(report.summary_line(), "3 passed, 1 failed, 0 skipped");
    /// ```
    pub fn summary_line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }

    /// Whether nothing failed.
    pub fn is_success(&self) -> bool {
        self.failed == 0
    }

    pub(crate) fn absorb(&mut self, other: Report) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.skips.extend(other.skips);
        self.failures.extend(other.failures);
        self.files += other.files;
        self.blocks += other.blocks;
    }

    pub(crate) fn sort(&mut self) {
        self.skips
            .sort_by(|a, b| (&a.file, &a.reason).cmp(&(&b.file, &b.reason)));
        self.failures
            .sort_by(|a, b| (&a.file, &a.test).cmp(&(&b.file, &b.test)));
    }
}

/// Tests not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    /// The fixture file.
    pub file: PathBuf,
    /// How many of its (selected) tests were skipped.
    pub tests: usize,
    /// Why.
    pub reason: String,
}

/// Which check a test failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The file could not be read.
    UnreadableFile,
    /// The file is not a blockchain-test fixture.
    UnparseableFile,
    /// The fixture contradicts itself (genesis hash, pre-state root, an unknown network).
    InvalidFixture,
    /// A block the fixture says is valid was rejected.
    UnexpectedRejection,
    /// A block the fixture says is invalid was accepted.
    UnexpectedAcceptance,
    /// An invalid block was rejected, for another reason than the fixture's.
    WrongException,
    /// Execution failed for a reason that is no verdict on the block (database, EVM).
    Internal,
    /// The head is not the fixture's `lastblockhash`.
    LastBlockHash,
    /// The head's state differs from `postState` / `postStateHash`.
    PostState,
    /// The runner or the EVM panicked.
    Panic,
}

/// One failed test, or one file that could not be run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The fixture file.
    pub file: PathBuf,
    /// The test (`None` when the whole file failed).
    pub test: Option<String>,
    /// The index of the block in the fixture's `blocks`, when one is at fault.
    pub block: Option<usize>,
    /// Which check failed.
    pub kind: FailureKind,
    /// One line saying what went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FAIL {}", self.file.display())?;
        if let Some(test) = &self.test {
            write!(f, " :: {test}")?;
        }
        if let Some(block) = self.block {
            write!(f, " block {block}")?;
        }
        write!(f, ": {}", self.message)
    }
}
