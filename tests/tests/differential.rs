//! Differential runs (issue 13, 2a): shared memory off is stock revm 43, and shared
//! memory on agrees with off on every program that never executes 0xE0–0xE4.
//!
//! Each case is a random state-test-like transaction: a prestate of three contracts
//! with random programs (nested CALL, STATICCALL, DELEGATECALL, CALLCODE, CREATE,
//! storage, transient storage, logs, memory, reverts; raw bytes too) and balances,
//! a funded or under-funded sender, a call or a contract creation with random value,
//! calldata, gas limit, gas price and block. It runs on:
//!
//! - revm's stock mainnet EVM, built here plainly (`Context::mainnet()…build_mainnet()`),
//!   through `transact` and, with an inspector, through `inspect_tx`;
//! - revm with shared memory on (`ShmEvmBuilder`) under each preset, through `transact`
//!   and `transact_commit`;
//! - for the `evm run` shape, `shm_evm::execute` with shared memory off.
//!
//! Results (status, gas used and refunded, output, logs), the state revm reports
//! (accounts, storage slots with their original values, status flags) and the
//! committed databases must be equal, bit for bit. The inspector tells whether the
//! stock run reached an opcode in 0xE0–0xE4 (invalid there); only such cases may
//! differ (shared memory gives those opcodes meaning), and they are counted apart.

use alloy_primitives::{Address, Bytes, U256};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use revm::{
    bytecode::Bytecode,
    context::{result::ResultAndState, BlockEnv, CfgEnv, TxEnv},
    database::{CacheDB, EmptyDB},
    interpreter::{interpreter_types::Jumps, Interpreter},
    primitives::{hardfork::SpecId, TxKind},
    state::AccountInfo,
    Context, DatabaseCommit, ExecuteCommitEvm, ExecuteEvm, InspectEvm, Inspector, MainBuilder,
    MainContext,
};
use shm_evm::{dump_state, execute, prepare_db, Prestate, RunConfig};
use shm_manager::{Metrics, SharedMemoryConfig, SharedMemoryManager};
use shm_opcodes::ShmEvmBuilder;

/// The three contracts of a case.
const CONTRACTS: [Address; 3] = [
    Address::repeat_byte(0xa1),
    Address::repeat_byte(0xa2),
    Address::repeat_byte(0xa3),
];
const SENDER: Address = Address::repeat_byte(0x5e);

// ----- programs -----

/// Opcodes a generated program draws from (0xE0–0xE4 never: see [`scrub`]).
const OPCODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x10, 0x11, 0x12, 0x13,
    0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x20, 0x30, 0x31, 0x32, 0x33,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43,
    0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
    0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x80, 0x81, 0x82, 0x83, 0x8f, 0x90, 0x91, 0x92, 0x9f,
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xfa, 0xfd, 0xfe, 0xff,
];

#[derive(Clone, Debug)]
enum Piece {
    Push(U256),
    Op(u8),
    /// CALL-family of one of the contracts (or the precompile 0x04), passing
    /// memory 0..32 and keeping 32 bytes of return data.
    Call {
        kind: u8,
        callee: u8,
        gas: u32,
    },
    /// SSTORE of a small value in a small slot.
    Store {
        slot: u8,
        value: u8,
    },
    /// LOGn of memory 0..n with small topics.
    Log {
        topics: u8,
        len: u8,
    },
    /// CREATE of a tiny init code that returns 2 bytes of runtime code.
    Create {
        salted: bool,
    },
    /// Raw bytes (scrubbed of 0xE0–0xE4 at opcode positions).
    Raw(Vec<u8>),
}

fn word() -> impl Strategy<Value = U256> {
    prop_oneof![
        4 => (0u64..64).prop_map(U256::from),
        2 => any::<u64>().prop_map(U256::from),
        1 => any::<[u8; 32]>().prop_map(U256::from_be_bytes),
        1 => (0usize..3).prop_map(|i| U256::from_be_slice(CONTRACTS[i].as_slice())),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => word().prop_map(Piece::Push),
        8 => prop::sample::select(OPCODES).prop_map(Piece::Op),
        3 => (prop::sample::select(&[0xf1u8, 0xf2, 0xf4, 0xfa][..]), 0u8..4, 0u32..200_000)
            .prop_map(|(kind, callee, gas)| Piece::Call { kind, callee, gas }),
        2 => (0u8..4, any::<u8>()).prop_map(|(slot, value)| Piece::Store { slot, value }),
        1 => (0u8..=4, 0u8..64).prop_map(|(topics, len)| Piece::Log { topics, len }),
        1 => any::<bool>().prop_map(|salted| Piece::Create { salted }),
        1 => prop::collection::vec(any::<u8>(), 1..12).prop_map(Piece::Raw),
    ]
}

