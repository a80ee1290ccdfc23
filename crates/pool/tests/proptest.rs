//! Random allocate/write/release/compact sequences keep the pool's counters
//! consistent and never hand out a block with stale bytes.

use proptest::prelude::*;
use shm_pool::{Block, BlockPool, PoolConfig, PoolError, SizeClass};

#[derive(Debug, Clone)]
enum Op {
    Allocate(usize),
    AllocateClass(usize),
    Write {
        pick: usize,
        offset: usize,
        len: usize,
        byte: u8,
    },
    Scribble(usize),
    Release(usize),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop_oneof![1usize..=64, 65usize..=4096, 4097usize..=65536, 65537usize..=(1 << 20), (1usize << 20) + 1..=(3 << 20)]
            .prop_map(Op::Allocate),
        2 => (0usize..4).prop_map(Op::AllocateClass),
        3 => (any::<usize>(), any::<usize>(), 0usize..300, 1u8..=255)
            .prop_map(|(pick, offset, len, byte)| Op::Write { pick, offset, len, byte }),
        1 => any::<usize>().prop_map(Op::Scribble),
        3 => any::<usize>().prop_map(Op::Release),
        1 => Just(Op::Compact),
    ]
}

fn check(pool: &BlockPool, held: &[Block]) {
    let stats = pool.stats();
    for class in stats.classes {
        let mine = held
            .iter()
            .filter(|b| b.class() == Some(class.class))
            .count();
        assert_eq!(class.allocated, mine, "{class:?}");
        assert_eq!(class.total, class.free + class.allocated, "{class:?}");
        assert!(class.total <= class.capacity, "{class:?}");
        assert!(class.high_water >= class.allocated, "{class:?}");
    }
    let large: Vec<_> = held.iter().filter(|b| b.class().is_none()).collect();
    assert_eq!(stats.large.count, large.len());
    assert_eq!(
        stats.large.bytes_in_use,
        large.iter().map(|b| b.len()).sum::<usize>()
    );
    assert!(stats.large.bytes_in_use <= stats.large.limit);
    assert_eq!(
        stats.requested_bytes,
        held.iter().map(Block::requested_len).sum::<usize>()
    );
    assert_eq!(
        stats.handed_out_bytes,
        held.iter().map(Block::len).sum::<usize>()
    );
    assert!((0.0..=1.0).contains(&stats.utilization));
    assert!((0.0..=1.0).contains(&stats.fragmentation));
    for block in held {
        assert!(block.requested_len() <= block.len());
        assert!(block.as_slice()[block.dirty_len()..]
            .iter()
            .all(|&b| b == 0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_sequences_keep_invariants(
        ops in proptest::collection::vec(op(), 1..120),
        blocks in [0usize..6, 0usize..6, 0usize..4, 0usize..3],
        floor in [0usize..4, 0usize..4, 0usize..4, 0usize..4],
        zero_on_return in any::<bool>(),
    ) {
        let pool = BlockPool::new(PoolConfig {
            blocks_per_class: blocks,
            zero_on_return,
            retain_floor: floor,
            large_alloc_limit: 6 << 20,
        });
        let mut held: Vec<Block> = Vec::new();
        for op in ops {
            let got = match op {
                Op::Allocate(size) => Some(pool.allocate(size)),
                Op::AllocateClass(i) => Some(pool.allocate_class(SizeClass::ALL[i])),
                Op::Write { pick, offset, len, byte } => {
                    if !held.is_empty() {
                        let i = pick % held.len();
                        let block = &mut held[i];
                        let offset = offset % (block.len() + 1);
                        let data = vec![byte; len];
                        let fits = offset + len <= block.len();
                        prop_assert_eq!(block.write_at(offset, &data).is_ok(), fits);
                        if fits {
                            prop_assert!(block.dirty_len() >= offset + len);
                        }
                    }
                    None
                }
                Op::Scribble(pick) => {
                    if !held.is_empty() {
                        let i = pick % held.len();
                        held[i].as_mut_slice().unwrap().fill(0xEE);
                    }
                    None
                }
                Op::Release(pick) => {
                    if !held.is_empty() {
                        let i = pick % held.len();
                        pool.release(held.swap_remove(i));
                    }
                    None
                }
                Op::Compact => {
                    let before = pool.stats().reserved_bytes();
                    let freed = pool.compact();
                    prop_assert_eq!(pool.stats().reserved_bytes(), before - freed);
                    None
                }
            };
            match got {
                Some(Ok(block)) => {
                    prop_assert!(block.as_slice().iter().all(|&b| b == 0), "stale bytes in {:?}", block);
                    prop_assert_eq!(block.dirty_len(), 0);
                    held.push(block);
                }
                Some(Err(PoolError::PoolExhausted { .. } | PoolError::LargeLimitReached { .. })) | None => {}
                Some(Err(other)) => prop_assert!(false, "unexpected error {}", other),
            }
            check(&pool, &held);
        }
        drop(held);
        check(&pool, &[]);
    }
}
