//! The slot table: handles with generations, names, limits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use shm_pool::BlockPool;
use shm_primitives::{ContextId, MapOptions, Permissions, RegionHandle, RegionOptions, PAGE_SIZE};

use crate::region::{RegionMeta, WriteOutcome};
use crate::{Grant, MappingInfo, Region, RegionError, RegionInfo};

/// Limits of a [`RegionRegistry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Most regions alive at once (regions awaiting a final free count too).
    pub max_regions: usize,
    /// Largest size any region may have, growth included.
    pub max_region_size: u64,
}

impl Default for RegistryConfig {
    /// The `development` preset: 256 regions of up to 16 MiB.
    fn default() -> Self {
        Self {
            max_regions: 256,
            max_region_size: 16 << 20,
        }
    }
}

/// What to create: see [`RegionRegistry::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionSpec {
    /// Unique name, or `None` for an anonymous region (what `SHARED_ALLOC` makes).
    pub name: Option<String>,
    /// Initial size in bytes (≥ 1).
    pub size: u64,
    /// The owning context.
    pub owner: ContextId,
    /// The owner's rights.
    pub permissions: Permissions,
    /// Options fixed at creation.
    pub options: RegionOptions,
    /// Most the region may grow to; `None` means the registry's maximum.
    pub max_size: Option<u64>,
}

impl RegionSpec {
    /// An anonymous region of `size` bytes owned by `owner` with read-write
    /// rights and default options.
    pub fn new(size: u64, owner: ContextId) -> Self {
        Self {
            name: None,
            size,
            owner,
            permissions: Permissions::read_write(),
            options: RegionOptions::default(),
            max_size: None,
        }
    }

    /// The same spec, named.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The same spec with the owner's rights set.
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// The same spec with options set.
    pub fn options(mut self, options: RegionOptions) -> Self {
        self.options = options;
        self
    }

    /// The same spec with a growth limit.
    pub fn max_size(mut self, max_size: u64) -> Self {
        self.max_size = Some(max_size);
        self
    }
}

enum SlotState {
    /// Never used, or freed for good (then in the free list unless retired).
    Empty,
    Live(Arc<Region>),
    /// Freed but not yet final: unreachable by handle, bytes kept so a revert
    /// can bring it back under the same handle; the slot is not reused.
    PendingFree(Arc<Region>),
}

struct Slot {
    /// Highest generation ever issued for this slot (0: none yet). A handle
    /// whose generation is at most this and that is not the live region's
    /// named a region that was freed.
    issued: u32,
    state: SlotState,
}

#[derive(Default)]
struct SlotTable {
    slots: Vec<Slot>,
    /// Indices (0-based) of empty slots that may be reused: lowest first, so
    /// handle assignment depends only on the registry's history.
    free: BTreeSet<u32>,
    names: HashMap<String, RegionHandle>,
    /// Live and pending-free regions.
    occupied: usize,
}

impl SlotTable {
    fn slot(&self, handle: RegionHandle) -> Result<&Slot, RegionError> {
        self.slots
            .get(slot_index(handle))
            .ok_or(RegionError::InvalidRegionHandle(handle))
    }

    fn live(&self, handle: RegionHandle) -> Result<&Arc<Region>, RegionError> {
        let slot = self.slot(handle)?;
        match &slot.state {
            SlotState::Live(region) if region.handle() == handle => Ok(region),
            _ => Err(dead_handle(slot, handle)),
        }
    }
}

fn slot_index(handle: RegionHandle) -> usize {
    // `index() ≥ 1` by construction of `RegionHandle`.
    (handle.index() - 1) as usize
}

fn dead_handle(slot: &Slot, handle: RegionHandle) -> RegionError {
    if handle.generation() <= slot.issued {
        RegionError::RegionFreed(handle)
    } else {
        RegionError::InvalidRegionHandle(handle)
    }
}

