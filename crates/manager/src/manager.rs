//! The manager: one registry, pool, lock table and metrics recorder, and the host API.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockWriteGuard};
use shm_access::AccessDenied;
use shm_metrics::{Metrics, MetricsRecorder};
use shm_pool::{Block, BlockPool, SizeClass};
use shm_primitives::{
    AccessKind, Address, ContextId, MapOptions, Permissions, RegionHandle, RegionOptions,
};
use shm_region::{Grant, MappingInfo, RegionInfo, RegionMeta, RegionRegistry, RegionSpec};

use shm_mapped::MappedRegion;

use crate::mapped::MappedBacking;
use crate::stats::ClassUsage;
use crate::{GcReport, LockMode, MemoryStats, RegionLockTable, SharedMemoryConfig, ShmError, TxId};

/// The context that owns regions made through the host API unless a
/// [`RegionRequest`] names another owner: the zero address, where no contract
/// runs. At Strict and up only the owner frees, so bytecode can never free a
/// host region; at Basic a host [`Grant`] with the right to free lets it.
pub const HOST_CONTEXT: ContextId = Address::ZERO;

/// What to create through [`SharedMemoryManager::create_region`]: a builder
/// over size, name, owner, owner permissions, options and growth limit.
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
    /// Options fixed at creation (copy-on-write is cleared when the config has
    /// COW off).
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

    /// Sets the owner's rights.
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
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

/// What [`SharedMemoryManager::transaction_finished`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionEnd {
    /// Transaction-scoped regions freed.
    pub regions_freed: usize,
    /// Region locks released.
    pub locks_released: usize,
    /// The automatic garbage collection it triggered, if any.
    pub gc: Option<GcReport>,
}

/// The shared-memory subsystem of one node: the facade a node embeds
/// (spec §10), and what the transaction layer (the opcodes) builds on.
///
/// It owns one [`RegionRegistry`] (over one [`BlockPool`]), one
/// [`RegionLockTable`], and one [`MetricsRecorder`]. It is `Send + Sync` and
/// lives in an `Arc`; every method takes `&self`.
///
/// # Host API
///
/// Host calls are privileged and not journalled (spec §6): they check handles
/// and bounds but no permissions, and each one is atomic. Each data call (read,
/// write, free) takes the region's two-phase lock for its own duration, as a
/// one-call transaction, so a host write never lands between a transaction's
/// write and its revert: it waits up to `lock_wait` and otherwise fails with
/// [`ShmError::RegionBusy`]. Mapping, grants and references change metadata
/// only and do not wait for transactions.
///
/// Regions made through the host API are owned by [`HOST_CONTEXT`] unless the
/// [`RegionRequest`] names an owner, and start with **one host reference**:
/// the creator's. [`release_region`](Self::release_region) drops it.
///
/// # Garbage collection
///
/// A region is *unreferenced* when all of these hold: it is live (not awaiting
/// a final free), it is not persistent, its reference count
/// ([`RegionMeta::ref_count`]: mappings by any context plus host references) is
/// zero, and no transaction holds its lock in the [`RegionLockTable`].
/// [`garbage_collect`](Self::garbage_collect) frees every unreferenced region
/// and compacts the pools. So a host region goes once the host released it and
/// nobody maps it; a persistent region never goes; a transaction's own regions
/// are locked (and mapped by their owner) until the transaction ends, when
/// [`transaction_finished`](Self::transaction_finished) frees them.
///
/// [`maybe_collect`](Self::maybe_collect), called at every transaction end,
/// runs a collection when `gc_interval_ms` has passed since the last one, or
/// when region memory is above `gc_threshold_mb` and has changed since the last
/// one ended. With `eager_cleanup`, a region is freed at the moment it becomes
/// unreferenced by a host unmap or release.
///
/// ```
/// use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
/// use shm_primitives::{Address, MapOptions, Permissions, RegionOptions};
/// use shm_region::Grant;
///
/// let manager = SharedMemoryManager::new(SharedMemoryConfig::development())?;
/// let handle = manager.create_shared_region(
///     "prices", 4096, Permissions::read_write(), RegionOptions::default())?;
///
/// // Let a contract read it: grant read rights and map it read-only.
/// let oracle = Address::repeat_byte(0x42);
/// manager.grant(handle, oracle, Grant::new(Permissions::read_only()))?;
/// manager.map_shared_region(handle, oracle, MapOptions::READ_ONLY)?;
///
/// assert_eq!(manager.write_region(handle, 0, b"eth=3141")?, 8);
/// let mut buf = [0u8; 8];
/// assert_eq!(manager.read_region(handle, 0, &mut buf)?, 8);
/// assert_eq!(&buf, b"eth=3141");
/// assert_eq!(manager.find_region("prices")?, handle);
///
/// let stats = manager.get_memory_stats()?;
/// assert_eq!((stats.active_regions, stats.total_bytes, stats.mappings), (1, 4096, 1));
/// assert_eq!(manager.metrics_snapshot().writes, 1);
/// # Ok::<(), shm_manager::ShmError>(())
/// ```
pub struct SharedMemoryManager {
    config: SharedMemoryConfig,
    registry: Arc<RegionRegistry>,
    /// The mapped namespace, when the config names one.
    mapped: Option<Arc<MappedBacking>>,
    locks: RegionLockTable,
    metrics: MetricsRecorder,
    next_tx: AtomicU64,
    next_host_call: AtomicU64,
    cow_pages: AtomicU64,
    started: Instant,
    /// When the last collection ended, in nanoseconds since `started`.
    last_gc_nanos: AtomicU64,
    /// Region memory (the metrics gauge) when the last collection ended.
    memory_after_gc: AtomicU64,
    /// Creations hold it shared between making a region and taking their first
    /// reference (or lock) on it; collections hold it exclusively, so they never
    /// see a region in that window.
    gc_gate: RwLock<()>,
}

