use crate::{
    dump::dump_state, AccountDump, Eip3155Tracer, HaltLocator, HaltSite, Prestate, TraceOptions,
    DEFAULT_SPEC,
};
use alloy_primitives::{address, Address, Bytes, U256};
use revm::{
    bytecode::Bytecode,
    context::{result::ExecutionResult, BlockEnv, CfgEnv, TxEnv},
    database::{CacheDB, EmptyDB},
    handler::{MainnetContext, MainnetEvm},
    inspector::InspectEvm,
    primitives::{hardfork::SpecId, TxKind},
    state::{AccountInfo, EvmState},
    Context, DatabaseCommit, ExecuteEvm, MainBuilder, MainContext,
};
use shm_manager::{
    HaltCause, MemoryStats, Metrics, SharedMemoryConfig, SharedMemoryManager, ShmError,
};
use shm_opcodes::{GasSchedule, ShmEvm, ShmEvmBuilder};
use std::{collections::BTreeMap, io::Write, sync::Arc};

/// geth's `evm run` sender: the ASCII bytes of "sender", right-aligned.
pub const DEFAULT_SENDER: Address = address!("0x000000000000000000000000000073656e646572");
/// geth's `evm run` receiver: the ASCII bytes of "receiver", right-aligned.
pub const DEFAULT_RECEIVER: Address = address!("0x0000000000000000000000007265636569766572");

/// Balance given to the sender when the prestate does not define it: enough for any
/// `--value` below it, and gas is free (gas price 0) so it pays for nothing else.
const DEFAULT_SENDER_BALANCE: U256 = U256::from_limbs([0, 0, 0, 1 << 32]);

/// One transaction to run: the code installed at `receiver`, called by `sender`
/// (or, with `create`, run as initcode by a contract-creation transaction).
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Runtime code installed at `receiver` (replacing any code the prestate gives
    /// it); with `create`, the initcode.
    pub code: Bytes,
    /// Calldata; with `create`, appended to the initcode (as constructor arguments).
    pub input: Bytes,
    /// Run `code` as initcode in a contract-creation transaction (geth's `--create`):
    /// the output is the deployed code, and nothing is installed at `receiver`.
    pub create: bool,
    /// Gas price in wei (the block's base fee is 0): the sender pays
    /// `gas used × gas_price` to the block's beneficiary.
    pub gas_price: u128,
    /// Transaction gas limit; EIP-7825's per-transaction cap is lifted.
    pub gas_limit: u64,
    /// Wei sent with the call.
    pub value: U256,
    /// Transaction sender.
    pub sender: Address,
    /// Call target, where `code` is installed.
    pub receiver: Address,
    /// Fork rules.
    pub spec: SpecId,
    /// Accounts installed before the run.
    pub prestate: Prestate,
    /// Shared memory: `None` runs stock mainnet revm (0xE0–0xE4 invalid).
    pub shared_memory: Option<SharedMemoryConfig>,
}

impl RunConfig {
    /// A call of `code` with geth's `evm run` defaults: 10,000,000,000 gas, no value,
    /// no calldata, the newest finished fork, an empty prestate.
    pub fn new(code: Bytes) -> Self {
        Self {
            code,
            input: Bytes::new(),
            gas_limit: 10_000_000_000,
            value: U256::ZERO,
            create: false,
            gas_price: 0,
            sender: DEFAULT_SENDER,
            receiver: DEFAULT_RECEIVER,
            spec: DEFAULT_SPEC,
            prestate: Prestate::default(),
            shared_memory: None,
        }
    }

    /// The configuration revm's own runners use for a single transaction: nonce check
    /// off, no per-transaction gas cap, the configured fork's mainnet gas parameters.
    pub fn cfg_env(&self) -> CfgEnv {
        let mut cfg = CfgEnv::new_with_spec(self.spec);
        cfg.set_spec_and_mainnet_gas_params(self.spec);
        cfg.disable_nonce_check = true;
        cfg.tx_gas_limit_cap = Some(u64::MAX);
        cfg
    }

    /// A block whose gas limit never binds and whose base fee is zero.
    pub fn block_env(&self) -> BlockEnv {
        BlockEnv {
            gas_limit: u64::MAX,
            basefee: 0,
            ..BlockEnv::default()
        }
    }

