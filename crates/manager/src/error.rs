//! The one error type of the manager.

use shm_access::AccessDenied;
use shm_metrics::HaltCause;
use shm_pool::{PoolError, SizeClass};
use shm_primitives::{ContextId, RegionHandle};
use shm_region::RegionError;

use crate::RegionBusy;

/// Why the manager refused a request (it never panics on input), with the
/// lower crates' errors flattened into the variants the spec names;
/// [`ShmError::halt_cause`] gives the cause an opcode reports for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShmError {
    /// The manager's config has `enabled == false`.
    #[error("shared memory is disabled")]
    SharedMemoryDisabled,
    /// The config contradicts itself (see [`SharedMemoryConfig::validate`](crate::SharedMemoryConfig::validate)).
    #[error("invalid shared-memory config: {0}")]
    InvalidConfig(&'static str),
    /// A region (or its growth) above `max_region_size`.
    #[error("region size {requested} exceeds the maximum of {max} bytes")]
    RegionTooLarge {
        /// Bytes asked for.
        requested: u64,
        /// The maximum allowed.
        max: u64,
    },
    /// A region of zero bytes (or a zero-byte pool block) was asked for.
    #[error("a region must hold at least one byte")]
    ZeroSize,
    /// `max_regions` regions are already alive.
    #[error("too many shared regions (limit {limit})")]
    TooManySharedRegions {
        /// The configured `max_regions`.
        limit: usize,
    },
    /// The handle never named a region of this manager.
    #[error("invalid region handle {0:?}")]
    InvalidRegionHandle(RegionHandle),
    /// The handle named a region that has been freed.
    #[error("region {0:?} was freed")]
    RegionFreed(RegionHandle),
    /// The context has no mapping of the region (unmap, or Strict access).
    #[error("context {context} has no mapping of region {handle:?}")]
    MappingNotFound {
        /// The region.
        handle: RegionHandle,
        /// The context.
        context: ContextId,
    },
    /// The context may not read (or map) the region.
    #[error("context {context} may not read region {handle:?}")]
    NoReadPermission {
        /// The region.
        handle: RegionHandle,
        /// The refused context.
        context: ContextId,
    },
    /// The context may not write the region.
    #[error("context {context} may not write region {handle:?}")]
    NoWritePermission {
        /// The region.
        handle: RegionHandle,
        /// The refused context.
        context: ContextId,
    },
    /// The context mapped the region read-only and tried to write.
    #[error("context {context} mapped region {handle:?} read-only")]
    ReadOnlyMapping {
        /// The region.
        handle: RegionHandle,
        /// The refused context.
        context: ContextId,
    },
    /// Basic: the context is neither the owner nor granted the right to free.
    #[error("context {context} may not free region {handle:?}")]
    NotAllowedToFree {
        /// The region.
        handle: RegionHandle,
        /// The refused context.
        context: ContextId,
    },
    /// Strict and up: only the owner frees.
    #[error("context {context} does not own region {handle:?}")]
    NotOwner {
        /// The region.
        handle: RegionHandle,
        /// The refused context.
        context: ContextId,
    },
    /// A size class of the pool has no block left, nor does any larger class.
    #[error(
        "pool exhausted: no free {class} block (capacity {capacity}) and no larger free block"
    )]
    PoolExhausted {
        /// The class asked for.
        class: SizeClass,
        /// Blocks configured for it.
        capacity: usize,
    },
    /// Regions above 1 MiB would hold more than `large_alloc_limit` bytes.
    #[error("large allocations exhausted: {requested} bytes requested, {in_use} of {limit} bytes in use")]
    LargeAllocLimit {
        /// Bytes asked for (page-rounded).
        requested: usize,
        /// Bytes of large allocations held.
        in_use: usize,
        /// The configured `large_alloc_limit`.
        limit: usize,
    },
    /// The region's lock could not be had within `lock_wait`.
    #[error("region {handle:?} busy: lock not granted within the configured wait")]
    RegionBusy {
        /// The region.
        handle: RegionHandle,
    },
    /// Another live region has this name.
    #[error("a region named `{0}` already exists")]
    NameTaken(String),
    /// No live region has this name.
    #[error("no region named `{0}`")]
    NameNotFound(String),
    /// `offset + len` does not fit in 64 bits.
    #[error("offset {offset} + length {len} overflows 64 bits")]
    OffsetOverflow {
        /// Start offset.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// Another pool refusal (system allocation failure, out-of-bounds block access).
    #[error(transparent)]
    Pool(PoolError),
    /// A mapped namespace refused (the message says which file and why).
    #[error("mapped namespace: {0}")]
    Mapped(String),
    /// Persistent regions may not take the slots kept for transaction-scoped
    /// ones.
    #[error("too many persistent regions (limit {limit}; the other slots are kept for transaction-scoped regions)")]
    TooManyPersistentRegions {
        /// The most persistent regions at once.
        limit: usize,
    },
    /// The host changed the region's grants or mappings since the
    /// transaction resolved it: resolve it again.
    #[error("region {0:?} changed since it was resolved")]
    StaleResolution(RegionHandle),
    /// Another registry refusal (page out of range, slot state).
    #[error(transparent)]
    Region(RegionError),
}

