//! The pool: per-class sharded free lists, large allocations and their counters.
//!
//! # Sharding
//!
//! Each size class splits its free list into shards (a power of two, at least
//! the machine's available parallelism). A thread has a home shard, dealt out
//! round-robin the first time it allocates; a block goes back to the shard it
//! was taken from. So two threads that allocate and release at once each use
//! their own shard lock, counters and reference count, and never share a
//! cache line on the common path. A single thread sees one LIFO free list:
//! the block it released last is the next one it gets.
//!
//! When its home shard is empty (or its high-water budget is spent, see
//! below) a thread takes the slow path: it locks every shard of the class in
//! index order, moves half of the fullest shard's free blocks to its home
//! shard, and allocates there. Holding every lock makes the slow path's
//! decisions exact: a class reports itself exhausted only if no shard had a
//! free block at that moment.
//!
//! # Exact counters
//!
//! Each shard counts the blocks taken from it (`allocated`), the bytes asked
//! for and the fallbacks; `stats()` locks every shard and sums them, so each
//! class's figures are a consistent snapshot. The number of blocks in
//! existence is one atomic per class, reserved with a compare-and-swap before
//! `regrow` allocates, so `total <= capacity` holds at every instant.
//!
//! The high-water mark must be the largest *sum* of the shards' `allocated`,
//! which per-shard maxima cannot give. Each shard therefore has a budget: the
//! budgets add up to the high-water mark and each shard's `allocated` stays
//! within its own, so the sum never passes the mark unseen. A shard that would
//! exceed its budget takes the slow path, where (holding every lock) the sum
//! is exact: the mark rises if the sum passes it, and the budgets are
//! re-dealt. Once the threads' peaks have been seen, budgets stop changing
//! and allocations stay on the fast path.

use std::alloc::Layout;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use shm_primitives::{default_shard_count, thread_shard, MAX_SHARDS};

use crate::block::{Block, Home};
use crate::raw::RawBlock;
use crate::stats::{ClassStats, LargeStats, PoolStats};
use crate::{PoolConfig, PoolError, SizeClass, PAGE_ALIGN};

/// A block waiting on a free list, with the end of its possibly non-zero prefix.
struct FreeBlock {
    raw: RawBlock,
    dirty: usize,
}

/// One shard's free list and counters, under the shard's lock: bumping plain
/// integers inside the critical section a push or pop needs anyway is cheaper
/// than separate atomics.
struct ShardState {
    /// LIFO, so the most recently used (cache-warm) block goes out first.
    /// Its capacity is kept at `total` or more: a push never reallocates.
    free: Vec<FreeBlock>,
    /// Blocks whose home is this shard: free here or handed out from here.
    total: usize,
    /// Blocks handed out from this shard and not yet back.
    allocated: usize,
    /// How far `allocated` may rise on the fast path (see the module docs).
    budget: usize,
    /// Bytes requested for the blocks handed out from this shard.
    requested_bytes: usize,
    fallback_allocations: u64,
}

impl ShardState {
    /// Makes sure the free list can take back every block of this shard.
    fn reserve_for_total(&mut self) {
        let room = self.total.saturating_sub(self.free.len());
        self.free.reserve(room);
    }
}

/// One shard of a size class. Blocks taken from it hold an `Arc` to it, so it
/// outlives the pool handle while any of its blocks is out. Aligned to 128
/// bytes so that neighbouring shards never share a cache line (nor the
/// adjacent-line prefetch pair).
#[repr(align(128))]
pub(crate) struct Shard {
    /// Paranoid mode: scrub the dirty prefix on release.
    zero_on_return: bool,
    state: Mutex<ShardState>,
}

impl Shard {
    /// Takes a block of this shard back from a [`Block`] being released or
    /// dropped, and uncounts it.
    pub(crate) fn take_back(&self, mut raw: RawBlock, dirty: usize, requested: usize) {
        let mut dirty = dirty;
        if self.zero_on_return && dirty > 0 {
            // Outside the lock: zeroing may take a while for large classes.
            raw.scrub_prefix(dirty);
            dirty = 0;
        }
        let mut state = self.state.lock();
        state.free.push(FreeBlock { raw, dirty });
        state.allocated -= 1;
        state.requested_bytes -= requested;
    }
}

/// Every shard of one class, locked in index order (the only order in which
/// more than one shard lock is ever held, so it cannot deadlock).
type AllShards<'a> = Vec<MutexGuard<'a, ShardState>>;

/// One size class. Aligned to 128 bytes so that threads working on different
/// classes do not share the cache lines of its rarely written atomics.
#[repr(align(128))]
struct ClassPool {
    class: SizeClass,
    capacity: usize,
    /// A power of two in number.
    shards: Box<[Arc<Shard>]>,
    /// Blocks in existence (free + allocated + being created by `regrow`);
    /// raised only by a compare-and-swap that keeps it `<= capacity`.
    total: AtomicUsize,
    /// Most blocks allocated at once; written only with every shard locked.
    high_water: AtomicUsize,
}

