//! The frame hook against real revm transactions, and driven by hand.
//!
//! Every case runs its transactions through `transact_commit`, and through
//! `inspect_tx_commit` with a checking inspector and with the EIP-3155 tracer:
//! the hook must see every checkpoint settled once, innermost first, at revm's
//! depth; each frame's checkpoint settled as revm settled it, and no frame that
//! takes none (`CallTooDeep`, failed CREATE preconditions, collisions). The runs
//! must agree, and `HookedJournal<_, ()>` must agree with the stock `Journal`.
//!
//! A hook log is written `(` checkpoint, `)` commit, `!` revert, `C` / `D`
//! transaction committed / discarded. An executed transaction starts with `()`:
//! revm's pre-execution checkpoint, committed before the first frame.

use std::{
    collections::BTreeMap,
    fmt::Debug,
    io,
    sync::{Arc, Mutex},
};

use alloy_primitives::hex;
use proptest::prelude::*;
use revm::{
    bytecode::Bytecode,
    context::{BlockEnv, CfgEnv, Context, TxEnv},
    context_interface::{journaled_state::JournalCheckpoint, result::ExecutionResult, JournalTr},
    database::{CacheDB, EmptyDB, InMemoryDB},
    database_interface::{Database, DatabaseRef, ErasedError},
    inspector::{inspectors::TracerEip3155, Inspector, NoOpInspector},
    interpreter::{
        interpreter::EthInterpreter, CallInputs, CallOutcome, CreateInputs, CreateOutcome,
        InstructionResult, Interpreter,
    },
    primitives::{hardfork::SpecId, Address, Bytes, TxKind, B256, U256},
    state::AccountInfo,
    ExecuteCommitEvm, ExecuteEvm, InspectCommitEvm, MainBuilder, SystemCallEvm,
};
use shm_opcodes::{hooked_context, FrameHook, HookedContext, HookedJournal, TxOutcome};

const SPEC: SpecId = SpecId::OSAKA;
const GAS: u64 = 1_000_000;

const CALLER: Address = Address::with_last_byte(0xCA);
/// One ether. Transactions pay no gas price, so this only limits value.
const CALLER_BALANCE: u64 = 1_000_000_000_000_000_000;
/// No account lives here.
const NOBODY: Address = Address::with_last_byte(0xEE);
/// The identity precompile.
const IDENTITY: Address = Address::with_last_byte(0x04);
/// Loading this account fails in [`Failing`].
const FAIL: Address = Address::with_last_byte(0xFA);

const STORE_OK: Address = Address::with_last_byte(0xA1);
const REVERTER: Address = Address::with_last_byte(0xA2);
const INVALID: Address = Address::with_last_byte(0xA3);
const LOOP: Address = Address::with_last_byte(0xA4);
const PROXY: Address = Address::with_last_byte(0xB0);
const CALL_FAIL: Address = Address::with_last_byte(0xB1);
const FACTORY: Address = Address::with_last_byte(0xC0);
const FACTORY2: Address = Address::with_last_byte(0xC2);
const RECURSE: Address = Address::with_last_byte(0xD0);

/// The contracts every test world holds, with hand-written bytecode.
const CONTRACTS: [(Address, &[u8]); 9] = [
    // SSTORE(0, 1) STOP
    (STORE_OK, &hex!("6001600055 00")),
    // SSTORE(0, 2) REVERT(0, 0)
    (REVERTER, &hex!("6002600055 60006000fd")),
    // SSTORE(0, 3) INVALID
    (INVALID, &hex!("6003600055 fe")),
    // SSTORE(0, 4) 5: JUMPDEST JUMP(5): loops until out of gas
    (LOOP, &hex!("6004600055 5b 600556")),
    // CALL(gas = word 2, to = word 0, value = word 1) of its calldata, then
    // SSTORE(1, success) and SSTORE(0, 0xff) STOP
    (
        PROXY,
        &hex!("6000600060006000 602035 600035 604035 f1 600155 60ff600055 00"),
    ),
    // CALL(gas: all, to: FAIL, value 0, no args, no return) STOP
    (CALL_FAIL, &hex!("60006000600060006000 60fa 5a f1 00")),
    // CALLDATACOPY(0, 0, CALLDATASIZE) CREATE(0, 0, CALLDATASIZE) SSTORE(0, address) STOP
    (FACTORY, &hex!("3660006000 37 3660006000 f0 600055 00")),
    // The same with CREATE2(0, 0, CALLDATASIZE, salt 0)
    (
        FACTORY2,
        &hex!("3660006000 37 6000 3660006000 f5 600055 00"),
    ),
    // CALL(gas: all, to: ADDRESS, 0, 0, 0, 0, 0) STOP: recurses until revm refuses (depth 1024)
    (RECURSE, &hex!("5f5f5f5f5f 30 5a f1 00")),
];

