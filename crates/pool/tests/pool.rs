//! Behaviour of `BlockPool` and `Block` through the public API.

use std::sync::Arc;

use shm_pool::{Block, BlockPool, PoolConfig, PoolError, SizeClass, PAGE_ALIGN};

const MIB: usize = 1 << 20;

fn pool(blocks: [usize; 4]) -> BlockPool {
    BlockPool::new(PoolConfig::with_blocks(blocks))
}

fn paranoid(blocks: [usize; 4]) -> BlockPool {
    BlockPool::new(PoolConfig {
        zero_on_return: true,
        ..PoolConfig::with_blocks(blocks)
    })
}

fn all_zero(block: &Block) -> bool {
    block.as_slice().iter().all(|&b| b == 0)
}

fn assert_consistent(pool: &BlockPool) {
    for class in pool.stats().classes {
        assert_eq!(class.total, class.free + class.allocated, "{class:?}");
        assert!(class.total <= class.capacity, "{class:?}");
        assert!(class.high_water >= class.allocated, "{class:?}");
    }
}

#[test]
fn every_class_serves_its_sizes() {
    let pool = pool([2, 2, 2, 2]);
    for class in SizeClass::ALL {
        for size in [class.bytes(), class.bytes() / 2 + 1] {
            let block = pool.allocate(size).unwrap();
            assert_eq!(block.class(), Some(class), "size {size}");
            assert_eq!(block.len(), class.bytes());
            assert_eq!(block.requested_len(), size);
            assert!(all_zero(&block));
        }
        let block = pool.allocate_class(class).unwrap();
        assert_eq!((block.class(), block.len()), (Some(class), class.bytes()));
    }
    assert_consistent(&pool);
}

#[test]
fn blocks_are_aligned() {
    let pool = pool([8, 4, 2, 1]);
    let mut held = Vec::new();
    for class in SizeClass::ALL {
        while let Ok(block) = pool.allocate_class(class) {
            if block.class() != Some(class) {
                break;
            }
            let align = if class == SizeClass::B64 {
                64
            } else {
                PAGE_ALIGN
            };
            assert_eq!(block.addr() % align, 0, "{class}");
            held.push(block);
        }
    }
    let large = pool.allocate(MIB + 1).unwrap();
    assert_eq!(large.addr() % PAGE_ALIGN, 0);
    assert_eq!(held.len(), 8 + 4 + 2 + 1);
}

#[test]
fn zero_size_is_refused() {
    let pool = pool([1, 1, 1, 1]);
    assert_eq!(pool.allocate(0).unwrap_err(), PoolError::ZeroSize);
    assert_eq!(pool.allocate_large(0).unwrap_err(), PoolError::ZeroSize);
}

#[test]
fn reused_block_is_zero_after_partial_write() {
    for pool in [pool([0, 1, 0, 0]), paranoid([0, 1, 0, 0])] {
        let mut block = pool.allocate(4096).unwrap();
        let addr = block.addr();
        block.write_at(100, &[0xFF; 200]).unwrap();
        assert_eq!(block.dirty_len(), 300);
        pool.release(block);
        let block = pool.allocate(4096).unwrap();
        assert_eq!(block.addr(), addr, "the same block comes back");
        assert_eq!(block.dirty_len(), 0);
        assert!(all_zero(&block));
    }
}

#[test]
fn reused_block_is_zero_after_full_write() {
    for pool in [pool([0, 0, 1, 0]), paranoid([0, 0, 1, 0])] {
        let mut block = pool.allocate_class(SizeClass::K64).unwrap();
        block.as_mut_slice().unwrap().fill(0x5A);
        assert_eq!(block.dirty_len(), block.len());
        drop(block); // dropping releases too
        assert!(all_zero(&pool.allocate_class(SizeClass::K64).unwrap()));
    }
}

