//! Helpers shared by the end-to-end test files: assembly snippets for the five
//! opcodes and for calls, outcome checks, gas formulas of spec §8 written out
//! independently of `shm_opcodes::GasSchedule`, and an inspected call that
//! reports every frame's own result.
#![allow(dead_code)]

use alloy_primitives::{Address, Bytes, U256};
use revm::{
    context::{
        result::{ExecutionResult, HaltReason, OutOfGasError},
        TxEnv,
    },
    interpreter::{CallInputs, CallOutcome, CreateInputs, CreateOutcome, InstructionResult},
    primitives::TxKind,
    InspectCommitEvm, Inspector,
};
use shm_manager::{HaltCause, SharedMemoryConfig};
use shm_opcodes::ShmEvmBuilder;
pub(crate) use shm_tests::{Harness, Outcome, GAS_LIMIT, SENDER};

// ----- handles -----

/// The stack form of the handle of slot `index` at `generation`.
pub(crate) fn handle(index: u32, generation: u32) -> U256 {
    U256::from((u64::from(generation) << 32) | u64::from(index))
}

/// The first handle a fresh manager gives out: slot 1, generation 1.
pub(crate) fn first_handle() -> U256 {
    handle(1, 1)
}

// ----- assembly snippets (operands are pushed in reverse: top of stack first) -----

/// `SHARED_ALLOC size flags`, handle left on the stack.
pub(crate) fn alloc(size: impl std::fmt::Display, flags: impl std::fmt::Display) -> String {
    format!("PUSH {flags} PUSH {size} SHARED_ALLOC\n")
}

/// ALLOC and store the handle at `mem`.
pub(crate) fn alloc_to(mem: u64, size: u64, flags: u64) -> String {
    format!("{} PUSH {mem} MSTORE\n", alloc(size, flags))
}

/// The handle stored at memory `mem`.
pub(crate) fn mem(mem: u64) -> String {
    format!("PUSH {mem} MLOAD ")
}

/// Calldata word `i`.
pub(crate) fn arg(i: u64) -> String {
    format!("PUSH {} CALLDATALOAD ", i * 32)
}

/// `SHARED_MAP` of the handle that `h` pushes with `options`, result on the stack.
pub(crate) fn map(h: &str, options: impl std::fmt::Display) -> String {
    format!("PUSH {options} {h} SHARED_MAP\n")
}

/// `SHARED_READ`, result on the stack.
pub(crate) fn read(
    h: &str,
    region_offset: impl std::fmt::Display,
    size: impl std::fmt::Display,
    mem_offset: impl std::fmt::Display,
) -> String {
    format!("PUSH {mem_offset} PUSH {size} PUSH {region_offset} {h} SHARED_READ\n")
}

/// `SHARED_WRITE`, result on the stack.
pub(crate) fn write(
    h: &str,
    region_offset: impl std::fmt::Display,
    size: impl std::fmt::Display,
    mem_offset: impl std::fmt::Display,
) -> String {
    format!("PUSH {mem_offset} PUSH {size} PUSH {region_offset} {h} SHARED_WRITE\n")
}

/// `SHARED_FREE`, result on the stack.
pub(crate) fn free(h: &str) -> String {
    format!("{h} SHARED_FREE\n")
}

/// Stores the top of the stack at `mem`.
pub(crate) fn store(mem: u64) -> String {
    format!("PUSH {mem} MSTORE\n")
}

/// `mem[at..at+32] = value`.
pub(crate) fn mstore(at: u64, value: impl std::fmt::Display) -> String {
    format!("PUSH {value} PUSH {at} MSTORE\n")
}

/// Returns `mem[offset..offset+len]`.
pub(crate) fn ret(offset: u64, len: u64) -> String {
    format!("PUSH {len} PUSH {offset} RETURN\n")
}

/// The byte `b` repeated over a word, as a PUSH32 operand.
pub(crate) fn fill(b: u8) -> String {
    format!("0x{}", format!("{b:02x}").repeat(32))
}

/// The word `fill(b)` as a value.
pub(crate) fn filled(b: u8) -> U256 {
    U256::from_be_bytes([b; 32])
}

