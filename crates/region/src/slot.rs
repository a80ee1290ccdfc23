//! The slot table: where each region lives, with the lock that guards it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use parking_lot::RwLock;
use shm_pool::Block;
use shm_primitives::RegionHandle;

use crate::{RegionError, RegionMeta, RegionSpec};

/// A region as its slot holds it.
pub(crate) struct Occupant {
    pub(crate) meta: RegionMeta,
    /// Holds at least `meta.size` bytes; bytes past the size are always zero,
    /// so growing inside the same block needs no zeroing.
    pub(crate) block: Block,
    /// Freed, but a revert may still bring it back
    /// ([`RegionRegistry::begin_free`](crate::RegionRegistry::begin_free)).
    pub(crate) pending_free: bool,
}

impl Occupant {
    pub(crate) fn new(
        handle: RegionHandle,
        spec: &RegionSpec,
        size: usize,
        max_size: usize,
        block: Block,
    ) -> Self {
        Self {
            meta: RegionMeta {
                handle,
                name: spec.name.clone(),
                owner: spec.owner,
                permissions: spec.permissions,
                options: spec.options,
                size,
                max_size,
                grants: BTreeMap::new(),
                mappings: BTreeMap::new(),
                host_refs: 0,
            },
            block,
            pending_free: false,
        }
    }

    #[inline]
    pub(crate) fn is_live(&self, handle: RegionHandle) -> bool {
        !self.pending_free && self.meta.handle == handle
    }

    /// Whether it is the region `handle` names, awaiting a final free.
    pub(crate) fn is_pending(&self, handle: RegionHandle) -> bool {
        self.pending_free && self.meta.handle == handle
    }
}

/// What a slot says about one handle, without waiting for anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The handle names the slot's live region.
    Live,
    /// The handle names the slot's region, which a transaction began to free:
    /// the free may still be undone, so only that transaction's outcome tells.
    PendingFree,
    /// The handle named a region that is gone for good.
    Freed,
    /// The handle never named a region here.
    Invalid,
}

#[derive(Default)]
pub(crate) struct SlotState {
    /// Highest generation ever issued for this slot (0: none yet): a handle
    /// up to it that is not the live region's named a freed region.
    pub(crate) issued: u32,
    pub(crate) occupant: Option<Occupant>,
}

impl SlotState {
    /// The error for `handle` when it does not name this slot's live region.
    pub(crate) fn dead(&self, handle: RegionHandle) -> RegionError {
        if handle.generation() <= self.issued {
            RegionError::RegionFreed(handle)
        } else {
            RegionError::InvalidRegionHandle(handle)
        }
    }

    pub(crate) fn live(&self, handle: RegionHandle) -> Result<&Occupant, RegionError> {
        self.occupant
            .as_ref()
            .filter(|o| o.is_live(handle))
            .ok_or_else(|| self.dead(handle))
    }

    pub(crate) fn liveness(&self, handle: RegionHandle) -> Liveness {
        match &self.occupant {
            Some(o) if o.is_pending(handle) => Liveness::PendingFree,
            Some(o) if o.meta.handle == handle => Liveness::Live,
            _ if handle.generation() <= self.issued => Liveness::Freed,
            _ => Liveness::Invalid,
        }
    }
}

/// One slot of the registry: the home of successive regions, one at a time.
/// Aligned to 128 bytes so that threads working on neighbouring slots (which
/// concurrent creates take) never share a cache line.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) state: RwLock<SlotState>,
    /// Bumped (under the write lock of `state`) by every change of the
    /// occupant's grants or host mappings, so that a transaction knows its
    /// cached access verdicts still hold. Outside `state`, to be read without
    /// the slot lock ([`RegionRegistry::access_version`](crate::RegionRegistry::access_version)).
    pub(crate) access_version: AtomicU64,
}

/// Slots in the first segment; segment `k` holds `FIRST_SEGMENT << k` slots.
const FIRST_SEGMENT: usize = 64;
/// Enough segments for every `u32` slot index.
const SEGMENTS: usize = 27;

/// Slots with stable addresses, grown a segment at a time: a slot once made
/// never moves, so a handle lookup reads it without any table lock.
#[derive(Default)]
pub(crate) struct Slots {
    segments: [OnceLock<Box<[Slot]>>; SEGMENTS],
}

impl Slots {
    /// (segment, offset) of 0-based slot `position`.
    #[inline]
    fn locate(position: usize) -> (usize, usize) {
        let bucket = position / FIRST_SEGMENT + 1;
        let segment = (usize::BITS - 1 - bucket.leading_zeros()) as usize;
        (segment, position - FIRST_SEGMENT * ((1 << segment) - 1))
    }

    #[inline]
    pub(crate) fn get(&self, position: usize) -> Option<&Slot> {
        let (segment, offset) = Self::locate(position);
        self.segments.get(segment)?.get()?.get(offset)
    }

    pub(crate) fn get_or_make(&self, position: usize) -> Option<&Slot> {
        let (segment, offset) = Self::locate(position);
        self.segments
            .get(segment)?
            .get_or_init(|| {
                (0..FIRST_SEGMENT << segment)
                    .map(|_| Slot::default())
                    .collect()
            })
            .get(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_index_space() {
        assert_eq!(Slots::locate(0), (0, 0));
        assert_eq!(Slots::locate(63), (0, 63));
        assert_eq!(Slots::locate(64), (1, 0));
        assert_eq!(Slots::locate(191), (1, 127));
        assert_eq!(Slots::locate(192), (2, 0));
        let (segment, offset) = Slots::locate(u32::MAX as usize - 1);
        assert!(segment < SEGMENTS && offset < FIRST_SEGMENT << segment);
        let slots = Slots::default();
        assert!(slots.get(200).is_none());
        assert!(slots.get_or_make(200).is_some());
        assert!(slots.get(200).is_some() && slots.get(192).is_some() && slots.get(0).is_none());
    }
}
