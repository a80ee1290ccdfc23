//! The pool: per-class free lists, large allocations and their counters.

use std::alloc::Layout;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::block::{Block, BlockKind};
use crate::raw::RawBlock;
use crate::stats::{ClassStats, LargeStats, PoolStats};
use crate::{PoolConfig, PoolError, SizeClass, PAGE_ALIGN};

/// A block waiting on a free list, with the end of its possibly non-zero prefix.
struct FreeBlock {
    raw: RawBlock,
    dirty: usize,
}

/// A class's free list and counters. They sit under one lock because a free
/// list push or pop takes it anyway: bumping plain integers inside that short
/// critical section is cheaper than separate atomic operations, and `stats()`
/// sees each class consistently.
struct ClassState {
    /// LIFO, so the most recently used (cache-warm) block goes out first.
    /// Its capacity is reserved up front: a push never reallocates.
    free: Vec<FreeBlock>,
    /// Blocks in existence (free + allocated + being created by `regrow`).
    total: usize,
    allocated: usize,
    high_water: usize,
    /// Bytes requested for the blocks of this class currently handed out.
    requested_bytes: usize,
    fallback_allocations: u64,
}

/// One size class. Aligned to 128 bytes so that threads working on different
/// classes do not share the cache lines of their locks.
#[repr(align(128))]
struct ClassPool {
    class: SizeClass,
    capacity: usize,
    state: Mutex<ClassState>,
}

impl ClassPool {
    fn new(class: SizeClass, capacity: usize) -> Self {
        let mut free = Vec::with_capacity(capacity);
        // Pre-allocate; if the system runs short, stop early and let later
        // allocations re-create blocks up to `capacity`.
        while free.len() < capacity {
            match RawBlock::alloc_zeroed(class.layout()) {
                Some(raw) => free.push(FreeBlock { raw, dirty: 0 }),
                None => break,
            }
        }
        let state = ClassState {
            total: free.len(),
            free,
            allocated: 0,
            high_water: 0,
            requested_bytes: 0,
            fallback_allocations: 0,
        };
        Self {
            class,
            capacity,
            state: Mutex::new(state),
        }
    }

    /// Pops a free block and counts it as handed out for `requested` bytes.
    #[inline]
    fn pop(&self, requested: usize, fallback: bool) -> Option<FreeBlock> {
        let mut state = self.state.lock();
        let block = state.free.pop()?;
        state.allocated += 1;
        state.high_water = state.high_water.max(state.allocated);
        state.requested_bytes += requested;
        state.fallback_allocations += u64::from(fallback);
        Some(block)
    }

    /// Pushes a released block and uncounts it.
    #[inline]
    fn push(&self, block: FreeBlock, requested: usize) {
        let mut state = self.state.lock();
        state.free.push(block);
        state.allocated -= 1;
        state.requested_bytes -= requested;
    }

    /// Makes a fresh block, counted as handed out, if the class holds fewer
    /// than `capacity` (after `compact`). The system allocation happens
    /// outside the lock, on a slot reserved under it.
    fn regrow(&self, requested: usize) -> Result<Option<FreeBlock>, PoolError> {
        {
            let mut state = self.state.lock();
            if state.total >= self.capacity {
                return Ok(None);
            }
            state.total += 1;
        }
        let fresh = RawBlock::alloc_zeroed(self.class.layout());
        let mut state = self.state.lock();
        match fresh {
            Some(raw) => {
                state.allocated += 1;
                state.high_water = state.high_water.max(state.allocated);
                state.requested_bytes += requested;
                Ok(Some(FreeBlock { raw, dirty: 0 }))
            }
            None => {
                state.total -= 1;
                Err(PoolError::SystemAllocFailed {
                    bytes: self.class.bytes(),
                })
            }
        }
    }

    /// Takes the free blocks above `floor` off the list (the coldest first).
    fn drain_above(&self, floor: usize) -> Vec<FreeBlock> {
        let mut state = self.state.lock();
        let excess = state.free.len().saturating_sub(floor);
        state.total -= excess;
        state.free.drain(..excess).collect()
    }

    fn stats(&self) -> (ClassStats, usize) {
        let state = self.state.lock();
        let stats = ClassStats {
            class: self.class,
            capacity: self.capacity,
            total: state.total,
            free: state.free.len(),
            allocated: state.allocated,
            high_water: state.high_water,
            fallback_allocations: state.fallback_allocations,
        };
        (stats, state.requested_bytes)
    }
}

/// State shared by a pool and the blocks it handed out.
pub(crate) struct PoolShared {
    config: PoolConfig,
    classes: [ClassPool; 4],
    large_bytes: AtomicUsize,
    large_count: AtomicUsize,
    large_high_water: AtomicUsize,
    large_total: AtomicU64,
    large_requested: AtomicUsize,
}

