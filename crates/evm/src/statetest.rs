//! Running Ethereum state tests with shared memory on, and with an EIP-3155 trace.

use crate::{Eip3155Tracer, TraceOptions};
use revm::{
    context_interface::result::ExecutionResult, inspector::InspectCommitEvm, Context,
    ExecuteCommitEvm, MainBuilder, MainContext,
};
use shm_manager::{SharedMemoryConfig, SharedMemoryManager, ShmError};
use shm_opcodes::{GasSchedule, ShmEvmBuilder};
use shm_statetest::{CaseEnv, CaseError, CaseExecutor, CaseState};
use std::{
    io::Write,
    sync::{Arc, Mutex, PoisonError},
};

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

/// A [`CaseExecutor`] that writes an EIP-3155 trace of every case it runs to one
/// writer (cases run one after another hold it in turn), with stock revm or with
/// shared memory on (0xE0–0xE4 then named in the trace).
///
/// ```no_run
/// use shm_evm::{TraceOptions, TracingExecutor};
/// use shm_statetest::{run, RunnerOptions};
/// let executor = TracingExecutor::stock(std::io::stderr(), TraceOptions::default());
/// let mut options = RunnerOptions::new(["add11.json"]);
/// options.threads = Some(1);
/// let report = run(&options, &executor)?;
/// if let Some(error) = executor.take_error() {
///     eprintln!("the trace is incomplete: {error}");
/// }
/// # Ok::<(), shm_statetest::RunnerError>(())
/// ```
pub struct TracingExecutor<W> {
    shared: Option<(Arc<SharedMemoryManager>, GasSchedule)>,
    out: Mutex<W>,
    options: TraceOptions,
    error: Mutex<Option<std::io::Error>>,
    truncated: std::sync::atomic::AtomicBool,
}

impl<W> std::fmt::Debug for TracingExecutor<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracingExecutor")
            .field("shared_memory", &self.shared.is_some())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> TracingExecutor<W> {
    /// Traces stock revm (0xE0–0xE4 undefined).
    pub fn stock(out: W, options: TraceOptions) -> Self {
        Self::new(None, out, options)
    }

    /// Traces revm with shared memory on, over `executor`'s manager.
    pub fn shared(executor: &SharedMemoryExecutor, out: W, options: TraceOptions) -> Self {
        Self::new(Some((executor.manager.clone(), executor.gas)), out, options)
    }

    fn new(
        shared: Option<(Arc<SharedMemoryManager>, GasSchedule)>,
        out: W,
        options: TraceOptions,
    ) -> Self {
        let options = TraceOptions {
            shared_memory: shared.is_some(),
            ..options
        };
        Self {
            shared,
            out: Mutex::new(out),
            options,
            error: Mutex::new(None),
            truncated: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The first error met writing the trace, if any (the cases themselves ran on).
    pub fn take_error(&self) -> Option<std::io::Error> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether the step limit cut a case's trace short.
    pub fn truncated(&self) -> bool {
        self.truncated.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn keep(&self, tracer: Eip3155Tracer<&mut W>) {
        if tracer.truncated() {
            self.truncated
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Err(error) = tracer.finish() {
            self.error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(error);
        }
    }
}

impl<W: Write + Send> CaseExecutor for TracingExecutor<W> {
    fn execute(
        &self,
        env: &CaseEnv<'_>,
        state: &mut CaseState,
    ) -> Result<ExecutionResult, CaseError> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let tracer = Eip3155Tracer::new(&mut *out, self.options);
        match &self.shared {
            None => {
                let mut evm = Context::mainnet()
                    .with_cfg(env.cfg)
                    .with_block(env.block)
                    .with_tx(env.tx)
                    .with_db(state)
                    .build_mainnet_with_inspector(tracer);
                let result = evm.inspect_tx_commit(env.tx);
                self.keep(evm.inspector);
                result
            }
            Some((manager, gas)) => {
                let builder = ShmEvmBuilder::new(manager.clone())
                    .gas_schedule(*gas)
                    .spec(env.cfg.spec);
                let ctx = builder
                    .context(state)
                    .with_cfg(env.cfg.clone())
                    .with_block(env.block.clone())
                    .with_tx(env.tx.clone());
                let mut evm = ShmEvmBuilder::build_from_with_inspector(ctx, tracer);
                let result = evm.inspect_tx_commit(env.tx.clone());
                self.keep(evm.inspector);
                result
            }
        }
    }
}
