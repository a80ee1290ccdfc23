//! Every halt cause of spec §5, with the exact `last_halt` and the revm halt
//! reason it maps to, and the order of checks where two causes apply.

mod common;

use alloy_primitives::{Address, U256};
use common::*;
use revm::{
    bytecode::Bytecode,
    context::TxEnv,
    database::{CacheDB, EmptyDB},
    primitives::{StorageKey, StorageValue, TxKind, B256},
    state::AccountInfo,
    Database, ExecuteEvm,
};
use shm_manager::{HaltCause, Intent, LockMode, SharedMemoryConfig, TxRegions};
use shm_opcodes::ShmEvmBuilder;
use shm_primitives::{MapOptions, RegionHandle};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const OWNER: Address = Address::repeat_byte(0xa1);
const STRANGER: Address = Address::repeat_byte(0xb1);

fn testing() -> Harness {
    Harness::new(SharedMemoryConfig::testing())
}

/// Runs `code` as a one-off contract in its own transaction.
fn run(h: &mut Harness, code: &str, input: &[u8]) -> Outcome {
    let target = h.deploy_asm(code);
    h.call(target, input)
}

/// The four operations that take a handle, each with the handle `h` pushes.
fn handle_ops(h: &str) -> [(&'static str, String); 4] {
    [
        ("READ", read(h, 0, 32, 0)),
        ("WRITE", write(h, 0, 32, 0)),
        ("MAP", map(h, 0)),
        ("FREE", free(h)),
    ]
}

#[test]
fn invalid_handles_halt_every_operation() {
    let words = [
        ("zero", U256::ZERO),
        ("index 0", U256::from(1u64 << 32)),
        ("generation 0", U256::from(1u64)),
        ("bit 64 set", first_handle() | (U256::from(1) << 64)),
        ("bit 255 set", first_handle() | (U256::from(1) << 255)),
        ("never issued slot", handle(7, 1)),
        ("generation never issued", handle(1, 0xffff_fff0)),
    ];
    for (_, config) in level_configs() {
        let mut h = Harness::new(config);
        for (what, word) in words {
            for (op, code) in handle_ops(&format!("PUSH {word}")) {
                // Slot 1 holds a live region at generation 1 while the op runs.
                let out = run(&mut h, &(alloc(64, 0) + "POP\n" + &code + "STOP"), &[]);
                assert_halt(&out, HaltCause::InvalidHandle);
                let _ = (what, op);
            }
        }
    }
}

#[test]
fn a_freed_region_halts_in_the_same_and_later_transactions() {
    let mut h = testing();
    for (op, code) in handle_ops(&mem(0)) {
        let out = run(
            &mut h,
            &format!("{}{}POP\n{code}STOP", alloc_to(0, 64, 0), free(&mem(0))),
            &[],
        );
        assert_halt(&out, HaltCause::FreedRegion);
        let _ = op;
    }
    // A transaction-scoped region is gone in the next transaction.
    let scoped = region_owned_by(&mut h, OWNER, 64, 0);
    // A persistent one freed in its own transaction too.
    let persistent = region_owned_by(&mut h, OWNER, 64, 1);
    let freed = run(&mut h, &(free(&arg(0)) + "STOP"), &arg_word(persistent));
    assert_ok(&freed);
    for region in [scoped, persistent] {
        for (op, code) in handle_ops(&arg(0)) {
            let out = run(&mut h, &(code + "STOP"), &arg_word(region));
            assert_halt(&out, HaltCause::FreedRegion);
            let _ = op;
        }
    }
}

#[test]
fn strict_read_and_write_need_a_mapping() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    // Public read and write, persistent: only the missing mapping can refuse.
    let region = region_owned_by(&mut h, OWNER, 64, 0b1101);
    for (who, context) in [("stranger", STRANGER), ("owner", OWNER)] {
        for code in [read(&arg(0), 0, 32, 0), write(&arg(0), 0, 32, 0)] {
            h.deploy_asm_at(context, &(code.clone() + "STOP"));
            let out = h.call(context, &arg_word(region));
            // The owner's mapping from ALLOC ended with that transaction.
            assert_halt(&out, HaltCause::NoMapping);
            let _ = who;
            // After a MAP in the same transaction the access works.
            h.deploy_asm_at(context, &(map(&arg(0), 0) + "POP\n" + &code + "STOP"));
            assert_ok(&h.call(context, &arg_word(region)));
        }
    }
    // Basic does not need the mapping.
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = region_owned_by(&mut h, OWNER, 64, 0b1101);
    let out = run(
        &mut h,
        &(read(&arg(0), 0, 32, 0) + "STOP"),
        &arg_word(region),
    );
    assert_ok(&out);
}