/// Releases a host call's region lock when dropped (also on unwinding).
struct HostLock<'a> {
    locks: &'a RegionLockTable,
    handle: RegionHandle,
    id: TxId,
}

impl Drop for HostLock<'_> {
    fn drop(&mut self) {
        self.locks.release_all(self.id, [self.handle]);
    }
}

impl SharedMemoryManager {
    /// A manager with `config`: reserves the configured pool blocks (none when
    /// disabled).
    ///
    /// # Errors
    /// [`ShmError::InvalidConfig`] when the config contradicts itself.
    pub fn new(config: SharedMemoryConfig) -> Result<Arc<Self>, ShmError> {
        config.validate().map_err(ShmError::InvalidConfig)?;
        let registry = Arc::new(RegionRegistry::new(
            BlockPool::new(config.pool_config()),
            config.registry_config(),
        ));
        let mapped = if config.is_mapped() {
            Some(MappedBacking::open(&config, registry.clone())?)
        } else {
            None
        };
        let locks = match &mapped {
            Some(backing) => RegionLockTable::with_cross_process(backing.clone()),
            None => RegionLockTable::new(),
        };
        let metrics = MetricsRecorder::new();
        for info in registry.infos() {
            metrics.record_region_created(info.meta.handle(), info.meta.size());
        }
        Ok(Arc::new(Self {
            config,
            registry,
            mapped,
            locks,
            metrics,
            next_tx: AtomicU64::new(1),
            next_host_call: AtomicU64::new(1),
            cow_pages: AtomicU64::new(0),
            started: Instant::now(),
            last_gc_nanos: AtomicU64::new(0),
            memory_after_gc: AtomicU64::new(0),
            gc_gate: RwLock::new(()),
        }))
    }

    // ----- accessors for the transaction layer -----

    /// The configuration.
    pub fn config(&self) -> &SharedMemoryConfig {
        &self.config
    }

