//! Every opcode's success path on real revm (spec §5): what each pushes, the
//! bytes READ and WRITE move, zero fill past the end, what-fits writes,
//! auto-grow, and the resource failures that push 0 instead of halting.

mod common;

use alloy_primitives::U256;
use common::*;
use shm_manager::SharedMemoryConfig;
use shm_primitives::RegionHandle;

fn testing() -> Harness {
    Harness::new(SharedMemoryConfig::testing())
}

#[test]
fn alloc_pushes_generation_index_handles_in_slot_order() {
    for (name, config) in level_configs() {
        let mut h = Harness::new(config);
        let target = h.deploy_asm(&format!(
            "{}{}{}{}",
            alloc_to(0, 64, 0),
            alloc_to(32, 1, 0),
            alloc_to(64, 4096, 4),
            ret(0, 96)
        ));
        let out = h.call(target, &[]);
        assert_ok(&out);
        for i in 0..3 {
            assert_eq!(out.word(i), handle(i as u32 + 1, 1), "{name}: handle {i}");
        }
        // A later transaction reuses the lowest slot at its next generation.
        let out = h.call(target, &[]);
        for i in 0..3 {
            assert_eq!(
                out.word(i),
                handle(i as u32 + 1, 2),
                "{name}: tx 2 handle {i}"
            );
        }
    }
}