#[test]
fn strangers_without_rights_are_denied_at_basic_and_above() {
    for (name, config) in level_configs().into_iter().skip(1) {
        let mut h = Harness::new(config);
        let private = region_owned_by(&mut h, OWNER, 64, 1);
        let cases = [
            ("MAP", map(&arg(0), 0)),
            ("READ", map(&arg(0), 0) + "POP\n" + &read(&arg(0), 0, 32, 0)),
            ("FREE", free(&arg(0))),
        ];
        for (op, code) in cases {
            h.deploy_asm_at(STRANGER, &(code + "STOP"));
            let out = h.call(STRANGER, &arg_word(private));
            // MAP needs read rights, so even the MAP before READ is refused.
            assert_halt(&out, HaltCause::PermissionDenied);
            let _ = (name, op);
        }
        // Public read: the stranger maps and reads, but may not write or free.
        let public_read = region_owned_by(&mut h, OWNER, 64, 0b101);
        h.deploy_asm_at(
            STRANGER,
            &(map(&arg(0), 0) + "POP\n" + &read(&arg(0), 0, 32, 0) + "STOP"),
        );
        assert_ok(&h.call(STRANGER, &arg_word(public_read)));
        for code in [write(&arg(0), 0, 32, 0), free(&arg(0))] {
            h.deploy_asm_at(STRANGER, &(map(&arg(0), 0) + "POP\n" + &code + "STOP"));
            let out = h.call(STRANGER, &arg_word(public_read));
            assert_halt(&out, HaltCause::PermissionDenied);
        }
        // Public write: writes, but only the owner (or, at Basic, a granted
        // context) frees.
        let public_write = region_owned_by(&mut h, OWNER, 64, 0b1001);
        h.deploy_asm_at(
            STRANGER,
            &(map(&arg(0), 0) + "POP\n" + &write(&arg(0), 0, 32, 0) + "STOP"),
        );
        assert_ok(&h.call(STRANGER, &arg_word(public_write)));
        h.deploy_asm_at(STRANGER, &(free(&arg(0)) + "STOP"));
        assert_halt(
            &h.call(STRANGER, &arg_word(public_write)),
            HaltCause::PermissionDenied,
        );
    }
}

#[test]
fn a_read_only_mapping_forbids_writes_at_basic_and_above() {
    for (name, config) in level_configs() {
        let mut h = Harness::new(config);
        for options in [0b10, 0b11, 0b1110] {
            let out = run(
                &mut h,
                &format!(
                    "{}{}POP\n{}POP\nSTOP",
                    alloc_to(0, 64, 0),
                    map(&mem(0), options),
                    write(&mem(0), 0, 32, 0)
                ),
                &[],
            );
            if name == "none" {
                assert_ok(&out);
            } else {
                // Read-only wins over copy-on-write (options 0b11).
                assert_halt(&out, HaltCause::PermissionDenied);
            }
        }
    }
}

/// Allocates, STATICCALLs itself with the handle, and returns the static
/// frame's success flag and its return data. In the static frame: `body`.
fn static_program(body: &str) -> String {
    format!(
        "CALLDATASIZE PUSH @inner JUMPI\n\
         {}{}{}\
         PUSH 32 PUSH 32 PUSH 32 PUSH 0 ADDRESS GAS STATICCALL\n{}\
         PUSH 64 PUSH 0 RETURN\n\
         inner:\nJUMPDEST\n{body}",
        alloc_to(0, 64, 0),
        mstore(32, fill(0x77)),
        write(&mem(0), 0, 32, 32) + "POP\n",
        // The STATICCALL returns into mem[32..64]; its flag goes to mem[0..32].
        store(0)
    )
}

