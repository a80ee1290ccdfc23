//! Auto-grow grows only when the write then lands bytes.

use shm_pool::{BlockPool, PoolConfig};
use shm_primitives::{Address, RegionOptions};
use shm_region::{RegionRegistry, RegionSpec, RegistryConfig};

mod common;
#[allow(unused_imports)]
use common::RegistryExt;

#[test]
fn a_write_past_the_maximum_does_not_grow() {
    let registry = RegionRegistry::new(
        BlockPool::new(PoolConfig::default()),
        RegistryConfig::default(),
    );
    let grow = RegionOptions {
        auto_grow: true,
        ..RegionOptions::default()
    };
    let h = registry
        .create(
            RegionSpec::new(100, Address::ZERO)
                .options(grow)
                .max_size(8192),
        )
        .unwrap();
    let out = registry.write(h, 9000, &[1; 10], true).unwrap();
    assert_eq!(
        (out.written, out.new_size),
        (0, 100),
        "starts past the maximum: no growth"
    );
    let out = registry.write(h, 200, &[], true).unwrap();
    assert_eq!(
        (out.written, out.new_size),
        (0, 100),
        "zero-length: no growth"
    );
    let out = registry.write(h, 8190, &[1; 10], true).unwrap();
    assert_eq!(
        (out.written, out.new_size),
        (2, 8192),
        "grows to the maximum and writes what fits"
    );
}
