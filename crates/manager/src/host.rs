//! The host API (spec §10): outside any transaction and not journalled.

use shm_pool::Block;
use shm_primitives::{Address, ContextId, MapOptions, Permissions, RegionHandle, RegionOptions};
use shm_region::{Grant, RegionInfo, RegionSpec};

use crate::manager::HostLock;
use crate::{LockMode, SharedMemoryManager, ShmError};

/// The owner of host-made regions unless a [`RegionRequest`] names another:
/// the zero address, where no contract runs, so at Strict and up (only the
/// owner frees) bytecode never frees a host region; at Basic a [`Grant`] may.
pub const HOST_CONTEXT: ContextId = Address::ZERO;

/// What to create through [`SharedMemoryManager::create_region`].
///
/// ```
/// use shm_manager::{RegionRequest, HOST_CONTEXT};
/// use shm_primitives::{Address, Permissions};
/// let request = RegionRequest::new(4096).named("prices").owner(Address::repeat_byte(1));
/// assert_eq!(request.size, 4096);
/// assert_eq!(RegionRequest::new(1).owner, HOST_CONTEXT);
/// assert_eq!(RegionRequest::new(1).permissions, Permissions::read_write());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionRequest {
    /// Unique name, or `None` for an anonymous region.
    pub name: Option<String>,
    /// Initial size in bytes (≥ 1, ≤ `max_region_size`).
    pub size: u64,
    /// The owning context ([`HOST_CONTEXT`] unless set).
    pub owner: ContextId,
    /// The owner's rights (read-write unless set).
    pub permissions: Permissions,
    /// Options fixed at creation (copy-on-write cleared when COW is off).
    pub options: RegionOptions,
    /// Most the region may grow to; `None`: `max_region_size`.
    pub max_size: Option<u64>,
}

impl RegionRequest {
    /// An anonymous, read-write region of `size` bytes owned by [`HOST_CONTEXT`].
    pub fn new(size: u64) -> Self {
        Self {
            name: None,
            size,
            owner: HOST_CONTEXT,
            permissions: Permissions::read_write(),
            options: RegionOptions::default(),
            max_size: None,
        }
    }

    /// Names the region.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the owner.
    pub fn owner(mut self, owner: ContextId) -> Self {
        self.owner = owner;
        self
    }

    /// Sets the options.
    pub fn options(mut self, options: RegionOptions) -> Self {
        self.options = options;
        self
    }

    /// Limits growth.
    pub fn max_size(mut self, max_size: u64) -> Self {
        self.max_size = Some(max_size);
        self
    }
}

impl SharedMemoryManager {
    /// Creates a named region of `size` bytes owned by [`HOST_CONTEXT`] with
    /// the owner rights `permissions`, holding one host reference.
    ///
    /// # Errors
    /// As [`create_region`](Self::create_region).
    pub fn create_shared_region(
        &self,
        name: &str,
        size: u64,
        permissions: Permissions,
        options: RegionOptions,
    ) -> Result<RegionHandle, ShmError> {
        self.create_region(RegionRequest {
            permissions,
            options,
            ..RegionRequest::new(size).named(name)
        })
    }

    /// Creates a region as `request` says, holding one host reference.
    ///
    /// # Errors
    /// [`ShmError::NameTaken`], limit and pool refusals.
    pub fn create_region(&self, request: RegionRequest) -> Result<RegionHandle, ShmError> {
        let spec = RegionSpec {
            name: request.name,
            permissions: request.permissions,
            options: request.options,
            max_size: request.max_size,
            ..RegionSpec::new(request.size, request.owner)
        };
        self.create_held(spec, |handle| {
            self.registry.lock_write(handle)?.add_host_ref();
            Ok(())
        })
    }

    /// Gives `context` a mapping of the region with `options` (replacing any),
    /// as [`effective_map_options`](Self::effective_map_options) adjusts them.
    /// No permission check; a mapping never widens the context's rights.
    pub fn map_shared_region(
        &self,
        handle: RegionHandle,
        context: ContextId,
        options: MapOptions,
    ) -> Result<(), ShmError> {
        self.ensure_enabled()?;
        let options = self.effective_map_options(options);
        // A region is never collected between its check and its mapping.
        let _gate = self.gc_gate.open();
        self.registry.lock_write(handle)?.map(context, options);
        self.metrics.record_mapping(handle, context);
        Ok(())
    }

    /// Removes the mapping of `context`. With `eager_cleanup`, a region left
    /// unreferenced is freed at once.
    ///
    /// # Errors
    /// [`ShmError::MappingNotFound`].
    pub fn unmap_shared_region(
        &self,
        handle: RegionHandle,
        context: ContextId,
    ) -> Result<(), ShmError> {
        self.ensure_enabled()?;
        self.registry.lock_write(handle)?.unmap(context)?;
        self.metrics.record_unmapping(handle, context);
        if self.config.eager_cleanup {
            self.collect_one(handle);
        }
        Ok(())
    }

