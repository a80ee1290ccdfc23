//! Random sequences of host operations against a simple model (a `Vec<u8>`
//! per region): results, contents, GC decisions and stats never diverge, and
//! nothing panics.

use std::collections::BTreeSet;

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
        persistent: bool,
        grow: bool,
    },
    Map {
        pick: usize,
        ctx: u8,
    },
    Unmap {
        pick: usize,
        ctx: u8,
    },
    Read {
        pick: usize,
        offset: u64,
        len: usize,
    },
    Write {
        pick: usize,
        offset: u64,
        data: Vec<u8>,
    },
    Free {
        pick: usize,
    },
    Release {
        pick: usize,
    },
    Gc,
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..MAX_SIZE + 512,
        1 => Just(u64::MAX - 3),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..=MAX_SIZE + 200, any::<bool>(), any::<bool>())
            .prop_map(|(size, persistent, grow)| Op::Create { size, persistent, grow }),
        2 => (any::<usize>(), 0u8..3).prop_map(|(pick, ctx)| Op::Map { pick, ctx }),
        2 => (any::<usize>(), 0u8..3).prop_map(|(pick, ctx)| Op::Unmap { pick, ctx }),
        4 => (any::<usize>(), offset(), 0usize..300)
            .prop_map(|(pick, offset, len)| Op::Read { pick, offset, len }),
        4 => (any::<usize>(), offset(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(pick, offset, data)| Op::Write { pick, offset, data }),
        1 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => Just(Op::Gc),
    ]
}

#[derive(Debug)]
struct ModelRegion {
    bytes: Vec<u8>,
    persistent: bool,
    grow: bool,
    mappings: BTreeSet<u8>,
    host_refs: u32,
}

impl ModelRegion {
    fn unreferenced(&self) -> bool {
        !self.persistent && self.mappings.is_empty() && self.host_refs == 0
    }
}

/// Every handle ever issued, with its region while it lives.
type Model = Vec<(RegionHandle, Option<ModelRegion>)>;

fn ctx(n: u8) -> Address {
    Address::repeat_byte(n + 1)
}

