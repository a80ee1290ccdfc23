//! [`ShmEthEvm`]: alloy-evm's [`Evm`] over revm's mainnet EVM whose journal carries a
//! [`ShmSession`], with or without the shared-memory instructions.

use crate::{HookedPrecompiles, OpcodeConflict};
use alloy_evm::{precompiles::PrecompilesMap, Database, Evm, EvmEnv};
use revm::{
    context::{BlockEnv, CfgEnv, Evm as RevmEvm, TxEnv},
    context_interface::result::{EVMError, HaltReason, ResultAndState},
    handler::{instructions::EthInstructions, EthFrame},
    interpreter::interpreter::EthInterpreter,
    primitives::{hardfork::SpecId, Address, Bytes},
    Context, ExecuteEvm, InspectEvm, Inspector, SystemCallEvm,
};
use shm_opcodes::{HookedContext, ShmSession};

/// The context of every EVM a [`ShmEvmFactory`](crate::ShmEvmFactory) builds: revm's
/// mainnet context whose journal is a [`HookedJournal`](shm_opcodes::HookedJournal)
/// carrying a [`ShmSession`] (off when shared memory is off). Inspectors are written
/// against this type (`I: Inspector<ShmEvmContext<DB>>`).
pub type ShmEvmContext<DB> = HookedContext<DB, ShmSession>;

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
pub struct ShmEthEvm<DB: Database, I> {
    inner: ShmRevmEvm<DB, I>,
    inspect: bool,
    /// Set when shared memory was asked for but the fork defines one of its opcodes:
    /// nothing was installed and every transaction is refused with this.
    refused: Option<OpcodeConflict>,
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

    fn finish(self) -> (DB, EvmEnv<SpecId>) {
        let Context {
            block: block_env,
            cfg: cfg_env,
            journaled_state,
            ..
        } = self.inner.ctx;
        let (journal, _session) = journaled_state.into_parts();
        (journal.database, EvmEnv { block_env, cfg_env })
    }

    fn set_inspector_enabled(&mut self, enabled: bool) {
        self.inspect = enabled;
    }

    fn components(&self) -> (&DB, &I, &PrecompilesMap) {
        (
            &self.inner.ctx.journaled_state.journal().database,
            &self.inner.inspector,
            &self.inner.precompiles.0,
        )
    }

    fn components_mut(&mut self) -> (&mut DB, &mut I, &mut PrecompilesMap) {
        (
            &mut self.inner.ctx.journaled_state.journal_mut().database,
            &mut self.inner.inspector,
            &mut self.inner.precompiles.0,
        )
    }
}
