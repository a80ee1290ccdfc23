//! Reverts (spec §6): a frame that reverts or halts undoes exactly its own
//! shared-memory effects, a frame that returns merges them into its parent, a
//! failed transaction undoes all — on real revm frames, CREATE frames included.

mod common;

use alloy_primitives::{Address, U256};
use common::*;
use shm_manager::{HaltCause, SharedMemoryConfig};
use shm_primitives::RegionHandle;

const OWNER: Address = Address::repeat_byte(0xa1);

fn region_alive(h: &Harness, handle: U256) -> bool {
    h.manager
        .region_info(RegionHandle::from_u256(handle).unwrap())
        .is_ok()
}

/// A program that, called without calldata, makes region R (`flags`), fills
/// it with 0xaa…, CALLs itself with R's handle (the inner frame runs
/// `inner` with the handle at calldata word 0), and then runs `after` with R's
/// handle at mem[0..32], the CALL's success flag at mem[0x20] and its return
/// data at mem[0x40..0x60].
fn self_call(flags: u64, inner: &str, after: &str) -> String {
    format!(
        "CALLDATASIZE PUSH @inner JUMPI\n\
         {alloc}{fill}{write}POP\n\
         PUSH 32 PUSH 0x40 PUSH 32 PUSH 0 PUSH 0 ADDRESS GAS CALL\n{store}\
         {after}\n\
         inner:\nJUMPDEST\n{inner}",
        alloc = alloc_to(0, 64, flags),
        fill = mstore(0x60, fill(0xaa)),
        write = write(&mem(0), 0, 32, 0x60),
        store = store(0x20),
    )
}

#[test]
fn a_reverted_call_undoes_its_alloc_write_map_and_free_and_the_caller_goes_on() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    // Inner frame (same context: CALL to itself): a persistent region of its
    // own, a write, a read-only remap and a free of R, then REVERT with the new
    // region's handle.
    let inner = format!(
        "{alloc}{fill}{write}POP\n{map}POP\n{free}POP\n\
         PUSH 0 MSTORE PUSH 32 PUSH 0 REVERT\n",
        alloc = alloc(64, 1),
        fill = mstore(0x20, fill(0xbb)),
        write = write(&arg(0), 0, 32, 0x20),
        map = map(&arg(0), 0b10),
        free = free(&arg(0)),
    );
    let after = format!(
        "{read}{s1}{fill}{write}{s2}{ret}",
        // The free was undone: R still reads, and reads 0xaa… (the write was undone).
        read = read(&mem(0), 0, 32, 0x80),
        s1 = store(0x60),
        // The read-only remap was undone: the owner writes again.
        fill = mstore(0xa0, fill(0xcc)),
        write = write(&mem(0), 32, 32, 0xa0),
        s2 = store(0xc0),
        ret = ret(0, 0xe0)
    );
    let target = h.deploy_asm(&self_call(0, &inner, &after));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(out.last_halt, None);
    let r = out.word(0);
    assert_eq!(out.word(1), U256::ZERO, "the inner call reverted");
    let undone = out.word(2);
    assert_eq!(undone, handle(2, 1), "the inner ALLOC had made slot 2");
    assert_eq!(out.word(3), U256::from(32), "R still reads");
    assert_eq!(out.word(4), filled(0xaa), "R's bytes are the caller's");
    assert_eq!(out.word(6), U256::from(32), "R is writable again");
    // After the transaction: the persistent region of the reverted frame is gone.
    assert!(!region_alive(&h, undone));
    assert!(!region_alive(&h, r), "R was transaction-scoped");
    assert_eq!(h.manager.list_regions().unwrap().len(), 0);
    // Its generation is burnt: slot 2 next comes at generation 2.
    let probe = h.deploy_asm(&(alloc_to(0, 1, 0) + &alloc_to(32, 1, 0) + &ret(0, 64)));
    let out = h.call(probe, &[]);
    assert_eq!(out.word(1), handle(2, 2));
}

