//! Counters for the shared-memory subsystem.
//!
//! A [`MetricsRecorder`] holds relaxed atomic counters (region lifecycle,
//! mappings, reads/writes and their bytes, COW faults, GC runs and time,
//! halts per [`HaltCause`], access denials) and a memory gauge with its peak.
//! [`MetricsRecorder::snapshot`] copies them into a plain [`Metrics`] value with
//! derived figures, which serialises with serde and renders as Prometheus text.
//!
//! ```
//! use std::time::Duration;
//! use shm_metrics::MetricsRecorder;
//!
//! let metrics = MetricsRecorder::new();
//! metrics.record_gc_run(Duration::from_micros(30), 2);
//! metrics.record_gc_run(Duration::from_micros(10), 0);
//! let snapshot = metrics.snapshot();
//! assert_eq!(snapshot.gc_runs, 2);
//! assert_eq!(snapshot.average_gc_time_ns, 20_000.0);
//! let json = serde_json::to_string(&snapshot).unwrap();
//! assert!(json.contains("\"gc_time_ns\":40000"));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod halt;
mod recorder;
mod snapshot;

pub use halt::HaltCounts;
pub use recorder::MetricsRecorder;
pub use shm_primitives::HaltCause;
pub use snapshot::Metrics;
