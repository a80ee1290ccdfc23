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

use shm_primitives::U256;

/// A region offset taken from an EVM stack word, for an access of `len` bytes:
/// the offset when `offset + len` fits in 64 bits (spec §5), else
/// [`RegionError::OffsetOverflow`] (with the offset saturated to `u64::MAX`
/// when the word itself is 2^64 or more).
///
/// ```
/// use shm_primitives::U256;
/// use shm_region::{region_offset, RegionError};
/// assert_eq!(region_offset(U256::from(u64::MAX - 4), 4), Ok(u64::MAX - 4));
/// assert!(matches!(region_offset(U256::from(u64::MAX - 4), 5), Err(RegionError::OffsetOverflow { .. })));
/// assert!(matches!(region_offset(U256::from(1) << 64, 0), Err(RegionError::OffsetOverflow { .. })));
/// ```
///
/// # Errors
/// [`RegionError::OffsetOverflow`].
pub fn region_offset(offset: U256, len: u64) -> Result<u64, RegionError> {
    let offset = u64::try_from(offset).map_err(|_| RegionError::OffsetOverflow {
        offset: u64::MAX,
        len,
    })?;
    offset
        .checked_add(len)
        .map(|_| offset)
        .ok_or(RegionError::OffsetOverflow { offset, len })
}

#[cfg(test)]
mod tests;
