//! An EIP-3155 tracer that names the shared-memory opcodes, and a locator of the
//! instruction that halted a frame.
//!
//! With its default [`TraceOptions`] and shared memory off, [`Eip3155Tracer`] writes
//! exactly what revm's `TracerEip3155` writes, line for line, so traces stay
//! comparable with `revme`'s. On top of that it can
//!
//! - name 0xE0–0xE4 (`SHARED_ALLOC` … `SHARED_WRITE`) when shared memory is on
//!   (revm's table, which the stock tracer uses, knows them as undefined);
//! - include the memory (`--trace.memory`), leave out the stack (`--trace.nostack`)
//!   and include the real return data (`--trace.returndata`; revm writes `0x`);
//! - stop after a number of steps (a trace of a failed state test re-run is for a
//!   human to read);
//! - keep the first write error instead of dropping it, so that a trace that could
//!   not be written (a full disk, a closed pipe) is reported.

use crate::opcode_name;
use revm::{
    context_interface::{Cfg, ContextTr, JournalTr, Transaction},
    inspector::inspectors::GasInspector,
    interpreter::{
        interpreter::EthInterpreter,
        interpreter_types::{Jumps, LoopControl, MemoryTr, ReturnData},
        CallInputs, CallOutcome, CreateInputs, CreateOutcome, Interpreter, InterpreterResult,
    },
    primitives::{hex, B256, U256},
    Inspector,
};
use serde::Serialize;
use std::io::Write;

/// What each trace line holds, and when the trace stops.
///
/// ```
/// let options = shm_evm::TraceOptions { memory: true, ..Default::default() };
/// assert!(options.stack && !options.return_data && options.summary);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceOptions {
    /// Include the memory of each step as hex (`--trace.memory`).
    pub memory: bool,
    /// Include the stack (on unless `--trace.nostack`).
    pub stack: bool,
    /// Include the return data of the last call (`--trace.returndata`); otherwise
    /// `returnData` is `0x`, as revm's tracer writes it.
    pub return_data: bool,
    /// Write the summary line (`stateRoot`, `output`, `gasUsed`, `pass`, `fork`)
    /// when the transaction's top frame ends, as revm's tracer does by default.
    pub summary: bool,
    /// Name 0xE0–0xE4 as the shared-memory opcodes.
    pub shared_memory: bool,
    /// Write at most this many step lines (then one `{"truncated":…}` line).
    pub step_limit: Option<u64>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            memory: false,
            stack: true,
            return_data: false,
            summary: true,
            shared_memory: false,
            step_limit: None,
        }
    }
}

/// An [EIP-3155](https://eips.ethereum.org/EIPS/eip-3155) tracer: one JSON object
/// per executed instruction, written to `W`.
///
/// ```
/// use revm::{
///     bytecode::Bytecode, database::CacheDB, primitives::{address, TxKind},
///     context::TxEnv, state::AccountInfo, Context, InspectEvm, MainBuilder, MainContext,
/// };
/// use shm_evm::{Eip3155Tracer, TraceOptions};
///
/// let to = address!("0x0000000000000000000000000000000000001000");
/// let mut db = CacheDB::<revm::database::EmptyDB>::default();
/// // PUSH1 1 PUSH1 2 ADD STOP
/// let code = Bytecode::new_raw(vec![0x60, 1, 0x60, 2, 0x01, 0x00].into());
/// db.insert_account_info(to, AccountInfo::default().with_code(code));
/// let tracer = Eip3155Tracer::new(Vec::new(), TraceOptions::default());
/// let mut evm = Context::mainnet().with_db(db).build_mainnet_with_inspector(tracer);
/// let tx = TxEnv::builder().kind(TxKind::Call(to)).gas_price(0).build().unwrap();
/// evm.inspect_tx(tx).unwrap();
/// let text = String::from_utf8(evm.inspector.finish().unwrap()).unwrap();
/// let lines: Vec<&str> = text.lines().collect();
/// assert_eq!(lines.len(), 5); // four steps and the summary
/// assert!(lines[2].contains(r#""opName":"ADD""#));
/// ```
pub struct Eip3155Tracer<W: Write> {
    output: W,
    options: TraceOptions,
    gas_inspector: GasInspector,
    stack: Vec<U256>,
    pc: u64,
    opcode: u8,
    gas: u64,
    reservoir: u64,
    state_gas: u64,
    refunded: i64,
    mem_size: usize,
    memory: Option<String>,
    return_data: Option<String>,
    steps: u64,
    truncated: bool,
    error: Option<std::io::Error>,
}

