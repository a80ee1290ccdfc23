//! The host API, access checks and the transaction layer's entry point.

use std::time::Duration;

use shm_manager::{
    Grant, Intent, LockMode, RegionRequest, Resolved, SharedMemoryConfig, SharedMemoryManager,
    ShmError, SizeClass, TxId, TxRegions, HOST_CONTEXT,
};
use shm_primitives::{
    Address, MapOptions, Permissions, RegionHandle, RegionOptions, SecurityLevel, WritePlan,
};
use shm_region::RegionSpec;

const ALICE: Address = Address::repeat_byte(0xa1);
const BOB: Address = Address::repeat_byte(0xb0);

/// The options of a region that grows with writes past its end.
fn growing() -> RegionOptions {
    RegionOptions {
        auto_grow: true,
        ..RegionOptions::default()
    }
}

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
fn map_unmap_grant_revoke() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development())?;
    let h = m.create_region(RegionRequest::new(64))?;
    m.map_shared_region(h, ALICE, MapOptions::COPY_ON_WRITE)?;
    let info = m.region_info(h)?;
    assert!(info.meta.mapping(ALICE).unwrap().copy_on_write());
    assert_eq!(info.meta.ref_count(), 2); // host reference + one mapping
    m.unmap_shared_region(h, ALICE)?;
    let (handle, context) = (h, ALICE);
    let missing = ShmError::MappingNotFound { handle, context };
    assert_eq!(m.unmap_shared_region(h, ALICE), Err(missing));
    assert_eq!(m.grant(h, BOB, Grant::new(Permissions::READ)), Ok(None));
    assert_eq!(m.revoke(h, BOB), Ok(Some(Grant::new(Permissions::READ))));
    assert_eq!(m.revoke(h, BOB), Ok(None));
    let snap = m.metrics_snapshot();
    assert_eq!((snap.mappings, snap.unmappings), (1, 1));
    Ok(())
}

#[test]
fn cow_off_maps_read_write_and_clears_region_cow() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing())?;
    let rw = Permissions::read_write();
    let h = m.create_shared_region("r", 64, rw, RegionOptions::default())?;
    assert!(!m.region_info(h)?.meta.options().copy_on_write);
    m.map_shared_region(h, ALICE, MapOptions::COPY_ON_WRITE)?;
    let info = m.region_info(h)?;
    let mapping = info.meta.mapping(ALICE).unwrap();
    assert!(!mapping.copy_on_write() && !mapping.read_only());
    // Read-only survives.
    let cow_ro = MapOptions::COPY_ON_WRITE | MapOptions::READ_ONLY;
    assert_eq!(m.effective_map_options(cow_ro), MapOptions::READ_ONLY);
    Ok(())
}

#[test]
fn auto_grow_up_to_the_region_maximum() -> Result<(), ShmError> {
    let mut config = SharedMemoryConfig::testing();
    config.max_region_size = 8192;
    let m = SharedMemoryManager::new(config)?;
    let h = m.create_region(RegionRequest::new(10).options(growing()))?;
    assert_eq!(m.write_region(h, 8, b"0123456789"), Ok(10));
    assert_eq!(m.region_info(h)?.meta.size(), 18);
    // Growth stops at max_region_size: what fits is written.
    assert_eq!(m.write_region(h, 8190, b"abcd"), Ok(2));
    assert_eq!(m.region_info(h)?.meta.size(), 8192);
    assert_eq!(m.metrics_snapshot().memory_bytes, 8192);
    Ok(())
}

