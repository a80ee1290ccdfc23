//! One line per case: what it produced and whether it passed, in the form of
//! `revme statetest --json-outcome`, so that tools written for revme read ours.

use crate::CaseIndexes;
use revm::primitives::{hardfork::SpecId, Bytes, B256};
use std::{ops::ControlFlow, path::PathBuf};

/// The outcome of one case, whether it passed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutcome {
    /// The fixture file.
    pub file: PathBuf,
    /// The test's name.
    pub test: String,
    /// The fork's rules.
    pub spec: SpecId,
    /// The fork as the fixture names it (`Cancun`, `EIP158`, …).
    pub fork: String,
    /// The case's indexes.
    pub indexes: CaseIndexes,
    /// Root of the state after the case (the prestate's when the transaction was
    /// rejected).
    pub state_root: B256,
    /// Hash of the logs (of no logs when the transaction was rejected).
    pub logs_root: B256,
    /// The transaction's output (empty when it was rejected).
    pub output: Bytes,
    /// Gas used (0 when the transaction was rejected).
    pub gas_used: u64,
    /// Whether every check passed.
    pub pass: bool,
    /// What failed, worded as revme words it (`state root mismatch: got …, expected …`).
    pub error: Option<String>,
    /// How the transaction ended, as revme words it (`Success: Stop`, `Revert`,
    /// `Halt: OutOfGas(Basic)`, or the rejection's message).
    pub evm_result: String,
}

impl CaseOutcome {
    /// The revme `--json-outcome` object, fields in revme's order:
    /// `stateRoot, logsRoot, output, gasUsed, pass, errorMsg, evmResult, postLogsHash,
    /// fork, test, d, g, v`.
    ///
    /// ```
    /// use revm::primitives::{hardfork::SpecId, B256};
    /// use shm_statetest::{CaseIndexes, CaseOutcome};
    /// let outcome = CaseOutcome {
    ///     file: "add11.json".into(),
    ///     test: "add11".into(),
    ///     spec: SpecId::CANCUN,
    ///     fork: "Cancun".into(),
    ///     indexes: CaseIndexes { data: 0, gas: 1, value: 2 },
    ///     state_root: B256::ZERO,
    ///     logs_root: B256::ZERO,
    ///     output: Default::default(),
    ///     gas_used: 21_000,
    ///     pass: true,
    ///     error: None,
    ///     evm_result: "Success: Stop".into(),
    /// };
    /// let line = outcome.revme_json().to_string();
    /// assert!(line.starts_with(r#"{"stateRoot":"0x0000"#));
    /// assert!(line.ends_with(r#""fork":"CANCUN","test":"add11","d":0,"g":1,"v":2}"#));
    /// ```
    pub fn revme_json(&self) -> serde_json::Value {
        serde_json::json!({
            "stateRoot": self.state_root,
            "logsRoot": self.logs_root,
            "output": self.output,
            "gasUsed": self.gas_used,
            "pass": self.pass,
            "errorMsg": self.error.clone().unwrap_or_default(),
            "evmResult": self.evm_result,
            "postLogsHash": self.logs_root,
            "fork": self.spec,
            "test": self.test,
            "d": self.indexes.data,
            "g": self.indexes.gas,
            "v": self.indexes.value,
        })
    }
}

/// Receives every case's outcome, in a fixed order: the order the files are queued
/// in (see [`RunnerOptions::heavy_first`](crate::RunnerOptions::heavy_first)), and
/// within a file the fixture's order of tests, forks and cases. With one thread each
/// outcome arrives as soon as its case ends; with more, a file's outcomes arrive
/// once it and every file queued before it are done.
///
/// Returning [`ControlFlow::Break`] (say, the output is gone) stops the run: no new
/// file is started and no further outcome is delivered.
///
/// Closures of the right shape are sinks:
///
/// ```
/// use shm_statetest::{CaseOutcome, OutcomeSink};
/// use std::{ops::ControlFlow, sync::Mutex};
/// let lines = Mutex::new(Vec::new());
/// let sink = |outcome: &CaseOutcome| {
///     lines.lock().unwrap().push(outcome.revme_json().to_string());
///     ControlFlow::Continue(())
/// };
/// fn takes_sink(_: &dyn OutcomeSink) {}
/// takes_sink(&sink);
/// ```
pub trait OutcomeSink: Sync {
    /// One case's outcome.
    fn outcome(&self, outcome: &CaseOutcome) -> ControlFlow<()>;
}

impl<F> OutcomeSink for F
where
    F: Fn(&CaseOutcome) -> ControlFlow<()> + Sync,
{
    fn outcome(&self, outcome: &CaseOutcome) -> ControlFlow<()> {
        self(outcome)
    }
}
