//! [`ShmEthEvm`]: alloy-evm's [`Evm`] over revm's mainnet EVM whose journal carries a
//! [`ShmSession`], with or without the shared-memory instructions.

use crate::{HookedPrecompiles, OpcodeConflict};
use alloy_evm::{precompiles::PrecompilesMap, Database, Evm, EvmEnv, IntoTxEnv};
use revm::{
    context::{BlockEnv, CfgEnv, Evm as RevmEvm, TxEnv},
    context_interface::result::{EVMError, ExecutionResult, HaltReason, ResultAndState},
    handler::{instructions::EthInstructions, EthFrame},
    interpreter::interpreter::EthInterpreter,
    primitives::{hardfork::SpecId, Address, Bytes},
    Context, DatabaseCommit, ExecuteEvm, InspectEvm, Inspector, SystemCallEvm,
};
use shm_opcodes::{ShmContext, ShmSession};

/// The context of every EVM a [`ShmEvmFactory`](crate::ShmEvmFactory) builds: revm's
/// mainnet context whose journal is a [`HookedJournal`](shm_opcodes::HookedJournal)
/// carrying a [`ShmSession`] (off when shared memory is off), over the embedder's
/// database in a [`ShmDb`](shm_opcodes::ShmDb). Inspectors are written against this type
/// (`I: Inspector<ShmEvmContext<DB>>`); the [`Evm`] trait hands out the database itself.
pub type ShmEvmContext<DB> = ShmContext<DB>;

/// The revm EVM inside a [`ShmEthEvm`].
pub type ShmRevmEvm<DB, I> = RevmEvm<
    ShmEvmContext<DB>,
    I,
    EthInstructions<EthInterpreter, ShmEvmContext<DB>>,
    HookedPrecompiles,
    EthFrame,
>;

/// An EVM built by [`ShmEvmFactory`](crate::ShmEvmFactory): alloy-evm's
/// [`Evm`] trait over revm's mainnet EVM, like alloy-evm's `EthEvm`, with shared
/// memory on or off.
///
/// Off, nothing of shared memory is on the execution path: the session is off (every
/// journal hook call returns at once) and 0xE0–0xE4 stay undefined, so results and
/// state are those of `EthEvm` (the crate's tests check it transaction by transaction).
/// On, the five instructions are installed and the session drives the regions.
///
/// `transact_raw` runs the inspector when it is enabled (as `EthEvm` does);
/// `transact_system_call` never inspects (as `EthEvm`).
///
/// **Regions follow the embedder's commit.** A transaction's region effects stay
/// undecided until the embedder keeps its state: [`Evm::transact_commit`] (here) and the
/// block executors of [`ShmBlockExecutorFactory`](crate::ShmBlockExecutorFactory)
/// publish them; anything else — `transact` / `transact_raw` of a simulation, a
/// transaction a block builder leaves out — is abandoned when the next transaction
/// starts or the EVM is dropped. alloy-evm commits through `db_mut().commit(..)`, which
/// reaches the embedder's database and not this EVM: whoever commits a `transact`
/// result that way calls [`publish`](Self::publish) after it.
pub struct ShmEthEvm<DB: Database, I> {
    inner: ShmRevmEvm<DB, I>,
    inspect: bool,
    /// Set when shared memory was asked for but the fork defines one of its opcodes:
    /// nothing was installed and every transaction is refused with this.
    refused: Option<OpcodeConflict>,
}