#[test]
fn access_checks_apply_the_level_and_count_denials() -> Result<(), ShmError> {
    use SecurityLevel as L;
    for level in [L::None, L::Basic, L::Strict, L::Paranoid] {
        let stranger_reads = level == L::None;
        let mut config = SharedMemoryConfig::development();
        config.security_level = level;
        let m = SharedMemoryManager::new(config)?;
        let h = m.create_region(RegionRequest::new(64).owner(ALICE))?;
        let mut tx = m.begin_transaction();
        let mut check = |who, intent| tx.resolve(h, who, intent, None, Duration::ZERO).is_ok();
        assert_eq!(check(BOB, Intent::Read), stranger_reads, "{level:?}");
        // The owner needs a mapping from Strict up.
        assert_eq!(check(ALICE, Intent::Write), level < L::Strict, "{level:?}");
        assert!(check(ALICE, Intent::Free));
        assert_eq!(check(BOB, Intent::Map), stranger_reads);
        tx.release();
        let denials = u64::from(!stranger_reads) * 2 + u64::from(level >= L::Strict);
        assert_eq!(m.metrics_snapshot().access_denials, denials, "{level:?}");
    }
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
    let persistent = RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    };
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
fn a_dropped_transaction_releases_its_locks() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development())?;
    let h = m.create_region(RegionRequest::new(8))?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut tx = m.begin_transaction();
        resolve(&mut tx, h, HOST_CONTEXT, Intent::Write);
        panic!("an inspector panicked mid-transaction");
    }));
    assert!(result.is_err());
    assert!(m.locked_regions().is_empty());
    assert_eq!(m.write_region(h, 0, b"x"), Ok(1));
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
fn freed_handle_stays_dead_after_its_slot_is_reused() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing())?;
    let old = m.create_region(RegionRequest::new(16))?;
    m.write_region(old, 0, b"old")?;
    m.free_region(old)?;
    let new = m.create_region(RegionRequest::new(16))?;
    assert_eq!(new.index(), old.index());
    assert!(new.generation() > old.generation());
    let mut buf = [0; 3];
    assert_eq!(m.read_region(new, 0, &mut buf), Ok(3));
    assert_eq!(buf, [0; 3]); // fresh and zeroed
    let freed = ShmError::RegionFreed(old);
    assert_eq!(m.write_region(old, 0, b"bad"), Err(freed.clone()));
    let map = m.map_shared_region(old, ALICE, MapOptions::empty());
    assert_eq!(map, Err(freed.clone()));
    assert_eq!(m.free_region(old), Err(freed));
    assert_eq!(m.read_region(new, 0, &mut buf), Ok(3));
    assert_eq!(buf, [0; 3]);
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

#[test]
fn invalid_config_is_refused() {
    let mut config = SharedMemoryConfig::testing();
    config.max_region_size = 8 << 20;
    config.large_alloc_limit = 4 << 20;
    let err = SharedMemoryManager::new(config).unwrap_err();
    assert!(matches!(err, ShmError::InvalidConfig(_)), "{err}");
}

