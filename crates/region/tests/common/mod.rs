//! One-call forms of the guard operations, for tests: each takes the region's
//! lock for its own duration, as the registry's callers do.
#![allow(dead_code)]

use shm_pool::{BlockPool, PoolConfig};
use shm_primitives::RegionHandle;
use shm_primitives::{ContextId, MapOptions, PAGE_SIZE};
use shm_region::{Grant, RegionError, RegionRegistry, RegistryConfig, WriteOutcome};

/// A registry over a pool of `blocks` per size class (and 8 MiB for large
/// blocks) with room for `max_regions` regions, persistent or not, of up to
/// `max_region_size` bytes.
pub(super) fn registry_with(
    blocks: [usize; 4],
    max_regions: usize,
    max_region_size: u64,
) -> RegionRegistry {
    let mut pool_config = PoolConfig::with_blocks(blocks);
    pool_config.large_alloc_limit = 8 << 20;
    RegionRegistry::new(
        BlockPool::new(pool_config),
        RegistryConfig {
            max_regions,
            max_region_size,
            max_persistent_regions: max_regions,
        },
    )
}

pub(super) trait RegistryExt: std::borrow::Borrow<RegionRegistry> {
    fn read(&self, h: RegionHandle, offset: u64, buf: &mut [u8]) -> Result<usize, RegionError> {
        self.borrow().lock_read(h)?.read(offset, buf)
    }
    fn write(
        &self,
        h: RegionHandle,
        offset: u64,
        data: &[u8],
        allow_grow: bool,
    ) -> Result<WriteOutcome, RegionError> {
        self.borrow().lock_write(h)?.write(offset, data, allow_grow)
    }
    fn set_size(&self, h: RegionHandle, size: u64) -> Result<u64, RegionError> {
        self.borrow().lock_write(h)?.set_size(size)
    }
    fn read_page(
        &self,
        h: RegionHandle,
        page: u64,
        out: &mut [u8; PAGE_SIZE],
    ) -> Result<usize, RegionError> {
        self.borrow().lock_read(h)?.read_page(page, out)
    }
    fn restore_page(
        &self,
        h: RegionHandle,
        page: u64,
        saved: &[u8; PAGE_SIZE],
    ) -> Result<usize, RegionError> {
        self.borrow().lock_write(h)?.restore_page(page, saved)
    }
    fn map(
        &self,
        h: RegionHandle,
        context: ContextId,
        options: MapOptions,
    ) -> Result<Option<MapOptions>, RegionError> {
        Ok(self.borrow().lock_write(h)?.map(context, options))
    }
    fn unmap(&self, h: RegionHandle, context: ContextId) -> Result<MapOptions, RegionError> {
        self.borrow().lock_write(h)?.unmap(context)
    }
    fn grant(
        &self,
        h: RegionHandle,
        context: ContextId,
        grant: Grant,
    ) -> Result<Option<Grant>, RegionError> {
        Ok(self.borrow().lock_write(h)?.grant(context, grant))
    }
    fn revoke(&self, h: RegionHandle, context: ContextId) -> Result<Option<Grant>, RegionError> {
        Ok(self.borrow().lock_write(h)?.revoke(context))
    }
}

impl RegistryExt for RegionRegistry {}