#[test]
fn a_reverted_call_undoes_auto_growth() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let inner = format!(
        "{}{}POP PUSH 0 PUSH 0 REVERT\n",
        mstore(0, fill(0xdd)),
        write(&arg(0), 4000, 32, 0)
    );
    let after = format!(
        "{}{}{}",
        read(&mem(0), 0, 8192, 0x1000),
        store(0x40),
        ret(0x20, 0x40)
    );
    // Auto-grow region of 64 bytes: the inner frame grows it to 4032, reverts.
    let target = h.deploy_asm(&self_call(0b10, &inner, &after));
    let out = h.call(target, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), U256::ZERO, "inner reverted");
    assert_eq!(out.word(1), U256::from(64), "the size went back to 64");
}

#[test]
fn out_of_gas_in_a_frame_undoes_its_earlier_writes() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let region = region_owned_by(&mut h, OWNER, 8192, 1);
    host_write(&h, region, 0, &[0xaa; 64]);
    // The child writes page 0 and then a WRITE whose memory expansion it cannot
    // pay; the parent gives it 5,000 gas.
    let child = h.deploy_asm(&format!(
        "{}{}POP\n{}POP\nSTOP",
        mstore(0, fill(0xbb)),
        write(&arg(0), 0, 32, 0),
        write(&arg(0), 4096, 2048, 0x100000)
    ));
    let parent = h.deploy_asm(&format!(
        "{}{}{}{}",
        calldata_to(0),
        call_gas(child, 5_000, 0, 32, 0, 0),
        store(0),
        ret(0, 32)
    ));
    let (out, frames) = call_inspected(&mut h, parent, &arg_word(region));
    assert_ok(&out);
    assert_eq!(out.word(0), U256::ZERO, "the child ran out of gas");
    assert_eq!(
        frames.frames[0].1,
        revm::interpreter::InstructionResult::MemoryOOG
    );
    assert_eq!(host_read(&h, region, 0, 64), vec![0xaa; 64]);
    assert_eq!(host_read(&h, region, 4096, 32), vec![0; 32]);

    // The same child with enough gas commits both writes.
    let parent = h.deploy_asm(&format!(
        "{}{}{}{}",
        calldata_to(0),
        call(child, 0, 32, 0, 0),
        store(0),
        ret(0, 32)
    ));
    let out = h.call(parent, &arg_word(region));
    assert_eq!(out.word(0), U256::from(1));
    assert_eq!(host_read(&h, region, 0, 32), vec![0xbb; 32]);
}

#[test]
fn a_failed_transaction_undoes_everything() {
    let endings = [
        ("REVERT", "PUSH 0 PUSH 0 REVERT".to_string(), None),
        ("INVALID", "INVALID".to_string(), None),
        (
            "a shared-memory halt",
            read("PUSH 0", 0, 32, 0),
            Some(HaltCause::InvalidHandle),
        ),
    ];
    for (what, ending, cause) in endings {
        let mut h = Harness::new(SharedMemoryConfig::development());
        let p = region_owned_by(&mut h, OWNER, 64, 1);
        let kept = region_owned_by(&mut h, OWNER, 64, 1);
        host_write(&h, p, 0, &[0xaa; 64]);
        // The owner writes P, makes a persistent Q, maps P read-only, frees
        // `kept`, calls itself to write P again (committed), then fails.
        h.deploy_asm_at(
            OWNER,
            &format!(
                "CALLDATASIZE PUSH 32 EQ PUSH @inner JUMPI\n\
                 {cd}{fill}{w}POP\n{q}POP\n{free}POP\n\
                 PUSH 0 PUSH 0 PUSH 32 PUSH 0 PUSH 0 ADDRESS GAS CALL POP\n\
                 {m}POP\n{ending}\n\
                 inner:\nJUMPDEST\n{fill2}{w2}STOP",
                cd = calldata_to(0),
                fill = mstore(0x40, fill(0xbb)),
                w = write(&mem(0), 0, 32, 0x40),
                q = alloc(64, 1),
                free = free(&mem(0x20)),
                m = map(&mem(0), 0b10),
                fill2 = mstore(0x40, fill(0xcc)),
                w2 = write(&arg(0), 32, 32, 0x40),
            ),
        );
        let mut input = arg_word(p);
        input.extend(arg_word(kept));
        let out = h.call(OWNER, &input);
        assert!(!out.is_success(), "{what}");
        assert_eq!(out.last_halt, cause, "{what}");
        assert_eq!(host_read(&h, p, 0, 64), vec![0xaa; 64], "{what}: P's bytes");
        assert!(region_alive(&h, kept), "{what}: the free was undone");
        assert_eq!(
            h.manager.list_regions().unwrap().len(),
            2,
            "{what}: Q was never made"
        );
        // The owner writes P in the next transaction (no read-only mapping left).
        h.deploy_asm_at(OWNER, &(write(&arg(0), 0, 32, 0) + "POP STOP"));
        assert_ok(&h.call(OWNER, &arg_word(p)));
    }
}