impl<W: Write> std::fmt::Debug for Eip3155Tracer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eip3155Tracer")
            .field("options", &self.options)
            .field("steps", &self.steps)
            .field("truncated", &self.truncated)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// One step, with revm's field names and order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Step<'a> {
    pc: u64,
    depth: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_name: Option<&'static str>,
    op: u8,
    #[serde(serialize_with = "hex_u64")]
    gas: u64,
    #[serde(serialize_with = "hex_u64")]
    reservoir: u64,
    #[serde(serialize_with = "hex_u64")]
    state_gas: u64,
    #[serde(serialize_with = "hex_u64")]
    gas_cost: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<&'a [U256]>,
    return_data: &'a str,
    #[serde(serialize_with = "hex_u64")]
    refund: u64,
    #[serde(serialize_with = "hex_u64")]
    mem_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<String>,
}

/// The line after the top frame ends, with revm's field names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    state_root: String,
    output: String,
    #[serde(serialize_with = "hex_u64")]
    gas_used: u64,
    pass: bool,
    fork: String,
}

fn hex_u64<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{value:#x}"))
}

impl<W: Write> Eip3155Tracer<W> {
    /// A tracer writing to `output` (wrap a slow writer in a `BufWriter`).
    pub fn new(output: W, options: TraceOptions) -> Self {
        Self {
            output,
            options,
            gas_inspector: GasInspector::new(),
            stack: Vec::new(),
            pc: 0,
            opcode: 0,
            gas: 0,
            reservoir: 0,
            state_gas: 0,
            refunded: 0,
            mem_size: 0,
            memory: None,
            return_data: None,
            steps: 0,
            truncated: false,
            error: None,
        }
    }

    /// Step lines written so far (over every transaction traced).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Whether the step limit cut the trace short.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Flushes the output and returns it, or the first error met writing it.
    pub fn finish(mut self) -> std::io::Result<W> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        self.output.flush()?;
        Ok(self.output)
    }

    /// Flushes the output; returns (and forgets) the first error met so far.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        self.output.flush()
    }

    fn write_line(&mut self, value: &impl Serialize) {
        if self.error.is_some() {
            return;
        }
        let result = serde_json::to_writer(&mut self.output, value)
            .map_err(std::io::Error::from)
            .and_then(|()| self.output.write_all(b"\n"));
        if let Err(error) = result {
            self.error = Some(error);
        }
    }

    fn reset(&mut self) {
        self.gas_inspector = GasInspector::new();
        self.stack.clear();
        self.pc = 0;
        self.opcode = 0;
        self.gas = 0;
        self.reservoir = 0;
        self.state_gas = 0;
        self.refunded = 0;
        self.mem_size = 0;
    }

    fn top_frame_end(&mut self, result: &InterpreterResult, context: &mut impl ContextTr) {
        if self.options.summary {
            let summary = Summary {
                state_root: B256::ZERO.to_string(),
                output: result.output.to_string(),
                gas_used: context.tx().gas_limit() - self.gas_inspector.gas_remaining(),
                pass: result.is_ok(),
                fork: context.cfg().spec().into().to_string(),
            };
            self.write_line(&summary);
        }
        if self.error.is_none() {
            if let Err(error) = self.output.flush() {
                self.error = Some(error);
            }
        }
        self.reset();
    }
}

impl<CTX: ContextTr, W: Write> Inspector<CTX, EthInterpreter> for Eip3155Tracer<W> {
    fn initialize_interp(&mut self, interp: &mut Interpreter<EthInterpreter>, _: &mut CTX) {
        self.gas_inspector.initialize_interp(&interp.gas);
    }