fn live(model: &Model) -> usize {
    model.iter().filter(|(_, r)| r.is_some()).count()
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
            Op::Create {
                size,
                persistent,
                grow,
            } => {
                let options = RegionOptions {
                    persistent,
                    auto_grow: grow,
                    ..RegionOptions::default()
                };
                let result = m.create_region(RegionRequest::new(size).options(options));
                let expected = if size == 0 {
                    Some(ShmError::ZeroSize)
                } else if size > MAX_SIZE {
                    Some(ShmError::RegionTooLarge {
                        requested: size,
                        max: MAX_SIZE,
                    })
                } else if live(&model) == MAX_REGIONS {
                    Some(ShmError::TooManySharedRegions { limit: MAX_REGIONS })
                } else if persistent
                    && model
                        .iter()
                        .filter(|(_, r)| r.as_ref().is_some_and(|r| r.persistent))
                        .count()
                        == MAX_PERSISTENT
                {
                    Some(ShmError::TooManyPersistentRegions {
                        limit: MAX_PERSISTENT,
                    })
                } else {
                    None
                };
                match (result, expected) {
                    (Ok(handle), None) => {
                        prop_assert!(model.iter().all(|(h, _)| *h != handle), "handle reused");
                        model.push((
                            handle,
                            Some(ModelRegion {
                                bytes: vec![0; size as usize],
                                persistent,
                                grow,
                                mappings: BTreeSet::new(),
                                host_refs: 1,
                            }),
                        ));
                    }
                    (Err(got), Some(want)) => prop_assert_eq!(got, want),
                    (got, want) => prop_assert!(false, "create: got {:?}, want {:?}", got, want),
                }
            }
            Op::Gc => {
                let report = m.garbage_collect().expect("enabled");
                let mut expected = Vec::new();
                for (handle, region) in &mut model {
                    if region.as_ref().is_some_and(ModelRegion::unreferenced) {
                        *region = None;
                        expected.push(*handle);
                    }
                }
                expected.sort_by_key(|h| h.index());
                prop_assert_eq!(report.regions_freed, expected);
            }
            op => {
                if model.is_empty() {
                    continue;
                }
                let pick = match &op {
                    Op::Map { pick, .. }
                    | Op::Unmap { pick, .. }
                    | Op::Read { pick, .. }
                    | Op::Write { pick, .. }
                    | Op::Free { pick }
                    | Op::Release { pick } => *pick,
                    _ => unreachable!("handled above"),
                };
                let slot = pick % model.len();
                let (handle, region) = &mut model[slot];
                let handle = *handle;
                let Some(region) = region.as_mut() else {
                    // A freed handle stays dead whatever the operation.
                    let freed = Err(ShmError::RegionFreed(handle));
                    let result = match op {
                        Op::Map { ctx: c, .. } => {
                            m.map_shared_region(handle, ctx(c), MapOptions::empty())
                        }
                        Op::Unmap { ctx: c, .. } => m.unmap_shared_region(handle, ctx(c)),
                        Op::Read { offset, len, .. } => {
                            m.read_region(handle, offset, &mut vec![0; len]).map(drop)
                        }
                        Op::Write { offset, data, .. } => {
                            m.write_region(handle, offset, &data).map(drop)
                        }
                        Op::Free { .. } => m.free_region(handle),
                        Op::Release { .. } => m.release_region(handle).map(drop),
                        _ => unreachable!("handled above"),
                    };
                    prop_assert_eq!(result, freed);
                    continue;
                };
                match op {
                    Op::Map { ctx: c, .. } => {
                        prop_assert_eq!(
                            m.map_shared_region(handle, ctx(c), MapOptions::empty()),
                            Ok(())
                        );
                        region.mappings.insert(c);
                    }
                    Op::Unmap { ctx: c, .. } => {
                        let result = m.unmap_shared_region(handle, ctx(c));
                        if region.mappings.remove(&c) {
                            prop_assert_eq!(result, Ok(()));
                        } else {
                            prop_assert_eq!(
                                result,
                                Err(ShmError::MappingNotFound {
                                    handle,
                                    context: ctx(c)
                                })
                            );
                        }
                    }
                    Op::Read { offset, len, .. } => {
                        let mut buf = vec![0xEE; len];
                        let result = m.read_region(handle, offset, &mut buf);
                        if offset.checked_add(len as u64).is_none() {
                            prop_assert_eq!(
                                result,
                                Err(ShmError::OffsetOverflow {
                                    offset,
                                    len: len as u64
                                })
                            );
                            continue;
                        }
                        let size = region.bytes.len() as u64;
                        let start = offset.min(size) as usize;
                        let n = (len as u64).min(size - start as u64) as usize;
                        let mut want = region.bytes[start..start + n].to_vec();
                        want.resize(len, 0);
                        prop_assert_eq!(result, Ok(n));
                        prop_assert_eq!(buf, want);
                    }
                    Op::Write { offset, data, .. } => {
                        let result = m.write_region(handle, offset, &data);
                        let Some(end) = offset.checked_add(data.len() as u64) else {
                            prop_assert_eq!(
                                result,
                                Err(ShmError::OffsetOverflow {
                                    offset,
                                    len: data.len() as u64
                                })
                            );
                            continue;
                        };
                        if region.grow && end > region.bytes.len() as u64 {
                            let target = end.min(MAX_SIZE) as usize;
                            // Growth only when the write then lands bytes.
                            if target > region.bytes.len() && (offset as usize) < target {
                                region.bytes.resize(target, 0);
                            }
                        }
                        let size = region.bytes.len() as u64;
                        let start = offset.min(size) as usize;
                        let n = (data.len() as u64).min(size - start as u64) as usize;
                        region.bytes[start..start + n].copy_from_slice(&data[..n]);
                        prop_assert_eq!(result, Ok(n));
                    }
                    Op::Free { .. } => {
                        prop_assert_eq!(m.free_region(handle), Ok(()));
                        model[slot].1 = None;
                    }
                    Op::Release { .. } => {
                        region.host_refs = region.host_refs.saturating_sub(1);
                        prop_assert_eq!(m.release_region(handle), Ok(region.host_refs));
                    }
                    _ => unreachable!("handled above"),
                }
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
        prop_assert_eq!(stats.active_regions, live(&model));
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
