//! A plain copy of the counters, with derived figures and Prometheus text.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{HaltCause, HaltCounts};

/// A snapshot of a [`MetricsRecorder`](crate::MetricsRecorder): every counter
/// and gauge, plus figures derived from them at snapshot time.
///
/// ```
/// use shm_metrics::MetricsRecorder;
/// let metrics = MetricsRecorder::new();
/// metrics.record_read(100);
/// metrics.record_read(100);
/// let snapshot = metrics.snapshot();
/// assert_eq!(snapshot.read_bytes, 200);
/// assert_eq!(snapshot.read_write_ratio, 2.0); // no writes: reads / 1
/// let text = snapshot.to_prometheus();
/// assert!(text.contains("# TYPE shm_reads_total counter\nshm_reads_total 2\n"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Regions created.
    pub regions_created: u64,
    /// Regions destroyed (frees that became final, GC, transaction end).
    pub regions_destroyed: u64,
    /// Mappings made.
    pub mappings: u64,
    /// Mappings ended.
    pub unmappings: u64,
    /// Reads from regions.
    pub reads: u64,
    /// Bytes read from regions.
    pub read_bytes: u64,
    /// Writes into regions.
    pub writes: u64,
    /// Bytes written into regions.
    pub write_bytes: u64,
    /// Copy-on-write faults (pages copied privately).
    pub cow_faults: u64,
    /// Garbage-collection runs.
    pub gc_runs: u64,
    /// Total time spent in garbage collection, in nanoseconds.
    pub gc_time_ns: u64,
    /// Halts per cause.
    pub halts: HaltCounts,
    /// Access checks that refused.
    pub access_denials: u64,
    /// Bytes of region memory currently held (gauge).
    pub memory_bytes: u64,
    /// Most bytes of region memory held at once (gauge).
    pub peak_memory_bytes: u64,

    /// Derived: `regions_created − regions_destroyed` (0 if destroyed ever runs ahead).
    pub active_regions: u64,
    /// Derived: `gc_time_ns / gc_runs`, 0 when GC never ran.
    pub average_gc_time_ns: f64,
    /// Derived: `reads / max(writes, 1)`: always finite; with no writes it is
    /// the number of reads (0 when there were no reads either).
    pub read_write_ratio: f64,
    /// Derived: halts of every cause.
    pub total_halts: u64,
}

impl Metrics {
    /// Fills the derived fields from the counters.
    pub fn with_derived(mut self) -> Self {
        self.active_regions = self.regions_created.saturating_sub(self.regions_destroyed);
        self.average_gc_time_ns = if self.gc_runs == 0 {
            0.0
        } else {
            self.gc_time_ns as f64 / self.gc_runs as f64
        };
        self.read_write_ratio = self.reads as f64 / self.writes.max(1) as f64;
        self.total_halts = self.halts.total();
        self
    }

    /// The snapshot in the Prometheus text exposition format (version 0.0.4):
    /// a `# HELP` and a `# TYPE` line before each metric family, names prefixed
    /// `shm_`, counters suffixed `_total`, times in seconds, halts as one
    /// family with a `cause` label.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, u64); 11] = [
            (
                "regions_created_total",
                "Shared-memory regions created.",
                self.regions_created,
            ),
            (
                "regions_destroyed_total",
                "Shared-memory regions destroyed.",
                self.regions_destroyed,
            ),
            ("mappings_total", "Region mappings made.", self.mappings),
            (
                "unmappings_total",
                "Region mappings ended.",
                self.unmappings,
            ),
            ("reads_total", "Reads from regions.", self.reads),
            (
                "read_bytes_total",
                "Bytes read from regions.",
                self.read_bytes,
            ),
            ("writes_total", "Writes into regions.", self.writes),
            (
                "write_bytes_total",
                "Bytes written into regions.",
                self.write_bytes,
            ),
            (
                "cow_faults_total",
                "Copy-on-write faults (pages copied privately).",
                self.cow_faults,
            ),
            ("gc_runs_total", "Garbage-collection runs.", self.gc_runs),
            (
                "access_denials_total",
                "Access checks that refused.",
                self.access_denials,
            ),
        ];
        for (name, help, value) in counters {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "shm_{name} {value}");
        }
        family(
            &mut out,
            "gc_time_seconds_total",
            "counter",
            "Time spent in garbage collection.",
        );
        let _ = writeln!(
            out,
            "shm_gc_time_seconds_total {}",
            self.gc_time_ns as f64 / 1e9
        );

        family(
            &mut out,
            "halts_total",
            "counter",
            "Shared-memory opcode halts by cause.",
        );
        for cause in HaltCause::ALL {
            let _ = writeln!(
                out,
                "shm_halts_total{{cause=\"{}\"}} {}",
                cause.name(),
                self.halts.get(cause)
            );
        }

        let gauges: [(&str, &str, f64); 5] = [
            (
                "memory_bytes",
                "Bytes of region memory currently held.",
                self.memory_bytes as f64,
            ),
            (
                "memory_peak_bytes",
                "Most bytes of region memory held at once.",
                self.peak_memory_bytes as f64,
            ),
            (
                "active_regions",
                "Regions created and not yet destroyed.",
                self.active_regions as f64,
            ),
            (
                "gc_average_seconds",
                "Average duration of a garbage-collection run.",
                self.average_gc_time_ns / 1e9,
            ),
            (
                "read_write_ratio",
                "Reads per write (reads when there were no writes).",
                self.read_write_ratio,
            ),
        ];
        for (name, help, value) in gauges {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "shm_{name} {value}");
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP shm_{name} {help}");
    let _ = writeln!(out, "# TYPE shm_{name} {kind}");
}