/// A factory: CREATE with the calldata as init code, then return the created
/// address and the first word of the region whose handle is `region`.
fn factory(h: &mut Harness, region: U256) -> Address {
    h.deploy_asm(&format!(
        "{}CALLDATASIZE PUSH 0x100 PUSH 0 CREATE\n{}{}POP\n{}",
        calldata_to(0x100),
        store(0),
        read(&format!("PUSH {region}"), 0, 32, 0x20),
        ret(0, 64)
    ))
}

#[test]
fn a_create_whose_init_code_reverts_undoes_its_writes_and_allocs() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let region = region_owned_by(&mut h, OWNER, 64, 1);
    host_write(&h, region, 0, &[0xaa; 32]);
    let factory = factory(&mut h, region);
    let init_write = format!(
        "{}{}POP\n{}POP\n",
        mstore(0, fill(0xbb)),
        write(&format!("PUSH {region}"), 0, 32, 0),
        // A persistent region of its own.
        alloc(64, 1)
    );
    let cases = [
        ("init reverts", "PUSH 0 PUSH 0 REVERT", false),
        ("init halts", "INVALID", false),
        // Init code returns, but the code it returns starts with 0xEF: revm
        // reverts the CREATE frame after the fact.
        (
            "code starts with 0xEF",
            "PUSH 0xef PUSH 0 MSTORE8 PUSH 1 PUSH 0 RETURN",
            false,
        ),
        ("init succeeds", "PUSH 0 PUSH 0 RETURN", true),
    ];
    for (what, ending, succeeds) in cases {
        host_write(&h, region, 0, &[0xaa; 32]);
        let before = h.manager.list_regions().unwrap().len();
        let init = shm_evm::asm::assemble(&(init_write.clone() + ending)).unwrap();
        let out = h.call(factory, &init);
        assert_ok(&out);
        assert_eq!(out.word(0) != U256::ZERO, succeeds, "{what}: created");
        let expected = if succeeds { filled(0xbb) } else { filled(0xaa) };
        assert_eq!(
            out.word(1),
            expected,
            "{what}: the region as the factory read it"
        );
        assert_eq!(
            host_read(&h, region, 0, 32),
            expected.to_be_bytes::<32>().to_vec()
        );
        let after = h.manager.list_regions().unwrap().len();
        assert_eq!(
            after,
            before + usize::from(succeeds),
            "{what}: the init code's region"
        );
    }
}

/// One contract for every level: calldata = [handle, depth, revert mask, offset
/// stride]. Level `d` writes `fill(d + 1)` at `d * stride`, calls itself at
/// depth `d + 1` (below 3), then reverts if bit `d` of the mask is set.
fn nested_program() -> String {
    format!(
        "{cd}\
         PUSH 0x20 MLOAD PUSH 1 ADD \
         PUSH 0x0101010101010101010101010101010101010101010101010101010101010101 MUL \
         PUSH 0xa0 MSTORE\n\
         PUSH 0xa0 PUSH 32 PUSH 0x60 MLOAD PUSH 0x20 MLOAD MUL PUSH 0 MLOAD SHARED_WRITE POP\n\
         PUSH 0x20 MLOAD PUSH 2 GT ISZERO PUSH @done JUMPI\n\
         PUSH 0x20 MLOAD PUSH 1 ADD PUSH 0x20 MSTORE\n\
         PUSH 0 PUSH 0 PUSH 0x80 PUSH 0 PUSH 0 ADDRESS GAS CALL POP\n\
         PUSH 0x20 MLOAD PUSH 1 SWAP1 SUB PUSH 0x20 MSTORE\n\
         done:\nJUMPDEST\n\
         PUSH 0x40 MLOAD PUSH 0x20 MLOAD SHR PUSH 1 AND PUSH @revert JUMPI\n\
         STOP\n\
         revert:\nJUMPDEST\nPUSH 0 PUSH 0 REVERT\n",
        cd = calldata_to(0)
    )
}

