//! One region: its bytes, its metadata, and the lock that guards both.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{
    MappedRwLockReadGuard, MappedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use shm_pool::{Block, BlockPool, PoolError};
use shm_primitives::{ContextId, MapOptions, Permissions, RegionHandle, RegionOptions, PAGE_SIZE};

use crate::RegionError;

/// Rights the host granted one context on a region (spec §7, Basic and up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Grant {
    /// What the context may do with the bytes.
    pub permissions: Permissions,
    /// Whether the context may free the region (honoured at Basic only; from
    /// Strict up only the owner frees).
    pub can_free: bool,
}

impl Grant {
    /// A grant of `permissions` without the right to free.
    pub const fn new(permissions: Permissions) -> Self {
        Self {
            permissions,
            can_free: false,
        }
    }

    /// The same grant, with the right to free.
    pub const fn with_free(self) -> Self {
        Self {
            can_free: true,
            ..self
        }
    }
}

/// One context's mapping of a region (made by `SHARED_MAP` or the host API).
///
/// A mapping never gives a context more rights than its access rights: its
/// `permissions` only narrow them (a read-only mapping forbids writes).
#[derive(Debug)]
pub struct MappingInfo {
    /// What the mapping allows: read, plus write unless it is read-only.
    pub permissions: Permissions,
    /// The options it was made with (copy-on-write, read-only, hints).
    pub options: MapOptions,
    /// When it was made.
    pub mapped_at: SystemTime,
    access_count: AtomicU64,
}

impl MappingInfo {
    /// A fresh mapping with `options`, made now; read-only options give
    /// [`Permissions::read_only`], anything else [`Permissions::read_write`].
    ///
    /// ```
    /// use shm_primitives::{MapOptions, Permissions};
    /// use shm_region::MappingInfo;
    /// let m = MappingInfo::new(MapOptions::READ_ONLY | MapOptions::COPY_ON_WRITE);
    /// assert_eq!(m.permissions, Permissions::read_only());
    /// assert!(m.is_read_only() && !m.is_copy_on_write());
    /// ```
    pub fn new(options: MapOptions) -> Self {
        let permissions = if options.read_only() {
            Permissions::read_only()
        } else {
            Permissions::read_write()
        };
        Self {
            permissions,
            options,
            mapped_at: SystemTime::now(),
            access_count: AtomicU64::new(0),
        }
    }

    /// Writes through this mapping are refused.
    pub fn is_read_only(&self) -> bool {
        self.options.read_only() || !self.permissions.contains(Permissions::WRITE)
    }

    /// Writes through this mapping go to private pages (read-only wins).
    pub fn is_copy_on_write(&self) -> bool {
        self.options.copy_on_write()
    }

    /// How many accesses were counted through this mapping
    /// ([`RegionReadGuard::note_access`]).
    pub fn access_count(&self) -> u64 {
        self.access_count.load(Relaxed)
    }
}

impl Clone for MappingInfo {
    fn clone(&self) -> Self {
        Self {
            permissions: self.permissions,
            options: self.options,
            mapped_at: self.mapped_at,
            access_count: AtomicU64::new(self.access_count()),
        }
    }
}

impl PartialEq for MappingInfo {
    fn eq(&self, other: &Self) -> bool {
        self.permissions == other.permissions
            && self.options == other.options
            && self.mapped_at == other.mapped_at
            && self.access_count() == other.access_count()
    }
}

impl Eq for MappingInfo {}

/// Everything about a region except its bytes: what access checks read
/// (owner, base permissions, options, grants, mappings) and what stats show.
#[derive(Debug, Clone)]
pub struct RegionMeta {
    pub(crate) handle: RegionHandle,
    pub(crate) name: Option<String>,
    pub(crate) owner: ContextId,
    pub(crate) permissions: Permissions,
    pub(crate) options: RegionOptions,
    pub(crate) size: usize,
    pub(crate) max_size: usize,
    pub(crate) grants: BTreeMap<ContextId, Grant>,
    pub(crate) mappings: BTreeMap<ContextId, MappingInfo>,
    pub(crate) host_refs: u32,
    pub(crate) created_at: SystemTime,
    pub(crate) dirty: bool,
}

