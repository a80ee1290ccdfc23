//! Sharded free lists under real threads: counts stay exact, no block is lost
//! or handed to two holders at once, the capacity bound always holds. Every
//! check counts; none depends on timing.

use std::collections::HashSet;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use shm_pool::{Block, BlockPool, PoolConfig, PoolError, SizeClass};

const THREADS: usize = 4;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn assert_quiescent(pool: &BlockPool) {
    let stats = pool.stats();
    for class in stats.classes {
        assert_eq!(class.allocated, 0, "{class:?}");
        assert_eq!(class.free, class.total, "{class:?}");
        assert!(class.total <= class.capacity, "{class:?}");
        assert!(class.high_water <= class.capacity, "{class:?}");
    }
    assert_eq!((stats.requested_bytes, stats.handed_out_bytes), (0, 0));
}

/// Addresses currently held by someone: a block handed to two holders at
/// once would be inserted twice.
#[derive(Default)]
struct Holders(Mutex<HashSet<usize>>);
impl Holders {
    fn take(&self, block: &Block) {
        assert!(
            self.0.lock().unwrap().insert(block.addr()),
            "block {:#x} handed out twice",
            block.addr()
        );
    }
    fn give(&self, block: &Block) {
        assert!(self.0.lock().unwrap().remove(&block.addr()));
    }
}

#[test]
fn storms_keep_counts_exact_and_never_double_hand_a_block() {
    const ROUNDS: usize = 3_000;
    let pool = BlockPool::with_shards(PoolConfig::with_blocks([24, 8, 2, 0]), 4);
    let holders = Holders::default();
    thread::scope(|scope| {
        for t in 0..THREADS {
            let (pool, holders) = (&pool, &holders);
            scope.spawn(move || {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (t as u64 + 1));
                let mut held: Vec<Block> = Vec::new();
                for round in 0..ROUNDS {
                    if held.len() < 8 && !rng.next().is_multiple_of(3) {
                        let size = [1, 64, 64, 100, 4096, 5000][(rng.next() % 6) as usize];
                        match pool.allocate(size) {
                            Ok(mut block) => {
                                assert!(block.as_slice().iter().all(|&b| b == 0), "stale bytes");
                                holders.take(&block);
                                block.write_at(0, &[t as u8 + 1; 64]).unwrap();
                                held.push(block);
                            }
                            Err(PoolError::PoolExhausted { .. }) => {}
                            Err(other) => panic!("unexpected {other}"),
                        }
                    } else if !held.is_empty() {
                        let block = held.swap_remove((rng.next() as usize) % held.len());
                        assert_eq!(block.as_slice()[0], t as u8 + 1, "someone wrote our block");
                        holders.give(&block);
                        // Half the releases happen on another thread: the
                        // block must still go home.
                        if round.is_multiple_of(2) {
                            pool.release(block);
                        } else {
                            thread::scope(|s| {
                                s.spawn(move || drop(block));
                            });
                        }
                    }
                    if round.is_multiple_of(97) {
                        for class in pool.stats().classes {
                            assert!(class.total <= class.capacity, "{class:?}");
                            assert!(class.allocated <= class.total, "{class:?}");
                            assert!(class.high_water <= class.capacity, "{class:?}");
                        }
                    }
                }
                for block in held {
                    holders.give(&block);
                    pool.release(block);
                }
            });
        }
    });
    assert_quiescent(&pool);
    let stats = pool.stats();
    assert_eq!(
        stats.classes.map(|c| c.total),
        [24, 8, 2, 0],
        "no block lost"
    );
    assert!(
        stats.class(SizeClass::B64).high_water > 8,
        "threads overlapped"
    );
}