impl PoolShared {
    /// Takes a block back from a [`Block`] being released or dropped.
    pub(crate) fn take_back(
        &self,
        mut raw: RawBlock,
        kind: BlockKind,
        dirty: usize,
        requested: usize,
    ) {
        match kind {
            BlockKind::Classed(class) => {
                let mut dirty = dirty;
                if self.config.zero_on_return && dirty > 0 {
                    raw.scrub_prefix(dirty);
                    dirty = 0;
                }
                self.classes[class.index()].push(FreeBlock { raw, dirty }, requested);
            }
            BlockKind::Large => {
                let len = raw.len();
                if self.config.zero_on_return {
                    raw.scrub_prefix(dirty);
                }
                drop(raw);
                self.large_requested.fetch_sub(requested, Relaxed);
                self.large_count.fetch_sub(1, Relaxed);
                self.large_bytes.fetch_sub(len, Relaxed);
            }
        }
    }
}

/// A set of pre-allocated block pools, one per [`SizeClass`], plus accounting
/// for large allocations. `Send + Sync`; clone it (or put it in an `Arc`) to share:
/// clones share the same blocks.
///
/// See the [crate docs](crate) for the zeroing, fallback and large-allocation rules.
///
/// ```
/// use shm_pool::{BlockPool, PoolConfig, PoolError, SizeClass};
/// let pool = BlockPool::new(PoolConfig::with_blocks([0, 1, 0, 0]));
/// let block = pool.allocate_class(SizeClass::K4)?;
/// assert!(matches!(pool.allocate(10), Err(PoolError::PoolExhausted { .. })));
/// pool.release(block);
/// assert!(pool.allocate(10).is_ok());
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Clone)]
pub struct BlockPool {
    shared: Arc<PoolShared>,
}

impl BlockPool {
    /// Makes a pool and pre-allocates `config.blocks_per_class` zeroed blocks
    /// per class. If the system cannot provide them all, the pool starts with
    /// fewer and tries again on demand.
    pub fn new(config: PoolConfig) -> Self {
        let classes = SizeClass::ALL
            .map(|class| ClassPool::new(class, config.blocks_per_class[class.index()]));
        Self {
            shared: Arc::new(PoolShared {
                config,
                classes,
                large_bytes: AtomicUsize::new(0),
                large_count: AtomicUsize::new(0),
                large_high_water: AtomicUsize::new(0),
                large_total: AtomicU64::new(0),
                large_requested: AtomicUsize::new(0),
            }),
        }
    }

    /// The configuration the pool was made with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// An all-zero block of at least `size` bytes: from the smallest class that
    /// fits (falling back to larger classes' free blocks when it is empty), or
    /// one large allocation above 1 MiB.
    ///
    /// # Errors
    /// [`PoolError::ZeroSize`], [`PoolError::PoolExhausted`], and for large
    /// requests [`PoolError::TooLarge`] or [`PoolError::LargeLimitReached`].
    pub fn allocate(&self, size: usize) -> Result<Block, PoolError> {
        if size == 0 {
            return Err(PoolError::ZeroSize);
        }
        match SizeClass::for_size(size) {
            Some(class) => self.take(class, size),
            None => self.allocate_large(size),
        }
    }

    /// An all-zero block of `class` (or, when that class is empty, of the next
    /// larger class that has a free block).
    ///
    /// # Errors
    /// [`PoolError::PoolExhausted`] when neither is available.
    pub fn allocate_class(&self, class: SizeClass) -> Result<Block, PoolError> {
        self.take(class, class.bytes())
    }

    /// One page-aligned, all-zero allocation of `size` bytes rounded up to 4 KiB,
    /// counted against the large-allocation limit. [`BlockPool::allocate`] uses
    /// this above 1 MiB; it may also be called for smaller sizes.
    ///
    /// # Errors
    /// [`PoolError::ZeroSize`], [`PoolError::TooLarge`] (bigger than the limit
    /// itself), [`PoolError::LargeLimitReached`] (does not fit next to the large
    /// allocations held), [`PoolError::SystemAllocFailed`].
    pub fn allocate_large(&self, size: usize) -> Result<Block, PoolError> {
        if size == 0 {
            return Err(PoolError::ZeroSize);
        }
        let shared = &self.shared;
        let limit = shared.config.large_alloc_limit;
        let too_large = PoolError::TooLarge {
            requested: size,
            limit,
        };
        let rounded = size
            .checked_next_multiple_of(PAGE_ALIGN)
            .ok_or(too_large.clone())?;
        if rounded > limit {
            return Err(too_large);
        }
        let layout = Layout::from_size_align(rounded, PAGE_ALIGN).map_err(|_| too_large)?;
        let in_use = shared
            .large_bytes
            .fetch_update(Relaxed, Relaxed, |used| {
                used.checked_add(rounded).filter(|&n| n <= limit)
            })
            .map_err(|in_use| PoolError::LargeLimitReached {
                requested: rounded,
                in_use,
                limit,
            })?;
        let Some(raw) = RawBlock::alloc_zeroed(layout) else {
            shared.large_bytes.fetch_sub(rounded, Relaxed);
            return Err(PoolError::SystemAllocFailed { bytes: rounded });
        };
        shared.large_high_water.fetch_max(in_use + rounded, Relaxed);
        shared.large_count.fetch_add(1, Relaxed);
        shared.large_total.fetch_add(1, Relaxed);
        shared.large_requested.fetch_add(size, Relaxed);
        Ok(Block::new(raw, BlockKind::Large, size, Arc::clone(shared)))
    }

