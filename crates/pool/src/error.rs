//! Why a pool refused a request.

use crate::SizeClass;

/// Why a [`BlockPool`](crate::BlockPool) or a [`Block`](crate::Block) refused a request.
/// Every refusal is one of these; the pool never panics on a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// A zero-byte allocation was requested.
    #[error("cannot allocate zero bytes")]
    ZeroSize,
    /// No free block of `class` (nor of any larger class to fall back on), and
    /// the class already holds its configured `capacity` of blocks.
    #[error(
        "pool exhausted: no free {class} block (capacity {capacity}) and no larger free block"
    )]
    PoolExhausted {
        /// The class that was asked for.
        class: SizeClass,
        /// Blocks configured for that class.
        capacity: usize,
    },
    /// A large allocation bigger than the whole large-allocation limit
    /// (or too big to describe as an allocation at all).
    #[error("{requested} bytes exceed the large-allocation limit of {limit} bytes")]
    TooLarge {
        /// Bytes asked for.
        requested: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A large allocation that would fit the limit on its own, but not next to
    /// the large allocations currently held.
    #[error("large allocations exhausted: {requested} bytes requested, {in_use} of {limit} bytes in use")]
    LargeLimitReached {
        /// Bytes asked for (rounded up to whole pages).
        requested: usize,
        /// Bytes of large allocations currently held.
        in_use: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The system allocator returned no memory.
    #[error("the system allocator could not provide {bytes} bytes")]
    SystemAllocFailed {
        /// Bytes asked of the system.
        bytes: usize,
    },
    /// External memory refused a write (a mapped region could not write the
    /// undo record that must precede it); nothing was written.
    #[error("write refused: {0}")]
    WriteRefused(#[from] crate::WriteRefused),
    /// A byte range outside a block.
    #[error("range at offset {offset} of {len} bytes exceeds the block's {capacity} bytes")]
    OutOfBounds {
        /// Start of the range.
        offset: usize,
        /// Length of the range.
        len: usize,
        /// Length of the block.
        capacity: usize,
    },
}