    /// Copies bytes at `offset` into `buf` (zero past the end of the region);
    /// returns how many came from the region.
    ///
    /// # Errors
    /// [`ShmError::OffsetOverflow`], [`ShmError::RegionBusy`].
    pub fn read_region(
        &self,
        handle: RegionHandle,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, ShmError> {
        let _lock = self.host_resolve(handle, LockMode::Shared)?;
        let read = self.registry.lock_read(handle)?.read(offset, buf)?;
        self.metrics.record_read(read as u64);
        Ok(read)
    }

    /// Writes `data` at `offset`: past the end it writes what fits, unless the
    /// region auto-grows. Returns how many bytes were written.
    ///
    /// # Errors
    /// [`ShmError::OffsetOverflow`], [`ShmError::RegionBusy`].
    pub fn write_region(
        &self,
        handle: RegionHandle,
        offset: u64,
        data: &[u8],
    ) -> Result<usize, ShmError> {
        let _lock = self.host_resolve(handle, LockMode::Exclusive)?;
        let outcome = self
            .registry
            .lock_write(handle)?
            .write(offset, data, true)?;
        if outcome.grew() {
            self.metrics
                .record_region_resized(handle, outcome.old_size, outcome.new_size);
        }
        self.metrics.record_write(outcome.written as u64);
        Ok(outcome.written)
    }

    /// Grants `context` rights on the region; returns the grant it replaces.
    pub fn grant(
        &self,
        handle: RegionHandle,
        context: ContextId,
        grant: Grant,
    ) -> Result<Option<Grant>, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.lock_write(handle)?.grant(context, grant))
    }

    /// Withdraws the grant of `context`; returns it.
    pub fn revoke(
        &self,
        handle: RegionHandle,
        context: ContextId,
    ) -> Result<Option<Grant>, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.lock_write(handle)?.revoke(context))
    }

    /// Takes another host reference on the region; returns how many are held.
    pub fn retain_region(&self, handle: RegionHandle) -> Result<u32, ShmError> {
        self.ensure_enabled()?;
        let _gate = self.gc_gate.open();
        Ok(self.registry.lock_write(handle)?.add_host_ref())
    }

    /// Drops one host reference (never below zero); returns how many are left.
    /// With `eager_cleanup` a region left unreferenced is freed at once.
    pub fn release_region(&self, handle: RegionHandle) -> Result<u32, ShmError> {
        self.ensure_enabled()?;
        let left = self.registry.lock_write(handle)?.drop_host_ref();
        if left == 0 && self.config.eager_cleanup {
            self.collect_one(handle);
        }
        Ok(left)
    }

    /// Frees the region for good, whoever references it: its handle will never
    /// name another region.
    ///
    /// # Errors
    /// [`ShmError::RegionBusy`].
    pub fn free_region(&self, handle: RegionHandle) -> Result<(), ShmError> {
        let _lock = self.host_resolve(handle, LockMode::Exclusive)?;
        self.free_counted(handle).map(drop)
    }

    /// A snapshot of the region: metadata, block capacity, last access.
    pub fn region_info(&self, handle: RegionHandle) -> Result<RegionInfo, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.info(handle)?)
    }

    /// Snapshots of every live region, by slot index.
    pub fn list_regions(&self) -> Result<Vec<RegionInfo>, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.infos())
    }

    /// The handle of the live region called `name`.
    ///
    /// # Errors
    /// [`ShmError::NameNotFound`].
    pub fn find_region(&self, name: &str) -> Result<RegionHandle, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.lookup(name)?)
    }

    /// An all-zero block of at least `size` bytes from the pool, returned by
    /// [`deallocate_to_pool`](Self::deallocate_to_pool) or when dropped.
    ///
    /// # Errors
    /// Pool refusals.
    pub fn allocate_from_pool(&self, size: usize) -> Result<Block, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.pool().allocate(size)?)
    }

    /// Gives a block back to the pool.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`] (the block is released all the same).
    pub fn deallocate_to_pool(&self, block: Block) -> Result<(), ShmError> {
        self.registry.pool().release(block);
        self.ensure_enabled()
    }

    /// Takes `handle`'s lock for one host call; liveness is judged once held.
    fn host_resolve(&self, handle: RegionHandle, mode: LockMode) -> Result<HostLock<'_>, ShmError> {
        self.check_handle(handle)?;
        let lock = self.host_lock(handle, mode, self.config.lock_wait)?;
        self.registry.check(handle)?;
        Ok(lock)
    }
}
