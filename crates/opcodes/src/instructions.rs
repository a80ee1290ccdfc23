//! The five instructions, as revm instruction functions, and their registration.
//!
//! Each function pops its operands, checks the static rule, asks the
//! [`ActiveSession`](crate::ActiveSession) to check and price the operation, charges
//! gas (and EVM memory expansion the way CALLDATACOPY does), and only then performs
//! the effect. A shared-memory halt is reported to revm as the nearest mainnet
//! [`InstructionResult`] (see [`halt_result`]); the precise cause is kept in the
//! session and counted in the metrics.

use crate::{session::OpError, ShmSession};
use revm::{
    context_interface::ContextTr,
    handler::instructions::EthInstructions,
    interpreter::{
        interpreter::EthInterpreter, interpreter_types::InputsTr, popn, push, Instruction,
        InstructionContext, InstructionResult,
    },
    primitives::U256,
};
use shm_metrics::HaltCause;
use shm_primitives::AccessKind;

/// SHARED_ALLOC.
pub const SHARED_ALLOC: u8 = 0xE0;
/// SHARED_FREE.
pub const SHARED_FREE: u8 = 0xE1;
/// SHARED_MAP.
pub const SHARED_MAP: u8 = 0xE2;
/// SHARED_READ.
pub const SHARED_READ: u8 = 0xE3;
/// SHARED_WRITE.
pub const SHARED_WRITE: u8 = 0xE4;

/// A host whose journal carries a [`ShmSession`]: the way the instructions reach
/// shared memory through revm's own context (no globals, no thread-locals).
pub trait ShmHost: ContextTr {
    /// The session of this EVM.
    fn shm_session(&mut self) -> &mut ShmSession;
}

impl<DB: revm::Database> ShmHost for crate::HookedContext<DB, ShmSession> {
    #[inline]
    fn shm_session(&mut self) -> &mut ShmSession {
        self.journaled_state.hook_mut()
    }
}

/// The revm result a shared-memory failure halts with: a static-context write is
/// `StateChangeDuringStaticCall` (as SSTORE's), an offset overflow `OutOfOffset`,
/// out of gas `OutOfGas`, every other cause `InvalidOperandOOG` (revm's "invalid
/// operand" halt). All consume the frame's gas.
pub const fn halt_result(error: OpError) -> InstructionResult {
    match error {
        OpError::OutOfGas => InstructionResult::OutOfGas,
        OpError::Halt(HaltCause::StaticWrite) => InstructionResult::StateChangeDuringStaticCall,
        OpError::Halt(HaltCause::OffsetOverflow) => InstructionResult::OutOfOffset,
        OpError::Halt(_) => InstructionResult::InvalidOperandOOG,
    }
}

type Ctx<'a, H> = InstructionContext<'a, H, EthInterpreter>;

macro_rules! session {
    ($host:expr) => {
        match $host.shm_session().active() {
            Some(session) => session,
            // Instructions registered on an EVM whose session is off: as if unassigned.
            None => return Err(InstructionResult::OpcodeNotFound),
        }
    };
}

macro_rules! require_non_static {
    ($ctx:expr) => {
        if revm::interpreter::interpreter_types::RuntimeFlag::is_static(
            &$ctx.interpreter.runtime_flag,
        ) {
            let session = session!($ctx.host);
            return Err(halt_result(session.static_violation()));
        }
    };
}

/// `region_offset` as a u64 such that `region_offset + len` fits in 64 bits.
#[inline]
fn region_offset(word: U256, len: usize) -> Option<u64> {
    let offset = u64::try_from(word).ok()?;
    offset.checked_add(len as u64)?;
    Some(offset)
}

/// SHARED_ALLOC (0xE0): pops `size, flags`, pushes the new handle or 0.
pub fn shared_alloc<H: ShmHost>(ctx: Ctx<'_, H>) -> Result<(), InstructionResult> {
    require_non_static!(ctx);
    popn!([size, flags], ctx.interpreter);
    let context = ctx.interpreter.input.target_address();
    let session = session!(ctx.host);
    let gas = std::cell::RefCell::new(&mut ctx.interpreter.gas);
    let result = session.alloc(
        context,
        size,
        flags,
        &mut |cost| gas.borrow_mut().record_regular_cost(cost),
        &mut |refund| gas.borrow_mut().erase_cost(refund),
    );
    let handle = result.map_err(halt_result)?;
    push!(ctx.interpreter, handle.map_or(U256::ZERO, |h| h.to_u256()));
    Ok(())
}

/// SHARED_FREE (0xE1): pops `handle`, pushes 1.
pub fn shared_free<H: ShmHost>(ctx: Ctx<'_, H>) -> Result<(), InstructionResult> {
    require_non_static!(ctx);
    popn!([handle], ctx.interpreter);
    let context = ctx.interpreter.input.target_address();
    let session = session!(ctx.host);
    let gas = &mut ctx.interpreter.gas;
    session
        .free(context, handle, &mut |cost| gas.record_regular_cost(cost))
        .map_err(halt_result)?;
    push!(ctx.interpreter, U256::ONE);
    Ok(())
}

