//! Exact gas of each opcode in simple cases, against spec §8's formulas written
//! out in the test (`common::{f, alloc_gas, access, memory_expansion}`), measured
//! with GAS opcodes around the instruction.

mod common;

use alloy_primitives::{Address, U256};
use common::*;
use shm_manager::SharedMemoryConfig;

const OWNER: Address = Address::repeat_byte(0xa1);
const CHILD: Address = Address::repeat_byte(0xc1);

/// Runs a [`measure`] program in its own transaction: (gas, what the op pushed).
fn gas_of(h: &mut Harness, setup: &str, operands: &[Operand], op: &str) -> (u64, U256) {
    gas_of_with(h, setup, operands, op, &[])
}

fn gas_of_with(
    h: &mut Harness,
    setup: &str,
    operands: &[Operand],
    op: &str,
    input: &[u8],
) -> (u64, U256) {
    let target = h.deploy_asm(&measure(setup, operands, op, ""));
    measured(&h.call(target, input))
}

/// Setup that puts calldata word 0 (a handle) at mem[0..32].
fn handle_from_calldata() -> String {
    format!("{}{}", arg(0), store(0))
}

// ----- ALLOC -----

#[test]
fn alloc_costs_200_plus_region_memory_growth() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    // First region of the transaction: W = 0.
    for size in [1u64, 32, 33, 64, 4096, 16384] {
        let (gas, pushed) = gas_of(&mut h, "", &[c(size), c(0)], "SHARED_ALLOC");
        assert_ne!(pushed, U256::ZERO);
        assert_eq!(gas, alloc_gas(0, size, false), "size {size}");
    }
    // After 512 words allocated in the transaction, the next 512 cost more.
    let (gas, _) = gas_of(
        &mut h,
        &(alloc(16384, 0) + "POP\n"),
        &[c(16384), c(0)],
        "SHARED_ALLOC",
    );
    assert_eq!(gas, alloc_gas(512, 16384, false));
    assert_eq!(gas, 200 + f(1024) - f(512));
    assert!(gas > alloc_gas(0, 16384, false), "quadratic in W");
    // Persistent: + 20,000 per word.
    let (gas, _) = gas_of(&mut h, "", &[c(64), c(1)], "SHARED_ALLOC");
    assert_eq!(gas, alloc_gas(0, 64, true));
    assert_eq!(gas, 200 + f(2) + 40_000);
    // W is per transaction: a new transaction starts from 0 again.
    let (gas, _) = gas_of(&mut h, "", &[c(16384), c(0)], "SHARED_ALLOC");
    assert_eq!(gas, alloc_gas(0, 16384, false));
}

#[test]
fn growth_counts_in_w_and_a_reverted_alloc_does_not() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    // A 64-byte auto-grow region grown to 4096 bytes: W = 128 words.
    let grown = format!(
        "{}{}POP\n",
        alloc_to(0, 64, 0b10),
        write(&mem(0), 4064, 32, 0)
    );
    let (gas, _) = gas_of(&mut h, &grown, &[c(4096), c(0)], "SHARED_ALLOC");
    assert_eq!(gas, alloc_gas(128, 4096, false));

    // A child that allocates 16 KiB and reverts leaves W at 0.
    h.deploy_asm_at(CHILD, &(alloc(16384, 0) + "POP PUSH 0 PUSH 0 REVERT"));
    let reverted = call(CHILD, 0, 0, 0, 0) + "POP\n";
    let (gas, _) = gas_of(&mut h, &reverted, &[c(16384), c(0)], "SHARED_ALLOC");
    assert_eq!(gas, alloc_gas(0, 16384, false));
    // A child that commits leaves W at 512.
    h.deploy_asm_at(CHILD, &(alloc(16384, 0) + "POP STOP"));
    let (gas, _) = gas_of(&mut h, &reverted, &[c(16384), c(0)], "SHARED_ALLOC");
    assert_eq!(gas, alloc_gas(512, 16384, false));
}

// ----- FREE, MAP -----

#[test]
fn free_costs_100() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    let (gas, pushed) = gas_of(
        &mut h,
        &alloc_to(0, 64, 0),
        &[Operand::Mem(0)],
        "SHARED_FREE",
    );
    assert_eq!((gas, pushed), (100, U256::from(1)));
    // A region from an earlier transaction (cold) costs the same: no access charge.
    let region = region_owned_by(&mut h, OWNER, 64, 1);
    h.deploy_asm_at(
        OWNER,
        &measure(
            &handle_from_calldata(),
            &[Operand::Mem(0)],
            "SHARED_FREE",
            "",
        ),
    );
    let (gas, _) = measured(&h.call(OWNER, &arg_word(region)));
    assert_eq!(gas, 100);
}

