//! The manager's host API against a reference model.
//!
//! The model is the one of `crates/manager/tests/model.rs` (a `Vec<u8>` per region
//! with its flags, mappings and host references; every handle ever issued stays
//! dead once freed), extended to the rest of the host API: named regions and
//! `find_region`, grants and revocations, `retain_region`, forged handles, eager
//! cleanup, and the presets' security levels (the host API checks no permissions,
//! so every level must behave the same). A proptest cannot be driven by libFuzzer,
//! so the model is written again here over an [`Unstructured`] input rather than
//! shared with that test file.
//!
//! After every step the region contents, the stats and the memory gauge must equal
//! the model's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use shm_manager::{Grant, RegionRequest, SharedMemoryConfig, SharedMemoryManager, ShmError};
use shm_primitives::{Address, MapOptions, Permissions, RegionHandle, RegionOptions};

const MAX_REGIONS: usize = 6;
const MAX_SIZE: u64 = 8192;
const NAMES: [&str; 3] = ["a", "b", "prices"];

#[derive(Debug)]
struct ModelRegion {
    name: Option<&'static str>,
    bytes: Vec<u8>,
    persistent: bool,
    grow: bool,
    max_size: u64,
    mappings: BTreeSet<u8>,
    grants: BTreeMap<u8, Grant>,
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

/// One input: a preset and a sequence of host calls; see the module docs.
pub fn host_model(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let preset = *u.choose(&["production", "development", "testing"])?;
    let eager = u.arbitrary()?;
    let config = SharedMemoryConfig {
        max_regions: MAX_REGIONS,
        max_persistent_regions: MAX_REGIONS,
        max_region_size: MAX_SIZE,
        // Enough 64 KiB blocks that creation and growth never exhaust the pool.
        pool_blocks: [16, 16, 16, 0],
        eager_cleanup: eager,
        ..preset.parse().expect("a preset")
    };
    let m = SharedMemoryManager::new(config).expect("valid config");
    let mut model: Model = Vec::new();
    while !u.is_empty() {
        step(u, &m, &mut model, eager)?;
        check(&m, &model);
    }
    Ok(())
}

fn step(
    u: &mut Unstructured<'_>,
    m: &Arc<SharedMemoryManager>,
    model: &mut Model,
    eager: bool,
) -> Result<()> {
    let op = u.int_in_range(0u8..=13)?;
    if op <= 1 {
        return create(u, m, model);
    }
    if op == 2 {
        let report = m.garbage_collect().expect("enabled");
        let mut expected = Vec::new();
        for (handle, region) in model.iter_mut() {
            if region.as_ref().is_some_and(ModelRegion::unreferenced) {
                *region = None;
                expected.push(*handle);
            }
        }
        expected.sort_by_key(|h| h.index());
        assert_eq!(report.regions_freed, expected, "gc");
        return Ok(());
    }
    if op == 3 {
        let name = *u.choose(&NAMES)?;
        let want = model
            .iter()
            .find(|(_, r)| r.as_ref().is_some_and(|r| r.name == Some(name)))
            .map(|(h, _)| *h);
        match (m.find_region(name), want) {
            (Ok(got), Some(want)) => assert_eq!(got, want, "find {name}"),
            (Err(ShmError::NameNotFound(_)), None) => {}
            (got, want) => panic!("find {name}: got {got:?}, want {want:?}"),
        }
        return Ok(());
    }
    if model.is_empty() {
        return Ok(());
    }
    let slot = u.choose_index(model.len())?;
    let handle = model[slot].0;
    if op == 4 {
        // A forged handle next to a real one: another generation or a far index.
        let forged = if u.arbitrary()? {
            RegionHandle::new(handle.index(), handle.generation().wrapping_add(1).max(1))
        } else {
            RegionHandle::new(u.int_in_range(100..=u32::MAX)?, handle.generation())
        }
        .expect("non-zero");
        if model.iter().any(|(h, _)| *h == forged) {
            return Ok(());
        }
        assert!(
            m.read_region(forged, 0, &mut [0; 4]).is_err(),
            "forged read"
        );
        assert!(m.write_region(forged, 0, &[1; 4]).is_err(), "forged write");
        assert!(m.free_region(forged).is_err(), "forged free");
        assert!(m.region_info(forged).is_err(), "forged info");
        return Ok(());
    }
    let c = u.int_in_range(0u8..=2)?;
    let Some(region) = model[slot].1.as_mut() else {
        // A freed handle stays dead whatever the operation.
        let result = match op {
            5 => m.map_shared_region(handle, ctx(c), MapOptions::empty()),
            6 => m.unmap_shared_region(handle, ctx(c)),
            7 => m.read_region(handle, 0, &mut [0; 8]).map(drop),
            8 => m.write_region(handle, 0, &[7; 8]).map(drop),
            9 => m.free_region(handle),
            10 => m.release_region(handle).map(drop),
            11 => m.retain_region(handle).map(drop),
            12 => m
                .grant(handle, ctx(c), Grant::new(Permissions::read_only()))
                .map(drop),
            _ => m.revoke(handle, ctx(c)).map(drop),
        };
        assert_eq!(
            result,
            Err(ShmError::RegionFreed(handle)),
            "op {op} on a freed handle"
        );
        return Ok(());
    };
    match op {
        5 => {
            let options = MapOptions::from_bits_truncate(u.int_in_range(0..=15)?);
            assert_eq!(m.map_shared_region(handle, ctx(c), options), Ok(()));
            region.mappings.insert(c);
        }
        6 => {
            let result = m.unmap_shared_region(handle, ctx(c));
            if region.mappings.remove(&c) {
                assert_eq!(result, Ok(()));
                if eager && region.unreferenced() {
                    model[slot].1 = None;
                }
            } else {
                assert_eq!(
                    result,
                    Err(ShmError::MappingNotFound {
                        handle,
                        context: ctx(c)
                    })
                );
            }
        }
        7 => {
            let offset = offset(u)?;
            let len = u.int_in_range(0usize..=300)?;
            let mut buf = vec![0xEE; len];
            let result = m.read_region(handle, offset, &mut buf);
            if offset.checked_add(len as u64).is_none() {
                assert_eq!(
                    result,
                    Err(ShmError::OffsetOverflow {
                        offset,
                        len: len as u64
                    })
                );
                return Ok(());
            }
            let size = region.bytes.len() as u64;
            let start = offset.min(size) as usize;
            let n = (len as u64).min(size - start as u64) as usize;
            let mut want = region.bytes[start..start + n].to_vec();
            want.resize(len, 0);
            assert_eq!(result, Ok(n), "read");
            assert_eq!(buf, want, "read bytes");
        }
        8 => {
            let offset = offset(u)?;
            let data: Vec<u8> = {
                let len = u.int_in_range(0usize..=300)?;
                let fill: u8 = u.arbitrary()?;
                (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
            };
            let result = m.write_region(handle, offset, &data);
            let Some(end) = offset.checked_add(data.len() as u64) else {
                assert_eq!(
                    result,
                    Err(ShmError::OffsetOverflow {
                        offset,
                        len: data.len() as u64
                    })
                );
                return Ok(());
            };
            if region.grow && end > region.bytes.len() as u64 {
                let target = end.min(region.max_size) as usize;
                // Growth only when the write then lands bytes.
                if target > region.bytes.len() && (offset as usize) < target {
                    region.bytes.resize(target, 0);
                }
            }
            let size = region.bytes.len() as u64;
            let start = offset.min(size) as usize;
            let n = (data.len() as u64).min(size - start as u64) as usize;
            region.bytes[start..start + n].copy_from_slice(&data[..n]);
            assert_eq!(result, Ok(n), "write");
        }
        9 => {
            assert_eq!(m.free_region(handle), Ok(()));
            model[slot].1 = None;
        }
        10 => {
            region.host_refs = region.host_refs.saturating_sub(1);
            assert_eq!(m.release_region(handle), Ok(region.host_refs), "release");
            if eager && region.unreferenced() {
                model[slot].1 = None;
            }
        }
        11 => {
            region.host_refs += 1;
            assert_eq!(m.retain_region(handle), Ok(region.host_refs), "retain");
        }
        12 => {
            let grant = Grant {
                permissions: Permissions::from_bits_truncate(u.int_in_range(0..=7)?),
                can_free: u.arbitrary()?,
            };
            let before = region.grants.insert(c, grant);
            assert_eq!(m.grant(handle, ctx(c), grant), Ok(before), "grant");
        }
        _ => {
            let before = region.grants.remove(&c);
            assert_eq!(m.revoke(handle, ctx(c)), Ok(before), "revoke");
        }
    }
    Ok(())
}

fn offset(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(if u.ratio(1, 9)? {
        u64::MAX - u.int_in_range(0..=300)?
    } else {
        u.int_in_range(0..=MAX_SIZE + 512)?
    })
}

fn create(u: &mut Unstructured<'_>, m: &Arc<SharedMemoryManager>, model: &mut Model) -> Result<()> {
    let size = u.int_in_range(0..=MAX_SIZE + 200)?;
    let persistent = u.arbitrary()?;
    let grow = u.arbitrary()?;
    let name = if u.ratio(1, 3)? {
        Some(*u.choose(&NAMES)?)
    } else {
        None
    };
    let limit = if u.ratio(1, 4)? {
        Some(u.int_in_range(1..=MAX_SIZE + 100)?)
    } else {
        None
    };
    let options = RegionOptions {
        persistent,
        auto_grow: grow,
        ..RegionOptions::default()
    };
    let mut request = RegionRequest::new(size).options(options);
    if let Some(name) = name {
        request = request.named(name);
    }
    if let Some(limit) = limit {
        request = request.max_size(limit);
    }
    let max_size = limit.unwrap_or(MAX_SIZE).min(MAX_SIZE);
    let result = m.create_region(request);
    let name_taken = name.is_some_and(|n| {
        model
            .iter()
            .any(|(_, r)| r.as_ref().is_some_and(|r| r.name == Some(n)))
    });
    let expected = if size == 0 {
        Some(ShmError::ZeroSize)
    } else if size > max_size {
        Some(ShmError::RegionTooLarge {
            requested: size,
            max: max_size,
        })
    } else if live(model) == MAX_REGIONS {
        Some(ShmError::TooManySharedRegions { limit: MAX_REGIONS })
    } else if name_taken {
        Some(ShmError::NameTaken(name.expect("taken").to_string()))
    } else {
        None
    };
    match (result, expected) {
        (Ok(handle), None) => {
            assert!(model.iter().all(|(h, _)| *h != handle), "handle reused");
            model.push((
                handle,
                Some(ModelRegion {
                    name,
                    bytes: vec![0; size as usize],
                    persistent,
                    grow,
                    max_size,
                    mappings: BTreeSet::new(),
                    grants: BTreeMap::new(),
                    host_refs: 1,
                }),
            ));
        }
        (Err(got), Some(want)) => assert_eq!(got, want, "create"),
        (got, want) => panic!("create: got {got:?}, want {want:?}"),
    }
    Ok(())
}

/// Contents, metadata and stats agree with the model.
fn check(m: &Arc<SharedMemoryManager>, model: &Model) {
    let mut total = 0u64;
    for (handle, region) in model {
        let Some(region) = region else { continue };
        let mut buf = vec![0; region.bytes.len()];
        assert_eq!(m.read_region(*handle, 0, &mut buf), Ok(buf.len()));
        assert_eq!(&buf, &region.bytes, "{handle:?}: contents");
        let info = m.region_info(*handle).expect("live");
        let meta = &info.meta;
        assert_eq!(meta.size(), region.bytes.len() as u64);
        assert_eq!(meta.max_size(), region.max_size, "{handle:?}: max size");
        assert_eq!(meta.name(), region.name);
        assert_eq!(meta.host_refs(), region.host_refs);
        let mapped: BTreeSet<Address> = meta.mappings().keys().copied().collect();
        let want: BTreeSet<Address> = region.mappings.iter().map(|&c| ctx(c)).collect();
        assert_eq!(mapped, want, "{handle:?}: mappings");
        let grants: BTreeMap<Address, Grant> = meta.grants().clone().into_iter().collect();
        let want: BTreeMap<Address, Grant> =
            region.grants.iter().map(|(&c, &g)| (ctx(c), g)).collect();
        assert_eq!(grants, want, "{handle:?}: grants");
        total += region.bytes.len() as u64;
    }
    let stats = m.get_memory_stats().expect("enabled");
    assert_eq!(stats.active_regions, live(model));
    assert_eq!(stats.total_bytes, total);
    assert_eq!(m.metrics_snapshot().memory_bytes, total, "memory gauge");
    assert_eq!(m.list_regions().expect("enabled").len(), live(model));
}
