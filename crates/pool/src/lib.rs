//! Pre-allocated block pools: the memory under every shared-memory region.
//!
//! A [`BlockPool`] keeps blocks of four sizes ready ([`SizeClass`]: 64 B,
//! 4 KiB, 64 KiB, 1 MiB) so that creating a region costs a free-list pop, not a
//! trip to the system allocator. Blocks of 4 KiB and up are page-aligned, 64 B
//! blocks are cache-line (64-byte) aligned.
//!
//! # Choices
//!
//! - **Always zero, zeroed lazily.** A [`Block`] handed out is all-zero. Each
//!   block tracks a dirty mark (the end of the prefix that may hold non-zero
//!   bytes); only that prefix is zeroed, when the block is next handed out. With
//!   [`PoolConfig::zero_on_return`] (Paranoid) the prefix is zeroed eagerly on
//!   release instead, so freed data never lingers in the pool, and large or
//!   compacted blocks are scrubbed before they go back to the system.
//! - **Bounded.** A class never holds more than
//!   [`PoolConfig::blocks_per_class`] blocks. When its free list is empty the
//!   pool first re-creates blocks that [`BlockPool::compact`] gave back (up to
//!   that count), then falls back to a free block of the next larger classes,
//!   and otherwise returns [`PoolError::PoolExhausted`]. It never panics on a
//!   request.
//! - **Large regions.** A request above 1 MiB is backed by one page-aligned
//!   allocation of its size rounded up to 4 KiB, freed to the system on release.
//!   Together these may hold at most [`PoolConfig::large_alloc_limit`] bytes
//!   ([`PoolError::TooLarge`], [`PoolError::LargeLimitReached`]).
//! - **Lock-light, O(1), sharded.** Each class's free list is split into
//!   shards (as many as the machine has hardware threads, rounded up to a
//!   power of two; [`BlockPool::with_shards`]), each under its own
//!   `parking_lot` mutex held only for a push or pop and the few integer
//!   counters that go with it (never while zeroing, copying or calling the
//!   system allocator). A thread allocates from its own shard and a block
//!   goes back to the shard it came from, so threads allocating at once do
//!   not contend; a thread whose shard is empty moves blocks over from the
//!   others. [`BlockPool::stats`] sums the shards under all their locks, so
//!   each class's figures are consistent and exact, the high-water mark
//!   included. The rare large allocations are counted with atomics.
//! - **Released on drop.** Dropping a [`Block`] returns it to its pool just as
//!   [`BlockPool::release`] does.
//! - **Fragmentation** is internal fragmentation of what is handed out:
//!   `1 − requested bytes / block bytes` (see [`PoolStats::fragmentation`]).
//!
//! ```
//! use shm_pool::{BlockPool, PoolConfig, SizeClass};
//! let pool = BlockPool::new(PoolConfig::with_blocks([64, 16, 4, 1]));
//! let mut block = pool.allocate(5000)?;            // served by a 64 KiB block
//! assert_eq!(block.class(), Some(SizeClass::K64));
//! block.write_at(0, &[0xAA; 32])?;
//! pool.release(block);
//! let again = pool.allocate_class(SizeClass::K64)?;
//! assert!(again.as_slice().iter().all(|&b| b == 0)); // zero again
//! assert_eq!(pool.stats().class(SizeClass::K64).allocated, 1);
//! # Ok::<(), shm_pool::PoolError>(())
//! ```
#![warn(missing_docs)]

mod block;
mod class;
mod config;
mod error;
mod pool;
mod raw;
mod stats;

pub use block::{Block, ExternalMemory, WriteRefused};
pub use class::SizeClass;
pub use config::PoolConfig;
pub use error::PoolError;
pub use pool::BlockPool;
pub use stats::{ClassStats, LargeStats, PoolStats};

/// Alignment of page-aligned blocks (4 KiB and up, and large allocations).
pub const PAGE_ALIGN: usize = 4096;