impl RegionMeta {
    /// The handle the region was created under.
    pub fn handle(&self) -> RegionHandle {
        self.handle
    }
    /// Its name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// The context that created it.
    pub fn owner(&self) -> ContextId {
        self.owner
    }
    /// Whether `context` is the owner.
    pub fn is_owner(&self, context: ContextId) -> bool {
        self.owner == context
    }
    /// The owner's rights.
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }
    /// Options fixed at creation.
    pub fn options(&self) -> &RegionOptions {
        &self.options
    }
    /// Logical size in bytes.
    pub fn size(&self) -> u64 {
        self.size as u64
    }
    /// The most it may grow to.
    pub fn max_size(&self) -> u64 {
        self.max_size as u64
    }
    /// The host's grant to `context`, if any.
    pub fn grant(&self, context: ContextId) -> Option<&Grant> {
        self.grants.get(&context)
    }
    /// Every grant, by context (ordered, so iteration is deterministic).
    pub fn grants(&self) -> &BTreeMap<ContextId, Grant> {
        &self.grants
    }
    /// The mapping of `context`, if any.
    pub fn mapping(&self, context: ContextId) -> Option<&MappingInfo> {
        self.mappings.get(&context)
    }
    /// Every mapping, by context.
    pub fn mappings(&self) -> &BTreeMap<ContextId, MappingInfo> {
        &self.mappings
    }
    /// References the host holds ([`RegionWriteGuard::add_host_ref`]).
    pub fn host_refs(&self) -> u32 {
        self.host_refs
    }
    /// Reference count: the number of mappings plus the host's references. A
    /// region with a count of zero is used by nobody but its handle holders.
    pub fn ref_count(&self) -> u64 {
        self.mappings.len() as u64 + u64::from(self.host_refs)
    }
    /// When it was created.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }
    /// Whether bytes were written since the flag was last cleared.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }
}

/// What a write did: how many bytes landed and whether the region grew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Bytes written into the region (the rest did not fit).
    pub written: usize,
    /// Size before the write (what the revert journal restores with `set_size`).
    pub old_size: u64,
    /// Size after the write.
    pub new_size: u64,
    /// Why auto-growth was refused, when it was (the write then wrote what fit).
    pub growth_error: Option<PoolError>,
}

impl WriteOutcome {
    /// Whether the write grew the region.
    pub fn grew(&self) -> bool {
        self.new_size > self.old_size
    }
}

/// A snapshot of one region for stats and listings.
#[derive(Clone, Debug)]
pub struct RegionInfo {
    /// Metadata at the time of the snapshot.
    pub meta: RegionMeta,
    /// Bytes of the pool block behind it (≥ its size).
    pub capacity: usize,
    /// Last access by a context (creation, mapping, or a counted access).
    pub last_access: SystemTime,
}

/// A region as its slot holds it.
pub(crate) struct Occupant {
    pub(crate) meta: RegionMeta,
    /// Holds at least `meta.size` bytes; bytes past the size are always zero,
    /// so growing inside the same block needs no zeroing.
    pub(crate) block: Block,
    /// Freed, but a revert may still bring it back
    /// ([`RegionRegistry::begin_free`](crate::RegionRegistry::begin_free)).
    pub(crate) pending_free: bool,
}

impl Occupant {
    /// A new, live region made from `spec` under `handle`.
    pub(crate) fn new(
        handle: RegionHandle,
        spec: &crate::RegionSpec,
        size: usize,
        max_size: usize,
        block: Block,
    ) -> Self {
        Self {
            meta: RegionMeta {
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
            },
            block,
            pending_free: false,
        }
    }
}

impl Occupant {
    fn is_live(&self, handle: RegionHandle) -> bool {
        !self.pending_free && self.meta.handle == handle
    }
}

pub(crate) struct SlotState {
    /// Highest generation ever issued for this slot (0: none yet). A handle
    /// of this slot with a generation up to this that is not the live
    /// region's named a region that was freed.
    pub(crate) issued: u32,
    pub(crate) occupant: Option<Occupant>,
}

impl SlotState {
    /// The error for `handle` when it does not name this slot's live region.
    pub(crate) fn dead(&self, handle: RegionHandle) -> RegionError {
        if handle.generation() <= self.issued {
            RegionError::RegionFreed(handle)
        } else {
            RegionError::InvalidRegionHandle(handle)
        }
    }

    /// The live region `handle` names, if it is this slot's.
    pub(crate) fn live(&self, handle: RegionHandle) -> Result<&Occupant, RegionError> {
        self.occupant
            .as_ref()
            .filter(|o| o.is_live(handle))
            .ok_or_else(|| self.dead(handle))
    }
}

