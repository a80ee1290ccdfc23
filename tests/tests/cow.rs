//! Copy-on-write mappings (spec §5): a context's writes go to private copies of
//! the pages it writes, its reads see them, everyone else sees live bytes;
//! private pages go at remap, when the mapping frame reverts, and at
//! transaction end. With COW off (`testing`) MAP bit 0 maps read-write.

mod common;

use alloy_primitives::{Address, U256};
use common::*;
use shm_manager::{HaltCause, SharedMemoryConfig};
use shm_primitives::{MapOptions, RegionHandle};

const OWNER: Address = Address::repeat_byte(0xa1);
const VIEWER: Address = Address::repeat_byte(0xb1);

/// The viewer. Calldata: [handle, mode]. Modes: 0 MAP copy-on-write and
/// write 0xbb… at 0; 1 write 0xbb… at 0 through whatever mapping it has;
/// 2 nothing; 5 MAP copy-on-write only. Then these return [bytes written or 0,
/// region[0..32], region[4096..4128]] as the viewer sees them. Mode 3 writes
/// 0xcc… at 0 and reverts; mode 4 maps copy-on-write, writes 0xcc… and reverts.
fn viewer() -> String {
    format!(
        "{mode} PUSH 2 EQ PUSH @look JUMPI\n\
         {mode} PUSH 1 EQ PUSH @write JUMPI\n\
         {mode} PUSH 3 EQ PUSH @write_cc JUMPI\n\
         {mode} PUSH 4 EQ PUSH @map_write_cc JUMPI\n\
         {mode} PUSH 5 EQ PUSH @map_only JUMPI\n\
         {map}POP\n\
         write:\nJUMPDEST\n{fill}{w}{s}\
         look:\nJUMPDEST\n{r0}POP\n{r1}POP\n{ret}\
         map_only:\nJUMPDEST\n{map}POP PUSH @look JUMP\n\
         map_write_cc:\nJUMPDEST\n{map}POP\n\
         write_cc:\nJUMPDEST\n{fill_cc}{w}POP PUSH 0 PUSH 0 REVERT\n",
        mode = arg(1),
        map = map(&arg(0), 1),
        fill = mstore(0, fill(0xbb)),
        fill_cc = mstore(0, fill(0xcc)),
        w = write(&arg(0), 0, 32, 0),
        s = store(0x20),
        r0 = read(&arg(0), 0, 32, 0x40),
        r1 = read(&arg(0), 4096, 32, 0x60),
        ret = ret(0x20, 0x60)
    )
}

/// Calls the viewer with (handle at mem[0], `mode`), return data to `at`.
fn call_viewer(mode: u64, at: u64) -> String {
    format!(
        "{}{}",
        mstore(0x20, mode),
        call(VIEWER, 0, 64, at, 0x60) + "POP\n"
    )
}

/// The owner's prologue: a public-read region of two pages (`flags` added),
/// 0xaa… at 0 and 0xa2… at 4096; handle at mem[0].
fn owner_prologue(flags: u64) -> String {
    format!(
        "{}{}{}POP\n{}{}POP\n",
        alloc_to(0, 8192, 0b100 | flags),
        mstore(0x300, fill(0xaa)),
        write(&mem(0), 0, 32, 0x300),
        mstore(0x300, fill(0xa2)),
        write(&mem(0), 4096, 32, 0x300),
    )
}

#[test]
fn a_cow_writer_sees_its_private_page_and_the_owner_sees_live_bytes() {
    for config in [
        SharedMemoryConfig::development(),
        SharedMemoryConfig::production(),
    ] {
        let mut h = Harness::new(config);
        h.deploy_asm_at(VIEWER, &viewer());
        h.deploy_asm_at(
            OWNER,
            &format!(
                "{}{}{}POP\n{}",
                owner_prologue(0),
                call_viewer(0, 0x100),
                read(&mem(0), 0, 32, 0x160),
                ret(0x100, 0x80)
            ),
        );
        let out = h.call(OWNER, &[]);
        assert_ok(&out);
        assert_eq!(
            out.word(0),
            U256::from(32),
            "the viewer wrote (read rights suffice)"
        );
        assert_eq!(
            out.word(1),
            filled(0xbb),
            "the viewer reads its private page"
        );
        assert_eq!(
            out.word(2),
            filled(0xa2),
            "and live bytes where it did not write"
        );
        assert_eq!(out.word(3), filled(0xaa), "the owner sees the live bytes");
    }
}

#[test]
fn later_live_writes_show_through_unfaulted_pages_only() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    h.deploy_asm_at(VIEWER, &viewer());
    h.deploy_asm_at(
        OWNER,
        &format!(
            "{}{}{}{}POP\n{}{}POP\n{}{}",
            owner_prologue(0),
            call_viewer(0, 0x100),
            // The owner writes both pages after the viewer's fault on page 0.
            mstore(0x300, fill(0xa3)),
            write(&mem(0), 0, 32, 0x300),
            mstore(0x300, fill(0xa4)),
            write(&mem(0), 4096, 32, 0x300),
            call_viewer(2, 0x100),
            ret(0x100, 0x60)
        ),
    );
    let out = h.call(OWNER, &[]);
    assert_ok(&out);
    assert_eq!(
        out.word(1),
        filled(0xbb),
        "the faulted page is a private snapshot"
    );
    assert_eq!(out.word(2), filled(0xa4), "an unfaulted page is live");
}

/// The owner runs the viewer in each of `modes` in turn (one transaction) and
/// returns what the last one returned.
fn viewer_sequence(h: &mut Harness, modes: &[u64]) -> Outcome {
    let calls: String = modes.iter().map(|&m| call_viewer(m, 0x100)).collect();
    h.deploy_asm_at(
        OWNER,
        &format!("{}{calls}{}", owner_prologue(0), ret(0x100, 0x60)),
    );
    let out = h.call(OWNER, &[]);
    assert_ok(&out);
    out
}

