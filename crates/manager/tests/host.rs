//! The host API, access checks and the transaction layer's entry point.

use std::time::Duration;

use shm_manager::{
    Grant, Intent, LockMode, RegionRequest, Resolved, SharedMemoryConfig, SharedMemoryManager,
    ShmError, SizeClass, TxId, TxRegions, HOST_CONTEXT,
};
use shm_primitives::{
    Address, AllocFlags, MapOptions, Permissions, RegionHandle, RegionOptions, WritePlan,
};
use shm_region::RegionSpec;

const ALICE: Address = Address::repeat_byte(0xa1);
const BOB: Address = Address::repeat_byte(0xb0);

/// Resolves `h` for `who` without a transaction mapping or waiting.
fn resolve(tx: &mut TxRegions, h: RegionHandle, who: Address, intent: Intent) -> Resolved {
    tx.resolve(h, who, intent, None, Duration::ZERO).unwrap()
}

/// The plan of a write of `len` bytes at `offset` into `region` as resolved.
fn plan(region: &Resolved, offset: u64, len: u64) -> WritePlan {
    WritePlan::new(region.size, region.max_size, true, offset, len)
}

#[test]
fn create_write_read_find_info_free() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development())?;
    let (rw, plain) = (Permissions::read_write(), RegionOptions::default());
    let h = m.create_shared_region("a", 100, rw, plain)?;
    assert_eq!(m.find_region("a"), Ok(h));
    let taken = Err(ShmError::NameTaken("a".into()));
    assert_eq!(m.create_shared_region("a", 1, rw, plain), taken);
    // Past the end: write what fits, read zeros.
    assert_eq!(m.write_region(h, 96, b"abcdef"), Ok(4));
    let mut buf = [0xff; 8];
    assert_eq!(m.read_region(h, 96, &mut buf), Ok(4));
    assert_eq!(&buf, b"abcd\0\0\0\0");
    assert_eq!(m.read_region(h, 1000, &mut buf), Ok(0));
    assert_eq!(buf, [0; 8]);
    let (offset, len) = (u64::MAX, 2);
    let overflow = ShmError::OffsetOverflow { offset, len };
    assert_eq!(m.write_region(h, offset, b"xy"), Err(overflow));

    let info = m.region_info(h)?;
    assert_eq!(info.meta.owner(), HOST_CONTEXT);
    assert_eq!(info.meta.host_refs(), 1);
    assert_eq!(info.meta.size(), 100);
    assert_eq!(m.list_regions()?.len(), 1);

    m.free_region(h)?;
    assert_eq!(m.find_region("a"), Err(ShmError::NameNotFound("a".into())));
    assert_eq!(m.read_region(h, 0, &mut buf), Err(ShmError::RegionFreed(h)));
    assert_eq!(m.free_region(h), Err(ShmError::RegionFreed(h)));
    let never = RegionHandle::new(77, 1).unwrap();
    let invalid = ShmError::InvalidRegionHandle(never);
    assert_eq!(m.region_info(never).unwrap_err(), invalid);

    let snap = m.metrics_snapshot();
    assert_eq!((snap.regions_created, snap.regions_destroyed), (1, 1));
    assert_eq!((snap.writes, snap.write_bytes), (1, 4));
    assert_eq!(snap.memory_bytes, 0);
    Ok(())
}

