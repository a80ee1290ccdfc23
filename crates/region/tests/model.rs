//! Random operation sequences against a plain model: a `Vec<u8>` per region,
//! a handle → region map, and the slot rule (lowest free index, next
//! generation). The registry must never diverge from it and never panic.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use proptest::prelude::*;
use shm_primitives::{Address, AllocFlags, ContextId, MapOptions, RegionHandle};
use shm_region::{RegionError, RegionSpec};

mod common;
use common::{registry_with, RegistryExt};

const MAX_REGIONS: usize = 6;
const MAX_SIZE: u64 = 20_000;

/// Mostly near the regions; one in nine `u64::MAX - k`: past any end, and
/// overflowing with most lengths.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..12_000,
        1 => (0u64..8).prop_map(|k| u64::MAX - k),
    ]
}

/// Every operation but `Create` works on `model.pick(pick)`, its first field.
#[derive(Clone, Debug)]
enum Op {
    /// `size`, `auto_grow`, `max_size`.
    Create(u64, bool, u64),
    Free(usize),
    BeginFree(usize),
    CancelFree(usize),
    FinishFree(usize),
    /// `pick`, context number, `MapOptions` bits.
    Map(usize, u8, u8),
    /// `pick`, context number.
    Unmap(usize, u8),
    /// `pick`, `offset`, `len`.
    Read(usize, u64, usize),
    /// `pick`, `offset`, `len`, first byte, `allow_grow`.
    Write(usize, u64, usize, u8, bool),
    /// `pick`, `new_size`.
    SetSize(usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let pick = any::<usize>();
    prop_oneof![
        3 => (1u64..9_000, any::<bool>(), 0u64..25_000).prop_map(|(s, g, m)| Op::Create(s, g, m)),
        1 => pick.prop_map(Op::Free),
        1 => pick.prop_map(Op::BeginFree),
        1 => pick.prop_map(Op::CancelFree),
        1 => pick.prop_map(Op::FinishFree),
        1 => (pick, 0u8..3, 0u8..16).prop_map(|(p, c, o)| Op::Map(p, c, o)),
        1 => (pick, 0u8..3).prop_map(|(p, c)| Op::Unmap(p, c)),
        4 => (pick, offset(), 0usize..5_000).prop_map(|(p, o, l)| Op::Read(p, o, l)),
        4 => (pick, offset(), 0usize..5_000, any::<u8>(), any::<bool>())
            .prop_map(|(p, o, l, f, g)| Op::Write(p, o, l, f, g)),
        1 => (pick, 0u64..22_000).prop_map(|(p, n)| Op::SetSize(p, n)),
    ]
}

#[derive(Clone, Debug, Default)]
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
        let never = [(1, 7), (40, 1), (u32::MAX, u32::MAX)];
        let known = never.into_iter().flat_map(|(i, g)| RegionHandle::new(i, g));
        Model {
            known: known.collect(),
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
    let len = len as u64;
    offset
        .checked_add(len)
        .ok_or(RegionError::OffsetOverflow { offset, len })
}

/// The part of `offset..offset + len` inside `size` bytes (empty past the end).
fn inside(size: usize, offset: u64, len: usize) -> Range<usize> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(size);
    start..start + len.min(size - start)
}

/// The size rule of creation and `set_size`: 1 to `max` bytes.
fn sized(requested: u64, max: u64) -> Result<usize, RegionError> {
    match requested {
        0 => Err(RegionError::ZeroSize),
        _ if requested > max => Err(RegionError::RegionTooLarge { requested, max }),
        _ => Ok(requested as usize),
    }
}