#[test]
fn map_costs_2600_cold_and_100_warm() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = region_owned_by(&mut h, OWNER, 64, 0b101);
    let input = arg_word(region);
    let ops = [Operand::Mem(0), c(0)];
    let (gas, pushed) = gas_of_with(&mut h, &handle_from_calldata(), &ops, "SHARED_MAP", &input);
    assert_eq!((gas, pushed), (2_600, U256::from(1)));
    let warm = handle_from_calldata() + &map(&mem(0), 0) + "POP\n";
    let (gas, _) = gas_of_with(&mut h, &warm, &ops, "SHARED_MAP", &input);
    assert_eq!(gas, 100);
    // A region ALLOC made is warm.
    let (gas, _) = gas_of(&mut h, &alloc_to(0, 64, 0), &ops, "SHARED_MAP");
    assert_eq!(gas, 100);
    // Options (lazy, prefetch) do not change the price.
    let (gas, _) = gas_of_with(
        &mut h,
        &handle_from_calldata(),
        &[Operand::Mem(0), c(0b1100)],
        "SHARED_MAP",
        &input,
    );
    assert_eq!(gas, 2_600);
}

#[test]
fn the_warm_set_is_journalled_with_frames() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = region_owned_by(&mut h, OWNER, 64, 0b101);
    let input = arg_word(region);
    let ops = [Operand::Mem(0), c(0)];
    // A child that touches the region and reverts: the region is cold again.
    h.deploy_asm_at(
        CHILD,
        &(read(&arg(0), 0, 32, 0) + "POP PUSH 0 PUSH 0 REVERT"),
    );
    let setup = handle_from_calldata() + &call(CHILD, 0, 32, 0, 0) + "POP\n";
    let (gas, _) = gas_of_with(&mut h, &setup, &ops, "SHARED_MAP", &input);
    assert_eq!(gas, 2_600);
    // A child that touches it and returns: warm.
    h.deploy_asm_at(CHILD, &(read(&arg(0), 0, 32, 0) + "POP STOP"));
    let (gas, _) = gas_of_with(&mut h, &setup, &ops, "SHARED_MAP", &input);
    assert_eq!(gas, 100);
}

// ----- READ -----

#[test]
fn read_costs_access_plus_3_per_word_plus_memory_expansion() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = region_owned_by(&mut h, OWNER, 64, 0b101);
    let input = arg_word(region);
    let setup = handle_from_calldata(); // memory: 32 bytes
    for (size, mem_offset) in [(32u64, 0u64), (33, 32), (64, 1000), (1000, 64), (1, 4095)] {
        let ops = [Operand::Mem(0), c(0), c(size), c(mem_offset)];
        let expansion = memory_expansion(32, mem_offset + size);
        let (gas, _) = gas_of_with(&mut h, &setup, &ops, "SHARED_READ", &input);
        assert_eq!(
            gas,
            access(true) + 3 * words_of(size) + expansion,
            "cold READ of {size} at mem {mem_offset}"
        );
        let warm = setup.clone() + &read(&mem(0), 0, 1, 0) + "POP\n";
        let (gas, _) = gas_of_with(&mut h, &warm, &ops, "SHARED_READ", &input);
        assert_eq!(
            gas,
            access(false) + 3 * words_of(size) + expansion,
            "warm READ of {size} at mem {mem_offset}"
        );
    }
}

#[test]
fn a_zero_length_read_or_write_warms_the_region() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = region_owned_by(&mut h, OWNER, 64, 0b1101);
    let input = arg_word(region);
    let ops = [Operand::Mem(0), c(0), c(32), c(0)];
    for touch in [read(&mem(0), 0, 0, 0), write(&mem(0), 0, 0, 0)] {
        let setup = handle_from_calldata() + &touch + "POP\n";
        let (gas, _) = gas_of_with(&mut h, &setup, &ops, "SHARED_READ", &input);
        assert_eq!(
            gas,
            access(false) + 3,
            "the zero-length touch paid the cold access"
        );
    }
    // And the zero-length access itself pays it.
    let ops0 = [Operand::Mem(0), c(0), c(0), c(0)];
    let (gas, _) = gas_of_with(
        &mut h,
        &handle_from_calldata(),
        &ops0,
        "SHARED_READ",
        &input,
    );
    assert_eq!(gas, access(true));
}