/// Init code: SSTORE(0, 7) MSTORE8(0, 0x00) RETURN(0, 1): runtime code `00`.
const INIT_OK: &[u8] = &hex!("6007600055 6000600053 60016000f3");
/// Init code: SSTORE(0, 7) REVERT(0, 0).
const INIT_REVERT: &[u8] = &hex!("6007600055 60006000fd");
/// Init code: SSTORE(0, 7) RETURN(0, 0x6001): above EIP-170's 0x6000 bytes.
const INIT_TOO_LARGE: &[u8] = &hex!("6007600055 616001 6000 f3");
/// Init code: SSTORE(0, 7) MSTORE8(0, 0xef) RETURN(0, 1): code starting with 0xEF (EIP-3541).
const INIT_EF: &[u8] = &hex!("6007600055 60ef600053 60016000f3");

fn world() -> InMemoryDB {
    let mut db = InMemoryDB::default();
    let caller = AccountInfo::default().with_balance(U256::from(CALLER_BALANCE));
    db.insert_account_info(CALLER, caller);
    for (address, code) in CONTRACTS {
        let code = Bytecode::new_raw(Bytes::from_static(code));
        db.insert_account_info(address, AccountInfo::default().with_code(code));
    }
    db
}

/// Calldata for [`PROXY`].
fn proxy_call(to: Address, value: u64, gas: u64) -> Bytes {
    let to = B256::left_padding_from(to.as_slice()).0;
    let [value, gas] = [value, gas].map(|word| U256::from(word).to_be_bytes::<32>());
    [to, value, gas].concat().into()
}

/// A call from [`CALLER`]. A test transaction's nonce is relative: [`at_nonce`]
/// adds the caller's current nonce to it.
fn call(to: Address, data: Bytes) -> TxEnv {
    TxEnv::builder()
        .caller(CALLER)
        .kind(TxKind::Call(to))
        .data(data)
        .gas_limit(GAS)
        .build()
        .expect("valid legacy transaction")
}

fn create(init_code: &[u8]) -> TxEnv {
    TxEnv {
        kind: TxKind::Create,
        ..call(Address::ZERO, init_code.to_vec().into())
    }
}

fn at_nonce(tx: &TxEnv, current_nonce: u64) -> TxEnv {
    let mut tx = tx.clone();
    tx.nonce += current_nonce;
    tx
}

/// One hook call. Checkpoints get ids in the order they are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Open(u32),
    Commit(u32),
    Revert(u32),
    End(TxOutcome),
}

/// The recording hook: a stack of open checkpoint ids plus an event log. It
/// panics on misuse, so with its own stack every checkpoint is settled exactly
/// once, innermost first, and none is open at a transaction end.
#[derive(Clone, Debug, Default)]
struct Recorder {
    next_id: u32,
    open: Vec<u32>,
    events: Vec<Event>,
}

impl Recorder {
    fn settle(&mut self, settled: fn(u32) -> Event) {
        let last = self.events.last();
        let id = self.open.pop();
        let id = id.unwrap_or_else(|| panic!("settle with nothing open after {last:?}"));
        self.events.push(settled(id));
    }

    /// The log of each transaction in the compact string form.
    fn per_tx(&self) -> Vec<String> {
        let log: String = self
            .events
            .iter()
            .map(|event| match event {
                Event::Open(_) => '(',
                Event::Commit(_) => ')',
                Event::Revert(_) => '!',
                Event::End(TxOutcome::Committed) => 'C',
                Event::End(TxOutcome::Discarded) => 'D',
            })
            .collect();
        log.split_inclusive(['C', 'D']).map(String::from).collect()
    }
}

