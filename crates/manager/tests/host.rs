//! The host API, access checks and the transaction layer's entry point.

use std::time::Duration;

use shm_manager::{
    Grant, Intent, LockMode, RegionRequest, SharedMemoryConfig, SharedMemoryManager, ShmError,
    SizeClass, TxId, HOST_CONTEXT,
};
use shm_primitives::{Address, MapOptions, Permissions, RegionOptions, SecurityLevel};
use shm_region::RegionSpec;

fn alice() -> Address {
    Address::repeat_byte(0xa1)
}
fn bob() -> Address {
    Address::repeat_byte(0xb0)
}
/// The options of a region that grows with writes past its end.
fn growing() -> RegionOptions {
    RegionOptions {
        auto_grow: true,
        ..RegionOptions::default()
    }
}

#[test]
fn create_write_read_find_info_free() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap();
    let h = m
        .create_shared_region(
            "a",
            100,
            Permissions::read_write(),
            RegionOptions::default(),
        )
        .unwrap();
    assert_eq!(m.find_region("a"), Ok(h));
    assert_eq!(
        m.create_shared_region("a", 1, Permissions::read_write(), RegionOptions::default()),
        Err(ShmError::NameTaken("a".into()))
    );
    // Past the end: write what fits, read zeros.
    assert_eq!(m.write_region(h, 96, b"abcdef"), Ok(4));
    let mut buf = [0xff; 8];
    assert_eq!(m.read_region(h, 96, &mut buf), Ok(4));
    assert_eq!(&buf, b"abcd\0\0\0\0");
    assert_eq!(m.read_region(h, 1000, &mut buf), Ok(0));
    assert_eq!(buf, [0; 8]);
    assert_eq!(
        m.write_region(h, u64::MAX, b"xy"),
        Err(ShmError::OffsetOverflow {
            offset: u64::MAX,
            len: 2
        })
    );

    let info = m.region_info(h).unwrap();
    assert_eq!(info.meta.owner(), HOST_CONTEXT);
    assert_eq!(info.meta.host_refs(), 1);
    assert_eq!(info.meta.size(), 100);
    assert_eq!(m.list_regions().unwrap().len(), 1);

    m.free_region(h).unwrap();
    assert_eq!(m.find_region("a"), Err(ShmError::NameNotFound("a".into())));
    assert_eq!(m.read_region(h, 0, &mut buf), Err(ShmError::RegionFreed(h)));
    assert_eq!(m.free_region(h), Err(ShmError::RegionFreed(h)));
    let never = shm_primitives::RegionHandle::new(77, 1).unwrap();
    assert_eq!(
        m.region_info(never).unwrap_err(),
        ShmError::InvalidRegionHandle(never)
    );

    let snap = m.metrics_snapshot();
    assert_eq!((snap.regions_created, snap.regions_destroyed), (1, 1));
    assert_eq!((snap.writes, snap.write_bytes), (1, 4));
    assert_eq!(snap.memory_bytes, 0);
}

#[test]
fn map_unmap_grant_revoke() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap();
    let h = m.create_region(RegionRequest::new(64)).unwrap();
    m.map_shared_region(h, alice(), MapOptions::COPY_ON_WRITE)
        .unwrap();
    let info = m.region_info(h).unwrap();
    assert!(info.meta.mapping(alice()).unwrap().copy_on_write());
    assert_eq!(info.meta.ref_count(), 2); // host reference + one mapping
    m.unmap_shared_region(h, alice()).unwrap();
    assert_eq!(
        m.unmap_shared_region(h, alice()),
        Err(ShmError::MappingNotFound {
            handle: h,
            context: alice()
        })
    );
    assert_eq!(m.grant(h, bob(), Grant::new(Permissions::READ)), Ok(None));
    assert_eq!(m.revoke(h, bob()), Ok(Some(Grant::new(Permissions::READ))));
    assert_eq!(m.revoke(h, bob()), Ok(None));
    let snap = m.metrics_snapshot();
    assert_eq!((snap.mappings, snap.unmappings), (1, 1));
}

