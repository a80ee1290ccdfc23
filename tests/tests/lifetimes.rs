//! Lifetimes (spec §4): transaction-scoped regions end with their
//! transaction, persistent ones stay with their bytes until freed, bytecode
//! mappings end with the transaction, host mappings stay.

mod common;

use alloy_primitives::{Address, U256};
use common::*;
use shm_manager::{HaltCause, SharedMemoryConfig};
use shm_primitives::{MapOptions, RegionHandle};

const OWNER: Address = Address::repeat_byte(0xa1);
const READER: Address = Address::repeat_byte(0xb1);

/// Owner code for tx 1: make a region (`flags`), write 0x42… at 0, return the handle.
fn make_and_fill(flags: u64) -> String {
    format!(
        "{}{}{}POP\n{}",
        alloc_to(0, 64, flags),
        mstore(0x20, fill(0x42)),
        write(&mem(0), 0, 32, 0x20),
        ret(0, 32)
    )
}

/// Owner code for later transactions: MAP, READ the first word, return it.
fn map_and_read() -> String {
    format!(
        "{}POP\n{}POP\n{}",
        map(&arg(0), 0),
        read(&arg(0), 0, 32, 0),
        ret(0, 32)
    )
}

#[test]
fn a_transaction_scoped_region_is_gone_in_the_next_transaction() {
    for (name, config) in level_configs() {
        let mut h = Harness::new(config);
        h.deploy_asm_at(OWNER, &make_and_fill(0));
        let out = h.call(OWNER, &[]);
        assert_ok(&out);
        let region = out.word(0);
        assert_eq!(h.manager.list_regions().unwrap().len(), 0, "{name}");
        h.deploy_asm_at(OWNER, &map_and_read());
        assert_halt(&h.call(OWNER, &arg_word(region)), HaltCause::FreedRegion);
    }
}

#[test]
fn a_persistent_region_keeps_its_bytes_across_transactions() {
    for (name, config) in level_configs() {
        let mut h = Harness::new(config);
        h.deploy_asm_at(OWNER, &make_and_fill(1));
        let region = h.call(OWNER, &[]).word(0);
        // The garbage collector never takes a persistent region.
        h.manager.garbage_collect().unwrap();
        h.deploy_asm_at(OWNER, &map_and_read());
        for _ in 0..2 {
            let out = h.call(OWNER, &arg_word(region));
            assert_ok(&out);
            assert_eq!(out.word(0), filled(0x42), "{name}");
        }
        // FREE in a transaction: final at its end, then the handle is dead.
        h.deploy_asm_at(OWNER, &(free(&arg(0)) + "STOP"));
        assert_ok(&h.call(OWNER, &arg_word(region)));
        let stats = h.manager.get_memory_stats().unwrap();
        assert_eq!(
            (stats.active_regions, stats.pending_frees),
            (0, 0),
            "{name}"
        );
        h.deploy_asm_at(OWNER, &map_and_read());
        assert_halt(&h.call(OWNER, &arg_word(region)), HaltCause::FreedRegion);
    }
}

#[test]
fn a_region_freed_by_the_host_is_dead_to_bytecode() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    h.deploy_asm_at(OWNER, &make_and_fill(1));
    let region = h.call(OWNER, &[]).word(0);
    h.manager
        .free_region(RegionHandle::from_u256(region).unwrap())
        .unwrap();
    h.deploy_asm_at(OWNER, &map_and_read());
    assert_halt(&h.call(OWNER, &arg_word(region)), HaltCause::FreedRegion);
}

#[test]
fn bytecode_mappings_end_with_the_transaction_under_strict() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    h.deploy_asm_at(OWNER, &make_and_fill(0b101));
    let region = h.call(OWNER, &[]).word(0);
    for who in [OWNER, READER] {
        // Mapped in one transaction ...
        h.deploy_asm_at(who, &map_and_read());
        let out = h.call(who, &arg_word(region));
        assert_ok(&out);
        assert_eq!(out.word(0), filled(0x42));
        // ... not in the next: READ alone halts, MAP again is needed.
        h.deploy_asm_at(who, &(read(&arg(0), 0, 32, 0) + "STOP"));
        assert_halt(&h.call(who, &arg_word(region)), HaltCause::NoMapping);
    }
    // The region holds no mapping made by bytecode.
    let info = h
        .manager
        .region_info(RegionHandle::from_u256(region).unwrap())
        .unwrap();
    assert!(info.meta.mappings().is_empty());
}

#[test]
fn host_mappings_outlast_transactions_until_the_host_unmaps() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    h.deploy_asm_at(OWNER, &make_and_fill(0b101));
    let region = h.call(OWNER, &[]).word(0);
    let handle = RegionHandle::from_u256(region).unwrap();
    h.manager
        .map_shared_region(handle, READER, MapOptions::READ_ONLY)
        .unwrap();
    h.deploy_asm_at(READER, &(read(&arg(0), 0, 32, 0) + "POP\n" + &ret(0, 32)));
    for _ in 0..2 {
        let out = h.call(READER, &arg_word(region));
        assert_ok(&out);
        assert_eq!(out.word(0), filled(0x42));
    }
    // Once the host unmaps, the reader has no mapping left.
    h.manager.unmap_shared_region(handle, READER).unwrap();
    let out = h.call(READER, &arg_word(region));
    assert_halt(&out, HaltCause::NoMapping);
}

#[test]
fn a_bytecode_remap_in_a_transaction_overrides_the_host_mapping_only_there() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    h.deploy_asm_at(OWNER, &make_and_fill(0b1001));
    let region = h.call(OWNER, &[]).word(0);
    let handle = RegionHandle::from_u256(region).unwrap();
    // The host maps the reader read-only; public write would allow writes.
    h.manager
        .map_shared_region(handle, READER, MapOptions::READ_ONLY)
        .unwrap();
    let writes = write(&arg(0), 0, 32, 0) + "STOP";
    h.deploy_asm_at(READER, &writes);
    assert_halt(
        &h.call(READER, &arg_word(region)),
        HaltCause::PermissionDenied,
    );
    // A read-write MAP by bytecode lets this transaction write ...
    h.deploy_asm_at(READER, &(map(&arg(0), 0) + "POP\n" + &writes));
    assert_ok(&h.call(READER, &arg_word(region)));
    // ... and ends with it: the host's read-only mapping is back.
    h.deploy_asm_at(READER, &writes);
    assert_halt(
        &h.call(READER, &arg_word(region)),
        HaltCause::PermissionDenied,
    );
}

#[test]
fn a_free_in_a_transaction_is_pending_until_its_end() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    h.deploy_asm_at(OWNER, &make_and_fill(1));
    let region = h.call(OWNER, &[]).word(0);
    // The same transaction frees it and then tries to allocate: the slot is not
    // reused before the free is final, so the new region takes slot 2.
    let target = h.deploy_asm(&format!(
        "{}POP\n{}{}",
        free(&arg(0)),
        alloc_to(0, 64, 1),
        ret(0, 32)
    ));
    let out = h.call(target, &arg_word(region));
    assert_ok(&out);
    assert_eq!(out.word(0), handle(2, 1));
    // After the transaction slot 1 is free again.
    let out = h.call(target, &arg_word(out.word(0)));
    assert_eq!(out.word(0), handle(1, 2));
    assert_ne!(out.word(0), U256::ZERO);
}
