//! Parallel equals serial: transactions that touch disjoint regions give,
//! run on threads at the same time, exactly what they give run one after
//! another — output, gas, logs, halts, state, region bytes and handles — and
//! the two places where they do not, which `docs/security.md` turns into
//! rules for consensus: handles that ALLOC hands out (one namespace shared by
//! every transaction), and "region busy" halts (a conflict with whatever else
//! runs on the manager at the time).
//!
//! The idea is pevm's and grevm's: execute the same block sequentially and in
//! parallel and compare every result and the post-state with `assert_eq!`;
//! pevm builds its blocks from independent clusters of dependent
//! transactions (ERC-20 and Uniswap clusters), so do we (each cluster its own
//! contract, sender and regions, its transactions in order).

#[allow(dead_code)]
#[path = "soak/ledger.rs"]
mod ledger;
#[allow(dead_code)]
#[path = "soak/program.rs"]
mod program;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use alloy_primitives::{Address, Bytes, U256};
use revm::{
    bytecode::Bytecode,
    context::{result::ExecutionResult, TxEnv},
    database::{CacheDB, EmptyDB},
    interpreter::{interpreter_types::Jumps, Interpreter},
    primitives::TxKind,
    state::AccountInfo,
    ExecuteCommitEvm, ExecuteEvm, InspectCommitEvm, Inspector,
};
use shm_manager::{HaltCause, RegionRequest, SharedMemoryConfig, SharedMemoryManager};
use shm_opcodes::{ShmEvm, ShmEvmBuilder};
use shm_primitives::{RegionHandle, RegionOptions};

use ledger::Writer;
use program::{Mix, Plan, Rng, REGION_SIZE};

const CLUSTERS: usize = 6;
const TXS_PER_CLUSTER: usize = 40;
const REGIONS_PER_CLUSTER: usize = 2;
const GAS: u64 = 30_000_000;

fn contract(cluster: usize) -> Address {
    Address::repeat_byte(0x60 + cluster as u8)
}

fn sender(cluster: usize) -> Address {
    Address::repeat_byte(0xa0 + cluster as u8)
}

/// A fresh manager with each cluster's shared regions, made by the host in
/// the same order every time (so with the same handles: spec §3).
fn world(config: &SharedMemoryConfig) -> (Arc<SharedMemoryManager>, Vec<Vec<(usize, u64)>>) {
    let manager = SharedMemoryManager::new(config.clone()).unwrap();
    let options = RegionOptions {
        persistent: true,
        public_read: true,
        public_write: true,
        ..RegionOptions::default()
    };
    let regions = (0..CLUSTERS)
        .map(|c| {
            (0..REGIONS_PER_CLUSTER)
                .map(|k| {
                    let h = manager
                        .create_region(
                            RegionRequest::new(REGION_SIZE)
                                .owner(contract(c))
                                .options(options),
                        )
                        .unwrap();
                    (k, h.to_u64())
                })
                .collect()
        })
        .collect();
    (manager, regions)
}

/// Each cluster's transactions: random programs (nested calls, reverts,
/// halts, copy-on-write views, logs, storage) over the cluster's regions
/// only, and no ALLOC.
fn block(seed: u64, regions: &[Vec<(usize, u64)>]) -> Vec<Vec<Plan>> {
    let mix = Mix {
        alloc: false,
        embedder: false,
    };
    (0..CLUSTERS)
        .map(|c| {
            let mut rng = Rng::new(seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9));
            (0..TXS_PER_CLUSTER)
                .map(|i| {
                    let writer = Writer {
                        process: 0,
                        thread: c as u8,
                        seq: i as u64,
                    };
                    Plan::random(&mut rng, mix, writer, &regions[c])
                })
                .collect()
        })
        .collect()
}

fn evm(manager: &Arc<SharedMemoryManager>) -> ShmEvm<CacheDB<EmptyDB>> {
    let mut db = CacheDB::new(EmptyDB::default());
    for c in 0..CLUSTERS {
        db.insert_account_info(
            sender(c),
            AccountInfo::default().with_balance(U256::from(10u128.pow(30))),
        );
    }
    let mut ctx = ShmEvmBuilder::new(manager.clone()).context(db);
    ctx.cfg.disable_nonce_check = true;
    ctx.cfg.tx_gas_limit_cap = Some(u64::MAX);
    ShmEvmBuilder::build_from(ctx)
}

/// What one transaction gave.
#[derive(Debug, PartialEq)]
struct Given {
    result: ExecutionResult,
    halt: Option<HaltCause>,
}

