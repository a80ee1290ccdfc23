//! Unit tests of the registry and region guards.

use shm_pool::{BlockPool, PoolConfig, PoolError, SizeClass};
use shm_primitives::{
    Address, ContextId, MapOptions, Permissions, RegionHandle, RegionOptions, PAGE_SIZE,
};

use crate::{Grant, Liveness, RegionError, RegionRegistry, RegionSpec, RegistryConfig};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{registry_with, RegistryExt};

const OWNER: ContextId = Address::repeat_byte(1);
const OTHER: ContextId = Address::repeat_byte(2);

fn registry() -> RegionRegistry {
    registry_with([16, 8, 4, 2], 16, 4 << 20)
}

fn auto_grow() -> RegionOptions {
    RegionOptions {
        auto_grow: true,
        ..RegionOptions::default()
    }
}

fn contents(registry: &RegionRegistry, handle: RegionHandle) -> Vec<u8> {
    registry.lock_read(handle).unwrap().bytes().to_vec()
}

#[test]
fn new_region_is_zero_and_sized() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(100, OWNER)).unwrap();
    assert_eq!(contents(&registry, h), vec![0; 100]);
    let guard = registry.lock_read(h).unwrap();
    assert_eq!(guard.size(), 100);
    assert_eq!(guard.meta().owner(), OWNER);
    assert_eq!(guard.meta().handle(), h);
}

#[test]
fn read_past_end_is_zero_and_counts_region_bytes() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(10, OWNER)).unwrap();
    registry.write(h, 0, b"0123456789", false).unwrap();
    let mut buf = [0xee; 6];
    assert_eq!(registry.read(h, 7, &mut buf).unwrap(), 3);
    assert_eq!(&buf, b"789\0\0\0");
    let mut buf = [0xee; 4];
    assert_eq!(registry.read(h, 10, &mut buf).unwrap(), 0);
    assert_eq!(buf, [0; 4]);
    assert_eq!(registry.read(h, u64::MAX - 4, &mut buf).unwrap(), 0);
}

#[test]
fn write_past_end_writes_what_fits() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(10, OWNER)).unwrap();
    let outcome = registry.write(h, 8, b"abcd", true).unwrap(); // not auto-grow
    assert_eq!(
        (outcome.written, outcome.old_size, outcome.new_size),
        (2, 10, 10)
    );
    assert_eq!(&contents(&registry, h)[8..], b"ab");
    assert_eq!(registry.write(h, 10, b"x", false).unwrap().written, 0);
}

#[test]
fn offsets_that_overflow_are_typed_errors() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(10, OWNER)).unwrap();
    let overflow = RegionError::OffsetOverflow {
        offset: u64::MAX,
        len: 2,
    };
    assert_eq!(
        registry.read(h, u64::MAX, &mut [0; 2]),
        Err(overflow.clone())
    );
    assert_eq!(registry.write(h, u64::MAX, &[1, 2], true), Err(overflow));
    // Exactly 2^64 - 1 is still addressable (and past the end).
    assert_eq!(registry.read(h, u64::MAX - 2, &mut [0; 2]), Ok(0));
    assert_eq!(
        registry.read_page(h, u64::MAX, &mut [0; PAGE_SIZE]),
        Err(RegionError::PageOutOfRange(u64::MAX))
    );
    assert_eq!(contents(&registry, h), vec![0; 10]);
}

#[test]
fn create_refusals() {
    let registry = registry_with([4, 2, 1, 1], 2, 1 << 20);
    assert_eq!(
        registry.create(RegionSpec::new(0, OWNER)),
        Err(RegionError::ZeroSize)
    );
    assert_eq!(
        registry.create(RegionSpec::new((1 << 20) + 1, OWNER)),
        Err(RegionError::RegionTooLarge {
            requested: (1 << 20) + 1,
            max: 1 << 20
        })
    );
    assert_eq!(
        registry.create(RegionSpec::new(200, OWNER).max_size(100)),
        Err(RegionError::RegionTooLarge {
            requested: 200,
            max: 100
        })
    );
    let a = registry
        .create(RegionSpec::new(1, OWNER).named("a"))
        .unwrap();
    assert_eq!(
        registry.create(RegionSpec::new(1, OWNER).named("a")),
        Err(RegionError::NameTaken("a".into()))
    );
    registry.create(RegionSpec::new(1, OWNER)).unwrap();
    assert_eq!(
        registry.create(RegionSpec::new(1, OWNER)),
        Err(RegionError::TooManyRegions { limit: 2 })
    );
    registry.free(a).unwrap();
    registry
        .create(RegionSpec::new(1, OWNER).named("a"))
        .unwrap();
    assert_eq!(registry.len(), 2);
}

