//! Unit tests of the registry and region guards.

use std::time::Duration;

use shm_pool::{PoolError, SizeClass};
use shm_primitives::{
    Address, AllocFlags, ContextId, MapOptions, Permissions, RegionHandle, PAGE_SIZE,
};
use RegionError::*;

use crate::{Grant, Liveness, RegionError, RegionRegistry, RegionSpec};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{registry_with, RegistryExt};

const OWNER: ContextId = Address::repeat_byte(1);
const OTHER: ContextId = Address::repeat_byte(2);

fn registry() -> RegionRegistry {
    registry_with([16, 8, 4, 2], 16, 4 << 20, 16)
}

/// An anonymous region spec of `size` bytes owned by `OWNER`.
fn spec(size: u64) -> RegionSpec {
    RegionSpec::new(size, OWNER)
}

/// Creates an anonymous region of `size` bytes owned by `OWNER`.
fn region(registry: &RegionRegistry, size: u64) -> RegionHandle {
    registry.create(spec(size)).unwrap()
}

/// As [`spec`], auto-growing.
fn growing(size: u64) -> RegionSpec {
    spec(size).options(AllocFlags::AUTO_GROW.into())
}

fn handle(index: u32, generation: u32) -> RegionHandle {
    RegionHandle::new(index, generation).unwrap()
}

/// A fresh registry holding one region of `size` bytes.
fn with_region(size: u64) -> (RegionRegistry, RegionHandle) {
    let registry = registry();
    let h = region(&registry, size);
    (registry, h)
}

fn contents(registry: &RegionRegistry, handle: RegionHandle) -> Vec<u8> {
    registry.lock_read(handle).unwrap().bytes().to_vec()
}

/// `(written, old_size, new_size)` of a write that must succeed.
fn wrote(registry: &RegionRegistry, h: RegionHandle, at: u64, data: &[u8]) -> (usize, u64, u64) {
    let outcome = registry.write(h, at, data, true).unwrap();
    (outcome.written, outcome.old_size, outcome.new_size)
}

#[test]
fn a_region_reads_zero_past_its_end_and_writes_what_fits() {
    let (registry, h) = with_region(10);
    assert_eq!(contents(&registry, h), vec![0; 10]);
    let guard = registry.lock_read(h).unwrap();
    let meta = guard.meta();
    assert_eq!((guard.size(), meta.owner(), meta.handle()), (10, OWNER, h));
    drop(guard);
    assert_eq!(wrote(&registry, h, 8, b"abcd"), (2, 10, 10)); // not auto-grow
    assert_eq!(registry.write(h, 10, b"x", false).unwrap().written, 0);
    assert_eq!(contents(&registry, h), b"\0\0\0\0\0\0\0\0ab");
    registry.write(h, 0, b"0123456789", false).unwrap();
    let (offset, len) = (u64::MAX, 2);
    let overflow = OffsetOverflow { offset, len };
    // (offset, length, what the read gives): 2^64 - 1 is still addressable.
    let cases = [
        (7, 6, Ok((3, &b"789\0\0\0"[..]))),
        (10, 4, Ok((0, &[0; 4][..]))),
        (u64::MAX - 4, 4, Ok((0, &[0; 4][..]))),
        (u64::MAX - 2, 2, Ok((0, &[0; 2][..]))),
        (u64::MAX, 2, Err(overflow.clone())),
    ];
    for (offset, len, expected) in cases {
        let mut buf = vec![0xee; len];
        let got = registry.read(h, offset, &mut buf).map(|n| (n, &buf[..]));
        assert_eq!(got, expected, "read at {offset}");
    }
    assert_eq!(registry.write(h, u64::MAX, &[1, 2], true), Err(overflow));
    let page = registry.read_page(h, u64::MAX, &mut [0; PAGE_SIZE]);
    assert_eq!(page, Err(PageOutOfRange(u64::MAX)));
    assert_eq!(contents(&registry, h), b"0123456789");
}