    /// The transaction: a call from `sender` to `receiver`, or with `create` a
    /// contract creation whose data is the initcode followed by the input.
    pub fn tx_env(&self) -> Result<TxEnv, RunError> {
        let (kind, data) = if self.create {
            let mut initcode = Vec::with_capacity(self.code.len() + self.input.len());
            initcode.extend_from_slice(&self.code);
            initcode.extend_from_slice(&self.input);
            (TxKind::Create, Bytes::from(initcode))
        } else {
            (TxKind::Call(self.receiver), self.input.clone())
        };
        TxEnv::builder()
            .caller(self.sender)
            .kind(kind)
            .data(data)
            .value(self.value)
            .gas_limit(self.gas_limit)
            .gas_price(self.gas_price)
            .build()
            .map_err(|e| RunError::Transaction(format!("{e:?}")))
    }
}

/// Why a run produced no result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The transaction could not be built from the configuration.
    #[error("invalid transaction: {0}")]
    Transaction(String),
    /// revm rejected the transaction before executing it (e.g. the sender cannot pay the value).
    #[error("transaction rejected: {0}")]
    Rejected(String),
    /// The shared-memory configuration was refused.
    #[error("shared memory: {0}")]
    SharedMemory(#[from] ShmError),
}

/// What shared memory did during a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ShmReport {
    /// The precise cause of the last shared-memory halt, if the run had one
    /// (revm's halt reason carries only the nearest mainnet reason).
    pub last_halt: Option<HaltCause>,
    /// Memory statistics after the transaction ended.
    pub stats: MemoryStats,
    /// Counters after the transaction ended.
    pub metrics: Metrics,
}

/// The result of one run.
#[derive(Debug)]
pub struct RunOutcome {
    /// revm's result: success, revert or halt, with gas, output and logs.
    pub result: ExecutionResult,
    /// The last instruction that halted a frame (any depth), if one did.
    pub halt_site: Option<HaltSite>,
    /// Why the trace could not be written in full, when a trace was asked for and
    /// writing it failed (the run itself went on).
    pub trace_error: Option<std::io::Error>,
    /// The accounts the transaction touched, as revm reports them.
    pub state: EvmState,
    /// The database after the transaction was committed.
    pub db: CacheDB<EmptyDB>,
    /// Shared-memory figures, when it was on.
    pub shared_memory: Option<ShmReport>,
}

impl RunOutcome {
    /// Every account after the transaction, in address order.
    pub fn post_state(&self) -> BTreeMap<Address, AccountDump> {
        dump_state(&self.db)
    }
}

/// The in-memory state a run starts from: the prestate, the code at the receiver
/// (unless the run creates a contract) and a funded sender.
pub fn prepare_db(config: &RunConfig) -> CacheDB<EmptyDB> {
    let mut db = CacheDB::new(EmptyDB::default());
    for (address, account) in &config.prestate.accounts {
        let info = AccountInfo::default()
            .with_balance(account.balance)
            .with_nonce(account.nonce)
            .with_code(Bytecode::new_raw(account.code.clone()));
        db.insert_account_info(*address, info);
        for (slot, value) in &account.storage {
            // Infallible: the account was just inserted and EmptyDB never errors.
            let _ = db.insert_account_storage(*address, *slot, *value);
        }
    }
    if !config.prestate.accounts.contains_key(&config.sender) {
        let balance = config.value.saturating_add(DEFAULT_SENDER_BALANCE);
        db.insert_account_info(config.sender, AccountInfo::default().with_balance(balance));
    }
    if config.create {
        return db;
    }
    let mut receiver = db
        .cache
        .accounts
        .get(&config.receiver)
        .and_then(|a| a.info())
        .unwrap_or_default();
    receiver = receiver.with_code(Bytecode::new_raw(config.code.clone()));
    db.insert_account_info(config.receiver, receiver);
    db
}

/// A built EVM that runs the same transaction again and again over the same state,
/// without committing: each run sees the prestate (`evm run --bench`). With shared
/// memory on, each run gets a fresh manager, built by [`prepare`](Self::prepare)
/// outside the timed part, so that every run starts from the same shared-memory
/// history (spec §3) and returns the same handles.
pub struct RepeatRunner {
    engine: Engine,
    tx: TxEnv,
}

