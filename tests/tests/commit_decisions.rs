//! Region effects follow the embedder's decision about a transaction, not
//! revm's internal `commit_tx` (spec §6): one test per revm entry point, as
//! the table in `docs/architecture.md` lists them. A transaction writes a
//! persistent host region, frees another and makes a persistent region of its
//! own; afterwards the regions either show all three effects (committed) or
//! none (not committed), and no region stays locked once the EVM is gone.

use alloy_primitives::{Address, Bytes, U256};
use revm::{
    bytecode::Bytecode,
    context::{result::ExecutionResult, TxEnv},
    database::{CacheDB, EmptyDB},
    primitives::TxKind,
    state::AccountInfo,
    ExecuteCommitEvm, ExecuteEvm, InspectCommitEvm, InspectEvm, SystemCallCommitEvm, SystemCallEvm,
};
use shm_manager::{Grant, RegionRequest, SharedMemoryConfig, SharedMemoryManager};
use shm_opcodes::{ShmEvm, ShmEvmBuilder};
use shm_primitives::{Permissions, RegionHandle, RegionOptions};
use shm_tests::SENDER;
use std::sync::Arc;

const CONTRACT: Address = Address::repeat_byte(0xc0);

struct Setup {
    manager: Arc<SharedMemoryManager>,
    written: RegionHandle,
    freed: RegionHandle,
}

/// A development (Basic) manager with two persistent host regions the
/// contract may write and free, and a contract that writes 0xaa… into the
/// first, frees the second, makes a persistent region of its own and returns
/// its handle.
fn setup() -> (Setup, CacheDB<EmptyDB>) {
    let manager = SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap();
    let persistent = RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    };
    let written = manager
        .create_region(RegionRequest::new(64).named("written").options(persistent))
        .unwrap();
    let freed = manager
        .create_region(RegionRequest::new(64).named("freed").options(persistent))
        .unwrap();
    for h in [written, freed] {
        manager
            .grant(
                h,
                CONTRACT,
                Grant::new(Permissions::read_write()).with_free(),
            )
            .unwrap();
    }
    let fill = format!("0x{}", "aa".repeat(32));
    let code = shm_evm::asm::assemble(&format!(
        "PUSH32 {fill} PUSH 0 MSTORE
         PUSH 0 PUSH 32 PUSH 0 PUSH {written} SHARED_WRITE POP
         PUSH {freed} SHARED_FREE POP
         PUSH 1 PUSH 64 SHARED_ALLOC PUSH 0 MSTORE
         PUSH 32 PUSH 0 RETURN",
        written = written.to_u256(),
        freed = freed.to_u256(),
    ))
    .unwrap();
    let mut db = CacheDB::new(EmptyDB::default());
    db.insert_account_info(
        SENDER,
        AccountInfo::default().with_balance(U256::from(10u128.pow(30))),
    );
    db.insert_account_info(
        CONTRACT,
        AccountInfo::default().with_code(Bytecode::new_raw(code)),
    );
    (
        Setup {
            manager,
            written,
            freed,
        },
        db,
    )
}

fn evm(setup: &Setup, db: CacheDB<EmptyDB>) -> ShmEvm<CacheDB<EmptyDB>> {
    let mut ctx = ShmEvmBuilder::new(setup.manager.clone()).context(db);
    ctx.cfg.disable_nonce_check = true;
    ShmEvmBuilder::build_from(ctx)
}

fn tx() -> TxEnv {
    TxEnv::builder()
        .caller(SENDER)
        .kind(TxKind::Call(CONTRACT))
        .gas_limit(1_000_000)
        .gas_price(0)
        .build()
        .unwrap()
}

fn made(result: &ExecutionResult) -> RegionHandle {
    assert!(result.is_success(), "{result:?}");
    let out = result.output().cloned().unwrap_or_default();
    RegionHandle::from_u256(U256::from_be_slice(&out)).expect("a handle")
}

