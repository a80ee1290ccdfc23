//! Reports: memory statistics and garbage-collection results.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Serialize, Serializer};
use shm_pool::SizeClass;
use shm_primitives::RegionHandle;

/// Occupancy of one pool size class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClassUsage {
    /// Block size in bytes (64, 4096, 65536, 1048576).
    pub block_bytes: usize,
    /// Blocks configured (the most that exist at once).
    pub capacity: usize,
    /// Blocks handed out now.
    pub allocated: usize,
    /// `allocated / capacity`, in `[0, 1]`; 0 for a class with no blocks.
    pub utilization: f64,
}

/// A snapshot of the manager's memory: see
/// [`SharedMemoryManager::get_memory_stats`](crate::SharedMemoryManager::get_memory_stats).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryStats {
    /// Sum of the sizes of the live regions, in bytes.
    pub total_bytes: u64,
    /// Bytes of the pool blocks behind the live regions (≥ `total_bytes`).
    pub capacity_bytes: u64,
    /// Live regions (regions awaiting a final free not included).
    pub active_regions: usize,
    /// Live regions with the persistent flag.
    pub persistent_regions: usize,
    /// Regions freed by a transaction but not yet final (a revert may still need them).
    pub pending_frees: usize,
    /// Mappings over all live regions.
    pub mappings: usize,
    /// Private copy-on-write pages currently held (a gauge kept by the transaction layer).
    pub cow_pages: u64,
    /// Per pool size class, indexed 64 B / 4 KiB / 64 KiB / 1 MiB.
    pub pool_classes: [ClassUsage; 4],
    /// Allocated bytes / existing bytes over all classed pool blocks, in `[0, 1]`.
    pub pool_utilization: f64,
    /// Internal fragmentation of what the pool handed out:
    /// `1 − requested bytes / block bytes`, in `[0, 1)`.
    pub fragmentation_ratio: f64,
    /// Bytes the pool holds from the system (classed blocks plus large allocations).
    pub pool_reserved_bytes: usize,
    /// Bytes held by regions above 1 MiB (one allocation each).
    pub large_bytes: usize,
}

impl MemoryStats {
    /// The usage of one size class.
    pub fn class(&self, class: SizeClass) -> &ClassUsage {
        &self.pool_classes[class.index()]
    }

    /// Prometheus text for the figures the metrics recorder does not keep.
    pub(crate) fn write_prometheus(&self, out: &mut String) {
        // Each gauge's name, then its help text.
        let gauges = [
            "region_bytes Sum of the sizes of the live regions.",
            "cow_pages Private copy-on-write pages held.",
            "pool_fragmentation_ratio Internal fragmentation of handed-out pool blocks.",
            "pool_reserved_bytes Bytes the pool holds from the system.",
            "pending_frees Regions freed but not yet final.",
        ];
        let values = [
            self.total_bytes as f64,
            self.cow_pages as f64,
            self.fragmentation_ratio,
            self.pool_reserved_bytes as f64,
            self.pending_frees as f64,
        ];
        for (gauge, value) in gauges.into_iter().zip(values) {
            let (name, help) = gauge.split_once(' ').unwrap_or_default();
            let _ = writeln!(out, "# HELP shm_{name} {help}");
            let _ = writeln!(out, "# TYPE shm_{name} gauge");
            let _ = writeln!(out, "shm_{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP shm_pool_utilization_ratio Allocated / configured blocks per size class."
        );
        let _ = writeln!(out, "# TYPE shm_pool_utilization_ratio gauge");
        for class in SizeClass::ALL {
            let _ = writeln!(
                out,
                "shm_pool_utilization_ratio{{class=\"{class}\"}} {}",
                self.class(class).utilization
            );
        }
    }
}

/// What one garbage-collection run did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// The regions freed, by slot index (serialised in their packed `u64` form).
    #[serde(serialize_with = "packed_handles")]
    pub regions_freed: Vec<RegionHandle>,
    /// Sum of their sizes.
    pub bytes_freed: u64,
    /// Bytes of surplus free pool blocks given back to the system.
    pub pool_bytes_compacted: usize,
    /// How long the run took.
    pub duration: Duration,
}

fn packed_handles<S: Serializer>(handles: &[RegionHandle], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(handles.iter().map(|h| h.to_u64()))
}
