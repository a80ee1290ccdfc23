//! Revert and commit cost of a frame that wrote `k` pages, for region sizes from
//! 64 KiB to 64 MiB: the cost must be flat in region size (spec §6).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use shm_journal::TxJournal;
use shm_pool::{BlockPool, PoolConfig};
use shm_primitives::{Address, PAGE_SIZE};
use shm_region::{RegionRegistry, RegionSpec, RegistryConfig};

fn bench(c: &mut Criterion) {
    let pool = BlockPool::new(PoolConfig {
        large_alloc_limit: 256 << 20,
        ..PoolConfig::default()
    });
    let registry = RegionRegistry::new(
        pool,
        RegistryConfig {
            max_regions: 16,
            max_region_size: 64 << 20,
        },
    );
    let mut group = c.benchmark_group("frame_revert");
    for size in [64u64 << 10, 1 << 20, 64 << 20] {
        let h = registry
            .create(RegionSpec::new(size, Address::ZERO))
            .unwrap();
        for k in [1u64, 8] {
            let label = format!("{}KiB/k={k}", size >> 10);
            let data = vec![0xab; 64];
            group.bench_function(BenchmarkId::new("write+revert", &label), |b| {
                b.iter_batched(
                    TxJournal::default,
                    |mut journal| {
                        journal.checkpoint();
                        for page in 0..k {
                            journal
                                .write(&registry, h, page * PAGE_SIZE as u64, &data, false)
                                .unwrap();
                        }
                        journal.revert(&registry);
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
                            journal
                                .write(&registry, h, page * PAGE_SIZE as u64, &data, false)
                                .unwrap();
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

criterion_group!(benches, bench);
criterion_main!(benches);