#[test]
fn pool_exhaustion_is_reported_and_leaves_no_slot() {
    let registry = registry_with([1, 0, 0, 0], 8, 1 << 20);
    registry.create(RegionSpec::new(64, OWNER)).unwrap();
    let err = registry.create(RegionSpec::new(64, OWNER)).unwrap_err();
    assert!(
        matches!(err, RegionError::Pool(PoolError::PoolExhausted { .. })),
        "{err:?}"
    );
    assert_eq!(registry.len(), 1);
}

#[test]
fn lookup_by_name() {
    let registry = registry();
    let h = registry
        .create(RegionSpec::new(8, OWNER).named("orders"))
        .unwrap();
    assert_eq!(registry.lookup("orders"), Ok(h));
    assert_eq!(
        registry.lookup("nope"),
        Err(RegionError::NameNotFound("nope".into()))
    );
    assert_eq!(registry.lock_read(h).unwrap().meta().name(), Some("orders"));
    registry.free(h).unwrap();
    assert_eq!(
        registry.lookup("orders"),
        Err(RegionError::NameNotFound("orders".into()))
    );
}

#[test]
fn handles_take_lowest_free_index_and_never_repeat() {
    let registry = registry();
    let a = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    let b = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    let c = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    assert_eq!(
        [a, b, c].map(|h| (h.index(), h.generation())),
        [(1, 1), (2, 1), (3, 1)]
    );
    registry.free(c).unwrap();
    registry.free(a).unwrap();
    let d = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    let e = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    assert_eq!(
        [d, e].map(|h| (h.index(), h.generation())),
        [(1, 2), (3, 2)]
    );
    assert_eq!(registry.handles(), vec![d, b, e]);
}

#[test]
fn freed_and_invalid_handles_are_told_apart() {
    let registry = registry();
    let a = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    registry.free(a).unwrap();
    let reused = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    assert_eq!(reused.index(), a.index());
    assert_eq!(registry.check(a).unwrap_err(), RegionError::RegionFreed(a));
    let never_issued = RegionHandle::new(a.index(), 3).unwrap();
    assert_eq!(
        registry.check(never_issued).unwrap_err(),
        RegionError::InvalidRegionHandle(never_issued)
    );
    let no_slot = RegionHandle::new(99, 1).unwrap();
    assert_eq!(
        registry.check(no_slot).unwrap_err(),
        RegionError::InvalidRegionHandle(no_slot)
    );
    assert_eq!(registry.free(a), Err(RegionError::RegionFreed(a)));
    assert!(registry.check(reused).is_ok());
}

#[test]
fn slot_is_retired_when_its_generation_would_wrap() {
    let registry = registry();
    let first = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    registry.free(first).unwrap();
    registry.force_issued(1, u32::MAX - 1);
    let last = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    assert_eq!((last.index(), last.generation()), (1, u32::MAX));
    registry.free(last).unwrap();
    let next = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    assert_eq!(
        (next.index(), next.generation()),
        (2, 1),
        "slot 1 is retired"
    );
    assert_eq!(
        registry.check(last).unwrap_err(),
        RegionError::RegionFreed(last)
    );
    assert_eq!(
        registry.check(first).unwrap_err(),
        RegionError::RegionFreed(first)
    );
    registry.free(next).unwrap();
    assert_eq!(
        registry.create(RegionSpec::new(8, OWNER)).unwrap().index(),
        2
    );
}

