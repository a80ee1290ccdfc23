//! What the manager adds on top of the layers below it, as ratios against
//! baselines measured in the same run:
//!
//! - `lock/*`: an uncontended two-phase lock acquire + release against a bare
//!   `parking_lot::Mutex` lock + unlock (the floor of any lock table);
//! - `host_write_32B/*` and `host_read_32B/*`: a host call through the manager
//!   (enabled check, handle check, two-phase lock, region lock, metrics) and a
//!   warm access through a transaction's [`TxRegions`](shm_manager::TxRegions)
//!   (resolved once: region lock, version check, copy) against the same access
//!   straight on a registry of its own (the floor).

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use parking_lot::Mutex;
use shm_manager::{
    Intent, LockMode, RegionLockTable, RegionRequest, SharedMemoryConfig, SharedMemoryManager,
    TxId, HOST_CONTEXT,
};
use shm_pool::BlockPool;
use shm_primitives::{Address, RegionHandle, WritePlan};
use shm_region::{RegionRegistry, RegionSpec};

fn locks(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock");
    let mutex = Mutex::new(0u64);
    group.bench_function("baseline_mutex", |b| b.iter(|| *mutex.lock() += 1));
    let table = RegionLockTable::new();
    let handle = RegionHandle::new(3, 1).unwrap();
    let mut tx = 0u64;
    group.bench_function("acquire_release_exclusive", |b| {
        b.iter(|| {
            tx += 1;
            let id = TxId(tx);
            let _ = table.acquire(black_box(handle), id, LockMode::Exclusive, Duration::ZERO);
            table.release_all(id, [handle]);
        })
    });
    group.bench_function("acquire_reentrant", |b| {
        let id = TxId(u64::MAX >> 1);
        let _ = table.acquire(handle, id, LockMode::Exclusive, Duration::ZERO);
        b.iter(|| table.acquire(black_box(handle), id, LockMode::Shared, Duration::ZERO))
    });
    group.finish();
}

fn host_calls(c: &mut Criterion) {
    let config = SharedMemoryConfig::development();
    let manager = SharedMemoryManager::new(config.clone()).unwrap();
    let handle = manager.create_region(RegionRequest::new(4096)).unwrap();
    let pool = BlockPool::new(config.pool_config());
    let registry = RegionRegistry::new(pool, config.registry_config());
    let floor = registry
        .create(RegionSpec::new(4096, Address::ZERO))
        .unwrap();
    let other = manager.create_region(RegionRequest::new(4096)).unwrap();
    let mut tx = manager.begin_transaction();
    let region = tx
        .resolve(other, HOST_CONTEXT, Intent::Write, None, Duration::ZERO)
        .unwrap();
    let plan = WritePlan::new(region.size, region.max_size, false, 64, 32);
    let data = [7u8; 32];
    let mut buf = [0u8; 32];

    let mut group = c.benchmark_group("host_write_32B");
    group.bench_function("baseline_registry", |b| {
        b.iter(|| {
            registry
                .lock_write(black_box(floor))
                .and_then(|mut guard| guard.write(64, &data, true))
        })
    });
    group.bench_function("transaction_warm", |b| {
        b.iter(|| tx.write(black_box(&region), plan, &data, &mut |_, _| {}))
    });
    group.bench_function("manager", |b| {
        b.iter(|| manager.write_region(black_box(handle), 64, &data))
    });
    group.finish();

    let mut group = c.benchmark_group("host_read_32B");
    group.bench_function("baseline_registry", |b| {
        b.iter(|| {
            registry
                .lock_read(black_box(floor))
                .and_then(|guard| guard.read(64, &mut buf))
        })
    });
    group.bench_function("transaction_warm", |b| {
        b.iter(|| tx.read(black_box(&region), 64, &mut buf))
    });
    group.bench_function("manager", |b| {
        b.iter(|| manager.read_region(black_box(handle), 64, &mut buf))
    });
    group.finish();
    tx.release();
}

/// Runs `op(thread, i)` `iters` times on each of `threads` threads at once;
/// the time of the slowest thread (so per-op time is comparable to one thread's).
fn on_threads(threads: usize, iters: u64, op: &(dyn Fn(usize, u64) + Sync)) -> Duration {
    let barrier = std::sync::Barrier::new(threads);
    let run = |t| {
        barrier.wait();
        let start = std::time::Instant::now();
        for i in 0..iters {
            op(t, i);
        }
        start.elapsed()
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|t| scope.spawn(move || run(t))).collect();
        let times = handles.into_iter().map(|h| h.join().unwrap_or_default());
        times.max().unwrap_or_default()
    })
}

/// Shared structures under two threads, each against one thread doing the
/// same work alone: the lock table (different regions, adjacent shards), the
/// pool (one size class) and the registry (create + free). Per-op time with 2
/// threads ÷ with 1 thread is the figure (1.0: no interference).
fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("contention");
    let table = RegionLockTable::new();
    let regions = [1, 2].map(|i| RegionHandle::new(i, 1).unwrap());
    let lock_op = |t: usize, i: u64| {
        let id = TxId(((t as u64) << 40) | i);
        let _ = table.acquire(regions[t], id, LockMode::Exclusive, Duration::ZERO);
        table.release_all(id, [regions[t]]);
    };
    let manager = SharedMemoryManager::new(SharedMemoryConfig::production()).unwrap();
    let pool_op = |_: usize, _: u64| {
        if let Ok(block) = manager.allocate_from_pool(64) {
            let _ = manager.deallocate_to_pool(block);
        }
    };
    let create_op = |_: usize, _: u64| {
        if let Ok(h) = manager.create_region(RegionRequest::new(64)) {
            let _ = manager.free_region(h);
        }
    };
    for (name, op) in [
        ("lock_table", &lock_op as &(dyn Fn(usize, u64) + Sync)),
        ("pool_64B", &pool_op),
        ("registry_create_free", &create_op),
    ] {
        for threads in [1usize, 2] {
            group.bench_function(format!("{name}/{threads}_threads"), |b| {
                b.iter_custom(|iters| on_threads(threads, iters, op))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, locks, host_calls, contention);
criterion_main!(benches);