#[test]
fn create_refusals_names_and_the_persistent_reserve() {
    let registry = registry_with([4, 2, 1, 1], 4, 1 << 20, 2);
    let too_large = |requested, max| RegionTooLarge { requested, max };
    for (spec, expected) in [
        (spec(0), ZeroSize),
        (spec((1 << 20) + 1), too_large((1 << 20) + 1, 1 << 20)),
        (spec(200).max_size(100), too_large(200, 100)),
    ] {
        assert_eq!(registry.create(spec.clone()), Err(expected), "{spec:?}");
    }
    let persistent = || spec(8).options(AllocFlags::PERSISTENT.into());
    let p = registry.create(persistent()).unwrap();
    registry.create(persistent()).unwrap();
    let full = Err(TooManyPersistentRegions { limit: 2 });
    assert_eq!(registry.create(persistent()), full);
    // The rest stay for transaction-scoped regions.
    let named = || spec(1).named("a");
    let a = registry.create(named()).unwrap();
    assert_eq!(registry.lookup("a"), Ok(a));
    assert_eq!(registry.lock_read(a).unwrap().meta().name(), Some("a"));
    assert_eq!(registry.create(named()), Err(NameTaken("a".into())));
    assert_eq!(registry.lookup("nope"), Err(NameNotFound("nope".into())));
    region(&registry, 1);
    assert_eq!(registry.create(spec(1)), Err(TooManyRegions { limit: 4 }));
    registry.free(a).unwrap();
    assert_eq!(registry.lookup("a"), Err(NameNotFound("a".into())));
    registry.create(named()).unwrap();
    // A freed persistent region gives its place back.
    registry.free(p).unwrap();
    registry.create(persistent()).unwrap();
    assert_eq!(registry.len(), 4);
}

#[test]
fn a_full_registry_is_reported_before_an_empty_pool() {
    // One 64-byte block in the pool: with room for one region, the second
    // create meets both limits and must report the registry's.
    let class = SizeClass::B64;
    let exhausted = Pool(PoolError::PoolExhausted { class, capacity: 1 });
    for (max, refusal) in [(1, TooManyRegions { limit: 1 }), (8, exhausted)] {
        let registry = registry_with([1, 0, 0, 0], max, 64, max);
        let allocated = || registry.pool().stats().class(class).allocated;
        let first = region(&registry, 64);
        assert_eq!(registry.create(spec(64)), Err(refusal), "{max}");
        // The refusal took nothing: the freed block serves the next create.
        assert_eq!((registry.len(), allocated()), (1, 1), "{max}");
        registry.free(first).unwrap();
        assert_eq!(allocated(), 0, "{max}");
        region(&registry, 64);
    }
}

#[test]
fn handles_take_the_lowest_free_index_and_never_come_back() {
    let registry = registry();
    let [a, b, c] = [8; 3].map(|size| region(&registry, size));
    assert_eq!([a, b, c], [handle(1, 1), handle(2, 1), handle(3, 1)]);
    registry.free(c).unwrap();
    registry.free(a).unwrap();
    let [d, e] = [8; 2].map(|size| region(&registry, size));
    assert_eq!([d, e], [handle(1, 2), handle(3, 2)]);
    assert_eq!(registry.handles(), vec![d, b, e]);
    assert_eq!(registry.check(a), Err(RegionFreed(a)));
    assert_eq!(registry.free(a), Err(RegionFreed(a)));
    for never in [handle(1, 3), handle(99, 1)] {
        assert_eq!(registry.check(never), Err(InvalidRegionHandle(never)));
    }
    assert!(registry.check(d).is_ok());
    // A slot whose generation would wrap is retired.
    registry.free(d).unwrap();
    registry.force_issued(1, u32::MAX - 1);
    let last = region(&registry, 8);
    assert_eq!(last, handle(1, u32::MAX));
    registry.free(last).unwrap();
    let next = region(&registry, 8);
    assert_eq!(next, handle(4, 1), "slot 1 is retired");
    assert_eq!(registry.check(last), Err(RegionFreed(last)));
    assert_eq!(registry.check(d), Err(RegionFreed(d)));
    registry.free(next).unwrap();
    assert_eq!(region(&registry, 8).index(), 4);
}