/// One slot of the registry: the home of successive regions, one at a time.
/// Slots never move and are never dropped while the registry lives, so
/// reaching a region by handle takes only the slot's own lock.
pub(crate) struct Slot {
    pub(crate) state: RwLock<SlotState>,
    /// Nanoseconds since the Unix epoch; atomic so shared guards can update it.
    last_access_nanos: AtomicU64,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            state: RwLock::new(SlotState {
                issued: 0,
                occupant: None,
            }),
            last_access_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn touch(&self) {
        self.last_access_nanos.store(now_nanos(), Relaxed);
    }

    pub(crate) fn last_access(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.last_access_nanos.load(Relaxed))
    }

    pub(crate) fn read_guard<'a>(
        &'a self,
        handle: RegionHandle,
        state: RwLockReadGuard<'a, SlotState>,
    ) -> Result<RegionReadGuard<'a>, RegionError> {
        RwLockReadGuard::try_map(state, |s| s.occupant.as_ref().filter(|o| o.is_live(handle)))
            .map(|occupant| RegionReadGuard {
                slot: self,
                occupant,
            })
            .map_err(|state| state.dead(handle))
    }

    pub(crate) fn write_guard<'a>(
        &'a self,
        handle: RegionHandle,
        pool: &'a BlockPool,
        state: RwLockWriteGuard<'a, SlotState>,
    ) -> Result<RegionWriteGuard<'a>, RegionError> {
        RwLockWriteGuard::try_map(state, |s| s.occupant.as_mut().filter(|o| o.is_live(handle)))
            .map(|occupant| RegionWriteGuard {
                slot: self,
                pool,
                occupant,
            })
            .map_err(|state| state.dead(handle))
    }

    pub(crate) fn info(&self, handle: RegionHandle) -> Result<RegionInfo, RegionError> {
        let state = self.state.read();
        let occupant = state.live(handle)?;
        Ok(RegionInfo {
            meta: occupant.meta.clone(),
            capacity: occupant.block.len(),
            last_access: self.last_access(),
        })
    }
}

/// The part of `offset..offset + len` that lies inside a region of `size`
/// bytes (empty when it starts past the end).
///
/// # Errors
/// [`RegionError::OffsetOverflow`] when `offset + len` does not fit in 64 bits.
fn clip(offset: u64, len: usize, size: usize) -> Result<Range<usize>, RegionError> {
    let len64 = len as u64;
    if offset.checked_add(len64).is_none() {
        return Err(RegionError::OffsetOverflow { offset, len: len64 });
    }
    match usize::try_from(offset) {
        Ok(start) if start < size => Ok(start..start + len.min(size - start)),
        _ => Ok(0..0),
    }
}

/// Byte offset of page `page`.
fn page_offset(page: u64) -> Result<u64, RegionError> {
    page.checked_mul(PAGE_SIZE as u64)
        .ok_or(RegionError::PageOutOfRange(page))
}

fn live_bytes(occupant: &Occupant) -> &[u8] {
    &occupant.block.as_slice()[..occupant.meta.size]
}

fn read_into(occupant: &Occupant, offset: u64, buf: &mut [u8]) -> Result<usize, RegionError> {
    let bytes = live_bytes(occupant);
    let range = clip(offset, buf.len(), bytes.len())?;
    let n = range.len();
    let (from_region, past_end) = buf.split_at_mut(n);
    from_region.copy_from_slice(&bytes[range]);
    past_end.fill(0);
    Ok(n)
}

fn note_access(slot: &Slot, occupant: &Occupant, context: ContextId) {
    if let Some(mapping) = occupant.meta.mappings.get(&context) {
        mapping.access_count.fetch_add(1, Relaxed);
    }
    slot.touch();
}

/// A shared lock on one live region: many may be held at once. Obtained from
/// [`RegionRegistry::lock_read`](crate::RegionRegistry::lock_read).
pub struct RegionReadGuard<'a> {
    slot: &'a Slot,
    occupant: MappedRwLockReadGuard<'a, Occupant>,
}

