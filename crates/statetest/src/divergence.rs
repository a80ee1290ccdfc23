//! Finding the first account whose post state differs from the fixture's expected post state.

use crate::AccountDivergence;
use revm::{
    database::PlainAccount,
    primitives::{keccak256, Address, AddressMap, U256},
    statetest_types::AccountInfo,
};
use std::collections::{BTreeMap, BTreeSet};

/// The first account, in address order, whose state after execution differs from `expected`.
pub(crate) fn first_divergence<'a>(
    expected: &AddressMap<AccountInfo>,
    actual: impl IntoIterator<Item = (Address, &'a PlainAccount)>,
) -> Option<AccountDivergence> {
    let actual: BTreeMap<Address, &PlainAccount> = actual.into_iter().collect();
    let addresses: BTreeSet<Address> = expected.keys().chain(actual.keys()).copied().collect();
    addresses.into_iter().find_map(|address| {
        let diverges = |field: String, expected: String, actual: String| {
            Some(AccountDivergence {
                address,
                field,
                expected,
                actual,
            })
        };
        match (expected.get(&address), actual.get(&address)) {
            (None, None) => None,
            (Some(_), None) => diverges("existence".into(), "present".into(), "absent".into()),
            (None, Some(_)) => diverges("existence".into(), "absent".into(), "present".into()),
            (Some(want), Some(got)) => {
                if want.balance != got.info.balance {
                    return diverges(
                        "balance".into(),
                        want.balance.to_string(),
                        got.info.balance.to_string(),
                    );
                }
                if want.nonce != got.info.nonce {
                    return diverges(
                        "nonce".into(),
                        want.nonce.to_string(),
                        got.info.nonce.to_string(),
                    );
                }
                let want_code_hash = keccak256(&want.code);
                if want_code_hash != got.info.code_hash {
                    return diverges(
                        "code".into(),
                        format!("hash {want_code_hash}"),
                        format!("hash {}", got.info.code_hash),
                    );
                }
                // Zero slots are absent from the trie, so compare only non-zero ones.
                let want_slots: BTreeMap<U256, U256> = want
                    .storage
                    .iter()
                    .filter(|(_, value)| !value.is_zero())
                    .map(|(slot, value)| (*slot, *value))
                    .collect();
                let got_slots: BTreeMap<U256, U256> = got
                    .storage
                    .iter()
                    .filter(|(_, value)| !value.is_zero())
                    .map(|(slot, value)| (*slot, *value))
                    .collect();
                let slots: BTreeSet<U256> =
                    want_slots.keys().chain(got_slots.keys()).copied().collect();
                slots.into_iter().find_map(|slot| {
                    let want_value = want_slots.get(&slot).copied().unwrap_or_default();
                    let got_value = got_slots.get(&slot).copied().unwrap_or_default();
                    (want_value != got_value).then(|| AccountDivergence {
                        address,
                        field: format!("storage[{slot:#x}]"),
                        expected: format!("{want_value:#x}"),
                        actual: format!("{got_value:#x}"),
                    })
                })
            }
        }
    })
}