impl FrameHook for Recorder {
    fn checkpoint(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        self.open.push(id);
        self.events.push(Event::Open(id));
    }

    fn checkpoint_commit(&mut self) {
        self.settle(Event::Commit);
    }

    fn checkpoint_revert(&mut self) {
        self.settle(Event::Revert);
    }

    fn transaction_end(&mut self, outcome: TxOutcome) {
        let open = self.open.len();
        assert_eq!(open, 0, "transaction ended with {open} open");
        self.events.push(Event::End(outcome));
    }
}

/// The context every test EVM runs in.
type Ctx<DB> = HookedContext<DB, Recorder>;

/// A frame as revm reported it to the inspector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FrameSeen {
    create: bool,
    result: InstructionResult,
    /// The hook checkpoint the frame opened, if any.
    checkpoint: Option<u32>,
}

/// Inspector that checks the hook against revm, frame by frame (it panics on
/// a mismatch).
#[derive(Debug, Default)]
struct FrameCheck {
    /// Per started frame: the id its checkpoint would get, and the log length.
    started: Vec<(u32, usize)>,
    frames: Vec<FrameSeen>,
    steps: usize,
}

impl FrameCheck {
    fn start<DB: Database>(&mut self, ctx: &Ctx<DB>) {
        let hook = ctx.journaled_state.hook();
        self.started.push((hook.next_id, hook.events.len()));
    }

    /// `expect_checkpoint`: whether revm took a checkpoint for this frame.
    fn end<DB: Database>(
        &mut self,
        ctx: &Ctx<DB>,
        create: bool,
        result: InstructionResult,
        expect_checkpoint: bool,
    ) {
        let (id, log_len) = self.started.pop().expect("frame ended that never started");
        let hook = ctx.journaled_state.hook();
        let new_events = &hook.events[log_len..];
        let opened = new_events.contains(&Event::Open(id));
        // Whether revm took a checkpoint, against whether the hook saw one.
        assert_eq!(expect_checkpoint, opened, "{result:?}");
        if opened {
            let settled = if result.is_ok() {
                Event::Commit(id)
            } else {
                Event::Revert(id)
            };
            assert_eq!(
                new_events.last(),
                Some(&settled),
                "{result:?}: {new_events:?}"
            );
        }
        check_depth(ctx, "frame end");
        self.frames.push(FrameSeen {
            create,
            result,
            checkpoint: opened.then_some(id),
        });
    }
}

fn check_depth<DB: Database>(ctx: &Ctx<DB>, at: &str) {
    let hook_depth = ctx.journaled_state.hook().open.len();
    assert_eq!(
        hook_depth,
        ctx.journaled_state.depth(),
        "{at}: hook against revm"
    );
}

impl<DB: Database> Inspector<Ctx<DB>, EthInterpreter> for FrameCheck {
    fn step(&mut self, _: &mut Interpreter, ctx: &mut Ctx<DB>) {
        self.steps += 1;
        check_depth(ctx, "step");
    }

    fn call(&mut self, ctx: &mut Ctx<DB>, _: &mut CallInputs) -> Option<CallOutcome> {
        self.start(ctx);
        None
    }

    fn call_end(&mut self, ctx: &mut Ctx<DB>, _: &CallInputs, outcome: &mut CallOutcome) {
        let result = outcome.result.result;
        // `make_call_frame` checks the depth before it takes the checkpoint.
        self.end(ctx, false, result, result != InstructionResult::CallTooDeep);
    }

    fn create(&mut self, ctx: &mut Ctx<DB>, _: &mut CreateInputs) -> Option<CreateOutcome> {
        self.start(ctx);
        None
    }

    fn create_end(&mut self, ctx: &mut Ctx<DB>, _: &CreateInputs, outcome: &mut CreateOutcome) {
        // A create frame has an address exactly when `create_account_checkpoint`
        // succeeded; every earlier failure reports none.
        let opened = outcome.address.is_some();
        self.end(ctx, true, outcome.result.result, opened);
    }
}

type Outcome = Result<ExecutionResult, String>;

