//! Shared set-up for the workspace-level benchmarks (see `benches/`): the bench
//! programs revm publishes numbers for (snailtracer, analysis, burntpix, rows of
//! the gas-cost-estimator sample), the three EVM variants they run on, loop
//! programs that time one operation, and the tables the benches print.
//!
//! The bench programs are read in place from `../shared/bench-data` beside the
//! workspace (or `$SHM_BENCH_DATA`), never copied into the repository; a
//! missing or damaged file is a [`BenchDataError`] naming it.
//!
//! The three variants are:
//!
//! | variant | what it is |
//! |---------|------------|
//! | `stock` | `Context::mainnet()…build_mainnet()`: what `evm run` builds with shared memory off |
//! | `hooked_unit` | revm's mainnet EVM over `HookedJournal<_, ()>`, the five instructions not installed: what an embedder that wraps the journal pays |
//! | `shm_unused` | [`ShmEvmBuilder`] over a `production` manager: shared memory on, the program never touching 0xE0–0xE4 |
//!
//! ```
//! use revm::ExecuteEvm;
//! use shm_benches::{analysis, shm_evm, stock_evm, production_manager};
//!
//! let work = analysis()?;
//! let mut stock = stock_evm(work.db.clone());
//! let mut shm = shm_evm(&production_manager(), work.db.clone());
//! let a = stock.transact(work.tx.clone()).unwrap().result;
//! let b = shm.transact(work.tx.clone()).unwrap().result;
//! assert_eq!(a.tx_gas_used(), work.expected_gas.unwrap());
//! assert_eq!(a, b);
//! # Ok::<(), shm_benches::BenchDataError>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod adversarial;
pub mod exchange;
pub mod programs;
pub mod report;

use alloy_primitives::{hex, Bytes, U256};
use revm::{
    bytecode::Bytecode,
    context::{result::ExecutionResult, CfgEnv, TxEnv},
    database::{BenchmarkDB, CacheDB, EmptyDB, BENCH_CALLER, BENCH_TARGET},
    handler::{MainnetContext, MainnetEvm},
    primitives::{hardfork::SpecId, Address, StorageKey, StorageValue, TxKind},
    state::AccountInfo,
    Context, Database, MainBuilder, MainContext,
};
use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
use shm_opcodes::{hooked_context, HookedEvm, ShmEvm, ShmEvmBuilder};
use std::{path::PathBuf, sync::Arc};

/// The gas limit revm's benches give their transactions (1e9).
pub const BENCH_GAS_LIMIT: u64 = 1_000_000_000;

/// Why a bench program could not be read from the bench data.
#[derive(Debug, thiserror::Error)]
pub enum BenchDataError {
    /// The file is missing or unreadable.
    #[error("bench data {path}: {source} (the bench programs are read in place from ../shared/bench-data beside the workspace, or from $SHM_BENCH_DATA)")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The file is not one hex string.
    #[error("bench data {path}: not valid hex ({source})")]
    Hex {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        source: hex::FromHexError,
    },
    /// The estimator sample has no row of that name.
    #[error("bench data {path}: no row {row}")]
    NoRow {
        /// The CSV file.
        path: PathBuf,
        /// The `program_id` asked for.
        row: String,
    },
}