fn address(to: Address) -> String {
    format!("PUSH20 0x{}", alloy_primitives::hex::encode(to))
}

/// `CALL to` with all gas, args `mem[args..args+args_len]`, return into
/// `mem[ret_at..ret_at+ret_len]`; success flag on the stack.
pub(crate) fn call(to: Address, args: u64, args_len: u64, ret_at: u64, ret_len: u64) -> String {
    format!(
        "PUSH {ret_len} PUSH {ret_at} PUSH {args_len} PUSH {args} PUSH 0 {} GAS CALL\n",
        address(to)
    )
}

/// As [`call`] with `gas` instead of all gas.
pub(crate) fn call_gas(
    to: Address,
    gas: u64,
    args: u64,
    args_len: u64,
    ret_at: u64,
    ret_len: u64,
) -> String {
    format!(
        "PUSH {ret_len} PUSH {ret_at} PUSH {args_len} PUSH {args} PUSH 0 {} PUSH {gas} CALL\n",
        address(to)
    )
}

/// `STATICCALL to`; success flag on the stack.
pub(crate) fn staticcall(
    to: Address,
    args: u64,
    args_len: u64,
    ret_at: u64,
    ret_len: u64,
) -> String {
    format!(
        "PUSH {ret_len} PUSH {ret_at} PUSH {args_len} PUSH {args} {} GAS STATICCALL\n",
        address(to)
    )
}

/// `DELEGATECALL to`; success flag on the stack.
pub(crate) fn delegatecall(
    to: Address,
    args: u64,
    args_len: u64,
    ret_at: u64,
    ret_len: u64,
) -> String {
    format!(
        "PUSH {ret_len} PUSH {ret_at} PUSH {args_len} PUSH {args} {} GAS DELEGATECALL\n",
        address(to)
    )
}

/// `CALLCODE to` (value 0); success flag on the stack.
pub(crate) fn callcode(to: Address, args: u64, args_len: u64, ret_at: u64, ret_len: u64) -> String {
    format!(
        "PUSH {ret_len} PUSH {ret_at} PUSH {args_len} PUSH {args} PUSH 0 {} GAS CALLCODE\n",
        address(to)
    )
}

/// Copies all calldata to `mem[at..]`.
pub(crate) fn calldata_to(at: u64) -> String {
    format!("CALLDATASIZE PUSH 0 PUSH {at} CALLDATACOPY\n")
}

// ----- configs -----

