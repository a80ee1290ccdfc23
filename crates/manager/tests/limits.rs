//! One test per limit of the config: each surfaces as its typed error.

use std::time::{Duration, Instant};

use shm_manager::{
    Grant, Intent, RegionRequest, SharedMemoryConfig, SharedMemoryManager, ShmError, SizeClass,
};
use shm_primitives::{Address, MapOptions, Permissions, RegionHandle, RegionOptions};
use shm_region::RegionSpec;

#[test]
fn max_regions() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap();
    let handles: Vec<_> = (0..32)
        .map(|_| m.create_region(RegionRequest::new(8)).unwrap())
        .collect();
    assert_eq!(
        m.create_region(RegionRequest::new(8)),
        Err(ShmError::TooManySharedRegions { limit: 32 })
    );
    let mut tx = m.begin_transaction();
    assert_eq!(
        tx.create(RegionSpec::new(8, Address::ZERO)),
        Err(ShmError::TooManySharedRegions { limit: 32 })
    );
    tx.release();
    m.free_region(handles[5]).unwrap();
    assert!(m.create_region(RegionRequest::new(8)).is_ok());
    assert_eq!(m.get_memory_stats().unwrap().active_regions, 32);
}

#[test]
fn persistent_regions_leave_a_reserve_for_transaction_scoped_ones() {
    // testing: 32 regions, at most 24 persistent.
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap();
    let persistent = RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    };
    for _ in 0..24 {
        m.create_region(RegionRequest::new(32).options(persistent))
            .unwrap();
    }
    assert_eq!(
        m.create_region(RegionRequest::new(32).options(persistent)),
        Err(ShmError::TooManyPersistentRegions { limit: 24 })
    );
    let mut tx = m.begin_transaction();
    let owner = Address::repeat_byte(7);
    assert_eq!(
        tx.create(RegionSpec::new(32, owner).options(persistent)),
        Err(ShmError::TooManyPersistentRegions { limit: 24 })
    );
    // Every transaction-scoped slot is still there.
    for _ in 0..8 {
        tx.create(RegionSpec::new(32, owner)).unwrap();
    }
    tx.release();
}

#[test]
fn max_region_size() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap();
    let max = 1 << 20;
    assert_eq!(
        m.create_region(RegionRequest::new(max + 1)),
        Err(ShmError::RegionTooLarge {
            requested: max + 1,
            max
        })
    );
    assert_eq!(
        m.create_region(RegionRequest::new(100).max_size(64)),
        Err(ShmError::RegionTooLarge {
            requested: 100,
            max: 64
        })
    );
    assert_eq!(
        m.create_region(RegionRequest::new(0)),
        Err(ShmError::ZeroSize)
    );
    let h = m.create_region(RegionRequest::new(max)).unwrap();
    assert_eq!(m.region_info(h).unwrap().meta.size(), max);
    // A failed create leaves nothing behind.
    assert_eq!(m.get_memory_stats().unwrap().active_regions, 1);
}

#[test]
fn pool_exhaustion_per_class() {
    // testing: 64 / 16 / 4 / 1 blocks. Smaller classes fall back to larger
    // free blocks, so exhaust from the largest class down.
    let m = SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap();
    let mut held = Vec::new();
    for (class, count) in [
        (SizeClass::M1, 1),
        (SizeClass::K64, 4),
        (SizeClass::K4, 16),
        (SizeClass::B64, 64),
    ] {
        for _ in 0..count {
            let block = m.allocate_from_pool(class.bytes()).unwrap();
            assert_eq!(block.class(), Some(class));
            held.push(block);
        }
        assert_eq!(
            m.allocate_from_pool(class.bytes()).unwrap_err(),
            ShmError::PoolExhausted {
                class,
                capacity: count
            }
        );
    }
    assert_eq!(m.allocate_from_pool(0).unwrap_err(), ShmError::ZeroSize);
    // Regions draw on the same pool.
    assert_eq!(
        m.create_region(RegionRequest::new(10)),
        Err(ShmError::PoolExhausted {
            class: SizeClass::B64,
            capacity: 64
        })
    );
    let block = held.pop().unwrap();
    m.deallocate_to_pool(block).unwrap();
    assert!(m.create_region(RegionRequest::new(10)).is_ok());
}

