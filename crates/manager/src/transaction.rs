//! [`TxRegions`]: a transaction's door to the regions it touches.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_journal::{Page, RegionOps};
use shm_primitives::{
    AccessKind, ContextId, MapOptions, RegionHandle, RegionOptions, WritePlan, PAGE_SIZE,
};
use shm_region::{PageObserver, RawRegionBytes, RegionSpec, WriteOutcome};

use crate::{LockMode, SharedMemoryManager, ShmError, TxId};

/// What a transaction means to do with a region: it decides the lock mode and
/// the permission checked (spec §6, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Intent {
    /// SHARED_READ: held shared, read rights (and a mapping at Strict).
    Read,
    /// SHARED_WRITE: held exclusively, write rights; through a copy-on-write
    /// mapping, held shared with read rights.
    Write,
    /// SHARED_MAP: held shared, read rights.
    Map,
    /// SHARED_FREE: held exclusively, the right to free.
    Free,
}

/// A region its transaction holds, as [`TxRegions::resolve`] found it: good
/// until the transaction frees, remaps, grows or reverts it, or the host
/// changes its grants or mappings ([`ShmError::StaleResolution`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The region.
    pub handle: RegionHandle,
    /// The mode the transaction holds it in.
    pub mode: LockMode,
    /// Its size when resolved (it changes only by the holder's own writes).
    pub size: u64,
    /// The most it may grow to.
    pub max_size: u64,
    /// Its options.
    pub options: RegionOptions,
    /// The context's mapping: the transaction's own if it has one, else the
    /// host's (`None`: unmapped).
    pub mapping: Option<MapOptions>,
    /// Whether the context's writes go to its private copy-on-write view.
    pub copy_on_write: bool,
    access_version: u64,
    /// The live bytes, used without the slot lock while `stamp` is current
    /// (heap-backed only: a mapped file can change under another process's lock).
    raw: Option<RawRegionBytes>,
    /// The resolving `TxRegions`' stamp at resolution.
    stamp: u64,
}

/// One transaction's access to regions: resolving, reading, writing, creating
/// and freeing, and the revert journal's undo ([`RegionOps`]). Its locks are
/// held until [`release`](Self::release), or drop (a panic unwinding the EVM).
/// A call given a bad handle fails with a handle error.
///
/// ```
/// use std::time::Duration;
/// use shm_manager::{Intent, SharedMemoryConfig, SharedMemoryManager};
/// use shm_primitives::{Address, Permissions, RegionOptions, WritePlan};
///
/// let manager = SharedMemoryManager::new(SharedMemoryConfig::testing())?;
/// let h = manager.create_shared_region("r", 64, Permissions::read_write(), RegionOptions::default())?;
/// let mut tx = manager.begin_transaction();
/// let me = Address::repeat_byte(1);
/// let region = tx.resolve(h, me, Intent::Write, None, Duration::ZERO)?;
/// let plan = WritePlan::new(region.size, region.max_size, false, 0, 5);
/// tx.write(&region, plan, b"hello", &mut |_, _| {})?;
/// let mut buf = [0; 5];
/// tx.read(&region, 0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// tx.release();
/// # Ok::<(), shm_manager::ShmError>(())
/// ```
pub struct TxRegions {
    manager: Arc<SharedMemoryManager>,
    id: TxId,
    released: bool,
    /// Drawn afresh whenever this transaction may move, shrink or release a
    /// region's bytes (growth, a free, a size restore, releasing its locks): a
    /// [`Resolved`] with the current stamp still holds the region's lock and
    /// its raw bytes. The `Cell` makes `TxRegions` `!Sync`, so no other
    /// thread can grow a region through it during a raw read.
    stamp: Cell<u64>,
}

/// Stamps for [`TxRegions`], unique in the process (0 is never drawn).
static STAMPS: AtomicU64 = AtomicU64::new(1);