#[test]
fn free_waits_for_a_reader_then_every_access_sees_it() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    registry.write(h, 0, b"visible!", false).unwrap();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let guard = registry.lock_read(h).unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            // The free cannot have happened under a held guard.
            guard.bytes().to_vec()
        });
        locked_rx.recv().unwrap();
        registry.free(h).unwrap();
        assert_eq!(reader.join().unwrap(), b"visible!");
    });
    assert_eq!(
        registry.lock_read(h).err(),
        Some(RegionError::RegionFreed(h))
    );
    assert_eq!(
        registry.lock_write(h).err(),
        Some(RegionError::RegionFreed(h))
    );
    assert_eq!(registry.info(h).err(), Some(RegionError::RegionFreed(h)));
}

#[test]
fn busy_regions_time_out() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    let writer = registry.lock_write(h).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let wait = std::time::Duration::from_millis(10);
            assert!(registry.try_lock_read_for(h, wait).unwrap().is_none());
            assert!(registry.try_lock_write_for(h, wait).unwrap().is_none());
        });
    });
    drop(writer);
    let wait = std::time::Duration::from_millis(10);
    assert_eq!(
        registry
            .try_lock_read_for(h, wait)
            .unwrap()
            .map(|g| g.size()),
        Some(8)
    );
}

#[test]
fn free_returns_the_block_to_the_pool() {
    let registry = registry();
    let allocated = |r: &RegionRegistry| r.pool().stats().class(SizeClass::K4).allocated;
    let h = registry.create(RegionSpec::new(3000, OWNER)).unwrap();
    assert_eq!(allocated(&registry), 1);
    registry.free(h).unwrap();
    assert_eq!(allocated(&registry), 0);
}

#[test]
fn auto_grow_grows_up_to_max_size() {
    let registry = registry();
    let h = registry
        .create(
            RegionSpec::new(10, OWNER)
                .options(auto_grow())
                .max_size(5000),
        )
        .unwrap();
    registry.write(h, 0, b"keep", false).unwrap();
    // Not allowed by the caller: writes what fits.
    assert_eq!(registry.write(h, 8, b"abcd", false).unwrap().written, 2);
    let outcome = registry.write(h, 100, b"xyz", true).unwrap();
    assert_eq!(
        (outcome.written, outcome.old_size, outcome.new_size),
        (3, 10, 103)
    );
    assert!(outcome.grew() && outcome.growth_error.is_none());
    // Starting past max_size, or writing nothing: no growth.
    for (offset, len) in [(6000, 10), (200, 0)] {
        let outcome = registry.write(h, offset, &[1; 10][..len], true).unwrap();
        assert_eq!((outcome.written, outcome.new_size), (0, 103));
    }
    // Past max_size: grows to max_size and writes what fits.
    let outcome = registry.write(h, 4998, b"12345", true).unwrap();
    assert_eq!((outcome.written, outcome.new_size), (2, 5000));
    let bytes = contents(&registry, h);
    assert_eq!(
        (&bytes[..4], &bytes[8..10], &bytes[100..103], &bytes[4998..]),
        (&b"keep"[..], &b"ab"[..], &b"xyz"[..], &b"12"[..])
    );
    assert!(bytes[10..100]
        .iter()
        .chain(&bytes[103..4998])
        .all(|&b| b == 0));
}

#[test]
fn auto_grow_the_pool_refuses_writes_what_fits() {
    let registry = registry_with([2, 1, 0, 0], 8, 1 << 20);
    let h = registry
        .create(RegionSpec::new(60, OWNER).options(auto_grow()))
        .unwrap();
    let outcome = registry.write(h, 58, &[7; 10_000], true).unwrap();
    assert_eq!((outcome.written, outcome.new_size), (2, 60));
    assert!(
        matches!(outcome.growth_error, Some(PoolError::PoolExhausted { .. })),
        "{outcome:?}"
    );
}

#[test]
fn growth_moves_to_bigger_blocks_and_keeps_bytes() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(64, OWNER)).unwrap();
    registry.write(h, 0, &[9; 64], false).unwrap();
    assert_eq!(registry.set_size(h, 100_000), Ok(64));
    assert_eq!(registry.set_size(h, 2 << 20), Ok(100_000)); // a large allocation
    assert_eq!(registry.lock_read(h).unwrap().meta().size(), 2 << 20);
    assert!(registry.info(h).unwrap().capacity >= 2 << 20);
    let bytes = contents(&registry, h);
    assert!(bytes[..64].iter().all(|&b| b == 9) && bytes[64..].iter().all(|&b| b == 0));
    assert_eq!(
        registry.set_size(h, 5 << 20),
        Err(RegionError::RegionTooLarge {
            requested: 5 << 20,
            max: 4 << 20
        })
    );
    let stats = registry.pool().stats();
    assert_eq!(
        stats.class(SizeClass::B64).allocated + stats.class(SizeClass::K4).allocated,
        0
    );
    assert_eq!(stats.large.count, 1);
}

