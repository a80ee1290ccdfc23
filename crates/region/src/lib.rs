//! The region registry of EVM shared memory.
//!
//! A *region* is a named, zero-initialised byte array that outlives call frames
//! (spec §1). This crate keeps every region of one manager: generation-checked
//! [`RegionHandle`](shm_primitives::RegionHandle)s, each region's bytes in one
//! [`shm_pool::BlockPool`] block, bounded reads, planned writes and growth
//! under a per-region lock, and the owners, permissions, options, grants and
//! mappings that `shm-access` checks (this crate checks no permission).
//!
//! The revert journal builds on [`RegionWriteGuard::write_planned`] (a hook
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
//!
//! // One lock acquisition for a check and an access, as the manager does it.
//! let mut guard = registry.lock_write(handle)?;
//! guard.map(alice, MapOptions::empty());
//! assert!(guard.meta().mapping(alice).is_some());
//! guard.write(0, b"hello", false)?;
//! assert_eq!(&guard.bytes()[..5], b"hello");
//! # Ok::<(), shm_region::RegionError>(())
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)] // `raw` allows it, with its invariant.

mod error;
mod free_slots;
mod guard;
mod meta;
mod raw;
mod registry;
mod slot;

pub use error::RegionError;
pub use guard::{PageObserver, RegionReadGuard, RegionWriteGuard};
pub use meta::{Grant, RegionInfo, RegionMeta, WriteOutcome};
pub use raw::RawRegionBytes;
pub use registry::{RegionRegistry, RegionSpec, RegistryConfig};
pub use slot::Liveness;

// The unit tests share their helpers with the integration tests, which name
// this crate `shm_region`.
#[cfg(test)]
extern crate self as shm_region;
#[cfg(test)]
mod tests;