#[test]
fn three_nested_levels_with_every_mix_of_commit_and_revert() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let region = region_owned_by(&mut h, OWNER, 3 * 4096, 1);
    let nested = h.deploy_asm(&nested_program());
    for stride in [32u64, 4096, 0] {
        for mask in 0u64..8 {
            host_write(&h, region, 0, &[0; 3 * 4096]);
            let input: Vec<u8> = [region, U256::ZERO, U256::from(mask), U256::from(stride)]
                .iter()
                .flat_map(|w| w.to_be_bytes::<32>())
                .collect();
            let out = h.call(nested, &input);
            assert_eq!(out.is_success(), mask & 1 == 0, "mask {mask:03b}");
            // Level d's write stands iff no level 0..=d reverted.
            let survives = |d: u64| (0..=d).all(|l| mask >> l & 1 == 0);
            if stride == 0 {
                // All levels write the same word: the deepest surviving one wins.
                let expected = (0..3)
                    .rev()
                    .find(|&d| survives(d))
                    .map_or(0, |d| d as u8 + 1);
                assert_eq!(
                    host_read(&h, region, 0, 32),
                    vec![expected; 32],
                    "same word, mask {mask:03b}"
                );
            } else {
                for d in 0..3 {
                    let expected = if survives(d) { d as u8 + 1 } else { 0 };
                    assert_eq!(
                        host_read(&h, region, d * stride, 32),
                        vec![expected; 32],
                        "level {d}, stride {stride}, mask {mask:03b}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_reverted_remap_restores_the_previous_mapping() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    // The owner maps read-only; a frame of the same context remaps read-write
    // and reverts: the read-only mapping is back and the owner's WRITE halts.
    let inner = format!("{}POP PUSH 0 PUSH 0 REVERT\n", map(&arg(0), 0));
    let setup = format!("{}POP\n", map(&mem(0), 0b10));
    let target = h.deploy_asm(&format!(
        "CALLDATASIZE PUSH @inner JUMPI\n{}{setup}\
         PUSH 0 PUSH 0 PUSH 32 PUSH 0 PUSH 0 ADDRESS GAS CALL POP\n{}STOP\n\
         inner:\nJUMPDEST\n{inner}",
        alloc_to(0, 64, 0),
        write(&mem(0), 0, 32, 0)
    ));
    let out = h.call(target, &[]);
    assert_halt(&out, HaltCause::PermissionDenied);
}

#[test]
fn a_mapping_made_in_a_reverted_frame_is_gone_under_strict() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    let region = region_owned_by(&mut h, OWNER, 64, 0b101);
    let stranger = addr(0xb1);
    for (inner_ends, expected) in [
        ("PUSH 0 PUSH 0 REVERT", Some(HaltCause::NoMapping)),
        ("STOP", None),
    ] {
        h.deploy_asm_at(
            stranger,
            &format!(
                "CALLDATASIZE PUSH 32 EQ ISZERO PUSH @inner JUMPI\n\
                 {cd}PUSH 0 PUSH 0 PUSH 64 PUSH 0 PUSH 0 ADDRESS GAS CALL POP\n\
                 {read}POP STOP\n\
                 inner:\nJUMPDEST\n{map}POP {inner_ends}\n",
                cd = calldata_to(0),
                read = read(&arg(0), 0, 32, 0),
                map = map(&arg(0), 0),
            ),
        );
        let out = h.call(stranger, &arg_word(region));
        match expected {
            Some(cause) => assert_halt(&out, cause),
            None => assert_ok(&out),
        }
    }
}