#[test]
fn cow_off_maps_read_write_and_clears_region_cow() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap();
    let h = m
        .create_shared_region("r", 64, Permissions::read_write(), RegionOptions::default())
        .unwrap();
    assert!(!m.region_info(h).unwrap().meta.options().copy_on_write);
    m.map_shared_region(h, alice(), MapOptions::COPY_ON_WRITE)
        .unwrap();
    let info = m.region_info(h).unwrap();
    let mapping = info.meta.mapping(alice()).unwrap();
    assert!(!mapping.copy_on_write() && !mapping.read_only());
    // Read-only survives.
    assert_eq!(
        m.effective_map_options(MapOptions::COPY_ON_WRITE | MapOptions::READ_ONLY),
        MapOptions::READ_ONLY
    );
}

#[test]
fn auto_grow_up_to_the_region_maximum() {
    let mut config = SharedMemoryConfig::testing();
    config.max_region_size = 8192;
    let m = SharedMemoryManager::new(config).unwrap();
    let h = m
        .create_region(RegionRequest::new(10).options(growing()))
        .unwrap();
    assert_eq!(m.write_region(h, 8, b"0123456789"), Ok(10));
    assert_eq!(m.region_info(h).unwrap().meta.size(), 18);
    // Growth stops at max_region_size: what fits is written.
    assert_eq!(m.write_region(h, 8190, b"abcd"), Ok(2));
    assert_eq!(m.region_info(h).unwrap().meta.size(), 8192);
    assert_eq!(m.metrics_snapshot().memory_bytes, 8192);
}

#[test]
fn access_checks_apply_the_level_and_count_denials() {
    for (level, stranger_reads) in [
        (SecurityLevel::None, true),
        (SecurityLevel::Basic, false),
        (SecurityLevel::Strict, false),
        (SecurityLevel::Paranoid, false),
    ] {
        let config = SharedMemoryConfig {
            security_level: level,
            ..SharedMemoryConfig::development()
        };
        let m = SharedMemoryManager::new(config).unwrap();
        let h = m
            .create_region(RegionRequest::new(64).owner(alice()))
            .unwrap();
        let mut tx = m.begin_transaction();
        let mut check = |who, intent| tx.resolve(h, who, intent, None, Duration::ZERO).is_ok();
        assert_eq!(check(bob(), Intent::Read), stranger_reads, "{level:?}");
        // The owner needs a mapping from Strict up.
        assert_eq!(
            check(alice(), Intent::Write),
            level < SecurityLevel::Strict,
            "{level:?}"
        );
        assert!(check(alice(), Intent::Free));
        assert_eq!(check(bob(), Intent::Map), stranger_reads);
        tx.release();
        let denials = u64::from(!stranger_reads) * 2 + u64::from(level >= SecurityLevel::Strict);
        assert_eq!(m.metrics_snapshot().access_denials, denials, "{level:?}");
    }
}

#[test]
fn strict_refusals_have_typed_errors() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::production()).unwrap();
    let h = m
        .create_region(RegionRequest::new(64).owner(alice()))
        .unwrap();
    m.grant(h, bob(), Grant::new(Permissions::READ).with_free())
        .unwrap();
    m.map_shared_region(h, bob(), MapOptions::empty()).unwrap();
    let mut tx = m.begin_transaction();
    let mut check = |who, intent| tx.resolve(h, who, intent, None, Duration::ZERO).map(drop);
    assert_eq!(check(bob(), Intent::Read), Ok(()));
    assert_eq!(
        check(bob(), Intent::Write),
        Err(ShmError::NoWritePermission {
            handle: h,
            context: bob()
        })
    );
    assert_eq!(
        check(bob(), Intent::Free),
        Err(ShmError::NotOwner {
            handle: h,
            context: bob()
        })
    );
    assert_eq!(
        check(alice(), Intent::Read),
        Err(ShmError::MappingNotFound {
            handle: h,
            context: alice()
        })
    );
    // The transaction's own mapping counts as a mapping.
    assert_eq!(
        tx.resolve(
            h,
            alice(),
            Intent::Read,
            Some(MapOptions::empty()),
            Duration::ZERO
        )
        .map(drop),
        Ok(())
    );
    tx.release();
}

