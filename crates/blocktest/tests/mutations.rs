//! The runner catches every kind of wrong outcome: real fixtures, each changed in one place,
//! must fail with the matching `FailureKind` (and pass unchanged).

use alloy_evm::eth::EthEvmFactory;
use alloy_primitives::{B256, U256};
use shm_blocktest::{run_test, BlockchainTest, FailureKind, FixtureAccount, FixtureFile};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/ethereum-tests/BlockchainTests"
);

fn load(path: &str) -> BlockchainTest {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{path}")).unwrap();
    let file: FixtureFile = serde_json::from_str(&text).unwrap();
    file.into_values().next().unwrap()
}

fn kind_of(test: &BlockchainTest) -> Option<FailureKind> {
    run_test(&EthEvmFactory::default(), test)
        .err()
        .map(|failure| failure.kind)
}

/// A test with valid blocks then an invalid one (London base fee rules, Cancun).
fn mixed() -> BlockchainTest {
    let test = load("InvalidBlocks/bcEIP1559/badBlocks.json");
    assert!(test.blocks.iter().any(|b| b.expect_exception.is_some()));
    assert!(test.blocks.iter().any(|b| b.expect_exception.is_none()));
    test
}

#[test]
fn unchanged_fixtures_pass() {
    assert_eq!(kind_of(&mixed()), None);
    assert_eq!(
        kind_of(&load("ValidBlocks/bcExample/basefeeExample.json")),
        None
    );
}

#[test]
fn expectation_changes_are_caught() {
    let valid = mixed()
        .blocks
        .iter()
        .position(|b| b.expect_exception.is_none())
        .unwrap();
    let invalid = mixed()
        .blocks
        .iter()
        .position(|b| b.expect_exception.is_some())
        .unwrap();

    let mut test = mixed();
    test.blocks[valid].expect_exception = Some("BlockException.INVALID_GASLIMIT".into());
    assert_eq!(kind_of(&test), Some(FailureKind::UnexpectedAcceptance));

    let mut test = mixed();
    test.blocks[invalid].expect_exception = None;
    test.blocks[invalid].block_header = None;
    assert_eq!(kind_of(&test), Some(FailureKind::UnexpectedRejection));

    let mut test = mixed();
    test.blocks[invalid].expect_exception = Some("BlockException.INVALID_STATE_ROOT".into());
    assert_eq!(kind_of(&test), Some(FailureKind::WrongException));
}

#[test]
fn block_changes_are_caught() {
    let valid = mixed()
        .blocks
        .iter()
        .position(|b| b.expect_exception.is_none())
        .unwrap();
    // A byte of a valid block's RLP: it no longer decodes, or decodes into another block.
    let mut test = mixed();
    let mut rlp = test.blocks[valid].rlp.to_vec();
    let last = rlp.len() - 1;
    rlp[last] ^= 1;
    test.blocks[valid].rlp = rlp.into();
    assert_eq!(kind_of(&test), Some(FailureKind::UnexpectedRejection));
}

#[test]
fn end_state_changes_are_caught() {
    let mut test = mixed();
    test.lastblockhash = B256::repeat_byte(0x11);
    assert_eq!(kind_of(&test), Some(FailureKind::LastBlockHash));

    let mut test = mixed();
    let post = test.post_state.as_mut().unwrap();
    let account = post.values_mut().next().unwrap();
    account.balance += U256::from(1);
    assert_eq!(kind_of(&test), Some(FailureKind::PostState));

    let mut test = mixed();
    let post = test.post_state.as_mut().unwrap();
    let account = post.values_mut().next().unwrap();
    account.storage.insert(U256::from(12345), U256::from(1));
    assert_eq!(kind_of(&test), Some(FailureKind::PostState));

    let mut test = mixed();
    let post = test.post_state.as_mut().unwrap();
    let first = *post.keys().next().unwrap();
    post.remove(&first);
    assert_eq!(
        kind_of(&test),
        Some(FailureKind::PostState),
        "an account too many"
    );

    let mut test = mixed();
    let post = test.post_state.as_mut().unwrap();
    post.insert(
        alloy_primitives::Address::repeat_byte(0x99),
        FixtureAccount {
            balance: U256::from(1),
            ..Default::default()
        },
    );
    assert_eq!(
        kind_of(&test),
        Some(FailureKind::PostState),
        "an account missing"
    );

    let mut test = mixed();
    test.post_state = None;
    test.post_state_hash = Some(B256::repeat_byte(0x22));
    assert_eq!(kind_of(&test), Some(FailureKind::PostState));
}

#[test]
fn fixture_problems_are_caught() {
    let mut test = mixed();
    test.network = "Cancoon".into();
    assert_eq!(kind_of(&test), Some(FailureKind::InvalidFixture));

    let mut test = mixed();
    test.genesis_block_header.hash = B256::repeat_byte(0x33);
    assert_eq!(kind_of(&test), Some(FailureKind::InvalidFixture));

    let mut test = mixed();
    let account = test.pre.values_mut().next().unwrap();
    account.nonce += U256::from(1);
    assert_eq!(
        kind_of(&test),
        Some(FailureKind::InvalidFixture),
        "pre state vs genesis root"
    );

    let mut test = mixed();
    test.genesis_rlp = vec![0xc0].into();
    assert_eq!(kind_of(&test), Some(FailureKind::InvalidFixture));
}
