//! A small node loop with shared memory on, the way a reth-style node embeds it:
//! EVMs come from [`ShmEvmFactory`] (alloy-evm's `EvmFactory`), blocks run through
//! alloy-evm's Ethereum block executor wrapped in [`ShmBlockExecutorFactory`] (which
//! publishes region effects exactly when it commits state), and an `eth_call`-style
//! simulation between blocks leaves every region untouched.
//!
//! The chain: an oracle contract writes a price into a persistent region the host
//! made; a consumer contract, in the same block, reads the price straight from the
//! region (no calldata copy, no storage round trip) and keeps a running sum in its
//! storage. At the end the node prints the region, the consumer's storage and the
//! Prometheus metrics.
//!
//! ```sh
//! cargo run -p shm-alloy-evm --example node
//! ```

use alloy_consensus::{transaction::Recovered, Signed, TxEnvelope, TxLegacy};
use alloy_evm::{
    block::{BlockExecutor, BlockExecutorFactory},
    eth::{receipt_builder::AlloyReceiptBuilder, spec::EthSpec, EthBlockExecutionCtx},
    Evm, EvmEnv, EvmFactory,
};
use alloy_primitives::{address, Address, Bytes, Signature, TxKind, U256};
use revm::{
    bytecode::Bytecode,
    context::TxEnv,
    database::{states::bundle_state::BundleRetention, InMemoryDB, State},
    primitives::hardfork::SpecId,
    state::AccountInfo,
};
use shm_alloy_evm::{ShmBlockExecutorFactory, ShmEvmFactory};
use shm_evm::asm::assemble;
use shm_manager::{Grant, RegionRequest, SharedMemoryConfig, SharedMemoryManager};
use shm_primitives::{Permissions, RegionHandle, RegionOptions};

