//! Types shared by every shared-memory crate.
//!
//! This is the bottom of the dependency graph: region handles and their stack
//! encoding, execution contexts, permissions, allocation flags, mapping options,
//! security levels and the page size. It holds no state and does no I/O.
//!
//! ```
//! use shm_primitives::RegionHandle;
//! let h = RegionHandle::new(7, 1).unwrap();
//! assert_eq!(RegionHandle::from_u256(h.to_u256()), Some(h));
//! ```
#![warn(missing_docs)]

mod flags;
mod handle;

pub use alloy_primitives::{Address, U256};
pub use flags::{
    AccessKind, AllocFlags, Compression, MapOptions, Permissions, RegionOptions, SecurityLevel,
};
pub use handle::RegionHandle;

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