/// Runs cluster `c`'s plans on `evm` (its contract takes each plan's code).
fn run_cluster(evm: &mut ShmEvm<CacheDB<EmptyDB>>, c: usize, plans: &[Plan]) -> Vec<Given> {
    plans
        .iter()
        .map(|plan| {
            let code = shm_evm::asm::assemble(&plan.assembly()).unwrap();
            evm.ctx
                .journaled_state
                .journal_mut()
                .database
                .insert_account_info(
                    contract(c),
                    AccountInfo::default()
                        .with_nonce(1)
                        .with_code(Bytecode::new_raw(code)),
                );
            evm.ctx.journaled_state.hook_mut().clear_last_halt();
            let tx = TxEnv::builder()
                .caller(sender(c))
                .kind(TxKind::Call(contract(c)))
                .data(Bytes::from(plan.calldata()))
                .gas_limit(GAS)
                .gas_price(0)
                .build()
                .unwrap();
            let result = evm.transact_commit(tx).unwrap();
            Given {
                result,
                halt: evm.ctx.journaled_state.hook().last_halt(),
            }
        })
        .collect()
}

/// A live region as compared: handle, size, owner, name, bytes.
type RegionView = (u64, u64, Address, Option<String>, Vec<u8>);

/// Every live region.
fn regions_of(manager: &SharedMemoryManager) -> Vec<RegionView> {
    let mut all: Vec<_> = manager
        .list_regions()
        .unwrap()
        .into_iter()
        .map(|info| {
            let meta = &info.meta;
            let mut bytes = vec![0u8; meta.size() as usize];
            manager.read_region(meta.handle(), 0, &mut bytes).unwrap();
            (
                meta.handle().to_u64(),
                meta.size(),
                meta.owner(),
                meta.name().map(str::to_string),
                bytes,
            )
        })
        .collect();
    all.sort_by_key(|r| r.0);
    all
}

/// A cluster's account state: the contract's storage and the sender's nonce.
fn state_of(db: &CacheDB<EmptyDB>, c: usize) -> (Vec<(U256, U256)>, u64) {
    let mut storage: Vec<(U256, U256)> = db
        .cache
        .accounts
        .get(&contract(c))
        .map(|a| a.storage.iter().map(|(k, v)| (*k, *v)).collect())
        .unwrap_or_default();
    storage.sort();
    let nonce = db
        .cache
        .accounts
        .get(&sender(c))
        .map_or(0, |a| a.info.nonce);
    (storage, nonce)
}

fn parallel_equals_serial(name: &str, config: SharedMemoryConfig, seed: u64) {
    // Serially: one EVM, cluster after cluster.
    let (serial_manager, regions) = world(&config);
    let plans = block(seed, &regions);
    let mut serial_evm = evm(&serial_manager);
    let serial: Vec<Vec<Given>> = (0..CLUSTERS)
        .map(|c| run_cluster(&mut serial_evm, c, &plans[c]))
        .collect();
    let serial_db = &serial_evm.ctx.journaled_state.journal().database;

    // In parallel: one thread and EVM per cluster, started together.
    let (parallel_manager, parallel_regions) = world(&config);
    assert_eq!(parallel_regions, regions, "same history, same handles");
    let start = Arc::new(Barrier::new(CLUSTERS));
    let plans = Arc::new(plans);
    let threads: Vec<_> = (0..CLUSTERS)
        .map(|c| {
            let (manager, start, plans) = (parallel_manager.clone(), start.clone(), plans.clone());
            std::thread::spawn(move || {
                let mut evm = evm(&manager);
                start.wait();
                let given = run_cluster(&mut evm, c, &plans[c]);
                let state = state_of(&evm.ctx.journaled_state.journal().database, c);
                (given, state)
            })
        })
        .collect();
    let parallel: Vec<(Vec<Given>, _)> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    let mut outcomes = [0usize; 3];
    let (mut logs, mut busy) = (0, 0);
    for c in 0..CLUSTERS {
        for (i, (s, p)) in serial[c].iter().zip(&parallel[c].0).enumerate() {
            assert_eq!(
                s, p,
                "{name}: cluster {c} transaction {i}: serial vs parallel"
            );
            outcomes[match &s.result {
                ExecutionResult::Success { .. } => 0,
                ExecutionResult::Revert { .. } => 1,
                ExecutionResult::Halt { .. } => 2,
            }] += 1;
            logs += s.result.logs().len();
            busy += usize::from(p.halt == Some(HaltCause::RegionBusy));
        }
        assert_eq!(
            state_of(serial_db, c),
            parallel[c].1,
            "{name}: cluster {c}: account state"
        );
    }
    assert_eq!(
        regions_of(&serial_manager),
        regions_of(&parallel_manager),
        "{name}: regions (handles, sizes, owners, names, bytes)"
    );
    let (s, p) = (
        serial_manager.metrics_snapshot(),
        parallel_manager.metrics_snapshot(),
    );
    assert_eq!(
        (
            s.regions_created,
            s.regions_destroyed,
            s.reads,
            s.writes,
            s.read_bytes,
            s.write_bytes
        ),
        (
            p.regions_created,
            p.regions_destroyed,
            p.reads,
            p.writes,
            p.read_bytes,
            p.write_bytes
        ),
        "{name}: counters"
    );
    assert_eq!(s.halts, p.halts, "{name}: halts by cause");
    assert_eq!(busy, 0, "disjoint transactions never wait for each other");
    assert!(parallel_manager.locked_regions().is_empty());
    // The block exercised what it is for.
    assert!(
        outcomes.iter().all(|&n| n > 0) && logs > 0,
        "{name}: successes, reverts, halts {outcomes:?}, logs {logs}"
    );
    assert!(
        (0..CLUSTERS).any(|c| !state_of(serial_db, c).0.is_empty()),
        "{name}: some storage was written"
    );
}

