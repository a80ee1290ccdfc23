//! A point-in-time view of a pool's counters.

use crate::SizeClass;

/// Counters of one size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassStats {
    /// The class.
    pub class: SizeClass,
    /// Blocks configured for the class (the most that ever exist at once).
    pub capacity: usize,
    /// Blocks that currently exist (free + allocated); below `capacity` after
    /// [`BlockPool::compact`](crate::BlockPool::compact).
    pub total: usize,
    /// Blocks on the free list.
    pub free: usize,
    /// Blocks handed out and not yet released.
    pub allocated: usize,
    /// Most blocks allocated at once since the pool was made.
    pub high_water: usize,
    /// Blocks of this class handed out for a smaller class whose free list was empty.
    pub fallback_allocations: u64,
}

impl ClassStats {
    /// Bytes of the blocks that currently exist in this class.
    pub fn total_bytes(&self) -> usize {
        self.total * self.class.bytes()
    }

    /// Bytes of the blocks currently handed out from this class.
    pub fn allocated_bytes(&self) -> usize {
        self.allocated * self.class.bytes()
    }
}

/// Counters of the allocations above 1 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargeStats {
    /// Large allocations currently held.
    pub count: usize,
    /// Bytes they hold (page-rounded).
    pub bytes_in_use: usize,
    /// Most bytes held at once.
    pub high_water_bytes: usize,
    /// The configured limit on `bytes_in_use`.
    pub limit: usize,
    /// Large allocations made since the pool was made.
    pub allocations_total: u64,
}

/// A snapshot of a [`BlockPool`](crate::BlockPool)'s counters.
///
/// Counters are read one by one without stopping other threads, so a snapshot
/// taken while other threads allocate may be off by the operations in flight;
/// with no operation in flight, `total == free + allocated` for every class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolStats {
    /// Per class, indexed by [`SizeClass::index`].
    pub classes: [ClassStats; 4],
    /// Allocations above 1 MiB.
    pub large: LargeStats,
    /// Sum of the sizes callers asked for, over the blocks currently handed out.
    pub requested_bytes: usize,
    /// Sum of the lengths of the blocks currently handed out (classed and large).
    pub handed_out_bytes: usize,
    /// Allocated bytes / existing bytes over the classed blocks, in `[0, 1]`;
    /// 0 when no classed block exists.
    pub utilization: f64,
    /// Internal fragmentation: `1 − requested_bytes / handed_out_bytes`, in `[0, 1)`;
    /// 0 when nothing is handed out. A 100-byte request served by a 4 KiB
    /// block alone gives `1 − 100/4096 ≈ 0.976`.
    pub fragmentation: f64,
}

impl PoolStats {
    /// Counters of one class.
    pub fn class(&self, class: SizeClass) -> &ClassStats {
        &self.classes[class.index()]
    }

    /// Bytes the pool holds from the system: every existing classed block plus
    /// the large allocations.
    pub fn reserved_bytes(&self) -> usize {
        self.classes
            .iter()
            .map(ClassStats::total_bytes)
            .sum::<usize>()
            + self.large.bytes_in_use
    }
}