#[test]
fn set_size_shrinks_with_zeroing_so_regrowth_reads_zero() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(100, OWNER)).unwrap();
    registry.write(h, 0, &[5; 100], false).unwrap();
    assert_eq!(registry.set_size(h, 40), Ok(100));
    assert_eq!(contents(&registry, h), vec![5; 40]);
    assert_eq!(registry.set_size(h, 0), Err(RegionError::ZeroSize));
    registry.set_size(h, 100).unwrap();
    let bytes = contents(&registry, h);
    assert_eq!((&bytes[..40], &bytes[40..]), (&[5; 40][..], &[0; 60][..]));
}

#[test]
fn pages_round_trip_and_observer_sees_pre_write_pages() {
    let registry = registry();
    let h = registry
        .create(RegionSpec::new(2 * PAGE_SIZE as u64 + 100, OWNER).options(auto_grow()))
        .unwrap();
    registry
        .write(h, PAGE_SIZE as u64 - 2, b"abcd", false)
        .unwrap();
    let mut saved = [0u8; PAGE_SIZE];
    assert_eq!(registry.read_page(h, 0, &mut saved), Ok(PAGE_SIZE));
    let mut last = [0xffu8; PAGE_SIZE];
    assert_eq!(registry.read_page(h, 2, &mut last), Ok(100));
    assert!(last.iter().all(|&b| b == 0));

    let mut seen = Vec::new();
    let old_end = 2 * PAGE_SIZE as u64 + 100;
    let data = vec![1; 2 * PAGE_SIZE + 200];
    let mut guard = registry.lock_write(h).unwrap();
    let plan = guard.plan(PAGE_SIZE as u64 - 1, data.len() as u64, true);
    let outcome = guard
        .write_planned(
            plan,
            &data,
            Some(&mut |page, bytes| {
                seen.push((page, bytes.len(), bytes.iter().filter(|&&b| b != 0).count()));
            }),
        )
        .unwrap();
    // A plan made for another size is refused, never half-done.
    assert_eq!(
        guard.write_planned(plan, &data, None),
        Err(RegionError::StalePlan)
    );
    drop(guard);
    assert_eq!(outcome.old_size, old_end);
    // Pages 0, 1, 2 existed; page 3 only came with growth.
    assert_eq!(
        seen,
        vec![(0, PAGE_SIZE, 2), (1, PAGE_SIZE, 2), (2, 100, 0)]
    );
    assert_eq!(registry.restore_page(h, 0, &saved), Ok(PAGE_SIZE));
    assert_eq!(&contents(&registry, h)[PAGE_SIZE - 2..PAGE_SIZE], b"ab");
    registry.set_size(h, old_end).unwrap();
    let mut page = [0u8; PAGE_SIZE];
    page[..10].fill(3);
    assert_eq!(registry.restore_page(h, 2, &page), Ok(100));
    assert_eq!(registry.lock_read(h).unwrap().size(), old_end);
    assert_eq!(registry.restore_page(h, 3, &page), Ok(0));
}

#[test]
fn mappings_replace_unmap_and_restore() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    assert_eq!(
        registry.map(h, OTHER, MapOptions::COPY_ON_WRITE).unwrap(),
        None
    );
    let old = registry
        .map(h, OTHER, MapOptions::READ_ONLY)
        .unwrap()
        .unwrap();
    assert!(old.copy_on_write());
    let version = {
        let guard = registry.lock_read(h).unwrap();
        let mapping = guard.meta().mapping(OTHER).unwrap();
        assert!(mapping.read_only());
        assert_eq!(guard.meta().ref_count(), 1);
        guard.access_version()
    };
    let current = registry.lock_read(h).unwrap().meta().mapping(OTHER);
    assert_eq!(registry.unmap(h, OTHER).ok(), current);
    // Every change of host mappings moves the access version.
    assert!(registry.lock_read(h).unwrap().access_version() > version);
    assert_eq!(
        registry.unmap(h, OTHER),
        Err(RegionError::MappingNotFound {
            handle: h,
            context: OTHER
        })
    );
}

