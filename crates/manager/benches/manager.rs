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
    group.bench_function("baseline_mutex", |b| {
        b.iter(|| {
            *mutex.lock() += 1;
        })
    });
    let table = RegionLockTable::new();
    let handle = RegionHandle::new(3, 1).unwrap_or_else(|| unreachable!());
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
    let manager = match SharedMemoryManager::new(SharedMemoryConfig::development()) {
        Ok(manager) => manager,
        Err(error) => panic!("bench setup: {error}"),
    };
    let handle = match manager.create_region(RegionRequest::new(4096)) {
        Ok(handle) => handle,
        Err(error) => panic!("bench setup: {error}"),
    };
    let config = SharedMemoryConfig::development();
    let registry = RegionRegistry::new(
        BlockPool::new(config.pool_config()),
        config.registry_config(),
    );
    let floor = match registry.create(RegionSpec::new(4096, Address::ZERO)) {
        Ok(handle) => handle,
        Err(error) => panic!("bench setup: {error}"),
    };
    let other = match manager.create_region(RegionRequest::new(4096)) {
        Ok(handle) => handle,
        Err(error) => panic!("bench setup: {error}"),
    };
    let mut tx = manager.begin_transaction();
    let region = match tx.resolve(other, HOST_CONTEXT, Intent::Write, None, Duration::ZERO) {
        Ok(region) => region,
        Err(error) => panic!("bench setup: {error}"),
    };
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

criterion_group!(benches, locks, host_calls);
criterion_main!(benches);
