//! Random operation sequences against a plain model: a `Vec<u8>` per region,
//! a handle → region map, and the slot rule (lowest free index, next
//! generation). The registry must never diverge from it and never panic.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use shm_primitives::{Address, ContextId, MapOptions, RegionHandle, RegionOptions};
use shm_region::{RegionError, RegionSpec};

mod common;
use common::{registry_with, RegistryExt};

const MAX_REGIONS: usize = 6;
const MAX_SIZE: u64 = 20_000;

#[derive(Clone, Debug)]
enum Offset {
    Near(u64),
    /// `u64::MAX - k`: past any end, and overflowing with most lengths.
    Top(u64),
}

impl Offset {
    fn value(&self) -> u64 {
        match *self {
            Offset::Near(v) => v,
            Offset::Top(k) => u64::MAX - k,
        }
    }
}

fn offset() -> impl Strategy<Value = Offset> {
    prop_oneof![
        8 => (0u64..12_000).prop_map(Offset::Near),
        1 => (0u64..8).prop_map(Offset::Top),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        size: u64,
        auto_grow: bool,
        max_size: u64,
    },
    Free {
        pick: usize,
    },
    BeginFree {
        pick: usize,
    },
    CancelFree {
        pick: usize,
    },
    FinishFree {
        pick: usize,
    },
    Map {
        pick: usize,
        context: u8,
        options: u8,
    },
    Unmap {
        pick: usize,
        context: u8,
    },
    Read {
        pick: usize,
        offset: Offset,
        len: usize,
    },
    Write {
        pick: usize,
        offset: Offset,
        len: usize,
        fill: u8,
        allow_grow: bool,
    },
    SetSize {
        pick: usize,
        new_size: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let pick = any::<usize>();
    prop_oneof![
        3 => (1u64..9_000, any::<bool>(), 0u64..25_000)
            .prop_map(|(size, auto_grow, max_size)| Op::Create { size, auto_grow, max_size }),
        1 => pick.prop_map(|pick| Op::Free { pick }),
        1 => pick.prop_map(|pick| Op::BeginFree { pick }),
        1 => pick.prop_map(|pick| Op::CancelFree { pick }),
        1 => pick.prop_map(|pick| Op::FinishFree { pick }),
        1 => (pick, 0u8..3, 0u8..16).prop_map(|(pick, context, options)| Op::Map { pick, context, options }),
        1 => (pick, 0u8..3).prop_map(|(pick, context)| Op::Unmap { pick, context }),
        4 => (pick, offset(), 0usize..5_000).prop_map(|(pick, offset, len)| Op::Read { pick, offset, len }),
        4 => (pick, offset(), 0usize..5_000, any::<u8>(), any::<bool>())
            .prop_map(|(pick, offset, len, fill, allow_grow)| Op::Write { pick, offset, len, fill, allow_grow }),
        1 => (pick, 0u64..22_000).prop_map(|(pick, new_size)| Op::SetSize { pick, new_size }),
    ]
}

#[derive(Clone, Debug)]
struct ModelRegion {
    bytes: Vec<u8>,
    auto_grow: bool,
    max_size: u64,
    mappings: BTreeMap<ContextId, MapOptions>,
    pending_free: bool,
}

#[derive(Default)]
struct Model {
    regions: BTreeMap<RegionHandle, ModelRegion>,
    /// Per slot (0-based): highest generation issued.
    issued: Vec<u32>,
    free_slots: BTreeSet<usize>,
    /// Every handle ever issued, plus some that never were.
    known: Vec<RegionHandle>,
}

impl Model {
    fn new() -> Self {
        let never = [
            RegionHandle::new(1, 7),
            RegionHandle::new(40, 1),
            RegionHandle::new(u32::MAX, u32::MAX),
        ];
        Model {
            known: never.into_iter().flatten().collect(),
            ..Model::default()
        }
    }

    fn pick(&self, pick: usize) -> RegionHandle {
        self.known[pick % self.known.len()]
    }

    /// The error the registry must give for a handle that is not live.
    fn dead(&self, handle: RegionHandle) -> RegionError {
        let slot = (handle.index() - 1) as usize;
        match self.issued.get(slot) {
            Some(&issued) if handle.generation() <= issued => RegionError::RegionFreed(handle),
            _ => RegionError::InvalidRegionHandle(handle),
        }
    }

    fn live(&mut self, handle: RegionHandle) -> Result<&mut ModelRegion, RegionError> {
        let dead = self.dead(handle);
        match self.regions.get_mut(&handle) {
            Some(region) if !region.pending_free => Ok(region),
            _ => Err(dead),
        }
    }

    fn release(&mut self, handle: RegionHandle) {
        self.regions.remove(&handle);
        self.free_slots.insert((handle.index() - 1) as usize);
    }
}

fn overflow(offset: u64, len: usize) -> Result<u64, RegionError> {
    offset
        .checked_add(len as u64)
        .ok_or(RegionError::OffsetOverflow {
            offset,
            len: len as u64,
        })
}

fn model_read(bytes: &[u8], offset: u64, len: usize) -> (usize, Vec<u8>) {
    let mut out = vec![0u8; len];
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    if start >= bytes.len() {
        return (0, out);
    }
    let n = len.min(bytes.len() - start);
    out[..n].copy_from_slice(&bytes[start..start + n]);
    (n, out)
}

fn model_write(bytes: &mut [u8], offset: u64, data: &[u8]) -> usize {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    if start >= bytes.len() {
        return 0;
    }
    let n = data.len().min(bytes.len() - start);
    bytes[start..start + n].copy_from_slice(&data[..n]);
    n
}

fn context(n: u8) -> ContextId {
    Address::repeat_byte(n + 1)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let registry = registry_with([16, 16, 24, 4], MAX_REGIONS, MAX_SIZE);
    let mut model = Model::new();

    for op in ops {
        match op {
            Op::Create {
                size,
                auto_grow,
                max_size,
            } => {
                let options = RegionOptions {
                    auto_grow,
                    ..RegionOptions::default()
                };
                let got = registry.create(
                    RegionSpec::new(size, context(0))
                        .options(options)
                        .max_size(max_size),
                );
                let max_size = max_size.min(MAX_SIZE);
                let expected = if size > max_size {
                    Err(RegionError::RegionTooLarge {
                        requested: size,
                        max: max_size,
                    })
                } else if model.regions.len() >= MAX_REGIONS {
                    Err(RegionError::TooManyRegions { limit: MAX_REGIONS })
                } else {
                    let slot = model.free_slots.pop_first().unwrap_or(model.issued.len());
                    if slot == model.issued.len() {
                        model.issued.push(0);
                    }
                    model.issued[slot] += 1;
                    let handle = RegionHandle::new(slot as u32 + 1, model.issued[slot]).unwrap();
                    model.known.push(handle);
                    let region = ModelRegion {
                        bytes: vec![0; size as usize],
                        auto_grow,
                        max_size,
                        mappings: BTreeMap::new(),
                        pending_free: false,
                    };
                    model.regions.insert(handle, region);
                    Ok(handle)
                };
                prop_assert_eq!(got, expected);
            }
            Op::Free { pick } => {
                let h = model.pick(pick);
                let expected = model.live(h).map(|_| ());
                if expected.is_ok() {
                    model.release(h);
                }
                prop_assert_eq!(registry.free(h), expected);
            }
            Op::BeginFree { pick } => {
                let h = model.pick(pick);
                let expected = model.live(h).map(|r| r.pending_free = true);
                prop_assert_eq!(registry.begin_free(h), expected);
            }
            Op::CancelFree { pick } | Op::FinishFree { pick } => {
                let h = model.pick(pick);
                let pending = model.regions.get(&h).is_some_and(|r| r.pending_free);
                let expected = if pending {
                    Ok(())
                } else {
                    Err(RegionError::SlotNotRemoved(h))
                };
                let got = if matches!(op, Op::CancelFree { .. }) {
                    if pending {
                        model.regions.get_mut(&h).unwrap().pending_free = false;
                    }
                    registry.cancel_free(h)
                } else {
                    if pending {
                        model.release(h);
                    }
                    registry.finish_free(h)
                };
                prop_assert_eq!(got, expected);
            }
            Op::Map {
                pick,
                context: c,
                options,
            } => {
                let h = model.pick(pick);
                let options = MapOptions::from_bits_truncate(options);
                let expected = model
                    .live(h)
                    .map(|r| r.mappings.insert(context(c), options));
                prop_assert_eq!(registry.map(h, context(c), options), expected);
            }
            Op::Unmap { pick, context: c } => {
                let h = model.pick(pick);
                let expected = model.live(h).and_then(|r| {
                    r.mappings
                        .remove(&context(c))
                        .ok_or(RegionError::MappingNotFound {
                            handle: h,
                            context: context(c),
                        })
                });
                prop_assert_eq!(registry.unmap(h, context(c)), expected);
            }
            Op::Read { pick, offset, len } => {
                let h = model.pick(pick);
                let offset = offset.value();
                let expected = model.live(h).and_then(|r| {
                    overflow(offset, len)?;
                    Ok(model_read(&r.bytes, offset, len))
                });
                let mut buf = vec![0xa5; len];
                let got = registry.read(h, offset, &mut buf).map(|n| (n, buf));
                prop_assert_eq!(got, expected);
            }
            Op::Write {
                pick,
                offset,
                len,
                fill,
                allow_grow,
            } => {
                let h = model.pick(pick);
                let offset = offset.value();
                let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                let expected = model.live(h).and_then(|r| {
                    let end = overflow(offset, len)?;
                    let old_size = r.bytes.len() as u64;
                    if allow_grow && r.auto_grow && end > old_size {
                        let target = end.min(r.max_size);
                        // Growth only when the write then lands bytes.
                        if target > old_size && offset < target {
                            r.bytes.resize(target as usize, 0);
                        }
                    }
                    let written = model_write(&mut r.bytes, offset, &data);
                    Ok((written, old_size, r.bytes.len() as u64))
                });
                let got = registry.write(h, offset, &data, allow_grow).map(|o| {
                    assert!(o.growth_error.is_none(), "the pool is big enough");
                    (o.written, o.old_size, o.new_size)
                });
                prop_assert_eq!(got, expected);
            }
            Op::SetSize { pick, new_size } => {
                let h = model.pick(pick);
                let expected = model.live(h).and_then(|r| {
                    let current = r.bytes.len() as u64;
                    if new_size == 0 {
                        Err(RegionError::ZeroSize)
                    } else if new_size > r.max_size {
                        Err(RegionError::RegionTooLarge {
                            requested: new_size,
                            max: r.max_size,
                        })
                    } else {
                        r.bytes.resize(new_size as usize, 0);
                        Ok(current)
                    }
                });
                prop_assert_eq!(registry.set_size(h, new_size), expected);
            }
        }

        // After every step: the same live regions, with the same bytes and mappings.
        let live: Vec<RegionHandle> = model
            .regions
            .iter()
            .filter(|(_, r)| !r.pending_free)
            .map(|(h, _)| *h)
            .collect();
        let mut listed = registry.handles();
        listed.sort();
        prop_assert_eq!(&listed, &live);
        for (handle, region) in &model.regions {
            let guard = registry.lock_read(*handle);
            if region.pending_free {
                prop_assert_eq!(guard.err(), Some(RegionError::RegionFreed(*handle)));
                continue;
            }
            let guard = guard.expect("live");
            prop_assert_eq!(guard.bytes(), &region.bytes[..]);
            prop_assert_eq!(guard.meta().mappings(), &region.mappings);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn registry_matches_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