#[test]
fn disjoint_transactions_give_the_same_results_in_parallel_as_in_series() {
    for seed in [1, 2, 3] {
        parallel_equals_serial("production", SharedMemoryConfig::production(), seed);
        // (Twelve 8 KiB regions need more 64 KiB blocks than `testing` has.)
        let testing = SharedMemoryConfig {
            pool_blocks: [64, 16, 16, 1],
            ..SharedMemoryConfig::testing()
        };
        parallel_equals_serial("testing", testing, seed);
    }
}

/// ALLOC is never disjoint from another ALLOC: a handle is the lowest free
/// slot at a fresh generation (spec §3: a function of the manager's
/// history), and running transactions at the same time changes the history.
/// Transaction B allocates while A still holds its region: B gets another
/// slot than it gets after A ended.
#[test]
fn allocations_in_parallel_get_other_handles_than_in_series() {
    /// Pauses the transaction right after its first SHARED_ALLOC until the
    /// test lets it go on.
    struct PauseAfterAlloc {
        allocating: bool,
        paused: Option<(Arc<Barrier>, Arc<Barrier>)>,
    }
    impl<CTX> Inspector<CTX> for PauseAfterAlloc {
        fn step(&mut self, interp: &mut Interpreter, _: &mut CTX) {
            self.allocating = interp.bytecode.opcode() == 0xE0;
        }
        fn step_end(&mut self, _: &mut Interpreter, _: &mut CTX) {
            if std::mem::take(&mut self.allocating) {
                if let Some((reached, resume)) = self.paused.take() {
                    reached.wait();
                    resume.wait();
                }
            }
        }
    }
    let alloc = "PUSH 0 PUSH 64 SHARED_ALLOC PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN";
    let code = shm_evm::asm::assemble(alloc).unwrap();
    let db = || {
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            contract(0),
            AccountInfo::default().with_code(Bytecode::new_raw(code.clone())),
        );
        db
    };
    let tx = || {
        TxEnv::builder()
            .caller(sender(0))
            .kind(TxKind::Call(contract(0)))
            .gas_limit(1_000_000)
            .build()
            .unwrap()
    };
    let handle = |r: &ExecutionResult| {
        assert!(r.is_success(), "{r:?}");
        RegionHandle::from_u256(U256::from_be_slice(r.output().unwrap())).unwrap()
    };
    let build = |manager: &Arc<SharedMemoryManager>| {
        let mut ctx = ShmEvmBuilder::new(manager.clone()).context(db());
        ctx.cfg.disable_nonce_check = true;
        ctx
    };

    // In series: A, then B.
    let manager = SharedMemoryManager::new(SharedMemoryConfig::production()).unwrap();
    let a_serial = ShmEvmBuilder::build_from(build(&manager))
        .transact_commit(tx())
        .unwrap();
    let b_serial = ShmEvmBuilder::build_from(build(&manager))
        .transact_commit(tx())
        .unwrap();

    // At the same time: B runs while A is paused after its ALLOC.
    let manager = SharedMemoryManager::new(SharedMemoryConfig::production()).unwrap();
    let (reached, resume) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let a = {
        let (manager, code) = (manager.clone(), code.clone());
        let paused = Some((reached.clone(), resume.clone()));
        std::thread::spawn(move || {
            let mut db = CacheDB::new(EmptyDB::default());
            db.insert_account_info(
                contract(0),
                AccountInfo::default().with_code(Bytecode::new_raw(code)),
            );
            let mut ctx = ShmEvmBuilder::new(manager).context(db);
            ctx.cfg.disable_nonce_check = true;
            let inspector = PauseAfterAlloc {
                allocating: false,
                paused,
            };
            ShmEvmBuilder::build_from_with_inspector(ctx, inspector)
                .inspect_tx_commit(
                    TxEnv::builder()
                        .caller(sender(0))
                        .kind(TxKind::Call(contract(0)))
                        .gas_limit(1_000_000)
                        .build()
                        .unwrap(),
                )
                .unwrap()
        })
    };
    reached.wait();
    let b_parallel = ShmEvmBuilder::build_from(build(&manager))
        .transact_commit(tx())
        .unwrap();
    resume.wait();
    let a_parallel = a.join().unwrap();

    assert_eq!(a_parallel, a_serial, "A ran first either way");
    assert_eq!(b_parallel.tx_gas_used(), b_serial.tx_gas_used(), "same gas");
    let (hs, hp) = (handle(&b_serial), handle(&b_parallel));
    assert_eq!(
        (hs.index(), hs.generation()),
        (1, 2),
        "after A: A's slot, next generation"
    );
    assert_eq!(
        (hp.index(), hp.generation()),
        (2, 1),
        "beside A: the next slot"
    );
    assert_ne!(b_parallel, b_serial, "the output is the handle: it differs");
}

