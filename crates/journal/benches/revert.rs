//! Costs of the revert journal (spec §6), each against a baseline in the same
//! run:
//!
//! - `frame_revert/*`: a frame writes 64 B into each of `k` pages and reverts
//!   (or commits into its parent), for regions of 64 KiB to 64 MiB — flat in
//!   region size;
//! - `deep_commit/*`: a frame at depth `d` saves 256 pages, then all `d`
//!   frames commit, against `d = 1`: with commits merged by union-find the
//!   cost of the `d − 1` extra commits does not grow with the pages saved.

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use shm_journal::{Page, RegionOps, TxJournal};
use shm_pool::{BlockPool, PoolConfig};
use shm_primitives::{Address, RegionHandle, PAGE_SIZE};
use shm_region::{RegionRegistry, RegionSpec, RegistryConfig};

struct Regions<'a>(&'a RegionRegistry);

impl RegionOps for Regions<'_> {
    fn restore_page(&mut self, handle: RegionHandle, page: u64, saved: &Page) {
        if let Ok(mut guard) = self.0.lock_write(handle) {
            let _ = guard.restore_page(page, saved);
        }
    }
    fn set_size(&mut self, handle: RegionHandle, size: u64) {
        if let Ok(mut guard) = self.0.lock_write(handle) {
            let _ = guard.set_size(size);
        }
    }
    fn free_created(&mut self, handle: RegionHandle, _: u64) {
        let _ = self.0.free(handle);
    }
    fn cancel_free(&mut self, handle: RegionHandle) {
        let _ = self.0.cancel_free(handle);
    }
    fn finish_free(&mut self, handle: RegionHandle) {
        let _ = self.0.finish_free(handle);
    }
}

fn write(
    registry: &RegionRegistry,
    journal: &mut TxJournal,
    h: RegionHandle,
    offset: u64,
    data: &[u8],
) {
    let Ok(mut guard) = registry.lock_write(h) else {
        return;
    };
    let plan = guard.plan(offset, data.len() as u64, false);
    let _ = guard.write_planned(
        plan,
        data,
        Some(&mut |page, bytes| journal.save_page(h, page, bytes)),
    );
}

fn registry() -> RegionRegistry {
    let pool = BlockPool::new(PoolConfig {
        large_alloc_limit: 256 << 20,
        ..PoolConfig::default()
    });
    RegionRegistry::new(
        pool,
        RegistryConfig {
            max_regions: 16,
            max_region_size: 64 << 20,
            max_persistent_regions: 16,
        },
    )
}

fn frame_revert(c: &mut Criterion) {
    let registry = registry();
    let mut group = c.benchmark_group("frame_revert");
    for size in [64u64 << 10, 1 << 20, 64 << 20] {
        let Ok(h) = registry.create(RegionSpec::new(size, Address::ZERO)) else {
            return;
        };
        for k in [1u64, 8] {
            let label = format!("{}KiB/k={k}", size >> 10);
            let data = vec![0xab; 64];
            group.bench_function(BenchmarkId::new("write+revert", &label), |b| {
                b.iter_batched(
                    TxJournal::default,
                    |mut journal| {
                        journal.checkpoint();
                        for page in 0..k {
                            write(&registry, &mut journal, h, page * PAGE_SIZE as u64, &data);
                        }
                        journal.revert(&mut Regions(&registry));
                        journal
                    },
                    BatchSize::SmallInput,
                )
            });
            group.bench_function(BenchmarkId::new("write+commit", &label), |b| {
                b.iter_batched(
                    TxJournal::default,
                    |mut journal| {
                        journal.checkpoint();
                        journal.checkpoint();
                        for page in 0..k {
                            write(&registry, &mut journal, h, page * PAGE_SIZE as u64, &data);
                        }
                        journal.commit();
                        journal
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

fn deep_commit(c: &mut Criterion) {
    let registry = registry();
    let Ok(h) = registry.create(RegionSpec::new(1 << 20, Address::ZERO)) else {
        return;
    };
    let mut group = c.benchmark_group("deep_commit");
    for depth in [1usize, 64, 600] {
        group.bench_function(BenchmarkId::new("256_pages", depth), |b| {
            b.iter_batched(
                TxJournal::default,
                |mut journal| {
                    for _ in 0..depth {
                        journal.checkpoint();
                    }
                    for page in 0..256u64 {
                        write(&registry, &mut journal, h, page * PAGE_SIZE as u64, &[1]);
                    }
                    for _ in 0..depth {
                        journal.commit();
                    }
                    journal
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, frame_revert, deep_commit);
criterion_main!(benches);