    /// The region registry (for the transaction layer: guards, two-phase
    /// free, page snapshots).
    ///
    /// The garbage collector relies on two rules of the transaction layer:
    /// a transaction makes its regions with
    /// [`create_for_transaction`](Self::create_for_transaction) (which also
    /// locks them and counts them in the metrics), and it takes a region's
    /// two-phase lock ([`locks`](Self::locks)) before it maps, reads, writes
    /// or frees it. A region locked by a transaction is never collected.
    pub fn registry(&self) -> &RegionRegistry {
        &self.registry
    }

    /// The per-region two-phase lock table.
    pub fn locks(&self) -> &RegionLockTable {
        &self.locks
    }

    /// The live counters.
    pub fn metrics(&self) -> &MetricsRecorder {
        &self.metrics
    }

    /// A snapshot of the counters.
    pub fn metrics_snapshot(&self) -> Metrics {
        self.metrics.snapshot()
    }

    /// The counters, and (when enabled) the memory statistics, as Prometheus text.
    pub fn prometheus(&self) -> String {
        let mut text = self.metrics.snapshot().to_prometheus();
        if let Ok(stats) = self.get_memory_stats() {
            stats.write_prometheus(&mut text);
        }
        text
    }

    /// A fresh transaction id: 1, 2, 3, … in call order.
    pub fn next_transaction_id(&self) -> TxId {
        TxId(self.next_tx.fetch_add(1, Relaxed) & !TxId::HOST_BIT)
    }

    /// Adds `pages` to the copy-on-write page gauge (the transaction layer
    /// calls this when it makes private pages).
    pub fn cow_pages_add(&self, pages: u64) {
        self.cow_pages.fetch_add(pages, Relaxed);
    }