#[test]
fn transaction_regions_are_locked_then_freed_at_the_end() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap();
    let mut tx = m.begin_transaction();
    let next = m.begin_transaction();
    assert_eq!(next.id(), TxId(tx.id().0 + 1));
    next.release();
    let scoped = tx.create(RegionSpec::new(100, alice())).unwrap();
    let persistent = RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    };
    let kept = tx
        .create(RegionSpec::new(100, alice()).options(persistent))
        .unwrap();
    assert_eq!(tx.holds(scoped), Some(LockMode::Exclusive));
    // A host write waits for the transaction, then gives up.
    let host = m.create_region(RegionRequest::new(8)).unwrap();
    tx.resolve(host, HOST_CONTEXT, Intent::Read, None, Duration::ZERO)
        .unwrap();
    assert_eq!(tx.holds(host), Some(LockMode::Shared));
    assert_eq!(
        m.write_region(scoped, 0, b"x"),
        Err(ShmError::RegionBusy { handle: scoped })
    );
    // A host read shares with the transaction's shared lock.
    assert_eq!(m.read_region(host, 0, &mut [0; 4]), Ok(4));

    tx.free_scoped(&[(scoped, 100)]);
    assert_eq!(tx.release(), 3);
    assert_eq!(
        m.read_region(scoped, 0, &mut [0]),
        Err(ShmError::RegionFreed(scoped))
    );
    assert_eq!(m.write_region(kept, 0, b"x"), Ok(1));
    assert_eq!(m.write_region(host, 0, b"x"), Ok(1));
    assert!(m.locked_regions().is_empty());
    let snap = m.metrics_snapshot();
    assert_eq!((snap.regions_created, snap.regions_destroyed), (3, 1));
}

#[test]
fn a_dropped_transaction_releases_its_locks() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap();
    let h = m.create_region(RegionRequest::new(8)).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut tx = m.begin_transaction();
        tx.resolve(h, HOST_CONTEXT, Intent::Write, None, Duration::ZERO)
            .unwrap();
        panic!("an inspector panicked mid-transaction");
    }));
    assert!(result.is_err());
    assert!(m.locked_regions().is_empty());
    assert_eq!(m.write_region(h, 0, b"x"), Ok(1));
}

#[test]
fn an_uncommitted_free_is_waited_for_not_reported() {
    let config = SharedMemoryConfig {
        lock_wait: Duration::from_secs(5),
        ..SharedMemoryConfig::development()
    };
    let m = SharedMemoryManager::new(config).unwrap();
    let h = m.create_region(RegionRequest::new(8)).unwrap();
    let mut a = m.begin_transaction();
    a.resolve(h, HOST_CONTEXT, Intent::Free, None, Duration::ZERO)
        .unwrap();
    a.begin_free(h).unwrap();
    let reader = {
        let m = m.clone();
        std::thread::spawn(move || {
            let mut b = m.begin_transaction();
            let result = b
                .resolve(h, HOST_CONTEXT, Intent::Read, None, Duration::from_secs(5))
                .map(drop);
            let host = m.read_region(h, 0, &mut [0; 1]);
            (result, host)
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    // A reverts: the free is undone, and the reader goes on.
    shm_journal::RegionOps::cancel_free(&mut a, h);
    a.release();
    let (result, host) = reader.join().unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(host, Ok(1));
}

#[test]
fn freed_handle_stays_dead_after_its_slot_is_reused() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap();
    let old = m.create_region(RegionRequest::new(16)).unwrap();
    m.write_region(old, 0, b"old").unwrap();
    m.free_region(old).unwrap();
    let new = m.create_region(RegionRequest::new(16)).unwrap();
    assert_eq!(new.index(), old.index());
    assert!(new.generation() > old.generation());
    let mut buf = [0; 3];
    assert_eq!(m.read_region(new, 0, &mut buf), Ok(3));
    assert_eq!(buf, [0; 3]); // fresh and zeroed
    assert_eq!(
        m.write_region(old, 0, b"bad"),
        Err(ShmError::RegionFreed(old))
    );
    assert_eq!(
        m.map_shared_region(old, alice(), MapOptions::empty()),
        Err(ShmError::RegionFreed(old))
    );
    assert_eq!(m.free_region(old), Err(ShmError::RegionFreed(old)));
    assert_eq!(m.read_region(new, 0, &mut buf), Ok(3));
    assert_eq!(buf, [0; 3]);
}

#[test]
fn pool_blocks_and_stats() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap();
    let block = m.allocate_from_pool(100).unwrap();
    assert_eq!(block.class(), Some(SizeClass::K4));
    let h = m.create_region(RegionRequest::new(5000)).unwrap();
    m.map_shared_region(h, alice(), MapOptions::empty())
        .unwrap();
    let tx = m.begin_transaction();
    tx.record_cow_pages(3, 1);
    let stats = m.get_memory_stats().unwrap();
    assert_eq!((stats.active_regions, stats.total_bytes), (1, 5000));
    assert_eq!(stats.capacity_bytes, 64 << 10);
    assert_eq!((stats.mappings, stats.cow_pages), (1, 2));
    assert_eq!(stats.class(SizeClass::K4).allocated, 1);
    assert_eq!(stats.class(SizeClass::K64).utilization, 0.25);
    assert!(stats.fragmentation_ratio > 0.9);
    m.deallocate_to_pool(block).unwrap();
    assert_eq!(
        m.get_memory_stats().unwrap().class(SizeClass::K4).allocated,
        0
    );
    tx.record_cow_pages(0, 10);
    assert_eq!(m.cow_pages(), 0);
    tx.release();

    let text = m.prometheus();
    assert!(text.contains("shm_regions_created_total 1\n"));
    assert!(text.contains("shm_region_bytes 5000\n"));
    assert!(text.contains("shm_pool_utilization_ratio{class=\"64KiB\"} 0.25\n"));
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["total_bytes"], 5000);
}