impl RegionReadGuard<'_> {
    /// The region's metadata (for access checks and listings).
    pub fn meta(&self) -> &RegionMeta {
        &self.occupant.meta
    }

    /// Logical size in bytes.
    pub fn size(&self) -> u64 {
        self.occupant.meta.size as u64
    }

    /// The region's live bytes (exactly its size).
    pub fn bytes(&self) -> &[u8] {
        live_bytes(&self.occupant)
    }

    /// Copies bytes at `offset` into `buf`; bytes past the end read as zero
    /// (as CALLDATACOPY). Returns how many came from the region.
    ///
    /// # Errors
    /// [`RegionError::OffsetOverflow`] when `offset + buf.len()` overflows 64 bits.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, RegionError> {
        read_into(&self.occupant, offset, buf)
    }

    /// Copies page `page` (4 KiB at `page * PAGE_SIZE`) into `out`, zero past
    /// the end; returns how many bytes came from the region.
    ///
    /// # Errors
    /// [`RegionError::PageOutOfRange`] when the page's offset overflows 64 bits.
    pub fn read_page(&self, page: u64, out: &mut [u8; PAGE_SIZE]) -> Result<usize, RegionError> {
        read_into(&self.occupant, page_offset(page)?, out)
    }

    /// Counts one access by `context`: bumps its mapping's access count (if it
    /// has one) and the region's last-access time. Callers that check access
    /// (the manager) call this once per READ/WRITE; host reads and journal
    /// snapshots do not.
    pub fn note_access(&self, context: ContextId) {
        note_access(self.slot, &self.occupant, context);
    }

    /// Bytes of the pool block behind the region (≥ its size).
    pub fn capacity(&self) -> usize {
        self.occupant.block.len()
    }
}

/// Called with `(page_index, page_bytes)` for every page a mutation is about to
/// change, before it changes; `page_bytes` is the page's content within the
/// region as it was before the mutation (shorter than a page for the last one).
pub type PageObserver<'f> = dyn FnMut(u64, &[u8]) + 'f;

/// An exclusive lock on one live region. Obtained from
/// [`RegionRegistry::lock_write`](crate::RegionRegistry::lock_write).
pub struct RegionWriteGuard<'a> {
    slot: &'a Slot,
    pool: &'a BlockPool,
    occupant: MappedRwLockWriteGuard<'a, Occupant>,
}