fn hooked<DB: Database, H: FrameHook + Default>(db: DB, hook: H) -> HookedContext<DB, H> {
    let mut ctx = hooked_context(db, SPEC, hook);
    // The recursion test needs more gas than EIP-7825's cap.
    ctx.cfg.tx_gas_limit_cap = Some(u64::MAX);
    ctx
}

fn caller_nonce<E>(db: &CacheDB<E>) -> u64 {
    db.cache
        .accounts
        .get(&CALLER)
        .map_or(0, |account| account.info.nonce)
}

struct Run {
    outcomes: Vec<Outcome>,
    hook: Recorder,
    db: InMemoryDB,
}

/// `txs` through `inspect_tx_commit` with `inspector` when `inspect`, else
/// through `transact_commit` (which does not call the inspector).
fn run<I: Inspector<Ctx<InMemoryDB>>>(txs: &[TxEnv], inspector: I, inspect: bool) -> (Run, I) {
    let mut evm = hooked(world(), Recorder::default()).build_mainnet_with_inspector(inspector);
    let mut outcomes = Vec::new();
    for tx in txs {
        let env = at_nonce(tx, caller_nonce(evm.ctx.journaled_state.db()));
        let outcome = if inspect {
            evm.inspect_tx_commit(env)
        } else {
            evm.transact_commit(env)
        };
        outcomes.push(outcome.map_err(|e| format!("{e:?}")));
        assert_eq!(evm.ctx.journaled_state.open_checkpoints(), 0);
    }
    let run = Run {
        outcomes,
        hook: evm.ctx.journaled_state.hook().clone(),
        db: evm.ctx.journaled_state.db().clone(),
    };
    (run, evm.inspector)
}

/// A `Write` the tracer can own while the test still reads it.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The accounts of the database, comparable (`AccountInfo` compares balance,
/// nonce and code hash).
fn dump(db: &InMemoryDB) -> BTreeMap<&Address, impl PartialEq + Debug + '_> {
    let accounts = db.cache.accounts.iter();
    accounts
        .map(|(address, a)| {
            let storage = BTreeMap::from_iter(&a.storage);
            (address, (&a.account_state, &a.info, storage))
        })
        .collect()
}

/// The stock journal and `HookedJournal<_, ()>` agree on every result and on
/// the state each transaction produces.
fn assert_same_as_stock(txs: &[TxEnv]) {
    let mut stock = Context::<BlockEnv, TxEnv, CfgEnv, InMemoryDB>::new(world(), SPEC);
    stock.cfg.tx_gas_limit_cap = Some(u64::MAX);
    let mut stock = stock.build_mainnet();
    let mut unit = hooked(world(), ()).build_mainnet();
    for tx in txs {
        let nonce = caller_nonce(&stock.ctx.journaled_state.database);
        assert_eq!(nonce, caller_nonce(unit.ctx.journaled_state.db()));
        let a = stock.transact(at_nonce(tx, nonce));
        let b = unit.transact(at_nonce(tx, nonce));
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.result, b.result, "{tx:?}");
                assert_eq!(a.state, b.state, "{tx:?}");
                stock.commit(a.state);
                unit.commit(b.state);
            }
            (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{tx:?}"),
            (a, b) => panic!("stock {a:?} but hooked {b:?}"),
        }
    }
    assert_eq!(
        dump(&stock.ctx.journaled_state.database),
        dump(unit.ctx.journaled_state.db())
    );
}

/// Runs `txs` every way, checks every invariant, checks the per-transaction
/// hook logs against `expected`, and returns the committed database.
fn check(txs: &[TxEnv], expected: &[&str]) -> (InMemoryDB, Vec<Outcome>, FrameCheck) {
    let (plain, _) = run(txs, NoOpInspector, false);
    let (inspected, frames) = run(txs, FrameCheck::default(), true);
    let buf = SharedBuf::default();
    let (traced, _) = run(txs, TracerEip3155::new(Box::new(buf.clone())), true);
    let trace = String::from_utf8(buf.0.lock().expect("not poisoned").clone()).expect("utf-8");

    assert!(frames.started.is_empty(), "frames left unfinished");
    // Each log ends with its transaction's end, as every expected one does.
    assert_eq!(plain.hook.per_tx(), expected, "hook log");
    for other in [&inspected, &traced] {
        assert_eq!(plain.hook.events, other.hook.events);
        assert_eq!(plain.outcomes, other.outcomes);
        assert_eq!(dump(&plain.db), dump(&other.db));
    }
    // The tracer really ran: one JSON line per executed instruction at least.
    if frames.steps > 0 {
        assert!(trace.lines().count() >= frames.steps, "{trace}");
    }
    assert_same_as_stock(txs);
    (plain.db, plain.outcomes, frames)
}