#[test]
fn map_unmap_grant_revoke_with_cow_on_and_off() -> Result<(), ShmError> {
    use MapOptions as O;
    for (config, cow) in [
        (SharedMemoryConfig::development(), true),
        (SharedMemoryConfig::testing(), false),
    ] {
        let m = SharedMemoryManager::new(config)?;
        let h = m.create_region(RegionRequest::new(64))?;
        // With COW off, regions and mappings lose the copy-on-write option.
        assert_eq!(m.region_info(h)?.meta.options().copy_on_write, cow, "{cow}");
        m.map_shared_region(h, ALICE, O::COPY_ON_WRITE)?;
        let info = m.region_info(h)?;
        let mapping = info.meta.mapping(ALICE).unwrap();
        let flags = (mapping.copy_on_write(), mapping.read_only());
        assert_eq!(flags, (cow, false), "{cow}");
        assert_eq!(info.meta.ref_count(), 2); // host reference + one mapping
                                              // Read-only survives.
        let cow_ro = O::COPY_ON_WRITE | O::READ_ONLY;
        let kept = if cow { cow_ro } else { O::READ_ONLY };
        assert_eq!(m.effective_map_options(cow_ro), kept, "{cow}");
        m.unmap_shared_region(h, ALICE)?;
        let (handle, context) = (h, ALICE);
        let missing = ShmError::MappingNotFound { handle, context };
        assert_eq!(m.unmap_shared_region(h, ALICE), Err(missing));
        assert_eq!(m.grant(h, BOB, Grant::new(Permissions::READ)), Ok(None));
        assert_eq!(m.revoke(h, BOB), Ok(Some(Grant::new(Permissions::READ))));
        assert_eq!(m.revoke(h, BOB), Ok(None));
        let snap = m.metrics_snapshot();
        assert_eq!((snap.mappings, snap.unmappings), (1, 1));
    }
    Ok(())
}

#[test]
fn auto_grow_up_to_the_region_maximum() -> Result<(), ShmError> {
    let mut config = SharedMemoryConfig::testing();
    config.max_region_size = 8192;
    let m = SharedMemoryManager::new(config)?;
    let h = m.create_region(RegionRequest::new(10).options(AllocFlags::AUTO_GROW.into()))?;
    assert_eq!(m.write_region(h, 8, b"0123456789"), Ok(10));
    assert_eq!(m.region_info(h)?.meta.size(), 18);
    // Growth stops at max_region_size: what fits is written.
    assert_eq!(m.write_region(h, 8190, b"abcd"), Ok(2));
    assert_eq!(m.region_info(h)?.meta.size(), 8192);
    assert_eq!(m.metrics_snapshot().memory_bytes, 8192);
    Ok(())
}

#[test]
fn strict_refusals_have_typed_errors() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::production())?;
    let h = m.create_region(RegionRequest::new(64).owner(ALICE))?;
    m.grant(h, BOB, Grant::new(Permissions::READ).with_free())?;
    m.map_shared_region(h, BOB, MapOptions::empty())?;
    let mut tx = m.begin_transaction();
    let mut check = |who, intent| tx.resolve(h, who, intent, None, Duration::ZERO).map(drop);
    assert_eq!(check(BOB, Intent::Read), Ok(()));
    let (handle, context) = (h, BOB);
    let no_write = ShmError::NoWritePermission { handle, context };
    assert_eq!(check(BOB, Intent::Write), Err(no_write));
    let not_owner = ShmError::NotOwner { handle, context };
    assert_eq!(check(BOB, Intent::Free), Err(not_owner));
    let context = ALICE;
    let unmapped = ShmError::MappingNotFound { handle, context };
    assert_eq!(check(ALICE, Intent::Read), Err(unmapped));
    // The transaction's own mapping counts as a mapping.
    let own = Some(MapOptions::empty());
    tx.resolve(h, ALICE, Intent::Read, own, Duration::ZERO)?;
    tx.release();
    assert_eq!(m.metrics_snapshot().access_denials, 3);
    Ok(())
}

#[test]
fn transaction_regions_are_locked_then_freed_at_the_end() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development())?;
    let mut tx = m.begin_transaction();
    let next = m.begin_transaction();
    assert_eq!(next.id(), TxId(tx.id().0 + 1));
    next.release();
    let scoped = tx.create(RegionSpec::new(100, ALICE))?;
    let persistent = AllocFlags::PERSISTENT.into();
    let kept = tx.create(RegionSpec::new(100, ALICE).options(persistent))?;
    assert_eq!(tx.holds(scoped), Some(LockMode::Exclusive));
    // A host write waits for the transaction, then gives up.
    let host = m.create_region(RegionRequest::new(8))?;
    resolve(&mut tx, host, HOST_CONTEXT, Intent::Read);
    assert_eq!(tx.holds(host), Some(LockMode::Shared));
    let busy = ShmError::RegionBusy { handle: scoped };
    assert_eq!(m.write_region(scoped, 0, b"x"), Err(busy));
    // A host read shares with the transaction's shared lock.
    assert_eq!(m.read_region(host, 0, &mut [0; 4]), Ok(4));

    tx.free_scoped(&[(scoped, 100)]);
    assert_eq!(tx.release(), 3);
    let freed = Err(ShmError::RegionFreed(scoped));
    assert_eq!(m.read_region(scoped, 0, &mut [0]), freed);
    assert_eq!(m.write_region(kept, 0, b"x"), Ok(1));
    assert_eq!(m.write_region(host, 0, b"x"), Ok(1));
    assert!(m.locked_regions().is_empty());
    let snap = m.metrics_snapshot();
    assert_eq!((snap.regions_created, snap.regions_destroyed), (3, 1));
    Ok(())
}