impl ShmError {
    /// The opcode halt cause this error stands for, if it is one (spec §5);
    /// resource errors (limits, pool) are not halts: `SHARED_ALLOC` pushes 0.
    ///
    /// ```
    /// use shm_manager::ShmError;
    /// use shm_metrics::HaltCause;
    /// use shm_primitives::RegionHandle;
    /// let h = RegionHandle::new(1, 1).unwrap();
    /// assert_eq!(ShmError::RegionFreed(h).halt_cause(), Some(HaltCause::FreedRegion));
    /// assert_eq!(ShmError::TooManySharedRegions { limit: 1 }.halt_cause(), None);
    /// ```
    pub fn halt_cause(&self) -> Option<HaltCause> {
        Some(match self {
            Self::InvalidRegionHandle(_) => HaltCause::InvalidHandle,
            Self::RegionFreed(_) => HaltCause::FreedRegion,
            Self::MappingNotFound { .. } => HaltCause::NoMapping,
            Self::NoReadPermission { .. }
            | Self::NoWritePermission { .. }
            | Self::ReadOnlyMapping { .. }
            | Self::NotAllowedToFree { .. }
            | Self::NotOwner { .. } => HaltCause::PermissionDenied,
            Self::OffsetOverflow { .. } => HaltCause::OffsetOverflow,
            Self::RegionBusy { .. } => HaltCause::RegionBusy,
            _ => return None,
        })
    }
}

impl From<PoolError> for ShmError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::ZeroSize => Self::ZeroSize,
            PoolError::PoolExhausted { class, capacity } => Self::PoolExhausted { class, capacity },
            PoolError::LargeLimitReached {
                requested,
                in_use,
                limit,
            } => Self::LargeAllocLimit {
                requested,
                in_use,
                limit,
            },
            PoolError::TooLarge { requested, limit } => Self::LargeAllocLimit {
                requested,
                in_use: 0,
                limit,
            },
            other => Self::Pool(other),
        }
    }
}

impl From<RegionError> for ShmError {
    fn from(error: RegionError) -> Self {
        use RegionError as R;
        match error {
            R::InvalidRegionHandle(h) => Self::InvalidRegionHandle(h),
            R::RegionFreed(h) => Self::RegionFreed(h),
            R::TooManyRegions { limit } => Self::TooManySharedRegions { limit },
            R::TooManyPersistentRegions { limit } => Self::TooManyPersistentRegions { limit },
            R::RegionTooLarge { requested, max } => Self::RegionTooLarge { requested, max },
            R::ZeroSize => Self::ZeroSize,
            R::NameTaken(name) => Self::NameTaken(name),
            R::NameNotFound(name) => Self::NameNotFound(name),
            R::MappingNotFound { handle, context } => Self::MappingNotFound { handle, context },
            R::OffsetOverflow { offset, len } => Self::OffsetOverflow { offset, len },
            R::Pool(pool) => pool.into(),
            other => Self::Region(other),
        }
    }
}

impl From<AccessDenied> for ShmError {
    fn from(denied: AccessDenied) -> Self {
        let (handle, context) = (denied.handle(), denied.context());
        match denied {
            AccessDenied::NoReadPermission { .. } => Self::NoReadPermission { handle, context },
            AccessDenied::NoWritePermission { .. } => Self::NoWritePermission { handle, context },
            AccessDenied::MappingNotFound { .. } => Self::MappingNotFound { handle, context },
            AccessDenied::ReadOnlyMapping { .. } => Self::ReadOnlyMapping { handle, context },
            AccessDenied::NotAllowedToFree { .. } => Self::NotAllowedToFree { handle, context },
            AccessDenied::NotOwner { .. } => Self::NotOwner { handle, context },
        }
    }
}

impl From<RegionBusy> for ShmError {
    fn from(RegionBusy { handle, .. }: RegionBusy) -> Self {
        Self::RegionBusy { handle }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_primitives::Address;
    use ShmError as E;

    #[test]
    fn lower_errors_flatten_to_named_variants_and_halt_causes() {
        let (handle, context) = (RegionHandle::new(2, 3).unwrap(), Address::repeat_byte(7));
        let (class, capacity) = (SizeClass::K4, 2);
        let exhausted = RegionError::Pool(PoolError::PoolExhausted { class, capacity });
        assert_eq!(E::from(exhausted), E::PoolExhausted { class, capacity });
        let too_many = E::from(RegionError::TooManyRegions { limit: 4 });
        assert_eq!(too_many, E::TooManySharedRegions { limit: 4 });
        let not_owner = E::from(AccessDenied::NotOwner { context, handle });
        assert_eq!(not_owner, E::NotOwner { handle, context });
        let other = RegionError::PageOutOfRange(9);
        assert_eq!(E::from(other.clone()), E::Region(other));
        let other = PoolError::SystemAllocFailed { bytes: 1 };
        assert_eq!(E::from(other.clone()), E::Pool(other));

        let denied = Some(HaltCause::PermissionDenied);
        let (no_mapping, busy) = (Some(HaltCause::NoMapping), Some(HaltCause::RegionBusy));
        for (error, cause) in [
            (E::NoReadPermission { handle, context }, denied),
            (E::NoWritePermission { handle, context }, denied),
            (E::ReadOnlyMapping { handle, context }, denied),
            (E::NotAllowedToFree { handle, context }, denied),
            (E::NotOwner { handle, context }, denied),
            (E::MappingNotFound { handle, context }, no_mapping),
            (E::RegionBusy { handle }, busy),
            (E::SharedMemoryDisabled, None),
        ] {
            assert_eq!(error.halt_cause(), cause, "{error}");
        }
    }
}
