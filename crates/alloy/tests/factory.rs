//! The `Evm` and `EvmFactory` surface of `ShmEvmFactory` against alloy-evm's `EthEvmFactory`:
//! inspectors and switching them, system calls, `finish`, `components`, precompiles as a
//! `PrecompilesMap`.

use alloy_evm::{eth::EthEvmFactory, precompiles::DynPrecompile, Evm, EvmEnv, EvmFactory};
use alloy_primitives::{address, hex, Address, Bytes, TxKind, U256};
use revm::{
    bytecode::Bytecode,
    context::TxEnv,
    context_interface::ContextTr,
    database::InMemoryDB,
    interpreter::{interpreter_types::Jumps, Interpreter},
    precompile::{PrecompileId, PrecompileOutput},
    primitives::hardfork::SpecId,
    state::AccountInfo,
    Inspector,
};
use shm_alloy_evm::ShmEvmFactory;

const TARGET: Address = address!("0x00000000000000000000000000000000000c0de0");

/// Counts executed instructions and records the opcodes seen.
#[derive(Default, Clone)]
struct Steps {
    count: usize,
    opcodes: Vec<u8>,
}

impl<CTX: ContextTr> Inspector<CTX> for Steps {
    fn step(&mut self, interp: &mut Interpreter, _context: &mut CTX) {
        self.count += 1;
        self.opcodes.push(interp.bytecode.opcode());
    }
}

fn db_with(code: &[u8]) -> InMemoryDB {
    let mut db = InMemoryDB::default();
    db.insert_account_info(
        TARGET,
        AccountInfo::default().with_code(Bytecode::new_raw(Bytes::copy_from_slice(code))),
    );
    db
}

fn call(data: &[u8]) -> TxEnv {
    TxEnv::builder()
        .kind(TxKind::Call(TARGET))
        .data(Bytes::copy_from_slice(data))
        .gas_price(0)
        .build()
        .unwrap()
}

// SSTORE(0, CALLDATALOAD(0)); return 32 bytes of memory holding CALLER.
const STORE_AND_RETURN_CALLER: &[u8] = &hex!("600035600055336000526020 6000f3");

#[test]
fn inspectors_see_the_same_steps_and_switch_off_and_on() {
    let env = EvmEnv::default();
    let mut eth = EthEvmFactory::default().create_evm_with_inspector(
        db_with(STORE_AND_RETURN_CALLER),
        env.clone(),
        Steps::default(),
    );
    let mut ours = ShmEvmFactory::off().create_evm_with_inspector(
        db_with(STORE_AND_RETURN_CALLER),
        env,
        Steps::default(),
    );
    let eth_out = eth.transact(call(&[1; 32])).unwrap();
    let our_out = ours.transact(call(&[1; 32])).unwrap();
    assert_eq!(eth_out.result, our_out.result);
    assert_eq!(eth_out.state, our_out.state);
    assert_eq!(eth.inspector().opcodes, ours.inspector().opcodes);
    assert_eq!(ours.inspector().count, 10);

    ours.disable_inspector();
    ours.transact(call(&[2; 32])).unwrap();
    assert_eq!(ours.inspector().count, 10, "disabled: not called");
    ours.enable_inspector();
    ours.transact(call(&[3; 32])).unwrap();
    assert_eq!(ours.inspector().count, 20, "enabled again");
    ours.inspector_mut().count = 0;
    assert_eq!(ours.components().1.count, 0);

    // `create_evm` runs without inspecting.
    let mut plain =
        ShmEvmFactory::off().create_evm(db_with(STORE_AND_RETURN_CALLER), EvmEnv::default());
    assert!(plain.transact(call(&[1; 32])).unwrap().result.is_success());
}

#[test]
fn system_calls_match_eth_evm() {
    let caller = address!("0xfffffffffffffffffffffffffffffffffffffffe");
    let mut env: EvmEnv = EvmEnv::default();
    env.block_env.beneficiary = address!("0x00000000000000000000000000000000000be4e6");
    let mut eth =
        EthEvmFactory::default().create_evm(db_with(STORE_AND_RETURN_CALLER), env.clone());
    let mut ours = ShmEvmFactory::off().create_evm(db_with(STORE_AND_RETURN_CALLER), env);
    let data = Bytes::from(vec![7u8; 32]);
    let a = eth
        .transact_system_call(caller, TARGET, data.clone())
        .unwrap();
    let b = ours.transact_system_call(caller, TARGET, data).unwrap();
    assert_eq!(a.result, b.result);
    assert_eq!(a.state, b.state);
    assert_eq!(&b.result.output().unwrap()[12..], caller.as_slice());
    assert!(
        !b.state.contains_key(&env_beneficiary()),
        "system calls leave the beneficiary out"
    );
}

fn env_beneficiary() -> Address {
    address!("0x00000000000000000000000000000000000be4e6")
}

#[test]
fn finish_components_and_accessors_return_what_went_in() {
    let mut env: EvmEnv = EvmEnv::default();
    env.cfg_env.spec = SpecId::PRAGUE;
    env.cfg_env.chain_id = 7;
    env.block_env.number = U256::from(42);
    let evm = ShmEvmFactory::off().create_evm(db_with(STORE_AND_RETURN_CALLER), env.clone());
    assert_eq!(evm.chain_id(), 7);
    assert_eq!(evm.block().number, U256::from(42));
    assert_eq!(evm.cfg_env().spec, SpecId::PRAGUE);
    let eth = EthEvmFactory::default().create_evm(InMemoryDB::default(), env.clone());
    let mut ours: Vec<_> = evm.precompiles().addresses().copied().collect();
    let mut theirs: Vec<_> = eth.precompiles().addresses().copied().collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 17, "Prague's precompiles");
    let (db, evm_env) = evm.finish();
    assert_eq!(evm_env.block_env, env.block_env);
    assert_eq!(evm_env.cfg_env.chain_id, 7);
    assert!(db.cache.accounts.contains_key(&TARGET));
}

#[test]
fn precompiles_are_a_map_the_embedder_can_change() {
    let custom = address!("0x0000000000000000000000000000000000000999");
    // CALL(gas, 0x999, 0, 0, 0, 0, 32); RETURN(0, 32)
    let code = hex!("60206000600060006000610999 5af1 5060206000f3");
    let mut evm = ShmEvmFactory::off().create_evm(db_with(&code), EvmEnv::default());
    evm.precompiles_mut().apply_precompile(&custom, |_| {
        Some(DynPrecompile::new(PrecompileId::custom("answer"), |_| {
            Ok(PrecompileOutput::new(15, Bytes::from(vec![42u8; 32]), 0))
        }))
    });
    let out = evm.transact(call(&[])).unwrap();
    assert_eq!(out.result.output().unwrap().as_ref(), &[42u8; 32]);
}
