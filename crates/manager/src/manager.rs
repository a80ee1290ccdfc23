//! The manager: one registry, pool, lock table and metrics recorder.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_mapped::MappedRegion;
use shm_metrics::{Metrics, MetricsRecorder};
use shm_pool::BlockPool;
use shm_primitives::{MapOptions, RegionHandle};
use shm_region::{Liveness, RegionRegistry, RegionSpec};

use crate::gate::GcGate;
use crate::mapped::MappedBacking;
use crate::{LockMode, RegionLockTable, SharedMemoryConfig, ShmError, TxId};

/// The shared-memory subsystem of one node (spec §10). It lives in an `Arc`;
/// the transaction layer reaches regions only through
/// [`begin_transaction`](Self::begin_transaction)'s [`TxRegions`](crate::TxRegions).
/// Every call fails with [`ShmError::SharedMemoryDisabled`] when shared memory
/// is off, and with a handle error ([`ShmError::InvalidRegionHandle`],
/// [`ShmError::RegionFreed`]) given a bad handle; each lists only its others.
///
/// Host calls are privileged and not journalled (spec §6): they check handles
/// and bounds but no permissions. Each data call (read, write, free) takes the
/// region's two-phase lock as a one-call transaction, waiting up to
/// `lock_wait` (then [`ShmError::RegionBusy`]), so a host write never lands
/// between a transaction's write and its revert. Mapping, grants and references
/// do not wait. Host regions start with the creator's host reference.
///
/// [`garbage_collect`](Self::garbage_collect) frees every *unreferenced* region
/// (live, not persistent, no lock holder, a zero
/// [`ref_count`](shm_region::RegionMeta::ref_count): mappings plus host
/// references) and compacts the pools; [`maybe_collect`](Self::maybe_collect)
/// runs it when due; with `eager_cleanup` a host unmap or release frees at once.
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
    pub(crate) config: SharedMemoryConfig,
    pub(crate) registry: Arc<RegionRegistry>,
    pub(crate) mapped: Option<Arc<MappedBacking>>,
    pub(crate) locks: RegionLockTable,
    pub(crate) metrics: Arc<MetricsRecorder>,
    pub(crate) next_tx: AtomicU64,
    pub(crate) cow_pages: AtomicU64,
    pub(crate) started: Instant,
    /// When the last collection ended, in nanoseconds since `started`.
    pub(crate) last_gc_nanos: AtomicU64,
    /// Region memory (the metrics gauge) when the last collection ended.
    pub(crate) memory_after_gc: AtomicU64,
    pub(crate) gc_gate: GcGate,
}