/// The region registry: every region of one manager, addressed by
/// generation-checked [`RegionHandle`]s.
///
/// The slot table sits behind one `RwLock` taken only to look up, insert or
/// remove; each region has its own lock for its bytes and metadata, so work on
/// different regions (and reads of one region) runs in parallel.
///
/// Handles: a new region takes the lowest free slot index, at that slot's next
/// generation. Freeing retires the generation for good; a slot whose
/// generation would wrap is never reused. So a handle never names a region
/// other than the one it was issued for, and handle assignment depends only on
/// the sequence of calls.
///
/// ```
/// use shm_pool::{BlockPool, PoolConfig};
/// use shm_primitives::Address;
/// use shm_region::{RegionError, RegionRegistry, RegionSpec, RegistryConfig};
///
/// let registry = RegionRegistry::new(BlockPool::new(PoolConfig::default()), RegistryConfig::default());
/// let owner = Address::repeat_byte(1);
/// let handle = registry.create(RegionSpec::new(100, owner).named("prices"))?;
/// assert_eq!(registry.write(handle, 96, b"abcdef", false)?.written, 4); // what fits
/// let mut buf = [0xff; 8];
/// assert_eq!(registry.read(handle, 96, &mut buf)?, 4); // past the end reads zero
/// assert_eq!(&buf, b"abcd\0\0\0\0");
/// assert_eq!(registry.lookup("prices")?, handle);
/// registry.free(handle)?;
/// assert_eq!(registry.read(handle, 0, &mut buf), Err(RegionError::RegionFreed(handle)));
/// # Ok::<(), RegionError>(())
/// ```
pub struct RegionRegistry {
    pool: BlockPool,
    config: RegistryConfig,
    table: RwLock<SlotTable>,
}

impl RegionRegistry {
    /// An empty registry taking memory from `pool`.
    pub fn new(pool: BlockPool, config: RegistryConfig) -> Self {
        Self {
            pool,
            config,
            table: RwLock::new(SlotTable::default()),
        }
    }

    /// The pool regions take their blocks from.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    /// The registry's limits.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Regions alive (including those awaiting a final free).
    pub fn len(&self) -> usize {
        self.table.read().occupied
    }

    /// Whether no region is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creates a zeroed region and returns its handle.
    ///
    /// # Errors
    /// [`RegionError::ZeroSize`], [`RegionError::RegionTooLarge`],
    /// [`RegionError::NameTaken`], [`RegionError::TooManyRegions`],
    /// [`RegionError::Pool`].
    pub fn create(&self, spec: RegionSpec) -> Result<RegionHandle, RegionError> {
        let max = self.config.max_region_size;
        if spec.size == 0 {
            return Err(RegionError::ZeroSize);
        }
        let max_size = spec.max_size.unwrap_or(max).min(max);
        let too_large = RegionError::RegionTooLarge {
            requested: spec.size,
            max: max_size,
        };
        if spec.size > max_size {
            return Err(too_large);
        }
        let size = usize::try_from(spec.size).map_err(|_| too_large.clone())?;
        let max_size = usize::try_from(max_size).unwrap_or(usize::MAX);
        // Cheap refusals first, so a doomed request does not churn the pool.
        self.check_room(&self.table.read(), spec.name.as_deref())?;
        let block = self.pool.allocate(size)?;

        let mut table = self.table.write();
        self.check_room(&table, spec.name.as_deref())?;
        let index = match table.free.pop_first() {
            Some(index) => index,
            None => u32::try_from(table.slots.len())
                .ok()
                .filter(|&i| i < u32::MAX)
                .ok_or(RegionError::TooManyRegions {
                    limit: self.config.max_regions,
                })?,
        };
        let position = index as usize;
        if position == table.slots.len() {
            table.slots.push(Slot {
                issued: 0,
                state: SlotState::Empty,
            });
        }
        let slot = &mut table.slots[position];
        // Slots in the free list always have a generation left (see `release_slot`).
        let generation = slot.issued + 1;
        let handle =
            RegionHandle::new(index + 1, generation).ok_or(RegionError::TooManyRegions {
                limit: self.config.max_regions,
            })?;
        let meta = RegionMeta {
            handle,
            name: spec.name.clone(),
            owner: spec.owner,
            permissions: spec.permissions,
            options: spec.options,
            size,
            max_size,
            grants: BTreeMap::new(),
            mappings: BTreeMap::new(),
            host_refs: 0,
            created_at: SystemTime::now(),
            dirty: false,
        };
        slot.issued = generation;
        slot.state = SlotState::Live(Arc::new(Region::new(meta, block, self.pool.clone())));
        table.occupied += 1;
        if let Some(name) = spec.name {
            table.names.insert(name, handle);
        }
        Ok(handle)
    }

