//! Region effects follow the embedder's commit through alloy-evm's entry points:
//! `Evm::transact` / `transact_raw` (a simulation) leave regions untouched,
//! `Evm::transact_commit` publishes; in a block, `ShmBlockExecutorFactory` publishes what the
//! executor commits and nothing it is told not to commit (`CommitChanges::No`); alloy-evm's
//! own `EthBlockExecutorFactory`, which never tells the EVM it committed, publishes nothing.

use alloy_consensus::{transaction::Recovered, Signed, TxEnvelope, TxLegacy};
use alloy_evm::{
    block::{BlockExecutor, BlockExecutorFactory, CommitChanges},
    eth::{
        receipt_builder::AlloyReceiptBuilder, spec::EthSpec, EthBlockExecutionCtx,
        EthBlockExecutorFactory,
    },
    Evm, EvmEnv, EvmFactory,
};
use alloy_primitives::{address, hex, Address, Bytes, Signature, TxKind, U256};
use revm::{
    bytecode::Bytecode,
    context::TxEnv,
    database::{InMemoryDB, State},
    primitives::hardfork::SpecId,
    state::AccountInfo,
};
use shm_alloy_evm::{ShmBlockExecutorFactory, ShmEvmFactory};
use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
use shm_primitives::RegionHandle;
use std::sync::Arc;

const WRITER: Address = address!("0x00000000000000000000000000000000000c0de0");
const SENDER: Address = address!("0x000000000000000000000000000000000000ca11");

/// SHARED_ALLOC(64, PERSISTENT), SSTORE the handle at slot 0, SHARED_WRITE the first 32 bytes
/// of calldata at region offset 0:
///   PUSH1 1 PUSH1 64 SHARED_ALLOC DUP1 PUSH1 0 SSTORE
///   CALLDATALOAD(0) PUSH1 0 MSTORE
///   PUSH1 0 (mem_offset) PUSH1 32 (size) PUSH1 0 (region_offset) DUP4 SHARED_WRITE STOP
const WRITER_CODE: [u8; 24] = hex!("60016040e080600055600035600052600060206000 83 e4 00");

fn db() -> InMemoryDB {
    let mut db = InMemoryDB::default();
    db.insert_account_info(
        WRITER,
        AccountInfo::default().with_code(Bytecode::new_raw(Bytes::copy_from_slice(&WRITER_CODE))),
    );
    db.insert_account_info(
        SENDER,
        AccountInfo::default().with_balance(U256::from(10u64.pow(18))),
    );
    db
}

fn manager() -> Arc<SharedMemoryManager> {
    SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap()
}

fn env() -> EvmEnv {
    let mut env = EvmEnv::default();
    env.cfg_env.spec = SpecId::CANCUN;
    env
}

fn live_regions(manager: &SharedMemoryManager) -> u64 {
    manager.get_memory_stats().unwrap().active_regions as u64
}

/// The region a handle word names, read from the host side.
fn region_bytes(manager: &SharedMemoryManager, handle_word: U256) -> [u8; 32] {
    let handle = RegionHandle::from_u256(handle_word).expect("a handle");
    let mut bytes = [0u8; 32];
    assert_eq!(manager.read_region(handle, 0, &mut bytes).unwrap(), 32);
    bytes
}

fn call(byte: u8) -> TxEnv {
    TxEnv::builder()
        .caller(SENDER)
        .kind(TxKind::Call(WRITER))
        .data(Bytes::from(vec![byte; 32]))
        .gas_price(0)
        .build()
        .unwrap()
}