/// SHARED_MAP (0xE2): pops `handle, options`, pushes 1.
pub fn shared_map<H: ShmHost>(ctx: Ctx<'_, H>) -> Result<(), InstructionResult> {
    popn!([handle, options], ctx.interpreter);
    let context = ctx.interpreter.input.target_address();
    let session = session!(ctx.host);
    let gas = &mut ctx.interpreter.gas;
    session
        .map(context, handle, options, &mut |cost| {
            gas.record_regular_cost(cost)
        })
        .map_err(halt_result)?;
    push!(ctx.interpreter, U256::ONE);
    Ok(())
}

/// SHARED_READ (0xE3): pops `handle, region_offset, size, mem_offset`, copies the
/// region into memory (zero past its end), pushes the bytes that came from it.
pub fn shared_read<H: ShmHost>(ctx: Ctx<'_, H>) -> Result<(), InstructionResult> {
    popn!([handle, offset, size, mem_offset], ctx.interpreter);
    let context = ctx.interpreter.input.target_address();
    let prepared = session!(ctx.host)
        .prepare(context, handle, AccessKind::Read)
        .map_err(halt_result)?;
    // Offsets: `size` and `mem_offset` as CALLDATACOPY takes them.
    let len = revm::interpreter::as_usize_or_fail!(ctx.interpreter, size);
    let Some(offset) = region_offset(offset, len) else {
        return Err(halt_result(session!(ctx.host).offset_overflow()));
    };
    let cost = session!(ctx.host).read_cost(&prepared, len as u64);
    revm::interpreter::gas!(ctx.interpreter, cost);
    if len == 0 {
        session!(ctx.host).touch(&prepared);
        push!(ctx.interpreter, U256::ZERO);
        return Ok(());
    }
    let mem_offset = revm::interpreter::as_usize_or_fail!(ctx.interpreter, mem_offset);
    ctx.interpreter
        .resize_memory(ctx.host.gas_params(), mem_offset, len)?;
    let session = session!(ctx.host);
    let n = {
        let mut memory = ctx.interpreter.memory.slice_mut(mem_offset, len);
        session.read(context, prepared, offset, &mut memory)
    };
    push!(ctx.interpreter, U256::from(n));
    Ok(())
}

/// SHARED_WRITE (0xE4): pops `handle, region_offset, size, mem_offset`, copies
/// memory into the region (what fits, or growing it when it auto-grows), pushes
/// the bytes written.
pub fn shared_write<H: ShmHost>(ctx: Ctx<'_, H>) -> Result<(), InstructionResult> {
    require_non_static!(ctx);
    popn!([handle, offset, size, mem_offset], ctx.interpreter);
    let context = ctx.interpreter.input.target_address();
    let prepared = session!(ctx.host)
        .prepare(context, handle, AccessKind::Write)
        .map_err(halt_result)?;
    let len = revm::interpreter::as_usize_or_fail!(ctx.interpreter, size);
    let Some(offset) = region_offset(offset, len) else {
        return Err(halt_result(session!(ctx.host).offset_overflow()));
    };
    let quote = session!(ctx.host).write_quote(context, &prepared, offset, len as u64);
    revm::interpreter::gas!(ctx.interpreter, quote.cost);
    if len == 0 {
        session!(ctx.host).touch(&prepared);
        push!(ctx.interpreter, U256::ZERO);
        return Ok(());
    }
    let mem_offset = revm::interpreter::as_usize_or_fail!(ctx.interpreter, mem_offset);
    ctx.interpreter
        .resize_memory(ctx.host.gas_params(), mem_offset, len)?;
    let session = session!(ctx.host);
    let gas = &mut ctx.interpreter.gas;
    let written = {
        let data = ctx.interpreter.memory.slice_len(mem_offset, len);
        session.write(context, prepared, quote, offset, &data, &mut |refund| {
            gas.erase_cost(refund)
        })
    };
    push!(ctx.interpreter, U256::from(written));
    Ok(())
}

/// Registers the five instructions at 0xE0–0xE4 (static gas 0: every price is
/// dynamic and charged by the instruction itself).
pub fn install<H: ShmHost>(table: &mut EthInstructions<EthInterpreter, H>) {
    table.insert_instruction(SHARED_ALLOC, Instruction::new(shared_alloc::<H>), 0);
    table.insert_instruction(SHARED_FREE, Instruction::new(shared_free::<H>), 0);
    table.insert_instruction(SHARED_MAP, Instruction::new(shared_map::<H>), 0);
    table.insert_instruction(SHARED_READ, Instruction::new(shared_read::<H>), 0);
    table.insert_instruction(SHARED_WRITE, Instruction::new(shared_write::<H>), 0);
}