#[test]
fn invalid_config_is_refused() {
    let config = SharedMemoryConfig {
        max_region_size: 8 << 20,
        large_alloc_limit: 4 << 20,
        ..SharedMemoryConfig::testing()
    };
    assert!(matches!(
        SharedMemoryManager::new(config),
        Err(ShmError::InvalidConfig(_))
    ));
}

/// `TxRegions::read` reads a resolved region without its slot lock while the
/// transaction's bookkeeping says the bytes are still the region's; every
/// change that may move or retire them sends it back to the locked path, which
/// reports what happened instead of reading stale memory.
#[test]
fn reads_without_the_slot_lock_stop_at_every_change_of_the_bytes() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap();
    let h = m
        .create_region(RegionRequest::new(64).owner(alice()).options(growing()))
        .unwrap();
    m.write_region(h, 0, b"before").unwrap();
    let mut tx = m.begin_transaction();
    let region = tx
        .resolve(h, alice(), Intent::Write, None, Duration::ZERO)
        .unwrap();
    let mut buf = [0u8; 6];
    assert_eq!(tx.read(&region, 0, &mut buf), Ok(6));
    assert_eq!(&buf, b"before");
    // Past the end: zeros, as under the lock.
    let mut tail = [0xffu8; 8];
    assert_eq!(tx.read(&region, 60, &mut tail), Ok(4));
    assert_eq!(tail[4..], [0; 4]);
    // Offsets that overflow are refused, not wrapped.
    assert!(matches!(
        tx.read(&region, u64::MAX, &mut buf),
        Err(ShmError::OffsetOverflow { .. })
    ));

    // Growth past the block moves the bytes: the old resolution must not be
    // read raw any more (the plan it made is stale too).
    let data = vec![7u8; 64 * 1024];
    let plan =
        shm_primitives::WritePlan::new(region.size, region.max_size, true, 0, data.len() as u64);
    let outcome = tx.write(&region, plan, &data, &mut |_, _| {}).unwrap();
    assert!(outcome.grew());
    let mut after = [0u8; 4];
    assert_eq!(tx.read(&region, 1000, &mut after), Ok(4));
    assert_eq!(after, [7; 4], "read through the lock, from the new block");

    // A host change of grants: the resolution is stale, raw or not.
    let fresh = tx
        .resolve(h, alice(), Intent::Read, None, Duration::ZERO)
        .unwrap();
    assert_eq!(tx.read(&fresh, 0, &mut after), Ok(4));
    m.grant(h, bob(), Grant::new(Permissions::read_only()))
        .unwrap();
    assert_eq!(
        tx.read(&fresh, 0, &mut after),
        Err(ShmError::StaleResolution(h))
    );

    // The transaction's own free: the handle stops working at once.
    let fresh = tx
        .resolve(h, alice(), Intent::Free, None, Duration::ZERO)
        .unwrap();
    tx.begin_free(h).unwrap();
    assert_eq!(
        tx.read(&fresh, 0, &mut after),
        Err(ShmError::RegionFreed(h))
    );
    tx.release();

    // A resolution kept past its transaction, used by another after the region
    // is gone: an error, never the old bytes.
    let other = m
        .create_region(RegionRequest::new(64).owner(alice()))
        .unwrap();
    let mut first = m.begin_transaction();
    let kept = first
        .resolve(other, alice(), Intent::Read, None, Duration::ZERO)
        .unwrap();
    first.release();
    m.free_region(other).unwrap();
    let second = m.begin_transaction();
    assert!(matches!(
        second.read(&kept, 0, &mut after),
        Err(ShmError::RegionFreed(_))
    ));
    second.release();
}

