//! One-call forms of the guard operations, for tests: each takes the region's
//! lock for its own duration, as the registry's callers do.
#![allow(dead_code)]

use shm_pool::{BlockPool, PoolConfig};
use shm_primitives::{ContextId, MapOptions, RegionHandle, PAGE_SIZE};
use shm_region::{RegionError, RegionRegistry, RegistryConfig, WriteOutcome};

type R<T> = Result<T, RegionError>;

/// A registry over a pool of `blocks` per size class (and 8 MiB for large
/// blocks) with room for `max_regions` regions, `max_persistent_regions` of
/// them persistent, of up to `max_region_size` bytes.
pub(super) fn registry_with(
    blocks: [usize; 4],
    max_regions: usize,
    max_region_size: u64,
    max_persistent_regions: usize,
) -> RegionRegistry {
    let mut pool_config = PoolConfig::with_blocks(blocks);
    pool_config.large_alloc_limit = 8 << 20;
    let config = RegistryConfig {
        max_regions,
        max_region_size,
        max_persistent_regions,
    };
    RegionRegistry::new(BlockPool::new(pool_config), config)
}

/// The next number of a xorshift generator (deterministic test randomness).
pub(super) fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

pub(super) trait RegistryExt: std::borrow::Borrow<RegionRegistry> {
    fn read(&self, h: RegionHandle, offset: u64, buf: &mut [u8]) -> R<usize> {
        self.borrow().lock_read(h)?.read(offset, buf)
    }
    fn write(&self, h: RegionHandle, offset: u64, data: &[u8], grow: bool) -> R<WriteOutcome> {
        self.borrow().lock_write(h)?.write(offset, data, grow)
    }
    fn set_size(&self, h: RegionHandle, size: u64) -> R<u64> {
        self.borrow().lock_write(h)?.set_size(size)
    }
    fn read_page(&self, h: RegionHandle, page: u64, out: &mut [u8; PAGE_SIZE]) -> R<usize> {
        self.borrow().lock_read(h)?.read_page(page, out)
    }
    fn restore_page(&self, h: RegionHandle, page: u64, saved: &[u8; PAGE_SIZE]) -> R<usize> {
        self.borrow().lock_write(h)?.restore_page(page, saved)
    }
    fn map(&self, h: RegionHandle, cx: ContextId, options: MapOptions) -> R<Option<MapOptions>> {
        Ok(self.borrow().lock_write(h)?.map(cx, options))
    }
    fn unmap(&self, h: RegionHandle, cx: ContextId) -> R<MapOptions> {
        self.borrow().lock_write(h)?.unmap(cx)
    }
}

impl RegistryExt for RegionRegistry {}