#[test]
fn a_zero_length_write_past_the_end_of_an_auto_grow_region_grows_nothing() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let ops = [Operand::Mem(0), c(4096), c(0), c(0)];
    let after = format!("{}{}", read(&mem(0), 0, 8192, 0x20000), store(0x10060));
    let target = h.deploy_asm(&measure(
        &alloc_to(0, 64, 0b10),
        &ops,
        "SHARED_WRITE",
        &after,
    ));
    let out = h.call(target, &[]);
    let (gas, pushed) = measured(&out);
    assert_eq!(pushed, U256::ZERO);
    assert_eq!(gas, access(false), "no growth charged for zero bytes");
    assert_eq!(out.word(3), U256::from(64), "the region did not grow");
}

// ----- WRITE -----

#[test]
fn write_costs_access_copy_and_200_per_page_first_saved_in_the_frame() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    // Region of 3 pages, made in this frame (warm); memory: 0..0x2000 expanded.
    let setup = alloc_to(0, 3 * 4096, 0) + &mstore(0x1fe0, 0);
    let write_op = |off: u64, size: u64, mem: u64| [Operand::Mem(0), c(off), c(size), c(mem)];
    // One page.
    let (gas, pushed) = gas_of(&mut h, &setup, &write_op(0, 32, 32), "SHARED_WRITE");
    assert_eq!(pushed, U256::from(32));
    assert_eq!(gas, access(false) + 3 + 200);
    // Two pages (crossing 4096).
    let (gas, _) = gas_of(&mut h, &setup, &write_op(4000, 200, 32), "SHARED_WRITE");
    assert_eq!(gas, access(false) + 3 * words_of(200) + 2 * 200);
    // The same page again in the same frame: saved already.
    let again = setup.clone() + &write(&mem(0), 100, 32, 32) + "POP\n";
    let (gas, _) = gas_of(&mut h, &again, &write_op(0, 32, 32), "SHARED_WRITE");
    assert_eq!(gas, access(false) + 3);
    // One saved, one not.
    let (gas, _) = gas_of(&mut h, &again, &write_op(4000, 200, 32), "SHARED_WRITE");
    assert_eq!(gas, access(false) + 3 * words_of(200) + 200);
    // Past the end: only pages inside the region are saved (here the last one).
    let (gas, pushed) = gas_of(
        &mut h,
        &setup,
        &write_op(3 * 4096 - 16, 64, 32),
        "SHARED_WRITE",
    );
    assert_eq!(pushed, U256::from(16));
    assert_eq!(gas, access(false) + 3 * 2 + 200);
    // Wholly past the end: nothing saved, copy still charged on `size`.
    let (gas, pushed) = gas_of(&mut h, &setup, &write_op(3 * 4096, 64, 32), "SHARED_WRITE");
    assert_eq!(pushed, U256::ZERO);
    assert_eq!(gas, access(false) + 3 * 2);
    // Memory expansion of the source, as CALLDATACOPY's destination.
    let (gas, _) = gas_of(&mut h, &setup, &write_op(0, 64, 0x3000), "SHARED_WRITE");
    assert_eq!(
        gas,
        access(false) + 3 * 2 + 200 + memory_expansion(0x2000, 0x3040)
    );
}

#[test]
fn a_cold_write_costs_2600_plus_the_rest() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = region_owned_by(&mut h, OWNER, 8192, 0b1001);
    let ops = [Operand::Mem(0), c(4090), c(32), c(0)];
    let (gas, _) = gas_of_with(
        &mut h,
        &handle_from_calldata(),
        &ops,
        "SHARED_WRITE",
        &arg_word(region),
    );
    assert_eq!(gas, access(true) + 3 + 2 * 200);
}

#[test]
fn pages_saved_by_a_committed_child_count_for_the_parent() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let setup = |child_ends: &str, h: &mut Harness| {
        h.deploy_asm_at(
            CHILD,
            &format!("{}POP\n{child_ends}", write(&arg(0), 0, 32, 0)),
        );
        alloc_to(0, 4096, 0) + &call(CHILD, 0, 32, 0, 0) + "POP"
    };
    let ops = [Operand::Mem(0), c(64), c(32), c(0)];
    // The child saved page 0 and returned: the parent does not pay for it again.
    let committed = setup("STOP", &mut h);
    let (gas, _) = gas_of(&mut h, &committed, &ops, "SHARED_WRITE");
    assert_eq!(gas, access(false) + 3);
    // The child reverted: its save went with it, the parent pays.
    let reverted = setup("PUSH 0 PUSH 0 REVERT", &mut h);
    let (gas, _) = gas_of(&mut h, &reverted, &ops, "SHARED_WRITE");
    assert_eq!(gas, access(false) + 3 + 200);
    // A page the parent saved is saved for its child? No: the child is a new
    // frame and saves (and pays) again.
    h.deploy_asm_at(
        CHILD,
        &measure(&handle_from_calldata(), &ops, "SHARED_WRITE", ""),
    );
    let parent = h.deploy_asm(&format!(
        "{}{}POP\n{}POP\nRETURNDATASIZE PUSH 0 PUSH 0 RETURNDATACOPY\n{}",
        alloc_to(0, 4096, 0),
        write(&mem(0), 0, 32, 0),
        call(CHILD, 0, 32, 0, 0),
        ret(0, 96)
    ));
    let (gas, _) = measured(&h.call(parent, &[]));
    assert_eq!(gas, access(false) + 3 + 200);
}

