//! The slot table: handles with generations, names, limits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Acquire, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::{Mutex, RwLockReadGuard, RwLockWriteGuard};
use shm_pool::{Block, BlockPool};
use shm_primitives::{ContextId, Permissions, RegionHandle, RegionOptions};

use crate::free_slots::FreeSlots;
use crate::guard::checked_size;
use crate::slot::{Liveness, Occupant, Slot, SlotState, Slots};
use crate::{RegionError, RegionInfo, RegionReadGuard, RegionWriteGuard};

/// Limits of a [`RegionRegistry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Most regions alive at once (regions awaiting a final free count too).
    pub max_regions: usize,
    /// Largest size any region may have, growth included.
    pub max_region_size: u64,
    /// Most persistent regions alive at once: the other slots are kept for
    /// transaction-scoped regions (spec §4), so nobody is locked out of ALLOC.
    pub max_persistent_regions: usize,
}

impl Default for RegistryConfig {
    /// The `development` preset: 256 regions of up to 16 MiB, 192 of them
    /// persistent at most.
    fn default() -> Self {
        Self {
            max_regions: 256,
            max_region_size: 16 << 20,
            max_persistent_regions: 192,
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

/// Bookkeeping that only creation and final frees touch.
#[derive(Default)]
struct Table {
    /// Slots ever used: positions `0..used` exist.
    used: u32,
    /// Positions of empty slots that may be reused: lowest first, so handle
    /// assignment depends only on the registry's history.
    free: FreeSlots,
    names: HashMap<String, RegionHandle>,
}

/// The table and its counts, which change only under its lock (so every limit
/// is exact) but are atomics that `create` and `len` read without it. Aligned
/// apart: a create or free locks and counts in one cache-line transfer.
#[repr(align(128))]
#[derive(Default)]
struct Book {
    table: Mutex<Table>,
    /// Live and pending-free regions.
    occupied: AtomicUsize,
    /// Of those, the persistent ones.
    persistent: AtomicUsize,
}

/// What [`RegionRegistry::fill`] did with a region.
enum Filled {
    /// It is in its slot under this handle.
    Placed(RegionHandle),
    /// The slot was taken meanwhile: here is the region back.
    Taken(Occupant),
    /// The position is past the last slot there can be.
    Beyond,
}

/// Stands in for a new region's handle while the region is built outside the
/// table lock; the real handle replaces it before the region enters its slot.
const UNASSIGNED: RegionHandle = RegionHandle::new(1, 1).expect("1/1 is a valid handle");

/// The region registry: every region of one manager, addressed by
/// generation-checked [`RegionHandle`]s.
///
/// Each region sits in a slot that never moves, under its own `RwLock`: a
/// handle reaches its region through that lock alone, and work on different
/// regions runs in parallel. Create, free and name lookups also take the
/// bookkeeping table's `Mutex`. A freed generation is never issued again, so a
/// handle never names another region than its own.
///
/// ```
/// use shm_pool::{BlockPool, PoolConfig};
/// use shm_primitives::Address;
/// use shm_region::{RegionError, RegionRegistry, RegionSpec, RegistryConfig};
///
/// let registry = RegionRegistry::new(BlockPool::new(PoolConfig::default()), RegistryConfig::default());
/// let owner = Address::repeat_byte(1);
/// let handle = registry.create(RegionSpec::new(100, owner).named("prices"))?;
/// assert_eq!(registry.lock_write(handle)?.write(96, b"abcdef", false)?.written, 4); // what fits
/// let mut buf = [0xff; 8];
/// assert_eq!(registry.lock_read(handle)?.read(96, &mut buf)?, 4); // past the end reads zero
/// assert_eq!(&buf, b"abcd\0\0\0\0");
/// assert_eq!(registry.lookup("prices")?, handle);
/// registry.free(handle)?;
/// assert_eq!(registry.lock_read(handle).err(), Some(RegionError::RegionFreed(handle)));
/// # Ok::<(), RegionError>(())
/// ```
pub struct RegionRegistry {
    pool: BlockPool,
    config: RegistryConfig,
    slots: Slots,
    book: Book,
}

impl RegionRegistry {
    /// An empty registry taking memory from `pool`.
    pub fn new(pool: BlockPool, config: RegistryConfig) -> Self {
        Self {
            pool,
            config,
            slots: Slots::default(),
            book: Book::default(),
        }
    }

    /// The pool regions take their blocks from.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    /// Regions alive (including those awaiting a final free).
    pub fn len(&self) -> usize {
        self.book.occupied.load(Relaxed)
    }

    /// Whether no region is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn slot(&self, handle: RegionHandle) -> Result<&Slot, RegionError> {
        // `index() ≥ 1` by construction of `RegionHandle`. A `match`, not
        // `ok_or`: every warm access looks its slot up, and the eager error
        // cost 8 instructions of each (callgrind).
        match self.slots.get((handle.index() - 1) as usize) {
            Some(slot) => Ok(slot),
            None => Err(RegionError::InvalidRegionHandle(handle)),
        }
    }

    /// Creates a zeroed region; its handle is the lowest free slot index, at
    /// that slot's next generation.
    ///
    /// # Errors
    /// [`RegionError::ZeroSize`], [`RegionError::RegionTooLarge`],
    /// [`RegionError::NameTaken`], [`RegionError::TooManyRegions`],
    /// [`RegionError::Pool`].
    pub fn create(&self, spec: RegionSpec) -> Result<RegionHandle, RegionError> {
        let (size, max_size) = self.sizes(&spec, usize::MAX)?;
        // The block is allocated outside the table lock, after a name check
        // (a taken name must not churn the pool); an anonymous create checks
        // only under the lock, to pull the table's line over once. Room errors
        // still come before pool errors: a refused allocation checks.
        if spec.name.is_some() {
            self.check_room(&self.book.table.lock(), &spec)?;
        }
        let block = match self.pool.allocate(size) {
            Ok(block) => block,
            Err(error) => {
                self.check_counts(&spec)?;
                return Err(error.into());
            }
        };
        let mut occupant = Occupant::new(UNASSIGNED, &spec, size, max_size, block);
        let limit = self.config.max_regions;
        let too_many = || RegionError::TooManyRegions { limit };
        let mut table = self.book.table.lock();
        self.check_room(&table, &spec)?;
        let Some(name) = spec.name.clone() else {
            // Anonymous: the table lock only counts the region in and claims a
            // position; the slot is filled after its release, so that the
            // slot's line never moves while the table is locked.
            self.count_in(&spec);
            let mut position = Self::claim(&mut table);
            drop(table);
            while let Some(at) = position {
                match self.fill(at, occupant) {
                    Filled::Placed(handle) => return Ok(handle),
                    Filled::Taken(back) => occupant = back,
                    Filled::Beyond => break,
                }
                position = Self::claim(&mut self.book.table.lock());
            }
            let _table = self.book.table.lock();
            self.count_out(spec.options.persistent);
            return Err(too_many());
        };
        // Named: the name is the table's, so all of it happens under the lock.
        loop {
            let position = Self::claim(&mut table).ok_or_else(too_many)?;
            match self.fill(position, occupant) {
                Filled::Placed(handle) => {
                    self.count_in(&spec);
                    table.names.insert(name, handle);
                    return Ok(handle);
                }
                Filled::Taken(back) => occupant = back,
                Filled::Beyond => return Err(too_many()),
            }
        }
    }

    /// Takes the lowest free position out of the free list, or a new one past
    /// the positions used so far. Caller holds the table lock.
    fn claim(table: &mut Table) -> Option<u32> {
        if let Some(position) = table.free.first() {
            table.free.remove(position);
            return Some(position);
        }
        table.used = table.used.checked_add(1)?;
        Some(table.used - 1)
    }

    /// Puts `occupant` in the claimed slot at `at`, at its next generation.
    /// The slot can be full when [`create_at`](Self::create_at) filled it
    /// while a free of its previous region was between it and the free list.
    fn fill(&self, at: u32, mut occupant: Occupant) -> Filled {
        let Some(slot) = self.slots.get_or_make(at as usize) else {
            return Filled::Beyond;
        };
        let mut state = slot.state.write();
        // A slot with no generation left never enters the free list (see
        // `take_occupant`), unless `create_at` used its last one.
        let next = state.issued.checked_add(1);
        match next.and_then(|g| RegionHandle::new(at + 1, g)) {
            Some(handle) if state.occupant.is_none() => {
                state.issued = handle.generation();
                occupant.meta.handle = handle;
                state.occupant = Some(occupant);
                Filled::Placed(handle)
            }
            _ => Filled::Taken(occupant),
        }
    }

    /// Whether slot `index` (1-based) holds a region, and the highest
    /// generation it ever issued: what a caller that assigns handles itself
    /// needs to pick a fresh one.
    pub fn slot_use(&self, index: u32) -> (bool, u32) {
        let slot = index
            .checked_sub(1)
            .and_then(|p| self.slots.get(p as usize));
        slot.map_or((false, 0), |slot| {
            let state = slot.state.read();
            (state.occupant.is_some(), state.issued)
        })
    }

    /// Places a region under a handle chosen elsewhere (a mapped namespace
    /// whose handles are the same in every process). `block` holds the bytes
    /// (at least `spec.size`, zero past it); the slot must be empty and the
    /// generation above every one it issued. [`create`](Self::create) stays
    /// consistent: the slot leaves the free list and skipped slots join it.
    ///
    /// ```
    /// # use shm_pool::{BlockPool, PoolConfig};
    /// # use shm_primitives::{Address, RegionHandle};
    /// # use shm_region::{RegionError, RegionRegistry, RegionSpec, RegistryConfig};
    /// let pool = BlockPool::new(PoolConfig::default());
    /// let registry = RegionRegistry::new(pool.clone(), RegistryConfig::default());
    /// let at = RegionHandle::new(3, 7).unwrap();
    /// registry.create_at(at, RegionSpec::new(64, Address::ZERO), pool.allocate(64)?)?;
    /// assert_eq!(registry.slot_use(3), (true, 7));
    /// // `create` still takes the lowest free slot.
    /// assert_eq!(registry.create(RegionSpec::new(64, Address::ZERO))?, RegionHandle::new(1, 1).unwrap());
    /// assert!(matches!(
    ///     registry.create_at(RegionHandle::new(3, 8).unwrap(), RegionSpec::new(64, Address::ZERO), pool.allocate(64)?),
    ///     Err(RegionError::HandleUnavailable(_))
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`RegionError::ZeroSize`], [`RegionError::RegionTooLarge`] (also when
    /// the block is smaller than the size), [`RegionError::NameTaken`],
    /// [`RegionError::TooManyRegions`], [`RegionError::HandleUnavailable`].
    pub fn create_at(
        &self,
        handle: RegionHandle,
        spec: RegionSpec,
        block: Block,
    ) -> Result<RegionHandle, RegionError> {
        let (size, max_size) = self.sizes(&spec, block.len())?;
        let mut table = self.book.table.lock();
        self.check_room(&table, &spec)?;
        let position = handle.index() - 1;
        let unavailable = RegionError::HandleUnavailable(handle);
        let slot = self
            .slots
            .get_or_make(position as usize)
            .ok_or(unavailable.clone())?;
        let mut state = slot.state.write();
        if state.occupant.is_some() || handle.generation() <= state.issued {
            return Err(unavailable);
        }
        state.issued = handle.generation();
        state.occupant = Some(Occupant::new(handle, &spec, size, max_size, block));
        drop(state);
        if position >= table.used {
            // Slots skipped over become free for `create`.
            for skipped in table.used..position {
                table.free.insert(skipped);
            }
            table.used = position + 1;
        } else {
            table.free.remove(position);
        }
        self.count_in(&spec);
        if let Some(name) = spec.name {
            table.names.insert(name, handle);
        }
        Ok(handle)
    }

    /// The size and growth limit of `spec` as `usize`s; the size must also
    /// fit in `room` bytes (the block `create_at` was given).
    fn sizes(&self, spec: &RegionSpec, room: usize) -> Result<(usize, usize), RegionError> {
        let max = self.config.max_region_size;
        let max_size = spec.max_size.unwrap_or(max).min(max);
        match checked_size(spec.size, max_size)? {
            size if size <= room => Ok((size, usize::try_from(max_size).unwrap_or(usize::MAX))),
            _ => Err(RegionError::RegionTooLarge {
                requested: spec.size,
                max: max_size,
            }),
        }
    }

    /// Counts a region in. Caller holds the table lock.
    fn count_in(&self, spec: &RegionSpec) {
        self.book.occupied.fetch_add(1, Relaxed);
        if spec.options.persistent {
            self.book.persistent.fetch_add(1, Relaxed);
        }
    }

    /// Counts a region out. Caller holds the table lock.
    fn count_out(&self, persistent: bool) {
        self.book.occupied.fetch_sub(1, Relaxed);
        if persistent {
            self.book.persistent.fetch_sub(1, Relaxed);
        }
    }

    /// Whether the counts leave room for `spec`: exact under the table lock,
    /// a hint without it.
    fn check_counts(&self, spec: &RegionSpec) -> Result<(), RegionError> {
        let (limit, persistent) = (self.config.max_regions, self.config.max_persistent_regions);
        if self.book.occupied.load(Relaxed) >= limit {
            return Err(RegionError::TooManyRegions { limit });
        }
        if spec.options.persistent && self.book.persistent.load(Relaxed) >= persistent {
            return Err(RegionError::TooManyPersistentRegions { limit: persistent });
        }
        Ok(())
    }

    /// Whether the locked `table` has room for `spec`: counts and name.
    fn check_room(&self, table: &Table, spec: &RegionSpec) -> Result<(), RegionError> {
        self.check_counts(spec)?;
        match spec.name.as_deref() {
            Some(name) if table.names.contains_key(name) => {
                Err(RegionError::NameTaken(name.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Locks the region `handle` names for reading (shared with other readers).
    ///
    /// ```
    /// # use shm_pool::{BlockPool, PoolConfig};
    /// # use shm_primitives::Address;
    /// # use shm_region::{RegionRegistry, RegionSpec, RegistryConfig};
    /// # let registry = RegionRegistry::new(BlockPool::new(PoolConfig::default()), RegistryConfig::default());
    /// let h = registry.create(RegionSpec::new(32, Address::ZERO))?;
    /// let guard = registry.lock_read(h)?;
    /// assert_eq!((guard.size(), guard.meta().owner()), (32, Address::ZERO));
    /// # Ok::<(), shm_region::RegionError>(())
    /// ```
    ///
    /// # Errors
    /// [`RegionError::InvalidRegionHandle`] if it never named a region here,
    /// [`RegionError::RegionFreed`] if its region was freed.
    #[inline]
    pub fn lock_read(&self, handle: RegionHandle) -> Result<RegionReadGuard<'_>, RegionError> {
        let slot = self.slot(handle)?;
        read_guard(handle, slot, slot.state.read())
    }

    /// Locks the region `handle` names exclusively.
    /// Errors as for [`lock_read`](Self::lock_read).
    #[inline]
    pub fn lock_write(&self, handle: RegionHandle) -> Result<RegionWriteGuard<'_>, RegionError> {
        let slot = self.slot(handle)?;
        write_guard(handle, &self.pool, slot, slot.state.write())
    }

    /// The access version of the slot `handle` names (see
    /// [`RegionReadGuard::access_version`]), read without its lock: `None` when
    /// no slot is there. It tells nothing about liveness.
    #[inline]
    pub fn access_version(&self, handle: RegionHandle) -> Option<u64> {
        let slot = self.slot(handle).ok()?;
        Some(slot.access_version.load(Acquire))
    }

    /// As [`lock_read`](Self::lock_read), waiting at most `timeout`;
    /// `Ok(None)` when the region stayed busy (a busy slot is reported busy
    /// before its handle is checked).
    pub fn try_lock_read_for(
        &self,
        handle: RegionHandle,
        timeout: Duration,
    ) -> Result<Option<RegionReadGuard<'_>>, RegionError> {
        let slot = self.slot(handle)?;
        slot.state
            .try_read_for(timeout)
            .map(|state| read_guard(handle, slot, state))
            .transpose()
    }

    /// As [`lock_write`](Self::lock_write), waiting at most `timeout`;
    /// `Ok(None)` when the region stayed busy.
    /// Errors as for [`lock_read`](Self::lock_read).
    pub fn try_lock_write_for(
        &self,
        handle: RegionHandle,
        timeout: Duration,
    ) -> Result<Option<RegionWriteGuard<'_>>, RegionError> {
        let slot = self.slot(handle)?;
        slot.state
            .try_write_for(timeout)
            .map(|state| write_guard(handle, &self.pool, slot, state))
            .transpose()
    }

    /// Whether `handle` names a live region (the cheap handle check).
    /// Errors as for [`lock_read`](Self::lock_read).
    pub fn check(&self, handle: RegionHandle) -> Result<(), RegionError> {
        self.slot(handle)?.state.read().live(handle).map(|_| ())
    }

    /// What the slot says about `handle` right now, pending frees told apart
    /// from final ones.
    pub fn liveness(&self, handle: RegionHandle) -> Liveness {
        self.slot(handle)
            .map_or(Liveness::Invalid, |slot| slot.state.read().liveness(handle))
    }

    /// The handle of the live region called `name`.
    ///
    /// # Errors
    /// [`RegionError::NameNotFound`] (also while its region awaits a final free).
    pub fn lookup(&self, name: &str) -> Result<RegionHandle, RegionError> {
        let handle = self.book.table.lock().names.get(name).copied();
        handle
            .filter(|&handle| self.check(handle).is_ok())
            .ok_or_else(|| RegionError::NameNotFound(name.to_string()))
    }

    /// A snapshot of one region for listings.
    /// Errors as for [`lock_read`](Self::lock_read).
    pub fn info(&self, handle: RegionHandle) -> Result<RegionInfo, RegionError> {
        let guard = self.lock_read(handle)?;
        Ok(RegionInfo {
            meta: guard.meta().clone(),
            capacity: guard.occupant.block.len(),
        })
    }

    /// Handles of all live regions, by slot index.
    pub fn handles(&self) -> Vec<RegionHandle> {
        self.handles_where(false)
    }

    /// Snapshots of all live regions, by slot index (for stats and listings).
    pub fn infos(&self) -> Vec<RegionInfo> {
        self.handles()
            .into_iter()
            .filter_map(|h| self.info(h).ok())
            .collect()
    }

    /// Frees a region for good: its handle dies, its name and block are
    /// released and its slot may be reused (at the next generation).
    /// Errors as for [`lock_read`](Self::lock_read).
    pub fn free(&self, handle: RegionHandle) -> Result<(), RegionError> {
        self.take_occupant(handle, |state| state.live(handle).map(|_| ()))
    }

    /// First half of a free that a revert may still undo: the handle reads as
    /// [`RegionError::RegionFreed`] at once, but the bytes, the name and the
    /// slot (which still counts toward `max_regions`) are kept until
    /// [`finish_free`](Self::finish_free) or [`cancel_free`](Self::cancel_free).
    /// Errors as for [`lock_read`](Self::lock_read).
    pub fn begin_free(&self, handle: RegionHandle) -> Result<(), RegionError> {
        self.lock_write(handle)?.occupant.pending_free = true;
        Ok(())
    }

    /// Undoes [`begin_free`](Self::begin_free): the region is live again under
    /// the same handle, bytes and metadata unchanged.
    ///
    /// # Errors
    /// [`RegionError::SlotNotRemoved`] when `handle` is not awaiting a final free.
    pub fn cancel_free(&self, handle: RegionHandle) -> Result<(), RegionError> {
        let not_pending = RegionError::SlotNotRemoved(handle);
        let slot = self.slot(handle).map_err(|_| not_pending.clone())?;
        let mut state = slot.state.write();
        let occupant = state.occupant.as_mut().filter(|o| o.is_pending(handle));
        occupant.ok_or(not_pending)?.pending_free = false;
        Ok(())
    }

    /// Completes [`begin_free`](Self::begin_free) as [`free`](Self::free) does.
    ///
    /// # Errors
    /// [`RegionError::SlotNotRemoved`] when `handle` is not awaiting a final free.
    pub fn finish_free(&self, handle: RegionHandle) -> Result<(), RegionError> {
        let not_pending = RegionError::SlotNotRemoved(handle);
        self.slot(handle).map_err(|_| not_pending.clone())?;
        self.take_occupant(handle, |state| match &state.occupant {
            Some(o) if o.is_pending(handle) => Ok(()),
            _ => Err(not_pending),
        })
    }

    /// Takes the region out of its slot if `valid` agrees, then (outside the
    /// slot lock) returns the slot to the free list and the block to the pool.
    fn take_occupant(
        &self,
        handle: RegionHandle,
        valid: impl FnOnce(&SlotState) -> Result<(), RegionError>,
    ) -> Result<(), RegionError> {
        let slot = self.slot(handle)?;
        let (occupant, retired) = {
            let mut state = slot.state.write();
            valid(&state)?;
            (state.occupant.take(), state.issued == u32::MAX)
        };
        let Some(occupant) = occupant else {
            return Err(RegionError::RegionFreed(handle));
        };
        {
            let mut table = self.book.table.lock();
            self.count_out(occupant.meta.options.persistent);
            if !retired {
                table.free.insert(handle.index() - 1);
            }
            if let Some(name) = &occupant.meta.name {
                table.names.remove(name);
            }
        }
        drop(occupant); // Outside the table lock: the block goes back to the pool.
        Ok(())
    }

    /// The size of the region `handle` names while it awaits a final free.
    pub fn pending_size(&self, handle: RegionHandle) -> Option<u64> {
        let state = self.slot(handle).ok()?.state.read();
        let occupant = state.occupant.as_ref()?;
        occupant.is_pending(handle).then(|| occupant.meta.size())
    }

    /// Handles awaiting a final free, by slot index.
    pub fn pending_frees(&self) -> Vec<RegionHandle> {
        self.handles_where(true)
    }

    /// Handles of the regions whose pending-free mark is `pending`, by slot index.
    fn handles_where(&self, pending: bool) -> Vec<RegionHandle> {
        let used = self.book.table.lock().used as usize;
        (0..used)
            .filter_map(|position| {
                let state = self.slots.get(position)?.state.read();
                let o = state.occupant.as_ref()?;
                (o.pending_free == pending).then_some(o.meta.handle)
            })
            .collect()
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
    /// Test hook: puts slot `index` (1-based) in the free list, whatever it
    /// holds (what a free racing a `create_at` leaves for a moment).
    pub(crate) fn force_free(&self, index: u32) {
        self.book.table.lock().free.insert(index - 1);
    }

    /// Test hook: pretends slot `index` (1-based) already issued `generation`.
    pub(crate) fn force_issued(&self, index: u32, generation: u32) {
        if let Some(slot) = self.slots.get((index - 1) as usize) {
            slot.state.write().issued = generation;
        }
    }
}

#[inline]
fn read_guard<'a>(
    handle: RegionHandle,
    slot: &'a Slot,
    state: RwLockReadGuard<'a, SlotState>,
) -> Result<RegionReadGuard<'a>, RegionError> {
    RwLockReadGuard::try_map(state, |s| s.occupant.as_ref().filter(|o| o.is_live(handle)))
        .map(|occupant| RegionReadGuard {
            occupant,
            access_version: &slot.access_version,
        })
        .map_err(|state| state.dead(handle))
}

#[inline]
fn write_guard<'a>(
    handle: RegionHandle,
    pool: &'a BlockPool,
    slot: &'a Slot,
    state: RwLockWriteGuard<'a, SlotState>,
) -> Result<RegionWriteGuard<'a>, RegionError> {
    RwLockWriteGuard::try_map(state, |s| s.occupant.as_mut().filter(|o| o.is_live(handle)))
        .map(|occupant| RegionWriteGuard {
            pool,
            occupant,
            access_version: &slot.access_version,
        })
        .map_err(|state| state.dead(handle))
}