    fn check_room(&self, table: &SlotTable, name: Option<&str>) -> Result<(), RegionError> {
        if table.occupied >= self.config.max_regions {
            return Err(RegionError::TooManyRegions {
                limit: self.config.max_regions,
            });
        }
        match name {
            Some(name) if table.names.contains_key(name) => {
                Err(RegionError::NameTaken(name.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// The live region `handle` names.
    ///
    /// # Errors
    /// [`RegionError::InvalidRegionHandle`] if it never named a region here,
    /// [`RegionError::RegionFreed`] if its region was freed.
    pub fn get(&self, handle: RegionHandle) -> Result<Arc<Region>, RegionError> {
        self.table.read().live(handle).cloned()
    }

    /// The handle of the live region called `name`.
    ///
    /// # Errors
    /// [`RegionError::NameNotFound`] (also while its region awaits a final free).
    pub fn lookup(&self, name: &str) -> Result<RegionHandle, RegionError> {
        let table = self.table.read();
        let not_found = || RegionError::NameNotFound(name.to_string());
        let handle = *table.names.get(name).ok_or_else(not_found)?;
        table.live(handle).map(|_| handle).map_err(|_| not_found())
    }

    /// Handles of all live regions, by slot index.
    pub fn handles(&self) -> Vec<RegionHandle> {
        self.live_regions().iter().map(|r| r.handle()).collect()
    }

    /// All live regions, by slot index (for stats and listings).
    pub fn live_regions(&self) -> Vec<Arc<Region>> {
        let table = self.table.read();
        table
            .slots
            .iter()
            .filter_map(|slot| match &slot.state {
                SlotState::Live(region) => Some(Arc::clone(region)),
                _ => None,
            })
            .collect()
    }

    /// Snapshots of all live regions, by slot index.
    pub fn infos(&self) -> Vec<RegionInfo> {
        self.live_regions()
            .iter()
            .filter_map(|r| r.info())
            .collect()
    }

    /// Reads at `offset` into `buf` (zero past the end); returns how many bytes
    /// came from the region. See [`RegionReadGuard::read`](crate::RegionReadGuard::read).
    ///
    /// # Errors
    /// Handle errors, [`RegionError::OffsetOverflow`].
    pub fn read(
        &self,
        handle: RegionHandle,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, RegionError> {
        self.get(handle)?.lock_read()?.read(offset, buf)
    }

    /// Writes `data` at `offset`. See [`RegionWriteGuard::write`](crate::RegionWriteGuard::write).
    ///
    /// # Errors
    /// Handle errors, [`RegionError::OffsetOverflow`].
    pub fn write(
        &self,
        handle: RegionHandle,
        offset: u64,
        data: &[u8],
        allow_grow: bool,
    ) -> Result<WriteOutcome, RegionError> {
        self.get(handle)?
            .lock_write()?
            .write(offset, data, allow_grow)
    }

    /// Copies inside one region like `memmove`. See
    /// [`RegionWriteGuard::copy_within`](crate::RegionWriteGuard::copy_within).
    ///
    /// # Errors
    /// Handle errors, [`RegionError::OffsetOverflow`].
    pub fn copy_within(
        &self,
        handle: RegionHandle,
        src: u64,
        dst: u64,
        len: usize,
    ) -> Result<usize, RegionError> {
        self.get(handle)?.lock_write()?.copy_within(src, dst, len)
    }

    /// Grows a region; returns its old size.
    ///
    /// # Errors
    /// Handle errors, [`RegionError::ShrinkRequested`],
    /// [`RegionError::RegionTooLarge`], [`RegionError::Pool`].
    pub fn grow(&self, handle: RegionHandle, new_size: u64) -> Result<u64, RegionError> {
        self.get(handle)?.lock_write()?.grow(new_size)
    }

    /// Sets a region's size (undo of growth); returns the old size.
    ///
    /// # Errors
    /// Handle errors, [`RegionError::ZeroSize`], [`RegionError::RegionTooLarge`],
    /// [`RegionError::Pool`].
    pub fn set_size(&self, handle: RegionHandle, size: u64) -> Result<u64, RegionError> {
        self.get(handle)?.lock_write()?.set_size(size)
    }

    /// Copies page `page` of a region into `out` (zero past the end).
    ///
    /// # Errors
    /// Handle errors, [`RegionError::PageOutOfRange`].
    pub fn read_page(
        &self,
        handle: RegionHandle,
        page: u64,
        out: &mut [u8; PAGE_SIZE],
    ) -> Result<usize, RegionError> {
        self.get(handle)?.lock_read()?.read_page(page, out)
    }

    /// Writes a saved page back without changing the size.
    ///
    /// # Errors
    /// Handle errors, [`RegionError::PageOutOfRange`].
    pub fn restore_page(
        &self,
        handle: RegionHandle,
        page: u64,
        saved: &[u8; PAGE_SIZE],
    ) -> Result<usize, RegionError> {
        self.get(handle)?.lock_write()?.restore_page(page, saved)
    }

    /// Maps a region into `context` (replacing its mapping); returns the
    /// replaced mapping. Permission checks are `shm-access`'s job.
    ///
    /// # Errors
    /// Handle errors.
    pub fn map(
        &self,
        handle: RegionHandle,
        context: ContextId,
        options: MapOptions,
    ) -> Result<Option<MappingInfo>, RegionError> {
        Ok(self.get(handle)?.lock_write()?.map(context, options))
    }

    /// Removes the mapping of `context`.
    ///
    /// # Errors
    /// Handle errors, [`RegionError::MappingNotFound`].
    pub fn unmap(
        &self,
        handle: RegionHandle,
        context: ContextId,
    ) -> Result<MappingInfo, RegionError> {
        self.get(handle)?.lock_write()?.unmap(context)
    }

    /// Grants `context` rights on a region; returns the replaced grant.
    ///
    /// # Errors
    /// Handle errors.
    pub fn grant(
        &self,
        handle: RegionHandle,
        context: ContextId,
        grant: Grant,
    ) -> Result<Option<Grant>, RegionError> {
        Ok(self.get(handle)?.lock_write()?.grant(context, grant))
    }

    /// Withdraws the grant of `context`; returns it.
    ///
    /// # Errors
    /// Handle errors.
    pub fn revoke(
        &self,
        handle: RegionHandle,
        context: ContextId,
    ) -> Result<Option<Grant>, RegionError> {
        Ok(self.get(handle)?.lock_write()?.revoke(context))
    }

    /// Frees a region for good: its handle dies, its name is released, its
    /// block goes back to the pool and its slot may be reused (at a new
    /// generation).
    ///
    /// # Errors
    /// Handle errors.
    pub fn free(&self, handle: RegionHandle) -> Result<(), RegionError> {
        let region = {
            let mut table = self.table.write();
            let region = Arc::clone(table.live(handle)?);
            self.release_slot(&mut table, handle, region.name());
            region
        };
        // Outside the table lock: waits only for users of this region.
        region.release_block();
        Ok(())
    }

    /// First half of a free that a revert may still undo: the handle stops
    /// working at once (lookups say [`RegionError::RegionFreed`]), but the
    /// bytes, the name and the slot are kept until
    /// [`finish_free`](Self::finish_free) or [`cancel_free`](Self::cancel_free).
    ///
    /// # Errors
    /// Handle errors.
    pub fn begin_free(&self, handle: RegionHandle) -> Result<(), RegionError> {
        let mut table = self.table.write();
        let region = Arc::clone(table.live(handle)?);
        table.slots[slot_index(handle)].state = SlotState::PendingFree(region);
        Ok(())
    }

    /// Undoes [`begin_free`](Self::begin_free): the region is live again under
    /// the same handle, bytes and metadata unchanged.
    ///
    /// # Errors
    /// [`RegionError::SlotNotRemoved`] when `handle` is not awaiting a final free.
    pub fn cancel_free(&self, handle: RegionHandle) -> Result<(), RegionError> {
        let mut table = self.table.write();
        let slot = table
            .slots
            .get_mut(slot_index(handle))
            .ok_or(RegionError::SlotNotRemoved(handle))?;
        match std::mem::replace(&mut slot.state, SlotState::Empty) {
            SlotState::PendingFree(region) if region.handle() == handle => {
                slot.state = SlotState::Live(region);
                Ok(())
            }
            other => {
                slot.state = other;
                Err(RegionError::SlotNotRemoved(handle))
            }
        }
    }

    /// Completes [`begin_free`](Self::begin_free): as [`free`](Self::free).
    ///
    /// # Errors
    /// [`RegionError::SlotNotRemoved`] when `handle` is not awaiting a final free.
    pub fn finish_free(&self, handle: RegionHandle) -> Result<(), RegionError> {
        let region = {
            let mut table = self.table.write();
            let region = match table.slots.get(slot_index(handle)).map(|s| &s.state) {
                Some(SlotState::PendingFree(region)) if region.handle() == handle => {
                    Arc::clone(region)
                }
                _ => return Err(RegionError::SlotNotRemoved(handle)),
            };
            self.release_slot(&mut table, handle, region.name());
            region
        };
        region.release_block();
        Ok(())
    }

    /// Handles awaiting a final free, by slot index.
    pub fn pending_frees(&self) -> Vec<RegionHandle> {
        let table = self.table.read();
        table
            .slots
            .iter()
            .filter_map(|slot| match &slot.state {
                SlotState::PendingFree(region) => Some(region.handle()),
                _ => None,
            })
            .collect()
    }

    /// Empties the slot of `handle` (live or pending) and makes it reusable
    /// unless its generations are used up.
    fn release_slot(&self, table: &mut SlotTable, handle: RegionHandle, name: Option<&str>) {
        let index = slot_index(handle);
        table.slots[index].state = SlotState::Empty;
        table.occupied -= 1;
        if table.slots[index].issued < u32::MAX {
            table.free.insert(handle.index() - 1);
        }
        if let Some(name) = name {
            table.names.remove(name);
        }
    }

    /// Frees for good every live region for which `condition` holds (in slot
    /// order) and returns their handles. With `|meta| !meta.options().persistent`
    /// this is the end of a transaction.
    ///
    /// ```
    /// # use shm_pool::{BlockPool, PoolConfig};
    /// # use shm_primitives::{Address, RegionOptions};
    /// # use shm_region::{RegionRegistry, RegionSpec, RegistryConfig};
    /// let registry = RegionRegistry::new(BlockPool::new(PoolConfig::default()), RegistryConfig::default());
    /// let persistent = RegionOptions { persistent: true, ..RegionOptions::default() };
    /// let keep = registry.create(RegionSpec::new(64, Address::ZERO).options(persistent))?;
    /// let temp = registry.create(RegionSpec::new(64, Address::ZERO))?;
    /// assert_eq!(registry.free_where(|meta| !meta.options().persistent), vec![temp]);
    /// assert_eq!(registry.handles(), vec![keep]);
    /// # Ok::<(), shm_region::RegionError>(())
    /// ```
    pub fn free_where(&self, mut condition: impl FnMut(&RegionMeta) -> bool) -> Vec<RegionHandle> {
        let mut freed = Vec::new();
        for region in self.live_regions() {
            let chosen = region
                .lock_read()
                .map(|guard| condition(guard.meta()))
                .unwrap_or(false);
            // A region freed meanwhile by someone else is simply skipped.
            if chosen && self.free(region.handle()).is_ok() {
                freed.push(region.handle());
            }
        }
        freed
    }
}

impl std::fmt::Debug for RegionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionRegistry")
            .field("config", &self.config)
            .field("regions", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl RegionRegistry {
    /// Test hook: pretends slot `index` (1-based) already issued `generation`.
    pub(crate) fn force_issued(&self, index: u32, generation: u32) {
        let mut table = self.table.write();
        if let Some(slot) = table.slots.get_mut((index - 1) as usize) {
            slot.issued = generation;
        }
    }
}