    /// Subtracts `pages` from the copy-on-write page gauge, stopping at 0.
    pub fn cow_pages_sub(&self, pages: u64) {
        let _ = self
            .cow_pages
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(pages)));
    }

    /// Private copy-on-write pages currently held.
    pub fn cow_pages(&self) -> u64 {
        self.cow_pages.load(Relaxed)
    }

    /// The mapping options a request for `options` gets under this config: with
    /// COW off, the copy-on-write bit is dropped and the mapping is read-write
    /// (spec §9).
    pub fn effective_map_options(&self, options: MapOptions) -> MapOptions {
        if self.config.enable_cow {
            options
        } else {
            options.difference(MapOptions::COPY_ON_WRITE)
        }
    }

    /// Whether `context` may do `kind` to the region whose metadata is `meta`,
    /// at the configured security level (via `shm-access`). A refusal is
    /// counted in the metrics; at Paranoid `shm-access` also logs it
    /// (`tracing::warn!`, target `shm::access`).
    ///
    /// ```
    /// use shm_manager::{SharedMemoryConfig, SharedMemoryManager, ShmError};
    /// use shm_primitives::{AccessKind, Address, Permissions, RegionOptions};
    ///
    /// let manager = SharedMemoryManager::new(SharedMemoryConfig::production())?;
    /// let h = manager.create_shared_region("r", 64, Permissions::read_write(), RegionOptions::default())?;
    /// let guard = manager.registry().lock_read(h)?;
    /// let stranger = Address::repeat_byte(9);
    /// // Strict: no mapping, no access.
    /// assert!(matches!(manager.check_access(guard.meta(), stranger, AccessKind::Read),
    ///     Err(ShmError::MappingNotFound { .. })));
    /// assert_eq!(manager.metrics_snapshot().access_denials, 1);
    /// # Ok::<(), ShmError>(())
    /// ```
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], or the refusal
    /// ([`ShmError::MappingNotFound`], [`ShmError::NoReadPermission`], …).
    pub fn check_access(
        &self,
        meta: &RegionMeta,
        context: ContextId,
        kind: AccessKind,
    ) -> Result<(), ShmError> {
        self.ensure_enabled()?;
        let result = shm_access::check_access(self.config.security_level, meta, context, kind);
        self.count_denial(result)
    }

    /// As [`check_access`](Self::check_access), with the context's mapping given
    /// by the caller (the EVM keeps bytecode-made mappings in the transaction).
    ///
    /// # Errors
    /// As [`check_access`](Self::check_access).
    pub fn check_access_mapped(
        &self,
        meta: &RegionMeta,
        context: ContextId,
        kind: AccessKind,
        mapping: Option<&MappingInfo>,
    ) -> Result<(), ShmError> {
        self.ensure_enabled()?;
        let result = shm_access::check_access_with_mapping(
            self.config.security_level,
            meta,
            context,
            kind,
            mapping,
        );
        self.count_denial(result)
    }

    /// Whether `context` may map the region (read rights, Basic and up);
    /// counted and logged as [`check_access`](Self::check_access).
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], [`ShmError::NoReadPermission`].
    pub fn check_map(&self, meta: &RegionMeta, context: ContextId) -> Result<(), ShmError> {
        self.ensure_enabled()?;
        let result = shm_access::check_map(self.config.security_level, meta, context);
        self.count_denial(result)
    }

    fn count_denial(&self, result: Result<(), AccessDenied>) -> Result<(), ShmError> {
        result.map_err(|denied| {
            self.metrics
                .record_access_denied(denied.handle(), denied.context());
            denied.into()
        })
    }

    /// Creates a region for transaction `tx` (what `SHARED_ALLOC` does below
    /// the journal): the region is created, locked exclusively for `tx`
    /// before any collection can see it, and counted in the metrics. Mapping
    /// the owner and journalling the allocation are the caller's job.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], [`ShmError::ZeroSize`],
    /// [`ShmError::RegionTooLarge`], [`ShmError::TooManySharedRegions`],
    /// [`ShmError::PoolExhausted`], [`ShmError::LargeAllocLimit`].
    pub fn create_for_transaction(
        &self,
        tx: TxId,
        mut spec: RegionSpec,
    ) -> Result<RegionHandle, ShmError> {
        self.ensure_enabled()?;
        spec.options.copy_on_write &= self.config.enable_cow;
        let size = spec.size;
        let _gate = self.gc_gate.read();
        let handle = self.create_in_registry(spec)?;
        // A new handle has a new generation: nobody holds its lock yet.
        self.locks
            .acquire(handle, tx, LockMode::Exclusive, Duration::ZERO)?;
        self.metrics.record_region_created(handle, size);
        Ok(handle)
    }

    /// Ends transaction `tx`: frees the transaction-scoped regions it created
    /// (`tx_scoped`, passed by the transaction layer; handles already freed and
    /// persistent regions are skipped), releases every region lock it holds, and
    /// then runs [`maybe_collect`](Self::maybe_collect).
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`].
    pub fn transaction_finished(
        &self,
        tx: TxId,
        tx_scoped: &[RegionHandle],
    ) -> Result<TransactionEnd, ShmError> {
        self.ensure_enabled()?;
        let mut regions_freed = 0;
        for &handle in tx_scoped {
            let size = match self.registry.lock_read(handle) {
                Ok(guard) if !guard.meta().options().persistent => guard.size(),
                _ => continue,
            };
            if self.registry.free(handle).is_ok() {
                self.metrics.record_region_destroyed(handle, size);
                regions_freed += 1;
            }
        }
        let locks_released = self.locks.release_transaction(tx);
        Ok(TransactionEnd {
            regions_freed,
            locks_released,
            gc: self.maybe_collect(),
        })
    }

    // ----- host API -----

    /// Creates a named region of `size` bytes owned by [`HOST_CONTEXT`] with
    /// the owner rights `permissions`, holding one host reference. Other
    /// contexts get access through [`grant`](Self::grant), the public flags of
    /// `options`, and (Strict) [`map_shared_region`](Self::map_shared_region).
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
        self.create_region(
            RegionRequest::new(size)
                .named(name)
                .permissions(permissions)
                .options(options),
        )
    }

    /// Creates a region as `request` says, holding one host reference.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], [`ShmError::ZeroSize`],
    /// [`ShmError::RegionTooLarge`], [`ShmError::NameTaken`],
    /// [`ShmError::TooManySharedRegions`], [`ShmError::PoolExhausted`],
    /// [`ShmError::LargeAllocLimit`].
    pub fn create_region(&self, request: RegionRequest) -> Result<RegionHandle, ShmError> {
        self.ensure_enabled()?;
        let RegionRequest {
            name,
            size,
            owner,
            permissions,
            mut options,
            max_size,
        } = request;
        options.copy_on_write &= self.config.enable_cow;
        let spec = RegionSpec {
            name,
            size,
            owner,
            permissions,
            options,
            max_size,
        };
        let _gate = self.gc_gate.read();
        let handle = self.create_in_registry(spec)?;
        self.registry.lock_write(handle)?.add_host_ref();
        self.metrics.record_region_created(handle, size);
        Ok(handle)
    }

    /// Gives `context` a mapping of the region with `options` (replacing any it
    /// had), as [`effective_map_options`](Self::effective_map_options) adjusts
    /// them. The host maps without permission checks; the mapping never widens
    /// the context's rights.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors.
    pub fn map_shared_region(
        &self,
        handle: RegionHandle,
        context: ContextId,
        options: MapOptions,
    ) -> Result<(), ShmError> {
        self.ensure_enabled()?;
        let options = self.effective_map_options(options);
        // Shared with other host calls, exclusive with collections: a region
        // is never collected between its check and its free.
        let _gate = self.gc_gate.read();
        self.registry.lock_write(handle)?.map(context, options);
        self.metrics.record_mapping(handle, context);
        Ok(())
    }

    /// Removes the mapping of `context`. With `eager_cleanup`, a region left
    /// unreferenced is freed at once.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors,
    /// [`ShmError::MappingNotFound`].
    pub fn unmap_shared_region(
        &self,
        handle: RegionHandle,
        context: ContextId,
    ) -> Result<(), ShmError> {
        self.ensure_enabled()?;
        self.registry.unmap(handle, context)?;
        self.metrics.record_unmapping(handle, context);
        if self.config.eager_cleanup {
            self.collect_one(handle);
        }
        Ok(())
    }

    /// Copies bytes at `offset` into `buf`; bytes past the end of the region
    /// read as zero. Returns how many came from the region.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors,
    /// [`ShmError::OffsetOverflow`], [`ShmError::RegionBusy`] when a
    /// transaction holds the region exclusively for longer than `lock_wait`.
    pub fn read_region(
        &self,
        handle: RegionHandle,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, ShmError> {
        self.ensure_enabled()?;
        self.registry.check(handle)?;
        let _lock = self.host_lock(handle, LockMode::Shared)?;
        let read = self.registry.lock_read(handle)?.read(offset, buf)?;
        self.metrics.record_read(read as u64);
        Ok(read)
    }

    /// Writes `data` at `offset`: past the end it writes what fits, unless the
    /// region auto-grows (up to its maximum size; growth the pool refuses
    /// writes what fits). Returns how many bytes were written.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors,
    /// [`ShmError::OffsetOverflow`], [`ShmError::RegionBusy`] when a
    /// transaction holds the region for longer than `lock_wait`.
    pub fn write_region(
        &self,
        handle: RegionHandle,
        offset: u64,
        data: &[u8],
    ) -> Result<usize, ShmError> {
        self.ensure_enabled()?;
        self.registry.check(handle)?;
        let _lock = self.host_lock(handle, LockMode::Exclusive)?;
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

    /// Grants `context` rights on the region (Basic and up; at None everyone
    /// may do everything anyway); returns the grant it replaces.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors.
    pub fn grant(
        &self,
        handle: RegionHandle,
        context: ContextId,
        grant: Grant,
    ) -> Result<Option<Grant>, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.grant(handle, context, grant)?)
    }

    /// Withdraws the grant of `context`; returns it.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors.
    pub fn revoke(
        &self,
        handle: RegionHandle,
        context: ContextId,
    ) -> Result<Option<Grant>, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.revoke(handle, context)?)
    }

    /// Takes another host reference on the region (it is then not collected
    /// until that reference is released too); returns the host references held.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors.
    pub fn retain_region(&self, handle: RegionHandle) -> Result<u32, ShmError> {
        self.ensure_enabled()?;
        let _gate = self.gc_gate.read();
        Ok(self.registry.lock_write(handle)?.add_host_ref())
    }

    /// Drops one host reference (never below zero); returns the host
    /// references left. A non-persistent region with no host reference and no
    /// mapping is collected by the next garbage collection, or at once with
    /// `eager_cleanup`.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors.
    pub fn release_region(&self, handle: RegionHandle) -> Result<u32, ShmError> {
        self.ensure_enabled()?;
        let left = self.registry.lock_write(handle)?.drop_host_ref();
        if left == 0 && self.config.eager_cleanup {
            self.collect_one(handle);
        }
        Ok(left)
    }

    /// Frees the region for good, whoever references it: its handle dies (it
    /// will never name another region), its name is released and its memory
    /// goes back to the pool (zeroed at once at Paranoid).
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors,
    /// [`ShmError::RegionBusy`] when a transaction holds the region for longer
    /// than `lock_wait`.
    pub fn free_region(&self, handle: RegionHandle) -> Result<(), ShmError> {
        self.ensure_enabled()?;
        self.registry.check(handle)?;
        let _lock = self.host_lock(handle, LockMode::Exclusive)?;
        let size = self.registry.lock_read(handle)?.size();
        self.registry.free(handle)?;
        self.metrics.record_region_destroyed(handle, size);
        Ok(())
    }

    /// A snapshot of the region: metadata, block capacity, last access.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], handle errors.
    pub fn region_info(&self, handle: RegionHandle) -> Result<RegionInfo, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.info(handle)?)
    }

    /// Snapshots of every live region, by slot index.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`].
    pub fn list_regions(&self) -> Result<Vec<RegionInfo>, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.infos())
    }

    /// The handle of the live region called `name`.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], [`ShmError::NameNotFound`].
    pub fn find_region(&self, name: &str) -> Result<RegionHandle, ShmError> {
        self.ensure_enabled()?;
        Ok(self.registry.lookup(name)?)
    }

    /// An all-zero block of at least `size` bytes straight from the pool (for
    /// host buffers); it goes back with [`deallocate_to_pool`](Self::deallocate_to_pool)
    /// or when dropped.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`], [`ShmError::ZeroSize`],
    /// [`ShmError::PoolExhausted`], [`ShmError::LargeAllocLimit`].
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

    // ----- statistics and garbage collection -----

    /// Region memory, pool occupancy and copy-on-write pages, now.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`].
    pub fn get_memory_stats(&self) -> Result<MemoryStats, ShmError> {
        self.ensure_enabled()?;
        let infos = self.registry.infos();
        let pool = self.registry.pool().stats();
        let pool_classes = SizeClass::ALL.map(|class| {
            let c = pool.class(class);
            ClassUsage {
                block_bytes: class.bytes(),
                capacity: c.capacity,
                allocated: c.allocated,
                utilization: if c.capacity == 0 {
                    0.0
                } else {
                    (c.allocated as f64 / c.capacity as f64).min(1.0)
                },
            }
        });
        Ok(MemoryStats {
            total_bytes: infos.iter().map(|i| i.meta.size()).sum(),
            capacity_bytes: infos.iter().map(|i| i.capacity as u64).sum(),
            active_regions: infos.len(),
            persistent_regions: infos.iter().filter(|i| i.meta.options().persistent).count(),
            pending_frees: self.registry.pending_frees().len(),
            mappings: infos.iter().map(|i| i.meta.mappings().len()).sum(),
            cow_pages: self.cow_pages(),
            pool_classes,
            pool_utilization: pool.utilization,
            fragmentation_ratio: pool.fragmentation,
            pool_reserved_bytes: pool.reserved_bytes(),
            large_bytes: pool.large.bytes_in_use,
        })
    }

    /// Frees every unreferenced region (see the type's docs for the exact
    /// rule), compacts the pools, and counts the run in the metrics. Waits for
    /// region creations in progress and for another collection.
    ///
    /// # Errors
    /// [`ShmError::SharedMemoryDisabled`].
    pub fn garbage_collect(&self) -> Result<GcReport, ShmError> {
        self.ensure_enabled()?;
        Ok(self.collect(self.gc_gate.write()))
    }

    /// Runs [`garbage_collect`](Self::garbage_collect) if it is due: when
    /// `gc_interval_ms` (≠ 0) has passed since the last collection, or when
    /// region memory (the metrics gauge) is above `gc_threshold_mb` (≠ 0) and
    /// has changed since the last collection ended. Skips (returns `None`) when
    /// disabled, not due, or when another collection or a creation is in
    /// progress (the next transaction end tries again).
    pub fn maybe_collect(&self) -> Option<GcReport> {
        if !self.config.enabled {
            return None;
        }
        let interval_due = self
            .config
            .gc_interval()
            .is_some_and(|interval| self.since_last_gc() >= interval);
        let threshold_due = self.config.gc_threshold_bytes().is_some_and(|threshold| {
            let memory = self.metrics.snapshot().memory_bytes;
            memory > threshold && memory != self.memory_after_gc.load(Relaxed)
        });
        if !(interval_due || threshold_due) {
            return None;
        }
        let gate = self.gc_gate.try_write()?;
        Some(self.collect(gate))
    }

    fn since_last_gc(&self) -> Duration {
        let elapsed = self.started.elapsed();
        elapsed.saturating_sub(Duration::from_nanos(self.last_gc_nanos.load(Relaxed)))
    }

    fn collect(&self, _gate: RwLockWriteGuard<'_, ()>) -> GcReport {
        let start = Instant::now();
        let mut regions_freed = Vec::new();
        let mut bytes_freed = 0;
        for handle in self.registry.handles() {
            if let Some(size) = self.free_if_unreferenced(handle) {
                regions_freed.push(handle);
                bytes_freed += size;
            }
        }
        let pool_bytes_compacted = self.registry.pool().compact();
        let duration = start.elapsed();
        self.metrics
            .record_gc_run(duration, regions_freed.len() as u64);
        let ended = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_gc_nanos.store(ended, Relaxed);
        self.memory_after_gc
            .store(self.metrics.snapshot().memory_bytes, Relaxed);
        GcReport {
            regions_freed,
            bytes_freed,
            pool_bytes_compacted,
            duration,
        }
    }

    /// Eager cleanup of one region (after an unmap or a release).
    fn collect_one(&self, handle: RegionHandle) {
        let _gate = self.gc_gate.write();
        self.free_if_unreferenced(handle);
    }

    /// Frees the region if it is unreferenced; returns its size if it did.
    ///
    /// The caller holds the GC gate exclusively, which keeps host mappings and
    /// references out; the two-phase lock taken here keeps transactions out
    /// (they lock a region before they map it). So nothing can reference the
    /// region between the check and the free.
    fn free_if_unreferenced(&self, handle: RegionHandle) -> Option<u64> {
        // A region a transaction holds is in use, whatever its counts say.
        let _lock = self.host_lock_within(handle, LockMode::Exclusive, Duration::ZERO)?;
        let size = {
            let guard = self.registry.lock_read(handle).ok()?;
            let meta = guard.meta();
            if meta.options().persistent || meta.ref_count() > 0 {
                return None;
            }
            guard.size()
        };
        self.registry.free(handle).ok()?;
        self.metrics.record_region_destroyed(handle, size);
        Some(size)
    }

    // ----- mapped namespaces (IPC) -----

    /// A manager over the mapped namespace `namespace` under `/dev/shm`
    /// (the `production` preset with [`SharedMemoryConfig::with_namespace`]):
    /// it attaches every persistent region that other processes (or earlier
    /// runs) left there, with the same handles, names and bytes, and shares
    /// the namespace with the processes attached to it.
    ///
    /// ```
    /// use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
    /// use shm_primitives::{Permissions, RegionOptions};
    ///
    /// let root = std::env::temp_dir().join(format!("shm-doc-{}", std::process::id()));
    /// let config = SharedMemoryConfig {
    ///     namespace_root: Some(root.clone()),
    ///     ..SharedMemoryConfig::production().with_namespace("doc")
    /// };
    /// let persistent = RegionOptions { persistent: true, ..RegionOptions::default() };
    /// let first = SharedMemoryManager::new(config.clone())?;
    /// let h = first.create_shared_region("kept", 64, Permissions::read_write(), persistent)?;
    /// first.write_region(h, 0, b"still here")?;
    /// drop(first); // the process could end here
    ///
    /// let second = SharedMemoryManager::new(config)?;
    /// assert_eq!(second.find_region("kept")?, h);
    /// let mut buf = [0u8; 10];
    /// second.read_region(h, 0, &mut buf)?;
    /// assert_eq!(&buf, b"still here");
    /// # drop(second); std::fs::remove_dir_all(root).unwrap();
    /// # Ok::<(), shm_manager::ShmError>(())
    /// ```
    ///
    /// # Errors
    /// [`ShmError::Mapped`]: the namespace is not writable, a region file is
    /// corrupt, truncated, of another format version or fails its checksum
    /// (Paranoid), a region's lock stayed busy.
    pub fn attach(namespace: &str) -> Result<Arc<Self>, ShmError> {
        Self::new(SharedMemoryConfig::production().with_namespace(namespace))
    }

    /// The directory of the mapped namespace, if regions live in one.
    pub fn namespace_dir(&self) -> Option<&std::path::Path> {
        self.mapped.as_ref().map(|m| m.dir())
    }

    /// The mapped file behind `handle` (header words, commit generation), if
    /// regions live in a namespace and this process maps it.
    pub fn mapped_region(&self, handle: RegionHandle) -> Option<Arc<MappedRegion>> {
        self.mapped.as_ref()?.region(handle)
    }

    /// Attaches the region `handle` names if another process created it in
    /// the namespace after this manager attached; whether it did. The
    /// transaction layer calls this when a handle is unknown.
    pub fn refresh_handle(&self, handle: RegionHandle) -> bool {
        self.mapped.as_ref().is_some_and(|m| {
            let attached = m.refresh(handle);
            if attached {
                if let Ok(info) = self.registry.info(handle) {
                    self.metrics.record_region_created(handle, info.meta.size());
                }
            }
            attached
        })
    }

    fn create_in_registry(&self, spec: RegionSpec) -> Result<RegionHandle, ShmError> {
        match &self.mapped {
            Some(mapped) => mapped.create(spec),
            None => Ok(self.registry.create(spec)?),
        }
    }

    // ----- helpers -----

    fn ensure_enabled(&self) -> Result<(), ShmError> {
        if self.config.enabled {
            Ok(())
        } else {
            Err(ShmError::SharedMemoryDisabled)
        }
    }

    /// Takes `handle`'s two-phase lock for one host call, waiting `lock_wait`.
    fn host_lock(&self, handle: RegionHandle, mode: LockMode) -> Result<HostLock<'_>, ShmError> {
        let id = self.host_call_id();
        self.locks
            .acquire(handle, id, mode, self.config.lock_wait)?;
        Ok(HostLock {
            locks: &self.locks,
            handle,
            id,
        })
    }

    fn host_lock_within(
        &self,
        handle: RegionHandle,
        mode: LockMode,
        wait: Duration,
    ) -> Option<HostLock<'_>> {
        let id = self.host_call_id();
        self.locks.acquire(handle, id, mode, wait).ok()?;
        Some(HostLock {
            locks: &self.locks,
            handle,
            id,
        })
    }

    fn host_call_id(&self) -> TxId {
        TxId(TxId::HOST_BIT | self.next_host_call.fetch_add(1, Relaxed))
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        // Persistent regions keep their files when the registry lets go.
        if let Some(mapped) = &self.mapped {
            mapped.detach();
        }
    }
}

impl std::fmt::Debug for SharedMemoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemoryManager")
            .field("config", &self.config)
            .field("registry", &self.registry)
            .field("locks", &self.locks)
            .finish_non_exhaustive()
    }
}