#[test]
fn an_uncommitted_free_is_waited_for_not_reported() -> Result<(), ShmError> {
    let mut config = SharedMemoryConfig::development();
    config.lock_wait = Duration::from_secs(5);
    let m = SharedMemoryManager::new(config)?;
    let h = m.create_region(RegionRequest::new(8))?;
    let mut a = m.begin_transaction();
    resolve(&mut a, h, HOST_CONTEXT, Intent::Free);
    a.begin_free(h)?;
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let wait = Duration::from_secs(5);
            let mut b = m.begin_transaction();
            let result = b.resolve(h, HOST_CONTEXT, Intent::Read, None, wait);
            (result.map(drop), m.read_region(h, 0, &mut [0; 1]))
        });
        std::thread::sleep(Duration::from_millis(50));
        // A reverts: the free is undone, and the reader goes on.
        shm_journal::RegionOps::cancel_free(&mut a, h);
        a.release();
        assert_eq!(reader.join().unwrap(), (Ok(()), Ok(1)));
    });
    Ok(())
}

#[test]
fn pool_blocks_and_stats() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing())?;
    let block = m.allocate_from_pool(100)?;
    assert_eq!(block.class(), Some(SizeClass::K4));
    let h = m.create_region(RegionRequest::new(5000))?;
    m.map_shared_region(h, ALICE, MapOptions::empty())?;
    let tx = m.begin_transaction();
    tx.record_cow_pages(3, 1);
    let stats = m.get_memory_stats()?;
    assert_eq!((stats.active_regions, stats.total_bytes), (1, 5000));
    assert_eq!(stats.capacity_bytes, 64 << 10);
    assert_eq!((stats.mappings, stats.cow_pages), (1, 2));
    assert_eq!(stats.class(SizeClass::K4).allocated, 1);
    assert_eq!(stats.class(SizeClass::K64).utilization, 0.25);
    assert!(stats.fragmentation_ratio > 0.9);
    m.deallocate_to_pool(block)?;
    assert_eq!(m.get_memory_stats()?.class(SizeClass::K4).allocated, 0);
    tx.record_cow_pages(0, 10);
    assert_eq!(m.cow_pages(), 0);
    tx.release();

    let text = m.prometheus();
    assert!(text.contains("shm_regions_created_total 1\n"));
    assert!(text.contains("shm_region_bytes 5000\n"));
    assert!(text.contains("shm_pool_utilization_ratio{class=\"64KiB\"} 0.25\n"));
    assert_eq!(serde_json::to_value(&stats).unwrap()["total_bytes"], 5000);
    Ok(())
}