/// Releases a host call's region lock when dropped (also on unwinding).
pub(crate) struct HostLock<'a> {
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
    /// A manager with `config`, reserving its pool blocks.
    ///
    /// # Errors
    /// [`ShmError::InvalidConfig`] when the config contradicts itself.
    pub fn new(config: SharedMemoryConfig) -> Result<Arc<Self>, ShmError> {
        config.validate().map_err(ShmError::InvalidConfig)?;
        let registry = Arc::new(RegionRegistry::new(
            BlockPool::new(config.pool_config()),
            config.registry_config(),
        ));
        let metrics = Arc::new(MetricsRecorder::new());
        let mapped = config
            .is_mapped()
            .then(|| MappedBacking::open(&config, registry.clone(), metrics.clone()))
            .transpose()?;
        let locks = match &mapped {
            Some(backing) => RegionLockTable::with_cross_process(backing.clone()),
            None => RegionLockTable::new(),
        };
        Ok(Arc::new(Self {
            config,
            registry,
            mapped,
            locks,
            metrics,
            next_tx: AtomicU64::new(1),
            cow_pages: AtomicU64::new(0),
            started: Instant::now(),
            last_gc_nanos: AtomicU64::new(0),
            memory_after_gc: AtomicU64::new(0),
            gc_gate: GcGate::new(),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &SharedMemoryConfig {
        &self.config
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

    /// Regions some transaction (or host call) holds locked now, in no
    /// particular order (diagnostics).
    pub fn locked_regions(&self) -> Vec<RegionHandle> {
        self.locks.locked_regions()
    }

    /// Private copy-on-write pages currently held by running transactions.
    pub fn cow_pages(&self) -> u64 {
        self.cow_pages.load(Relaxed)
    }

    /// The mapping options a request for `options` gets: with COW off, without
    /// the copy-on-write bit (spec §9).
    pub fn effective_map_options(&self, options: MapOptions) -> MapOptions {
        if self.config.enable_cow {
            options
        } else {
            options.difference(MapOptions::COPY_ON_WRITE)
        }
    }

    /// Counts a halt of a shared-memory instruction (spec §5).
    pub fn record_halt(&self, cause: shm_primitives::HaltCause) {
        self.metrics.record_halt(cause);
    }

    /// Whether regions live in a mapped namespace (files: priced higher).
    pub fn is_mapped(&self) -> bool {
        self.mapped.is_some()
    }

    /// Whether regions live in a mapped namespace on a file system that is not
    /// memory-backed (disk work, priced higher again).
    pub fn is_mapped_on_disk(&self) -> bool {
        self.mapped.as_ref().is_some_and(|m| !m.ns.memory_backed())
    }

    /// A `production` manager over the mapped namespace `namespace` under
    /// `/dev/shm`, with every persistent region left there (same handles,
    /// names and bytes).
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
    /// damaged or foreign, or a region's lock stayed busy.
    pub fn attach(namespace: &str) -> Result<Arc<Self>, ShmError> {
        Self::new(SharedMemoryConfig::production().with_namespace(namespace))
    }

    /// The directory of the mapped namespace, if regions live in one.
    pub fn namespace_dir(&self) -> Option<&std::path::Path> {
        self.mapped.as_ref().map(|m| m.ns.dir())
    }

    /// The mapped file behind `handle`, if this process maps one.
    pub fn mapped_region(&self, handle: RegionHandle) -> Option<Arc<MappedRegion>> {
        self.mapped.as_ref()?.region(handle)
    }

    /// Checks `handle` before its lock is taken: a region freed for good is
    /// refused; one this process does not know is looked for in the namespace.
    pub(crate) fn check_handle(&self, handle: RegionHandle) -> Result<(), ShmError> {
        self.ensure_enabled()?;
        match self.registry.liveness(handle) {
            Liveness::Live | Liveness::PendingFree => Ok(()),
            Liveness::Freed => Err(ShmError::RegionFreed(handle)),
            Liveness::Invalid => match &self.mapped {
                Some(mapped) => mapped.refresh(handle),
                None => Err(ShmError::InvalidRegionHandle(handle)),
            },
        }
    }

    /// Makes `spec`'s region and has `hold` take its first reference or lock
    /// before any collection can see it; counts it in the metrics.
    pub(crate) fn create_held(
        &self,
        mut spec: RegionSpec,
        hold: impl FnOnce(RegionHandle) -> Result<(), ShmError>,
    ) -> Result<RegionHandle, ShmError> {
        self.ensure_enabled()?;
        spec.options.copy_on_write &= self.config.enable_cow;
        let size = spec.size;
        let _gate = self.gc_gate.open();
        let handle = match &self.mapped {
            Some(mapped) => mapped.create(spec)?,
            None => self.registry.create(spec)?,
        };
        hold(handle)?;
        self.metrics.record_region_created(handle, size);
        Ok(handle)
    }

    /// Frees `handle` for good and counts it in the metrics; returns its size.
    pub(crate) fn free_counted(&self, handle: RegionHandle) -> Result<u64, ShmError> {
        let size = self.registry.lock_read(handle)?.size();
        self.registry.free(handle)?;
        self.metrics.record_region_destroyed(handle, size);
        Ok(size)
    }

    pub(crate) fn ensure_enabled(&self) -> Result<(), ShmError> {
        let enabled = self.config.enabled.then_some(());
        enabled.ok_or(ShmError::SharedMemoryDisabled)
    }

    /// Takes `handle`'s two-phase lock for one host call, waiting at most `wait`.
    pub(crate) fn host_lock(
        &self,
        handle: RegionHandle,
        mode: LockMode,
        wait: Duration,
    ) -> Result<HostLock<'_>, ShmError> {
        let id = host_call_id();
        self.locks.acquire(handle, id, mode, wait)?;
        Ok(HostLock {
            locks: &self.locks,
            handle,
            id,
        })
    }
}

/// A fresh host-call id, unique in the process, from a block of the thread's
/// own so that threads do not bump a common counter.
fn host_call_id() -> TxId {
    const BLOCK: u64 = 1 << 16;
    // Blocks start at multiples of `BLOCK`, none at 0: a multiple in a
    // thread's cell (its initial 0, or the end of its block) takes a new one.
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(BLOCK);
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(0) };
    }
    let new_block = || NEXT_BLOCK.fetch_add(BLOCK, Relaxed);
    // A thread whose thread-locals are being torn down takes a block per call.
    let id = NEXT
        .try_with(|next| {
            let id = match next.get() {
                id if id % BLOCK == 0 => new_block(),
                id => id,
            };
            next.set(id + 1);
            id
        })
        .unwrap_or_else(|_| new_block());
    TxId(TxId::HOST_BIT | id)
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::host_call_id;

    #[test]
    fn host_call_ids_are_unique_across_threads_and_blocks() {
        // More ids per thread than one block holds, so every thread takes
        // a second block while the others take theirs.
        let per_thread = (1 << 16) + 10;
        let take_ids = || (0..per_thread).map(|_| host_call_id()).collect::<Vec<_>>();
        let all: HashSet<_> = std::thread::scope(|scope| {
            let threads = [(); 4].map(|_| scope.spawn(take_ids));
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        assert_eq!(all.len(), 4 * per_thread);
        assert!(all.iter().all(|id| id.is_host()));
    }
}
