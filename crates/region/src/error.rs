//! Why the registry refused a request.

use shm_pool::PoolError;
use shm_primitives::{ContextId, RegionHandle};

/// Why a [`RegionRegistry`](crate::RegionRegistry) or a region guard refused a
/// request. Every refusal is one of these; nothing in this crate panics on input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// The handle never named a region of this registry.
    #[error("invalid region handle {0:?}")]
    InvalidRegionHandle(RegionHandle),
    /// The handle named a region that has since been freed.
    #[error("region {0:?} was freed")]
    RegionFreed(RegionHandle),
    /// The registry holds its maximum of live regions (or ran out of slots).
    #[error("too many regions (limit {limit})")]
    TooManyRegions {
        /// The configured maximum number of live regions.
        limit: usize,
    },
    /// A size above the region's (or registry's) maximum size.
    #[error("region size {requested} exceeds the maximum of {max} bytes")]
    RegionTooLarge {
        /// Bytes asked for.
        requested: u64,
        /// The maximum allowed.
        max: u64,
    },
    /// A region of zero bytes was requested.
    #[error("a region must hold at least one byte")]
    ZeroSize,
    /// Another live region already has this name.
    #[error("a region named `{0}` already exists")]
    NameTaken(String),
    /// No live region has this name.
    #[error("no region named `{0}`")]
    NameNotFound(String),
    /// The context has no mapping of the region.
    #[error("context {context} has no mapping of region {handle:?}")]
    MappingNotFound {
        /// The region.
        handle: RegionHandle,
        /// The context that has no mapping.
        context: ContextId,
    },
    /// `offset + len` does not fit in 64 bits (or the offset itself does not).
    #[error("offset {offset} + length {len} overflows 64 bits")]
    OffsetOverflow {
        /// The start offset (saturated to `u64::MAX` when it was wider).
        offset: u64,
        /// The length of the range.
        len: u64,
    },
    /// A page index whose byte offset overflows 64 bits.
    #[error("page {0} is beyond any addressable offset")]
    PageOutOfRange(u64),
    /// The region is not awaiting a final free.
    #[error("slot of region {0:?} is not awaiting re-insertion")]
    SlotNotRemoved(RegionHandle),
    /// Too many persistent regions: the other slots are kept for
    /// transaction-scoped regions (spec §4).
    #[error("too many persistent regions (limit {limit}; the other slots are kept for transaction-scoped regions)")]
    TooManyPersistentRegions {
        /// The most persistent regions at once.
        limit: usize,
    },
    /// A [`WritePlan`](shm_primitives::WritePlan) made for another size of the
    /// region or for more bytes than were given.
    #[error("write plan does not match the region")]
    StalePlan,
    /// [`RegionRegistry::create_at`](crate::RegionRegistry::create_at): the
    /// slot is occupied or already issued that generation.
    #[error("handle {0:?} is not available in this registry")]
    HandleUnavailable(RegionHandle),
    /// The block pool refused memory.
    #[error(transparent)]
    Pool(#[from] PoolError),
}
