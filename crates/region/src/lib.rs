//! The region registry of EVM shared memory.
//!
//! A *region* is a named, zero-initialised byte array that outlives call frames
//! (spec §1). This crate keeps every region of one manager: it hands out
//! generation-checked [`RegionHandle`](shm_primitives::RegionHandle)s, holds
//! each region's bytes in one contiguous block from an
//! [`shm_pool::BlockPool`], and does bounded, overflow-checked reads, planned
//! writes and growth under a per-region lock. It also records owners,
//! permissions, options, host grants and host mappings, which `shm-access`
//! checks; it does no permission checking itself.
//!
//! - `meta`: the value types (metadata, grants, mappings, write outcomes);
//! - `slot`: the slot table, where each region lives with its lock;
//! - `guard`: locked access to one region;
//! - `registry`: creation, lookup and the two-phase free;
//! - `free_slots`: the registry's free list, lowest slot first.
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
// Only `raw` has unsafe code (it allows it there, with its invariant).
#![deny(unsafe_code)]

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