fn push(code: &mut Vec<u8>, value: U256) {
    let bytes = value.to_be_bytes_trimmed_vec();
    if bytes.is_empty() {
        code.push(0x5f);
    } else {
        code.push(0x5f + bytes.len() as u8);
        code.extend_from_slice(&bytes);
    }
}

fn assemble(pieces: &[Piece], end: u8) -> Vec<u8> {
    let mut code = Vec::new();
    // Operands for whatever comes first.
    for v in [3u64, 0, 32, 1, 7] {
        push(&mut code, U256::from(v));
    }
    for piece in pieces {
        match piece {
            Piece::Push(v) => push(&mut code, *v),
            Piece::Op(op) => code.push(*op),
            Piece::Call { kind, callee, gas } => {
                // retSize retOffset argsSize argsOffset [value] address gas
                for v in [32u64, 0, 32, 0] {
                    push(&mut code, U256::from(v));
                }
                if matches!(kind, 0xf1 | 0xf2) {
                    push(&mut code, U256::from(*callee as u64 % 2));
                }
                let to = match callee {
                    0..=2 => U256::from_be_slice(CONTRACTS[*callee as usize].as_slice()),
                    _ => U256::from(4), // the identity precompile
                };
                push(&mut code, to);
                push(&mut code, U256::from(*gas));
                code.push(*kind);
            }
            Piece::Store { slot, value } => {
                push(&mut code, U256::from(*value));
                push(&mut code, U256::from(*slot));
                code.push(0x55);
            }
            Piece::Log { topics, len } => {
                for t in 0..*topics {
                    push(&mut code, U256::from(t));
                }
                push(&mut code, U256::from(*len));
                push(&mut code, U256::ZERO);
                code.push(0xa0 + topics);
            }
            Piece::Create { salted } => {
                // init code: PUSH2 0x6001 PUSH0 MSTORE PUSH1 2 PUSH1 30 RETURN, stored at 0
                let init: [u8; 11] = [0x61, 0x60, 0x01, 0x5f, 0x52, 0x60, 2, 0x60, 30, 0xf3, 0];
                push(&mut code, U256::from_be_slice(&init));
                push(&mut code, U256::ZERO);
                code.push(0x52); // MSTORE: init code at 21..32
                if *salted {
                    push(&mut code, U256::from(0x5a17));
                }
                push(&mut code, U256::from(10));
                push(&mut code, U256::from(21));
                push(&mut code, U256::ZERO);
                code.push(if *salted { 0xf5 } else { 0xf0 });
            }
            Piece::Raw(bytes) => code.extend_from_slice(bytes),
        }
    }
    match end {
        0 => code.push(0x00),
        1 => code.extend_from_slice(&[0x60, 0x40, 0x5f, 0xf3]), // RETURN(0, 64)
        2 => code.extend_from_slice(&[0x60, 0x20, 0x5f, 0xfd]), // REVERT(0, 32)
        _ => {}
    }
    scrub(&mut code);
    code
}

/// Replaces 0xE0–0xE4 at opcode positions (never in PUSH data) with JUMPDEST, so no
/// program asks for a shared-memory opcode by itself.
fn scrub(code: &mut [u8]) {
    let mut i = 0;
    while i < code.len() {
        let op = code[i];
        if (0xe0..=0xe4).contains(&op) {
            code[i] = 0x5b;
        }
        i += 1 + if (0x60..=0x7f).contains(&op) {
            usize::from(op - 0x5f)
        } else {
            0
        };
    }
}

fn program() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        5 => (prop::collection::vec(piece(), 0..40), 0u8..4).prop_map(|(p, end)| assemble(&p, end)),
        1 => prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut c| {
            scrub(&mut c);
            c
        }),
    ]
}

// ----- cases -----

