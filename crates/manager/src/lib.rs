//! The shared-memory manager: the facade a node embeds (spec §10).
//!
//! [`SharedMemoryManager`] ties the lower crates together — the region registry
//! (`shm-region`) over its block pool (`shm-pool`), the permission checks
//! (`shm-access`) at the configured security level, and the counters
//! (`shm-metrics`) — and adds what none of them has alone:
//!
//! - [`SharedMemoryConfig`] with every knob and the `production`,
//!   `development` and `testing` presets of spec §9;
//! - the host API: create, map, read, write, grant, free and find regions from
//!   Rust, outside any transaction and not journalled;
//! - garbage collection of unreferenced regions, on demand or automatically at
//!   transaction ends ([`SharedMemoryManager::maybe_collect`]);
//! - [`MemoryStats`], metrics snapshots and Prometheus text;
//! - for the transaction layer above (the opcodes), one entry point:
//!   [`SharedMemoryManager::begin_transaction`]'s [`TxRegions`], which
//!   resolves handles (check, refresh in a mapped namespace, two-phase lock
//!   with a bounded wait, recheck, permission), reads and writes the regions
//!   a transaction holds, creates and frees for it, and carries out the revert
//!   journal's undo; the strict two-phase locking itself is [`RegionLockTable`]
//!   (spec §6).
//!
//! It has no EVM dependency: the opcodes crate does the EVM side.
//!
//! ```
//! use shm_manager::{SharedMemoryConfig, SharedMemoryManager, ShmError};
//! use shm_primitives::{Permissions, RegionOptions};
//!
//! let manager = SharedMemoryManager::new("testing".parse().unwrap())?;
//! let h = manager.create_shared_region("log", 64, Permissions::read_write(), RegionOptions::default())?;
//! manager.write_region(h, 0, b"hi")?;
//! manager.free_region(h)?;
//! assert_eq!(manager.read_region(h, 0, &mut [0; 2]), Err(ShmError::RegionFreed(h)));
//!
//! let off = SharedMemoryManager::new(SharedMemoryConfig::disabled())?;
//! assert_eq!(off.find_region("log"), Err(ShmError::SharedMemoryDisabled));
//! # Ok::<(), ShmError>(())
//! ```
#![warn(missing_docs)]
// Only `TxRegions::read` and `TxRegions::write_saved` have unsafe code (an
// access without the slot lock, with its invariant stated there).
#![deny(unsafe_code)]

mod config;
mod error;
mod gate;
mod gc;
mod host;
mod locks;
mod manager;
mod mapped;
mod stats;
mod transaction;

pub use config::{
    ParsePresetError, SharedMemoryConfig, DEFAULT_LOCK_WAIT, DEFAULT_MAX_JOURNAL_BYTES,
    DEFAULT_WAIT_NS_PER_GAS,
};
pub use error::ShmError;
pub use host::{RegionRequest, HOST_CONTEXT};
pub use locks::{CrossLock, CrossProcessLock, LockMode, RegionBusy, RegionLockTable, TxId};
pub use manager::SharedMemoryManager;
pub use stats::{ClassUsage, GcReport, MemoryStats};
pub use transaction::{AccessCounts, Intent, Resolved, TxRegions};

// Re-exported so embedders need not depend on the lower crates for the types
// the manager's API takes and returns.
pub use shm_mapped::{MappedError, MappedRegion, Namespace};
pub use shm_metrics::{HaltCause, Metrics, MetricsRecorder};
pub use shm_pool::{Block, SizeClass};
pub use shm_region::{Grant, RegionInfo, RegionMeta, RegionSpec, WriteOutcome};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SharedMemoryManager>();
        assert_send_sync::<RegionLockTable>();
    }
}