#[test]
fn growth_is_charged_as_alloc_charges_the_added_words() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let ops = |size: u64| [Operand::Mem(0), c(4096 - size), c(size), c(0)];
    // 64 bytes (W = 2) grown to 4096 bytes: 126 words added; the write lies
    // wholly in the new part, so no page is saved.
    let setup = alloc_to(0, 64, 0b10);
    let (gas, pushed) = gas_of(&mut h, &setup, &ops(32), "SHARED_WRITE");
    assert_eq!(pushed, U256::from(32));
    assert_eq!(gas, access(false) + 3 + f(128) - f(2));
    // Persistent growth pays the storage surcharge per added word too.
    let setup = alloc_to(0, 64, 0b11);
    let (gas, _) = gas_of(&mut h, &setup, &ops(32), "SHARED_WRITE");
    assert_eq!(gas, access(false) + 3 + f(128) - f(2) + 126 * 20_000);
    // Growth across the old end saves the old last page.
    let setup = alloc_to(0, 64, 0b10);
    let ops = [Operand::Mem(0), c(48), c(64), c(0)];
    let (gas, _) = gas_of(&mut h, &setup, &ops, "SHARED_WRITE");
    assert_eq!(
        gas,
        access(false) + 3 * 2 + 200 + f(4) - f(2) + memory_expansion(32, 64)
    );
}

#[test]
fn growth_the_pool_refuses_is_given_back() {
    let mut config = SharedMemoryConfig::testing();
    config.pool_blocks = [1, 0, 0, 0];
    let mut h = Harness::new(config);
    let setup = alloc_to(0, 40, 0b10);
    let ops = [Operand::Mem(0), c(20), c(4000), c(0)];
    let (gas, pushed) = gas_of(&mut h, &setup, &ops, "SHARED_WRITE");
    assert_eq!(pushed, U256::from(20), "what fits");
    assert_eq!(
        gas,
        access(false) + 3 * words_of(4000) + 200 + memory_expansion(32, 4000),
        "no growth charged"
    );
}

#[test]
fn a_cow_fault_costs_200_per_page() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = region_owned_by(&mut h, OWNER, 8192, 0b101);
    let input = arg_word(region);
    let mapped = handle_from_calldata() + &map(&mem(0), 1) + "POP\n";
    let ops = |off: u64, size: u64| [Operand::Mem(0), c(off), c(size), c(0)];
    let (gas, pushed) = gas_of_with(&mut h, &mapped, &ops(0, 32), "SHARED_WRITE", &input);
    assert_eq!(pushed, U256::from(32));
    assert_eq!(gas, access(false) + 3 + 200);
    let (gas, _) = gas_of_with(&mut h, &mapped, &ops(4090, 32), "SHARED_WRITE", &input);
    assert_eq!(gas, access(false) + 3 + 2 * 200);
    // The same private page again in the same frame: no second fault.
    let faulted = mapped.clone() + &write(&mem(0), 0, 32, 0) + "POP\n";
    let (gas, _) = gas_of_with(&mut h, &faulted, &ops(64, 32), "SHARED_WRITE", &input);
    assert_eq!(gas, access(false) + 3);
    // The live region never saw a byte.
    assert_eq!(host_read(&h, region, 0, 32), vec![0; 32]);
}

#[test]
fn the_gas_schedule_is_configurable() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    h.gas.alloc_base = 1_000;
    h.gas.warm_access = 7;
    h.gas.journal_page = 50;
    let (gas, _) = gas_of(&mut h, "", &[c(64), c(0)], "SHARED_ALLOC");
    assert_eq!(gas, 1_000 + f(2));
    let ops = [Operand::Mem(0), c(0), c(32), c(0)];
    let (gas, _) = gas_of(&mut h, &alloc_to(0, 64, 0), &ops, "SHARED_WRITE");
    assert_eq!(gas, 7 + 3 + 50);
}
