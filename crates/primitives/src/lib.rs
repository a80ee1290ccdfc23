//! Types shared by every shared-memory crate.
//!
//! This is the bottom of the dependency graph: region handles and their stack
//! encoding, execution contexts, permissions, allocation flags, mapping options,
//! security levels, the page size, the precise causes of shared-memory halts and
//! the one rule that decides how a write lands (and grows a region), and the
//! placement of threads on the shards of sharded structures. It holds no
//! shared state and does no I/O.
//!
//! ```
//! use shm_primitives::RegionHandle;
//! let h = RegionHandle::new(7, 1).unwrap();
//! assert_eq!(RegionHandle::from_u256(h.to_u256()), Some(h));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod flags;
mod halt;
mod handle;
mod shard;
mod write_plan;

pub use alloy_primitives::{Address, U256};
pub use flags::{
    AccessKind, AllocFlags, Compression, MapOptions, Permissions, RegionOptions, SecurityLevel,
};
pub use halt::HaltCause;
pub use handle::RegionHandle;
pub use shard::{default_shard_count, thread_shard, CachePadded, MAX_SHARDS};
pub use write_plan::WritePlan;

/// An execution context: the executing contract's address as storage sees it
/// (DELEGATECALL and CALLCODE run in the caller's context).
pub type ContextId = Address;

/// Page size of the revert journal and of copy-on-write mappings, in bytes.
pub const PAGE_SIZE: usize = 4096;

/// Number of EVM words (32 bytes) needed to hold `bytes` bytes.
///
/// ```
/// assert_eq!(shm_primitives::words(0), 0);
/// assert_eq!(shm_primitives::words(33), 2);
/// ```
#[inline]
pub const fn words(bytes: u64) -> u64 {
    bytes.div_ceil(32)
}

/// A region offset taken from an EVM stack word, for an access of `len`
/// bytes: the offset when `offset + len` fits in 64 bits, else `None` (spec
/// §5: the "offset overflow" halt).
///
/// ```
/// use shm_primitives::{region_offset, U256};
/// assert_eq!(region_offset(U256::from(u64::MAX - 4), 4), Some(u64::MAX - 4));
/// assert_eq!(region_offset(U256::from(u64::MAX - 4), 5), None);
/// assert_eq!(region_offset(U256::from(1) << 64, 0), None);
/// ```
#[inline]
pub fn region_offset(offset: U256, len: u64) -> Option<u64> {
    let offset = u64::try_from(offset).ok()?;
    offset.checked_add(len)?;
    Some(offset)
}