#[test]
fn large_alloc_limit() {
    let config = SharedMemoryConfig {
        max_region_size: 4 << 20,
        large_alloc_limit: 4 << 20,
        ..SharedMemoryConfig::testing()
    };
    let m = SharedMemoryManager::new(config).unwrap();
    let first = m.create_region(RegionRequest::new(3 << 20)).unwrap();
    assert_eq!(
        m.create_region(RegionRequest::new(2 << 20)),
        Err(ShmError::LargeAllocLimit {
            requested: 2 << 20,
            in_use: 3 << 20,
            limit: 4 << 20
        })
    );
    m.free_region(first).unwrap();
    assert!(m.create_region(RegionRequest::new(2 << 20)).is_ok());
}

#[test]
fn lock_wait_bounds_host_calls() {
    let wait = Duration::from_millis(40);
    let config = SharedMemoryConfig {
        lock_wait: wait,
        ..SharedMemoryConfig::testing()
    };
    let m = SharedMemoryManager::new(config).unwrap();
    let h = m.create_region(RegionRequest::new(64)).unwrap();
    let mut tx = m.begin_transaction();
    tx.resolve(h, Address::ZERO, Intent::Write, None, Duration::ZERO)
        .unwrap();
    let start = Instant::now();
    assert_eq!(
        m.read_region(h, 0, &mut [0; 4]),
        Err(ShmError::RegionBusy { handle: h })
    );
    let waited = start.elapsed();
    assert!(waited >= wait, "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(m.free_region(h), Err(ShmError::RegionBusy { handle: h }));
    tx.release();
    assert_eq!(m.read_region(h, 0, &mut [0; 4]), Ok(4));
    assert_eq!(m.free_region(h), Ok(()));
}

#[test]
fn disabled_refuses_everything() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::disabled()).unwrap();
    let h = RegionHandle::new(1, 1).unwrap();
    let ctx = Address::repeat_byte(1);
    let off = Err::<(), _>(ShmError::SharedMemoryDisabled);
    assert_eq!(
        m.create_shared_region("x", 8, Permissions::read_write(), RegionOptions::default())
            .map(drop),
        off
    );
    assert_eq!(m.create_region(RegionRequest::new(8)).map(drop), off);
    assert_eq!(
        m.begin_transaction()
            .create(RegionSpec::new(8, ctx))
            .map(drop),
        off
    );
    assert_eq!(
        m.begin_transaction()
            .resolve(h, ctx, Intent::Read, None, Duration::ZERO)
            .map(drop),
        off
    );
    assert_eq!(m.map_shared_region(h, ctx, MapOptions::empty()), off);
    assert_eq!(m.unmap_shared_region(h, ctx), off);
    assert_eq!(m.read_region(h, 0, &mut [0; 1]).map(drop), off);
    assert_eq!(m.write_region(h, 0, &[1]).map(drop), off);
    assert_eq!(m.grant(h, ctx, Grant::default()).map(drop), off);
    assert_eq!(m.revoke(h, ctx).map(drop), off);
    assert_eq!(m.retain_region(h).map(drop), off);
    assert_eq!(m.release_region(h).map(drop), off);
    assert_eq!(m.free_region(h), off);
    assert_eq!(
        m.region_info(h).map(drop).unwrap_err(),
        ShmError::SharedMemoryDisabled
    );
    assert_eq!(
        m.list_regions().map(drop).unwrap_err(),
        ShmError::SharedMemoryDisabled
    );
    assert_eq!(m.find_region("x").map(drop), off);
    assert_eq!(
        m.allocate_from_pool(8).map(drop).unwrap_err(),
        ShmError::SharedMemoryDisabled
    );
    assert_eq!(
        m.get_memory_stats().map(drop).unwrap_err(),
        ShmError::SharedMemoryDisabled
    );
    assert_eq!(
        m.garbage_collect().map(drop).unwrap_err(),
        ShmError::SharedMemoryDisabled
    );
    assert_eq!(m.maybe_collect(), None);
}