impl<DB: Database, I> std::fmt::Debug for ShmEthEvm<DB, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The revm EVM (instruction table, frames) has no useful Debug.
        f.debug_struct("ShmEthEvm")
            .field("spec", &self.inner.ctx.cfg.spec)
            .field("block", &self.inner.ctx.block.number)
            .field("session", self.session())
            .field("inspect", &self.inspect)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl<DB: Database, I> ShmEthEvm<DB, I> {
    /// Wraps a revm EVM built over a [`ShmEvmContext`].
    pub const fn new(inner: ShmRevmEvm<DB, I>, inspect: bool) -> Self {
        Self {
            inner,
            inspect,
            refused: None,
        }
    }

    pub(crate) fn refusing(mut self, conflict: OpcodeConflict) -> Self {
        self.refused = Some(conflict);
        self
    }

    /// Why shared memory was refused for this EVM's fork, if it was.
    pub const fn refusal(&self) -> Option<&OpcodeConflict> {
        self.refused.as_ref()
    }

    /// The context (block, cfg, journal and session).
    pub const fn ctx(&self) -> &ShmEvmContext<DB> {
        &self.inner.ctx
    }

    /// The context, mutably.
    pub const fn ctx_mut(&mut self) -> &mut ShmEvmContext<DB> {
        &mut self.inner.ctx
    }

    /// The shared-memory session (off when shared memory is off).
    pub const fn session(&self) -> &ShmSession {
        self.inner.ctx.journaled_state.hook()
    }

    /// The shared-memory session, mutably.
    pub const fn session_mut(&mut self) -> &mut ShmSession {
        self.inner.ctx.journaled_state.hook_mut()
    }

    /// Makes the region effects of the transactions run since the last decision final
    /// (call it after committing their state to the database yourself). Returns whether
    /// there was anything to publish; always `false` with shared memory off.
    pub fn publish(&mut self) -> bool {
        self.session_mut().publish()
    }

    /// Undoes the region effects of the transactions run since the last decision (their
    /// state was dropped). It also happens by itself at the next transaction and on drop.
    pub fn abandon(&mut self) -> bool {
        self.session_mut().abandon()
    }

    /// Whether the shared-memory instructions are installed.
    pub fn shared_memory_on(&self) -> bool {
        self.session().manager().is_some()
    }

    /// The revm EVM.
    pub fn into_inner(self) -> ShmRevmEvm<DB, I> {
        self.inner
    }

    fn refused_error(&self) -> Option<EVMError<DB::Error>> {
        self.refused
            .as_ref()
            .map(|conflict| EVMError::Custom(conflict.to_string()))
    }
}

impl<DB, I> Evm for ShmEthEvm<DB, I>
where
    DB: Database,
    I: Inspector<ShmEvmContext<DB>>,
{
    type DB = DB;
    type Tx = TxEnv;
    type Error = EVMError<DB::Error>;
    type HaltReason = HaltReason;
    type Spec = SpecId;
    type BlockEnv = BlockEnv;
    type Precompiles = PrecompilesMap;
    type Inspector = I;

    fn block(&self) -> &BlockEnv {
        &self.inner.ctx.block
    }

    fn cfg_env(&self) -> &CfgEnv<SpecId> {
        &self.inner.ctx.cfg
    }

    fn chain_id(&self) -> u64 {
        self.inner.ctx.cfg.chain_id
    }

    fn transact_raw(&mut self, tx: TxEnv) -> Result<ResultAndState<HaltReason>, Self::Error> {
        if let Some(error) = self.refused_error() {
            return Err(error);
        }
        if self.inspect {
            self.inner.inspect_tx(tx)
        } else {
            self.inner.transact(tx)
        }
    }

    fn transact_system_call(
        &mut self,
        caller: Address,
        contract: Address,
        data: Bytes,
    ) -> Result<ResultAndState<HaltReason>, Self::Error> {
        if let Some(error) = self.refused_error() {
            return Err(error);
        }
        self.inner.system_call_with_caller(caller, contract, data)
    }

    fn transact_commit(
        &mut self,
        tx: impl IntoTxEnv<TxEnv>,
    ) -> Result<ExecutionResult<HaltReason>, Self::Error>
    where
        DB: DatabaseCommit,
    {
        let ResultAndState { result, state } = self.transact(tx)?;
        self.db_mut().commit(state);
        // The state is kept: so are the transaction's region effects.
        self.publish();
        Ok(result)
    }

    fn finish(self) -> (DB, EvmEnv<SpecId>) {
        let Context {
            block: block_env,
            cfg: cfg_env,
            journaled_state,
            ..
        } = self.inner.ctx;
        // Dropping the session abandons whatever was not published.
        let (journal, _session) = journaled_state.into_parts();
        (journal.database.into_inner(), EvmEnv { block_env, cfg_env })
    }

    fn set_inspector_enabled(&mut self, enabled: bool) {
        self.inspect = enabled;
    }

    fn components(&self) -> (&DB, &I, &PrecompilesMap) {
        (
            &*self.inner.ctx.journaled_state.journal().database,
            &self.inner.inspector,
            &self.inner.precompiles.0,
        )
    }

    fn components_mut(&mut self) -> (&mut DB, &mut I, &mut PrecompilesMap) {
        (
            &mut *self.inner.ctx.journaled_state.journal_mut().database,
            &mut self.inner.inspector,
            &mut self.inner.precompiles.0,
        )
    }
}
