//! The five instructions, as revm instruction functions, and their registration.
//!
//! Each function pops its operands, checks the static rule, lets the
//! [`ActiveSession`](crate::ActiveSession) check and charge the operation,
//! expands EVM memory the way CALLDATACOPY does, and only then performs the
//! effect. A halt reaches revm as the nearest mainnet result ([`halt_result`]);
//! its precise cause is kept in the session and counted in the metrics.

use crate::{session::OpError, ShmSession};
use revm::{
    context_interface::ContextTr,
    handler::instructions::EthInstructions,
    interpreter::{
        as_usize_or_fail, interpreter::EthInterpreter, interpreter_types::InputsTr, popn, push,
        Instruction, InstructionContext, InstructionResult,
    },
    primitives::U256,
};
use shm_primitives::HaltCause;

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
            return Err(halt_result(session.halt(HaltCause::StaticWrite)));
        }
    };
}

/// SHARED_ALLOC (0xE0): pops `size, flags`, pushes the new handle or 0.
pub fn shared_alloc<H: ShmHost>(ctx: Ctx<'_, H>) -> Result<(), InstructionResult> {
    require_non_static!(ctx);
    popn!([size, flags], ctx.interpreter);
    let context = ctx.interpreter.input.target_address();
    let handle = session!(ctx.host)
        .alloc(context, size, flags, &mut ctx.interpreter.gas)
        .map_err(halt_result)?;
    push!(ctx.interpreter, handle.map_or(U256::ZERO, |h| h.to_u256()));
    Ok(())
}

/// SHARED_FREE (0xE1): pops `handle`, pushes 1.
pub fn shared_free<H: ShmHost>(ctx: Ctx<'_, H>) -> Result<(), InstructionResult> {
    require_non_static!(ctx);
    popn!([handle], ctx.interpreter);
    let context = ctx.interpreter.input.target_address();
    session!(ctx.host)
        .free(context, handle, &mut ctx.interpreter.gas)
        .map_err(halt_result)?;
    push!(ctx.interpreter, U256::ONE);
    Ok(())
}

/// SHARED_MAP (0xE2): pops `handle, options`, pushes 1.
pub fn shared_map<H: ShmHost>(ctx: Ctx<'_, H>) -> Result<(), InstructionResult> {
    popn!([handle, options], ctx.interpreter);
    let context = ctx.interpreter.input.target_address();
    session!(ctx.host)
        .map(context, handle, options, &mut ctx.interpreter.gas)
        .map_err(halt_result)?;
    push!(ctx.interpreter, U256::ONE);
    Ok(())
}

/// SHARED_READ (0xE3): pops `handle, region_offset, size, mem_offset`, copies the
/// region into memory (zero past its end), pushes the bytes that came from it.
pub fn shared_read<H: ShmHost>(ctx: Ctx<'_, H>) -> Result<(), InstructionResult> {
    popn!([handle, offset, size, mem_offset], ctx.interpreter);
    let context = ctx.interpreter.input.target_address();
    let access = session!(ctx.host)
        .begin_read(context, handle, offset, size, &mut ctx.interpreter.gas)
        .map_err(halt_result)?;
    if access.len == 0 {
        push!(ctx.interpreter, U256::ZERO);
        return Ok(());
    }
    // `mem_offset` as CALLDATACOPY takes it, and memory expansion charged.
    let mem_offset = as_usize_or_fail!(ctx.interpreter, mem_offset);
    ctx.interpreter
        .resize_memory(ctx.host.gas_params(), mem_offset, access.len)?;
    let session = session!(ctx.host);
    let n = {
        let mut memory = ctx.interpreter.memory.slice_mut(mem_offset, access.len);
        session.finish_read(context, &access, &mut memory)
    }
    .map_err(halt_result)?;
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
    let access = session!(ctx.host)
        .begin_write(context, handle, offset, size, &mut ctx.interpreter.gas)
        .map_err(halt_result)?;
    if access.len == 0 {
        push!(ctx.interpreter, U256::ZERO);
        return Ok(());
    }
    let mem_offset = as_usize_or_fail!(ctx.interpreter, mem_offset);
    ctx.interpreter
        .resize_memory(ctx.host.gas_params(), mem_offset, access.len)?;
    let session = session!(ctx.host);
    let gas = &mut ctx.interpreter.gas;
    let written = {
        let data = ctx.interpreter.memory.slice_len(mem_offset, access.len);
        session.finish_write(context, &access, &data, gas)
    }
    .map_err(halt_result)?;
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