fn slot(db: &InMemoryDB, address: Address, key: u64) -> U256 {
    db.cache
        .accounts
        .get(&address)
        .and_then(|account| account.storage.get(&U256::from(key)).copied())
        .unwrap_or_default()
}

fn code(db: &InMemoryDB, address: Address) -> Option<Bytes> {
    let account = db.cache.accounts.get(&address)?;
    db.cache
        .contracts
        .get(&account.info.code_hash)
        .map(|code| code.original_bytes())
        .filter(|bytes| !bytes.is_empty())
}

fn success(outcome: &Outcome) -> bool {
    matches!(outcome, Ok(result) if result.is_success())
}

/// `tx` alone in a fresh world, which must succeed with hook log `log`.
fn check_ok(tx: TxEnv, log: &str) -> (InMemoryDB, FrameCheck) {
    let (db, outcomes, frames) = check(&[tx], &[log]);
    assert!(success(&outcomes[0]), "{log}: {:?}", outcomes[0]);
    (db, frames)
}

/// A failed inner call reverts its frame only; the outer frame goes on.
#[test]
fn inner_calls_commit_or_revert() {
    for (target, value, gas, why) in [
        (IDENTITY, 0, GAS, InstructionResult::Return),
        // An account without code.
        (NOBODY, 0, GAS, InstructionResult::Stop),
        (REVERTER, 0, GAS, InstructionResult::Revert),
        (INVALID, 0, 100_000, InstructionResult::InvalidFEOpcode),
        (LOOP, 0, 100_000, InstructionResult::OutOfGas),
        // PROXY holds no ether.
        (STORE_OK, 1, GAS, InstructionResult::OutOfFunds),
        // Identity costs 15 gas; one is not enough.
        (IDENTITY, 0, 1, InstructionResult::PrecompileOOG),
    ] {
        let ok = why.is_ok();
        let log = if ok { "()(())C" } else { "()((!)C" };
        let (db, frames) = check_ok(call(PROXY, proxy_call(target, value, gas)), log);
        // A failed inner frame's SSTORE is undone; the outer frame's stays.
        assert_eq!(slot(&db, target, 0), U256::ZERO, "{why:?}");
        let success = U256::from(u8::from(ok));
        assert_eq!(slot(&db, PROXY, 1), success, "{why:?}: CALL's result");
        assert_eq!(slot(&db, PROXY, 0), U256::from(0xff), "{why:?}");
        assert_eq!(frames.frames[0].result, why);
    }
}

/// CREATE or CREATE2 from a factory, with the address the new contract gets.
fn factory_create(factory: Address, init: &[u8]) -> (TxEnv, Address) {
    let created = if factory == FACTORY {
        // Accounts inserted into the world have nonce 0.
        FACTORY.create(0)
    } else {
        FACTORY2.create2_from_code(B256::ZERO, init)
    };
    (call(factory, init.to_vec().into()), created)
}