/// `TxRegions::read` reads a resolved region without its slot lock while the
/// transaction's bookkeeping says the bytes are still the region's; every
/// change that may move or retire them sends it back to the locked path, which
/// reports what happened instead of reading stale memory.
#[test]
fn reads_without_the_slot_lock_stop_at_every_change_of_the_bytes() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development())?;
    let h = m.create_region(RegionRequest::new(64).owner(ALICE).options(growing()))?;
    m.write_region(h, 0, b"before")?;
    let mut tx = m.begin_transaction();
    let region = resolve(&mut tx, h, ALICE, Intent::Write);
    let mut buf = [0u8; 6];
    assert_eq!(tx.read(&region, 0, &mut buf), Ok(6));
    assert_eq!(&buf, b"before");
    // Past the end: zeros, as under the lock.
    let mut tail = [0xffu8; 8];
    assert_eq!(tx.read(&region, 60, &mut tail), Ok(4));
    assert_eq!(tail[4..], [0; 4]);
    // Offsets that overflow are refused, not wrapped.
    let overflow = tx.read(&region, u64::MAX, &mut buf);
    assert!(matches!(overflow, Err(ShmError::OffsetOverflow { .. })));

    // Growth past the block moves the bytes: the old resolution must not be
    // read raw any more (the plan it made is stale too).
    let data = vec![7u8; 64 * 1024];
    let grow = plan(&region, 0, data.len() as u64);
    assert!(tx.write(&region, grow, &data, &mut |_, _| {})?.grew());
    let mut after = [0u8; 4];
    assert_eq!(tx.read(&region, 1000, &mut after), Ok(4));
    assert_eq!(after, [7; 4], "read through the lock, from the new block");

    // A host change of grants: the resolution is stale, raw or not.
    let fresh = resolve(&mut tx, h, ALICE, Intent::Read);
    assert_eq!(tx.read(&fresh, 0, &mut after), Ok(4));
    m.grant(h, BOB, Grant::new(Permissions::read_only()))?;
    let stale = Err(ShmError::StaleResolution(h));
    assert_eq!(tx.read(&fresh, 0, &mut after), stale);

    // The transaction's own free: the handle stops working at once.
    let fresh = resolve(&mut tx, h, ALICE, Intent::Free);
    tx.begin_free(h)?;
    let freed = Err(ShmError::RegionFreed(h));
    assert_eq!(tx.read(&fresh, 0, &mut after), freed);
    tx.release();

    // A resolution kept past its transaction, used by another after the region
    // is gone: an error, never the old bytes.
    let other = m.create_region(RegionRequest::new(64).owner(ALICE))?;
    let mut first = m.begin_transaction();
    let kept = resolve(&mut first, other, ALICE, Intent::Read);
    first.release();
    m.free_region(other)?;
    let second = m.begin_transaction();
    let late = second.read(&kept, 0, &mut after);
    assert!(matches!(late, Err(ShmError::RegionFreed(_))));
    second.release();
    Ok(())
}

#[test]
fn writes_without_the_slot_lock_stop_at_every_change_and_leave_nothing_in_the_pool(
) -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development())?;
    let h = m.create_region(RegionRequest::new(64).owner(ALICE).options(growing()))?;
    let mut tx = m.begin_transaction();
    let region = resolve(&mut tx, h, ALICE, Intent::Write);
    // A write inside the region, its pages saved (or nothing to revert).
    let outcome = tx.write_saved(&region, plan(&region, 40, 8), b"raw-byte")?;
    assert_eq!((outcome.written, outcome.grew()), (8, false));
    let mut buf = [0u8; 8];
    assert_eq!(tx.read(&region, 40, &mut buf), Ok(8));
    assert_eq!(&buf, b"raw-byte");

    // Growth moves the bytes: the old resolution's plan is stale, and the
    // write must not land in the old block.
    let big = vec![7u8; 64 * 1024];
    let grow = plan(&region, 0, big.len() as u64);
    assert!(tx.write(&region, grow, &big, &mut |_, _| {})?.grew());
    let stale = Err(ShmError::StaleResolution(h));
    let late = tx.write_saved(&region, plan(&region, 0, 8), b"stale!!!");
    assert_eq!(late, stale);

    // A host change of grants: stale, raw or not.
    let fresh = resolve(&mut tx, h, ALICE, Intent::Write);
    m.grant(h, BOB, Grant::new(Permissions::read_only()))?;
    let late = tx.write_saved(&fresh, plan(&fresh, 0, 8), b"granted!");
    assert_eq!(late, stale);
    tx.release();
    let mut host = [0u8; 8];
    m.read_region(h, 0, &mut host)?;
    assert_eq!(host, [7; 8], "neither stale write landed");

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
    // region is gone: an error, never a write into the pool's memory.
    let mut first = m.begin_transaction();
    let kept = resolve(&mut first, next, ALICE, Intent::Write);
    first.release();
    m.free_region(next)?;
    let second = m.begin_transaction();
    let late = second.write_saved(&kept, plan(&kept, 0, 8), b"too-late");
    assert!(matches!(late, Err(ShmError::RegionFreed(_))));
    second.release();
    Ok(())
}