#[test]
fn alloc_free_and_write_halt_in_a_static_frame() {
    for (name, config) in level_configs() {
        let mut h = Harness::new(config);
        let cases = [
            ("ALLOC", alloc(64, 0)),
            ("FREE", free(&arg(0))),
            (
                "WRITE",
                map(&arg(0), 0) + "POP\n" + &write(&arg(0), 0, 32, 0),
            ),
        ];
        for (op, body) in cases {
            let target = h.deploy_asm(&static_program(&(body + "STOP")));
            let (out, frames) = call_inspected(&mut h, target, &[]);
            assert_ok(&out);
            assert_eq!(
                out.word(0),
                U256::ZERO,
                "{name} {op}: the static frame failed"
            );
            assert_eq!(out.last_halt, Some(HaltCause::StaticWrite), "{name} {op}");
            // Innermost frame first: the static frame's own result.
            assert_eq!(
                frames.frames[0].1,
                instruction_result_for(HaltCause::StaticWrite),
                "{name} {op}"
            );
        }
    }
}

#[test]
fn map_and_read_work_in_a_static_frame() {
    for (name, config) in level_configs() {
        let mut h = Harness::new(config);
        let body = format!(
            "{}POP\n{}POP\n{}",
            map(&arg(0), 0),
            read(&arg(0), 0, 32, 0),
            ret(0, 32)
        );
        let target = h.deploy_asm(&static_program(&body));
        let out = h.call(target, &[]);
        assert_ok(&out);
        assert_eq!(
            out.word(0),
            U256::from(1),
            "{name}: the static frame succeeded"
        );
        assert_eq!(out.word(1), filled(0x77), "{name}: and read the region");
        assert_eq!(out.last_halt, None);
    }
}

#[test]
fn unknown_flag_and_option_bits_halt() {
    let mut h = testing();
    for flags in [
        U256::from(0x10),
        U256::from(0x1f),
        U256::from(1) << 64,
        U256::from(1) << 255,
    ] {
        let out = run(&mut h, &(alloc(64, flags) + "STOP"), &[]);
        assert_halt(&out, HaltCause::BadFlags);
        let out = run(
            &mut h,
            &format!("{}{}STOP", alloc_to(0, 64, 0), map(&mem(0), flags)),
            &[],
        );
        assert_halt(&out, HaltCause::BadFlags);
    }
    // Every known bit combination is accepted.
    let out = run(&mut h, &(alloc(64, 0xf) + "STOP"), &[]);
    assert_ok(&out);
}

#[test]
fn region_offset_plus_size_at_or_above_2_pow_64_halts() {
    let max = U256::from(u64::MAX);
    let two64 = U256::from(1) << 64;
    let mut h = testing();
    let overflowing = [
        (max, 1u64),
        (max - U256::from(31), 32),
        (two64, 0),
        (two64, 1),
        (U256::MAX, 0),
    ];
    for (offset, size) in overflowing {
        for op in ["SHARED_READ", "SHARED_WRITE"] {
            let code = format!(
                "{}PUSH 0 PUSH {size} PUSH {offset} {} {op}\nSTOP",
                alloc_to(0, 64, 0),
                mem(0)
            );
            let out = run(&mut h, &code, &[]);
            assert_halt(&out, HaltCause::OffsetOverflow);
        }
    }
    // Just below: `region_offset + size` = 2^64 − 1 is simply past the end.
    for op in ["SHARED_READ", "SHARED_WRITE"] {
        let offset = max - U256::from(32);
        let code = format!(
            "{}PUSH 0 PUSH 32 PUSH {offset} {} {op}\n{}{}",
            alloc_to(0, 64, 0),
            mem(0),
            store(0),
            ret(0, 32)
        );
        let out = run(&mut h, &code, &[]);
        assert_ok(&out);
        assert_eq!(out.word(0), U256::ZERO, "{op}: nothing past the end");
    }
}