    fn step(&mut self, interp: &mut Interpreter<EthInterpreter>, _: &mut CTX) {
        self.gas_inspector.step(&interp.gas);
        self.stack.clear();
        if self.options.stack {
            self.stack.extend_from_slice(interp.stack.data());
        }
        self.memory = self
            .options
            .memory
            .then(|| hex::encode_prefixed(interp.memory.slice(0..interp.memory.size()).as_ref()));
        self.return_data = self
            .options
            .return_data
            .then(|| interp.return_data.buffer().to_string());
        self.pc = interp.bytecode.pc() as u64;
        self.opcode = interp.bytecode.opcode();
        self.mem_size = interp.memory.size();
        self.gas = interp.gas.remaining();
        self.reservoir = interp.gas.reservoir();
        // EIP-8037's state gas may dip below zero inside a child frame; revm's tracer
        // shows it clamped at 0, and so do we.
        self.state_gas = interp.gas.state_gas_spent().max(0) as u64;
        self.refunded = interp.gas.refunded();
    }

    fn step_end(&mut self, interp: &mut Interpreter<EthInterpreter>, context: &mut CTX) {
        self.gas_inspector.step_end(&interp.gas);
        if self
            .options
            .step_limit
            .is_some_and(|limit| self.steps >= limit)
        {
            if !self.truncated {
                self.truncated = true;
                let limit = self.steps;
                self.write_line(&serde_json::json!({ "truncated": limit }));
            }
            return;
        }
        self.steps += 1;
        let return_data = self.return_data.take();
        let memory = self.memory.take();
        // Out of `self` while the line is written (written through `&mut self`).
        let stack = std::mem::take(&mut self.stack);
        let step = Step {
            pc: self.pc,
            depth: context.journal_mut().depth() as u64,
            op_name: opcode_name(self.opcode, self.options.shared_memory),
            op: self.opcode,
            gas: self.gas,
            reservoir: self.reservoir,
            state_gas: self.state_gas,
            gas_cost: self.gas_inspector.last_gas_cost(),
            stack: self.options.stack.then_some(stack.as_slice()),
            return_data: return_data.as_deref().unwrap_or("0x"),
            refund: self.refunded as u64,
            mem_size: self.mem_size as u64,
            error: interp
                .bytecode
                .action()
                .as_ref()
                .and_then(|action| action.instruction_result())
                .map(|result| format!("{result:?}")),
            memory,
        };
        self.write_line(&step);
        self.stack = stack;
    }

    fn call_end(&mut self, context: &mut CTX, _: &CallInputs, outcome: &mut CallOutcome) {
        self.gas_inspector.call_end(outcome);
        if context.journal_mut().depth() == 0 {
            self.top_frame_end(&outcome.result, context);
        }
    }

    fn create_end(&mut self, context: &mut CTX, _: &CreateInputs, outcome: &mut CreateOutcome) {
        self.gas_inspector.create_end(outcome);
        if context.journal_mut().depth() == 0 {
            self.top_frame_end(&outcome.result, context);
        }
    }
}

/// The last instruction that ended a frame with an exceptional halt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HaltSite {
    /// Program counter of the instruction.
    pub pc: u64,
    /// Call depth of its frame (0 is the transaction's own frame).
    pub depth: u64,
    /// The opcode.
    pub op: u8,
    /// Its name (`SHARED_WRITE` … with shared memory on), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_name: Option<&'static str>,
    /// revm's instruction result, as `Debug` prints it (`OutOfGas`, `StateChangeDuringStaticCall`, …).
    pub error: String,
}

impl std::fmt::Display for HaltSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.op_name {
            Some(name) => write!(f, "{name}")?,
            None => write!(f, "opcode {:#04x}", self.op)?,
        }
        write!(
            f,
            " at pc {} (depth {}): {}",
            self.pc, self.depth, self.error
        )
    }
}

