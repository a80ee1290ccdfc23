//! Contexts and security levels: DELEGATECALL and CALLCODE run in the caller's
//! context (spec §2), and the same programs under None / Basic / Strict /
//! Paranoid give spec §7's outcomes.

mod common;

use alloy_primitives::{Address, U256};
use common::*;
use shm_manager::{Grant, HaltCause, SharedMemoryConfig};
use shm_primitives::{Permissions, RegionHandle};

const OWNER: Address = Address::repeat_byte(0xa1);
const STRANGER: Address = Address::repeat_byte(0xb1);
const LIBRARY: Address = Address::repeat_byte(0xd1);

/// The library: with R's handle at calldata word 0, reads R (no MAP of its
/// own), writes 0xdd… at R[32..64], allocates a persistent region and returns
/// [bytes read, R[0..32], written, new handle].
fn library() -> String {
    format!(
        "{r}{s0}{fill}{w}{s2}{a}{s3}{ret}",
        r = read(&arg(0), 0, 32, 0x20),
        s0 = store(0),
        fill = mstore(0x80, fill(0xdd)),
        w = write(&arg(0), 32, 32, 0x80),
        s2 = store(0x40),
        a = alloc(64, 1),
        s3 = store(0x60),
        ret = ret(0, 0x80)
    )
}

/// The caller: makes R, fills R[0..32] with 0xaa…, calls the library with
/// `call_op` (handle as calldata), then frees the library's region (only the
/// owner may, under Strict) and returns [success, library's 4 words, R[32..64],
/// FREE's push].
fn caller(call_op: &str) -> String {
    format!(
        "{alloc}{fill}{w}POP\n{call}{s}{r}POP\n{free}{sf}{ret}",
        alloc = alloc_to(0, 64, 0),
        fill = mstore(0x200, fill(0xaa)),
        w = write(&mem(0), 0, 32, 0x200),
        call = call_op,
        s = store(0x20),
        r = read(&mem(0), 32, 32, 0xc0),
        // The library's handle came back at mem[0xa0] (word 3 of its output).
        free = free(&mem(0xa0)),
        sf = store(0xe0),
        ret = ret(0x20, 0xe0)
    )
}

#[test]
fn a_delegate_uses_the_callers_regions_and_allocates_for_the_caller() {
    for (name, op) in [
        ("DELEGATECALL", delegatecall(LIBRARY, 0, 32, 0x40, 0x80)),
        ("CALLCODE", callcode(LIBRARY, 0, 32, 0x40, 0x80)),
    ] {
        let mut h = Harness::new(SharedMemoryConfig::production());
        h.deploy_asm_at(LIBRARY, &library());
        h.deploy_asm_at(OWNER, &caller(&op));
        let out = h.call(OWNER, &[]);
        assert_ok(&out);
        assert_eq!(out.word(0), U256::from(1), "{name}: the library ran");
        assert_eq!(
            out.word(1),
            U256::from(32),
            "{name}: read without its own MAP"
        );
        assert_eq!(out.word(2), filled(0xaa), "{name}: the caller's bytes");
        assert_eq!(out.word(3), U256::from(32), "{name}: wrote");
        let made = out.word(4);
        assert_eq!(made, handle(2, 1), "{name}: the library's ALLOC");
        assert_eq!(
            out.word(5),
            filled(0xdd),
            "{name}: the caller sees the write"
        );
        assert_eq!(
            out.word(6),
            U256::from(1),
            "{name}: the caller freed it: it owns it"
        );
    }
}