#[derive(Clone, Debug)]
struct Case {
    spec: SpecId,
    codes: [Vec<u8>; 3],
    balances: [u64; 3],
    storage: Vec<(u8, u8, u64)>,
    sender_balance: U256,
    create: Option<Vec<u8>>,
    to: u8,
    value: U256,
    data: Vec<u8>,
    gas_limit: u64,
    gas_price: u128,
    basefee: u64,
    number: u64,
    timestamp: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let env = (
        prop::sample::select(&[SpecId::CANCUN, SpecId::PRAGUE, SpecId::OSAKA][..]),
        prop_oneof![
            3 => Just(U256::from(10u128.pow(24))),
            1 => (0u64..100_000).prop_map(U256::from),
        ],
        prop_oneof![3 => Just(U256::ZERO), 1 => (0u64..1000).prop_map(U256::from)],
        prop_oneof![
            3 => 21_000u64..3_000_000,
            1 => 0u64..60_000,
        ],
        prop_oneof![3 => Just(0u128), 1 => 0u128..20],
        prop_oneof![3 => Just(0u64), 1 => 0u64..20],
        0u64..1_000_000,
        1u64..2_000_000_000,
    );
    let state = (
        [program(), program(), program()],
        [0u64..1000, 0u64..1000, 0u64..1000],
        prop::collection::vec((0u8..3, 0u8..4, any::<u64>()), 0..6),
        prop::option::weighted(0.15, program()),
        0u8..3,
        prop::collection::vec(any::<u8>(), 0..64),
    );
    (env, state).prop_map(
        |(
            (spec, sender_balance, value, gas_limit, gas_price, basefee, number, timestamp),
            (codes, balances, storage, create, to, data),
        )| Case {
            spec,
            codes,
            balances,
            storage,
            sender_balance,
            create,
            to,
            value,
            data,
            gas_limit,
            gas_price,
            basefee,
            number,
            timestamp,
        },
    )
}

impl Case {
    fn db(&self) -> CacheDB<EmptyDB> {
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            SENDER,
            AccountInfo::default().with_balance(self.sender_balance),
        );
        for (i, address) in CONTRACTS.iter().enumerate() {
            let info = AccountInfo::default()
                .with_nonce(1)
                .with_balance(U256::from(self.balances[i]))
                .with_code(Bytecode::new_raw(self.codes[i].clone().into()));
            db.insert_account_info(*address, info);
        }
        for &(account, slot, value) in &self.storage {
            db.insert_account_storage(
                CONTRACTS[account as usize],
                U256::from(slot),
                U256::from(value),
            )
            .expect("an inserted account");
        }
        db
    }

    fn cfg(&self) -> CfgEnv {
        let mut cfg = CfgEnv::new_with_spec(self.spec);
        cfg.set_spec_and_mainnet_gas_params(self.spec);
        cfg.disable_nonce_check = true;
        cfg
    }

    fn block(&self) -> BlockEnv {
        BlockEnv {
            number: U256::from(self.number),
            timestamp: U256::from(self.timestamp),
            basefee: self.basefee,
            gas_limit: 30_000_000,
            beneficiary: Address::repeat_byte(0xcb),
            ..BlockEnv::default()
        }
    }

    fn tx(&self) -> TxEnv {
        let (kind, data) = match &self.create {
            Some(init) => (TxKind::Create, init.clone()),
            None => (TxKind::Call(CONTRACTS[self.to as usize]), self.data.clone()),
        };
        TxEnv::builder()
            .caller(SENDER)
            .kind(kind)
            .data(Bytes::from(data))
            .value(self.value)
            .gas_limit(self.gas_limit)
            .gas_price(self.gas_price)
            .build()
            .expect("a valid transaction")
    }
}

/// Whether a stock run stepped on an opcode in 0xE0–0xE4.
#[derive(Default)]
struct SharedOpcodeSeen(bool);

impl<CTX> Inspector<CTX> for SharedOpcodeSeen {
    fn step(&mut self, interp: &mut Interpreter, _: &mut CTX) {
        if (0xe0..=0xe4).contains(&interp.bytecode.opcode()) {
            self.0 = true;
        }
    }
}

type Outcome = Result<ResultAndState, String>;

fn stock(case: &Case) -> (Outcome, CacheDB<EmptyDB>) {
    let mut evm = Context::mainnet()
        .with_cfg(case.cfg())
        .with_block(case.block())
        .with_db(case.db())
        .build_mainnet();
    let out = evm.transact(case.tx()).map_err(|e| e.to_string());
    let mut db = evm.ctx.journaled_state.database;
    if let Ok(out) = &out {
        db.commit(out.state.clone());
    }
    (out, db)
}

fn stock_inspected(case: &Case) -> (Outcome, bool) {
    let mut evm = Context::mainnet()
        .with_cfg(case.cfg())
        .with_block(case.block())
        .with_db(case.db())
        .build_mainnet_with_inspector(SharedOpcodeSeen::default());
    let out = evm.inspect_tx(case.tx()).map_err(|e| e.to_string());
    (out, evm.inspector.0)
}

fn shared(case: &Case, config: &SharedMemoryConfig) -> (Outcome, Metrics) {
    let manager = SharedMemoryManager::new(config.clone()).expect("a preset");
    let builder = ShmEvmBuilder::new(manager.clone()).spec(case.spec);
    let ctx = builder
        .context(case.db())
        .with_cfg(case.cfg())
        .with_block(case.block());
    let mut evm = ShmEvmBuilder::build_from(ctx);
    let out = evm.transact(case.tx()).map_err(|e| e.to_string());
    (out, manager.metrics_snapshot())
}

