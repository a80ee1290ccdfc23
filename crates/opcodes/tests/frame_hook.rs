//! The frame hook against real revm transactions.
//!
//! Every case runs the same transactions three ways: `transact_commit`,
//! `inspect_tx_commit` with a checking inspector, and `inspect_tx_commit` with
//! the EIP-3155 tracer. For each it checks that
//! - every checkpoint the hook sees is settled exactly once, innermost first,
//!   and none is open when the transaction ends;
//! - the hook's depth equals revm's journal depth at every instruction and at
//!   every frame end;
//! - each frame that took a checkpoint is settled the way revm settled it
//!   (committed iff its outcome is ok), and frames that take no checkpoint
//!   (`CallTooDeep`, failed CREATE preconditions, collisions) are not seen;
//! - the three runs give the same hook log and the same results;
//! - the stock `Journal` and `HookedJournal<_, ()>` give identical results and
//!   identical state.
//!
//! The expected hook log of each transaction is written as a string:
//! `(` checkpoint, `)` commit, `!` revert, `C` / `D` transaction committed /
//! discarded. Every executed transaction starts with `()`: revm's
//! pre-execution checkpoint, committed before the first frame.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use revm::{
    bytecode::Bytecode,
    context::{BlockEnv, CfgEnv, Context, TxEnv},
    context_interface::{result::ExecutionResult, JournalTr},
    database::InMemoryDB,
    database_interface::{DBErrorMarker, Database},
    inspector::{inspectors::TracerEip3155, Inspector},
    interpreter::{
        interpreter::EthInterpreter, CallInputs, CallOutcome, CreateInputs, CreateOutcome,
        InstructionResult, Interpreter,
    },
    primitives::{hardfork::SpecId, Address, Bytes, TxKind, B256, U256},
    state::AccountInfo,
    DatabaseCommit, ExecuteCommitEvm, ExecuteEvm, InspectCommitEvm, MainBuilder, SystemCallEvm,
};
use shm_opcodes::{hooked_context, FrameHook, HookedContext, TxOutcome};

const SPEC: SpecId = SpecId::OSAKA;
const GAS: u64 = 1_000_000;