#[test]
fn a_delegates_alloc_is_owned_by_the_caller() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    h.deploy_asm_at(LIBRARY, &(alloc_to(0, 64, 1) + &ret(0, 32)));
    h.deploy_asm_at(
        OWNER,
        &(delegatecall(LIBRARY, 0, 0, 0, 32) + "POP\n" + &ret(0, 32)),
    );
    let out = h.call(OWNER, &[]);
    assert_ok(&out);
    let info = h
        .manager
        .region_info(RegionHandle::from_u256(out.word(0)).unwrap())
        .unwrap();
    assert_eq!(info.meta.owner(), OWNER);
    // A plain CALL allocates for the callee.
    h.deploy_asm_at(OWNER, &(call(LIBRARY, 0, 0, 0, 32) + "POP\n" + &ret(0, 32)));
    let out = h.call(OWNER, &[]);
    let info = h
        .manager
        .region_info(RegionHandle::from_u256(out.word(0)).unwrap())
        .unwrap();
    assert_eq!(info.meta.owner(), LIBRARY);
}

#[test]
fn a_plain_call_runs_in_the_callees_context() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    h.deploy_asm_at(LIBRARY, &library());
    h.deploy_asm_at(OWNER, &caller(&call(LIBRARY, 0, 32, 0x40, 0x80)));
    let (out, frames) = call_inspected(&mut h, OWNER, &[]);
    // The library has no mapping of the caller's region: its READ halts, and
    // the caller's FREE of the (never made) region at mem[0xa0] = 0 halts too.
    assert_frame_halted(&frames, LIBRARY, HaltCause::NoMapping);
    assert_halt(&out, HaltCause::InvalidHandle);
}

#[test]
fn a_delegate_frees_the_callers_persistent_region_under_strict() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    let region = region_owned_by(&mut h, OWNER, 64, 1);
    h.deploy_asm_at(LIBRARY, &(free(&arg(0)) + "POP STOP"));
    h.deploy_asm_at(
        OWNER,
        &(calldata_to(0) + &delegatecall(LIBRARY, 0, 32, 0, 0) + &store(0) + &ret(0, 32)),
    );
    let out = h.call(OWNER, &arg_word(region));
    assert_eq!(out.word(0), U256::from(1));
    assert!(h
        .manager
        .region_info(RegionHandle::from_u256(region).unwrap())
        .is_err());
}

// ----- spec §7's table, program by program -----

/// What a scenario does after the owner made a persistent region (`flags`)
/// in an earlier transaction: who acts, the host's grant to the stranger, and
/// the code (handle at calldata word 0).
struct Scenario {
    name: &'static str,
    flags: u64,
    grant: Option<Grant>,
    actor: Address,
    code: String,
    /// Outcome at None, Basic, Strict, Paranoid (`None`: success).
    expected: [Option<HaltCause>; 4],
}

