//! The region registry of EVM shared memory.
//!
//! A *region* is a named, zero-initialised byte array that outlives call frames
//! (spec §1). This crate keeps every region of one manager: it hands out
//! generation-checked [`RegionHandle`](shm_primitives::RegionHandle)s, holds
//! each region's bytes in one contiguous block from an
//! [`shm_pool::BlockPool`], and does bounded, overflow-checked reads, writes,
//! copies and growth under a per-region lock. It also records owners,
//! permissions, options, host grants and per-context mappings, which
//! `shm-access` checks; it does no permission checking itself.
//!
//! The revert journal builds on [`RegionWriteGuard::write_observed`] (a hook
//! that sees each page before it changes), [`RegionWriteGuard::restore_page`],
//! [`RegionWriteGuard::set_size`], and the two-phase free
//! ([`RegionRegistry::begin_free`] / [`cancel_free`](RegionRegistry::cancel_free) /
//! [`finish_free`](RegionRegistry::finish_free)).
//!
//! ```
//! use shm_pool::{BlockPool, PoolConfig};
//! use shm_primitives::{Address, MapOptions};
//! use shm_region::{RegionRegistry, RegionSpec, RegistryConfig};
//!
//! let registry = RegionRegistry::new(BlockPool::new(PoolConfig::default()), RegistryConfig::default());
//! let alice = Address::repeat_byte(0xa1);
//! let handle = registry.create(RegionSpec::new(4096, alice))?;
//! registry.map(handle, alice, MapOptions::empty())?;
//!
//! // One lock acquisition for a check and an access, as the manager does it.
//! let mut guard = registry.lock_write(handle)?;
//! assert!(guard.meta().mapping(alice).is_some());
//! guard.write(0, b"hello", false)?;
//! guard.copy_within(0, 2, 5)?; // memmove semantics
//! assert_eq!(&guard.bytes()[..7], b"hehello");
//! # Ok::<(), shm_region::RegionError>(())
//! ```
#![warn(missing_docs)]

mod error;
mod region;
mod registry;

pub use error::RegionError;
pub use region::{
    Grant, MappingInfo, PageObserver, RegionInfo, RegionMeta, RegionReadGuard, RegionWriteGuard,
    WriteOutcome,
};
pub use registry::{RegionRegistry, RegionSpec, RegistryConfig};

#[cfg(test)]
mod tests;
