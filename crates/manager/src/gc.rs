//! Garbage collection of unreferenced regions, and memory statistics.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use shm_pool::SizeClass;
use shm_primitives::RegionHandle;

use crate::gate::ClosedGate;
use crate::stats::ClassUsage;
use crate::{GcReport, LockMode, MemoryStats, SharedMemoryManager, ShmError};

impl SharedMemoryManager {
    /// Region memory, pool occupancy and copy-on-write pages, now.
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
                utilization: (c.allocated as f64 / c.capacity.max(1) as f64).min(1.0),
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

    /// Frees every unreferenced region (see the type's docs) and compacts the
    /// pools. Waits for creations in progress and for another collection.
    pub fn garbage_collect(&self) -> Result<GcReport, ShmError> {
        self.ensure_enabled()?;
        Ok(self.collect(self.gc_gate.close()))
    }

    /// Runs [`garbage_collect`](Self::garbage_collect) if due: `gc_interval_ms`
    /// after the last run, or with region memory above `gc_threshold_mb` and
    /// changed since. Skips (`None`) when not due or while another collection
    /// or a creation runs (the next transaction end tries again).
    pub fn maybe_collect(&self) -> Option<GcReport> {
        self.ensure_enabled().ok()?;
        let interval_due = self.config.gc_interval().is_some_and(|interval| {
            let elapsed = self.started.elapsed();
            let last = Duration::from_nanos(self.last_gc_nanos.load(Relaxed));
            elapsed.saturating_sub(last) >= interval
        });
        let threshold_due = self.config.gc_threshold_bytes().is_some_and(|threshold| {
            let memory = self.metrics.snapshot().memory_bytes;
            memory > threshold && memory != self.memory_after_gc.load(Relaxed)
        });
        if !(interval_due || threshold_due) {
            return None;
        }
        Some(self.collect(self.gc_gate.try_close()?))
    }

    fn collect(&self, _gate: ClosedGate<'_>) -> GcReport {
        let start = Instant::now();
        let free = |handle| Some((handle, self.free_if_unreferenced(handle)?));
        let (regions_freed, sizes): (Vec<_>, Vec<u64>) =
            self.registry.handles().into_iter().filter_map(free).unzip();
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
            bytes_freed: sizes.iter().sum(),
            pool_bytes_compacted,
            duration,
        }
    }

    /// Eager cleanup of one region (after an unmap or a release).
    pub(crate) fn collect_one(&self, handle: RegionHandle) {
        let _gate = self.gc_gate.close();
        self.free_if_unreferenced(handle);
    }

    /// Frees the region if it is unreferenced; returns its size if it did.
    /// The caller's closed GC gate keeps host references out, the lock taken
    /// here keeps transactions out: nothing can reference the region between
    /// the check and the free.
    fn free_if_unreferenced(&self, handle: RegionHandle) -> Option<u64> {
        // A region a transaction holds is in use, whatever its counts say.
        let _lock = self
            .host_lock(handle, LockMode::Exclusive, Duration::ZERO)
            .ok()?;
        let guard = self.registry.lock_read(handle).ok()?;
        if guard.meta().options().persistent || guard.meta().ref_count() > 0 {
            return None;
        }
        drop(guard);
        self.free_counted(handle).ok()
    }
}
