//! Freed handles stay dead however often their slot is reused.

use shm_primitives::{Address, RegionHandle};
use shm_region::{RegionError, RegionSpec};

mod common;
use common::{registry_with, RegistryExt};

#[test]
fn a_freed_handle_never_reaches_the_region_that_reuses_its_slot() {
    let registry = registry_with([64, 8, 1, 1], 4, 1 << 20, 4);
    let owner = Address::repeat_byte(7);
    let mut dead: Vec<RegionHandle> = Vec::new();
    for cycle in 0u32..2_000 {
        let h = registry.create(RegionSpec::new(64, owner)).unwrap();
        let reused = (h.index(), h.generation()) == (1, cycle + 1);
        assert!(reused, "slot 1 is reused at the next generation: {h:?}");
        registry.write(h, 0, &cycle.to_le_bytes(), false).unwrap();
        // Every earlier handle of this slot is dead: no read, write, map or free gets through.
        for &old in dead.iter().rev().take(16).chain(dead.first()) {
            let freed = Err(RegionError::RegionFreed(old));
            assert_eq!(registry.read(old, 0, &mut [0u8; 4]), freed);
            let write = registry.write(old, 0, b"evil", false);
            assert_eq!(write.map(|o| o.written), freed);
            let map = registry.map(old, owner, Default::default());
            assert_eq!(map.map(|_| 0), freed);
            assert_eq!(registry.free(old).map(|_| 0), freed);
        }
        let mut buf = [0u8; 4];
        registry.read(h, 0, &mut buf).unwrap();
        let kept = u32::from_le_bytes(buf);
        assert_eq!(kept, cycle, "the live region kept its own bytes");
        registry.free(h).unwrap();
        dead.push(h);
    }
    // A generation never issued is invalid, not freed.
    let future = RegionHandle::new(1, 2_001).unwrap();
    let invalid = Err(RegionError::InvalidRegionHandle(future));
    assert_eq!(registry.check(future), invalid);
}
