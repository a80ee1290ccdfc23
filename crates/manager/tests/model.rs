//! Random sequences of host operations against a simple model (a `Vec<u8>`
//! per region): results, contents, GC decisions and stats never diverge, and
//! nothing panics.

use std::collections::BTreeSet;
use std::ops::Range;

use proptest::prelude::*;
use shm_manager::{RegionRequest, SharedMemoryConfig, SharedMemoryManager, ShmError};
use shm_primitives::{Address, MapOptions, RegionHandle, RegionOptions};

const MAX_REGIONS: usize = 6;
/// Persistent regions leave one slot for transaction-scoped ones.
const MAX_PERSISTENT: usize = MAX_REGIONS - 1;
const MAX_SIZE: u64 = 8192;

#[derive(Debug, Clone)]
enum Op {
    Create {
        size: u64,
        options: RegionOptions,
    },
    /// `Action` on the handle `pick % n` of the `n` ever issued.
    On(usize, Action),
    Gc,
}

#[derive(Debug, Clone)]
enum Action {
    Map(u8),
    Unmap(u8),
    Read { offset: u64, len: usize },
    Write { offset: u64, data: Vec<u8> },
    Free,
    Release,
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..MAX_SIZE + 512,
        1 => Just(u64::MAX - 3),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // Weights out of 14: each action as likely relative to `Create` and `Gc`
    // as when it was its own `Op`.
    let action = prop_oneof![
        2 => (0u8..3).prop_map(Action::Map),
        2 => (0u8..3).prop_map(Action::Unmap),
        4 => (offset(), 0usize..300).prop_map(|(offset, len)| Action::Read { offset, len }),
        4 => (offset(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(offset, data)| Action::Write { offset, data }),
        1 => Just(Action::Free),
        1 => Just(Action::Release),
    ];
    prop_oneof![
        3 => (0u64..=MAX_SIZE + 200, any::<bool>(), any::<bool>()).prop_map(
            |(size, persistent, auto_grow)| {
                let options = RegionOptions { persistent, auto_grow, ..RegionOptions::default() };
                Op::Create { size, options }
            }
        ),
        14 => (any::<usize>(), action).prop_map(|(pick, action)| Op::On(pick, action)),
        1 => Just(Op::Gc),
    ]
}

#[derive(Debug)]
struct ModelRegion {
    bytes: Vec<u8>,
    options: RegionOptions,
    mappings: BTreeSet<u8>,
    host_refs: u32,
}

/// Every handle ever issued, with its region while it lives.
type Model = Vec<(RegionHandle, Option<ModelRegion>)>;

fn ctx(n: u8) -> Address {
    Address::repeat_byte(n + 1)
}

/// The live regions that satisfy `f`.
fn count(model: &Model, f: impl Fn(&ModelRegion) -> bool) -> usize {
    let live = model.iter().filter_map(|(_, r)| r.as_ref());
    live.filter(|r| f(r)).count()
}

/// The bytes of `bytes` a `len`-byte access at `offset` reaches, or the
/// refusal of an offset that overflows.
fn reach(bytes: &[u8], offset: u64, len: usize) -> Result<Range<usize>, ShmError> {
    let len64 = len as u64;
    let overflow = ShmError::OffsetOverflow { offset, len: len64 };
    offset.checked_add(len64).ok_or(overflow)?;
    let start = offset.min(bytes.len() as u64) as usize;
    Ok(start..start + len.min(bytes.len() - start))
}

/// Runs `action` on `handle`; a read's bytes land in `buf`. The count it
/// returns: bytes read or written, or the host references left.
fn apply(
    m: &SharedMemoryManager,
    handle: RegionHandle,
    action: &Action,
    buf: &mut Vec<u8>,
) -> Result<usize, ShmError> {
    match action {
        Action::Map(c) => m
            .map_shared_region(handle, ctx(*c), MapOptions::empty())
            .map(|()| 0),
        Action::Unmap(c) => m.unmap_shared_region(handle, ctx(*c)).map(|()| 0),
        Action::Read { offset, len } => {
            *buf = vec![0xEE; *len];
            m.read_region(handle, *offset, buf)
        }
        Action::Write { offset, data } => m.write_region(handle, *offset, data),
        Action::Free => m.free_region(handle).map(|()| 0),
        Action::Release => m.release_region(handle).map(|refs| refs as usize),
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = SharedMemoryConfig {
        max_regions: MAX_REGIONS,
        max_persistent_regions: MAX_PERSISTENT,
        max_region_size: MAX_SIZE,
        // Enough 64 KiB blocks that creation and growth never exhaust the pool.
        pool_blocks: [16, 16, 16, 0],
        ..SharedMemoryConfig::testing()
    };
    let m = SharedMemoryManager::new(config).expect("valid config");
    let mut model: Model = Vec::new();

    for op in ops {
        match op {
            Op::Create { size, options } => {
                let result = m.create_region(RegionRequest::new(size).options(options));
                let persistent = count(&model, |r| r.options.persistent);
                let (requested, max, limit) = (size, MAX_SIZE, MAX_PERSISTENT);
                let expected = if size == 0 {
                    Err(ShmError::ZeroSize)
                } else if size > max {
                    Err(ShmError::RegionTooLarge { requested, max })
                } else if count(&model, |_| true) == MAX_REGIONS {
                    Err(ShmError::TooManySharedRegions { limit: MAX_REGIONS })
                } else if options.persistent && persistent == limit {
                    Err(ShmError::TooManyPersistentRegions { limit })
                } else {
                    Ok(())
                };
                prop_assert_eq!(result.clone().map(drop), expected, "create");
                if let Ok(handle) = result {
                    prop_assert!(model.iter().all(|(h, _)| *h != handle), "handle reused");
                    let region = ModelRegion {
                        bytes: vec![0; size as usize],
                        options,
                        mappings: BTreeSet::new(),
                        host_refs: 1,
                    };
                    model.push((handle, Some(region)));
                }
            }
            Op::Gc => {
                let report = m.garbage_collect().expect("enabled");
                let mut expected = Vec::new();
                let unreferenced = |r: &ModelRegion| {
                    !r.options.persistent && r.mappings.is_empty() && r.host_refs == 0
                };
                for (handle, region) in &mut model {
                    if region.as_ref().is_some_and(unreferenced) {
                        *region = None;
                        expected.push(*handle);
                    }
                }
                expected.sort_by_key(|h| h.index());
                prop_assert_eq!(report.regions_freed, expected);
            }
            Op::On(_, _) if model.is_empty() => continue,
            Op::On(pick, action) => {
                let slot = pick % model.len();
                let handle = model[slot].0;
                let mut buf = Vec::new();
                let result = apply(&m, handle, &action, &mut buf);
                let Some(region) = model[slot].1.as_mut() else {
                    // A freed handle stays dead whatever the operation.
                    prop_assert_eq!(result, Err(ShmError::RegionFreed(handle)));
                    continue;
                };
                let expected = match action {
                    Action::Map(c) => {
                        region.mappings.insert(c);
                        Ok(0)
                    }
                    Action::Unmap(c) if region.mappings.remove(&c) => Ok(0),
                    Action::Unmap(c) => Err(ShmError::MappingNotFound {
                        handle,
                        context: ctx(c),
                    }),
                    Action::Read { offset, len } => {
                        let reached = reach(&region.bytes, offset, len);
                        if let Ok(range) = &reached {
                            let mut want = region.bytes[range.clone()].to_vec();
                            want.resize(len, 0);
                            prop_assert_eq!(&buf, &want);
                        }
                        reached.map(|range| range.len())
                    }
                    Action::Write { offset, data } => {
                        if let Some(end) = offset.checked_add(data.len() as u64) {
                            let target = end.min(MAX_SIZE) as usize;
                            // Growth only when the write then lands bytes.
                            let lands = (offset as usize) < target;
                            if region.options.auto_grow && target > region.bytes.len() && lands {
                                region.bytes.resize(target, 0);
                            }
                        }
                        let reached = reach(&region.bytes, offset, data.len());
                        if let Ok(range) = &reached {
                            region.bytes[range.clone()].copy_from_slice(&data[..range.len()]);
                        }
                        reached.map(|range| range.len())
                    }
                    Action::Free => {
                        model[slot].1 = None;
                        Ok(0)
                    }
                    Action::Release => {
                        region.host_refs = region.host_refs.saturating_sub(1);
                        Ok(region.host_refs as usize)
                    }
                };
                prop_assert_eq!(result, expected);
            }
        }

        // After every step: contents and stats agree with the model.
        let mut total = 0u64;
        for (handle, region) in &model {
            if let Some(region) = region {
                let mut buf = vec![0; region.bytes.len()];
                prop_assert_eq!(m.read_region(*handle, 0, &mut buf), Ok(buf.len()));
                prop_assert_eq!(&buf, &region.bytes);
                total += region.bytes.len() as u64;
            }
        }
        let stats = m.get_memory_stats().expect("enabled");
        prop_assert_eq!(stats.active_regions, count(&model, |_| true));
        prop_assert_eq!(stats.total_bytes, total);
        prop_assert_eq!(m.metrics_snapshot().memory_bytes, total);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn host_operations_match_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