impl RegionWriteGuard<'_> {
    /// The region's metadata.
    pub fn meta(&self) -> &RegionMeta {
        &self.occupant.meta
    }

    /// Logical size in bytes.
    pub fn size(&self) -> u64 {
        self.occupant.meta.size as u64
    }

    /// The region's live bytes (exactly its size).
    pub fn bytes(&self) -> &[u8] {
        live_bytes(&self.occupant)
    }

    /// As [`RegionReadGuard::read`].
    ///
    /// # Errors
    /// [`RegionError::OffsetOverflow`].
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, RegionError> {
        read_into(&self.occupant, offset, buf)
    }

    /// As [`RegionReadGuard::read_page`].
    ///
    /// # Errors
    /// [`RegionError::PageOutOfRange`].
    pub fn read_page(&self, page: u64, out: &mut [u8; PAGE_SIZE]) -> Result<usize, RegionError> {
        read_into(&self.occupant, page_offset(page)?, out)
    }

    /// As [`RegionReadGuard::note_access`].
    pub fn note_access(&self, context: ContextId) {
        note_access(self.slot, &self.occupant, context);
    }

    /// Bytes of the pool block behind the region (≥ its size).
    pub fn capacity(&self) -> usize {
        self.occupant.block.len()
    }

    /// Reports to `observer` every page overlapping `range` below `old_size`
    /// (what the region held before this mutation), with its current bytes.
    fn observe(&self, range: Range<usize>, old_size: usize, observer: &mut PageObserver<'_>) {
        let range = range.start..range.end.min(old_size);
        if range.is_empty() {
            return;
        }
        let bytes = &live_bytes(&self.occupant)[..old_size];
        let first = range.start / PAGE_SIZE;
        let last = (range.end - 1) / PAGE_SIZE;
        for page in first..=last {
            let start = page * PAGE_SIZE;
            let end = (start + PAGE_SIZE).min(bytes.len());
            observer(page as u64, &bytes[start..end]);
        }
    }

    /// Writes `data` at `offset`; past the end writes what fits. When
    /// `allow_grow` and the region auto-grows, it first grows to cover the
    /// write (up to its `max_size`); growth the pool refuses is reported in the
    /// outcome and the write writes what fits.
    ///
    /// # Errors
    /// [`RegionError::OffsetOverflow`] when `offset + data.len()` overflows 64 bits.
    pub fn write(
        &mut self,
        offset: u64,
        data: &[u8],
        allow_grow: bool,
    ) -> Result<WriteOutcome, RegionError> {
        self.write_observed(offset, data, allow_grow, &mut |_, _| {})
    }

    /// As [`write`](Self::write), first reporting to `observer` each page that
    /// existed before the write and that the write changes (the revert
    /// journal's hook: pages only added by growth are not reported, since
    /// `set_size` back to `old_size` undoes them).
    ///
    /// # Errors
    /// [`RegionError::OffsetOverflow`].
    pub fn write_observed(
        &mut self,
        offset: u64,
        data: &[u8],
        allow_grow: bool,
        observer: &mut PageObserver<'_>,
    ) -> Result<WriteOutcome, RegionError> {
        let len64 = data.len() as u64;
        let end = offset
            .checked_add(len64)
            .ok_or(RegionError::OffsetOverflow { offset, len: len64 })?;
        let old_size = self.occupant.meta.size;
        let mut growth_error = None;
        if allow_grow && self.occupant.meta.options.auto_grow && end > old_size as u64 {
            let target = usize::try_from(end)
                .unwrap_or(usize::MAX)
                .min(self.occupant.meta.max_size);
            // Grow only when the write then lands at least one byte: a write that
            // starts at or past the maximum size would grow the region for nothing.
            if target > old_size && offset < target as u64 {
                match self.resize_to(target) {
                    Ok(()) => {}
                    Err(RegionError::Pool(err)) => growth_error = Some(err),
                    Err(other) => return Err(other),
                }
            }
        }
        let range = clip(offset, data.len(), self.occupant.meta.size)?;
        self.observe(range.clone(), old_size, observer);
        let written = range.len();
        if written > 0 {
            self.occupant
                .block
                .write_at(range.start, &data[..written])?;
            self.occupant.meta.dirty = true;
        }
        Ok(WriteOutcome {
            written,
            old_size: old_size as u64,
            new_size: self.occupant.meta.size as u64,
            growth_error,
        })
    }

    /// Copies `len` bytes from `src` to `dst` inside the region as `memmove`
    /// does (overlap is fine). Source bytes past the end read as zero; the
    /// destination takes what fits (copies never grow). Returns bytes written.
    ///
    /// # Errors
    /// [`RegionError::OffsetOverflow`] when either range overflows 64 bits
    /// (the source is checked first).
    pub fn copy_within(&mut self, src: u64, dst: u64, len: usize) -> Result<usize, RegionError> {
        self.copy_within_observed(src, dst, len, &mut |_, _| {})
    }

    /// As [`copy_within`](Self::copy_within), reporting changed pages first.
    ///
    /// # Errors
    /// [`RegionError::OffsetOverflow`].
    pub fn copy_within_observed(
        &mut self,
        src: u64,
        dst: u64,
        len: usize,
        observer: &mut PageObserver<'_>,
    ) -> Result<usize, RegionError> {
        let size = self.occupant.meta.size;
        let source = clip(src, len, size)?;
        let target = clip(dst, len, size)?;
        if target.is_empty() {
            return Ok(0);
        }
        self.observe(target.clone(), size, observer);
        // Source bytes that exist and land inside the target; the rest of the
        // target reads from past the end, i.e. zero.
        let from_region = source.len().min(target.len());
        let touched_end = target.end.max(source.start + from_region);
        let bytes = self.occupant.block.range_mut(0, touched_end)?;
        bytes.copy_within(source.start..source.start + from_region, target.start);
        bytes[target.start + from_region..target.end].fill(0);
        self.occupant.meta.dirty = true;
        Ok(target.len())
    }

    /// Grows the region to `new_size` bytes (new bytes are zero) and returns the
    /// old size. A bigger block comes from the pool when the current one is too
    /// small; the old block goes back.
    ///
    /// # Errors
    /// [`RegionError::ShrinkRequested`], [`RegionError::RegionTooLarge`] above
    /// `max_size`, [`RegionError::Pool`] when the pool refuses (nothing changes).
    pub fn grow(&mut self, new_size: u64) -> Result<u64, RegionError> {
        let current = self.size();
        if new_size < current {
            return Err(RegionError::ShrinkRequested {
                current,
                requested: new_size,
            });
        }
        self.set_size(new_size)
    }

    /// Sets the logical size, growing or shrinking (the revert journal's undo of
    /// growth). Shrinking zeroes the cut bytes and keeps the block. Returns the
    /// old size.
    ///
    /// # Errors
    /// [`RegionError::ZeroSize`], [`RegionError::RegionTooLarge`],
    /// [`RegionError::Pool`].
    pub fn set_size(&mut self, new_size: u64) -> Result<u64, RegionError> {
        let old_size = self.size();
        let max = self.occupant.meta.max_size;
        let too_large = RegionError::RegionTooLarge {
            requested: new_size,
            max: max as u64,
        };
        let new_size = usize::try_from(new_size).map_err(|_| too_large.clone())?;
        if new_size == 0 {
            return Err(RegionError::ZeroSize);
        }
        if new_size > max {
            return Err(too_large);
        }
        self.resize_to(new_size)?;
        Ok(old_size)
    }

    /// `new_size` is non-zero and within `max_size`.
    fn resize_to(&mut self, new_size: usize) -> Result<(), RegionError> {
        let size = self.occupant.meta.size;
        if new_size < size {
            self.occupant
                .block
                .range_mut(new_size, size - new_size)?
                .fill(0);
        } else if new_size > self.occupant.block.len() {
            let mut bigger = self.pool.allocate(new_size)?;
            bigger.write_at(0, &self.occupant.block.as_slice()[..size])?;
            // The old block goes back to its pool when dropped here.
            self.occupant.block = bigger;
        }
        self.occupant.meta.size = new_size;
        Ok(())
    }

    /// Writes saved page bytes back at page `page` without changing the size
    /// (the revert journal's undo of data writes). Bytes of `saved` past the
    /// region's end are ignored; returns how many were restored.
    ///
    /// # Errors
    /// [`RegionError::PageOutOfRange`].
    pub fn restore_page(
        &mut self,
        page: u64,
        saved: &[u8; PAGE_SIZE],
    ) -> Result<usize, RegionError> {
        let range = clip(page_offset(page)?, PAGE_SIZE, self.occupant.meta.size)?;
        let n = range.len();
        if n > 0 {
            self.occupant.block.write_at(range.start, &saved[..n])?;
        }
        Ok(n)
    }

    /// Gives `context` a mapping with `options`, replacing any it had; returns
    /// the replaced one (so a revert can put it back). Permission checks are
    /// `shm-access`'s job.
    pub fn map(&mut self, context: ContextId, options: MapOptions) -> Option<MappingInfo> {
        self.slot.touch();
        self.occupant
            .meta
            .mappings
            .insert(context, MappingInfo::new(options))
    }

    /// Removes the mapping of `context` and returns it.
    ///
    /// # Errors
    /// [`RegionError::MappingNotFound`].
    pub fn unmap(&mut self, context: ContextId) -> Result<MappingInfo, RegionError> {
        let handle = self.occupant.meta.handle;
        self.occupant
            .meta
            .mappings
            .remove(&context)
            .ok_or(RegionError::MappingNotFound { handle, context })
    }

    /// Sets (or with `None` removes) the mapping of `context` as it was
    /// (undo of a map or unmap); returns what was there.
    pub fn restore_mapping(
        &mut self,
        context: ContextId,
        mapping: Option<MappingInfo>,
    ) -> Option<MappingInfo> {
        match mapping {
            Some(mapping) => self.occupant.meta.mappings.insert(context, mapping),
            None => self.occupant.meta.mappings.remove(&context),
        }
    }

    /// Grants `context` rights on the region; returns the grant it replaces.
    pub fn grant(&mut self, context: ContextId, grant: Grant) -> Option<Grant> {
        self.occupant.meta.grants.insert(context, grant)
    }

    /// Withdraws the grant of `context`; returns it.
    pub fn revoke(&mut self, context: ContextId) -> Option<Grant> {
        self.occupant.meta.grants.remove(&context)
    }

    /// Takes a host reference; returns the new count of host references.
    pub fn add_host_ref(&mut self) -> u32 {
        let refs = &mut self.occupant.meta.host_refs;
        *refs = refs.saturating_add(1);
        *refs
    }

    /// Drops a host reference (never below zero); returns the new count.
    pub fn drop_host_ref(&mut self) -> u32 {
        let refs = &mut self.occupant.meta.host_refs;
        *refs = refs.saturating_sub(1);
        *refs
    }

    /// Clears the dirty flag (after the bytes were persisted).
    pub fn clear_dirty(&mut self) {
        self.occupant.meta.dirty = false;
    }

    /// Zeroes every byte of the region without changing its size (Paranoid
    /// scrubbing before a final free).
    pub fn zero(&mut self) {
        let size = self.occupant.meta.size;
        if let Ok(bytes) = self.occupant.block.range_mut(0, size) {
            bytes.fill(0);
        }
    }
}