#[test]
fn busy_regions_time_out_and_a_free_waits_for_a_reader() {
    let (registry, h) = with_region(8);
    registry.write(h, 0, b"visible!", false).unwrap();
    let wait = Duration::from_millis(10);
    let writer = registry.lock_write(h).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            assert!(registry.try_lock_read_for(h, wait).unwrap().is_none());
            assert!(registry.try_lock_write_for(h, wait).unwrap().is_none());
        });
    });
    drop(writer);
    let reader = registry.try_lock_read_for(h, wait).unwrap();
    assert_eq!(reader.map(|g| g.size()), Some(8));
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let guard = registry.lock_read(h).unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            // The free cannot have happened under a held guard.
            guard.bytes().to_vec()
        });
        locked_rx.recv().unwrap();
        registry.free(h).unwrap();
        assert_eq!(reader.join().unwrap(), b"visible!");
    });
    let freed = Some(RegionFreed(h));
    assert_eq!(registry.lock_read(h).err(), freed);
    assert_eq!(registry.lock_write(h).err(), freed);
    assert_eq!(registry.info(h).err(), freed);
}

#[test]
fn auto_grow_grows_up_to_max_size_and_what_the_pool_gives() {
    let registry = registry_with([2, 1, 0, 0], 8, 1 << 20, 8);
    let h = registry.create(growing(10).max_size(4000)).unwrap();
    registry.write(h, 0, b"keep", false).unwrap();
    // Not allowed by the caller: writes what fits.
    assert_eq!(registry.write(h, 8, b"abcd", false).unwrap().written, 2);
    let o = registry.write(h, 100, b"xyz", true).unwrap();
    assert!(o.grew() && o.growth_error.is_none());
    assert_eq!((o.written, o.old_size, o.new_size), (3, 10, 103));
    // Starting past max_size, or writing nothing: no growth.
    for (offset, len) in [(6000, 10), (200, 0)] {
        let outcome = wrote(&registry, h, offset, &[1; 10][..len]);
        assert_eq!(outcome, (0, 103, 103), "{offset}");
    }
    // Past max_size: grows to max_size and writes what fits.
    assert_eq!(wrote(&registry, h, 3998, b"12345"), (2, 103, 4000));
    let bytes = contents(&registry, h);
    assert_eq!(
        (&bytes[..4], &bytes[8..10], &bytes[100..103], &bytes[3998..]),
        (&b"keep"[..], &b"ab"[..], &b"xyz"[..], &b"12"[..])
    );
    let rest = bytes[10..100].iter().chain(&bytes[103..3998]);
    assert!(rest.copied().all(|b| b == 0));
    // Growth the pool refuses (no 64 KiB block): writes what fits.
    let h = registry.create(growing(60)).unwrap();
    let o = registry.write(h, 58, &[7; 10_000], true).unwrap();
    let class = SizeClass::K64;
    let refused = Some(PoolError::PoolExhausted { class, capacity: 0 });
    assert_eq!((o.written, o.new_size, o.growth_error), (2, 60, refused));
}