/// Records the last instruction that halted its frame, for reports that name it
/// (the halt reason revm returns says what went wrong, not where).
#[derive(Clone, Debug, Default)]
pub struct HaltLocator {
    shared_memory: bool,
    pc: u64,
    opcode: u8,
    last: Option<HaltSite>,
}

impl HaltLocator {
    /// A locator naming 0xE0–0xE4 when `shared_memory` is on.
    pub fn new(shared_memory: bool) -> Self {
        Self {
            shared_memory,
            ..Self::default()
        }
    }

    /// The last halting instruction seen, if any.
    pub fn last(&self) -> Option<&HaltSite> {
        self.last.as_ref()
    }

    /// Takes the last halting instruction seen.
    pub fn take(&mut self) -> Option<HaltSite> {
        self.last.take()
    }
}

impl<CTX: ContextTr> Inspector<CTX, EthInterpreter> for HaltLocator {
    fn step(&mut self, interp: &mut Interpreter<EthInterpreter>, _: &mut CTX) {
        self.pc = interp.bytecode.pc() as u64;
        self.opcode = interp.bytecode.opcode();
    }

    fn step_end(&mut self, interp: &mut Interpreter<EthInterpreter>, context: &mut CTX) {
        let Some(result) = interp
            .bytecode
            .action()
            .as_ref()
            .and_then(|action| action.instruction_result())
        else {
            return;
        };
        if result.is_halt() {
            self.last = Some(HaltSite {
                pc: self.pc,
                depth: context.journal_mut().depth() as u64,
                op: self.opcode,
                op_name: opcode_name(self.opcode, self.shared_memory),
                error: format!("{result:?}"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::{
        bytecode::Bytecode,
        context::TxEnv,
        database::{CacheDB, EmptyDB},
        inspector::inspectors::TracerEip3155,
        primitives::{address, Address, TxKind},
        state::AccountInfo,
        Context, InspectEvm, MainBuilder, MainContext,
    };
    use std::{cell::RefCell, rc::Rc};

    const TO: Address = address!("0x0000000000000000000000000000000000001000");

    /// A writer the test can read after revm's tracer (which owns a `Box<dyn Write>`) is done.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn db(code: &[u8]) -> CacheDB<EmptyDB> {
        let mut db = CacheDB::<EmptyDB>::default();
        let code = Bytecode::new_raw(code.to_vec().into());
        db.insert_account_info(TO, AccountInfo::default().with_code(code));
        let callee = Bytecode::new_raw(CALLEE_CODE.to_vec().into());
        db.insert_account_info(CALLEE, AccountInfo::default().with_code(callee));
        db
    }

    fn tx() -> TxEnv {
        TxEnv::builder()
            .kind(TxKind::Call(TO))
            .gas_limit(1_000_000)
            .gas_price(0)
            .build()
            .unwrap()
    }

    fn ours(code: &[u8], options: TraceOptions) -> String {
        let tracer = Eip3155Tracer::new(Vec::new(), options);
        let mut evm = Context::mainnet()
            .with_db(db(code))
            .build_mainnet_with_inspector(tracer);
        evm.inspect_tx(tx()).unwrap();
        String::from_utf8(evm.inspector.finish().unwrap()).unwrap()
    }

    fn revms(code: &[u8]) -> String {
        let out = Shared::default();
        let tracer = TracerEip3155::new(Box::new(out.clone()));
        let mut evm = Context::mainnet()
            .with_db(db(code))
            .build_mainnet_with_inspector(tracer);
        evm.inspect_tx(tx()).unwrap();
        drop(evm);
        let bytes = out.0.borrow().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// Code at [`CALLEE`]: MSTORE 0x42 and REVERT with that word (32 bytes of return data).
    const CALLEE_CODE: &[u8] = &[0x60, 0x42, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xfd];
    const CALLEE: Address = address!("0x0000000000000000000000000000000000002000");

    /// MSTORE, a CALL of [`CALLEE`] (which reverts with data), RETURNDATASIZE, and 0xE0
    /// at pc 24 (invalid with shared memory off).
    const PROGRAM: &[u8] = &[
        0x60, 0xaa, 0x60, 0x00, 0x52, // PUSH1 0xaa PUSH1 0 MSTORE
        0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, // 5 × PUSH1 0
        0x61, 0x20, 0x00, 0x61, 0xff, 0xff, 0xf1, // PUSH2 CALLEE PUSH2 0xffff CALL
        0x3d, 0x50, // RETURNDATASIZE POP
        0xe0, // SHARED_ALLOC, or invalid with shared memory off
    ];

    #[test]
    fn default_output_is_revms_line_for_line() {
        let code = [0x60, 0x01, 0x60, 0x02, 0x01, 0x60, 0x00, 0x52, 0x00];
        assert_eq!(ours(&code, TraceOptions::default()), revms(&code));
        assert_eq!(ours(PROGRAM, TraceOptions::default()), revms(PROGRAM));
    }

    #[test]
    fn names_shared_opcodes_only_when_shared_memory_is_on() {
        let off = ours(PROGRAM, TraceOptions::default());
        let on = ours(
            PROGRAM,
            TraceOptions {
                shared_memory: true,
                ..TraceOptions::default()
            },
        );
        let last_step = |text: &str| -> serde_json::Value {
            let lines: Vec<&str> = text.lines().collect();
            serde_json::from_str(lines[lines.len() - 2]).unwrap()
        };
        assert_eq!(last_step(&off)["op"], 0xe0);
        assert!(last_step(&off).get("opName").is_none());
        assert_eq!(last_step(&on)["opName"], "SHARED_ALLOC");
    }

    #[test]
    fn memory_stack_and_return_data_options() {
        let text = ours(
            PROGRAM,
            TraceOptions {
                memory: true,
                stack: false,
                return_data: true,
                summary: false,
                ..TraceOptions::default()
            },
        );
        let steps: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert!(steps.iter().all(|step| step.get("stack").is_none()));
        assert!(steps.iter().all(|step| step.get("memory").is_some()));
        assert!(steps.iter().all(|step| step.get("stateRoot").is_none()));
        // After MSTORE the memory holds 0xaa in its last byte of the first word.
        let after_mstore = &steps[3]["memory"];
        assert!(
            after_mstore.as_str().unwrap().ends_with("aa"),
            "{after_mstore}"
        );
        // The callee reverted with the word 0x42; RETURNDATASIZE sees it as return data.
        let returndatasize = steps.iter().find(|step| step["op"] == 0x3d).unwrap();
        assert_eq!(
            returndatasize["returnData"],
            format!("0x{}42", "00".repeat(31))
        );
        // Before the call there is none.
        assert_eq!(steps[0]["returnData"], "0x");
    }

    #[test]
    fn step_limit_truncates_with_one_marker() {
        let text = ours(
            PROGRAM,
            TraceOptions {
                step_limit: Some(3),
                summary: false,
                ..TraceOptions::default()
            },
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3], r#"{"truncated":3}"#);
    }

    #[test]
    fn a_write_error_is_kept_and_returned() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let tracer = Eip3155Tracer::new(Full, TraceOptions::default());
        let mut evm = Context::mainnet()
            .with_db(db(PROGRAM))
            .build_mainnet_with_inspector(tracer);
        evm.inspect_tx(tx()).unwrap();
        let error = evm.inspector.finish().err().unwrap();
        assert_eq!(error.raw_os_error(), Some(28));
    }

    #[test]
    fn halt_locator_names_the_halting_instruction() {
        for (shared_memory, name) in [(false, None), (true, Some("SHARED_ALLOC"))] {
            let mut evm = Context::mainnet()
                .with_db(db(PROGRAM))
                .build_mainnet_with_inspector(HaltLocator::new(shared_memory));
            evm.inspect_tx(tx()).unwrap();
            let site = evm.inspector.take().unwrap();
            assert_eq!((site.pc, site.depth, site.op), (24, 1, 0xe0));
            assert_eq!(site.op_name, name);
            assert_eq!(site.error, "OpcodeNotFound");
        }
    }
}
