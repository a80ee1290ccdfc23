//! Counting, derived figures, Prometheus text, tracing events and concurrency.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use shm_metrics::{HaltCause, HaltCounts, Metrics, MetricsRecorder};
use shm_primitives::{Address, RegionHandle};

fn handle(index: u32) -> RegionHandle {
    RegionHandle::new(index, 1).expect("index and generation are non-zero")
}

const ALICE: Address = Address::repeat_byte(0xA1);

#[test]
fn every_record_bumps_exactly_its_counters() {
    let m = MetricsRecorder::new();
    assert_eq!(m.snapshot(), Metrics::default());

    m.record_region_created(handle(1), 4096);
    m.record_region_created(handle(2), 100);
    m.record_region_destroyed(handle(2), 100);
    m.record_mapping(handle(1), ALICE);
    m.record_mapping(handle(1), Address::ZERO);
    m.record_unmapping(handle(1), ALICE);
    m.record_read(10);
    m.record_read(20);
    m.record_read(30);
    m.record_write(7);
    m.record_cow_faults(2);
    m.record_gc_run(Duration::from_nanos(500), 1);
    m.record_halt(HaltCause::BadFlags);
    m.record_halt(HaltCause::BadFlags);
    m.record_halt(HaltCause::RegionBusy);
    m.record_access_denied(handle(1), ALICE);

    let expected = Metrics {
        regions_created: 2,
        regions_destroyed: 1,
        mappings: 2,
        unmappings: 1,
        reads: 3,
        read_bytes: 60,
        writes: 1,
        write_bytes: 7,
        cow_faults: 2,
        gc_runs: 1,
        gc_time_ns: 500,
        halts: HaltCounts {
            bad_flags: 2,
            region_busy: 1,
            ..HaltCounts::default()
        },
        access_denials: 1,
        memory_bytes: 4096,
        peak_memory_bytes: 4196,
        ..Metrics::default()
    }
    .with_derived();
    assert_eq!(m.snapshot(), expected);
    assert_eq!(expected.active_regions, 1);
    assert_eq!(expected.total_halts, 3);
}

#[test]
fn memory_gauge_tracks_peak_and_never_wraps() {
    let m = MetricsRecorder::new();
    m.add_memory(1000);
    m.record_region_resized(handle(1), 1000, 5000); // +4000
    m.record_region_resized(handle(1), 5000, 200); // -4800
    let s = m.snapshot();
    assert_eq!((s.memory_bytes, s.peak_memory_bytes), (200, 5000));
    m.sub_memory(10_000);
    let s = m.snapshot();
    assert_eq!((s.memory_bytes, s.peak_memory_bytes), (0, 5000));
    m.record_region_destroyed(handle(3), 1); // more destroyed than created
    assert_eq!(m.snapshot().active_regions, 0);
    assert_eq!(m.snapshot().memory_bytes, 0);
}

#[test]
fn derived_figures() {
    let m = MetricsRecorder::new();
    let s = m.snapshot();
    assert_eq!(
        (s.read_write_ratio, s.average_gc_time_ns, s.active_regions),
        (0.0, 0.0, 0)
    );

    for _ in 0..5 {
        m.record_read(1);
    }
    assert_eq!(
        m.snapshot().read_write_ratio,
        5.0,
        "no writes: the read count"
    );
    m.record_write(1);
    m.record_write(1);
    assert_eq!(m.snapshot().read_write_ratio, 2.5);

    m.record_gc_run(Duration::from_micros(3), 0);
    m.record_gc_run(Duration::from_micros(4), 0);
    assert_eq!(m.snapshot().average_gc_time_ns, 3500.0);
    m.record_gc_run(Duration::MAX, 0); // saturates instead of overflowing
    assert!(m.snapshot().gc_time_ns >= u64::MAX - 7000);

    for i in 1..=4 {
        m.record_region_created(handle(i), 1);
    }
    m.record_region_destroyed(handle(1), 1);
    assert_eq!(m.snapshot().active_regions, 3);
}

/// One parsed sample line: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses Prometheus text line by line, checking the format as it goes.
fn parse_prometheus(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and text");
            assert!(!help.is_empty());
            assert!(helped.insert(name.to_owned()), "duplicate HELP for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and kind");
            assert!(helped.contains(name), "TYPE of {name} before its HELP");
            assert!(matches!(kind, "counter" | "gauge"), "{kind}");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "duplicate TYPE {name}"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = value.parse().expect("value is a number");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels close");
                    let labels = body
                        .split(',')
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label is k=v");
                            let v = v
                                .strip_prefix('"')
                                .and_then(|v| v.strip_suffix('"'))
                                .expect("quoted");
                            (k.to_owned(), v.to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            assert!(types.contains_key(name), "sample {name} before its TYPE");
            assert!(
                name.starts_with("shm_")
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            samples.push((name.to_owned(), labels, value));
        }
    }
    (types, samples)
}