impl ClassPool {
    fn new(class: SizeClass, capacity: usize, shards: usize, zero_on_return: bool) -> Self {
        let mut states: Vec<ShardState> = (0..shards)
            .map(|i| ShardState {
                // Block `j` goes to shard `j % shards`.
                free: Vec::with_capacity(capacity / shards + usize::from(i < capacity % shards)),
                total: 0,
                allocated: 0,
                budget: 0,
                requested_bytes: 0,
                fallback_allocations: 0,
            })
            .collect();
        // Pre-allocate; if the system runs short, stop early and let later
        // allocations re-create blocks up to `capacity`.
        let mut made = 0;
        while made < capacity {
            let Some(raw) = RawBlock::alloc_zeroed(class.layout()) else {
                break;
            };
            let state = &mut states[made % shards];
            state.free.push(FreeBlock { raw, dirty: 0 });
            state.total += 1;
            made += 1;
        }
        Self {
            class,
            capacity,
            shards: states
                .into_iter()
                .map(|state| {
                    Arc::new(Shard {
                        zero_on_return,
                        state: Mutex::new(state),
                    })
                })
                .collect(),
            total: AtomicUsize::new(made),
            high_water: AtomicUsize::new(0),
        }
    }

    fn lock_all(&self) -> AllShards<'_> {
        self.shards.iter().map(|shard| shard.state.lock()).collect()
    }

    /// Pops a free block, preferably from the calling thread's shard, and
    /// counts it as handed out for `requested` bytes; also returns the shard
    /// it belongs to.
    #[inline]
    fn pop(&self, requested: usize, fallback: bool) -> Option<(FreeBlock, &Arc<Shard>)> {
        let home = thread_shard(self.shards.len());
        let shard = &self.shards[home];
        {
            let mut state = shard.state.lock();
            if state.allocated < state.budget {
                if let Some(block) = state.free.pop() {
                    state.allocated += 1;
                    state.requested_bytes += requested;
                    state.fallback_allocations += u64::from(fallback);
                    return Some((block, shard));
                }
            }
        }
        self.pop_slow(home, requested, fallback)
            .map(|block| (block, shard))
    }

    /// [`pop`](Self::pop) with every shard locked: refills an empty home
    /// shard from the fullest one, and re-deals the high-water budgets.
    #[cold]
    fn pop_slow(&self, home: usize, requested: usize, fallback: bool) -> Option<FreeBlock> {
        if self.capacity == 0 {
            // Nothing to find: spare the failing fallback probes the locks.
            return None;
        }
        let mut all = self.lock_all();
        if all[home].free.is_empty() {
            let victim = (0..all.len()).max_by_key(|&i| all[i].free.len())?;
            let take = all[victim].free.len().div_ceil(2);
            if take == 0 {
                return None;
            }
            // The coldest blocks move; the victim keeps its warm ones. Their
            // home changes too, so they come back here when released.
            let moved: Vec<FreeBlock> = all[victim].free.drain(..take).collect();
            all[victim].total -= take;
            let state = &mut all[home];
            state.total += take;
            state.reserve_for_total();
            state.free.extend(moved);
        }
        let block = all[home].free.pop()?;
        self.count_out(&mut all, home, requested, fallback);
        Some(block)
    }

    /// Counts one block handed out from shard `home`, every shard locked:
    /// raises the high-water mark if the exact sum passes it, and re-deals
    /// the budgets if `home` went past its own.
    fn count_out(&self, all: &mut AllShards<'_>, home: usize, requested: usize, fallback: bool) {
        let state = &mut all[home];
        state.allocated += 1;
        state.requested_bytes += requested;
        state.fallback_allocations += u64::from(fallback);
        if state.allocated <= state.budget {
            return;
        }
        let sum: usize = all.iter().map(|s| s.allocated).sum();
        let high_water = self.high_water.load(Relaxed).max(sum);
        self.high_water.store(high_water, Relaxed);
        // Every other shard keeps what it has out now; the rest of the mark
        // goes to `home`, which is the one growing. The budgets add up to the
        // mark and each covers its shard's `allocated`.
        let others = sum - all[home].allocated;
        for (i, state) in all.iter_mut().enumerate() {
            state.budget = if i == home {
                high_water - others
            } else {
                state.allocated
            };
        }
    }

    /// Makes a fresh block, counted as handed out from the calling thread's
    /// shard, if the class holds fewer than `capacity` blocks (after
    /// `compact`). The slot is reserved first, the system allocation happens
    /// outside every lock.
    fn regrow(&self, requested: usize) -> Result<Option<(FreeBlock, &Arc<Shard>)>, PoolError> {
        let reserved = self.total.fetch_update(Relaxed, Relaxed, |total| {
            (total < self.capacity).then_some(total + 1)
        });
        if reserved.is_err() {
            return Ok(None);
        }
        let Some(raw) = RawBlock::alloc_zeroed(self.class.layout()) else {
            self.total.fetch_sub(1, Relaxed);
            return Err(PoolError::SystemAllocFailed {
                bytes: self.class.bytes(),
            });
        };
        let home = thread_shard(self.shards.len());
        let mut all = self.lock_all();
        all[home].total += 1;
        all[home].reserve_for_total();
        self.count_out(&mut all, home, requested, false);
        Ok(Some((FreeBlock { raw, dirty: 0 }, &self.shards[home])))
    }

    /// Takes the free blocks above `floor` (over all shards) off the lists:
    /// always from the shard with the most free blocks, the coldest first.
    fn drain_above(&self, floor: usize) -> Vec<FreeBlock> {
        let mut all = self.lock_all();
        let free: usize = all.iter().map(|s| s.free.len()).sum();
        let excess = free.saturating_sub(floor);
        let mut take = vec![0usize; all.len()];
        for _ in 0..excess {
            let fullest = (0..all.len())
                .max_by_key(|&i| all[i].free.len() - take[i])
                .unwrap_or(0);
            take[fullest] += 1;
        }
        let mut drained = Vec::with_capacity(excess);
        for (state, take) in all.iter_mut().zip(take) {
            state.total -= take;
            drained.extend(state.free.drain(..take));
        }
        self.total.fetch_sub(excess, Relaxed);
        drained
    }

    fn stats(&self) -> (ClassStats, usize) {
        let all = self.lock_all();
        let stats = ClassStats {
            class: self.class,
            capacity: self.capacity,
            total: self.total.load(Relaxed),
            free: all.iter().map(|s| s.free.len()).sum(),
            allocated: all.iter().map(|s| s.allocated).sum(),
            high_water: self.high_water.load(Relaxed),
            fallback_allocations: all.iter().map(|s| s.fallback_allocations).sum(),
        };
        (stats, all.iter().map(|s| s.requested_bytes).sum())
    }
}

