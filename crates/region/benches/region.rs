//! Region reads and writes against plain baselines in the same run:
//! `copy_from_slice` on a `Vec<u8>` (bandwidth), the same copy through a
//! `parking_lot::RwLock<Vec<u8>>` (lock overhead), and reads of one region from
//! two threads against one thread (scaling).

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parking_lot::RwLock;
use shm_primitives::{Address, RegionHandle};
use shm_region::{RegionRegistry, RegionSpec};

#[path = "../tests/common/mod.rs"]
mod common;
use common::RegistryExt;

const REGION: usize = 1 << 20;
const SIZES: [usize; 3] = [32, 4096, 1 << 20];

/// The bytes every region and baseline starts with.
fn pattern() -> Vec<u8> {
    (0..REGION).map(|i| i as u8).collect()
}

fn setup() -> (RegionRegistry, RegionHandle) {
    let registry = common::registry_with([16, 16, 4, 2], 16, 4 << 20, 16);
    let handle = registry
        .create(RegionSpec::new(REGION as u64, Address::ZERO))
        .expect("create");
    registry.write(handle, 0, &pattern(), false).expect("fill");
    (registry, handle)
}

fn label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

fn reads(c: &mut Criterion) {
    let (registry, handle) = setup();
    let vec = pattern();
    let locked = RwLock::new(vec.clone());
    let mut group = c.benchmark_group("read");
    for size in SIZES {
        let mut buf = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        let id = label(size);
        group.bench_function(BenchmarkId::new("vec_copy", &id), |b| {
            b.iter(|| buf.copy_from_slice(&black_box(&vec)[..size]))
        });
        if size == 32 {
            group.bench_function(BenchmarkId::new("rwlock_vec_copy", &id), |b| {
                b.iter(|| buf.copy_from_slice(&black_box(&locked).read()[..size]))
            });
        }
        group.bench_function(BenchmarkId::new("registry_read", &id), |b| {
            b.iter(|| {
                registry
                    .lock_read(black_box(handle))
                    .and_then(|guard| guard.read(0, &mut buf))
                    .expect("read")
            })
        });
    }
    group.finish();
}

fn writes(c: &mut Criterion) {
    let (registry, handle) = setup();
    let mut vec = vec![0u8; REGION];
    let locked = RwLock::new(vec.clone());
    let mut group = c.benchmark_group("write");
    for size in SIZES {
        let data: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        let id = label(size);
        group.bench_function(BenchmarkId::new("vec_copy", &id), |b| {
            b.iter(|| vec[..size].copy_from_slice(black_box(&data)))
        });
        if size == 32 {
            group.bench_function(BenchmarkId::new("rwlock_vec_copy", &id), |b| {
                b.iter(|| locked.write()[..size].copy_from_slice(black_box(&data)))
            });
        }
        group.bench_function(BenchmarkId::new("registry_write", &id), |b| {
            b.iter(|| {
                registry
                    .lock_write(black_box(handle))
                    .and_then(|mut guard| guard.write(0, &data, false))
                    .expect("write")
            })
        });
    }
    group.finish();
}

/// `threads` threads each copy `chunk` bytes per iteration out of one 1 MiB
/// buffer with `read_chunk(offset, buf)`; returns the wall time of `iters`
/// iterations.
fn parallel_reads(
    threads: usize,
    chunk: usize,
    iters: u64,
    read_chunk: &(dyn Fn(u64, &mut [u8]) + Sync),
) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let barrier = &barrier;
            scope.spawn(move || {
                let mut buf = vec![0u8; chunk];
                let lanes = (REGION / chunk) as u64;
                barrier.wait();
                for i in 0..iters {
                    read_chunk(((i + t as u64) % lanes) * chunk as u64, &mut buf);
                    black_box(&buf);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

/// Reads of one region from 1 and 2 threads, and the same copies from a plain
/// shared `Vec<u8>` (no lock at all): the machine's own scaling ceiling.
fn scaling(c: &mut Criterion) {
    let (registry, handle) = setup();
    let vec = pattern();
    let from_region = |offset: u64, buf: &mut [u8]| {
        registry
            .lock_read(handle)
            .and_then(|guard| guard.read(offset, buf))
            .expect("read");
    };
    let from_vec = |offset: u64, buf: &mut [u8]| {
        let start = offset as usize;
        buf.copy_from_slice(&black_box(&vec)[start..start + buf.len()]);
    };
    let mut group = c.benchmark_group("parallel_read");
    for chunk in [4096usize, 64 << 10] {
        for threads in [1usize, 2] {
            group.throughput(Throughput::Bytes((chunk * threads) as u64));
            let id = format!("{}/{threads}_threads", label(chunk));
            group.bench_function(BenchmarkId::new("region", &id), |b| {
                b.iter_custom(|iters| parallel_reads(threads, chunk, iters, &from_region))
            });
            group.bench_function(BenchmarkId::new("vec_copy", &id), |b| {
                b.iter_custom(|iters| parallel_reads(threads, chunk, iters, &from_vec))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, reads, writes, scaling);
criterion_main!(benches);
