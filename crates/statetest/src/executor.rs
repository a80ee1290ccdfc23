//! How one case is executed: the [`CaseExecutor`] trait, so that the runner can drive any EVM
//! built over the case's state, and [`MainnetExecutor`], the stock revm one.

use revm::{
    context::{block::BlockEnv, cfg::CfgEnv, tx::TxEnv},
    context_interface::result::{EVMError, ExecutionResult, HaltReason},
    database::{bal::EvmDatabaseError, EmptyDB, State},
    Context, ExecuteCommitEvm, MainBuilder, MainContext,
};
use std::convert::Infallible;

/// The state a case runs over: the test's prestate in a cache, with no backing database.
pub type CaseState = State<EmptyDB>;

/// The error of a transaction over [`CaseState`]: an invalid transaction, a header problem,
/// or (for executors that need it) `EVMError::Custom`.
pub type CaseError = EVMError<EvmDatabaseError<Infallible>>;

/// The environment of one case. Borrowed: the runner builds it once per fork (cfg, block) and
/// once per case (tx); an executor clones only what its EVM must own.
#[derive(Debug, Clone, Copy)]
pub struct CaseEnv<'a> {
    /// Spec, chain id, blob limits.
    pub cfg: &'a CfgEnv,
    /// The block the transaction is in.
    pub block: &'a BlockEnv,
    /// The transaction.
    pub tx: &'a TxEnv,
}

/// Executes one state-test case.
///
/// Contract: run `env.tx` with `transact_commit` semantics over `state` — on success the
/// transaction's changes are committed into `state.cache` (the runner computes the post-state
/// root from it); on error nothing is committed and the error is returned (the runner counts it
/// as the transaction's exception). The executor is shared by the runner's threads.
///
/// An executor building its own EVM (custom instructions, a custom journal through
/// `Context::with_new_journal`) only has to be `Sync`. Closures of the right shape implement
/// the trait too:
///
/// ```
/// use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};
/// use shm_statetest::{CaseEnv, CaseError, CaseExecutor, CaseState};
///
/// let executor = |env: &CaseEnv<'_>, state: &mut CaseState| {
///     let mut evm = Context::mainnet()
///         .with_cfg(env.cfg)
///         .with_block(env.block)
///         .with_tx(env.tx)
///         .with_db(state)
///         .build_mainnet();
///     evm.transact_commit(env.tx)
/// };
/// fn takes_executor(_: &impl CaseExecutor) {}
/// takes_executor(&executor);
/// ```
pub trait CaseExecutor: Sync {
    /// Executes `env.tx` over `state` and commits it on success.
    fn execute(
        &self,
        env: &CaseEnv<'_>,
        state: &mut CaseState,
    ) -> Result<ExecutionResult<HaltReason>, CaseError>;
}

impl<F> CaseExecutor for F
where
    F: Fn(&CaseEnv<'_>, &mut CaseState) -> Result<ExecutionResult<HaltReason>, CaseError> + Sync,
{
    fn execute(
        &self,
        env: &CaseEnv<'_>,
        state: &mut CaseState,
    ) -> Result<ExecutionResult<HaltReason>, CaseError> {
        self(env, state)
    }
}

/// The stock mainnet revm EVM, as `revme statetest` runs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MainnetExecutor;

impl CaseExecutor for MainnetExecutor {
    fn execute(
        &self,
        env: &CaseEnv<'_>,
        state: &mut CaseState,
    ) -> Result<ExecutionResult<HaltReason>, CaseError> {
        let mut evm = Context::mainnet()
            .with_cfg(env.cfg)
            .with_block(env.block)
            .with_tx(env.tx)
            .with_db(state)
            .build_mainnet();
        evm.transact_commit(env.tx)
    }
}