/// `TxRegions::read` and `write_saved` use a resolved region without its slot
/// lock while the transaction's bookkeeping says the bytes are still the
/// region's; every change that may move or retire them sends them back to the
/// locked path, which reports what happened instead of touching stale memory.
#[test]
fn access_without_the_slot_lock_stops_at_every_change_of_the_bytes() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development())?;
    let alices = RegionRequest::new(64).owner(ALICE);
    let h = m.create_region(alices.options(AllocFlags::AUTO_GROW.into()))?;
    m.write_region(h, 0, b"before")?;
    let mut tx = m.begin_transaction();
    let region = resolve(&mut tx, h, ALICE, Intent::Write);
    let mut buf = [0u8; 8];
    assert_eq!(tx.read(&region, 0, &mut buf[..6]), Ok(6));
    assert_eq!(&buf[..6], b"before");
    // Past the end: zeros, as under the lock. Offsets that overflow are
    // refused, not wrapped.
    let mut tail = [0xffu8; 8];
    assert_eq!(tx.read(&region, 60, &mut tail), Ok(4));
    assert_eq!(tail[4..], [0; 4]);
    let overflow = tx.read(&region, u64::MAX, &mut buf);
    assert!(matches!(overflow, Err(ShmError::OffsetOverflow { .. })));
    // A write inside the region, its pages saved (or nothing to revert).
    let outcome = tx.write_saved(&region, plan(&region, 40, 8), b"raw-byte")?;
    assert_eq!((outcome.written, outcome.grew()), (8, false));
    assert_eq!(tx.read(&region, 40, &mut buf), Ok(8));
    assert_eq!(&buf, b"raw-byte");

    // Growth past the block moves the bytes: the old resolution reads
    // through the lock, and the plan it made is stale.
    let big = vec![7u8; 64 * 1024];
    let grow = plan(&region, 0, big.len() as u64);
    assert!(tx.write(&region, grow, &big, &mut |_, _| {})?.grew());
    let mut after = [0u8; 4];
    assert_eq!(tx.read(&region, 1000, &mut after), Ok(4));
    assert_eq!(after, [7; 4], "read through the lock, from the new block");
    let stale = ShmError::StaleResolution(h);
    let late = tx.write_saved(&region, plan(&region, 0, 8), b"stale!!!");
    assert_eq!(late, Err(stale.clone()));

    // A host change of grants: the resolution is stale, raw or not.
    let fresh = resolve(&mut tx, h, ALICE, Intent::Write);
    assert_eq!(tx.read(&fresh, 0, &mut after), Ok(4));
    m.grant(h, BOB, Grant::new(Permissions::read_only()))?;
    assert_eq!(tx.read(&fresh, 0, &mut after), Err(stale.clone()));
    let late = tx.write_saved(&fresh, plan(&fresh, 0, 8), b"granted!");
    assert_eq!(late, Err(stale));

    // The transaction's own free: the handle stops working at once.
    let fresh = resolve(&mut tx, h, ALICE, Intent::Free);
    assert_eq!(tx.read(&fresh, 0, &mut buf), Ok(8));
    assert_eq!(buf, [7; 8], "neither stale write landed");
    tx.begin_free(h)?;
    let freed = Err(ShmError::RegionFreed(h));
    assert_eq!(tx.read(&fresh, 0, &mut after), freed);
    tx.release();

    // Bytes written without the lock are zeroed when the block is reused: a
    // 64-byte region written only that way, freed, and the next 64-byte
    // region (the same block, the pool's free list is last in, first out)
    // reads all zeros.
    let small = m.create_region(RegionRequest::new(64).owner(ALICE))?;
    let mut tx = m.begin_transaction();
    let region = resolve(&mut tx, small, ALICE, Intent::Write);
    tx.write_saved(&region, plan(&region, 56, 8), b"leak-me!")?;
    tx.release();
    m.free_region(small)?;
    let next = m.create_region(RegionRequest::new(64).owner(ALICE))?;
    let mut all = [0xffu8; 64];
    m.read_region(next, 0, &mut all)?;
    assert_eq!(all, [0; 64]);

    // A resolution kept past its transaction, used by another after the
    // region is gone: an error, never the old bytes nor a write into the
    // pool's memory.
    let mut first = m.begin_transaction();
    let kept = resolve(&mut first, next, ALICE, Intent::Write);
    first.release();
    m.free_region(next)?;
    let second = m.begin_transaction();
    let late = second.read(&kept, 0, &mut after);
    assert!(matches!(late, Err(ShmError::RegionFreed(_))));
    let late = second.write_saved(&kept, plan(&kept, 0, 8), b"too-late");
    assert!(matches!(late, Err(ShmError::RegionFreed(_))));
    second.release();
    Ok(())
}
