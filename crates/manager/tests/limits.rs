//! One test per limit of the config: each surfaces as its typed error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_manager::{
    Grant, Intent, RegionRequest, SharedMemoryConfig, SharedMemoryManager, ShmError, SizeClass,
};
use shm_primitives::{Address, AllocFlags, MapOptions, Permissions, RegionHandle, RegionOptions};
use shm_region::RegionSpec;

fn testing() -> Arc<SharedMemoryManager> {
    SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap()
}

#[test]
fn max_regions() -> Result<(), ShmError> {
    let m = testing();
    let handles = (0..32)
        .map(|_| m.create_region(RegionRequest::new(8)))
        .collect::<Result<Vec<_>, _>>()?;
    let too_many = Err(ShmError::TooManySharedRegions { limit: 32 });
    assert_eq!(m.create_region(RegionRequest::new(8)), too_many);
    let mut tx = m.begin_transaction();
    assert_eq!(tx.create(RegionSpec::new(8, Address::ZERO)), too_many);
    tx.release();
    m.free_region(handles[5])?;
    assert!(m.create_region(RegionRequest::new(8)).is_ok());
    assert_eq!(m.get_memory_stats()?.active_regions, 32);
    Ok(())
}

#[test]
fn persistent_regions_leave_a_reserve_for_transaction_scoped_ones() -> Result<(), ShmError> {
    // testing: 32 regions, at most 24 persistent.
    let m = testing();
    let persistent = AllocFlags::PERSISTENT.into();
    let request = || RegionRequest::new(32).options(persistent);
    for _ in 0..24 {
        m.create_region(request())?;
    }
    let too_many = Err(ShmError::TooManyPersistentRegions { limit: 24 });
    assert_eq!(m.create_region(request()), too_many);
    let mut tx = m.begin_transaction();
    let owner = Address::repeat_byte(7);
    let spec = RegionSpec::new(32, owner).options(persistent);
    assert_eq!(tx.create(spec), too_many);
    // Every transaction-scoped slot is still there.
    for _ in 0..8 {
        tx.create(RegionSpec::new(32, owner))?;
    }
    tx.release();
    Ok(())
}

#[test]
fn max_region_size() -> Result<(), ShmError> {
    let m = testing();
    let max = 1 << 20;
    for (request, requested, max) in [
        (RegionRequest::new(max + 1), max + 1, max),
        (RegionRequest::new(100).max_size(64), 100, 64),
    ] {
        let too_large = ShmError::RegionTooLarge { requested, max };
        assert_eq!(m.create_region(request), Err(too_large), "{requested}");
    }
    let empty = RegionRequest::new(0);
    assert_eq!(m.create_region(empty), Err(ShmError::ZeroSize));
    let h = m.create_region(RegionRequest::new(max))?;
    assert_eq!(m.region_info(h)?.meta.size(), max);
    // A failed create leaves nothing behind.
    assert_eq!(m.get_memory_stats()?.active_regions, 1);
    Ok(())
}

#[test]
fn pool_exhaustion_per_class() -> Result<(), ShmError> {
    // testing: 64 / 16 / 4 / 1 blocks. Smaller classes fall back to larger
    // free blocks, so exhaust from the largest class down.
    use SizeClass::{B64, K4, K64, M1};
    let m = testing();
    let mut held = Vec::new();
    for (class, capacity) in [(M1, 1), (K64, 4), (K4, 16), (B64, 64)] {
        for _ in 0..capacity {
            let block = m.allocate_from_pool(class.bytes())?;
            assert_eq!(block.class(), Some(class));
            held.push(block);
        }
        let exhausted = ShmError::PoolExhausted { class, capacity };
        assert_eq!(m.allocate_from_pool(class.bytes()).unwrap_err(), exhausted);
    }
    assert_eq!(m.allocate_from_pool(0).unwrap_err(), ShmError::ZeroSize);
    // Regions draw on the same pool.
    let (class, capacity) = (B64, 64);
    let exhausted = Err(ShmError::PoolExhausted { class, capacity });
    assert_eq!(m.create_region(RegionRequest::new(10)), exhausted);
    m.deallocate_to_pool(held.pop().unwrap())?;
    assert!(m.create_region(RegionRequest::new(10)).is_ok());
    Ok(())
}

#[test]
fn large_alloc_limit() -> Result<(), ShmError> {
    let mut config = SharedMemoryConfig::testing();
    config.max_region_size = 4 << 20;
    config.large_alloc_limit = 4 << 20;
    let m = SharedMemoryManager::new(config)?;
    let first = m.create_region(RegionRequest::new(3 << 20))?;
    let refused = ShmError::LargeAllocLimit {
        requested: 2 << 20,
        in_use: 3 << 20,
        limit: 4 << 20,
    };
    assert_eq!(m.create_region(RegionRequest::new(2 << 20)), Err(refused));
    m.free_region(first)?;
    assert!(m.create_region(RegionRequest::new(2 << 20)).is_ok());
    Ok(())
}

#[test]
fn lock_wait_bounds_host_calls() -> Result<(), ShmError> {
    let wait = Duration::from_millis(40);
    let mut config = SharedMemoryConfig::testing();
    config.lock_wait = wait;
    let m = SharedMemoryManager::new(config)?;
    let h = m.create_region(RegionRequest::new(64))?;
    let mut tx = m.begin_transaction();
    tx.resolve(h, Address::ZERO, Intent::Write, None, Duration::ZERO)?;
    let start = Instant::now();
    let busy = ShmError::RegionBusy { handle: h };
    assert_eq!(m.read_region(h, 0, &mut [0; 4]), Err(busy.clone()));
    let waited = start.elapsed();
    assert!(waited >= wait, "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(m.free_region(h), Err(busy));
    tx.release();
    assert_eq!(m.read_region(h, 0, &mut [0; 4]), Ok(4));
    assert_eq!(m.free_region(h), Ok(()));
    Ok(())
}

#[test]
fn disabled_refuses_everything() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::disabled()).unwrap();
    let h = RegionHandle::new(1, 1).unwrap();
    let ctx = Address::repeat_byte(1);
    let (rw, plain) = (Permissions::read_write(), RegionOptions::default());
    // Each call is refused; a failure names the call.
    macro_rules! refused {
        ($($call:expr,)*) => {$(
            let result = $call.map(drop);
            assert_eq!(result, Err(ShmError::SharedMemoryDisabled), "{}", stringify!($call));
        )*};
    }
    refused! {
        m.create_shared_region("x", 8, rw, plain),
        m.create_region(RegionRequest::new(8)),
        m.begin_transaction().create(RegionSpec::new(8, ctx)),
        m.begin_transaction().resolve(h, ctx, Intent::Read, None, Duration::ZERO),
        m.map_shared_region(h, ctx, MapOptions::empty()),
        m.unmap_shared_region(h, ctx),
        m.read_region(h, 0, &mut [0; 1]),
        m.write_region(h, 0, &[1]),
        m.grant(h, ctx, Grant::default()),
        m.revoke(h, ctx),
        m.retain_region(h),
        m.release_region(h),
        m.free_region(h),
        m.region_info(h),
        m.list_regions(),
        m.find_region("x"),
        m.allocate_from_pool(8),
        m.get_memory_stats(),
        m.garbage_collect(),
    }
    assert_eq!(m.maybe_collect(), None);
}