/// A manager whose region 1 is held by a foreign transaction in `mode`.
fn held_region(config: SharedMemoryConfig, mode: LockMode) -> (Harness, U256, TxRegions) {
    let mut h = Harness::new(config);
    let region = region_owned_by(&mut h, OWNER, 64, 0b1101);
    let mut foreign = h.manager.begin_transaction();
    let handle = RegionHandle::from_u256(region).unwrap();
    let intent = match mode {
        LockMode::Exclusive => Intent::Write,
        LockMode::Shared => Intent::Read,
    };
    // With its own mapping, as a transaction that mapped it would hold it.
    foreign
        .resolve(
            handle,
            OWNER,
            intent,
            Some(MapOptions::empty()),
            Duration::ZERO,
        )
        .expect("the region is free");
    (h, region, foreign)
}

#[test]
fn a_region_held_exclusively_elsewhere_halts_busy_after_the_lock_wait() {
    let mut config = SharedMemoryConfig::development();
    config.lock_wait = Duration::from_millis(20);
    let (mut h, region, foreign) = held_region(config, LockMode::Exclusive);
    for (op, code) in handle_ops(&arg(0)) {
        let start = Instant::now();
        let out = run(&mut h, &(code + "STOP"), &arg_word(region));
        assert!(start.elapsed() >= Duration::from_millis(20), "{op} waited");
        assert_halt(&out, HaltCause::RegionBusy);
    }
    // Released: the same operations go through.
    foreign.release();
    let out = run(
        &mut h,
        &(read(&arg(0), 0, 32, 0) + "STOP"),
        &arg_word(region),
    );
    assert_ok(&out);
}

#[test]
fn a_shared_hold_elsewhere_lets_reads_through_and_stops_writes() {
    let mut config = SharedMemoryConfig::development();
    config.lock_wait = Duration::from_millis(10);
    let (mut h, region, _foreign) = held_region(config, LockMode::Shared);
    for code in [read(&arg(0), 0, 32, 0), map(&arg(0), 0)] {
        assert_ok(&run(&mut h, &(code + "STOP"), &arg_word(region)));
    }
    for code in [write(&arg(0), 0, 32, 0), free(&arg(0))] {
        let out = run(&mut h, &(code + "STOP"), &arg_word(region));
        assert_halt(&out, HaltCause::RegionBusy);
    }
}

// ----- a real transaction on another thread holding the region -----

/// A database that blocks the first time revm asks for `gate`'s account, so a
/// transaction can be paused half-way while it holds its region locks.
struct GatedDb {
    inner: CacheDB<EmptyDB>,
    gate: Address,
    reached: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
}

impl Database for GatedDb {
    type Error = <CacheDB<EmptyDB> as Database>::Error;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        if address == self.gate {
            let _ = self.reached.send(());
            let _ = self.go.recv();
        }
        self.inner.basic(address)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        self.inner.code_by_hash(code_hash)
    }
    fn storage(
        &mut self,
        address: Address,
        index: StorageKey,
    ) -> Result<StorageValue, Self::Error> {
        self.inner.storage(address, index)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.inner.block_hash(number)
    }
}