/// A failed CREATE reverts the create frame only.
#[test]
fn create_and_create2_commit_or_revert() {
    let cases: [(&[u8], InstructionResult); 4] = [
        (INIT_OK, InstructionResult::Return),
        (INIT_REVERT, InstructionResult::Revert),
        // Both of these return successfully from the init code; `return_create`
        // then reverts the checkpoint.
        (INIT_TOO_LARGE, InstructionResult::CreateContractSizeLimit),
        (INIT_EF, InstructionResult::CreateContractStartingWithEF),
    ];
    for factory in [FACTORY, FACTORY2] {
        for (init, why) in cases {
            let ok = why == InstructionResult::Return;
            let (tx, created) = factory_create(factory, init);
            let (db, frames) = check_ok(tx, if ok { "()(())C" } else { "()((!)C" });
            let pushed = if ok {
                U256::from_be_slice(created.as_slice())
            } else {
                U256::ZERO
            };
            assert_eq!(slot(&db, factory, 0), pushed, "{why:?}: CREATE's push");
            assert_eq!(
                slot(&db, created, 0),
                U256::from(7 * u8::from(ok)),
                "{why:?}"
            );
            let runtime = ok.then(|| Bytes::from_static(&[0x00]));
            assert_eq!(code(&db, created), runtime, "{why:?}");
            assert!(frames.frames[0].create);
            assert_eq!(frames.frames[0].result, why);
        }
    }
}

#[test]
fn top_level_calls_and_creates() {
    let (db, frames) = check_ok(call(STORE_OK, Bytes::new()), "()()C");
    assert_eq!(slot(&db, STORE_OK, 0), U256::from(1));
    assert_eq!(frames.frames.len(), 1);
    assert_eq!(frames.frames[0].checkpoint, Some(1));
    // An account without code as the transaction's own target.
    check_ok(call(NOBODY, Bytes::new()), "()()C");

    let created = CALLER.create(0);
    let (db, _) = check_ok(create(INIT_OK), "()()C");
    assert_eq!(slot(&db, created, 0), U256::from(7));

    let (db, outcomes, _) = check(&[create(INIT_EF)], &["()(!C"]);
    assert!(!success(&outcomes[0]));
    assert_eq!(code(&db, created), None);

    let (db, outcomes, _) = check(&[call(REVERTER, Bytes::new())], &["()(!C"]);
    assert!(matches!(outcomes[0], Ok(ExecutionResult::Revert { .. })));
    assert_eq!(slot(&db, REVERTER, 0), U256::ZERO);
    // The transaction still counts: nonce bumped.
    assert_eq!(caller_nonce(&db), 1);
}

#[test]
fn recursion_to_the_depth_limit() {
    // Enough gas that 63/64 forwarding still reaches depth 1024: each level
    // keeps 1/64 plus about 114 gas, so the start needs about 7,300 / (63/64)^1024.
    let tx = TxEnv {
        gas_limit: 100_000_000_000,
        ..call(RECURSE, Bytes::new())
    };
    // Frames at depths 0..=1024 each take a checkpoint (the log shows the hook
    // 1025 deep); the CALL from depth 1024 is refused before any checkpoint.
    let (opened, settled) = ("(".repeat(1025), ")".repeat(1025));
    let (_, frames) = check_ok(tx, &format!("(){opened}{settled}C"));
    assert_eq!(frames.frames.len(), 1026);
    assert_eq!(frames.frames[0].result, InstructionResult::CallTooDeep);
    assert_eq!(frames.frames[0].checkpoint, None);
}

/// Invalid transactions are discarded, even first and back to back. The
/// second CREATE2 hits the account the first one made: revm opens and reverts
/// a checkpoint inside `create_account_checkpoint`, which the hook must not see.
#[test]
fn many_transactions_in_one_evm() {
    let (tx_create2, created) = factory_create(FACTORY2, INIT_OK);
    let nonce = |nonce| TxEnv {
        nonce,
        ..call(STORE_OK, Bytes::new())
    };
    let too_much_value = TxEnv {
        value: U256::from(CALLER_BALANCE + 1),
        ..call(STORE_OK, Bytes::new())
    };
    let txs = [
        nonce(5),
        too_much_value,
        call(STORE_OK, Bytes::new()),
        call(PROXY, proxy_call(REVERTER, 0, GAS)),
        nonce(9),
        tx_create2.clone(),
        call(REVERTER, Bytes::new()),
        tx_create2,
        call(PROXY, proxy_call(IDENTITY, 0, 1)),
        create(INIT_TOO_LARGE),
    ];
    let logs = [
        "D", "D", "()()C", "()((!)C", "D", "()(())C", "()(!C", "()()C", "()((!)C", "()(!C",
    ];
    let (db, outcomes, frames) = check(&txs, &logs);
    assert!(outcomes[0].as_ref().unwrap_err().contains("NonceTooHigh"));
    let error = outcomes[1].as_ref().unwrap_err();
    assert!(error.contains("LackOfFundForMaxFee"), "{error}");
    assert!([2, 5, 7].iter().all(|&i| success(&outcomes[i])));
    assert_eq!(caller_nonce(&db), 7, "only the valid transactions count");
    let collision = frames.frames.iter().find(|f| f.checkpoint.is_none());
    let collision = collision.map(|f| (f.create, f.result));
    assert_eq!(collision, Some((true, InstructionResult::CreateCollision)));
    let pushed = slot(&db, FACTORY2, 0);
    assert_eq!(pushed, U256::ZERO, "the second CREATE2 pushed 0");
    assert_eq!(code(&db, created), Some(Bytes::from_static(&[0x00])));
}

