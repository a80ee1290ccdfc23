use crate::{AccountDump, HaltSite, RunOutcome, ShmReport};
use alloy_primitives::{Address, Bytes, B256};
use revm::context::result::{ExecutionResult, Output};
use serde::Serialize;
use std::{collections::BTreeMap, fmt};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// STOP, RETURN or SELFDESTRUCT.
    Success,
    /// REVERT: gas left is refunded, effects undone.
    Revert,
    /// An exceptional halt: all gas consumed, effects undone.
    Halt,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogReport {
    /// Emitting contract.
    pub address: Address,
    /// Topics.
    pub topics: Vec<B256>,
    /// Data.
    pub data: Bytes,
}

/// The printable result of a run (`evm run`'s text and `--json` output).
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// How the run ended.
    pub status: RunStatus,
    /// revm's halt reason, for a halt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt_reason: Option<String>,
    /// Return data (or revert data); for a contract creation, the deployed code.
    pub output: Bytes,
    /// The address of the contract a creation made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_address: Option<Address>,
    /// Gas used by the transaction, as revm reports it (intrinsic gas included, refund deducted).
    pub gas_used: u64,
    /// Gas refunded.
    pub gas_refunded: u64,
    /// Logs (none unless the run succeeded).
    pub logs: Vec<LogReport>,
    /// The precise cause of the last shared-memory halt in the run, when one of
    /// its frames halted on a shared-memory check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_memory_halt: Option<String>,
    /// The last instruction that halted a frame, at any depth (with its name, the
    /// shared-memory ones included when shared memory is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt_site: Option<HaltSite>,
    /// The post state, when asked for (`--dump`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_state: Option<BTreeMap<Address, AccountDump>>,
    /// Shared-memory statistics and counters, when asked for (`--shm-stats`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_memory: Option<ShmReport>,
}

impl RunReport {
    /// The report of `outcome`, with the post state when `dump` is set.
    pub fn new(outcome: &RunOutcome, dump: bool, shm_stats: bool) -> Self {
        let mut report = Self::from_result(&outcome.result);
        report.halt_site = outcome.halt_site.clone();
        if dump {
            report.post_state = Some(outcome.post_state());
        }
        if let Some(shm) = &outcome.shared_memory {
            report.shared_memory_halt = shm.last_halt.map(|cause| cause.description().to_string());
            if shm_stats {
                report.shared_memory = Some(shm.clone());
            }
        }
        report
    }

    /// The report of a result alone.
    pub fn from_result(result: &ExecutionResult) -> Self {
        let mut created_address = None;
        let (status, halt_reason, output) = match result {
            ExecutionResult::Success {
                output: Output::Call(out),
                ..
            } => (RunStatus::Success, None, out.clone()),
            ExecutionResult::Success {
                output: Output::Create(out, address),
                ..
            } => {
                created_address = *address;
                (RunStatus::Success, None, out.clone())
            }
            ExecutionResult::Revert { output, .. } => (RunStatus::Revert, None, output.clone()),
            ExecutionResult::Halt { reason, .. } => {
                (RunStatus::Halt, Some(format!("{reason:?}")), Bytes::new())
            }
        };
        let logs = result
            .logs()
            .iter()
            .map(|log| LogReport {
                address: log.address,
                topics: log.topics().to_vec(),
                data: log.data.data.clone(),
            })
            .collect();
        Self {
            status,
            halt_reason,
            output,
            created_address,
            gas_used: result.tx_gas_used(),
            gas_refunded: result.gas().inner_refunded(),
            logs,
            shared_memory_halt: None,
            halt_site: None,
            post_state: None,
            shared_memory: None,
        }
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "output: {}", self.output)?;
        if let Some(address) = &self.created_address {
            writeln!(f, "created: {address}")?;
        }
        writeln!(f, "gas used: {}", self.gas_used)?;
        match (&self.status, &self.halt_reason) {
            (RunStatus::Halt, Some(reason)) => writeln!(f, "status: halt ({reason})")?,
            (status, _) => writeln!(f, "status: {}", format!("{status:?}").to_lowercase())?,
        }
        if let Some(cause) = &self.shared_memory_halt {
            writeln!(f, "shared-memory halt: {cause}")?;
        }
        if let Some(site) = &self.halt_site {
            writeln!(f, "last halt: {site}")?;
        }
        for (i, log) in self.logs.iter().enumerate() {
            write!(f, "log {i}: address {}", log.address)?;
            for topic in &log.topics {
                write!(f, " topic {topic}")?;
            }
            writeln!(f, " data {}", log.data)?;
        }
        if let Some(state) = &self.post_state {
            writeln!(f, "post state:")?;
            writeln!(
                f,
                "{}",
                serde_json::to_string_pretty(state).map_err(|_| fmt::Error)?
            )?;
        }
        if let Some(shm) = &self.shared_memory {
            let s = &shm.stats;
            let m = &shm.metrics;
            writeln!(f, "shared memory:")?;
            writeln!(
                f,
                "  regions: {} active ({} persistent), {} bytes, {} COW pages, pool utilization {:.1}%, fragmentation {:.3}",
                s.active_regions,
                s.persistent_regions,
                s.total_bytes,
                s.cow_pages,
                s.pool_utilization * 100.0,
                s.fragmentation_ratio
            )?;
            writeln!(
                f,
                "  ops: {} created, {} destroyed, {} mappings, {} reads ({} B), {} writes ({} B), {} COW faults, {} halts, {} access denials",
                m.regions_created,
                m.regions_destroyed,
                m.mappings,
                m.reads,
                m.read_bytes,
                m.writes,
                m.write_bytes,
                m.cow_faults,
                m.total_halts,
                m.access_denials
            )?;
        }
        Ok(())
    }
}