const CALLER: Address = Address::with_last_byte(0xCA);
/// One ether. Transactions pay no gas price, so this only limits value.
const CALLER_BALANCE: u64 = 1_000_000_000_000_000_000;
/// No account lives here.
const NOBODY: Address = Address::with_last_byte(0xEE);
/// The identity precompile.
const IDENTITY: Address = Address::with_last_byte(0x04);
/// Loading this account fails in [`FailingDb`].
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
fn contracts() -> Vec<(Address, Vec<u8>)> {
    let mut call_fail = vec![
        0x60, 0x00, // PUSH1 0     retSize
        0x60, 0x00, // PUSH1 0     retOffset
        0x60, 0x00, // PUSH1 0     argsSize
        0x60, 0x00, // PUSH1 0     argsOffset
        0x60, 0x00, // PUSH1 0     value
        0x73, // PUSH20 FAIL
    ];
    call_fail.extend_from_slice(FAIL.as_slice());
    call_fail.extend_from_slice(&[
        0x5a, // GAS
        0xf1, // CALL
        0x00, // STOP
    ]);
    vec![
        (
            STORE_OK,
            vec![
                0x60, 0x01, 0x60, 0x00, 0x55, // SSTORE(0, 1)
                0x00, // STOP
            ],
        ),
        (
            REVERTER,
            vec![
                0x60, 0x02, 0x60, 0x00, 0x55, // SSTORE(0, 2)
                0x60, 0x00, 0x60, 0x00, 0xfd, // REVERT(0, 0)
            ],
        ),
        (
            INVALID,
            vec![
                0x60, 0x03, 0x60, 0x00, 0x55, // SSTORE(0, 3)
                0xfe, // INVALID
            ],
        ),
        (
            LOOP,
            vec![
                0x60, 0x04, 0x60, 0x00, 0x55, // SSTORE(0, 4)
                0x5b, // 5: JUMPDEST
                0x60, 0x05, 0x56, // JUMP(5): loops until out of gas
            ],
        ),
        (
            // CALL(gas = word 2, to = word 0, value = word 1) of its calldata,
            // then SSTORE(1, success) and SSTORE(0, 0xff).
            PROXY,
            vec![
                0x60, 0x00, // PUSH1 0       retSize
                0x60, 0x00, // PUSH1 0       retOffset
                0x60, 0x00, // PUSH1 0       argsSize
                0x60, 0x00, // PUSH1 0       argsOffset
                0x60, 0x20, 0x35, // CALLDATALOAD(32)  value
                0x60, 0x00, 0x35, // CALLDATALOAD(0)   to
                0x60, 0x40, 0x35, // CALLDATALOAD(64)  gas
                0xf1, // CALL
                0x60, 0x01, 0x55, // SSTORE(1, success)
                0x60, 0xff, 0x60, 0x00, 0x55, // SSTORE(0, 0xff)
                0x00, // STOP
            ],
        ),
        (CALL_FAIL, call_fail),
        (
            // CREATE(value 0) with its calldata as init code; SSTORE(0, address).
            FACTORY,
            vec![
                0x36, 0x60, 0x00, 0x60, 0x00, 0x37, // CALLDATACOPY(0, 0, CALLDATASIZE)
                0x36, 0x60, 0x00, 0x60, 0x00, // size, offset 0, value 0
                0xf0, // CREATE
                0x60, 0x00, 0x55, // SSTORE(0, address)
                0x00, // STOP
            ],
        ),
        (
            // CREATE2(value 0, salt 0) with its calldata as init code; SSTORE(0, address).
            FACTORY2,
            vec![
                0x36, 0x60, 0x00, 0x60, 0x00, 0x37, // CALLDATACOPY(0, 0, CALLDATASIZE)
                0x60, 0x00, // salt 0
                0x36, 0x60, 0x00, 0x60, 0x00, // size, offset 0, value 0
                0xf5, // CREATE2
                0x60, 0x00, 0x55, // SSTORE(0, address)
                0x00, // STOP
            ],
        ),
        (
            // Calls itself with all its gas until revm refuses (depth 1024).
            RECURSE,
            vec![
                0x5f, 0x5f, 0x5f, 0x5f, 0x5f, // PUSH0 x5: retSize .. value
                0x30, // ADDRESS
                0x5a, // GAS
                0xf1, // CALL
                0x00, // STOP
            ],
        ),
    ]
}

/// Init code: SSTORE(0, 7), then return the one-byte runtime code `00`.
const INIT_OK: &[u8] = &[
    0x60, 0x07, 0x60, 0x00, 0x55, // SSTORE(0, 7)
    0x60, 0x00, 0x60, 0x00, 0x53, // MSTORE8(0, 0x00)
    0x60, 0x01, 0x60, 0x00, 0xf3, // RETURN(0, 1)
];
/// Init code: SSTORE(0, 7), then REVERT.
const INIT_REVERT: &[u8] = &[
    0x60, 0x07, 0x60, 0x00, 0x55, // SSTORE(0, 7)
    0x60, 0x00, 0x60, 0x00, 0xfd, // REVERT(0, 0)
];
/// Init code: SSTORE(0, 7), then return 0x6001 bytes (above EIP-170's 0x6000).
const INIT_TOO_LARGE: &[u8] = &[
    0x60, 0x07, 0x60, 0x00, 0x55, // SSTORE(0, 7)
    0x61, 0x60, 0x01, 0x60, 0x00, 0xf3, // RETURN(0, 0x6001)
];
/// Init code: SSTORE(0, 7), then return code starting with 0xEF (EIP-3541).
const INIT_EF: &[u8] = &[
    0x60, 0x07, 0x60, 0x00, 0x55, // SSTORE(0, 7)
    0x60, 0xef, 0x60, 0x00, 0x53, // MSTORE8(0, 0xef)
    0x60, 0x01, 0x60, 0x00, 0xf3, // RETURN(0, 1)
];

fn world() -> InMemoryDB {
    let mut db = InMemoryDB::default();
    db.insert_account_info(
        CALLER,
        AccountInfo::default().with_balance(U256::from(CALLER_BALANCE)),
    );
    for (address, code) in contracts() {
        db.insert_account_info(
            address,
            AccountInfo::default().with_code(Bytecode::new_raw(code.into())),
        );
    }
    db
}