fn scenarios() -> Vec<Scenario> {
    use HaltCause::{NoMapping as NM, PermissionDenied as PD};
    let mapped = |code: String| map(&arg(0), 0) + "POP\n" + &code;
    let rd = || read(&arg(0), 0, 32, 0);
    let wr = || write(&arg(0), 0, 32, 0);
    let read_only = Some(Grant::new(Permissions::read_only()));
    vec![
        Scenario {
            name: "stranger reads unmapped",
            flags: 1,
            grant: None,
            actor: STRANGER,
            code: rd(),
            expected: [None, Some(PD), Some(NM), Some(NM)],
        },
        Scenario {
            name: "stranger maps",
            flags: 1,
            grant: None,
            actor: STRANGER,
            code: map(&arg(0), 0),
            expected: [None, Some(PD), Some(PD), Some(PD)],
        },
        Scenario {
            name: "stranger writes unmapped",
            flags: 1,
            grant: None,
            actor: STRANGER,
            code: wr(),
            expected: [None, Some(PD), Some(NM), Some(NM)],
        },
        Scenario {
            name: "stranger frees",
            flags: 1,
            grant: None,
            actor: STRANGER,
            code: free(&arg(0)),
            expected: [None, Some(PD), Some(PD), Some(PD)],
        },
        Scenario {
            name: "stranger granted the right to free frees",
            flags: 1,
            grant: Some(Grant::new(Permissions::empty()).with_free()),
            actor: STRANGER,
            code: free(&arg(0)),
            expected: [None, None, Some(PD), Some(PD)],
        },
        Scenario {
            name: "stranger granted read maps and reads",
            flags: 1,
            grant: read_only,
            actor: STRANGER,
            code: mapped(rd()),
            expected: [None, None, None, None],
        },
        Scenario {
            name: "stranger granted read writes",
            flags: 1,
            grant: read_only,
            actor: STRANGER,
            code: mapped(wr()),
            expected: [None, Some(PD), Some(PD), Some(PD)],
        },
        Scenario {
            name: "stranger granted read-write writes",
            flags: 1,
            grant: Some(Grant::new(Permissions::read_write())),
            actor: STRANGER,
            code: mapped(wr()),
            expected: [None, None, None, None],
        },
        Scenario {
            name: "stranger maps and reads a public-read region",
            flags: 0b101,
            grant: None,
            actor: STRANGER,
            code: mapped(rd()),
            expected: [None, None, None, None],
        },
        Scenario {
            name: "stranger maps and writes a public-read region",
            flags: 0b101,
            grant: None,
            actor: STRANGER,
            code: mapped(wr()),
            expected: [None, Some(PD), Some(PD), Some(PD)],
        },
        Scenario {
            name: "stranger maps and writes a public-write region",
            flags: 0b1001,
            grant: None,
            actor: STRANGER,
            code: mapped(wr()),
            expected: [None, None, None, None],
        },
        Scenario {
            name: "owner reads in a later transaction without MAP",
            flags: 1,
            grant: None,
            actor: OWNER,
            code: rd(),
            expected: [None, None, Some(NM), Some(NM)],
        },
        Scenario {
            name: "owner maps and writes in a later transaction",
            flags: 1,
            grant: None,
            actor: OWNER,
            code: mapped(wr()),
            expected: [None, None, None, None],
        },
        Scenario {
            name: "owner writes through a read-only mapping",
            flags: 1,
            grant: None,
            actor: OWNER,
            code: map(&arg(0), 0b10) + "POP\n" + &wr(),
            expected: [None, Some(PD), Some(PD), Some(PD)],
        },
        Scenario {
            name: "owner frees",
            flags: 1,
            grant: None,
            actor: OWNER,
            code: free(&arg(0)),
            expected: [None, None, None, None],
        },
    ]
}

#[test]
fn the_same_programs_under_each_security_level_follow_spec_7() {
    for scenario in scenarios() {
        for (level, (name, config)) in level_configs().into_iter().enumerate() {
            let mut h = Harness::new(config);
            let region = region_owned_by(&mut h, OWNER, 64, scenario.flags);
            if let Some(grant) = scenario.grant {
                h.manager
                    .grant(RegionHandle::from_u256(region).unwrap(), STRANGER, grant)
                    .unwrap();
            }
            h.deploy_asm_at(scenario.actor, &(scenario.code.clone() + "POP STOP"));
            let out = h.call(scenario.actor, &arg_word(region));
            let what = format!("{} at {name}", scenario.name);
            match scenario.expected[level] {
                None => {
                    assert!(
                        out.is_success(),
                        "{what}: {:?} {:?}",
                        out.result,
                        out.last_halt
                    )
                }
                Some(cause) => {
                    assert_eq!(out.last_halt, Some(cause), "{what}");
                    assert_halt(&out, cause);
                }
            }
        }
    }
}

#[test]
fn refusals_are_counted_as_access_denials() {
    for (name, config) in level_configs() {
        let mut h = Harness::new(config);
        let region = region_owned_by(&mut h, OWNER, 64, 1);
        let before = h.manager.metrics_snapshot().access_denials;
        h.deploy_asm_at(STRANGER, &(map(&arg(0), 0) + "STOP"));
        h.call(STRANGER, &arg_word(region));
        let denied = h.manager.metrics_snapshot().access_denials - before;
        assert_eq!(denied, u64::from(name != "none"), "{name}");
    }
}