#[test]
fn system_call_goes_through_the_hook() {
    let mut evm = hooked(world(), Recorder::default()).build_mainnet();
    let result = evm.system_call_one(STORE_OK, Bytes::new()).unwrap();
    assert!(result.is_success());
    let hook = evm.ctx.journaled_state.hook();
    assert_eq!(hook.per_tx(), ["()()C"]);
    // The system call's checkpoint is the one `run_system_call` opens.
    let state = evm.finalize();
    let stored = state[&STORE_OK].storage[&U256::ZERO].present_value;
    assert_eq!(stored, U256::from(1));
}

/// Under [`world`]'s accounts (`CacheDB<Failing>`): loading [`FAIL`] fails,
/// every other account is empty.
#[derive(Debug)]
struct Failing;

impl DatabaseRef for Failing {
    type Error = ErasedError;
    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, ErasedError> {
        let unavailable = || ErasedError::new(io::Error::other("database unavailable"));
        (address != FAIL).then_some(None).ok_or_else(unavailable)
    }
    fn code_by_hash_ref(&self, _: B256) -> Result<Bytecode, ErasedError> {
        Ok(Bytecode::default())
    }
    fn storage_ref(&self, _: Address, _: U256) -> Result<U256, ErasedError> {
        Ok(U256::ZERO)
    }
    fn block_hash_ref(&self, _: u64) -> Result<B256, ErasedError> {
        Ok(B256::ZERO)
    }
}

#[test]
fn database_error_mid_transaction_discards_with_checkpoints_open() {
    // PROXY -> CALL_FAIL -> FAIL: loading FAIL fails inside CALL_FAIL, which
    // halts; the error surfaces while PROXY's frame is still open.
    let tx = call(PROXY, proxy_call(CALL_FAIL, 0, GAS));
    let failing = || CacheDB {
        cache: world().cache,
        db: Failing,
    };

    let mut evm = hooked(failing(), Recorder::default()).build_mainnet();
    let err = format!("{:?}", evm.transact_commit(tx.clone()).unwrap_err());
    assert!(err.contains("database unavailable"), "{err}");
    let hook = evm.ctx.journaled_state.hook().clone();
    assert_eq!(hook.per_tx(), ["()((!!D"]);
    // Nothing of the transaction reached the database.
    assert_eq!(caller_nonce(evm.ctx.journaled_state.db()), 0);
    assert_eq!(evm.ctx.journaled_state.depth(), 0);

    let mut evm =
        hooked(failing(), Recorder::default()).build_mainnet_with_inspector(FrameCheck::default());
    assert!(evm.inspect_tx_commit(tx).is_err());
    assert_eq!(evm.ctx.journaled_state.hook().events, hook.events);
}

/// A journal driven by hand rather than by revm.
fn hand_journal() -> HookedJournal<EmptyDB, Recorder> {
    let mut journal = HookedJournal::new_with_hook(EmptyDB::default(), Recorder::default());
    journal.set_spec_id(SPEC);
    journal
}