/// Calldata for [`PROXY`].
fn proxy_call(to: Address, value: u64, gas: u64) -> Bytes {
    let mut data = Vec::with_capacity(96);
    data.extend_from_slice(B256::left_padding_from(to.as_slice()).as_slice());
    data.extend_from_slice(&U256::from(value).to_be_bytes::<32>());
    data.extend_from_slice(&U256::from(gas).to_be_bytes::<32>());
    data.into()
}

/// A transaction from [`CALLER`]; its nonce is the caller's current nonce
/// plus `nonce_offset`.
#[derive(Clone, Debug)]
struct TxSpec {
    kind: TxKind,
    data: Bytes,
    value: u64,
    gas: u64,
    nonce_offset: u64,
}

fn call(to: Address, data: Bytes) -> TxSpec {
    TxSpec {
        kind: TxKind::Call(to),
        data,
        value: 0,
        gas: GAS,
        nonce_offset: 0,
    }
}

fn create(init_code: &[u8]) -> TxSpec {
    TxSpec {
        kind: TxKind::Create,
        ..call(Address::ZERO, init_code.to_vec().into())
    }
}

impl TxSpec {
    fn env(&self, current_nonce: u64) -> TxEnv {
        TxEnv::builder()
            .caller(CALLER)
            .kind(self.kind)
            .data(self.data.clone())
            .value(U256::from(self.value))
            .gas_limit(self.gas)
            .nonce(current_nonce + self.nonce_offset)
            .build()
            .expect("valid legacy transaction")
    }
}

/// One hook call. Checkpoints get ids in the order they are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Open(u32),
    Commit(u32),
    Revert(u32),
    End(TxOutcome),
}

/// The recording hook: a stack of open checkpoint ids plus an event log.
#[derive(Clone, Debug, Default)]
struct Recorder {
    next_id: u32,
    open: Vec<u32>,
    max_depth: usize,
    events: Vec<Event>,
    violations: Vec<String>,
}

impl Recorder {
    fn depth(&self) -> usize {
        self.open.len()
    }

    fn settle(&mut self, revert: bool) {
        match self.open.pop() {
            Some(id) if revert => self.events.push(Event::Revert(id)),
            Some(id) => self.events.push(Event::Commit(id)),
            None => self.violations.push(format!(
                "settle with nothing open after {:?}",
                self.events.last()
            )),
        }
    }

    /// The log of each transaction in the compact string form.
    fn per_tx(&self) -> Vec<String> {
        let mut out = vec![String::new()];
        for event in &self.events {
            let text = out.last_mut().expect("never empty");
            match event {
                Event::Open(_) => text.push('('),
                Event::Commit(_) => text.push(')'),
                Event::Revert(_) => text.push('!'),
                Event::End(TxOutcome::Committed) => text.push('C'),
                Event::End(TxOutcome::Discarded) => text.push('D'),
            }
            if matches!(event, Event::End(_)) {
                out.push(String::new());
            }
        }
        out.pop();
        out
    }
}

impl FrameHook for Recorder {
    fn checkpoint(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        self.open.push(id);
        self.max_depth = self.max_depth.max(self.open.len());
        self.events.push(Event::Open(id));
    }

    fn checkpoint_commit(&mut self) {
        self.settle(false);
    }

    fn checkpoint_revert(&mut self) {
        self.settle(true);
    }

    fn transaction_end(&mut self, outcome: TxOutcome) {
        if !self.open.is_empty() {
            self.violations
                .push(format!("transaction ended with {} open", self.open.len()));
        }
        self.events.push(Event::End(outcome));
    }
}

/// Checks, independently of the recorder's own stack, that in every
/// transaction each checkpoint is settled exactly once, innermost first, and
/// nothing is open at its end.
fn assert_well_paired(events: &[Event]) {
    let mut stack = Vec::new();
    let mut settled = std::collections::HashSet::new();
    for event in events {
        match *event {
            Event::Open(id) => stack.push(id),
            Event::Commit(id) | Event::Revert(id) => {
                assert_eq!(stack.pop(), Some(id), "settled out of LIFO order");
                assert!(settled.insert(id), "checkpoint {id} settled twice");
            }
            Event::End(_) => assert!(stack.is_empty(), "open checkpoints at tx end"),
        }
    }
    assert!(stack.is_empty(), "checkpoints left open: {stack:?}");
    assert_eq!(
        events.last().map(|e| matches!(e, Event::End(_))),
        Some(true)
    );
}

