use alloy_primitives::{Address, Bytes, U256};
use revm::database::{AccountState, CacheDB, EmptyDB};
use serde::Serialize;
use std::collections::BTreeMap;

/// One account of a post-state dump, in the state-test alloc format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountDump {
    /// Balance in wei.
    pub balance: U256,
    /// Nonce.
    #[serde(serialize_with = "hex_u64")]
    pub nonce: u64,
    /// Runtime code.
    pub code: Bytes,
    /// Non-zero storage slots, in slot order.
    pub storage: BTreeMap<U256, U256>,
}

impl AccountDump {
    /// No balance, nonce, code or storage.
    pub fn is_empty(&self) -> bool {
        self.balance.is_zero() && self.nonce == 0 && self.code.is_empty() && self.storage.is_empty()
    }
}

fn hex_u64<S: serde::Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{value:#x}"))
}

/// Every live account in `db`, in address order. Accounts that do not exist, were
/// destroyed or are empty (EIP-161: no balance, nonce, code or storage) are left out,
/// as are zero storage slots.
pub fn dump_state(db: &CacheDB<EmptyDB>) -> BTreeMap<Address, AccountDump> {
    db.cache
        .accounts
        .iter()
        .filter(|(_, account)| account.account_state != AccountState::NotExisting)
        .filter_map(|(address, account)| {
            let info = account.info()?;
            let code = match &info.code {
                Some(code) => code.original_bytes(),
                None => db
                    .cache
                    .contracts
                    .get(&info.code_hash)
                    .map(|c| c.original_bytes())
                    .unwrap_or_default(),
            };
            let storage = account
                .storage
                .iter()
                .filter(|(_, v)| !v.is_zero())
                .map(|(k, v)| (*k, *v))
                .collect();
            let dump = AccountDump {
                balance: info.balance,
                nonce: info.nonce,
                code,
                storage,
            };
            (!dump.is_empty()).then_some((*address, dump))
        })
        .collect()
}