#[test]
fn alloc_makes_a_zeroed_region_of_the_asked_size_owned_by_the_caller() {
    let mut h = testing();
    // Persistent (bit 0) so the host can look at it after the transaction.
    let target = h.deploy_asm(&format!(
        "{}{}{}{}",
        alloc_to(0, 100, 1),
        read(&mem(0), 0, 128, 32),
        "PUSH 0 MSTORE\n",
        ret(0, 160)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(
        out.word(0),
        U256::from(100),
        "READ pushed the bytes of the region"
    );
    for i in 1..5 {
        assert_eq!(out.word(i), U256::ZERO, "zero-initialised");
    }
    let info = h
        .manager
        .region_info(RegionHandle::new(1, 1).unwrap())
        .unwrap();
    assert_eq!(info.meta.size(), 100);
    assert_eq!(info.meta.owner(), target);
    assert!(info.meta.options().persistent);
}

#[test]
fn map_and_free_push_one() {
    let mut h = testing();
    let mut code = alloc_to(0, 64, 0);
    // Every valid combination of the four option bits maps.
    for (i, options) in (0..16).enumerate() {
        code += &map(&mem(0), options);
        code += &store(32 + 32 * i as u64);
    }
    code += &free(&mem(0));
    code += &store(32 + 32 * 16);
    code += &ret(32, 32 * 17);
    let target = h.deploy_asm(&code);
    let out = h.call(target, &[]);
    assert_ok(&out);
    for i in 0..17 {
        assert_eq!(out.word(i), U256::from(1), "push {i}");
    }
}

#[test]
fn write_then_read_round_trips_and_counts_bytes() {
    let mut h = testing();
    let target = h.deploy_asm(&format!(
        "{}{}{}{}{}{}{}",
        alloc_to(0, 256, 0),
        mstore(32, fill(0xab)),
        mstore(64, fill(0xcd)),
        write(&mem(0), 10, 64, 32) + &store(96),
        read(&mem(0), 10, 64, 160) + &store(128),
        read(&mem(0), 0, 10, 224) + &store(256),
        ret(96, 192)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), U256::from(64), "WRITE pushed bytes written");
    assert_eq!(out.word(1), U256::from(64), "READ pushed bytes read");
    assert_eq!(out.word(2), filled(0xab));
    assert_eq!(out.word(3), filled(0xcd));
    // mem[224..234] was the untouched head of the region: zero; the rest of
    // that word was never written.
    assert_eq!(out.word(4), U256::ZERO);
    assert_eq!(out.word(5), U256::from(10), "the short read counted 10");
}

#[test]
fn read_past_the_end_fills_zero_and_counts_only_region_bytes() {
    let mut h = testing();
    let target = h.deploy_asm(&format!(
        "{alloc}{a}{w}POP\n\
         {ff1}{ff2}{ff3}\
         {r1}{s1}\
         {ff4}{r2}{s2}\
         {ret}",
        alloc = alloc_to(0, 48, 0),
        a = mstore(32, fill(0xaa)) + &mstore(64, fill(0xaa)),
        w = write(&mem(0), 0, 48, 32),
        // Dirty the destination so zero fill is visible.
        ff1 = mstore(128, fill(0xff)),
        ff2 = mstore(160, fill(0xff)),
        ff3 = mstore(192, fill(0xff)),
        // 64 bytes from offset 16: 32 from the region, 32 past its end.
        r1 = read(&mem(0), 16, 64, 128),
        s1 = store(256),
        // Entirely past the end: all zero, 0 counted.
        ff4 = mstore(288, fill(0xff)),
        r2 = read(&mem(0), 1000, 32, 288),
        s2 = store(320),
        ret = ret(128, 224)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), filled(0xaa));
    assert_eq!(out.word(1), U256::ZERO, "past the end reads as zero");
    assert_eq!(
        out.word(2),
        filled(0xff),
        "beyond `size` memory is untouched"
    );
    assert_eq!(out.word(4), U256::from(32), "only region bytes are counted");
    assert_eq!(
        out.word(5),
        U256::ZERO,
        "a read wholly past the end is all zero"
    );
    assert_eq!(out.word(6), U256::ZERO, "and counts 0");
}

#[test]
fn write_past_the_end_writes_what_fits() {
    let mut h = testing();
    let target = h.deploy_asm(&format!(
        "{}{}{}{}{}{}",
        alloc_to(0, 64, 0),
        mstore(32, fill(0x11)),
        write(&mem(0), 48, 32, 32) + &store(64),
        write(&mem(0), 64, 32, 32) + &store(96),
        read(&mem(0), 0, 96, 128) + &store(224),
        ret(64, 192)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), U256::from(16), "16 of 32 fit");
    assert_eq!(out.word(1), U256::ZERO, "nothing fits at the end");
    assert_eq!(out.word(2), U256::ZERO);
    // region[32..64] = 16 zero bytes, then 16 bytes of 0x11.
    assert_eq!(
        out.word(3),
        U256::from_be_bytes::<32>([[0u8; 16], [0x11; 16]].concat().try_into().unwrap())
    );
    assert_eq!(out.word(4), U256::ZERO, "the region did not grow");
    assert_eq!(out.word(5), U256::from(64));
}

#[test]
fn auto_grow_extends_the_region_to_cover_the_write() {
    let mut h = testing();
    // Persistent + auto-grow, so the host can read its size afterwards.
    let target = h.deploy_asm(&format!(
        "{}{}{}{}{}",
        alloc_to(0, 64, 0b11),
        mstore(32, fill(0x22)),
        write(&mem(0), 100, 32, 32) + &store(64),
        read(&mem(0), 0, 256, 128) + &store(96),
        ret(64, 64)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), U256::from(32), "the whole write landed");
    assert_eq!(out.word(1), U256::from(132), "the region is now 132 bytes");
    let handle = RegionHandle::new(1, 1).unwrap();
    assert_eq!(h.manager.region_info(handle).unwrap().meta.size(), 132);
    let mut buf = [0xffu8; 132];
    assert_eq!(h.manager.read_region(handle, 0, &mut buf).unwrap(), 132);
    assert!(buf[..100].iter().all(|&b| b == 0), "the gap is zero");
    assert!(buf[100..].iter().all(|&b| b == 0x22));
}

#[test]
fn auto_grow_stops_at_max_region_size() {
    let mut config = SharedMemoryConfig::testing();
    config.max_region_size = 8192;
    let mut h = Harness::new(config);
    let target = h.deploy_asm(&format!(
        "{}{}{}{}",
        alloc_to(0, 64, 0b11),
        mstore(32, fill(0x33)) + &mstore(64, fill(0x33)),
        write(&mem(0), 8160, 64, 32) + &store(96),
        ret(96, 32)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(
        out.word(0),
        U256::from(32),
        "what fits below max_region_size"
    );
    let handle = RegionHandle::new(1, 1).unwrap();
    assert_eq!(h.manager.region_info(handle).unwrap().meta.size(), 8192);
}

#[test]
fn growth_the_pool_refuses_writes_what_fits() {
    let mut config = SharedMemoryConfig::testing();
    // One 64-byte block and nothing bigger: growth beyond 64 bytes is impossible.
    config.pool_blocks = [1, 0, 0, 0];
    let mut h = Harness::new(config);
    let target = h.deploy_asm(&format!(
        "{}{}{}{}{}",
        alloc_to(0, 40, 0b11),
        mstore(32, fill(0x44)),
        write(&mem(0), 20, 32, 32) + &store(64),
        write(&mem(0), 8, 32, 32) + &store(96),
        ret(64, 64)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    // Growing 40 → 52 stays inside the 64-byte block: the whole write lands.
    assert_eq!(out.word(0), U256::from(32));
    let handle = RegionHandle::new(1, 1).unwrap();
    assert_eq!(h.manager.region_info(handle).unwrap().meta.size(), 52);

    // Growing past 64 bytes needs a block the pool does not have.
    let grow = h.deploy_asm(&format!(
        "{}{}{}",
        mstore(0, fill(0x55)) + &mstore(32, fill(0x55)),
        write(&arg(0), 40, 64, 0) + &store(64),
        ret(64, 32)
    ));
    let out = h.call(grow, &handle.to_u256().to_be_bytes::<32>());
    assert_ok(&out);
    assert_eq!(
        out.word(0),
        U256::from(12),
        "no halt: what fits in 52 bytes"
    );
    assert_eq!(h.manager.region_info(handle).unwrap().meta.size(), 52);
}

#[test]
fn zero_sized_read_and_write_push_zero_and_do_not_touch_memory() {
    let mut h = testing();
    let target = h.deploy_asm(&format!(
        "{}MSIZE PUSH 0x40 MSTORE\n{}{}{}{}",
        alloc_to(0, 64, 0),
        // Huge memory offsets are ignored when size is 0 (CALLDATACOPY's rule).
        read(&mem(0), 0, 0, "0xffffffffffffffffffffffffffffffff") + &store(0x60),
        write(&mem(0), 0, 0, "0xffffffffffffffffffffffffffffffff") + &store(0x80),
        "MSIZE PUSH 0xa0 MSTORE\n",
        ret(0x40, 0x80)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), U256::from(32), "MSIZE before");
    assert_eq!(out.word(1), U256::ZERO);
    assert_eq!(out.word(2), U256::ZERO);
    assert_eq!(
        out.word(3),
        U256::from(0xa0),
        "only the test's own MSTOREs grew memory"
    );
}

/// A program whose measured ALLOC must push 0 and cost exactly 200, after
/// which the frame goes on (no halt) and ends with a marker.
fn assert_resource_failure(h: &mut Harness, setup: &str, size: &str, flags: u64, what: &str) {
    let size = U256::from_str_radix(size.trim_start_matches("0x"), 16).unwrap();
    let target = h.deploy_asm(&measure(
        setup,
        &[Operand::Const(size), c(flags)],
        "SHARED_ALLOC",
        "",
    ));
    let out = h.call(target, &[]);
    let (gas, pushed) = measured(&out);
    assert_eq!(pushed, U256::ZERO, "{what}: pushes 0");
    assert_eq!(gas, 200, "{what}: costs exactly 200");
    assert_eq!(out.last_halt, None, "{what}: no halt");
}

#[test]
fn resource_failures_push_zero_and_cost_200() {
    let mut h = testing();
    assert_resource_failure(&mut h, "", "0x0", 0, "size 0");
    assert_resource_failure(&mut h, "", "0x100001", 0, "size > max_region_size");
    assert_resource_failure(&mut h, "", "0x10000000000000000", 0, "size ≥ 2^64");
    assert_resource_failure(&mut h, "", "0x100001", 1, "persistent, too large");

    // Too many regions: the testing preset allows 32.
    let fill_up = "PUSH 0\nloop:\nJUMPDEST\nPUSH 0 PUSH 1 SHARED_ALLOC POP\n\
                   PUSH 1 ADD DUP1 PUSH 32 GT PUSH @loop JUMPI\nPOP\n";
    assert_resource_failure(&mut h, fill_up, "0x40", 0, "too many regions");

    // A free only becomes final at transaction end: the slot still counts.
    // (The previous transaction's regions went at its end: slot 1 is at generation 2.)
    let fill_and_free = format!("{fill_up}{}POP\n", free(&format!("PUSH {}", handle(1, 2))));
    assert_resource_failure(
        &mut h,
        &fill_and_free,
        "0x40",
        0,
        "too many, one pending free",
    );

    // Pool exhausted: one 64-byte block, nothing larger.
    let mut config = SharedMemoryConfig::testing();
    config.pool_blocks = [1, 0, 0, 0];
    let mut h = Harness::new(config);
    assert_resource_failure(&mut h, &alloc(64, 0), "0x40", 0, "pool exhausted");
    // The testing preset has a single 1 MiB block.
    let mut h = testing();
    assert_resource_failure(
        &mut h,
        &(alloc(0x100000, 0) + "POP"),
        "0x100000",
        0,
        "1 MiB class empty",
    );
}

#[test]
fn a_failed_alloc_leaves_the_frame_running_and_later_allocs_work() {
    let mut config = SharedMemoryConfig::testing();
    config.pool_blocks = [1, 0, 0, 0];
    let mut h = Harness::new(config);
    let target = h.deploy_asm(&format!(
        "{}{}{}{}",
        alloc_to(0, 64, 0),
        alloc_to(32, 64, 0),
        free(&mem(0)) + "POP\n",
        ret(0, 64)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), first_handle());
    assert_eq!(out.word(1), U256::ZERO, "the pool had one block");
    // The block went back at the end of the transaction.
    let out = h.call(target, &[]);
    assert_eq!(out.word(0), handle(1, 2));
    assert_eq!(out.word(1), U256::ZERO);
}
