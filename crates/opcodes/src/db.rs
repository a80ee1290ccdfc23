//! The database wrapper that tells the session when the embedder commits.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use parking_lot::Mutex;
use revm::{
    bytecode::Bytecode,
    database_interface::{Database, DatabaseCommit, DatabaseRef},
    primitives::{Address, AddressMap, StorageKey, StorageValue, B256},
    state::{Account, AccountId, AccountInfo},
};

use crate::session::Undecided;

/// The embedder's database, as an EVM with shared memory on sees it: every
/// call is forwarded unchanged, and [`DatabaseCommit::commit`] — the moment
/// the embedder keeps a transaction's state — also publishes that
/// transaction's region effects (spec §6). A transaction whose state is never
/// committed (a simulation) leaves every region as it was.
///
/// [`crate::ShmEvmBuilder`] wraps the database for you; reach the inner one
/// through `Deref` or [`into_inner`](Self::into_inner).
///
/// ```
/// use revm::{database::InMemoryDB, database_interface::DatabaseCommit};
/// use shm_opcodes::ShmDb;
///
/// let mut db = ShmDb::detached(InMemoryDB::default());
/// db.commit(Default::default()); // forwarded to the InMemoryDB
/// let _inner: InMemoryDB = db.into_inner();
/// ```
pub struct ShmDb<DB> {
    inner: DB,
    undecided: Option<Arc<Mutex<Undecided>>>,
}

impl<DB> ShmDb<DB> {
    pub(crate) fn new(inner: DB, undecided: Option<Arc<Mutex<Undecided>>>) -> Self {
        Self { inner, undecided }
    }

    /// A wrapper tied to no session: it only forwards.
    pub fn detached(inner: DB) -> Self {
        Self::new(inner, None)
    }

    /// The wrapped database.
    pub fn into_inner(self) -> DB {
        self.inner
    }
}

impl<DB> Deref for ShmDb<DB> {
    type Target = DB;
    fn deref(&self) -> &DB {
        &self.inner
    }
}

impl<DB> DerefMut for ShmDb<DB> {
    fn deref_mut(&mut self) -> &mut DB {
        &mut self.inner
    }
}

impl<DB: std::fmt::Debug> std::fmt::Debug for ShmDb<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmDb").field("inner", &self.inner).finish()
    }
}

impl<DB: Database> Database for ShmDb<DB> {
    type Error = DB::Error;

    forward! { inner;
        fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error>;
        fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error>;
        fn storage(
            &mut self,
            address: Address,
            index: StorageKey,
        ) -> Result<StorageValue, Self::Error>;
        fn storage_by_account_id(
            &mut self,
            address: Address,
            account_id: AccountId,
            storage_key: StorageKey,
        ) -> Result<StorageValue, Self::Error>;
        fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error>;
    }
}

impl<DB: DatabaseRef> DatabaseRef for ShmDb<DB> {
    type Error = DB::Error;

    forward! { inner;
        fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error>;
        fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error>;
        fn storage_ref(
            &self,
            address: Address,
            index: StorageKey,
        ) -> Result<StorageValue, Self::Error>;
        fn storage_by_account_id_ref(
            &self,
            address: Address,
            account_id: AccountId,
            storage_key: StorageKey,
        ) -> Result<StorageValue, Self::Error>;
        fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error>;
    }
}

impl<DB: DatabaseCommit> DatabaseCommit for ShmDb<DB> {
    fn commit(&mut self, changes: AddressMap<Account>) {
        self.inner.commit(changes);
        if let Some(undecided) = &self.undecided {
            undecided.lock().decide(true);
        }
    }

    fn commit_iter(&mut self, changes: &mut dyn Iterator<Item = (Address, Account)>) {
        self.inner.commit_iter(changes);
        if let Some(undecided) = &self.undecided {
            undecided.lock().decide(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::primitives::U256;
    use std::convert::Infallible;

    /// A database that answers a lookup by account id differently from one by
    /// address, as a database with its own account index may: the wrapper
    /// must reach the inner database's own answer, not revm's default.
    struct ById;

    impl DatabaseRef for ById {
        type Error = Infallible;
        fn basic_ref(&self, _: Address) -> Result<Option<AccountInfo>, Infallible> {
            Ok(None)
        }
        fn code_by_hash_ref(&self, _: B256) -> Result<Bytecode, Infallible> {
            Ok(Bytecode::default())
        }
        fn storage_ref(&self, _: Address, _: StorageKey) -> Result<StorageValue, Infallible> {
            Ok(U256::ZERO)
        }
        fn storage_by_account_id_ref(
            &self,
            _: Address,
            _: AccountId,
            _: StorageKey,
        ) -> Result<StorageValue, Infallible> {
            Ok(U256::from(7))
        }
        fn block_hash_ref(&self, _: u64) -> Result<B256, Infallible> {
            Ok(B256::ZERO)
        }
    }

    #[test]
    fn a_storage_lookup_by_account_id_reaches_the_inner_database() {
        let db = ShmDb::detached(ById);
        let id = AccountId::new(3).unwrap();
        let by_id = db.storage_by_account_id_ref(Address::ZERO, id, U256::ONE);
        assert_eq!(by_id, Ok(U256::from(7)));
        assert_eq!(db.storage_ref(Address::ZERO, U256::ONE), Ok(U256::ZERO));
    }
}