impl std::fmt::Debug for RepeatRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = match self.engine {
            Engine::Stock(_) => "stock",
            Engine::Shared { .. } => "shared memory",
        };
        f.debug_struct("RepeatRunner")
            .field("engine", &engine)
            .finish_non_exhaustive()
    }
}

enum Engine {
    Stock(Box<MainnetEvm<MainnetContext<CacheDB<EmptyDB>>>>),
    Shared {
        config: Box<RunConfig>,
        shm: SharedMemoryConfig,
        evm: Option<Box<ShmEvm<CacheDB<EmptyDB>>>>,
    },
}

impl RepeatRunner {
    /// Builds the state and the EVM once.
    pub fn new(config: &RunConfig) -> Result<Self, RunError> {
        let tx = config.tx_env()?;
        let engine = match &config.shared_memory {
            None => Engine::Stock(Box::new(
                Context::mainnet()
                    .with_cfg(config.cfg_env())
                    .with_block(config.block_env())
                    .with_db(prepare_db(config))
                    .build_mainnet(),
            )),
            Some(shm) => Engine::Shared {
                config: Box::new(config.clone()),
                shm: shm.clone(),
                evm: None,
            },
        };
        Ok(Self { engine, tx })
    }

    /// Gets the next run ready (a fresh shared-memory manager and EVM when shared
    /// memory is on; nothing otherwise). Call it before timing [`run`](Self::run).
    pub fn prepare(&mut self) -> Result<(), RunError> {
        if let Engine::Shared { config, shm, evm } = &mut self.engine {
            let manager = SharedMemoryManager::new(shm.clone())?;
            let builder = ShmEvmBuilder::new(manager).spec(config.spec);
            let ctx = builder
                .context(prepare_db(config))
                .with_cfg(config.cfg_env())
                .with_block(config.block_env());
            *evm = Some(Box::new(ShmEvmBuilder::build_from(ctx)));
        }
        Ok(())
    }

    /// Runs the transaction once; the state is left as it was.
    pub fn run(&mut self) -> Result<ExecutionResult, RunError> {
        let out = match &mut self.engine {
            Engine::Stock(evm) => evm.transact(self.tx.clone()),
            Engine::Shared { evm, .. } => {
                if evm.is_none() {
                    self.prepare()?;
                    return self.run();
                }
                let evm = evm.as_mut().expect("prepared above");
                evm.transact(self.tx.clone())
            }
        };
        Ok(out.map_err(|e| RunError::Rejected(e.to_string()))?.result)
    }
}

/// Where and how to write an EIP-3155 trace of a run.
pub struct Trace<'a> {
    /// The writer (wrap a slow one in a `BufWriter`).
    pub out: &'a mut dyn Write,
    /// What each line holds. `shared_memory` is set by the run itself.
    pub options: TraceOptions,
}

impl std::fmt::Debug for Trace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<'a> Trace<'a> {
    /// A trace with `options` to `out`.
    pub fn new(out: &'a mut dyn Write, options: TraceOptions) -> Self {
        Self { out, options }
    }
}

/// Runs the transaction over a fresh state built from `config`, optionally writing an
/// EIP-3155 trace (one JSON object per line), and commits it.
pub fn execute(config: &RunConfig, trace: Option<Trace<'_>>) -> Result<RunOutcome, RunError> {
    match &config.shared_memory {
        None => execute_stock(config, trace),
        Some(shm) => {
            let manager = SharedMemoryManager::new(shm.clone())?;
            execute_shared(config, &manager, GasSchedule::default(), trace)
        }
    }
}

/// What the inspectors of a run found besides revm's result.
struct Inspected {
    halt_site: Option<HaltSite>,
    trace_error: Option<std::io::Error>,
}

fn inspected(
    locator: &mut HaltLocator,
    tracer: Option<Eip3155Tracer<&mut dyn Write>>,
) -> Inspected {
    Inspected {
        halt_site: locator.take(),
        trace_error: tracer.and_then(|tracer| tracer.finish().err()),
    }
}