const ORACLE: Address = address!("0x00000000000000000000000000000000000000a1");
const CONSUMER: Address = address!("0x00000000000000000000000000000000000000c1");
const SENDER: Address = address!("0x000000000000000000000000000000000000ca11");

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. One manager per node (production preset: Strict, mappings required).
    let manager = SharedMemoryManager::new(SharedMemoryConfig::production())?;
    let persistent = RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    };
    let ticker =
        manager.create_region(RegionRequest::new(64).named("ticker").options(persistent))?;
    manager.grant(ticker, ORACLE, Grant::new(Permissions::read_write()))?;
    manager.grant(ticker, CONSUMER, Grant::new(Permissions::read_only()))?;

    // 2. The contracts get the handle as their first calldata word and map the
    //    region before they touch it (Strict).
    //    Oracle: region[0..32] = calldata word 1 (the price).
    let oracle = assemble(
        "PUSH 0 PUSH 0 CALLDATALOAD SHARED_MAP POP
         PUSH 32 CALLDATALOAD PUSH 0 MSTORE
         PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_WRITE POP STOP",
    )?;
    //    Consumer: reads the price from the region, adds it to storage slot 0.
    let consumer = assemble(
        "PUSH 2 PUSH 0 CALLDATALOAD SHARED_MAP POP
         PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_READ POP
         PUSH 0 MLOAD PUSH 0 SLOAD ADD PUSH 0 SSTORE STOP",
    )?;
    let mut genesis = InMemoryDB::default();
    genesis.insert_account_info(
        ORACLE,
        AccountInfo::default().with_code(Bytecode::new_raw(oracle)),
    );
    genesis.insert_account_info(
        CONSUMER,
        AccountInfo::default().with_code(Bytecode::new_raw(consumer)),
    );
    genesis.insert_account_info(
        SENDER,
        AccountInfo::default().with_balance(U256::from(10u64.pow(18))),
    );
    let mut state = State::builder()
        .with_database(genesis)
        .with_bundle_update()
        .build();

    // 3. The factory a node plugs in (reth: `EthEvmConfig::new_with_evm_factory`),
    //    and the block executors around it.
    let factory = ShmEvmFactory::on(manager.clone());
    let executors = ShmBlockExecutorFactory::new(
        AlloyReceiptBuilder::default(),
        EthSpec::mainnet(),
        factory.clone(),
    );

    let mut nonce = 0;
    for (block, price) in [(1u64, 3_141u64), (2, 2_718), (3, 1_618)] {
        let mut env: EvmEnv = EvmEnv::default();
        env.cfg_env.spec = SpecId::CANCUN;
        env.block_env.number = U256::from(block);
        env.block_env.timestamp = U256::from(12 * block);
        let evm = executors.evm_factory().create_evm(&mut state, env.clone());
        let ctx = EthBlockExecutionCtx {
            parent_hash: Default::default(),
            parent_beacon_block_root: None,
            ommers: &[],
            withdrawals: None,
            extra_data: Default::default(),
            tx_count_hint: Some(2),
            slot_number: None,
        };
        let mut executor = executors.create_executor(evm, ctx);
        executor.apply_pre_execution_changes()?;
        let handle = ticker.to_u256();
        executor.execute_transaction(signed(nonce, ORACLE, &[handle, U256::from(price)]))?;
        executor.execute_transaction(signed(nonce + 1, CONSUMER, &[handle]))?;
        nonce += 2;
        let (_evm, result) = executor.finish()?;
        state.merge_transitions(BundleRetention::Reverts);
        println!(
            "block {block}: {} transactions, {} gas, ticker = {}",
            result.receipts.len(),
            result.gas_used,
            read_word(&manager, ticker)?
        );

        // 4. An `eth_call` between blocks: the oracle "writes" a bogus price in a
        //    simulation. revm runs its commit_tx as for any transaction, but the node
        //    never commits the state, so the region stays as the block left it.
        let before = read_word(&manager, ticker)?;
        let mut sim = factory.create_evm(&mut state, env);
        let call = TxEnv::builder()
            .caller(SENDER)
            .kind(TxKind::Call(ORACLE))
            .data(calldata(&[ticker.to_u256(), U256::from(999_999)]))
            .nonce(nonce)
            .gas_price(0)
            .build()
            .map_err(|e| format!("{e:?}"))?;
        let simulated = sim.transact(call)?;
        assert!(simulated.result.is_success());
        drop(sim);
        let after = read_word(&manager, ticker)?;
        assert_eq!(before, after, "a simulation never changes a region");
        println!("  eth_call of the oracle with 999999: succeeded, ticker still {after}");
    }

    let sum = state
        .load_cache_account(CONSUMER)?
        .account
        .as_ref()
        .and_then(|a| a.storage.get(&U256::ZERO).copied())
        .unwrap_or_default();
    println!("consumer's running sum: {sum} (3141 + 2718 + 1618 = 7477)");
    assert_eq!(sum, U256::from(7_477));
    assert!(manager.locked_regions().is_empty());

    println!("\n{}", manager.prometheus());
    Ok(())
}

/// Calldata of 32-byte words.
fn calldata(words: &[U256]) -> Bytes {
    words
        .iter()
        .flat_map(|w| w.to_be_bytes::<32>())
        .collect::<Vec<u8>>()
        .into()
}

/// A legacy transaction from `SENDER` to `to` with `words` as calldata (the
/// sender is given, as a node's pool hands recovered transactions over).
fn signed(nonce: u64, to: Address, words: &[U256]) -> Recovered<TxEnvelope> {
    let tx = TxLegacy {
        chain_id: Some(1),
        nonce,
        gas_price: 0,
        gas_limit: 200_000,
        to: TxKind::Call(to),
        value: U256::ZERO,
        input: calldata(words),
    };
    Recovered::new_unchecked(
        TxEnvelope::Legacy(Signed::new_unhashed(tx, Signature::test_signature())),
        SENDER,
    )
}

/// The region's first word, read by the host.
fn read_word(
    manager: &SharedMemoryManager,
    handle: RegionHandle,
) -> Result<U256, Box<dyn std::error::Error>> {
    let mut word = [0u8; 32];
    manager.read_region(handle, 0, &mut word)?;
    Ok(U256::from_be_bytes(word))
}
