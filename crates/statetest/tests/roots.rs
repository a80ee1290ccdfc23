//! The logs hash and state root, checked against fixtures' expected values.

mod common;

use common::fixture_text;
use revm::primitives::{B256, U256};
use revm::{
    context::cfg::CfgEnv,
    database::State,
    statetest_types::{TestSuite, TestUnit},
};
use shm_statetest::{logs_hash, state_root, CaseEnv, CaseExecutor, MainnetExecutor};

/// Runs the first case of the first test of a fixture with stock revm; returns the computed
/// (state root, logs hash), the expected ones, and the prestate root.
fn run_first_case(relative: &str) -> ([B256; 2], [B256; 2], B256) {
    let suite: TestSuite = serde_json::from_str(&fixture_text(relative)).unwrap();
    let unit: &TestUnit = suite.0.values().next().unwrap();
    let (spec, tests) = unit.post.iter().next().unwrap();
    let test = &tests[0];
    let mut cfg = CfgEnv::default();
    cfg.set_spec_and_mainnet_gas_params(spec.to_spec_id());
    let block = unit.block_env(&mut cfg);
    let tx = test.tx_env(unit).unwrap();

    let prestate = unit.state();
    let prestate_root = state_root(prestate.trie_account());
    let mut state = State::builder().with_cached_prestate(prestate).build();
    let env = CaseEnv {
        cfg: &cfg,
        block: &block,
        tx: &tx,
    };
    let result = MainnetExecutor.execute(&env, &mut state).unwrap();
    (
        [
            state_root(state.cache.trie_account()),
            logs_hash(result.logs()),
        ],
        [test.hash, test.logs],
        prestate_root,
    )
}

#[test]
fn state_root_and_empty_logs_hash_match_a_fixture() {
    let (computed, expected, prestate_root) = run_first_case("stExample/add11.json");
    assert_eq!(computed, expected);
    // The root follows the state: executing the transaction changed it.
    assert_ne!(prestate_root, expected[0]);
    assert_eq!(computed[1], logs_hash(&[]));
}

#[test]
fn logs_hash_of_emitted_logs_matches_a_fixture() {
    let (computed, expected, _) = run_first_case("stLogTests/log1_MaxTopic.json");
    assert_eq!(computed, expected);
    // This case emits a log, so its hash is not the empty list's.
    assert_ne!(computed[1], logs_hash(&[]));
}

#[test]
fn zero_storage_slots_do_not_change_the_root() {
    let suite: TestSuite = serde_json::from_str(&fixture_text("stExample/add11.json")).unwrap();
    let unit = suite.0.values().next().unwrap();
    let mut prestate = unit.state();
    let before = state_root(prestate.trie_account());

    let address = *prestate
        .accounts
        .iter()
        .find(|(_, a)| a.account.is_some())
        .unwrap()
        .0;
    let slot = U256::from(0xdead);
    let set_slot = |prestate: &mut revm::database::CacheState, value: U256| {
        let account = prestate.accounts.get_mut(&address).unwrap();
        account
            .account
            .as_mut()
            .unwrap()
            .storage
            .insert(slot, value);
    };
    set_slot(&mut prestate, U256::ZERO);
    assert_eq!(
        state_root(prestate.trie_account()),
        before,
        "zero slot at {address}"
    );

    set_slot(&mut prestate, U256::from(1));
    assert_ne!(state_root(prestate.trie_account()), before);
}