fn execute_stock(config: &RunConfig, trace: Option<Trace<'_>>) -> Result<RunOutcome, RunError> {
    let tx = config.tx_env()?;
    let ctx = Context::mainnet()
        .with_cfg(config.cfg_env())
        .with_block(config.block_env())
        .with_db(prepare_db(config));
    let locator = HaltLocator::new(false);
    match trace {
        Some(trace) => {
            let options = TraceOptions {
                shared_memory: false,
                ..trace.options
            };
            let tracer = Eip3155Tracer::new(trace.out, options);
            let mut evm = ctx.build_mainnet_with_inspector((locator, tracer));
            let out = evm
                .inspect_tx(tx)
                .map_err(|e| RunError::Rejected(e.to_string()));
            let (mut locator, tracer) = evm.inspector;
            let found = inspected(&mut locator, Some(tracer));
            finish(evm.ctx.journaled_state.database, out, None, found)
        }
        None => {
            let mut evm = ctx.build_mainnet_with_inspector(locator);
            let out = evm
                .inspect_tx(tx)
                .map_err(|e| RunError::Rejected(e.to_string()));
            let found = inspected(&mut evm.inspector, None);
            finish(evm.ctx.journaled_state.database, out, None, found)
        }
    }
}

/// Runs the transaction of `config` with shared memory on, over `manager` (which
/// may already hold host-made regions), and reports what shared memory did.
pub fn execute_shared(
    config: &RunConfig,
    manager: &Arc<SharedMemoryManager>,
    gas: GasSchedule,
    trace: Option<Trace<'_>>,
) -> Result<RunOutcome, RunError> {
    let tx = config.tx_env()?;
    let builder = ShmEvmBuilder::new(manager.clone())
        .gas_schedule(gas)
        .spec(config.spec);
    let ctx = builder
        .context(prepare_db(config))
        .with_cfg(config.cfg_env())
        .with_block(config.block_env());
    let locator = HaltLocator::new(true);
    let (out, journal, session, found) = match trace {
        Some(trace) => {
            let options = TraceOptions {
                shared_memory: true,
                ..trace.options
            };
            let tracer = Eip3155Tracer::new(trace.out, options);
            let mut evm = ShmEvmBuilder::build_from_with_inspector(ctx, (locator, tracer));
            let out = evm
                .inspect_tx(tx)
                .map_err(|e| RunError::Rejected(e.to_string()));
            let (mut locator, tracer) = evm.inspector;
            let found = inspected(&mut locator, Some(tracer));
            let (journal, session) = evm.ctx.journaled_state.into_parts();
            (out, journal, session, found)
        }
        None => {
            let mut evm = ShmEvmBuilder::build_from_with_inspector(ctx, locator);
            let out = evm
                .inspect_tx(tx)
                .map_err(|e| RunError::Rejected(e.to_string()));
            let found = inspected(&mut evm.inspector, None);
            let (journal, session) = evm.ctx.journaled_state.into_parts();
            (out, journal, session, found)
        }
    };
    // `evm run` keeps the transaction's state, so its region effects are
    // published too: committing through the session's database wrapper does
    // both (a rejected transaction changed nothing to publish).
    let mut db = journal.database;
    let out = out?;
    db.commit(out.state.clone());
    let report = ShmReport {
        last_halt: session.last_halt(),
        stats: manager.get_memory_stats()?,
        metrics: manager.metrics_snapshot(),
    };
    drop(session);
    Ok(RunOutcome {
        result: out.result,
        halt_site: found.halt_site,
        trace_error: found.trace_error,
        state: out.state,
        db: db.into_inner(),
        shared_memory: Some(report),
    })
}

fn finish(
    mut db: CacheDB<EmptyDB>,
    out: Result<revm::context::result::ResultAndState, RunError>,
    shared_memory: Option<ShmReport>,
    found: Inspected,
) -> Result<RunOutcome, RunError> {
    let out = out?;
    db.commit(out.state.clone());
    Ok(RunOutcome {
        result: out.result,
        halt_site: found.halt_site,
        trace_error: found.trace_error,
        state: out.state,
        db,
        shared_memory,
    })
}
