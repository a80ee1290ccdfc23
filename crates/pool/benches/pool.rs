//! Allocate + release per size class: the pool against the system allocator
//! doing the same sizes zeroed (`alloc_zeroed` + `dealloc`, same alignment).
//!
//! Each size has three pairs of figures in the same run:
//! `system/clean` vs `pool/clean` (nothing written), and
//! `system/write` vs `pool/write` (the first 256 bytes written, 64 for 64 B
//! blocks, so the pool pays to zero them again on the next allocation).

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shm_pool::{BlockPool, PoolConfig, SizeClass};

fn system_round_trip(layout: Layout, write: usize) {
    // SAFETY: every layout here has a non-zero size; the pointer is checked
    // for null, written within `layout.size()` and freed with the same layout.
    unsafe {
        let ptr = alloc_zeroed(layout);
        if ptr.is_null() {
            return;
        }
        std::ptr::write_bytes(ptr, 0xAB, write);
        black_box(ptr);
        dealloc(ptr, layout);
    }
}

fn bench_classes(c: &mut Criterion) {
    let pool = BlockPool::new(PoolConfig::with_blocks([64, 64, 16, 4]));
    let mut group = c.benchmark_group("alloc_release");
    for class in SizeClass::ALL {
        let size = class.bytes();
        let write = size.min(256);
        let Ok(layout) = Layout::from_size_align(size, class.align()) else {
            continue;
        };
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("system/clean", class),
            &layout,
            |b, &layout| b.iter(|| system_round_trip(layout, 0)),
        );
        group.bench_with_input(
            BenchmarkId::new("pool/clean", class),
            &class,
            |b, &class| {
                b.iter(|| {
                    if let Ok(block) = pool.allocate_class(class) {
                        black_box(block.as_slice().as_ptr());
                        pool.release(block);
                    }
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("system/write", class),
            &layout,
            |b, &layout| b.iter(|| system_round_trip(layout, write)),
        );
        let data = vec![0xABu8; write];
        group.bench_with_input(
            BenchmarkId::new("pool/write", class),
            &class,
            |b, &class| {
                b.iter(|| {
                    if let Ok(mut block) = pool.allocate_class(class) {
                        let _ = block.write_at(0, black_box(&data));
                        pool.release(block);
                    }
                })
            },
        );
    }
    group.finish();
}

fn bench_large(c: &mut Criterion) {
    const SIZE: usize = 4 << 20;
    let pool = BlockPool::new(PoolConfig::with_blocks([0; 4]));
    let Ok(layout) = Layout::from_size_align(SIZE, shm_pool::PAGE_ALIGN) else {
        return;
    };
    let mut group = c.benchmark_group("alloc_release_large_4MiB");
    group.bench_function("system", |b| b.iter(|| system_round_trip(layout, 256)));
    group.bench_function("pool", |b| {
        b.iter(|| {
            if let Ok(mut block) = pool.allocate(SIZE) {
                let _ = block.write_at(0, &[0xAB; 256]);
                pool.release(block);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_classes, bench_large);
criterion_main!(benches);
