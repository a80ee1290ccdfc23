//! Shared set-up for the workspace-level benchmarks (see `benches/`): the bench
//! programs revm publishes numbers for (snailtracer, analysis, burntpix, rows of
//! the gas-cost-estimator sample), the three EVM variants they run on, loop
//! programs that time one operation, and the tables the benches print.
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
//! let work = analysis();
//! let mut stock = stock_evm(work.db.clone());
//! let mut shm = shm_evm(&production_manager(), work.db.clone());
//! let a = stock.transact(work.tx.clone()).unwrap().result;
//! let b = shm.transact(work.tx.clone()).unwrap().result;
//! assert_eq!(a.tx_gas_used(), work.expected_gas.unwrap());
//! assert_eq!(a, b);
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod adversarial;
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
use std::sync::Arc;

/// The gas limit revm's benches give their transactions (1e9).
pub const BENCH_GAS_LIMIT: u64 = 1_000_000_000;

const SNAILTRACER_HEX: &str = include_str!("../data/snailtracer.hex");
const ANALYSIS_HEX: &str = include_str!("../data/analysis.hex");
const ESTIMATOR_CSV: &str = include_str!("../data/gas_cost_estimator_sample.csv");
const BURNTPIX_ONE: &str = include_str!("../data/burntpix/bytecode_one.hex");
const BURNTPIX_TWO: &str = include_str!("../data/burntpix/bytecode_two.hex");
const BURNTPIX_THREE: &str = include_str!("../data/burntpix/bytecode_three.hex");
const BURNTPIX_FOUR: &str = include_str!("../data/burntpix/bytecode_four.hex");

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

fn decode(hex_text: &str) -> Bytes {
    hex::decode(hex_text.trim())
        .expect("bench data is valid hex")
        .into()
}

/// SnailTracer's `Benchmark()`, set up as revm's `revme bench snailtracer`.
pub fn snailtracer() -> Workload<BenchmarkDB> {
    Workload {
        name: "snailtracer".into(),
        db: BenchmarkDB::new_bytecode(Bytecode::new_raw(decode(SNAILTRACER_HEX))),
        tx: bench_tx(hex!("30627b7c").into(), BENCH_GAS_LIMIT),
        expected_gas: Some(161_088_532),
    }
}

/// The jump-analysis contract, set up as `revme bench analysis` (default gas limit).
pub fn analysis() -> Workload<BenchmarkDB> {
    let tx = TxEnv::builder()
        .caller(BENCH_CALLER)
        .kind(TxKind::Call(BENCH_TARGET))
        .data(hex!("8035F0CE").into())
        .build()
        .expect("a valid transaction");
    Workload {
        name: "analysis".into(),
        db: BenchmarkDB::new_bytecode(Bytecode::new_raw(decode(ANALYSIS_HEX))),
        tx,
        expected_gas: Some(33_749),
    }
}

/// BurntPix `run(0, 20000)`, set up as `revme bench burntpix`.
pub fn burntpix() -> Workload<CacheDB<EmptyDB>> {
    let main = Address::from(hex!("49206861766520746f6f206d7563682074696d65"));
    let accounts = [
        (
            hex!("0a743ba7304efcc9e384ece9be7631e2470e401e"),
            BURNTPIX_ONE,
        ),
        (
            hex!("49206861766520746f6f206d7563682074696d65"),
            BURNTPIX_TWO,
        ),
        (
            hex!("c917e98213a05d271adc5d93d2fee6c1f1006f75"),
            BURNTPIX_THREE,
        ),
        (
            hex!("f529c70db0800449ebd81fbc6e4221523a989f05"),
            BURNTPIX_FOUR,
        ),
    ];
    let mut db = CacheDB::new(EmptyDB::default());
    for (address, code) in accounts {
        db.insert_account_info(
            Address::from(address),
            AccountInfo::default().with_code(Bytecode::new_raw(decode(code))),
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
    Workload {
        name: "burntpix".into(),
        db,
        tx,
        expected_gas: Some(159_033_567),
    }
}

/// A row of revm's `gas_cost_estimator_sample.csv` by `program_id` (e.g.
/// `"MSTORE_50"`), set up as `revme bench gas-cost-estimator`.
pub fn estimator(program_id: &str) -> Option<Workload<BenchmarkDB>> {
    ESTIMATOR_CSV.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [id, _opcode, _count, code] = fields[..] else {
            return None;
        };
        (id == program_id).then(|| Workload {
            name: id.to_string(),
            db: BenchmarkDB::new_bytecode(Bytecode::new_raw(decode(code))),
            tx: bench_tx(Bytes::new(), BENCH_GAS_LIMIT),
            expected_gas: None,
        })
    })
}

/// Gas before refunds: what the opcodes charged.
pub fn gas_spent(result: &ExecutionResult) -> u64 {
    result.gas().total_gas_spent()
}
