//! Building an EVM with shared memory on: revm's mainnet EVM over a journal that
//! carries a [`ShmSession`], with the five instructions installed.

use crate::{instructions::install, GasSchedule, HookedContext, HookedEvm, ShmDb, ShmSession};
use revm::{primitives::hardfork::SpecId, Database, MainBuilder};
use shm_manager::SharedMemoryManager;
use std::sync::Arc;

/// A mainnet context whose journal carries a [`ShmSession`], over the
/// embedder's database wrapped in a [`ShmDb`] (so that committing the state
/// publishes the region effects).
pub type ShmContext<DB> = HookedContext<ShmDb<DB>, ShmSession>;

/// revm's mainnet EVM with shared memory on (see [`ShmEvmBuilder`]).
pub type ShmEvm<DB, INSP = ()> = HookedEvm<ShmDb<DB>, ShmSession, INSP>;

/// Builds EVMs with shared memory on, all sharing one [`SharedMemoryManager`]
/// (one per thread or per transaction: the manager is `Send + Sync`).
///
/// ```
/// use revm::{context::TxEnv, database::InMemoryDB, primitives::{TxKind, Address}, ExecuteCommitEvm};
/// use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
/// use shm_opcodes::ShmEvmBuilder;
///
/// let manager = SharedMemoryManager::new(SharedMemoryConfig::testing())?;
/// let mut evm = ShmEvmBuilder::new(manager.clone()).build(InMemoryDB::default());
/// // PUSH1 0 PUSH1 64 SHARED_ALLOC PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
/// let code = revm::bytecode::Bytecode::new_raw(alloy_primitives::hex!("60006040e060005260206000f3").into());
/// let target = Address::repeat_byte(0x11);
/// evm.ctx.journaled_state.journal_mut().database.insert_account_info(
///     target, revm::state::AccountInfo::default().with_code(code));
/// let out = evm.transact_commit(TxEnv::builder().kind(TxKind::Call(target)).build().unwrap()).unwrap();
/// assert!(out.is_success());
/// assert_eq!(out.output().unwrap()[31], 1, "the first handle: index 1, generation 1");
/// # Ok::<(), shm_manager::ShmError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ShmEvmBuilder {
    manager: Arc<SharedMemoryManager>,
    gas: GasSchedule,
    spec: SpecId,
}

impl ShmEvmBuilder {
    /// EVMs over `manager` with the default gas schedule and revm's default fork.
    pub fn new(manager: Arc<SharedMemoryManager>) -> Self {
        Self {
            manager,
            gas: GasSchedule::default(),
            spec: SpecId::default(),
        }
    }

    /// Use `gas` instead of the default schedule.
    pub fn gas_schedule(mut self, gas: GasSchedule) -> Self {
        self.gas = gas;
        self
    }

    /// Use fork rules `spec`.
    pub fn spec(mut self, spec: SpecId) -> Self {
        self.spec = spec;
        self
    }

    /// A context over `db` whose journal carries a fresh session.
    pub fn context<DB: Database>(&self, db: DB) -> ShmContext<DB> {
        let session = ShmSession::new(self.manager.clone(), self.gas);
        let db = ShmDb::new(db, session.undecided());
        crate::hooked_context(db, self.spec, session)
    }

    /// An EVM over `db`.
    pub fn build<DB: Database>(&self, db: DB) -> ShmEvm<DB> {
        Self::build_from(self.context(db))
    }

    /// An EVM over a context you configured yourself (cfg, block, tx).
    pub fn build_from<DB: Database>(ctx: ShmContext<DB>) -> ShmEvm<DB> {
        Self::build_from_with_inspector(ctx, ())
    }

    /// As [`build_from`](Self::build_from), with an inspector.
    pub fn build_from_with_inspector<DB: Database, INSP>(
        ctx: ShmContext<DB>,
        inspector: INSP,
    ) -> ShmEvm<DB, INSP> {
        let mut evm = ctx.build_mainnet_with_inspector(inspector);
        install(&mut evm.instruction);
        evm
    }
}