#[test]
fn grants_and_host_refs() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    let grant = Grant::new(Permissions::read_only()).with_free();
    assert_eq!(registry.grant(h, OTHER, grant), Ok(None));
    assert_eq!(
        registry.lock_read(h).unwrap().meta().grant(OTHER),
        Some(&grant)
    );
    {
        let mut guard = registry.lock_write(h).unwrap();
        assert_eq!(
            (
                guard.add_host_ref(),
                guard.add_host_ref(),
                guard.drop_host_ref()
            ),
            (1, 2, 1)
        );
        guard.map(OWNER, MapOptions::empty());
        assert_eq!(guard.meta().ref_count(), 2);
    }
    assert_eq!(registry.revoke(h, OTHER), Ok(Some(grant)));
    assert_eq!(registry.lock_read(h).unwrap().meta().grant(OTHER), None);
}

#[test]
fn two_phase_free_can_be_cancelled_or_finished() {
    let registry = registry_with([4, 4, 1, 1], 2, 1 << 20);
    let h = registry
        .create(RegionSpec::new(8, OWNER).named("kept"))
        .unwrap();
    registry.write(h, 0, b"data", false).unwrap();
    registry.begin_free(h).unwrap();
    assert_eq!(
        registry.read(h, 0, &mut [0; 4]),
        Err(RegionError::RegionFreed(h))
    );
    assert_eq!(registry.pending_frees(), vec![h]);
    assert!(registry.lookup("kept").is_err());
    assert_eq!(
        registry.create(RegionSpec::new(8, OWNER).named("kept")),
        Err(RegionError::NameTaken("kept".into()))
    );
    // The pending slot is not reused and still counts toward the limit.
    let other = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    assert_eq!(other.index(), 2);
    assert_eq!(
        registry.create(RegionSpec::new(8, OWNER)),
        Err(RegionError::TooManyRegions { limit: 2 })
    );

    registry.cancel_free(h).unwrap();
    assert_eq!(registry.cancel_free(h), Err(RegionError::SlotNotRemoved(h)));
    assert_eq!(&contents(&registry, h)[..4], b"data");
    assert_eq!(registry.lookup("kept"), Ok(h));

    registry.begin_free(h).unwrap();
    registry.finish_free(h).unwrap();
    assert_eq!(registry.finish_free(h), Err(RegionError::SlotNotRemoved(h)));
    assert_eq!(registry.check(h).unwrap_err(), RegionError::RegionFreed(h));
    let again = registry
        .create(RegionSpec::new(8, OWNER).named("kept"))
        .unwrap();
    assert_eq!((again.index(), again.generation()), (1, 2));
}

#[test]
fn persistent_regions_leave_slots_for_transaction_scoped_ones() {
    let registry = RegionRegistry::new(
        BlockPool::new(PoolConfig::with_blocks([16, 8, 4, 2])),
        RegistryConfig {
            max_regions: 4,
            max_region_size: 1 << 20,
            max_persistent_regions: 2,
        },
    );
    let persistent = RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    };
    let a = registry
        .create(RegionSpec::new(8, OWNER).options(persistent))
        .unwrap();
    registry
        .create(RegionSpec::new(8, OTHER).options(persistent))
        .unwrap();
    assert_eq!(
        registry.create(RegionSpec::new(8, OWNER).options(persistent)),
        Err(RegionError::TooManyPersistentRegions { limit: 2 })
    );
    // The rest stay for transaction-scoped regions.
    let t = registry.create(RegionSpec::new(8, OTHER)).unwrap();
    registry.create(RegionSpec::new(8, OTHER)).unwrap();
    registry.free(t).unwrap();
    // A freed persistent region gives its place back.
    registry.free(a).unwrap();
    registry
        .create(RegionSpec::new(8, OWNER).options(persistent))
        .unwrap();
}