impl Setup {
    /// The three effects of the transaction that made `made` are all there.
    fn assert_published(&self, made: RegionHandle) {
        let mut buf = [0u8; 32];
        self.manager.read_region(self.written, 0, &mut buf).unwrap();
        assert_eq!(buf, [0xaa; 32], "the write landed");
        assert!(
            self.manager.region_info(self.freed).is_err(),
            "the free is final"
        );
        assert!(
            self.manager.region_info(made).is_ok(),
            "the new region stays"
        );
        assert!(self.manager.locked_regions().is_empty());
    }

    /// None of them is: every region is exactly as before.
    fn assert_untouched(&self, made: Option<RegionHandle>) {
        let mut buf = [0u8; 32];
        self.manager.read_region(self.written, 0, &mut buf).unwrap();
        assert_eq!(buf, [0; 32], "the write was undone");
        assert!(
            self.manager.region_info(self.freed).is_ok(),
            "the free was undone"
        );
        if let Some(made) = made {
            assert!(
                self.manager.region_info(made).is_err(),
                "the creation was undone"
            );
        }
        assert_eq!(self.manager.list_regions().unwrap().len(), 2);
        assert!(self.manager.locked_regions().is_empty());
    }
}

#[test]
fn transact_commit_publishes() {
    let (setup, db) = setup();
    let mut evm = evm(&setup, db);
    let result = evm.transact_commit(tx()).unwrap();
    setup.assert_published(made(&result));
}

#[test]
fn transact_without_commit_leaves_regions_untouched() {
    let (setup, db) = setup();
    let mut evm = evm(&setup, db);
    let result = evm.transact(tx()).unwrap();
    let made = made(&result.result);
    // Undecided: the regions stay locked (strict two-phase locking) until the
    // embedder decides or moves on; a host write waits and gives up.
    assert!(!setup.manager.locked_regions().is_empty());
    drop(result);
    drop(evm);
    setup.assert_untouched(Some(made));
}

#[test]
fn the_next_transaction_abandons_an_uncommitted_one() {
    let (setup, db) = setup();
    let mut evm = evm(&setup, db);
    let simulated = evm.transact(tx()).unwrap();
    let first = made(&simulated.result);
    // eth_call-style, then the same transaction for real on the same EVM.
    let result = evm.transact_commit(tx()).unwrap();
    let second = made(&result);
    assert!(
        setup.manager.region_info(first).is_err(),
        "the simulation's region is gone"
    );
    setup.assert_published(second);
}

#[test]
fn explicit_publish_and_abandon() {
    let (setup, db) = setup();
    let mut evm = evm(&setup, db);
    let result = evm.transact(tx()).unwrap();
    // An embedder that commits the state to a database of its own says so.
    assert!(evm.ctx.journaled_state.hook_mut().publish());
    setup.assert_published(made(&result.result));

    let (setup, db) = self::setup();
    let mut evm = self::evm(&setup, db);
    let result = evm.transact(tx()).unwrap();
    assert!(evm.ctx.journaled_state.hook_mut().abandon());
    assert!(
        !evm.ctx.journaled_state.hook_mut().abandon(),
        "nothing left"
    );
    setup.assert_untouched(Some(made(&result.result)));
}

#[test]
fn transact_one_then_finalize_and_commit() {
    let (setup, db) = setup();
    let mut evm = evm(&setup, db);
    let result = evm.transact_one(tx()).unwrap();
    let state = evm.finalize();
    evm.commit(state);
    setup.assert_published(made(&result));
}

#[test]
fn transact_many_is_decided_as_a_whole() {
    // Committed together.
    let (setup, db) = setup();
    let mut evm = evm(&setup, db);
    let results = evm.transact_many_commit([tx(), tx()].into_iter()).unwrap();
    assert!(results[0].is_success());
    // The second transaction saw the first's effects: its free of the same
    // region halted (the region was freed), so it did not succeed.
    assert!(!results[1].is_success());
    setup.assert_published(made(&results[0]));

    // Dropped together.
    let (setup, db) = self::setup();
    let mut evm = self::evm(&setup, db);
    let results = evm.transact_many([tx(), tx()].into_iter()).unwrap();
    let first = made(&results[0]);
    let _ = evm.finalize();
    drop(evm);
    setup.assert_untouched(Some(first));
}