/// Where the bench programs are read from: `$SHM_BENCH_DATA` when set, else
/// `../shared/bench-data` beside the workspace.
pub fn bench_data_dir() -> PathBuf {
    match std::env::var_os("SHM_BENCH_DATA") {
        Some(dir) => dir.into(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench-data"),
    }
}

/// The text of `file` (relative to [`bench_data_dir`]).
///
/// # Errors
/// [`BenchDataError::Read`] when it cannot be read.
pub fn bench_data_text(file: &str) -> Result<String, BenchDataError> {
    let path = bench_data_dir().join(file);
    std::fs::read_to_string(&path).map_err(|source| BenchDataError::Read { path, source })
}

fn bench_data_hex(file: &str) -> Result<Bytes, BenchDataError> {
    let text = bench_data_text(file)?;
    hex::decode(text.trim())
        .map(Bytes::from)
        .map_err(|source| BenchDataError::Hex {
            path: bench_data_dir().join(file),
            source,
        })
}

/// One transaction over one state, with the gas it must use when known.
#[derive(Clone, Debug)]
pub struct Workload<DB> {
    /// Bench name.
    pub name: String,
    /// The state the transaction runs over (never committed to).
    pub db: DB,
    /// The transaction.
    pub tx: TxEnv,
    /// `tx_gas_used` every variant must report, when published.
    pub expected_gas: Option<u64>,
}

/// What revm's bench runner sets on the config: nonce check off and EIP-7825's
/// per-transaction gas cap lifted.
pub fn bench_cfg(cfg: &mut CfgEnv) {
    cfg.disable_nonce_check = true;
    cfg.tx_gas_limit_cap = Some(u64::MAX);
}

/// The `stock` variant: revm's mainnet EVM, as `evm run` builds it with shared
/// memory off.
pub fn stock_evm<DB: Database>(db: DB) -> MainnetEvm<MainnetContext<DB>> {
    Context::mainnet()
        .with_db(db)
        .modify_cfg_chained(bench_cfg)
        .build_mainnet()
}

/// The `hooked_unit` variant: revm's mainnet EVM over `HookedJournal<_, ()>`,
/// without the shared-memory instructions.
pub fn hooked_evm<DB: Database>(db: DB) -> HookedEvm<DB, ()> {
    hooked_context(db, SpecId::default(), ())
        .modify_cfg_chained(bench_cfg)
        .build_mainnet()
}

/// The `shm_unused` variant (and the EVM the per-op benches run on): shared
/// memory on over `manager`, revm's default fork.
pub fn shm_evm<DB: Database>(manager: &Arc<SharedMemoryManager>, db: DB) -> ShmEvm<DB> {
    let ctx = ShmEvmBuilder::new(manager.clone())
        .context(db)
        .modify_cfg_chained(bench_cfg);
    ShmEvmBuilder::build_from(ctx)
}

/// A manager with the `production` preset.
///
/// # Panics
/// If the preset is refused (it never is: it is a constant).
pub fn production_manager() -> Arc<SharedMemoryManager> {
    SharedMemoryManager::new(SharedMemoryConfig::production()).expect("the production preset")
}

/// A call from `BENCH_CALLER` to `BENCH_TARGET` with `data` and `gas_limit`.
///
/// # Panics
/// Never for these fields (the builder only fails on contradictory fee fields).
pub fn bench_tx(data: Bytes, gas_limit: u64) -> TxEnv {
    TxEnv::builder()
        .caller(BENCH_CALLER)
        .kind(TxKind::Call(BENCH_TARGET))
        .data(data)
        .gas_limit(gas_limit)
        .build()
        .expect("a valid transaction")
}

/// SnailTracer's `Benchmark()`, set up as revm's `revme bench snailtracer`.
///
/// # Errors
/// When `snailtracer.hex` cannot be read or decoded.
pub fn snailtracer() -> Result<Workload<BenchmarkDB>, BenchDataError> {
    Ok(Workload {
        name: "snailtracer".into(),
        db: BenchmarkDB::new_bytecode(Bytecode::new_raw(bench_data_hex("snailtracer.hex")?)),
        tx: bench_tx(hex!("30627b7c").into(), BENCH_GAS_LIMIT),
        expected_gas: Some(161_088_532),
    })
}

/// The jump-analysis contract, set up as `revme bench analysis` (default gas limit).
///
/// # Errors
/// When `analysis.hex` cannot be read or decoded.
pub fn analysis() -> Result<Workload<BenchmarkDB>, BenchDataError> {
    let tx = TxEnv::builder()
        .caller(BENCH_CALLER)
        .kind(TxKind::Call(BENCH_TARGET))
        .data(hex!("8035F0CE").into())
        .build()
        .expect("a valid transaction");
    Ok(Workload {
        name: "analysis".into(),
        db: BenchmarkDB::new_bytecode(Bytecode::new_raw(bench_data_hex("analysis.hex")?)),
        tx,
        expected_gas: Some(33_749),
    })
}

/// BurntPix `run(0, 20000)`, set up as `revme bench burntpix`.
///
/// # Errors
/// When one of `burntpix/bytecode_*.hex` cannot be read or decoded.
pub fn burntpix() -> Result<Workload<CacheDB<EmptyDB>>, BenchDataError> {
    let main = Address::from(hex!("49206861766520746f6f206d7563682074696d65"));
    let accounts = [
        (
            hex!("0a743ba7304efcc9e384ece9be7631e2470e401e"),
            "burntpix/bytecode_one.hex",
        ),
        (
            hex!("49206861766520746f6f206d7563682074696d65"),
            "burntpix/bytecode_two.hex",
        ),
        (
            hex!("c917e98213a05d271adc5d93d2fee6c1f1006f75"),
            "burntpix/bytecode_three.hex",
        ),
        (
            hex!("f529c70db0800449ebd81fbc6e4221523a989f05"),
            "burntpix/bytecode_four.hex",
        ),
    ];
    let mut db = CacheDB::new(EmptyDB::default());
    for (address, file) in accounts {
        db.insert_account_info(
            Address::from(address),
            AccountInfo::default().with_code(Bytecode::new_raw(bench_data_hex(file)?)),
        );
    }
    let slots = [
        hex!("000000000000000000000000f529c70db0800449ebd81fbc6e4221523a989f05"),
        hex!("0000000000000000000000000a743ba7304efcc9e384ece9be7631e2470e401e"),
        hex!("000000000000000000000000c917e98213a05d271adc5d93d2fee6c1f1006f75"),
    ];
    for (slot, value) in slots.into_iter().enumerate() {
        db.insert_account_storage(
            main,
            StorageKey::from(slot),
            StorageValue::from_be_bytes(value),
        )
        .expect("EmptyDB never fails");
    }
    // run(uint32 seed = 0, uint256 iterations = 20_000)
    let mut data = hex!("a4de9ab4").to_vec();
    data.extend_from_slice(&U256::ZERO.to_be_bytes::<32>());
    data.extend_from_slice(&U256::from(20_000u64).to_be_bytes::<32>());
    let tx = TxEnv::builder()
        .caller(BENCH_CALLER)
        .kind(TxKind::Call(main))
        .data(data.into())
        .gas_limit(u64::MAX)
        .build()
        .expect("a valid transaction");
    Ok(Workload {
        name: "burntpix".into(),
        db,
        tx,
        expected_gas: Some(159_033_567),
    })
}

/// A row of revm's `gas_cost_estimator_sample.csv` by `program_id` (e.g.
/// `"MSTORE_50"`), set up as `revme bench gas-cost-estimator`.
///
/// # Errors
/// When the sample cannot be read, has no such row, or its code is not hex.
pub fn estimator(program_id: &str) -> Result<Workload<BenchmarkDB>, BenchDataError> {
    const FILE: &str = "gas_cost_estimator_sample.csv";
    let csv = bench_data_text(FILE)?;
    let path = || bench_data_dir().join(FILE);
    let code = csv
        .lines()
        .skip(1)
        .find_map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            match fields[..] {
                [id, _opcode, _count, code] if id == program_id => Some(code),
                _ => None,
            }
        })
        .ok_or_else(|| BenchDataError::NoRow {
            path: path(),
            row: program_id.to_string(),
        })?;
    let code = hex::decode(code).map_err(|source| BenchDataError::Hex {
        path: path(),
        source,
    })?;
    Ok(Workload {
        name: program_id.to_string(),
        db: BenchmarkDB::new_bytecode(Bytecode::new_raw(code.into())),
        tx: bench_tx(Bytes::new(), BENCH_GAS_LIMIT),
        expected_gas: None,
    })
}

/// The value, or — for a bench binary — the error on one line of stderr and
/// exit status 2.
pub fn or_exit<T>(result: Result<T, BenchDataError>) -> T {
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        std::process::exit(2)
    })
}

/// Gas before refunds: what the opcodes charged.
pub fn gas_spent(result: &ExecutionResult) -> u64 {
    result.gas().total_gas_spent()
}