#[test]
fn high_water_is_the_exact_peak_over_all_threads() {
    // Each thread holds `k` blocks at the barrier: the peak is exactly
    // THREADS × k, though each thread took its blocks from its own shard.
    for k in [1usize, 3, 6] {
        let pool = BlockPool::with_shards(PoolConfig::with_blocks([32, 0, 0, 0]), 4);
        let barrier = Barrier::new(THREADS + 1);
        thread::scope(|scope| {
            for _ in 0..THREADS {
                let (pool, barrier) = (&pool, &barrier);
                scope.spawn(move || {
                    // Warm up: churn alone first, so budgets are dealt.
                    for _ in 0..50 {
                        drop(pool.allocate(64).unwrap());
                    }
                    let held: Vec<Block> = (0..k).map(|_| pool.allocate(64).unwrap()).collect();
                    barrier.wait(); // all hold k
                    barrier.wait(); // the main thread has looked
                    drop(held);
                    for _ in 0..50 {
                        drop(pool.allocate(64).unwrap());
                    }
                });
            }
            barrier.wait();
            let class = *pool.stats().class(SizeClass::B64);
            assert_eq!(class.allocated, THREADS * k);
            assert_eq!(class.free, 32 - THREADS * k);
            assert_eq!(class.high_water, THREADS * k, "k = {k}");
            barrier.wait();
        });
        let class = *pool.stats().class(SizeClass::B64);
        assert_eq!(
            class.high_water,
            THREADS * k,
            "k = {k}: nothing raised it later"
        );
        assert_quiescent(&pool);
    }
}

#[test]
fn exhaustion_is_exact_across_shards() {
    // With no release under way, the threads together get every block, and
    // each is refused only when none is left anywhere.
    let pool = BlockPool::with_shards(PoolConfig::with_blocks([37, 0, 0, 0]), 8);
    let got: Vec<Vec<Block>> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let pool = &pool;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        match pool.allocate(64) {
                            Ok(block) => mine.push(block),
                            Err(PoolError::PoolExhausted { class, capacity }) => {
                                assert_eq!((class, capacity), (SizeClass::B64, 37));
                                return mine;
                            }
                            Err(other) => panic!("unexpected {other}"),
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let addrs: HashSet<usize> = got.iter().flatten().map(Block::addr).collect();
    assert_eq!(addrs.len(), 37, "every block, each once");
    let class = *pool.stats().class(SizeClass::B64);
    assert_eq!((class.allocated, class.free, class.high_water), (37, 0, 37));
    drop(got);
    assert_quiescent(&pool);
}

#[test]
fn regrowth_under_threads_never_passes_capacity() {
    let config = PoolConfig {
        retain_floor: [0; 4],
        ..PoolConfig::with_blocks([0, 12, 0, 0])
    };
    let pool = Arc::new(BlockPool::with_shards(config, 4));
    for _ in 0..20 {
        assert_eq!(pool.compact(), 12 * 4096);
        assert_eq!(pool.stats().class(SizeClass::K4).total, 0);
        let barrier = Barrier::new(THREADS);
        let got = thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (pool, barrier) = (&pool, &barrier);
                    scope.spawn(move || {
                        let mut held = Vec::new();
                        for _ in 0..6 {
                            if let Ok(block) = pool.allocate(4096) {
                                assert!(block.as_slice().iter().all(|&b| b == 0));
                                held.push(block);
                            }
                            let class = *pool.stats().class(SizeClass::K4);
                            assert!(class.total <= 12, "{class:?}");
                        }
                        // Nobody releases before everybody has asked.
                        barrier.wait();
                        held.len()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .sum::<usize>()
        });
        // 4 threads × 6 requests for 12 blocks: exactly 12 succeed.
        assert_eq!(got, 12);
        let class = *pool.stats().class(SizeClass::K4);
        assert_eq!((class.total, class.free, class.allocated), (12, 12, 0));
    }
    assert_quiescent(&pool);
}

#[test]
fn one_thread_gets_back_the_block_it_released_last() {
    let pool = BlockPool::with_shards(PoolConfig::with_blocks([16, 0, 0, 0]), 4);
    let blocks: Vec<Block> = (0..6).map(|_| pool.allocate(64).unwrap()).collect();
    let addrs: Vec<usize> = blocks.iter().map(Block::addr).collect();
    for block in blocks {
        pool.release(block);
    }
    // LIFO: the last released comes out first, then the one before...
    let first = pool.allocate(64).unwrap();
    let second = pool.allocate(64).unwrap();
    assert_eq!((first.addr(), second.addr()), (addrs[5], addrs[4]));
    // ...and a block released again is on top again.
    pool.release(second);
    let again = pool.allocate(64).unwrap();
    assert_eq!(again.addr(), addrs[4]);
    drop((first, again));
    // Every block was dealt somewhere and is found again, from another thread.
    let other = pool.clone();
    let n = thread::spawn(move || {
        let all: Vec<Block> = std::iter::from_fn(|| other.allocate(64).ok()).collect();
        all.len()
    })
    .join()
    .unwrap();
    assert_eq!(n, 16);
    assert_quiescent(&pool);
}
