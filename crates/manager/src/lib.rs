//! The shared-memory manager: the facade a node embeds (spec §10).
//!
//! [`SharedMemoryManager`] ties the region registry, pool, permission checks
//! and metrics together with [`SharedMemoryConfig`] presets, the host API,
//! garbage collection, [`MemoryStats`], and for the opcodes [`TxRegions`] over
//! the two-phase locks of [`RegionLockTable`] (spec §6). No EVM dependency.
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
// Only `TxRegions::read` and `TxRegions::write_saved` have unsafe code.
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

pub use config::{ParsePresetError, SharedMemoryConfig};
pub use error::ShmError;
pub use host::{RegionRequest, HOST_CONTEXT};
pub use locks::{CrossLock, CrossProcessLock, LockMode, RegionBusy, RegionLockTable, TxId};
pub use manager::SharedMemoryManager;
pub use stats::{ClassUsage, GcReport, MemoryStats};
pub use transaction::{AccessCounts, Intent, Resolved, TxRegions};

// The lower crates' types the manager's API takes and returns.
pub use shm_mapped::{MappedError, MappedRegion};
pub use shm_metrics::{HaltCause, Metrics};
pub use shm_pool::{Block, SizeClass};
pub use shm_region::{Grant, RegionInfo, RegionMeta, RegionSpec, WriteOutcome};
