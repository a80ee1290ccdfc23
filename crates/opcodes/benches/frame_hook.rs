//! What the frame hook costs: one transaction making 1,000 CALLs (1,002
//! checkpoints), run through revm's stock `Journal` (the baseline), through
//! `HookedJournal<_, ()>` and through `HookedJournal` with a hook that counts.

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use alloy_primitives::hex;
use criterion::{criterion_group, criterion_main, Criterion};
use revm::{
    bytecode::Bytecode,
    context::{BlockEnv, CfgEnv, Context, TxEnv},
    database::InMemoryDB,
    primitives::{hardfork::SpecId, Address, Bytes, TxKind},
    state::AccountInfo,
    ExecuteEvm, MainBuilder,
};
use shm_opcodes::{hooked_context, FrameHook, TxOutcome};
use std::hint::black_box;

const CALLER: Address = Address::with_last_byte(0xCA);
const LOOPER: Address = Address::with_last_byte(0xB0);
const TARGET: Address = Address::with_last_byte(0xA1);

/// Counts hook calls: the cheapest hook that does something.
#[derive(Default)]
struct Counter {
    depth: usize,
    events: u64,
}

impl FrameHook for Counter {
    fn checkpoint(&mut self) {
        self.depth += 1;
        self.events += 1;
    }
    fn checkpoint_commit(&mut self) {
        self.depth -= 1;
        self.events += 1;
    }
    fn checkpoint_revert(&mut self) {
        self.checkpoint_commit();
    }
    fn transaction_end(&mut self, _outcome: TxOutcome) {
        self.events += 1;
    }
}

fn world() -> InMemoryDB {
    // PUSH2 1000 (counter) 3: JUMPDEST PUSH0 x5 PUSH1 TARGET GAS CALL POP
    // PUSH1 1 SWAP1 SUB (counter - 1) DUP1 PUSH1 3 JUMPI (while non-zero) STOP
    let looper = hex!("6103e8 5b 5f5f5f5f5f 60a1 5af150 60019003 80600357 00");
    let mut db = InMemoryDB::default();
    db.insert_account_info(CALLER, AccountInfo::default());
    for (address, code) in [(LOOPER, &looper[..]), (TARGET, &[0x00])] {
        let code = Bytecode::new_raw(Bytes::copy_from_slice(code));
        db.insert_account_info(address, AccountInfo::default().with_code(code));
    }
    db
}

fn tx() -> TxEnv {
    let tx = TxEnv::builder().caller(CALLER).kind(TxKind::Call(LOOPER));
    tx.gas_limit(10_000_000).build().expect("valid transaction")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("call_loop_1000");

    let mut stock =
        Context::<BlockEnv, TxEnv, CfgEnv, InMemoryDB>::new(world(), SpecId::OSAKA).build_mainnet();
    let result = stock.transact(tx()).expect("runs");
    assert!(result.result.is_success());
    group.bench_function("stock_journal", |b| {
        b.iter(|| black_box(stock.transact(tx()).expect("runs")))
    });

    let mut unit = hooked_context(world(), SpecId::OSAKA, ()).build_mainnet();
    group.bench_function("hooked_unit", |b| {
        b.iter(|| black_box(unit.transact(tx()).expect("runs")))
    });

    let mut counted = hooked_context(world(), SpecId::OSAKA, Counter::default()).build_mainnet();
    counted.transact(tx()).expect("runs");
    let hook = counted.ctx.journaled_state.hook();
    // 1,002 checkpoints opened and settled, one transaction end.
    assert_eq!((hook.events, hook.depth), (2 * 1002 + 1, 0));
    group.bench_function("hooked_counter", |b| {
        b.iter(|| black_box(counted.transact(tx()).expect("runs")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
