//! Counting is cheap: one counter increment against a plain non-atomic
//! increment, `snapshot()`, and two threads bumping different counters with
//! the recorder's cache-line padding against the same counters packed together.

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use shm_metrics::{HaltCause, MetricsRecorder};

fn bench_increment(c: &mut Criterion) {
    let mut group = c.benchmark_group("increment");
    let mut plain = 0u64;
    group.bench_function("plain_u64", |b| {
        b.iter(|| {
            plain = black_box(plain) + 1;
        })
    });
    let metrics = MetricsRecorder::new();
    group.bench_function("record_cow_faults", |b| {
        b.iter(|| black_box(&metrics).record_cow_faults(1))
    });
    group.bench_function("record_read_count_and_bytes", |b| {
        b.iter(|| black_box(&metrics).record_read(black_box(32)))
    });
    group.finish();
    black_box(plain);
}

fn bench_snapshot(c: &mut Criterion) {
    let metrics = MetricsRecorder::new();
    metrics.record_read(1);
    metrics.record_halt(HaltCause::BadFlags);
    c.bench_function("snapshot", |b| {
        b.iter(|| black_box(black_box(&metrics).snapshot()))
    });
    let snapshot = metrics.snapshot();
    c.bench_function("to_prometheus", |b| {
        b.iter(|| black_box(snapshot.to_prometheus()))
    });
}

/// Read and write counters side by side, as they would be without padding.
#[derive(Default)]
struct Packed {
    reads: AtomicU64,
    read_bytes: AtomicU64,
    writes: AtomicU64,
    write_bytes: AtomicU64,
}

/// Runs `a` and `b` on two threads, `iters` times each, and returns the wall time.
fn two_threads(iters: u64, a: impl Fn() + Sync, b: impl Fn() + Sync) -> Duration {
    std::thread::scope(|scope| {
        let start = Instant::now();
        let first = scope.spawn(|| (0..iters).for_each(|_| a()));
        (0..iters).for_each(|_| b());
        let _ = first.join();
        start.elapsed()
    })
}

fn bench_false_sharing(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_threads_read_vs_write");
    let packed = Packed::default();
    group.bench_function("packed", |bench| {
        bench.iter_custom(|iters| {
            two_threads(
                iters,
                || {
                    packed.reads.fetch_add(1, Relaxed);
                    packed.read_bytes.fetch_add(32, Relaxed);
                },
                || {
                    packed.writes.fetch_add(1, Relaxed);
                    packed.write_bytes.fetch_add(32, Relaxed);
                },
            )
        })
    });
    let metrics = MetricsRecorder::new();
    group.bench_function("recorder_padded", |bench| {
        bench.iter_custom(|iters| {
            two_threads(
                iters,
                || metrics.record_read(32),
                || metrics.record_write(32),
            )
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_increment,
    bench_snapshot,
    bench_false_sharing
);
criterion_main!(benches);