#[test]
fn prometheus_text_parses_back_to_the_snapshot() {
    let m = MetricsRecorder::new();
    m.record_region_created(handle(1), 8192);
    m.record_region_created(handle(2), 64);
    m.record_region_destroyed(handle(2), 64);
    m.record_read(32);
    m.record_write(96);
    m.record_write(4);
    m.record_cow_faults(1);
    m.record_gc_run(Duration::from_millis(3), 1);
    m.record_halt(HaltCause::OffsetOverflow);
    m.record_halt(HaltCause::InvalidHandle);
    m.record_halt(HaltCause::InvalidHandle);
    m.record_access_denied(handle(1), ALICE);
    let s = m.snapshot();
    let (types, samples) = parse_prometheus(&s.to_prometheus());

    for (name, kind) in &types {
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "{name} is a {kind}"
        );
    }
    let value = |name: &str| -> f64 {
        let found: Vec<_> = samples
            .iter()
            .filter(|(n, l, _)| n == name && l.is_empty())
            .collect();
        assert_eq!(found.len(), 1, "{name}");
        found[0].2
    };
    assert_eq!(value("shm_regions_created_total"), s.regions_created as f64);
    assert_eq!(value("shm_regions_destroyed_total"), 1.0);
    assert_eq!(value("shm_reads_total"), 1.0);
    assert_eq!(value("shm_read_bytes_total"), 32.0);
    assert_eq!(value("shm_writes_total"), 2.0);
    assert_eq!(value("shm_write_bytes_total"), 100.0);
    assert_eq!(value("shm_cow_faults_total"), 1.0);
    assert_eq!(value("shm_gc_runs_total"), 1.0);
    assert_eq!(value("shm_gc_time_seconds_total"), 0.003);
    assert_eq!(value("shm_gc_average_seconds"), 0.003);
    assert_eq!(value("shm_access_denials_total"), 1.0);
    assert_eq!(value("shm_memory_bytes"), 8192.0);
    assert_eq!(value("shm_memory_peak_bytes"), 8256.0);
    assert_eq!(value("shm_active_regions"), 1.0);
    assert_eq!(value("shm_read_write_ratio"), 0.5);

    let halts: BTreeMap<_, _> = samples
        .iter()
        .filter(|(n, _, _)| n == "shm_halts_total")
        .map(|(_, labels, v)| (labels["cause"].clone(), *v))
        .collect();
    assert_eq!(halts.len(), HaltCause::ALL.len());
    for cause in HaltCause::ALL {
        assert_eq!(halts[cause.name()], s.halts.get(cause) as f64, "{cause:?}");
    }
    assert_eq!(halts["invalid_handle"], 2.0);
}

#[test]
fn snapshot_serialises_with_derived_fields() {
    let m = MetricsRecorder::new();
    m.record_region_created(handle(1), 10);
    m.record_halt(HaltCause::NoMapping);
    let json: serde_json::Value = serde_json::to_value(m.snapshot()).unwrap();
    assert_eq!(json["regions_created"], 1);
    assert_eq!(json["active_regions"], 1);
    assert_eq!(json["halts"]["no_mapping"], 1);
    assert_eq!(json["total_halts"], 1);
    assert_eq!(json["read_write_ratio"], 0.0);
}

#[test]
fn concurrent_threads_give_exact_totals() {
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 20_000;
    let m = Arc::new(MetricsRecorder::new());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    m.record_read(t + 1);
                    m.record_write(2);
                    if i % 4 == 0 {
                        m.record_cow_faults(3);
                        m.record_halt(HaltCause::ALL[(i / 4 % 10) as usize]);
                    }
                    m.add_memory(10);
                    m.sub_memory(10);
                }
                m.add_memory(t + 1);
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let s = m.snapshot();
    assert_eq!(s.reads, THREADS * ROUNDS);
    assert_eq!(s.read_bytes, ROUNDS * (1..=THREADS).sum::<u64>());
    assert_eq!(s.writes, THREADS * ROUNDS);
    assert_eq!(s.write_bytes, 2 * THREADS * ROUNDS);
    assert_eq!(s.cow_faults, 3 * THREADS * ROUNDS / 4);
    assert_eq!(s.total_halts, THREADS * ROUNDS / 4);
    for cause in HaltCause::ALL {
        assert_eq!(s.halts.get(cause), THREADS * ROUNDS / 4 / 10, "{cause:?}");
    }
    assert_eq!(s.memory_bytes, (1..=THREADS).sum::<u64>());
    assert!(s.peak_memory_bytes >= s.memory_bytes);
    assert!(s.peak_memory_bytes <= THREADS * 10 + (1..=THREADS).sum::<u64>());
}

#[test]
fn recorder_and_snapshot_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_copy<T: Copy>() {}
    assert_send_sync::<MetricsRecorder>();
    assert_copy::<Metrics>();
    assert_copy::<HaltCause>();
}