fn shared_committed(case: &Case, config: &SharedMemoryConfig) -> (Outcome, CacheDB<EmptyDB>) {
    let manager = SharedMemoryManager::new(config.clone()).expect("a preset");
    let builder = ShmEvmBuilder::new(manager.clone()).spec(case.spec);
    let ctx = builder
        .context(case.db())
        .with_cfg(case.cfg())
        .with_block(case.block());
    let mut evm = ShmEvmBuilder::build_from(ctx);
    let out = evm
        .transact_commit(case.tx())
        .map(|result| ResultAndState::new(result, Default::default()))
        .map_err(|e| e.to_string());
    let (journal, _session) = evm.ctx.journaled_state.into_parts();
    (out, journal.database.into_inner())
}

fn presets() -> [SharedMemoryConfig; 3] {
    [
        SharedMemoryConfig::production(),
        SharedMemoryConfig::development(),
        SharedMemoryConfig::testing(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Shared memory on (every preset, `transact` and `transact_commit`) equals stock
    /// revm (`transact` and `inspect_tx`) on random state-test-like transactions.
    #[test]
    fn shared_memory_on_equals_stock_revm(case in case()) {
        let (want, want_db) = stock(&case);
        let (inspected, reached) = stock_inspected(&case);
        prop_assert_eq!(&inspected, &want, "inspect_tx ≠ transact on stock revm");
        if reached {
            // 0xE0–0xE4 are invalid here and mean something with shared memory on:
            // the runs may differ; they must still not panic.
            for config in presets() {
                let _ = shared(&case, &config);
            }
            return Ok(());
        }
        for config in presets() {
            let (got, metrics) = shared(&case, &config);
            prop_assert_eq!(&got, &want, "transact, {:?}", config.security_level);
            // A transaction that never reaches 0xE0–0xE4 never touches the manager.
            prop_assert_eq!(metrics, Metrics::default());
        }
        let (got, got_db) = shared_committed(&case, &SharedMemoryConfig::production());
        prop_assert_eq!(
            got.map(|o| o.result),
            want.as_ref().map(|o| o.result.clone()).map_err(Clone::clone),
            "transact_commit"
        );
        prop_assert_eq!(dump_state(&got_db), dump_state(&want_db), "committed state");
    }

    /// `evm run`'s engine with shared memory off (`shm_evm::execute`) is revm's stock
    /// EVM built plainly over the same state and environment.
    #[test]
    fn evm_run_off_is_stock_revm(
        code in program(),
        input in prop::collection::vec(any::<u8>(), 0..64),
        gas_limit in 21_000u64..5_000_000,
        value in 0u64..100,
        spec in prop::sample::select(&[SpecId::CANCUN, SpecId::PRAGUE, SpecId::OSAKA][..]),
    ) {
        let mut config = RunConfig::new(code.into());
        config.input = input.into();
        config.gas_limit = gas_limit;
        config.value = U256::from(value);
        config.spec = spec;
        config.prestate = Prestate::default();
        let off = execute(&config, None);
        let mut evm = Context::mainnet()
            .with_cfg(config.cfg_env())
            .with_block(config.block_env())
            .with_db(prepare_db(&config))
            .build_mainnet();
        let stock = evm.transact(config.tx_env().expect("valid")).map_err(|e| e.to_string());
        match (off, stock) {
            (Ok(off), Ok(stock)) => {
                prop_assert_eq!(&off.result, &stock.result);
                prop_assert_eq!(&off.state, &stock.state);
                prop_assert!(off.shared_memory.is_none());
            }
            (Err(off), Err(stock)) => prop_assert!(off.to_string().contains(&stock), "{off} / {stock}"),
            (off, stock) => prop_assert!(false, "off {:?} / stock {:?}", off.map(|o| o.result), stock),
        }
    }
}

/// The property above ran on programs that mostly stayed clear of 0xE0–0xE4 (so the
/// comparison compared something) — checked by counting, on a fixed seed.
#[test]
fn most_cases_compare() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut compared, mut reached) = (0, 0);
    for _ in 0..150 {
        let case = case().new_tree(&mut runner).expect("a case").current();
        if stock_inspected(&case).1 {
            reached += 1;
        } else {
            compared += 1;
        }
    }
    assert!(
        compared > 140,
        "compared {compared}, reached 0xE0–0xE4 {reached}"
    );
}