#[test]
fn set_size_shrinks_with_zeroing_and_grows_into_bigger_blocks() {
    let (registry, h) = with_region(100);
    registry.write(h, 0, &[5; 100], false).unwrap();
    assert_eq!(registry.set_size(h, 40), Ok(100));
    assert_eq!(contents(&registry, h), vec![5; 40]);
    assert_eq!(registry.set_size(h, 0), Err(ZeroSize));
    assert_eq!(registry.set_size(h, 100), Ok(40));
    assert_eq!(contents(&registry, h)[40..], [0; 60]);
    assert_eq!(registry.set_size(h, 100_000), Ok(100));
    assert_eq!(registry.set_size(h, 2 << 20), Ok(100_000)); // a large allocation
    assert_eq!(registry.lock_read(h).unwrap().meta().size(), 2 << 20);
    assert!(registry.info(h).unwrap().capacity >= 2 << 20);
    let bytes = contents(&registry, h);
    assert!(bytes[..40].iter().all(|&b| b == 5) && bytes[40..].iter().all(|&b| b == 0));
    let (requested, max) = (5 << 20, 4 << 20);
    let too_large = Err(RegionTooLarge { requested, max });
    assert_eq!(registry.set_size(h, requested), too_large);
    let stats = registry.pool().stats();
    let classed = stats.class(SizeClass::B64).allocated + stats.class(SizeClass::K4).allocated;
    assert_eq!((classed, stats.large.count), (0, 1));
}