    /// Gives a block back: a classed block goes to its class's free list (dirty
    /// prefix zeroed now under `zero_on_return`, else when next handed out), a
    /// large one is freed to the system. Dropping the block does the same; a
    /// block from another pool goes back to that pool.
    pub fn release(&self, block: Block) {
        drop(block);
    }

    /// Frees free blocks above [`PoolConfig::retain_floor`] in every class back
    /// to the system (the least recently used first) and returns the bytes freed.
    /// A class may later grow back up to its configured count on demand.
    pub fn compact(&self) -> usize {
        let shared = &self.shared;
        let mut freed_bytes = 0;
        for pool in &shared.classes {
            let floor = shared.config.retain_floor[pool.class.index()];
            let surplus = pool.drain_above(floor);
            if surplus.is_empty() {
                continue;
            }
            freed_bytes += surplus.len() * pool.class.bytes();
            for mut block in surplus {
                if shared.config.zero_on_return {
                    block.raw.scrub_prefix(block.dirty);
                }
            }
        }
        freed_bytes
    }

    /// A snapshot of the counters (see [`PoolStats`] for what each means).
    pub fn stats(&self) -> PoolStats {
        let shared = &self.shared;
        let per_class = shared.classes.each_ref().map(ClassPool::stats);
        let classes = per_class.map(|(stats, _)| stats);
        let large = LargeStats {
            count: shared.large_count.load(Relaxed),
            bytes_in_use: shared.large_bytes.load(Relaxed),
            high_water_bytes: shared.large_high_water.load(Relaxed),
            limit: shared.config.large_alloc_limit,
            allocations_total: shared.large_total.load(Relaxed),
        };
        let requested_bytes = per_class
            .iter()
            .map(|(_, requested)| requested)
            .sum::<usize>()
            + shared.large_requested.load(Relaxed);
        let handed_out_bytes = classes
            .iter()
            .map(ClassStats::allocated_bytes)
            .sum::<usize>()
            + large.bytes_in_use;
        let existing: usize = classes.iter().map(ClassStats::total_bytes).sum();
        let allocated: usize = classes.iter().map(ClassStats::allocated_bytes).sum();
        let utilization = if existing == 0 {
            0.0
        } else {
            (allocated as f64 / existing as f64).min(1.0)
        };
        let fragmentation = if handed_out_bytes == 0 {
            0.0
        } else {
            (1.0 - requested_bytes as f64 / handed_out_bytes as f64).clamp(0.0, 1.0)
        };
        PoolStats {
            classes,
            large,
            requested_bytes,
            handed_out_bytes,
            utilization,
            fragmentation,
        }
    }

    /// A block for a request of `requested` bytes, from `class` or a larger one.
    fn take(&self, class: SizeClass, requested: usize) -> Result<Block, PoolError> {
        let own = &self.shared.classes[class.index()];
        if let Some(free) = own.pop(requested, false) {
            return Ok(self.hand_out(class, free, requested));
        }
        // Blocks that `compact` gave back may be re-created up to the configured count.
        let regrow_error = match own.regrow(requested) {
            Ok(Some(fresh)) => return Ok(self.hand_out(class, fresh, requested)),
            Ok(None) => None,
            Err(error) => Some(error),
        };
        let mut next = class.larger();
        while let Some(larger) = next {
            if let Some(free) = self.shared.classes[larger.index()].pop(requested, true) {
                return Ok(self.hand_out(larger, free, requested));
            }
            next = larger.larger();
        }
        Err(regrow_error.unwrap_or(PoolError::PoolExhausted {
            class,
            capacity: own.capacity,
        }))
    }

    /// Zeroes what a free block's last user dirtied (outside any lock) and wraps it.
    #[inline]
    fn hand_out(&self, class: SizeClass, free: FreeBlock, requested: usize) -> Block {
        let FreeBlock { mut raw, dirty } = free;
        if dirty > 0 {
            raw.zero_prefix(dirty);
        }
        Block::new(
            raw,
            BlockKind::Classed(class),
            requested,
            Arc::clone(&self.shared),
        )
    }
}

impl Default for BlockPool {
    /// A pool with [`PoolConfig::default`].
    fn default() -> Self {
        Self::new(PoolConfig::default())
    }
}

impl fmt::Debug for BlockPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockPool")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}