/// The configs of spec §7's four levels: testing, development, production,
/// and production at Paranoid.
pub(crate) fn level_configs() -> [(&'static str, SharedMemoryConfig); 4] {
    let mut paranoid = SharedMemoryConfig::production();
    paranoid.security_level = shm_primitives::SecurityLevel::Paranoid;
    [
        ("none", SharedMemoryConfig::testing()),
        ("basic", SharedMemoryConfig::development()),
        ("strict", SharedMemoryConfig::production()),
        ("paranoid", paranoid),
    ]
}

// ----- outcome checks -----

/// The revm halt reason every cause maps to (docs/opcodes.md).
pub(crate) fn reason_for(cause: HaltCause) -> HaltReason {
    match cause {
        HaltCause::StaticWrite => HaltReason::StateChangeDuringStaticCall,
        HaltCause::OffsetOverflow => HaltReason::OutOfOffset,
        _ => HaltReason::OutOfGas(OutOfGasError::InvalidOperand),
    }
}

/// The instruction result every cause maps to.
pub(crate) fn instruction_result_for(cause: HaltCause) -> InstructionResult {
    match cause {
        HaltCause::StaticWrite => InstructionResult::StateChangeDuringStaticCall,
        HaltCause::OffsetOverflow => InstructionResult::OutOfOffset,
        _ => InstructionResult::InvalidOperandOOG,
    }
}

/// Asserts that the transaction halted at top level with `cause`, its revm
/// reason, and all its gas consumed.
#[track_caller]
pub(crate) fn assert_halt(out: &Outcome, cause: HaltCause) {
    match &out.result {
        ExecutionResult::Halt { reason, .. } => {
            assert_eq!(*reason, reason_for(cause), "revm halt reason for {cause:?}");
            assert_eq!(out.gas_used(), GAS_LIMIT, "a halt consumes all the gas");
        }
        other => panic!("expected a halt ({cause:?}), got {other:?}"),
    }
    assert_eq!(out.last_halt, Some(cause), "precise cause");
}

/// Asserts success and no shared-memory halt.
#[track_caller]
pub(crate) fn assert_ok(out: &Outcome) {
    assert!(
        out.is_success(),
        "expected success, got {:?} (last halt {:?})",
        out.result,
        out.last_halt
    );
}

// ----- gas formulas of spec §8, written out here -----

/// `f(w) = 3w + w²/512`.
pub(crate) fn f(w: u64) -> u64 {
    3 * w + w * w / 512
}

/// 32-byte words of `bytes`.
pub(crate) fn words_of(bytes: u64) -> u64 {
    bytes.div_ceil(32)
}

/// EVM memory expansion from `from` to `to` bytes (both multiples of 32 or
/// rounded up), as revm charges it.
pub(crate) fn memory_expansion(from: u64, to: u64) -> u64 {
    let (a, b) = (words_of(from), words_of(to));
    if b <= a {
        0
    } else {
        f(b) - f(a)
    }
}

/// ALLOC: `200 + f(W + words) − f(W)` (+ 20,000 per word if persistent).
pub(crate) fn alloc_gas(w: u64, size: u64, persistent: bool) -> u64 {
    let words = words_of(size);
    200 + f(w + words) - f(w) + if persistent { 20_000 * words } else { 0 }
}

/// Access part of MAP/READ/WRITE.
pub(crate) fn access(cold: bool) -> u64 {
    if cold {
        2_600
    } else {
        100
    }
}

/// One operand pushed before a measured instruction, with its own gas.
pub(crate) enum Operand {
    /// A constant (PUSH0 costs 2, PUSHn 3).
    Const(U256),
    /// A word loaded from already-expanded memory (`PUSH at MLOAD`).
    Mem(u64),
}

impl Operand {
    fn asm(&self) -> String {
        match self {
            Operand::Const(v) => format!("PUSH {v}"),
            Operand::Mem(at) => format!("PUSH {at} MLOAD"),
        }
    }
    fn gas(&self) -> u64 {
        let push = |v: U256| if v.is_zero() { 2 } else { 3 };
        match self {
            Operand::Const(v) => push(*v),
            Operand::Mem(at) => push(U256::from(*at)) + 3,
        }
    }
}

/// A constant operand.
pub(crate) fn c(v: u64) -> Operand {
    Operand::Const(U256::from(v))
}

/// A program that runs `setup`, then measures `op` with its `operands`
/// (listed top of stack first) between two GAS opcodes, runs `after`, and
/// returns four words: the gas the instruction cost, what it pushed, 1, and
/// whatever `after` stored at 0x10060.
/// `setup` must leave memory covering every `Operand::Mem` and must not leave
/// anything on the stack.
pub(crate) fn measure(setup: &str, operands: &[Operand], op: &str, after: &str) -> String {
    let pushes: String = operands
        .iter()
        .rev()
        .map(|o| o.asm())
        .collect::<Vec<_>>()
        .join(" ");
    let push_gas: u64 = operands.iter().map(Operand::gas).sum();
    // Stack after the second GAS: [g1, result, g0]. cost = g0 - g1 - pushes - 2.
    format!(
        "{setup}\nGAS {pushes} {op} GAS\n\
         SWAP1 PUSH 0x10020 MSTORE\n\
         SWAP1 SUB PUSH {push_gas} SWAP1 SUB PUSH 2 SWAP1 SUB PUSH 0x10000 MSTORE\n\
         {after}\n\
         PUSH 1 PUSH 0x10040 MSTORE\n\
         PUSH 128 PUSH 0x10000 RETURN\n"
    )
}

/// (gas of the measured instruction, what it pushed) from a [`measure`] run.
#[track_caller]
pub(crate) fn measured(out: &Outcome) -> (u64, U256) {
    assert_ok(out);
    assert_eq!(out.word(2), U256::from(1), "the program ran to its end");
    (out.word(0).to::<u64>(), out.word(1))
}

// ----- inspected calls: every frame's own result -----

/// What each frame of a transaction ended with, innermost first (call_end order).
#[derive(Default, Debug)]
pub(crate) struct FrameResults {
    /// (callee or created address, result) per frame, in the order frames ended.
    pub frames: Vec<(Address, InstructionResult)>,
}

impl<CTX> Inspector<CTX> for FrameResults {
    fn call_end(&mut self, _: &mut CTX, inputs: &CallInputs, outcome: &mut CallOutcome) {
        self.frames
            .push((inputs.target_address, outcome.result.result));
    }
    fn create_end(&mut self, _: &mut CTX, _: &CreateInputs, outcome: &mut CreateOutcome) {
        self.frames
            .push((outcome.address.unwrap_or_default(), outcome.result.result));
    }
}

/// As `Harness::call`, through `inspect_tx_commit`, also returning every
/// frame's own result.
pub(crate) fn call_inspected(
    h: &mut Harness,
    to: Address,
    input: &[u8],
) -> (Outcome, FrameResults) {
    let tx = TxEnv::builder()
        .caller(SENDER)
        .kind(TxKind::Call(to))
        .data(Bytes::copy_from_slice(input))
        .gas_limit(GAS_LIMIT)
        .gas_price(0)
        .build()
        .expect("a valid transaction");
    let builder = ShmEvmBuilder::new(h.manager.clone())
        .gas_schedule(h.gas)
        .spec(h.spec);
    let mut ctx = builder.context(&mut h.db);
    ctx.cfg.disable_nonce_check = true;
    ctx.cfg.tx_gas_limit_cap = Some(u64::MAX);
    let mut evm = ShmEvmBuilder::build_from_with_inspector(ctx, FrameResults::default());
    let result = evm.inspect_tx_commit(tx).expect("the transaction is valid");
    let session = evm.ctx.journaled_state.hook();
    let outcome = Outcome {
        result,
        last_halt: session.last_halt(),
        peak: session.last_transaction_peak(),
    };
    (outcome, std::mem::take(&mut evm.inspector))
}

/// Asserts that the frame of `to` (its last-ended one) halted with `cause`'s
/// instruction result.
#[track_caller]
pub(crate) fn assert_frame_halted(frames: &FrameResults, to: Address, cause: HaltCause) {
    let result = frames
        .frames
        .iter()
        .rev()
        .find(|(a, _)| *a == to)
        .map(|(_, r)| *r)
        .unwrap_or_else(|| panic!("no frame of {to} in {frames:?}"));
    assert_eq!(result, instruction_result_for(cause), "frame of {to}");
}

/// Fixed addresses for multi-contract tests.
pub(crate) fn addr(byte: u8) -> Address {
    Address::repeat_byte(byte)
}

/// Makes a region in its own transaction from context `owner` (its code is
/// replaced by an allocator for that transaction) and returns its handle. With
/// `flags` bit 0 it outlives the transaction.
#[track_caller]
pub(crate) fn region_owned_by(h: &mut Harness, owner: Address, size: u64, flags: u64) -> U256 {
    h.deploy_asm_at(owner, &(alloc_to(0, size, flags) + &ret(0, 32)));
    let out = h.call(owner, &[]);
    assert_ok(&out);
    let handle = out.word(0);
    assert_ne!(handle, U256::ZERO, "the allocation succeeded");
    handle
}

/// Calldata of one word.
pub(crate) fn arg_word(value: U256) -> Vec<u8> {
    value.to_be_bytes::<32>().to_vec()
}

/// Writes `data` into the region through the host API (no permissions).
pub(crate) fn host_write(h: &Harness, handle: U256, offset: u64, data: &[u8]) {
    let handle = shm_primitives::RegionHandle::from_u256(handle).expect("a handle");
    h.manager
        .write_region(handle, offset, data)
        .expect("host write");
}

/// Reads `len` bytes of the region through the host API.
pub(crate) fn host_read(h: &Harness, handle: U256, offset: u64, len: usize) -> Vec<u8> {
    let handle = shm_primitives::RegionHandle::from_u256(handle).expect("a handle");
    let mut buf = vec![0; len];
    h.manager
        .read_region(handle, offset, &mut buf)
        .expect("host read");
    buf
}
