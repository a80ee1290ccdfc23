//! Which shard of a per-thread sharded structure the calling thread uses.
//!
//! The pool's free lists, the manager's collection gate and the metrics'
//! lifecycle counters are split into shards so that threads working at once
//! touch different cache lines. They all place a thread the same way: each
//! thread is dealt a number round-robin the first time it asks, so threads
//! started together land on different shards.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

/// Most shards a structure is split into by default: beyond this, the passes
/// that must visit every shard (a pool's slow path, a collection) cost more
/// than any thread count could win.
pub const MAX_SHARDS: usize = 64;

/// The calling thread's shard among `shards` (a power of two ≥ 1).
///
/// ```
/// use shm_primitives::thread_shard;
/// let mine = thread_shard(8);
/// assert!(mine < 8);
/// assert_eq!(thread_shard(8), mine); // the same thread, the same shard
/// assert_eq!(thread_shard(1), 0);
/// ```
#[inline]
pub fn thread_shard(shards: usize) -> usize {
    debug_assert!(shards.is_power_of_two());
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // `usize::MAX`: not dealt yet.
        static DEALT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    // A thread whose thread-locals are being torn down uses shard 0.
    let dealt = DEALT
        .try_with(|dealt| {
            if dealt.get() == usize::MAX {
                dealt.set(NEXT.fetch_add(1, Relaxed));
            }
            dealt.get()
        })
        .unwrap_or(0);
    dealt & (shards - 1)
}

/// How many shards to use when not told: the machine's available parallelism
/// rounded up to a power of two, at most [`MAX_SHARDS`].
///
/// ```
/// let shards = shm_primitives::default_shard_count();
/// assert!(shards.is_power_of_two() && shards <= shm_primitives::MAX_SHARDS);
/// ```
pub fn default_shard_count() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

/// Keeps its contents on a cache-line pair of their own, so that threads
/// working on neighbouring shards never invalidate each other's lines (128
/// bytes: x86's adjacent-line prefetcher pulls lines in pairs).
///
/// ```
/// use shm_primitives::CachePadded;
/// let counters = [CachePadded(0u64), CachePadded(0u64)];
/// assert_eq!(std::mem::align_of_val(&counters[0]), 128);
/// assert_eq!(*counters[1], 0);
/// ```
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CachePadded<T>(pub T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