/// A frame as revm reported it to the inspector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FrameSeen {
    create: bool,
    result: InstructionResult,
    /// The hook checkpoint the frame opened, if any.
    checkpoint: Option<u32>,
}

/// Inspector that checks the hook against revm, frame by frame.
#[derive(Debug, Default)]
struct FrameCheck {
    /// Per started frame: the id its checkpoint would get, and the log length.
    started: Vec<(u32, usize)>,
    frames: Vec<FrameSeen>,
    steps: usize,
    mismatches: Vec<String>,
}

impl FrameCheck {
    fn start<DB: Database>(&mut self, ctx: &HookedContext<DB, Recorder>) {
        let hook = ctx.journaled_state.hook();
        self.started.push((hook.next_id, hook.events.len()));
    }

    /// `expect_checkpoint`: whether revm took a checkpoint for this frame;
    /// `ok`: whether revm committed it.
    fn end<DB: Database>(
        &mut self,
        ctx: &HookedContext<DB, Recorder>,
        create: bool,
        result: InstructionResult,
        expect_checkpoint: bool,
    ) {
        let Some((id, log_len)) = self.started.pop() else {
            self.mismatches
                .push("frame ended that never started".into());
            return;
        };
        let hook = ctx.journaled_state.hook();
        let new_events = &hook.events[log_len..];
        let opened = new_events.contains(&Event::Open(id));
        if opened != expect_checkpoint {
            self.mismatches.push(format!(
                "{result:?}: revm took a checkpoint: {expect_checkpoint}, hook saw one: {opened}"
            ));
        }
        if opened {
            let settled = if result.is_ok() {
                Event::Commit(id)
            } else {
                Event::Revert(id)
            };
            if new_events.last() != Some(&settled) {
                self.mismatches.push(format!(
                    "{result:?}: expected {settled:?} last, hook log {new_events:?}"
                ));
            }
        }
        self.check_depth(ctx, "frame end");
        self.frames.push(FrameSeen {
            create,
            result,
            checkpoint: opened.then_some(id),
        });
    }

    fn check_depth<DB: Database>(&mut self, ctx: &HookedContext<DB, Recorder>, at: &str) {
        let hook_depth = ctx.journaled_state.hook().depth();
        let revm_depth = ctx.journaled_state.depth();
        if hook_depth != revm_depth {
            self.mismatches.push(format!(
                "{at}: hook depth {hook_depth}, revm depth {revm_depth}"
            ));
        }
    }
}

impl<DB: Database> Inspector<HookedContext<DB, Recorder>, EthInterpreter> for FrameCheck {
    fn step(
        &mut self,
        _interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut HookedContext<DB, Recorder>,
    ) {
        self.steps += 1;
        self.check_depth(ctx, "step");
    }

    fn call(
        &mut self,
        ctx: &mut HookedContext<DB, Recorder>,
        _inputs: &mut CallInputs,
    ) -> Option<CallOutcome> {
        self.start(ctx);
        None
    }

    fn call_end(
        &mut self,
        ctx: &mut HookedContext<DB, Recorder>,
        _inputs: &CallInputs,
        outcome: &mut CallOutcome,
    ) {
        let result = outcome.result.result;
        // `make_call_frame` checks the depth before it takes the checkpoint.
        self.end(ctx, false, result, result != InstructionResult::CallTooDeep);
    }

    fn create(
        &mut self,
        ctx: &mut HookedContext<DB, Recorder>,
        _inputs: &mut CreateInputs,
    ) -> Option<CreateOutcome> {
        self.start(ctx);
        None
    }