#[test]
fn writes_without_the_slot_lock_stop_at_every_change_and_leave_nothing_in_the_pool() {
    use shm_primitives::WritePlan;
    let m = SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap();
    let h = m
        .create_region(RegionRequest::new(64).owner(alice()).options(growing()))
        .unwrap();
    let mut tx = m.begin_transaction();
    let region = tx
        .resolve(h, alice(), Intent::Write, None, Duration::ZERO)
        .unwrap();
    // A write inside the region, its pages saved (or nothing to revert).
    let plan = |region: &shm_manager::Resolved, offset: u64, len: u64| {
        WritePlan::new(region.size, region.max_size, true, offset, len)
    };
    let outcome = tx
        .write_saved(&region, plan(&region, 40, 8), b"raw-byte")
        .unwrap();
    assert_eq!((outcome.written, outcome.grew()), (8, false));
    let mut buf = [0u8; 8];
    assert_eq!(tx.read(&region, 40, &mut buf), Ok(8));
    assert_eq!(&buf, b"raw-byte");

    // Growth moves the bytes: the old resolution's plan is stale, and the
    // write must not land in the old block.
    let big = vec![7u8; 64 * 1024];
    let grew = tx
        .write(
            &region,
            plan(&region, 0, big.len() as u64),
            &big,
            &mut |_, _| {},
        )
        .unwrap();
    assert!(grew.grew());
    assert_eq!(
        tx.write_saved(&region, plan(&region, 0, 8), b"stale!!!"),
        Err(ShmError::StaleResolution(h))
    );

    // A host change of grants: stale, raw or not.
    let fresh = tx
        .resolve(h, alice(), Intent::Write, None, Duration::ZERO)
        .unwrap();
    m.grant(h, bob(), Grant::new(Permissions::read_only()))
        .unwrap();
    assert_eq!(
        tx.write_saved(&fresh, plan(&fresh, 0, 8), b"granted!"),
        Err(ShmError::StaleResolution(h))
    );
    tx.release();
    let mut host = [0u8; 8];
    m.read_region(h, 0, &mut host).unwrap();
    assert_eq!(host, [7; 8], "neither stale write landed");

    // Bytes written without the lock are zeroed when the block is reused: a
    // 64-byte region written only that way, freed, and the next 64-byte
    // region (the same block, the pool's free list is last in, first out)
    // reads all zeros.
    let small = m
        .create_region(RegionRequest::new(64).owner(alice()))
        .unwrap();
    let mut tx = m.begin_transaction();
    let region = tx
        .resolve(small, alice(), Intent::Write, None, Duration::ZERO)
        .unwrap();
    tx.write_saved(&region, plan(&region, 56, 8), b"leak-me!")
        .unwrap();
    tx.release();
    m.free_region(small).unwrap();
    let next = m
        .create_region(RegionRequest::new(64).owner(alice()))
        .unwrap();
    let mut all = [0xffu8; 64];
    m.read_region(next, 0, &mut all).unwrap();
    assert_eq!(all, [0; 64]);

    // A resolution kept past its transaction, used by another after the
    // region is gone: an error, never a write into the pool's memory.
    let mut first = m.begin_transaction();
    let kept = first
        .resolve(next, alice(), Intent::Write, None, Duration::ZERO)
        .unwrap();
    first.release();
    m.free_region(next).unwrap();
    let second = m.begin_transaction();
    assert!(matches!(
        second.write_saved(&kept, plan(&kept, 0, 8), b"too-late"),
        Err(ShmError::RegionFreed(_))
    ));
    second.release();
}