/// A conflict makes the outcome depend on what else the node runs: a
/// transaction that meets a region another transaction holds — here an
/// `eth_call`-style simulation, executed and not yet abandoned — waits
/// `lock_wait` and halts "region busy", where run alone (as every other node
/// runs it) it succeeds. Re-executed once the holder is gone, it gives the
/// serial result.
#[test]
fn a_conflict_halts_busy_on_one_node_and_succeeds_on_another() {
    let config = SharedMemoryConfig {
        lock_wait: Duration::from_millis(20),
        ..SharedMemoryConfig::development()
    };
    let setup = || {
        let manager = SharedMemoryManager::new(config.clone()).unwrap();
        let options = RegionOptions {
            persistent: true,
            public_write: true,
            ..RegionOptions::default()
        };
        let h = manager
            .create_region(RegionRequest::new(64).options(options))
            .unwrap();
        let code = shm_evm::asm::assemble(&format!(
            "PUSH 1 PUSH 0 MSTORE PUSH 0 PUSH 32 PUSH 0 PUSH {h} SHARED_WRITE
             PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN",
            h = h.to_u256()
        ))
        .unwrap();
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            contract(0),
            AccountInfo::default().with_code(Bytecode::new_raw(code)),
        );
        (manager, db)
    };
    let tx = || {
        TxEnv::builder()
            .caller(sender(0))
            .kind(TxKind::Call(contract(0)))
            .gas_limit(1_000_000)
            .build()
            .unwrap()
    };
    let evm = |manager: &Arc<SharedMemoryManager>, db: CacheDB<EmptyDB>| {
        let mut ctx = ShmEvmBuilder::new(manager.clone()).context(db);
        ctx.cfg.disable_nonce_check = true;
        ShmEvmBuilder::build_from(ctx)
    };

    // The node that runs the block transaction alone.
    let (manager, db) = setup();
    let alone = evm(&manager, db).transact_commit(tx()).unwrap();
    assert!(alone.is_success());

    // The node that runs a simulation of the same contract meanwhile.
    let (manager, db) = setup();
    let mut simulation = evm(&manager, db.clone());
    let simulated = simulation.transact(tx()).unwrap();
    assert!(simulated.result.is_success());
    let mut block = evm(&manager, db);
    let busy = block.transact_commit(tx()).unwrap();
    assert_eq!(
        block.ctx.journaled_state.hook().last_halt(),
        Some(HaltCause::RegionBusy)
    );
    assert!(busy.is_halt());
    assert_ne!(busy, alone, "another result on this node");

    // Once the simulation is abandoned, the re-execution agrees with `alone`.
    drop(simulation);
    let again = block.transact_commit(tx()).unwrap();
    assert_eq!(again, alone);
}