#[test]
fn liveness_tells_pending_frees_from_final_ones() {
    let registry = registry();
    let h = registry.create(RegionSpec::new(8, OWNER)).unwrap();
    assert_eq!(registry.liveness(h), Liveness::Live);
    registry.begin_free(h).unwrap();
    assert_eq!(registry.liveness(h), Liveness::PendingFree);
    registry.finish_free(h).unwrap();
    assert_eq!(registry.liveness(h), Liveness::Freed);
    let never = RegionHandle::new(h.index(), h.generation() + 5).unwrap();
    assert_eq!(registry.liveness(never), Liveness::Invalid);
    assert_eq!(
        registry.liveness(RegionHandle::new(999, 1).unwrap()),
        Liveness::Invalid
    );
}

#[test]
fn create_at_places_a_region_and_keeps_assignment_consistent() {
    let registry = registry();
    let owner = Address::repeat_byte(1);
    let block = registry.pool().allocate(64).unwrap();
    let at = RegionHandle::new(5, 3).unwrap();
    registry
        .create_at(at, RegionSpec::new(64, owner).named("placed"), block)
        .unwrap();
    assert_eq!(registry.lookup("placed").unwrap(), at);
    assert_eq!(registry.slot_use(5), (true, 3));
    assert_eq!(registry.slot_use(4), (false, 0));
    // The skipped slots 1..=4 are handed out first, then slot 6.
    let made: Vec<u32> = (0..5)
        .map(|_| registry.create(RegionSpec::new(8, owner)).unwrap().index())
        .collect();
    assert_eq!(made, vec![1, 2, 3, 4, 6]);
    // Freed, slot 5 comes back at a generation above the placed one.
    registry.free(at).unwrap();
    assert_eq!(
        registry.create(RegionSpec::new(8, owner)).unwrap(),
        RegionHandle::new(5, 4).unwrap()
    );
    // An occupied slot, a used generation or a too-small block is refused.
    let small = registry.pool().allocate(64).unwrap();
    assert!(matches!(
        registry.create_at(
            RegionHandle::new(9, 1).unwrap(),
            RegionSpec::new(100_000, owner),
            small
        ),
        Err(RegionError::RegionTooLarge { .. })
    ));
    let block = registry.pool().allocate(64).unwrap();
    assert_eq!(
        registry.create_at(
            RegionHandle::new(5, 4).unwrap(),
            RegionSpec::new(8, owner),
            block
        ),
        Err(RegionError::HandleUnavailable(
            RegionHandle::new(5, 4).unwrap()
        ))
    );
}

#[test]
fn a_full_registry_is_reported_before_an_empty_pool() {
    // One 64-byte block in the pool, room for one region: the second create
    // meets both limits and must report the registry's.
    let registry = registry_with([1, 0, 0, 0], 1, 64);
    let first = registry.create(RegionSpec::new(64, OWNER)).unwrap();
    assert!(
        registry.pool().allocate(64).is_err(),
        "the pool must be empty"
    );
    assert_eq!(
        registry.create(RegionSpec::new(64, OWNER)),
        Err(RegionError::TooManyRegions { limit: 1 })
    );
    // The refusal took nothing: the freed block serves the next create.
    registry.free(first).unwrap();
    registry.create(RegionSpec::new(64, OWNER)).unwrap();
}

#[test]
fn a_create_skips_a_listed_slot_that_create_at_filled() {
    let registry = registry();
    let placed = RegionHandle::new(1, 5).unwrap();
    let block = registry.pool().allocate(8).unwrap();
    registry
        .create_at(placed, RegionSpec::new(8, OWNER), block)
        .unwrap();
    registry.force_free(1);
    for named in [false, true] {
        let spec = RegionSpec::new(8, OWNER);
        let spec = if named { spec.named("n") } else { spec };
        let handle = registry.create(spec).unwrap();
        // The placed region keeps slot 1; the new one gets the next slot.
        assert_eq!(handle.index(), if named { 3 } else { 2 });
        assert_eq!(registry.lock_read(placed).unwrap().size(), 8);
        registry.force_free(1);
    }
    assert_eq!(registry.len(), 3);
}