#[test]
fn a_transaction_on_another_thread_holds_its_region_until_it_ends() {
    let mut config = SharedMemoryConfig::development();
    config.lock_wait = Duration::from_millis(30);
    let mut h = Harness::new(config);
    let region = region_owned_by(&mut h, OWNER, 64, 0b1101);

    // The writer writes 0x99… into the region, then touches the gated account.
    let gate = addr(0x6a);
    let writer = addr(0x77);
    let writer_code = format!(
        "{}{}POP\nPUSH20 0x{} BALANCE POP\nSTOP",
        mstore(0, fill(0x99)),
        write(&arg(0), 0, 32, 0),
        alloy_primitives::hex::encode(gate)
    );
    let mut inner = h.db.clone();
    inner.insert_account_info(
        writer,
        AccountInfo::default()
            .with_nonce(1)
            .with_code(Bytecode::new_raw(
                shm_evm::asm::assemble(&writer_code).unwrap(),
            )),
    );
    let (reached_tx, reached) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let db = GatedDb {
        inner,
        gate,
        reached: reached_tx,
        go: go_rx,
    };
    let manager = h.manager.clone();
    let input = arg_word(region);
    let thread = std::thread::spawn(move || {
        let mut ctx = ShmEvmBuilder::new(manager).context(db);
        ctx.cfg.disable_nonce_check = true;
        ctx.cfg.tx_gas_limit_cap = Some(u64::MAX);
        let mut evm = ShmEvmBuilder::build_from(ctx);
        let tx = TxEnv::builder()
            .caller(SENDER)
            .kind(TxKind::Call(writer))
            .data(input.into())
            .gas_limit(GAS_LIMIT)
            .gas_price(0)
            .build()
            .unwrap();
        let result = evm.transact(tx).unwrap().result;
        // The state is kept: the region effects are published with it.
        evm.ctx.journaled_state.hook_mut().publish();
        result
    });

    reached.recv().expect("the writer reached the gate");
    // The writer holds the region exclusively: a reader here waits, then halts busy.
    let start = Instant::now();
    let out = run(
        &mut h,
        &(read(&arg(0), 0, 32, 0) + "STOP"),
        &arg_word(region),
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_halt(&out, HaltCause::RegionBusy);
    // The host waits for the region's lock too, and gives up the same way.
    let mut buf = [0u8; 32];
    let busy = h
        .manager
        .read_region(RegionHandle::from_u256(region).unwrap(), 0, &mut buf);
    assert!(
        matches!(busy, Err(shm_manager::ShmError::RegionBusy { .. })),
        "{busy:?}"
    );
    go.send(()).unwrap();
    let result = thread.join().unwrap();
    assert!(result.is_success(), "{result:?}");

    // The writer's transaction ended: its lock is gone and its bytes are there.
    let out = run(
        &mut h,
        &(read(&arg(0), 0, 32, 0) + "POP\n" + &ret(0, 32)),
        &arg_word(region),
    );
    assert_ok(&out);
    assert_eq!(out.word(0), filled(0x99));
}

#[test]
fn a_waiter_gets_the_region_when_the_holder_lets_go_within_the_wait() {
    let mut config = SharedMemoryConfig::development();
    config.lock_wait = Duration::from_secs(10);
    let (mut h, region, foreign) = held_region(config, LockMode::Exclusive);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        foreign.release()
    });
    let out = run(
        &mut h,
        &(write(&arg(0), 0, 32, 0) + "STOP"),
        &arg_word(region),
    );
    assert_eq!(releaser.join().unwrap(), 1);
    assert_ok(&out);
}

// ----- order of checks -----

#[test]
fn static_context_is_checked_before_flags_and_handles() {
    let mut h = testing();
    let cases = [
        ("ALLOC with bad flags", alloc(64, 0x10)),
        ("ALLOC with size 0", alloc(0, 0)),
        ("FREE of handle 0", free("PUSH 0")),
        ("WRITE to handle 0", write("PUSH 0", 0, 32, 0)),
        ("WRITE overflowing", write(&arg(0), U256::MAX, 32, 0)),
    ];
    for (what, body) in cases {
        let target = h.deploy_asm(&static_program(&(body + "STOP")));
        let (out, frames) = call_inspected(&mut h, target, &[]);
        assert_ok(&out);
        assert_eq!(out.last_halt, Some(HaltCause::StaticWrite), "{what}");
        assert_eq!(
            frames.frames[0].1,
            instruction_result_for(HaltCause::StaticWrite),
            "{what}"
        );
    }
    // MAP is allowed in a static frame: its own checks decide.
    let target = h.deploy_asm(&static_program(&(map(&arg(0), 0x10) + "STOP")));
    let (out, frames) = call_inspected(&mut h, target, &[]);
    assert_eq!(out.last_halt, Some(HaltCause::BadFlags));
    assert_eq!(
        frames.frames[0].1,
        instruction_result_for(HaltCause::BadFlags)
    );
    let target = h.deploy_asm(&static_program(&(map("PUSH 0", 0) + "STOP")));
    let (out, _) = call_inspected(&mut h, target, &[]);
    assert_eq!(out.last_halt, Some(HaltCause::InvalidHandle));
}

#[test]
fn flags_are_checked_before_the_handle() {
    let mut h = testing();
    let out = run(&mut h, &(map("PUSH 0", 0x20) + "STOP"), &[]);
    assert_halt(&out, HaltCause::BadFlags);
}

