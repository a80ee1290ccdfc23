//! How many blocks a pool keeps, and how it zeroes and shrinks them.

/// Configuration of a [`BlockPool`](crate::BlockPool).
///
/// Per-class arrays are indexed by [`SizeClass::index`](crate::SizeClass::index):
/// `[64 B, 4 KiB, 64 KiB, 1 MiB]`.
///
/// ```
/// use shm_pool::PoolConfig;
/// let config = PoolConfig { blocks_per_class: [64, 16, 4, 1], ..PoolConfig::default() };
/// assert!(!config.zero_on_return);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Blocks pre-allocated per class; also the most blocks of that class that
    /// ever exist at once (the pool never allocates classed blocks beyond it).
    pub blocks_per_class: [usize; 4],
    /// Paranoid mode: zero a block's dirty bytes eagerly when it is released
    /// (and before large or compacted blocks go back to the system), instead of
    /// lazily when it is next handed out.
    pub zero_on_return: bool,
    /// [`BlockPool::compact`](crate::BlockPool::compact) keeps at least this many
    /// free blocks per class.
    pub retain_floor: [usize; 4],
    /// Total bytes that allocations above 1 MiB may hold at once.
    pub large_alloc_limit: usize,
}

impl PoolConfig {
    /// A configuration with `blocks_per_class` blocks, lazy zeroing, a retain
    /// floor of half of each class, and a large-allocation limit of 64 MiB.
    pub const fn with_blocks(blocks_per_class: [usize; 4]) -> Self {
        Self {
            blocks_per_class,
            zero_on_return: false,
            retain_floor: [
                blocks_per_class[0] / 2,
                blocks_per_class[1] / 2,
                blocks_per_class[2] / 2,
                blocks_per_class[3] / 2,
            ],
            large_alloc_limit: 64 << 20,
        }
    }

    /// Bytes that the configured blocks take when every class is full.
    pub fn classed_bytes(&self) -> usize {
        crate::SizeClass::ALL
            .into_iter()
            .map(|class| {
                class
                    .bytes()
                    .saturating_mul(self.blocks_per_class[class.index()])
            })
            .fold(0usize, usize::saturating_add)
    }
}

impl Default for PoolConfig {
    /// The `development` preset's pools: 256 / 64 / 16 / 4 blocks.
    fn default() -> Self {
        Self::with_blocks([256, 64, 16, 4])
    }
}