#[test]
fn private_pages_vanish_when_the_writing_frame_reverts() {
    for config in [
        SharedMemoryConfig::development(),
        SharedMemoryConfig::production(),
    ] {
        let strict = config.security_level >= shm_primitives::SecurityLevel::Strict;
        let mut h = Harness::new(config);
        h.deploy_asm_at(VIEWER, &viewer());
        // Mapped and written (0xbb…) in a frame that returned; overwritten
        // (0xcc…) in one that reverted: the committed private page is back.
        let out = viewer_sequence(&mut h, &[0, 3, 2]);
        assert_eq!(out.word(1), filled(0xbb));
        // Mapped in a frame that returned; first private write in one that
        // reverted: no private page, live bytes.
        let out = viewer_sequence(&mut h, &[5, 3, 2]);
        assert_eq!(out.word(1), filled(0xaa));
        // Mapped and written in a frame that reverted: page and mapping gone.
        let out = viewer_sequence(&mut h, &[4, 2]);
        if strict {
            // The viewer's READ has no mapping to go through.
            assert_eq!(out.last_halt, Some(HaltCause::NoMapping));
            assert_eq!(out.word(1), U256::ZERO, "the look halted");
        } else {
            // Basic reads without a mapping: live bytes.
            assert_eq!(out.last_halt, None);
            assert_eq!(out.word(1), filled(0xaa));
        }
        assert_eq!(h.manager.cow_pages(), 0);
    }
}

#[test]
fn a_remap_drops_private_pages() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    h.deploy_asm_at(
        VIEWER,
        &format!(
            "{}POP\n{}{}POP\n{}POP\n{}POP\n{}",
            map(&arg(0), 1),
            mstore(0, fill(0xbb)),
            write(&arg(0), 0, 32, 0),
            map(&arg(0), 1),
            read(&arg(0), 0, 32, 0),
            ret(0, 32)
        ),
    );
    h.deploy_asm_at(
        OWNER,
        &format!(
            "{}{}{}",
            owner_prologue(0),
            call(VIEWER, 0, 32, 0x100, 32),
            ret(0x100, 32)
        ),
    );
    let out = h.call(OWNER, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), filled(0xaa));
    assert_eq!(h.manager.cow_pages(), 0, "the gauge counts no dropped page");
}

#[test]
fn cow_writes_never_grow_the_region() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    h.deploy_asm_at(
        VIEWER,
        &format!(
            "{}POP\n{}{}{}{}",
            map(&arg(0), 1),
            mstore(0, fill(0xbb)),
            write(&arg(0), 8180, 32, 0),
            store(0),
            ret(0, 32)
        ),
    );
    // Auto-grow (bit 1) region of 8192 bytes.
    h.deploy_asm_at(
        OWNER,
        &format!(
            "{}{}{}",
            owner_prologue(0b10),
            call(VIEWER, 0, 32, 0x100, 32),
            ret(0x100, 32)
        ),
    );
    let out = h.call(OWNER, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), U256::from(12), "what fits");
}

#[test]
fn host_cow_mappings_lose_their_private_pages_at_transaction_end() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = region_owned_by(&mut h, OWNER, 8192, 0b101);
    host_write(&h, region, 0, &[0xaa; 32]);
    let handle = RegionHandle::from_u256(region).unwrap();
    h.manager
        .map_shared_region(handle, VIEWER, MapOptions::COPY_ON_WRITE)
        .unwrap();
    h.deploy_asm_at(VIEWER, &viewer());
    let mut input = arg_word(region);
    input.extend(arg_word(U256::from(1)));
    let out = h.call(VIEWER, &input);
    assert_ok(&out);
    assert_eq!(out.word(0), U256::from(32));
    assert_eq!(
        out.word(1),
        filled(0xbb),
        "the host's COW mapping reads the private page"
    );
    assert_eq!(
        host_read(&h, region, 0, 32),
        vec![0xaa; 32],
        "live bytes untouched"
    );
    assert_eq!(h.manager.cow_pages(), 0, "dropped at transaction end");
    // Next transaction: only live bytes.
    let mut input = arg_word(region);
    input.extend(arg_word(U256::from(2)));
    let out = h.call(VIEWER, &input);
    assert_eq!(out.word(1), filled(0xaa));
}

#[test]
fn with_cow_off_the_same_map_is_read_write() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    h.deploy_asm_at(VIEWER, &viewer());
    h.deploy_asm_at(
        OWNER,
        &format!(
            "{}{}{}POP\n{}",
            owner_prologue(0),
            call_viewer(0, 0x100),
            read(&mem(0), 0, 32, 0x160),
            ret(0x100, 0x80)
        ),
    );
    let out = h.call(OWNER, &[]);
    assert_ok(&out);
    assert_eq!(out.word(1), filled(0xbb));
    assert_eq!(
        out.word(3),
        filled(0xbb),
        "the owner sees the viewer's write"
    );
    assert_eq!(h.manager.metrics_snapshot().cow_faults, 0);
}

#[test]
fn with_cow_off_a_cow_request_does_not_widen_rights() {
    let mut config = SharedMemoryConfig::development();
    config.enable_cow = false;
    let mut h = Harness::new(config);
    h.deploy_asm_at(VIEWER, &viewer());
    let region = region_owned_by(&mut h, OWNER, 8192, 0b101);
    // Public read only: mapped read-write instead of COW, the write is refused.
    let mut input = arg_word(region);
    input.extend(arg_word(U256::ZERO));
    let out = h.call(VIEWER, &input);
    assert_halt(&out, HaltCause::PermissionDenied);
}
