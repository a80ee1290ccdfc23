//! One-call forms of the guard operations, for tests: each takes the region's
//! lock for its own duration, as the registry's callers do.
#![allow(dead_code)]

use shm_primitives::RegionHandle;
use shm_primitives::{ContextId, MapOptions, PAGE_SIZE};
use shm_region::{Grant, MappingInfo, RegionError, RegionRegistry, WriteOutcome};

pub(super) trait RegistryExt {
    fn read(&self, h: RegionHandle, offset: u64, buf: &mut [u8]) -> Result<usize, RegionError>;
    fn write(
        &self,
        h: RegionHandle,
        offset: u64,
        data: &[u8],
        allow_grow: bool,
    ) -> Result<WriteOutcome, RegionError>;
    fn set_size(&self, h: RegionHandle, size: u64) -> Result<u64, RegionError>;
    fn read_page(
        &self,
        h: RegionHandle,
        page: u64,
        out: &mut [u8; PAGE_SIZE],
    ) -> Result<usize, RegionError>;
    fn restore_page(
        &self,
        h: RegionHandle,
        page: u64,
        saved: &[u8; PAGE_SIZE],
    ) -> Result<usize, RegionError>;
    fn map(
        &self,
        h: RegionHandle,
        context: ContextId,
        options: MapOptions,
    ) -> Result<Option<MappingInfo>, RegionError>;
    fn unmap(&self, h: RegionHandle, context: ContextId) -> Result<MappingInfo, RegionError>;
    fn grant(
        &self,
        h: RegionHandle,
        context: ContextId,
        grant: Grant,
    ) -> Result<Option<Grant>, RegionError>;
    fn revoke(&self, h: RegionHandle, context: ContextId) -> Result<Option<Grant>, RegionError>;
}

impl RegistryExt for RegionRegistry {
    fn read(&self, h: RegionHandle, offset: u64, buf: &mut [u8]) -> Result<usize, RegionError> {
        self.lock_read(h)?.read(offset, buf)
    }
    fn write(
        &self,
        h: RegionHandle,
        offset: u64,
        data: &[u8],
        allow_grow: bool,
    ) -> Result<WriteOutcome, RegionError> {
        self.lock_write(h)?.write(offset, data, allow_grow)
    }
    fn set_size(&self, h: RegionHandle, size: u64) -> Result<u64, RegionError> {
        self.lock_write(h)?.set_size(size)
    }
    fn read_page(
        &self,
        h: RegionHandle,
        page: u64,
        out: &mut [u8; PAGE_SIZE],
    ) -> Result<usize, RegionError> {
        self.lock_read(h)?.read_page(page, out)
    }
    fn restore_page(
        &self,
        h: RegionHandle,
        page: u64,
        saved: &[u8; PAGE_SIZE],
    ) -> Result<usize, RegionError> {
        self.lock_write(h)?.restore_page(page, saved)
    }
    fn map(
        &self,
        h: RegionHandle,
        context: ContextId,
        options: MapOptions,
    ) -> Result<Option<MappingInfo>, RegionError> {
        Ok(self.lock_write(h)?.map(context, options))
    }
    fn unmap(&self, h: RegionHandle, context: ContextId) -> Result<MappingInfo, RegionError> {
        self.lock_write(h)?.unmap(context)
    }
    fn grant(
        &self,
        h: RegionHandle,
        context: ContextId,
        grant: Grant,
    ) -> Result<Option<Grant>, RegionError> {
        Ok(self.lock_write(h)?.grant(context, grant))
    }
    fn revoke(&self, h: RegionHandle, context: ContextId) -> Result<Option<Grant>, RegionError> {
        Ok(self.lock_write(h)?.revoke(context))
    }
}
