//! The live counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use shm_primitives::{default_shard_count, thread_shard, CachePadded, ContextId, RegionHandle};

use crate::{HaltCause, HaltCounts, Metrics};

/// An operation counter and the bytes it moved, bumped together.
#[derive(Debug, Default)]
struct OpCounter {
    count: AtomicU64,
    bytes: AtomicU64,
}

impl OpCounter {
    #[inline]
    fn record(&self, count: u64, bytes: u64) {
        self.count.fetch_add(count, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
}

/// The counters every thread bumps on its own shard: region lifecycle events
/// and the (per-transaction batched) reads and writes. A snapshot sums the
/// shards.
#[derive(Debug, Default)]
struct Counters {
    regions_created: AtomicU64,
    regions_destroyed: AtomicU64,
    mappings: AtomicU64,
    unmappings: AtomicU64,
    reads: OpCounter,
    writes: OpCounter,
}

#[derive(Debug, Default)]
struct Memory {
    current: AtomicU64,
    peak: AtomicU64,
}

#[derive(Debug, Default)]
struct Rare {
    cow_faults: AtomicU64,
    gc_runs: AtomicU64,
    gc_time_ns: AtomicU64,
    access_denials: AtomicU64,
    halts: [AtomicU64; HaltCause::ALL.len()],
}

/// The shared-memory subsystem's counters and gauges. `Send + Sync`: share it
/// by reference or `Arc`; every update is one or two relaxed atomic operations.
///
/// The transaction layer batches its reads, writes and COW faults and reports
/// them once per transaction ([`record_reads`](Self::record_reads), …), so that
/// a warm access bumps no shared cache line. The event counters are sharded
/// per thread and summed by [`snapshot`](Self::snapshot), so threads creating
/// and freeing regions at once do not pass their lines back and forth; the
/// memory gauge is one, because its peak must be the peak of the total.
///
/// The `record_*` methods for region lifecycle events (create, destroy, map,
/// unmap, GC, halts, denials) also emit a `tracing` event at debug level with
/// target `shm`, so a caller counts and logs in one call. Data operations
/// (reads, writes, COW faults) only count: they are the hot path.
///
/// Counters are monotonic and wrap only after 2^64 events. The memory gauge
/// saturates at 0 rather than wrapping if more is subtracted than was added.
///
/// ```
/// use shm_metrics::{HaltCause, MetricsRecorder};
/// use shm_primitives::RegionHandle;
///
/// let metrics = MetricsRecorder::new();
/// let handle = RegionHandle::new(1, 1).unwrap();
/// metrics.record_region_created(handle, 4096);
/// metrics.record_write(64);
/// metrics.record_read(32);
/// metrics.record_halt(HaltCause::PermissionDenied);
///
/// let snapshot = metrics.snapshot();
/// assert_eq!(snapshot.active_regions, 1);
/// assert_eq!(snapshot.memory_bytes, 4096);
/// assert_eq!(snapshot.halts.permission_denied, 1);
/// assert!(snapshot.to_prometheus().contains("shm_writes_total 1\n"));
/// ```
#[derive(Debug)]
pub struct MetricsRecorder {
    /// One per thread shard ([`thread_shard`]): threads creating and freeing
    /// regions at once would otherwise pass these lines back and forth.
    counters: Box<[CachePadded<Counters>]>,
    /// One gauge for all threads: its peak must be the peak of the sum.
    memory: CachePadded<Memory>,
    rare: CachePadded<Rare>,
}

impl Default for MetricsRecorder {
    fn default() -> Self {
        Self {
            counters: (0..default_shard_count())
                .map(|_| CachePadded::default())
                .collect(),
            memory: CachePadded::default(),
            rare: CachePadded::default(),
        }
    }
}

impl MetricsRecorder {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calling thread's counters.
    #[inline]
    fn counters(&self) -> &Counters {
        &self.counters[thread_shard(self.counters.len())]
    }

    /// The sum over the shards of the counter `field` picks.
    fn total(&self, field: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.counters
            .iter()
            .map(|shard| field(shard).load(Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// A region was created with `size` bytes: counts it and adds `size` to
    /// the memory gauge.
    pub fn record_region_created(&self, handle: RegionHandle, size: u64) {
        self.counters().regions_created.fetch_add(1, Relaxed);
        self.add_memory(size);
        tracing::debug!(target: "shm", %handle, size, "region created");
    }

    /// A region of `size` bytes was destroyed (its free became final): counts
    /// it and subtracts `size` from the memory gauge.
    pub fn record_region_destroyed(&self, handle: RegionHandle, size: u64) {
        self.counters().regions_destroyed.fetch_add(1, Relaxed);
        self.sub_memory(size);
        tracing::debug!(target: "shm", %handle, size, "region destroyed");
    }

    /// A region grew or shrank from `old_size` to `new_size` bytes: moves the
    /// memory gauge by the difference.
    pub fn record_region_resized(&self, handle: RegionHandle, old_size: u64, new_size: u64) {
        if new_size >= old_size {
            self.add_memory(new_size - old_size);
        } else {
            self.sub_memory(old_size - new_size);
        }
        tracing::debug!(target: "shm", %handle, old_size, new_size, "region resized");
    }

    /// `context` mapped the region.
    pub fn record_mapping(&self, handle: RegionHandle, context: ContextId) {
        self.counters().mappings.fetch_add(1, Relaxed);
        tracing::debug!(target: "shm", %handle, %context, "region mapped");
    }

    /// `context`'s mapping of the region ended.
    pub fn record_unmapping(&self, handle: RegionHandle, context: ContextId) {
        self.counters().unmappings.fetch_add(1, Relaxed);
        tracing::debug!(target: "shm", %handle, %context, "region unmapped");
    }

    /// A read of `bytes` bytes from a region.
    #[inline]
    pub fn record_read(&self, bytes: u64) {
        self.counters().reads.record(1, bytes);
    }

    /// A write of `bytes` bytes into a region.
    #[inline]
    pub fn record_write(&self, bytes: u64) {
        self.counters().writes.record(1, bytes);
    }

    /// `count` reads of `bytes` bytes in all: how a transaction reports its
    /// reads once at its end instead of bumping shared counters on every one.
    #[inline]
    pub fn record_reads(&self, count: u64, bytes: u64) {
        if count > 0 {
            self.counters().reads.record(count, bytes);
        }
    }

    /// `count` writes of `bytes` bytes in all (see [`record_reads`](Self::record_reads)).
    #[inline]
    pub fn record_writes(&self, count: u64, bytes: u64) {
        if count > 0 {
            self.counters().writes.record(count, bytes);
        }
    }

    /// `faults` copy-on-write faults (one page copied privately each).
    #[inline]
    pub fn record_cow_faults(&self, faults: u64) {
        if faults > 0 {
            self.rare.cow_faults.fetch_add(faults, Relaxed);
        }
    }

    /// A garbage-collection run that took `duration` and freed `regions_freed` regions.
    pub fn record_gc_run(&self, duration: Duration, regions_freed: u64) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.rare.gc_runs.fetch_add(1, Relaxed);
        // Saturate rather than wrap: a total that wrapped would look tiny.
        let _ = self
            .rare
            .gc_time_ns
            .fetch_update(Relaxed, Relaxed, |t| Some(t.saturating_add(nanos)));
        tracing::debug!(target: "shm", duration_ns = nanos, regions_freed, "gc run");
    }

    /// A shared-memory opcode halted with `cause`.
    pub fn record_halt(&self, cause: HaltCause) {
        self.rare.halts[cause.index()].fetch_add(1, Relaxed);
        tracing::debug!(target: "shm", cause = cause.name(), "shared-memory halt");
    }

    /// An access check refused `context` access to a region (whether or not
    /// the refusal ends in a halt).
    pub fn record_access_denied(&self, handle: RegionHandle, context: ContextId) {
        self.rare.access_denials.fetch_add(1, Relaxed);
        tracing::debug!(target: "shm", %handle, %context, "access denied");
    }

    /// Adds `bytes` to the memory gauge and raises the peak if needed.
    #[inline]
    pub fn add_memory(&self, bytes: u64) {
        let now = self
            .memory
            .current
            .fetch_add(bytes, Relaxed)
            .saturating_add(bytes);
        // Read first: `fetch_max` always writes the line, and the peak only
        // rarely moves.
        if now > self.memory.peak.load(Relaxed) {
            self.memory.peak.fetch_max(now, Relaxed);
        }
    }

    /// Subtracts `bytes` from the memory gauge, stopping at 0.
    #[inline]
    pub fn sub_memory(&self, bytes: u64) {
        // `fetch_update` cannot fail here: the closure always returns `Some`.
        let _ = self
            .memory
            .current
            .fetch_update(Relaxed, Relaxed, |now| Some(now.saturating_sub(bytes)));
    }

    /// A consistent-enough copy of every counter plus the derived figures.
    /// Counters are read one by one, so updates racing with the snapshot may
    /// be seen for some counters and not others.
    pub fn snapshot(&self) -> Metrics {
        let halts = HaltCounts::from_array(self.rare.halts.each_ref().map(|h| h.load(Relaxed)));
        Metrics {
            regions_created: self.total(|c| &c.regions_created),
            regions_destroyed: self.total(|c| &c.regions_destroyed),
            mappings: self.total(|c| &c.mappings),
            unmappings: self.total(|c| &c.unmappings),
            reads: self.total(|c| &c.reads.count),
            read_bytes: self.total(|c| &c.reads.bytes),
            writes: self.total(|c| &c.writes.count),
            write_bytes: self.total(|c| &c.writes.bytes),
            cow_faults: self.rare.cow_faults.load(Relaxed),
            gc_runs: self.rare.gc_runs.load(Relaxed),
            gc_time_ns: self.rare.gc_time_ns.load(Relaxed),
            halts,
            access_denials: self.rare.access_denials.load(Relaxed),
            memory_bytes: self.memory.current.load(Relaxed),
            peak_memory_bytes: self.memory.peak.load(Relaxed),
            ..Metrics::default()
        }
        .with_derived()
    }
}