/// Drives `j` by one step: `(` checkpoint, `)` commit, `!` revert the last
/// checkpoint taken (or a default one when none is), `C` / `D` commit / discard
/// the transaction, `F` finalize, `X` clear. `taken` holds what is open.
fn drive(j: &mut HookedJournal<EmptyDB, Recorder>, taken: &mut Vec<JournalCheckpoint>, op: char) {
    if op == '(' {
        return taken.push(j.checkpoint());
    }
    let last = taken.pop().unwrap_or_default();
    match op {
        ')' => j.checkpoint_commit(),
        '!' => j.checkpoint_revert(last),
        'C' => j.commit_tx(),
        'D' => j.discard_tx(),
        'F' => drop(j.finalize()),
        _ => j.clear(),
    }
    if "CDFX".contains(op) {
        taken.clear();
    }
}

/// Each script must leave the hook log given, with nothing open; then the hook
/// can be taken out of the journal, or split from it.
#[test]
fn a_journal_driven_by_hand() {
    for (script, log) in [
        // Nested checkpoints are reported in order.
        ("((!()!C", "((!()!C"),
        // Settles without an open checkpoint are not reported.
        (")!", ""),
        // A discard reverts what is open, innermost first; it may be
        // repeated, and each one is reported.
        ("(()(DD", "(()(!!DD"),
        ("((C", "(())C"),
        // `finalize` ends only a transaction left open; `clear` goes
        // through `finalize`.
        ("F(F(X", "()C()C"),
    ] {
        let (mut j, mut taken) = (hand_journal(), Vec::new());
        script.chars().for_each(|op| drive(&mut j, &mut taken, op));
        assert_eq!(j.hook().per_tx().concat(), log, "{script}");
        assert_eq!((j.depth(), j.open_checkpoints()), (0, 0), "{script}");
        assert_eq!(std::mem::take(j.hook_mut()).per_tx().concat(), log);
        j.checkpoint();
        let (inner, hook) = j.into_parts();
        assert_eq!((hook.per_tx(), inner.depth), (vec!["(".into()], 1));
    }
}

/// A hook that only writes down what it hears, so it can be handed a journal
/// with checkpoints open.
#[derive(Default)]
struct Heard(String);

impl FrameHook for Heard {
    fn checkpoint(&mut self) {
        self.0.push('(');
    }
    fn checkpoint_commit(&mut self) {
        self.0.push(')');
    }
    fn checkpoint_revert(&mut self) {
        self.0.push('!');
    }
    fn transaction_end(&mut self, _outcome: TxOutcome) {}
}

#[test]
fn open_checkpoints_belong_to_the_journal_not_the_hook() {
    let mut j = HookedJournal::new_with_hook(EmptyDB::default(), Heard::default());
    j.checkpoint();
    let old = std::mem::take(j.hook_mut());
    assert_eq!((old.0.as_str(), j.open_checkpoints()), ("(", 1));
    j.checkpoint_commit();
    assert_eq!((j.hook().0.as_str(), j.open_checkpoints()), (")", 0));
}

/// The ops of [`drive`] but `X`, weighted.
fn op() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => Just('('),
        3 => Just(')'),
        3 => Just('!'),
        1 => Just('C'),
        1 => Just('D'),
        1 => Just('F'),
    ]
}

proptest! {
    /// Any sequence of ops: the hook still sees well-paired, LIFO checkpoints,
    /// at revm's journal depth, and one transaction end per `commit_tx` /
    /// `discard_tx` and per `finalize` with checkpoints open.
    #[test]
    fn hook_depth_tracks_revm_depth(ops in prop::collection::vec(op(), 0..200)) {
        let (mut journal, mut taken, mut expected_ends) = (hand_journal(), Vec::new(), Vec::new());
        for op in ops {
            match op {
                'C' => expected_ends.push(TxOutcome::Committed),
                'D' => expected_ends.push(TxOutcome::Discarded),
                'F' if !taken.is_empty() => expected_ends.push(TxOutcome::Committed),
                _ => {}
            }
            drive(&mut journal, &mut taken, op);
            prop_assert_eq!(journal.hook().open.len(), journal.depth());
            prop_assert_eq!(journal.open_checkpoints(), journal.depth());
            prop_assert_eq!(taken.len(), journal.depth());
        }
        let hook = journal.hook();
        let ends: Vec<_> = hook.events.iter().filter_map(|event| match event {
            Event::End(outcome) => Some(*outcome),
            _ => None,
        }).collect();
        prop_assert_eq!(ends, expected_ends);
    }
}
