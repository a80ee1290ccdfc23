//! Garbage collection: what goes, what stays, and when it runs by itself.

use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use shm_manager::{
    Intent, RegionRequest, SharedMemoryConfig, SharedMemoryManager, ShmError, HOST_CONTEXT,
};
use shm_primitives::{Address, AllocFlags, MapOptions};
use shm_region::RegionSpec;

/// A manager on the `testing` preset after `edit`.
fn manager(edit: impl FnOnce(&mut SharedMemoryConfig)) -> Arc<SharedMemoryManager> {
    let mut config = SharedMemoryConfig::testing();
    edit(&mut config);
    SharedMemoryManager::new(config).unwrap()
}

fn persistent(size: u64) -> RegionRequest {
    RegionRequest::new(size).options(AllocFlags::PERSISTENT.into())
}

#[test]
fn unreferenced_non_persistent_regions_go_the_rest_stay() -> Result<(), ShmError> {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development())?;
    let ctx = Address::repeat_byte(5);
    let released = m.create_region(RegionRequest::new(100))?;
    let held = m.create_region(RegionRequest::new(200))?;
    let kept = m.create_region(persistent(300))?;
    let mapped = m.create_region(RegionRequest::new(400))?;
    let locked = m.create_region(RegionRequest::new(500))?;
    for h in [released, kept, mapped, locked] {
        assert_eq!(m.release_region(h), Ok(0));
    }
    m.map_shared_region(mapped, ctx, MapOptions::empty())?;
    let mut reader = m.begin_transaction();
    reader.resolve(locked, HOST_CONTEXT, Intent::Read, None, Duration::ZERO)?;
    // A running transaction's own region: locked (and owner-mapped by the
    // transaction layer, which this test does not need).
    let mut tx = m.begin_transaction();
    let tx_region = tx.create(RegionSpec::new(600, ctx))?;

    let report = m.garbage_collect()?;
    assert_eq!(report.regions_freed, vec![released]);
    assert_eq!(report.bytes_freed, 100);
    let freed = Err(ShmError::RegionFreed(released));
    assert_eq!(m.read_region(released, 0, &mut [0]), freed);
    for h in [held, kept, mapped, locked, tx_region] {
        assert!(m.region_info(h).is_ok(), "{h:?} survived");
    }

    // Once unmapped and unlocked, they go too; the persistent one never does.
    m.unmap_shared_region(mapped, ctx)?;
    reader.release();
    assert_eq!(m.garbage_collect()?.regions_freed, vec![mapped, locked]);
    m.release_region(held)?;
    tx.free_scoped(&[(tx_region, 600)]);
    tx.release();
    assert_eq!(m.garbage_collect()?.regions_freed, vec![held]);
    assert_eq!(m.list_regions()?.len(), 1);
    assert!(m.region_info(kept).is_ok());

    let snap = m.metrics_snapshot();
    assert_eq!(snap.gc_runs, 3);
    assert_eq!(snap.memory_bytes, 300);
    assert_eq!(snap.active_regions, 1);
    Ok(())
}

#[test]
fn gc_compacts_pools_and_retain_keeps_a_region_alive() -> Result<(), ShmError> {
    let m = manager(|_| {});
    // Sixteen 4 KiB blocks, retain floor 8: eight are given back.
    assert!(m.garbage_collect()?.pool_bytes_compacted >= 8 * 4096);
    let reserved = m.get_memory_stats()?.pool_reserved_bytes;
    assert!(reserved < SharedMemoryConfig::testing().pool_config().classed_bytes());
    // Compacted blocks come back on demand.
    let blocks: Vec<_> = (0..16).map(|_| m.allocate_from_pool(4096)).collect();
    assert!(blocks.iter().all(Result::is_ok));

    let h = m.create_region(RegionRequest::new(8))?;
    assert_eq!(m.retain_region(h), Ok(2));
    assert_eq!(m.release_region(h), Ok(1));
    assert!(m.garbage_collect()?.regions_freed.is_empty());
    assert_eq!(m.release_region(h), Ok(0));
    assert_eq!(m.release_region(h), Ok(0)); // never below zero
                                            // Without eager cleanup, unreferenced regions wait for the GC.
    assert!(m.region_info(h).is_ok());
    assert_eq!(m.garbage_collect()?.regions_freed, vec![h]);
    Ok(())
}

#[test]
fn interval_trigger() -> Result<(), ShmError> {
    let m = manager(|c| c.gc_interval_ms = 30);
    let h = m.create_region(RegionRequest::new(8))?;
    m.release_region(h)?;
    // The interval counts from the manager's creation.
    assert_eq!(m.maybe_collect(), None);
    sleep(Duration::from_millis(40));
    let report = m.maybe_collect().expect("interval passed");
    assert_eq!(report.regions_freed, vec![h]);
    // Just ran: not due again.
    assert_eq!(m.maybe_collect(), None);
    sleep(Duration::from_millis(40));
    // Transaction ends trigger it.
    m.begin_transaction().release();
    assert_eq!(m.metrics_snapshot().gc_runs, 2);
    Ok(())
}

#[test]
fn threshold_trigger() -> Result<(), ShmError> {
    let m = manager(|c| {
        c.gc_threshold_mb = 1;
        c.pool_blocks = [64, 16, 4, 2];
    });
    let big = m.create_region(RegionRequest::new(1 << 20))?;
    m.release_region(big)?;
    // Exactly at the threshold is not above it.
    assert_eq!(m.maybe_collect(), None);
    let small = m.create_region(RegionRequest::new(64))?;
    let report = m.maybe_collect().expect("above threshold");
    // `small` still holds its host reference.
    assert_eq!(report.regions_freed, vec![big]);
    assert_eq!(report.bytes_freed, 1 << 20);
    assert_eq!(m.maybe_collect(), None); // below again
    assert!(m.region_info(small).is_ok());

    // Above the threshold with nothing to free: one run, then quiet until
    // memory changes.
    let pinned = m.create_region(RegionRequest::new(1 << 20))?;
    assert!(m.maybe_collect().is_some());
    assert_eq!(m.maybe_collect(), None);
    m.release_region(pinned)?;
    m.create_region(RegionRequest::new(8))?;
    assert_eq!(m.maybe_collect().unwrap().regions_freed, vec![pinned]);
    Ok(())
}

#[test]
fn eager_cleanup_frees_on_last_reference() -> Result<(), ShmError> {
    let m = manager(|c| c.eager_cleanup = true);
    let ctx = Address::repeat_byte(3);
    let h = m.create_region(RegionRequest::new(8))?;
    m.map_shared_region(h, ctx, MapOptions::empty())?;
    m.release_region(h)?;
    assert!(m.region_info(h).is_ok(), "still mapped");
    m.unmap_shared_region(h, ctx)?;
    assert_eq!(m.region_info(h).unwrap_err(), ShmError::RegionFreed(h));

    let p = m.create_region(persistent(8))?;
    m.release_region(p)?;
    assert!(m.region_info(p).is_ok(), "persistent stays");
    Ok(())
}