#[test]
fn the_handle_is_checked_before_the_mapping_and_the_mapping_before_permission() {
    let mut h = Harness::new(SharedMemoryConfig::production());
    // Invalid and freed handles win over the missing mapping.
    let out = run(&mut h, &(read("PUSH 0", 0, 32, 0) + "STOP"), &[]);
    assert_halt(&out, HaltCause::InvalidHandle);
    let scoped = region_owned_by(&mut h, OWNER, 64, 0);
    let out = run(
        &mut h,
        &(read(&arg(0), 0, 32, 0) + "STOP"),
        &arg_word(scoped),
    );
    assert_halt(&out, HaltCause::FreedRegion);
    // A stranger with no rights and no mapping: the mapping is reported.
    let private = region_owned_by(&mut h, OWNER, 64, 1);
    let out = run(
        &mut h,
        &(write(&arg(0), 0, 32, 0) + "STOP"),
        &arg_word(private),
    );
    assert_halt(&out, HaltCause::NoMapping);
}

#[test]
fn permission_is_checked_before_offsets() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    let private = region_owned_by(&mut h, OWNER, 64, 1);
    let out = run(
        &mut h,
        &(read(&arg(0), U256::MAX, 32, 0) + "STOP"),
        &arg_word(private),
    );
    assert_halt(&out, HaltCause::PermissionDenied);
}

#[test]
fn the_lock_is_taken_before_the_mapping_is_checked() {
    let mut config = SharedMemoryConfig::production();
    config.lock_wait = Duration::from_millis(5);
    let (mut h, region, _foreign) = held_region(config, LockMode::Exclusive);
    // No mapping either, but the region's lock comes first (docs/opcodes.md).
    let out = run(
        &mut h,
        &(read(&arg(0), 0, 32, 0) + "STOP"),
        &arg_word(region),
    );
    assert_halt(&out, HaltCause::RegionBusy);
}

#[test]
fn offsets_are_checked_before_gas() {
    let mut h = testing();
    // The inner frame gets too little gas for even a warm READ (the region is
    // warm: ALLOC warmed it), and its offsets overflow: the overflow is what it
    // halts with.
    let inner = h.deploy_asm(&(read(&arg(0), U256::MAX, 1, 0) + "STOP"));
    let outer = h.deploy_asm(&format!(
        "{}{}{}{}",
        alloc_to(0, 64, 0),
        call_gas(inner, 40, 0, 32, 0, 0),
        store(32),
        ret(32, 32)
    ));
    let (out, frames) = call_inspected(&mut h, outer, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), U256::ZERO, "the inner frame failed");
    assert_frame_halted(&frames, inner, HaltCause::OffsetOverflow);
    assert_eq!(out.last_halt, Some(HaltCause::OffsetOverflow));

    // Same frame without the overflow: it runs out of gas instead.
    let inner = h.deploy_asm(&(read(&arg(0), 0, 1, 0) + "STOP"));
    let outer = h.deploy_asm(&format!(
        "{}{}{}{}",
        alloc_to(0, 64, 0),
        call_gas(inner, 40, 0, 32, 0, 0),
        store(32),
        ret(32, 32)
    ));
    let (out, frames) = call_inspected(&mut h, outer, &[]);
    assert_eq!(out.word(0), U256::ZERO);
    assert_eq!(
        frames.frames[0].1,
        revm::interpreter::InstructionResult::OutOfGas
    );
    assert_eq!(
        out.last_halt, None,
        "out of gas is not a shared-memory cause"
    );
}

#[test]
fn halts_are_counted_per_cause_in_the_metrics() {
    let mut h = testing();
    let before = h.manager.metrics_snapshot();
    run(&mut h, &(read("PUSH 0", 0, 32, 0) + "STOP"), &[]);
    run(&mut h, &(alloc(64, 0x10) + "STOP"), &[]);
    run(&mut h, &(alloc(64, 0x10) + "STOP"), &[]);
    let after = h.manager.metrics_snapshot();
    let count = |m: &shm_manager::Metrics, c: HaltCause| m.halts.get(c);
    assert_eq!(
        count(&after, HaltCause::InvalidHandle) - count(&before, HaltCause::InvalidHandle),
        1
    );
    assert_eq!(
        count(&after, HaltCause::BadFlags) - count(&before, HaltCause::BadFlags),
        2
    );
}