fn next_stamp() -> u64 {
    STAMPS.fetch_add(1, Ordering::Relaxed)
}

impl SharedMemoryManager {
    /// Begins a transaction; ids are drawn 1, 2, 3, … in call order.
    pub fn begin_transaction(self: &Arc<Self>) -> TxRegions {
        TxRegions {
            manager: Arc::clone(self),
            id: TxId(self.next_tx.fetch_add(1, Ordering::Relaxed) & !TxId::HOST_BIT),
            released: false,
            stamp: Cell::new(next_stamp()),
        }
    }
}

impl TxRegions {
    /// Invalidates the raw bytes of every [`Resolved`] made so far.
    fn restamp(&self) {
        self.stamp.set(next_stamp());
    }

    /// `region`'s raw bytes, when they may be used without the slot lock: the
    /// stamp is current and the host changed no grant or mapping since.
    #[inline]
    fn current_raw(&self, region: &Resolved) -> Option<RawRegionBytes> {
        let raw = region.raw?;
        let current = region.stamp == self.stamp.get()
            && self.manager.registry.access_version(region.handle) == Some(region.access_version);
        current.then_some(raw)
    }

    /// The transaction's id in the lock table.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// Resolves `handle` for `context` and `intent` in spec §5's order:
    /// handle, lock (waiting at most `wait`), liveness, mapping (`tx_mapping`,
    /// the transaction's own, wins over the host's), permission.
    ///
    /// # Errors
    /// [`ShmError::RegionBusy`], a permission refusal (counted in the metrics,
    /// logged at Paranoid), [`ShmError::SharedMemoryDisabled`].
    pub fn resolve(
        &mut self,
        handle: RegionHandle,
        context: ContextId,
        intent: Intent,
        tx_mapping: Option<MapOptions>,
        wait: Duration,
    ) -> Result<Resolved, ShmError> {
        let mut waited = Duration::ZERO;
        self.resolve_timed(handle, context, intent, tx_mapping, wait, &mut waited)
    }

    /// As [`resolve`](Self::resolve) (with its errors), also adding to
    /// `waited` how long it waited for the lock.
    pub fn resolve_timed(
        &mut self,
        handle: RegionHandle,
        context: ContextId,
        intent: Intent,
        tx_mapping: Option<MapOptions>,
        wait: Duration,
        waited: &mut Duration,
    ) -> Result<Resolved, ShmError> {
        let (manager, registry) = (&*self.manager, &self.manager.registry);
        manager.check_handle(handle)?;
        // A write through a copy-on-write mapping never changes the region.
        let host_mapping = || registry.lock_read(handle).ok()?.meta().mapping(context);
        let cow_write = || self.copy_on_write(tx_mapping.or_else(host_mapping));
        let mut mode = match intent {
            Intent::Write if cow_write() => LockMode::Shared,
            Intent::Read | Intent::Map => LockMode::Shared,
            Intent::Write | Intent::Free => LockMode::Exclusive,
        };
        loop {
            // Held already in this mode or exclusively: no clock, no wait.
            if self.holds(handle).is_none_or(|held| held < mode) {
                let start = Instant::now();
                let result = manager.locks.acquire(handle, self.id, mode, wait);
                *waited += start.elapsed();
                result?;
            }
            // Liveness once held: another transaction's free is final or undone.
            let guard = manager.registry.lock_read(handle)?;
            let meta = guard.meta();
            let mapping = tx_mapping.or(meta.mapping(context));
            let copy_on_write = self.copy_on_write(mapping);
            if intent == Intent::Write && !copy_on_write && mode == LockMode::Shared {
                // The host changed the mapping while we waited.
                mode = LockMode::Exclusive;
                continue;
            }
            let level = manager.config.security_level;
            let check =
                |kind| shm_access::check_access_with_mapping(level, meta, context, kind, mapping);
            let verdict = match intent {
                // Read rights suffice for a copy-on-write write (spec §5).
                Intent::Write if !copy_on_write => check(AccessKind::Write),
                Intent::Read | Intent::Write => check(AccessKind::Read),
                Intent::Map => shm_access::check_map(level, meta, context),
                Intent::Free => shm_access::check_access(level, meta, context, AccessKind::Free),
            };
            if let Err(denied) = verdict {
                drop(guard);
                let metrics = &manager.metrics;
                metrics.record_access_denied(denied.handle(), denied.context());
                return Err(denied.into());
            }
            let mut resolved = Resolved {
                handle,
                mode,
                size: meta.size(),
                max_size: meta.max_size(),
                options: *meta.options(),
                mapping,
                copy_on_write,
                access_version: guard.access_version(),
                raw: None,
                stamp: self.stamp.get(),
            };
            if manager.is_mapped() {
                return Ok(resolved);
            }
            if intent != Intent::Write || mode != LockMode::Exclusive {
                resolved.raw = guard.raw_bytes();
                return Ok(resolved);
            }
            // An exclusive writer also writes without the slot lock; the
            // capture raises the block's dirty mark under the slot's write
            // lock, meanwhile the host may change grants (the version shows it).
            drop(guard);
            let mut guard = manager.registry.lock_write(handle)?;
            if guard.access_version() != resolved.access_version {
                continue;
            }
            resolved.raw = guard.raw_bytes_for_writes();
            return Ok(resolved);
        }
    }