    fn create_end(
        &mut self,
        ctx: &mut HookedContext<DB, Recorder>,
        _inputs: &CreateInputs,
        outcome: &mut CreateOutcome,
    ) {
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

fn caller_nonce(db: &InMemoryDB) -> u64 {
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

fn run_transact(txs: &[TxSpec]) -> Run {
    let mut evm = hooked(world(), Recorder::default()).build_mainnet();
    let mut outcomes = Vec::new();
    for tx in txs {
        let env = tx.env(caller_nonce(evm.ctx.journaled_state.db()));
        outcomes.push(evm.transact_commit(env).map_err(|e| format!("{e:?}")));
        assert_eq!(evm.ctx.journaled_state.open_checkpoints(), 0);
    }
    Run {
        outcomes,
        hook: evm.ctx.journaled_state.hook().clone(),
        db: evm.ctx.journaled_state.db().clone(),
    }
}

/// `txs` through `inspect_tx_commit` with `inspector`.
fn run_inspected<I: Inspector<HookedContext<InMemoryDB, Recorder>>>(
    txs: &[TxSpec],
    inspector: I,
) -> (Run, I) {
    let mut evm = hooked(world(), Recorder::default()).build_mainnet_with_inspector(inspector);
    let mut outcomes = Vec::new();
    for tx in txs {
        let env = tx.env(caller_nonce(evm.ctx.journaled_state.db()));
        outcomes.push(evm.inspect_tx_commit(env).map_err(|e| format!("{e:?}")));
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

fn run_traced(txs: &[TxSpec]) -> (Run, String) {
    let buf = SharedBuf::default();
    let (run, _) = run_inspected(txs, TracerEip3155::new(Box::new(buf.clone())));
    let trace = String::from_utf8(buf.0.lock().expect("not poisoned").clone()).expect("utf-8");
    (run, trace)
}

/// The database as a sorted, comparable dump.
fn dump(db: &InMemoryDB) -> Vec<String> {
    let mut out: Vec<String> = db
        .cache
        .accounts
        .iter()
        .map(|(address, account)| {
            let mut storage: Vec<_> = account.storage.iter().collect();
            storage.sort();
            format!(
                "{address} {:?} {} {} {} {storage:?}",
                account.account_state,
                account.info.balance,
                account.info.nonce,
                account.info.code_hash
            )
        })
        .collect();
    out.sort();
    out
}

/// The stock journal and `HookedJournal<_, ()>` agree on every result and on
/// the state each transaction produces.
fn assert_same_as_stock(txs: &[TxSpec]) {
    let mut stock = Context::<BlockEnv, TxEnv, CfgEnv, InMemoryDB>::new(world(), SPEC);
    stock.cfg.tx_gas_limit_cap = Some(u64::MAX);
    let mut stock = stock.build_mainnet();
    let mut unit = hooked(world(), ()).build_mainnet();
    for tx in txs {
        let nonce = caller_nonce(&stock.ctx.journaled_state.database);
        assert_eq!(nonce, caller_nonce(unit.ctx.journaled_state.db()));
        let a = stock.transact(tx.env(nonce));
        let b = unit.transact(tx.env(nonce));
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
fn check(txs: &[TxSpec], expected: &[&str]) -> (InMemoryDB, Vec<Outcome>, FrameCheck) {
    let plain = run_transact(txs);
    let (inspected, frames) = run_inspected(txs, FrameCheck::default());
    let (traced, trace) = run_traced(txs);

    for run in [&plain, &inspected, &traced] {
        assert!(run.hook.violations.is_empty(), "{:?}", run.hook.violations);
        assert_well_paired(&run.hook.events);
    }
    assert!(frames.mismatches.is_empty(), "{:#?}", frames.mismatches);
    assert!(frames.started.is_empty(), "frames left unfinished");
    assert_eq!(plain.hook.per_tx(), expected, "hook log");
    assert_eq!(plain.hook.events, inspected.hook.events);
    assert_eq!(plain.hook.events, traced.hook.events);
    assert_eq!(plain.outcomes, inspected.outcomes);
    assert_eq!(plain.outcomes, traced.outcomes);
    assert_eq!(dump(&plain.db), dump(&inspected.db));
    assert_eq!(dump(&plain.db), dump(&traced.db));
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

#[test]
fn plain_call_succeeds() {
    let (db, outcomes, frames) = check(&[call(STORE_OK, Bytes::new())], &["()()C"]);
    assert!(success(&outcomes[0]));
    assert_eq!(slot(&db, STORE_OK, 0), U256::from(1));
    assert_eq!(frames.frames.len(), 1);
    assert_eq!(frames.frames[0].checkpoint, Some(1));
}

#[test]
fn nested_call_reverts_and_outer_continues() {
    let (db, outcomes, frames) = check(&[call(PROXY, proxy_call(REVERTER, 0, GAS))], &["()((!)C"]);
    assert!(success(&outcomes[0]));
    // The inner frame's SSTORE is gone, the outer frame's stayed.
    assert_eq!(slot(&db, REVERTER, 0), U256::ZERO);
    assert_eq!(slot(&db, PROXY, 1), U256::ZERO, "CALL reported failure");
    assert_eq!(slot(&db, PROXY, 0), U256::from(0xff));
    assert_eq!(frames.frames[0].result, InstructionResult::Revert);
}

#[test]
fn inner_invalid_opcode_halts_and_reverts() {
    let (db, outcomes, frames) = check(
        &[call(PROXY, proxy_call(INVALID, 0, 100_000))],
        &["()((!)C"],
    );
    assert!(success(&outcomes[0]));
    assert_eq!(slot(&db, INVALID, 0), U256::ZERO);
    assert_eq!(slot(&db, PROXY, 0), U256::from(0xff));
    assert_eq!(frames.frames[0].result, InstructionResult::InvalidFEOpcode);
}

#[test]
fn inner_out_of_gas_halts_and_reverts() {
    let (db, outcomes, frames) = check(&[call(PROXY, proxy_call(LOOP, 0, 100_000))], &["()((!)C"]);
    assert!(success(&outcomes[0]));
    assert_eq!(slot(&db, LOOP, 0), U256::ZERO);
    assert_eq!(slot(&db, PROXY, 0), U256::from(0xff));
    assert_eq!(frames.frames[0].result, InstructionResult::OutOfGas);
}

/// CREATE or CREATE2 from a factory, with the address the new contract gets.
fn factory_create(factory: Address, init: &[u8]) -> (TxSpec, Address) {
    let created = if factory == FACTORY {
        // Accounts inserted into the world have nonce 0.
        FACTORY.create(0)
    } else {
        FACTORY2.create2_from_code(B256::ZERO, init)
    };
    (call(factory, init.to_vec().into()), created)
}

#[test]
fn create_and_create2_succeed() {
    for factory in [FACTORY, FACTORY2] {
        let (tx, created) = factory_create(factory, INIT_OK);
        let (db, outcomes, frames) = check(&[tx], &["()(())C"]);
        assert!(success(&outcomes[0]));
        assert_eq!(
            slot(&db, factory, 0),
            U256::from_be_slice(created.as_slice())
        );
        assert_eq!(slot(&db, created, 0), U256::from(7));
        assert_eq!(code(&db, created), Some(Bytes::from_static(&[0x00])));
        assert!(frames.frames[0].create);
    }
}

#[test]
fn create_failures_revert_the_create_frame_only() {
    let cases: [(&[u8], InstructionResult); 3] = [
        (INIT_REVERT, InstructionResult::Revert),
        // Both of these return successfully from the init code; `return_create`
        // then reverts the checkpoint.
        (INIT_TOO_LARGE, InstructionResult::CreateContractSizeLimit),
        (INIT_EF, InstructionResult::CreateContractStartingWithEF),
    ];
    for factory in [FACTORY, FACTORY2] {
        for (init, why) in cases {
            let (tx, created) = factory_create(factory, init);
            let (db, outcomes, frames) = check(&[tx], &["()((!)C"]);
            assert!(success(&outcomes[0]), "{why:?}");
            assert_eq!(slot(&db, factory, 0), U256::ZERO, "CREATE pushed 0");
            assert_eq!(
                slot(&db, created, 0),
                U256::ZERO,
                "init code's SSTORE undone"
            );
            assert_eq!(code(&db, created), None);
            assert_eq!(frames.frames[0].result, why);
        }
    }
}

#[test]
fn create2_collision_takes_no_checkpoint() {
    let (tx, created) = factory_create(FACTORY2, INIT_OK);
    // The second CREATE2 hits the account the first one made: revm opens and
    // reverts a checkpoint inside `create_account_checkpoint`, which the hook
    // must not see.
    let (db, outcomes, frames) = check(&[tx.clone(), tx], &["()(())C", "()()C"]);
    assert!(outcomes.iter().all(success));
    assert_eq!(
        slot(&db, FACTORY2, 0),
        U256::ZERO,
        "second CREATE2 pushed 0"
    );
    assert_eq!(code(&db, created), Some(Bytes::from_static(&[0x00])));
    let collision = frames
        .frames
        .iter()
        .find(|f| f.create && f.checkpoint.is_none());
    assert_eq!(
        collision.map(|f| f.result),
        Some(InstructionResult::CreateCollision)
    );
}

#[test]
fn top_level_create_success_and_failure() {
    let created = CALLER.create(0);
    let (db, outcomes, _) = check(&[create(INIT_OK)], &["()()C"]);
    assert!(success(&outcomes[0]));
    assert_eq!(slot(&db, created, 0), U256::from(7));

    let (db, outcomes, _) = check(&[create(INIT_EF)], &["()(!C"]);
    assert!(!success(&outcomes[0]));
    assert_eq!(code(&db, created), None);
}

#[test]
fn precompile_call_success_and_out_of_gas() {
    let (db, outcomes, frames) = check(&[call(PROXY, proxy_call(IDENTITY, 0, GAS))], &["()(())C"]);
    assert!(success(&outcomes[0]));
    assert_eq!(slot(&db, PROXY, 1), U256::from(1));
    assert_eq!(frames.frames[0].result, InstructionResult::Return);

    // Identity costs 15 gas; one is not enough.
    let (db, outcomes, frames) = check(&[call(PROXY, proxy_call(IDENTITY, 0, 1))], &["()((!)C"]);
    assert!(success(&outcomes[0]));
    assert_eq!(slot(&db, PROXY, 1), U256::ZERO);
    assert!(!frames.frames[0].result.is_ok());
}

#[test]
fn call_to_an_account_without_code_commits() {
    let (db, outcomes, _) = check(&[call(PROXY, proxy_call(NOBODY, 0, GAS))], &["()(())C"]);
    assert!(success(&outcomes[0]));
    assert_eq!(slot(&db, PROXY, 1), U256::from(1));
    // And as the transaction's own target.
    let (_, outcomes, _) = check(&[call(NOBODY, Bytes::new())], &["()()C"]);
    assert!(success(&outcomes[0]));
}

#[test]
fn call_with_more_value_than_balance_reverts_its_checkpoint() {
    // PROXY holds no ether.
    let (db, outcomes, frames) = check(&[call(PROXY, proxy_call(STORE_OK, 1, GAS))], &["()((!)C"]);
    assert!(success(&outcomes[0]));
    assert_eq!(slot(&db, STORE_OK, 0), U256::ZERO);
    assert_eq!(slot(&db, PROXY, 1), U256::ZERO);
    assert_eq!(frames.frames[0].result, InstructionResult::OutOfFunds);
}

#[test]
fn recursion_to_the_depth_limit() {
    // Enough gas that 63/64 forwarding still reaches depth 1024: each level
    // keeps 1/64 plus about 114 gas, so the start needs about 7,300 / (63/64)^1024.
    let tx = TxSpec {
        gas: 100_000_000_000,
        ..call(RECURSE, Bytes::new())
    };
    // Frames at depths 0..=1024 each take a checkpoint; the CALL from depth
    // 1024 is refused before any checkpoint.
    let frames_with_checkpoint = 1025;
    let expected = format!(
        "(){}{}C",
        "(".repeat(frames_with_checkpoint),
        ")".repeat(frames_with_checkpoint)
    );
    let (_, outcomes, frames) = check(std::slice::from_ref(&tx), &[expected.as_str()]);
    assert!(success(&outcomes[0]));
    assert_eq!(frames.frames.len(), frames_with_checkpoint + 1);
    assert_eq!(frames.frames[0].result, InstructionResult::CallTooDeep);
    assert_eq!(frames.frames[0].checkpoint, None);
    assert_eq!(run_transact(&[tx]).hook.max_depth, frames_with_checkpoint);
}

#[test]
fn invalid_transactions_are_discarded() {
    let nonce_too_high = TxSpec {
        nonce_offset: 5,
        ..call(STORE_OK, Bytes::new())
    };
    let too_much_value = TxSpec {
        value: CALLER_BALANCE + 1,
        ..call(STORE_OK, Bytes::new())
    };
    let (db, outcomes, _) = check(
        &[nonce_too_high, too_much_value, call(STORE_OK, Bytes::new())],
        &["D", "D", "()()C"],
    );
    assert!(outcomes[0].as_ref().unwrap_err().contains("NonceTooHigh"));
    assert!(outcomes[1]
        .as_ref()
        .unwrap_err()
        .contains("LackOfFundForMaxFee"));
    assert!(success(&outcomes[2]));
    assert_eq!(caller_nonce(&db), 1, "only the valid transaction counts");
}

#[test]
fn whole_transaction_reverts_at_top_level() {
    let (db, outcomes, _) = check(&[call(REVERTER, Bytes::new())], &["()(!C"]);
    assert!(matches!(outcomes[0], Ok(ExecutionResult::Revert { .. })));
    assert_eq!(slot(&db, REVERTER, 0), U256::ZERO);
    // The transaction still counts: nonce bumped.
    assert_eq!(caller_nonce(&db), 1);
}

#[test]
fn many_transactions_in_one_evm() {
    let (tx_create2, _) = factory_create(FACTORY2, INIT_OK);
    let txs = [
        call(STORE_OK, Bytes::new()),
        call(PROXY, proxy_call(REVERTER, 0, GAS)),
        TxSpec {
            nonce_offset: 9,
            ..call(STORE_OK, Bytes::new())
        },
        tx_create2.clone(),
        call(REVERTER, Bytes::new()),
        tx_create2,
        call(PROXY, proxy_call(IDENTITY, 0, 1)),
        create(INIT_TOO_LARGE),
    ];
    let (db, outcomes, _) = check(
        &txs,
        &[
            "()()C", "()((!)C", "D", "()(())C", "()(!C", "()()C", "()((!)C", "()(!C",
        ],
    );
    assert_eq!(outcomes.len(), txs.len());
    assert_eq!(caller_nonce(&db), 7);
}

#[test]
fn system_call_goes_through_the_hook() {
    let mut evm = hooked(world(), Recorder::default()).build_mainnet();
    let result = evm.system_call_one(STORE_OK, Bytes::new()).unwrap();
    assert!(result.is_success());
    let hook = evm.ctx.journaled_state.hook();
    assert_eq!(hook.per_tx(), ["()()C"]);
    assert!(hook.violations.is_empty());
    // The system call's checkpoint is the one `run_system_call` opens.
    let state = evm.finalize();
    assert_eq!(
        state[&STORE_OK].storage[&U256::ZERO].present_value,
        U256::from(1)
    );
}

/// An error a database may return.
#[derive(Debug)]
struct Boom;

impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("database unavailable")
    }
}

impl std::error::Error for Boom {}
impl DBErrorMarker for Boom {}

/// [`world`], except that loading [`FAIL`] fails.
#[derive(Debug)]
struct FailingDb(InMemoryDB);

impl Database for FailingDb {
    type Error = Boom;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Boom> {
        if address == FAIL {
            return Err(Boom);
        }
        self.0.basic(address).map_err(|never| match never {})
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Boom> {
        self.0
            .code_by_hash(code_hash)
            .map_err(|never| match never {})
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Boom> {
        self.0
            .storage(address, index)
            .map_err(|never| match never {})
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Boom> {
        self.0.block_hash(number).map_err(|never| match never {})
    }
}

impl DatabaseCommit for FailingDb {
    fn commit(&mut self, changes: revm::state::EvmState) {
        self.0.commit(changes)
    }
}

#[test]
fn database_error_mid_transaction_discards_with_checkpoints_open() {
    // PROXY -> CALL_FAIL -> FAIL: loading FAIL fails inside CALL_FAIL, which
    // halts; the error surfaces while PROXY's frame is still open.
    let tx = call(PROXY, proxy_call(CALL_FAIL, 0, GAS)).env(0);
    let expected = ["()((!!D"];

    let mut evm = hooked(FailingDb(world()), Recorder::default()).build_mainnet();
    let err = evm.transact_commit(tx.clone()).unwrap_err();
    assert!(format!("{err:?}").contains("Boom"), "{err:?}");
    let hook = evm.ctx.journaled_state.hook().clone();
    assert!(hook.violations.is_empty(), "{:?}", hook.violations);
    assert_well_paired(&hook.events);
    assert_eq!(hook.per_tx(), expected);
    // Nothing of the transaction reached the database.
    assert_eq!(caller_nonce(&evm.ctx.journaled_state.db().0), 0);
    assert_eq!(evm.ctx.journaled_state.depth(), 0);

    let mut evm = hooked(FailingDb(world()), Recorder::default())
        .build_mainnet_with_inspector(FrameCheck::default());
    assert!(evm.inspect_tx_commit(tx).is_err());
    assert_eq!(evm.ctx.journaled_state.hook().events, hook.events);
    assert!(
        evm.inspector.mismatches.is_empty(),
        "{:?}",
        evm.inspector.mismatches
    );
}
