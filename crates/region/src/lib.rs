//! The region registry of EVM shared memory: every *region* (a zero-initialised
//! byte array that outlives call frames, spec §1) of one manager, each in one
//! [`shm_pool::BlockPool`] block behind a generation-checked handle and its own
//! lock, with the owners, grants and mappings that `shm-access` checks.
//!
//! The revert journal builds on [`RegionWriteGuard::write_planned`],
//! [`RegionWriteGuard::restore_page`], [`RegionWriteGuard::set_size`] and the
//! two-phase free ([`RegionRegistry::begin_free`]).
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