    fn copy_on_write(&self, mapping: Option<MapOptions>) -> bool {
        self.manager.config.enable_cow && mapping.is_some_and(MapOptions::copy_on_write)
    }

    /// Reads at `offset` into `buf` from a region this transaction resolved
    /// (zero past its end); returns how many bytes came from the region.
    ///
    /// # Errors
    /// [`ShmError::StaleResolution`] when the host changed the region's
    /// grants or mappings since it was resolved; handle errors.
    #[inline(always)]
    #[allow(unsafe_code)]
    pub fn read(&self, region: &Resolved, offset: u64, buf: &mut [u8]) -> Result<usize, ShmError> {
        if let Some(raw) = self.current_raw(region) {
            // SAFETY: the stamp matches, so this transaction resolved the
            // region and has not released its locks since: it holds the
            // region's two-phase lock, which keeps every other party from
            // writing, resizing or freeing it; and it has not grown, freed
            // or resized it itself since (each restamps). Nor can it during
            // this call: `TxRegions` is not `Sync`, and this borrow is shared.
            // Its own page restores and writes change bytes in place,
            // never while this call runs. So the captured bytes are live.
            let read = unsafe { raw.read(offset, buf) };
            // A `match`, not `ok_or`: the eager error was built and dropped
            // on every warm read (11 instructions of drop glue in callgrind).
            return match read {
                Some(n) => Ok(n),
                None => Err(ShmError::OffsetOverflow {
                    offset,
                    len: buf.len() as u64,
                }),
            };
        }
        self.read_locked(region, offset, buf)
    }

