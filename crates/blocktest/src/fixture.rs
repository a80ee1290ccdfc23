//! The blockchain-test fixture format: only what a runner needs, everything else is decoded
//! from the blocks' RLP.

use alloy_primitives::{Address, Bytes, B256, U256};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A fixture file: test name → test.
pub type FixtureFile = BTreeMap<String, BlockchainTest>;

/// One blockchain test.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockchainTest {
    /// The network (fork, or fork transition) the chain runs, e.g. `Cancun`,
    /// `FrontierToHomesteadAt5`.
    pub network: String,
    /// The genesis block, RLP.
    #[serde(rename = "genesisRLP")]
    pub genesis_rlp: Bytes,
    /// The decoded genesis header: only its hash is read, to check the RLP against it.
    pub genesis_block_header: HashOnly,
    /// The genesis state.
    pub pre: BTreeMap<Address, FixtureAccount>,
    /// The blocks, imported in this order.
    pub blocks: Vec<FixtureBlock>,
    /// The state at the head when all blocks are imported…
    #[serde(default)]
    pub post_state: Option<BTreeMap<Address, FixtureAccount>>,
    /// …or only its root.
    #[serde(default)]
    pub post_state_hash: Option<B256>,
    /// The hash of the head when all blocks are imported.
    pub lastblockhash: B256,
}

/// A header of which only the hash is used.
#[derive(Debug, Clone, Deserialize)]
pub struct HashOnly {
    /// The block hash.
    pub hash: B256,
}

/// One block of a test.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FixtureBlock {
    /// The block, RLP (possibly malformed, for blocks that must be rejected).
    pub rlp: Bytes,
    /// Set when the block must be rejected: the exception name(s), `|`-separated.
    #[serde(default)]
    pub expect_exception: Option<String>,
    /// The decoded header of a valid block: only its hash is read.
    #[serde(default)]
    pub block_header: Option<HashOnly>,
}

/// An account of `pre` or `postState`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FixtureAccount {
    /// Balance in wei.
    pub balance: U256,
    /// Nonce.
    pub nonce: U256,
    /// Code.
    #[serde(default)]
    pub code: Bytes,
    /// Storage.
    #[serde(default)]
    pub storage: BTreeMap<U256, U256>,
}
