//! The two hashes a state test checks after execution: the logs hash and the post-state root.

use alloy_trie::{root::storage_root_unhashed, HashBuilder, Nibbles, TrieAccount};
use revm::{
    database::PlainAccount,
    primitives::{keccak256, Address, Log, B256},
};

/// Keccak-256 of the RLP list of `logs`, as the fixtures' `logs` field holds it.
///
/// ```
/// use shm_statetest::logs_hash;
/// // keccak256(rlp([])) = keccak256(0xc0)
/// assert_eq!(
///     logs_hash(&[]).to_string(),
///     "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
/// );
/// ```
pub fn logs_hash(logs: &[Log]) -> B256 {
    let mut encoded = Vec::with_capacity(alloy_rlp::list_length(logs));
    alloy_rlp::encode_list(logs, &mut encoded);
    keccak256(&encoded)
}

/// Root of the account trie over `accounts`, each keyed by the keccak of its address.
///
/// Storage slots holding zero are not part of the storage trie, so they are left out.
///
/// ```
/// use shm_statetest::state_root;
/// // The empty trie's root.
/// assert_eq!(
///     state_root(std::iter::empty()).to_string(),
///     "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
/// );
/// ```
pub fn state_root<'a>(accounts: impl IntoIterator<Item = (Address, &'a PlainAccount)>) -> B256 {
    let mut leaves: Vec<(B256, TrieAccount)> = accounts
        .into_iter()
        .map(|(address, account)| {
            let storage_root = storage_root_unhashed(
                account
                    .storage
                    .iter()
                    .filter(|(_, value)| !value.is_zero())
                    .map(|(slot, value)| (B256::from(*slot), *value)),
            );
            let leaf = TrieAccount {
                nonce: account.info.nonce,
                balance: account.info.balance,
                storage_root,
                code_hash: account.info.code_hash,
            };
            (keccak256(address), leaf)
        })
        .collect();
    // The hash builder needs its leaves in key order.
    leaves.sort_unstable_by_key(|(hashed_address, _)| *hashed_address);

    let mut builder = HashBuilder::default();
    let mut encoded = Vec::new();
    for (hashed_address, leaf) in &leaves {
        encoded.clear();
        alloy_rlp::Encodable::encode(leaf, &mut encoded);
        builder.add_leaf(Nibbles::unpack(hashed_address), &encoded);
    }
    builder.root()
}