    /// [`read`](Self::read) under the slot lock, out of line so that the
    /// lock-free path inlines whole into the instruction (28 instructions
    /// of call overhead per warm READ otherwise).
    #[inline(never)]
    fn read_locked(
        &self,
        region: &Resolved,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, ShmError> {
        let guard = self.manager.registry.lock_read(region.handle)?;
        if guard.access_version() != region.access_version {
            return Err(ShmError::StaleResolution(region.handle));
        }
        Ok(guard.read(offset, buf)?)
    }

    /// Copies page `page` of a region this transaction holds into `out`
    /// (zero past the end): what a copy-on-write fault copies.
    pub fn read_page(
        &self,
        handle: RegionHandle,
        page: u64,
        out: &mut [u8; PAGE_SIZE],
    ) -> Result<usize, ShmError> {
        let guard = self.manager.registry.lock_read(handle)?;
        Ok(guard.read_page(page, out)?)
    }

    /// Performs `plan` on a region this transaction holds exclusively,
    /// showing `observer` every existing page before it changes.
    ///
    /// # Errors
    /// [`ShmError::StaleResolution`] (also when the plan was made for another
    /// size); a mapped region whose undo record could not be written.
    #[inline]
    pub fn write(
        &self,
        region: &Resolved,
        plan: WritePlan,
        data: &[u8],
        observer: &mut PageObserver<'_>,
    ) -> Result<WriteOutcome, ShmError> {
        self.write_with(region, plan, data, Some(observer))
    }

    /// As [`write`](Self::write) (with its errors), for pages the journal
    /// already saved.
    #[inline]
    #[allow(unsafe_code)]
    pub fn write_saved(
        &self,
        region: &Resolved,
        plan: WritePlan,
        data: &[u8],
    ) -> Result<WriteOutcome, ShmError> {
        if let Some(raw) = self.current_raw(region).filter(|raw| raw.is_writable()) {
            let written = plan.written as usize;
            if !plan.grows() && plan.size == raw.len() as u64 && written <= data.len() {
                // SAFETY: the stamp matches, so this transaction resolved the
                // region for writing, holding it exclusively, and has not
                // released its locks since: no other party reads, writes,
                // resizes or frees it. Nor has this transaction resized or
                // freed it since (each restamps), and it cannot during this
                // call (`TxRegions` is not `Sync`). So the captured bytes are
                // live and this call is their only user.
                if unsafe { raw.write(plan.offset, &data[..written]) } {
                    return Ok(WriteOutcome {
                        written,
                        old_size: plan.size,
                        new_size: plan.size,
                        growth_error: None,
                    });
                }
            }
        }
        self.write_with(region, plan, data, None)
    }

    #[inline]
    fn write_with(
        &self,
        region: &Resolved,
        plan: WritePlan,
        data: &[u8],
        observer: Option<&mut PageObserver<'_>>,
    ) -> Result<WriteOutcome, ShmError> {
        let mut guard = self.manager.registry.lock_write(region.handle)?;
        if guard.access_version() != region.access_version {
            return Err(ShmError::StaleResolution(region.handle));
        }
        let outcome = guard
            .write_planned(plan, data, observer)
            .map_err(|error| match error {
                shm_region::RegionError::StalePlan => ShmError::StaleResolution(region.handle),
                other => other.into(),
            })?;
        if outcome.grew() {
            // Growth may have moved the bytes to another block.
            self.restamp();
            self.manager.metrics.record_region_resized(
                region.handle,
                outcome.old_size,
                outcome.new_size,
            );
        }
        Ok(outcome)
    }

    /// Creates a region for this transaction (SHARED_ALLOC below the journal),
    /// locked exclusively before any collection can see it.
    ///
    /// # Errors
    /// Limit, pool and mapped-namespace refusals.
    pub fn create(&mut self, spec: RegionSpec) -> Result<RegionHandle, ShmError> {
        let locks = &self.manager.locks;
        // A new handle has a new generation: nobody holds its lock yet.
        let lock =
            |handle| Ok(locks.acquire(handle, self.id, LockMode::Exclusive, Duration::ZERO)?);
        self.manager.create_held(spec, lock)
    }

    /// Begins freeing a region this transaction holds exclusively: its handle
    /// stops working at once; the rest stays until the free is made final
    /// ([`RegionOps::finish_free`]) or undone. Returns its size.
    pub fn begin_free(&self, handle: RegionHandle) -> Result<u64, ShmError> {
        self.restamp();
        let registry = &self.manager.registry;
        let size = registry.lock_read(handle)?.size();
        registry.begin_free(handle)?;
        Ok(size)
    }

    /// Frees the transaction-scoped regions the transaction made, at its end.
    pub fn free_scoped(&mut self, regions: &[(RegionHandle, u64)]) {
        for &(handle, size) in regions {
            self.free_created(handle, size);
        }
    }

    /// Counts a mapping made by the transaction.
    pub fn record_mapping(&self, handle: RegionHandle, context: ContextId) {
        self.manager.metrics.record_mapping(handle, context);
    }

    /// Adds the transaction's batched counters to the metrics.
    pub fn record_accesses(&self, counts: AccessCounts) {
        let metrics = &self.manager.metrics;
        metrics.record_reads(counts.reads, counts.read_bytes);
        metrics.record_writes(counts.writes, counts.write_bytes);
        metrics.record_cow_faults(counts.cow_faults);
    }

    /// Moves the copy-on-write page gauge by the pages made and dropped (never below 0).
    pub fn record_cow_pages(&self, made: u64, dropped: u64) {
        if made > 0 || dropped > 0 {
            let pages = &self.manager.cow_pages;
            let _ = pages.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.wrapping_add(made).saturating_sub(dropped))
            });
        }
    }

    /// The mode in which this transaction holds `handle`, if it does.
    pub fn holds(&self, handle: RegionHandle) -> Option<LockMode> {
        self.manager.locks.mode_held(handle, self.id)
    }

    /// Releases every lock (returning how many) and runs a collection if due.
    pub fn release(mut self) -> usize {
        self.release_locks()
    }

    fn release_locks(&mut self) -> usize {
        if self.released {
            return 0;
        }
        self.released = true;
        self.restamp();
        let released = self.manager.locks.release_transaction(self.id);
        self.manager.maybe_collect();
        released
    }
}