fn context(n: u8) -> ContextId {
    Address::repeat_byte(n + 1)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let registry = registry_with([16, 16, 24, 4], MAX_REGIONS, MAX_SIZE, MAX_REGIONS);
    let mut model = Model::new();

    for op in ops {
        match op {
            Op::Create(size, auto_grow, max_size) => {
                let mut flags = AllocFlags::empty();
                flags.set(AllocFlags::AUTO_GROW, auto_grow);
                let spec = RegionSpec::new(size, context(0)).options(flags.into());
                let got = registry.create(spec.max_size(max_size));
                let max_size = max_size.min(MAX_SIZE);
                let expected = sized(size, max_size).and_then(|size| {
                    if model.regions.len() >= MAX_REGIONS {
                        return Err(RegionError::TooManyRegions { limit: MAX_REGIONS });
                    }
                    let slot = model.free_slots.pop_first().unwrap_or(model.issued.len());
                    model.issued.resize(model.issued.len().max(slot + 1), 0);
                    model.issued[slot] += 1;
                    let handle = RegionHandle::new(slot as u32 + 1, model.issued[slot]).unwrap();
                    model.known.push(handle);
                    let region = ModelRegion {
                        bytes: vec![0; size],
                        auto_grow,
                        max_size,
                        ..ModelRegion::default()
                    };
                    model.regions.insert(handle, region);
                    Ok(handle)
                });
                prop_assert_eq!(got, expected);
            }
            Op::Free(pick) => {
                let h = model.pick(pick);
                let expected = model.live(h).map(|_| ());
                if expected.is_ok() {
                    model.release(h);
                }
                prop_assert_eq!(registry.free(h), expected);
            }
            Op::BeginFree(pick) => {
                let h = model.pick(pick);
                let expected = model.live(h).map(|r| r.pending_free = true);
                prop_assert_eq!(registry.begin_free(h), expected);
            }
            Op::CancelFree(pick) | Op::FinishFree(pick) => {
                let h = model.pick(pick);
                let pending = model.regions.get(&h).is_some_and(|r| r.pending_free);
                let expected = pending.then_some(()).ok_or(RegionError::SlotNotRemoved(h));
                let got = if matches!(op, Op::CancelFree(_)) {
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
            Op::Map(pick, c, options) => {
                let (h, cx) = (model.pick(pick), context(c));
                let options = MapOptions::from_bits_truncate(options);
                let expected = model.live(h).map(|r| r.mappings.insert(cx, options));
                prop_assert_eq!(registry.map(h, cx, options), expected);
            }
            Op::Unmap(pick, c) => {
                let h = model.pick(pick);
                let context = context(c);
                let expected = model.live(h).and_then(|r| {
                    let missing = RegionError::MappingNotFound { handle: h, context };
                    r.mappings.remove(&context).ok_or(missing)
                });
                prop_assert_eq!(registry.unmap(h, context), expected);
            }
            Op::Read(pick, offset, len) => {
                let h = model.pick(pick);
                let expected = model.live(h).and_then(|r| {
                    overflow(offset, len)?;
                    let mut out = vec![0u8; len];
                    let range = inside(r.bytes.len(), offset, len);
                    out[..range.len()].copy_from_slice(&r.bytes[range.clone()]);
                    Ok((range.len(), out))
                });
                let mut buf = vec![0xa5; len];
                let got = registry.read(h, offset, &mut buf).map(|n| (n, buf));
                prop_assert_eq!(got, expected);
            }
            Op::Write(pick, offset, len, fill, allow_grow) => {
                let h = model.pick(pick);
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
                    let range = inside(r.bytes.len(), offset, len);
                    let written = range.len();
                    r.bytes[range].copy_from_slice(&data[..written]);
                    Ok((written, old_size, r.bytes.len() as u64))
                });
                let got = registry.write(h, offset, &data, allow_grow).map(|o| {
                    assert!(o.growth_error.is_none(), "the pool is big enough");
                    (o.written, o.old_size, o.new_size)
                });
                prop_assert_eq!(got, expected);
            }
            Op::SetSize(pick, new_size) => {
                let h = model.pick(pick);
                let expected = model.live(h).and_then(|r| {
                    let current = r.bytes.len() as u64;
                    r.bytes.resize(sized(new_size, r.max_size)?, 0);
                    Ok(current)
                });
                prop_assert_eq!(registry.set_size(h, new_size), expected);
            }
        }

        // After every step: the same live regions, with the same bytes and mappings.
        let live = model.regions.iter().filter(|(_, r)| !r.pending_free);
        let live: Vec<RegionHandle> = live.map(|(h, _)| *h).collect();
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