#[test]
fn range_mut_raises_dirty_mark_only_to_its_end() {
    let pool = pool([1, 0, 0, 0]);
    let mut block = pool.allocate(64).unwrap();
    block.range_mut(40, 8).unwrap().fill(1);
    assert_eq!(block.dirty_len(), 48);
    block.write_at(0, &[2; 4]).unwrap();
    assert_eq!(block.dirty_len(), 48, "a lower write keeps the mark");
    let mut out = [0u8; 10];
    block.read_at(38, &mut out).unwrap();
    assert_eq!(out, [0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    block.clear().unwrap();
    assert_eq!(block.dirty_len(), 0);
    assert!(all_zero(&block));
}

#[test]
fn out_of_bounds_access_is_an_error_and_writes_nothing() {
    let pool = pool([1, 0, 0, 0]);
    let mut block = pool.allocate(10).unwrap();
    let err = block.write_at(60, &[1; 5]).unwrap_err();
    assert_eq!(
        err,
        PoolError::OutOfBounds {
            offset: 60,
            len: 5,
            capacity: 64
        }
    );
    assert!(block.write_at(usize::MAX, &[1]).is_err());
    assert!(block.range_mut(1, usize::MAX).is_err());
    assert!(block.read_at(64, &mut [0u8; 1]).is_err());
    assert_eq!(block.dirty_len(), 0);
    assert!(all_zero(&block));
    block.write_at(64, &[]).unwrap(); // an empty write at the end fits
}

#[test]
fn paranoid_release_scrubs_before_reuse() {
    let pool = paranoid([0, 1, 0, 0]);
    let mut block = pool.allocate(4096).unwrap();
    block.write_at(0, &[7; 4096]).unwrap();
    pool.release(block);
    // The block came back with nothing dirty: zeroing already happened.
    let block = pool.allocate(4096).unwrap();
    assert_eq!(block.dirty_len(), 0);
    assert!(all_zero(&block));
}

#[test]
fn each_class_exhausts_without_fallback_when_larger_are_empty() {
    for class in SizeClass::ALL {
        let mut blocks = [0; 4];
        blocks[class.index()] = 3;
        let pool = pool(blocks);
        let held: Vec<_> = (0..3)
            .map(|_| pool.allocate_class(class).unwrap())
            .collect();
        assert_eq!(
            pool.allocate_class(class).unwrap_err(),
            PoolError::PoolExhausted { class, capacity: 3 }
        );
        assert_eq!(
            pool.allocate(class.bytes()).unwrap_err(),
            PoolError::PoolExhausted { class, capacity: 3 }
        );
        let stats = pool.stats();
        assert_eq!(stats.class(class).allocated, 3);
        assert_eq!(stats.class(class).free, 0);
        drop(held);
        assert_eq!(pool.stats().class(class).free, 3);
        assert_consistent(&pool);
    }
}

#[test]
fn exhausted_class_falls_back_to_next_larger_free_block() {
    let pool = pool([1, 0, 0, 1]);
    let first = pool.allocate(10).unwrap();
    assert_eq!(first.class(), Some(SizeClass::B64));
    // 64 B and 4 KiB and 64 KiB are empty: the 1 MiB block serves.
    let second = pool.allocate(10).unwrap();
    assert_eq!(second.class(), Some(SizeClass::M1));
    assert_eq!(second.requested_len(), 10);
    let stats = pool.stats();
    assert_eq!(stats.class(SizeClass::M1).fallback_allocations, 1);
    assert_eq!(stats.class(SizeClass::M1).allocated, 1);
    assert_eq!(stats.class(SizeClass::B64).fallback_allocations, 0);
    assert!(matches!(
        pool.allocate(10),
        Err(PoolError::PoolExhausted {
            class: SizeClass::B64,
            ..
        })
    ));
    // The fallback block goes back to its own (1 MiB) class.
    drop(second);
    assert_eq!(pool.stats().class(SizeClass::M1).free, 1);
    assert_eq!(pool.stats().class(SizeClass::B64).free, 0);
    assert_consistent(&pool);
}

#[test]
fn fallback_never_goes_to_a_smaller_class() {
    let pool = pool([5, 5, 0, 0]);
    assert!(matches!(
        pool.allocate_class(SizeClass::K64),
        Err(PoolError::PoolExhausted {
            class: SizeClass::K64,
            capacity: 0
        })
    ));
}

#[test]
fn large_allocations_are_page_rounded_and_limited() {
    let config = PoolConfig {
        large_alloc_limit: 4 * MIB,
        ..PoolConfig::with_blocks([0, 0, 0, 0])
    };
    let pool = BlockPool::new(config);
    let mut a = pool.allocate(MIB + 1).unwrap();
    assert_eq!(a.class(), None);
    assert_eq!(a.len(), MIB + PAGE_ALIGN);
    assert!(all_zero(&a));
    a.as_mut_slice().unwrap().fill(9);
    let b = pool.allocate(2 * MIB).unwrap();
    assert_eq!(b.len(), 2 * MIB);
    let stats = pool.stats();
    assert_eq!(stats.large.count, 2);
    assert_eq!(stats.large.bytes_in_use, 3 * MIB + PAGE_ALIGN);
    // 1 MiB - 4 KiB is left: a 2 MiB request fits the limit alone, not next to these.
    assert_eq!(
        pool.allocate(2 * MIB).unwrap_err(),
        PoolError::LargeLimitReached {
            requested: 2 * MIB,
            in_use: 3 * MIB + PAGE_ALIGN,
            limit: 4 * MIB
        }
    );
    assert_eq!(
        pool.allocate(5 * MIB).unwrap_err(),
        PoolError::TooLarge {
            requested: 5 * MIB,
            limit: 4 * MIB
        }
    );
    assert!(matches!(
        pool.allocate(usize::MAX),
        Err(PoolError::TooLarge { .. })
    ));
    drop(a);
    let stats = pool.stats();
    assert_eq!((stats.large.count, stats.large.bytes_in_use), (1, 2 * MIB));
    assert_eq!(stats.large.high_water_bytes, 3 * MIB + PAGE_ALIGN);
    assert_eq!(stats.large.allocations_total, 2);
    let c = pool.allocate(2 * MIB).unwrap();
    assert!(all_zero(&c));
    drop((b, c));
    assert_eq!(pool.stats().large.bytes_in_use, 0);
}

#[test]
fn large_blocks_under_paranoid_are_freed_cleanly() {
    let config = PoolConfig {
        zero_on_return: true,
        large_alloc_limit: 8 * MIB,
        ..PoolConfig::with_blocks([0; 4])
    };
    let pool = BlockPool::new(config);
    for _ in 0..3 {
        let mut block = pool.allocate(3 * MIB).unwrap();
        assert!(all_zero(&block));
        block.write_at(MIB, &[1; 100]).unwrap();
    }
    assert_eq!(pool.stats().large.bytes_in_use, 0);
}

#[test]
fn compact_keeps_the_floor_and_regrows_on_demand() {
    let config = PoolConfig {
        retain_floor: [2, 1, 0, 5],
        ..PoolConfig::with_blocks([8, 4, 2, 1])
    };
    let pool = BlockPool::new(config);
    let held = pool.allocate(10).unwrap(); // one 64 B block in use is not compacted
    let freed = pool.compact();
    assert_eq!(freed, 5 * 64 + 3 * 4096 + 2 * 65536);
    let stats = pool.stats();
    assert_eq!(
        stats.classes.map(|c| (c.total, c.free)),
        [(3, 2), (1, 1), (0, 0), (1, 1)],
        "the 1 MiB class is below its floor and keeps its block"
    );
    assert_eq!(pool.compact(), 0, "nothing left above the floors");
    // Compacted classes grow back up to their configured count, zeroed.
    let regrown: Vec<_> = (0..2)
        .map(|_| pool.allocate_class(SizeClass::K64).unwrap())
        .collect();
    assert!(regrown
        .iter()
        .all(|b| b.class() == Some(SizeClass::K64) && all_zero(b)));
    assert_eq!(pool.stats().class(SizeClass::K64).total, 2);
    // ... but never beyond it: the third falls back to the 1 MiB block.
    assert_eq!(
        pool.allocate_class(SizeClass::K64).unwrap().class(),
        Some(SizeClass::M1)
    );
    drop((held, regrown));
    assert_consistent(&pool);
}

#[test]
fn compact_under_paranoid_counts_the_same() {
    let config = PoolConfig {
        zero_on_return: true,
        retain_floor: [0; 4],
        ..PoolConfig::with_blocks([2, 2, 0, 0])
    };
    let pool = BlockPool::new(config);
    let mut block = pool.allocate(64).unwrap();
    block.as_mut_slice().unwrap().fill(3);
    drop(block);
    assert_eq!(pool.compact(), 2 * 64 + 2 * 4096);
    assert_eq!(pool.stats().reserved_bytes(), 0);
}

#[test]
fn stats_track_high_water_utilization_and_fragmentation() {
    let pool = pool([4, 4, 0, 0]);
    let empty = pool.stats();
    assert_eq!((empty.utilization, empty.fragmentation), (0.0, 0.0));
    assert_eq!(empty.reserved_bytes(), 4 * 64 + 4 * 4096);

    let a = pool.allocate(1024).unwrap(); // 4 KiB block for 1 KiB
    let b = pool.allocate(4096).unwrap();
    let c = pool.allocate_class(SizeClass::B64).unwrap();
    let stats = pool.stats();
    assert_eq!(stats.class(SizeClass::K4).allocated, 2);
    assert_eq!(stats.class(SizeClass::K4).high_water, 2);
    assert_eq!(stats.requested_bytes, 1024 + 4096 + 64);
    assert_eq!(stats.handed_out_bytes, 2 * 4096 + 64);
    let expected_frag = 1.0 - (1024.0 + 4096.0 + 64.0) / (2.0 * 4096.0 + 64.0);
    assert!((stats.fragmentation - expected_frag).abs() < 1e-12);
    let expected_util = (2.0 * 4096.0 + 64.0) / (4.0 * 4096.0 + 4.0 * 64.0);
    assert!((stats.utilization - expected_util).abs() < 1e-12);

    drop((a, b, c));
    let stats = pool.stats();
    assert_eq!(stats.class(SizeClass::K4).allocated, 0);
    assert_eq!(stats.class(SizeClass::K4).high_water, 2, "high water stays");
    assert_eq!((stats.requested_bytes, stats.handed_out_bytes), (0, 0));
    assert_eq!(stats.fragmentation, 0.0);
    assert_consistent(&pool);
}

#[test]
fn block_released_to_another_pool_goes_home() {
    let home = pool([0, 1, 0, 0]);
    let other = pool([0, 1, 0, 0]);
    let block = home.allocate(10).unwrap();
    other.release(block);
    assert_eq!(home.stats().class(SizeClass::K4).free, 1);
    assert_eq!(other.stats().class(SizeClass::K4).free, 1);
    assert_eq!(other.stats().class(SizeClass::K4).total, 1);
}

#[test]
fn blocks_outlive_the_pool_handle() {
    let pool = pool([0, 1, 0, 0]);
    let mut block = pool.allocate(10).unwrap();
    drop(pool);
    block.write_at(0, b"still valid").unwrap();
    assert_eq!(&block.as_slice()[..11], b"still valid");
}

#[test]
fn threads_allocate_write_and_release_concurrently() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 400;
    let pool = Arc::new(pool([16, 16, 8, 2]));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let mut held: Vec<Block> = Vec::new();
                let mut failures = 0usize;
                for round in 0..ROUNDS {
                    let size = [1, 64, 100, 4096, 5000, 65536, 70000][(t + round) % 7];
                    match pool.allocate(size) {
                        Ok(mut block) => {
                            assert!(all_zero(&block), "thread {t} round {round} saw stale bytes");
                            let tag = [(t as u8) ^ (round as u8) | 1; 64];
                            let n = size.min(64);
                            block.write_at(0, &tag[..n]).unwrap();
                            held.push(block);
                        }
                        Err(PoolError::PoolExhausted { .. }) => failures += 1,
                        Err(other) => panic!("unexpected {other}"),
                    }
                    if held.len() > 3 || round % 5 == 0 {
                        if let Some(block) = held.pop() {
                            // Nobody else wrote into our block meanwhile.
                            let expected = block.as_slice()[0];
                            assert!(block.as_slice()[..block.dirty_len()]
                                .iter()
                                .all(|&b| b == expected));
                            pool.release(block);
                        }
                    }
                }
                failures
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let stats = pool.stats();
    for class in stats.classes {
        assert_eq!(class.allocated, 0, "{class:?}");
        assert_eq!(class.free, class.total, "{class:?}");
        assert_eq!(class.total, class.capacity, "{class:?}");
        assert!(class.high_water <= class.capacity);
    }
    assert!(
        stats.classes.iter().any(|c| c.high_water > 1),
        "threads overlapped"
    );
    assert_eq!((stats.requested_bytes, stats.handed_out_bytes), (0, 0));
}

#[test]
fn pool_and_blocks_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BlockPool>();
    assert_send_sync::<Block>();
    assert_send_sync::<PoolError>();
    // A block moves to another thread and is released there.
    let pool = pool([0, 1, 0, 0]);
    let mut block = pool.allocate(1).unwrap();
    block.write_at(0, &[1]).unwrap();
    let remote = pool.clone();
    std::thread::spawn(move || remote.release(block))
        .join()
        .unwrap();
    assert_eq!(pool.stats().class(SizeClass::K4).free, 1);
    assert!(all_zero(&pool.allocate(1).unwrap()));
}