#[test]
fn a_simulation_leaves_regions_untouched_and_transact_commit_publishes() {
    let manager = manager();
    let factory = ShmEvmFactory::on(manager.clone());

    let mut evm = factory.create_evm(db(), env());
    let simulated = evm.transact(call(0x51)).unwrap();
    assert!(simulated.result.is_success());
    evm.transact_raw(call(0x52)).unwrap();
    drop(evm);
    assert_eq!(live_regions(&manager), 0, "nothing simulated stays");
    assert!(manager.locked_regions().is_empty());

    let mut evm = factory.create_evm(db(), env());
    assert!(evm.transact_commit(call(0xC0)).unwrap().is_success());
    let slot = evm.db().cache.accounts[&WRITER].storage[&U256::ZERO];
    assert_eq!(live_regions(&manager), 1);
    assert_eq!(region_bytes(&manager, slot), [0xC0; 32]);
    assert!(manager.locked_regions().is_empty());

    // A result committed by hand is published by `publish`, as `transact_commit` does.
    let mut evm = factory.create_evm(db(), env());
    let out = evm.transact(call(0xD0)).unwrap();
    revm::DatabaseCommit::commit(evm.db_mut(), out.state);
    assert!(evm.publish());
    assert_eq!(live_regions(&manager), 2);
}

fn tx(byte: u8) -> Recovered<TxEnvelope> {
    let tx = TxLegacy {
        chain_id: Some(1),
        nonce: 0,
        gas_price: 0,
        gas_limit: 1_000_000,
        to: TxKind::Call(WRITER),
        value: U256::ZERO,
        input: Bytes::from(vec![byte; 32]),
    };
    let signed = Signed::new_unhashed(tx, Signature::test_signature());
    Recovered::new_unchecked(TxEnvelope::Legacy(signed), SENDER)
}

fn ctx() -> EthBlockExecutionCtx<'static> {
    EthBlockExecutionCtx {
        parent_hash: Default::default(),
        parent_beacon_block_root: None,
        ommers: &[],
        withdrawals: None,
        extra_data: Default::default(),
        tx_count_hint: None,
        slot_number: None,
    }
}

#[test]
fn the_block_executor_publishes_what_it_commits_and_nothing_else() {
    let manager = manager();
    let executors = ShmBlockExecutorFactory::new(
        AlloyReceiptBuilder::default(),
        EthSpec::mainnet(),
        ShmEvmFactory::on(manager.clone()),
    );
    let mut state = State::builder().with_database(db()).build();
    let evm = executors.evm_factory().create_evm(&mut state, env());
    let mut executor = executors.create_executor(evm, ctx());
    executor.apply_pre_execution_changes().unwrap();
    // A transaction the builder leaves out.
    let left_out = executor
        .execute_transaction_with_commit_condition(tx(0x0F), |_| CommitChanges::No)
        .unwrap();
    assert!(left_out.is_none());
    // The one it keeps (same nonce: the first was never committed).
    executor.execute_transaction(tx(0xAB)).unwrap();
    let (_evm, result) = executor.finish().unwrap();
    assert!(result.receipts[0].status());
    assert_eq!(result.receipts.len(), 1);

    assert_eq!(
        live_regions(&manager),
        1,
        "only the committed transaction's region"
    );
    let slot = state.cache.accounts[&WRITER]
        .account
        .as_ref()
        .unwrap()
        .storage[&U256::ZERO];
    assert_eq!(region_bytes(&manager, slot), [0xAB; 32]);
    assert!(manager.locked_regions().is_empty());
}

#[test]
fn alloy_evms_own_executor_factory_publishes_nothing() {
    // `EthBlockExecutorFactory` commits to the database only: with shared memory on, the
    // regions stay as they were. Use `ShmBlockExecutorFactory` in a node.
    let manager = manager();
    let executors = EthBlockExecutorFactory::new(
        AlloyReceiptBuilder::default(),
        EthSpec::mainnet(),
        ShmEvmFactory::on(manager.clone()),
    );
    let mut state = State::builder().with_database(db()).build();
    let evm = executors.evm_factory().create_evm(&mut state, env());
    let executor = executors.create_executor(evm, ctx());
    let result = executor.execute_block([tx(0xAB)]).unwrap();
    assert!(result.receipts[0].status(), "the transaction ran");
    assert_eq!(live_regions(&manager), 0);
    assert!(manager.locked_regions().is_empty());
}