// By hand: a derived `Debug` would print the manager, whose lock table locks
// every shard to print itself.
impl std::fmt::Debug for TxRegions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxRegions")
            .field("id", &self.id)
            .field("released", &self.released)
            .finish()
    }
}

impl Drop for TxRegions {
    fn drop(&mut self) {
        self.release_locks();
    }
}

/// Accesses a transaction counted, reported once ([`TxRegions::record_accesses`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessCounts {
    /// Reads.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Writes.
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Copy-on-write faults.
    pub cow_faults: u64,
}

/// The journal's undo and settlement, on regions this transaction holds.
impl RegionOps for TxRegions {
    fn restore_page(&mut self, handle: RegionHandle, page: u64, saved: &Page) {
        let result = self.manager.registry.lock_write(handle);
        if let Err(error) = result.and_then(|mut guard| guard.restore_page(page, saved)) {
            // Not while the transaction holds its locks; logged, not a panic,
            // so a bug never takes a node down.
            tracing::error!(target: "shm::transaction", %error, %handle, page, "page restore failed");
        }
    }

    fn set_size(&mut self, handle: RegionHandle, size: u64) {
        self.restamp();
        let manager = &*self.manager;
        let result = manager.registry.lock_write(handle);
        match result.and_then(|mut guard| guard.set_size(size)) {
            Ok(old) => manager.metrics.record_region_resized(handle, old, size),
            Err(error) => {
                tracing::error!(target: "shm::transaction", %error, %handle, "size restore failed");
            }
        }
    }

    fn free_created(&mut self, handle: RegionHandle, _size: u64) {
        self.restamp();
        let _ = self.manager.free_counted(handle);
    }

    fn cancel_free(&mut self, handle: RegionHandle) {
        self.restamp();
        if let Err(error) = self.manager.registry.cancel_free(handle) {
            tracing::error!(target: "shm::transaction", %error, %handle, "free not undone");
        }
    }

    fn finish_free(&mut self, handle: RegionHandle) {
        self.restamp();
        let manager = &*self.manager;
        let size = manager.registry.pending_size(handle).unwrap_or(0);
        match manager.registry.finish_free(handle) {
            Ok(()) => manager.metrics.record_region_destroyed(handle, size),
            Err(error) => {
                tracing::error!(target: "shm::transaction", %error, %handle, "final free failed");
            }
        }
    }
}