/// State shared by a pool and the large blocks it handed out.
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
    /// Takes a large block back from a [`Block`] being released or dropped:
    /// it goes back to the system.
    pub(crate) fn take_back_large(&self, mut raw: RawBlock, dirty: usize, requested: usize) {
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
    ///
    /// Each class's free list is split into as many shards as the machine has
    /// hardware threads (rounded up to a power of two), so that threads
    /// allocating at once do not wait on one lock; see
    /// [`with_shards`](Self::with_shards).
    pub fn new(config: PoolConfig) -> Self {
        Self::with_shards(config, default_shard_count())
    }

    /// As [`new`](Self::new), with `shards` free-list shards per class
    /// (rounded up to a power of two, between 1 and 64). The pre-allocated
    /// blocks are dealt evenly over the shards; a thread allocates from its
    /// own shard and moves blocks over from the others when it runs dry, so
    /// the count changes speed, never what a request gets.
    ///
    /// ```
    /// use shm_pool::{BlockPool, PoolConfig, SizeClass};
    /// let pool = BlockPool::with_shards(PoolConfig::with_blocks([3, 0, 0, 0]), 4);
    /// let held: Vec<_> = (0..3).map(|_| pool.allocate(64)).collect::<Result<_, _>>()?;
    /// assert!(pool.allocate(64).is_err()); // all three, wherever they were dealt
    /// assert_eq!(pool.stats().class(SizeClass::B64).high_water, 3);
    /// # drop(held);
    /// # Ok::<(), shm_pool::PoolError>(())
    /// ```
    pub fn with_shards(config: PoolConfig, shards: usize) -> Self {
        let shards = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        let classes = SizeClass::ALL.map(|class| {
            ClassPool::new(
                class,
                config.blocks_per_class[class.index()],
                shards,
                config.zero_on_return,
            )
        });
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
        Ok(Block::new(raw, Home::Large(Arc::clone(shared)), size))
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
        if let Some((free, shard)) = own.pop(requested, false) {
            return Ok(hand_out(class, free, shard, requested));
        }
        // Blocks that `compact` gave back may be re-created up to the configured count.
        let regrow_error = match own.regrow(requested) {
            Ok(Some((fresh, shard))) => return Ok(hand_out(class, fresh, shard, requested)),
            Ok(None) => None,
            Err(error) => Some(error),
        };
        let mut next = class.larger();
        while let Some(larger) = next {
            if let Some((free, shard)) = self.shared.classes[larger.index()].pop(requested, true) {
                return Ok(hand_out(larger, free, shard, requested));
            }
            next = larger.larger();
        }
        Err(regrow_error.unwrap_or(PoolError::PoolExhausted {
            class,
            capacity: own.capacity,
        }))
    }
}

/// Zeroes what a free block's last user dirtied (outside any lock) and wraps
/// it, to go back to `shard`.
#[inline]
fn hand_out(class: SizeClass, free: FreeBlock, shard: &Arc<Shard>, requested: usize) -> Block {
    let FreeBlock { mut raw, dirty } = free;
    if dirty > 0 {
        raw.zero_prefix(dirty);
    }
    let home = Home::Classed {
        class,
        shard: Arc::clone(shard),
    };
    Block::new(raw, home, requested)
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