#[test]
fn pages_round_trip_and_observer_sees_pre_write_pages() {
    let registry = registry();
    const PAGE: u64 = PAGE_SIZE as u64;
    let old_end = 2 * PAGE + 100;
    let h = registry.create(growing(old_end)).unwrap();
    registry.write(h, PAGE - 2, b"abcd", false).unwrap();
    let mut saved = [0u8; PAGE_SIZE];
    assert_eq!(registry.read_page(h, 0, &mut saved), Ok(PAGE_SIZE));
    let mut last = [0xffu8; PAGE_SIZE];
    assert_eq!(registry.read_page(h, 2, &mut last), Ok(100));
    assert!(last.iter().all(|&b| b == 0));

    let mut seen = Vec::new();
    let data = vec![1; 2 * PAGE_SIZE + 200];
    let mut guard = registry.lock_write(h).unwrap();
    let plan = guard.plan(PAGE - 1, data.len() as u64, true);
    let mut see = |page, bytes: &[u8]| {
        seen.push((page, bytes.len(), bytes.iter().filter(|&&b| b != 0).count()));
    };
    let outcome = guard.write_planned(plan, &data, Some(&mut see)).unwrap();
    // A plan made for another size is refused, never half-done.
    assert_eq!(guard.write_planned(plan, &data, None), Err(StalePlan));
    drop(guard);
    assert_eq!(outcome.old_size, old_end);
    // Pages 0, 1, 2 existed; page 3 only came with growth.
    assert_eq!(seen, [(0, PAGE_SIZE, 2), (1, PAGE_SIZE, 2), (2, 100, 0)]);
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
fn mappings_and_grants_replace_and_withdraw() {
    let (registry, h) = with_region(8);
    assert_eq!(registry.map(h, OTHER, MapOptions::COPY_ON_WRITE), Ok(None));
    let old = registry.map(h, OTHER, MapOptions::READ_ONLY).unwrap();
    assert!(old.unwrap().copy_on_write());
    let (current, version) = {
        let guard = registry.lock_read(h).unwrap();
        assert!(guard.meta().mapping(OTHER).unwrap().read_only());
        assert_eq!(guard.meta().ref_count(), 1);
        (guard.meta().mapping(OTHER), guard.access_version())
    };
    assert_eq!(registry.unmap(h, OTHER).ok(), current);
    // Every change of host mappings moves the access version.
    assert!(registry.lock_read(h).unwrap().access_version() > version);
    let context = OTHER;
    let missing = Err(MappingNotFound { handle: h, context });
    assert_eq!(registry.unmap(h, OTHER), missing);
    let grant = Grant::new(Permissions::read_only()).with_free();
    let mut guard = registry.lock_write(h).unwrap();
    assert_eq!(guard.grant(OTHER, grant), None);
    assert_eq!(guard.meta().grant(OTHER), Some(&grant));
    assert_eq!((guard.add_host_ref(), guard.add_host_ref()), (1, 2));
    assert_eq!(guard.drop_host_ref(), 1);
    guard.map(OWNER, MapOptions::empty());
    assert_eq!(guard.meta().ref_count(), 2);
    assert_eq!(guard.revoke(OTHER), Some(grant));
    assert_eq!(guard.meta().grant(OTHER), None);
}

#[test]
fn two_phase_free_can_be_cancelled_or_finished_and_liveness_tells() {
    let registry = registry_with([4, 4, 1, 1], 2, 1 << 20, 2);
    let kept = || spec(8).named("kept");
    let h = registry.create(kept()).unwrap();
    assert_eq!(registry.liveness(h), Liveness::Live);
    registry.write(h, 0, b"data", false).unwrap();
    registry.begin_free(h).unwrap();
    assert_eq!(registry.liveness(h), Liveness::PendingFree);
    assert_eq!(registry.read(h, 0, &mut [0; 4]), Err(RegionFreed(h)));
    assert_eq!(registry.pending_frees(), vec![h]);
    assert!(registry.lookup("kept").is_err());
    assert_eq!(registry.create(kept()), Err(NameTaken("kept".into())));
    // The pending slot is not reused and still counts toward the limit.
    assert_eq!(region(&registry, 8).index(), 2);
    assert_eq!(registry.create(spec(8)), Err(TooManyRegions { limit: 2 }));

    registry.cancel_free(h).unwrap();
    assert_eq!(registry.cancel_free(h), Err(SlotNotRemoved(h)));
    assert_eq!(&contents(&registry, h)[..4], b"data");
    assert_eq!(registry.lookup("kept"), Ok(h));

    registry.begin_free(h).unwrap();
    registry.finish_free(h).unwrap();
    assert_eq!(registry.liveness(h), Liveness::Freed);
    for never in [handle(1, 6), handle(999, 1)] {
        assert_eq!(registry.liveness(never), Liveness::Invalid);
    }
    assert_eq!(registry.finish_free(h), Err(SlotNotRemoved(h)));
    assert_eq!(registry.check(h), Err(RegionFreed(h)));
    assert_eq!(registry.create(kept()), Ok(handle(1, 2)));
}

#[test]
fn create_at_places_a_region_and_keeps_assignment_consistent() {
    let registry = registry();
    let block = || registry.pool().allocate(64).unwrap();
    let at = handle(5, 3);
    let placed = registry.create_at(at, spec(64).named("placed"), block());
    assert_eq!(placed, Ok(at));
    assert_eq!(registry.lookup("placed"), Ok(at));
    assert_eq!(registry.slot_use(5), (true, 3));
    assert_eq!(registry.slot_use(4), (false, 0));
    // The skipped slots 1..=4 are handed out first, then slot 6.
    let made: Vec<u32> = (0..5).map(|_| region(&registry, 8).index()).collect();
    assert_eq!(made, vec![1, 2, 3, 4, 6]);
    // Freed, slot 5 comes back at a generation above the placed one.
    registry.free(at).unwrap();
    assert_eq!(region(&registry, 8), handle(5, 4));
    // An occupied slot, a used generation or a too-small block is refused.
    let small = registry.create_at(handle(9, 1), spec(100_000), block());
    assert!(matches!(small, Err(RegionTooLarge { .. })), "{small:?}");
    let used = registry.create_at(handle(5, 4), spec(8), block());
    assert_eq!(used, Err(HandleUnavailable(handle(5, 4))));
}

#[test]
fn a_create_skips_a_listed_slot_that_create_at_filled() {
    let registry = registry();
    let placed = handle(1, 5);
    let block = registry.pool().allocate(8).unwrap();
    registry.create_at(placed, spec(8), block).unwrap();
    registry.force_free(1);
    for named in [false, true] {
        let spec = if named { spec(8).named("n") } else { spec(8) };
        let handle = registry.create(spec).unwrap();
        // The placed region keeps slot 1; the new one gets the next slot.
        assert_eq!(handle.index(), if named { 3 } else { 2 });
        assert_eq!(registry.lock_read(placed).unwrap().size(), 8);
        registry.force_free(1);
    }
    assert_eq!(registry.len(), 3);
}
