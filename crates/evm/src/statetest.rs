//! Running Ethereum state tests with shared memory on.

use revm::{context_interface::result::ExecutionResult, ExecuteCommitEvm};
use shm_manager::{SharedMemoryConfig, SharedMemoryManager, ShmError};
use shm_opcodes::{GasSchedule, ShmEvmBuilder};
use shm_statetest::{CaseEnv, CaseError, CaseExecutor, CaseState};
use std::sync::Arc;

/// A [`CaseExecutor`] that runs every case on revm with shared memory on, all cases
/// (and the runner's threads) sharing one [`SharedMemoryManager`].
///
/// ```no_run
/// use shm_evm::SharedMemoryExecutor;
/// use shm_statetest::{run, RunnerOptions};
/// let executor = SharedMemoryExecutor::new(shm_manager::SharedMemoryConfig::production())?;
/// let report = run(&RunnerOptions::new(["GeneralStateTests"]), &executor);
/// # Ok::<(), shm_manager::ShmError>(())
/// ```
#[derive(Debug)]
pub struct SharedMemoryExecutor {
    manager: Arc<SharedMemoryManager>,
    gas: GasSchedule,
}

impl SharedMemoryExecutor {
    /// An executor over a new manager with `config`.
    pub fn new(config: SharedMemoryConfig) -> Result<Self, ShmError> {
        Ok(Self {
            manager: SharedMemoryManager::new(config)?,
            gas: GasSchedule::default(),
        })
    }

    /// The manager the cases share.
    pub fn manager(&self) -> &Arc<SharedMemoryManager> {
        &self.manager
    }
}

impl CaseExecutor for SharedMemoryExecutor {
    fn execute(
        &self,
        env: &CaseEnv<'_>,
        state: &mut CaseState,
    ) -> Result<ExecutionResult, CaseError> {
        let builder = ShmEvmBuilder::new(self.manager.clone())
            .gas_schedule(self.gas)
            .spec(env.cfg.spec);
        let ctx = builder
            .context(state)
            .with_cfg(env.cfg.clone())
            .with_block(env.block.clone())
            .with_tx(env.tx.clone());
        let mut evm = ShmEvmBuilder::build_from(ctx);
        evm.transact_commit(env.tx.clone())
    }
}
