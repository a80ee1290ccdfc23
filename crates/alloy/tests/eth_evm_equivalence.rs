//! With shared memory off, `ShmEvmFactory` builds exactly alloy-evm's `EthEvm`: every Cancun
//! case of the Ethereum state tests gives the same result and the same state through
//! `EthEvmFactory` and `ShmEvmFactory::off()`, and (but for the fixtures that need
//! 0xE0–0xE4 undefined) through `ShmEvmFactory::on(..)` too.

use alloy_evm::{eth::EthEvmFactory, Evm, EvmEnv, EvmFactory};
use revm::{
    context::CfgEnv,
    context_interface::result::{EVMError, HaltReason, ResultAndState},
    database::{CacheState, State},
    primitives::hardfork::SpecId,
    statetest_types::{SpecName, TestSuite},
    DatabaseCommit,
};
use shm_alloy_evm::ShmEvmFactory;
use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
use std::convert::Infallible;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/ethereum-tests/GeneralStateTests"
);

const SLOW: [&str; 4] = [
    "Call50000_sha256.json",
    "static_Call50000_sha256.json",
    "loopMul.json",
    "CALLBlake2f_MaxRounds.json",
];

type Outcome =
    Result<ResultAndState<HaltReason>, EVMError<revm::database::bal::EvmDatabaseError<Infallible>>>;

fn run<F>(
    factory: &F,
    prestate: &CacheState,
    env: &EvmEnv,
    tx: &revm::context::TxEnv,
) -> (Outcome, CacheState)
where
    F: EvmFactory<
        Spec = SpecId,
        BlockEnv = revm::context::BlockEnv,
        Tx = revm::context::TxEnv,
        HaltReason = HaltReason,
    >,
    for<'a> F::Evm<&'a mut State<revm::database::EmptyDB>, revm::inspector::NoOpInspector>:
        Evm<Error = EVMError<revm::database::bal::EvmDatabaseError<Infallible>>>,
{
    let mut state = State::builder()
        .with_cached_prestate(prestate.clone())
        .build();
    let outcome = {
        let mut evm = factory.create_evm(&mut state, env.clone());
        let outcome = evm.transact(tx.clone());
        if let Ok(result) = &outcome {
            evm.db_mut().commit(result.state.clone());
        }
        outcome
    };
    (outcome, state.cache)
}

/// Outcomes compared: result and state changes, or the error.
fn same_outcome(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a.result == b.result && a.state == b.state,
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    }
}

/// Cache states compared by what they hold (account by account).
fn same_cache(a: &CacheState, b: &CacheState) -> bool {
    let a: std::collections::BTreeMap<_, _> = a.trie_account().into_iter().collect();
    let b: std::collections::BTreeMap<_, _> = b.trie_account().into_iter().collect();
    a == b
}

#[test]
fn every_cancun_state_test_case_runs_identically() {
    let files = shm_statetest::find_fixture_files(&[FIXTURES.into()]).unwrap();
    let conflicts = shm_statetest::SHARED_MEMORY_OPCODE_CONFLICTS;
    let manager = SharedMemoryManager::new(SharedMemoryConfig::production()).unwrap();
    let (eth, off, on) = (
        EthEvmFactory::default(),
        ShmEvmFactory::off(),
        ShmEvmFactory::on(manager.clone()),
    );
    let (mut cases, mut compared_on, mut failures) = (0usize, 0usize, Vec::new());
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        // Files revm's fixture types cannot parse are the state-test runner's concern.
        let Ok(suite) = serde_json::from_str::<TestSuite>(&text) else {
            continue;
        };
        // Four files that take most of a whole run's time (revme skips them as slow); the
        // state-test suite runs them, they add nothing here.
        if SLOW.iter().any(|slow| file.ends_with(slow)) {
            continue;
        }
        let shm_conflict = conflicts.iter().any(|c| file.ends_with(c));
        for (name, unit) in &suite.0 {
            let Some(tests) = unit.post.get(&SpecName::Cancun) else {
                continue;
            };
            let mut cfg = CfgEnv::default();
            cfg.chain_id = 1;
            cfg.set_spec_and_mainnet_gas_params(SpecId::CANCUN);
            let block = unit.block_env(&mut cfg);
            let env = EvmEnv::new(cfg, block);
            let prestate = unit.state();
            for (index, test) in tests.iter().enumerate() {
                let Ok(tx) = test.tx_env(unit) else { continue };
                cases += 1;
                let (eth_out, eth_state) = run(&eth, &prestate, &env, &tx);
                let (off_out, off_state) = run(&off, &prestate, &env, &tx);
                let label = format!("{} {name}[{index}]", file.display());
                if !same_outcome(&eth_out, &off_out) || !same_cache(&eth_state, &off_state) {
                    failures.push(format!("off: {label}"));
                }
                if !shm_conflict {
                    compared_on += 1;
                    let (on_out, on_state) = run(&on, &prestate, &env, &tx);
                    if !same_outcome(&eth_out, &on_out) || !same_cache(&eth_state, &on_state) {
                        failures.push(format!("on: {label}"));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} differ, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(cases > 10_000, "only {cases} Cancun cases found");
    assert!(
        compared_on + 500 > cases,
        "{compared_on} of {cases} compared with shared memory on"
    );
    // Nothing leaked: no region, no lock.
    assert_eq!(manager.get_memory_stats().unwrap().active_regions, 0);
    assert!(manager.locked_regions().is_empty());
}