#[test]
fn replay_commit_publishes_and_replay_does_not() {
    let (setup, db) = setup();
    let mut evm = evm(&setup, db);
    evm.ctx.tx = tx();
    let result = evm.replay_commit().unwrap();
    setup.assert_published(made(&result));

    let (setup, db) = self::setup();
    let mut evm = self::evm(&setup, db);
    evm.ctx.tx = tx();
    let result = evm.replay().unwrap();
    drop(evm);
    setup.assert_untouched(Some(made(&result.result)));
}

#[test]
fn inspected_runs_follow_the_same_rule() {
    let (setup, db) = setup();
    let mut ctx = ShmEvmBuilder::new(setup.manager.clone()).context(db);
    ctx.cfg.disable_nonce_check = true;
    let mut evm = ShmEvmBuilder::build_from_with_inspector(ctx, revm::inspector::NoOpInspector);
    let result = evm.inspect_tx_commit(tx()).unwrap();
    setup.assert_published(made(&result));

    let (setup, db) = self::setup();
    let mut ctx = ShmEvmBuilder::new(setup.manager.clone()).context(db);
    ctx.cfg.disable_nonce_check = true;
    let mut evm = ShmEvmBuilder::build_from_with_inspector(ctx, revm::inspector::NoOpInspector);
    let result = evm.inspect_tx(tx()).unwrap();
    drop(evm);
    setup.assert_untouched(Some(made(&result.result)));
}

#[test]
fn system_calls_follow_the_same_rule() {
    let (setup, db) = setup();
    let mut evm = evm(&setup, db);
    let result = evm
        .system_call_one_with_caller(SENDER, CONTRACT, Bytes::new())
        .unwrap();
    let state = evm.finalize();
    evm.commit(state);
    setup.assert_published(made(&result));

    let (setup, db) = self::setup();
    let mut evm = self::evm(&setup, db);
    let result = evm
        .system_call_with_caller_commit(SENDER, CONTRACT, Bytes::new())
        .unwrap();
    setup.assert_published(made(&result));

    let (setup, db) = self::setup();
    let mut evm = self::evm(&setup, db);
    let result = evm
        .system_call_with_caller(SENDER, CONTRACT, Bytes::new())
        .unwrap();
    drop(evm);
    setup.assert_untouched(Some(made(&result.result)));
}

#[test]
fn an_invalid_transaction_changes_nothing() {
    let (setup, db) = setup();
    let mut evm = evm(&setup, db);
    let mut broke = tx();
    broke.caller = Address::repeat_byte(0x99); // no balance for the value
    broke.value = U256::from(1);
    assert!(evm.transact_commit(broke).is_err());
    drop(evm);
    setup.assert_untouched(None);
}

#[test]
fn a_panic_mid_transaction_ends_it_like_a_failed_one() {
    /// Panics at the n-th step of a frame, after the transaction has written.
    struct PanicAfterWrite;
    impl<CTX> revm::Inspector<CTX> for PanicAfterWrite {
        fn step(&mut self, interp: &mut revm::interpreter::Interpreter, _: &mut CTX) {
            use revm::interpreter::interpreter_types::Jumps;
            // 0xE1 is SHARED_FREE: the write before it has happened.
            if interp.bytecode.opcode() == 0xE1 {
                panic!("an inspector failed");
            }
        }
    }
    let (setup, db) = setup();
    let again = db.clone();
    let manager = setup.manager.clone();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut ctx = ShmEvmBuilder::new(manager).context(db);
        ctx.cfg.disable_nonce_check = true;
        let mut evm = ShmEvmBuilder::build_from_with_inspector(ctx, PanicAfterWrite);
        let _ = evm.inspect_tx_commit(tx());
    }));
    assert!(unwound.is_err(), "the inspector panicked");
    // The unwinding dropped the EVM: the write is undone, nothing is locked,
    // and the next transaction goes through.
    setup.assert_untouched(None);
    let mut evm = evm(&setup, again);
    let result = evm.transact_commit(tx()).unwrap();
    setup.assert_published(made(&result));
}
