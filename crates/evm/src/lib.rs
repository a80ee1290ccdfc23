//! Builds and runs an EVM for one transaction: stock mainnet revm, or revm with
//! shared memory on.
//!
//! This is the library behind `evm run`: it turns a [`RunConfig`] (code, calldata,
//! gas, value, fork, an optional [`Prestate`]) into an in-memory state with the code
//! installed at the receiver, executes one transaction and returns a [`RunOutcome`]
//! that renders as text or JSON ([`RunReport`]) and can dump the post state. It also
//! holds the EIP-3155 tracer that names the shared-memory opcodes ([`Eip3155Tracer`]),
//! the state-test executors with shared memory on and with a trace
//! ([`SharedMemoryExecutor`], [`TracingExecutor`]), and the assembler and disassembler
//! ([`asm`]).
//!
//! ```
//! use shm_evm::{RunConfig, execute};
//! // PUSH1 1 PUSH1 2 ADD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
//! let code = alloy_primitives::hex::decode("600160020160005260206000f3").unwrap();
//! let config = RunConfig::new(code.into());
//! let outcome = execute(&config, None).unwrap();
//! assert!(outcome.result.is_success());
//! assert_eq!(outcome.result.output().unwrap()[31], 3);
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod asm;
mod dump;
mod names;
mod prestate;
mod report;
mod run;
mod statetest;
mod trace;

pub use dump::{dump_state, AccountDump};
pub use names::{opcode_name, SHARED_OPCODES};
pub use prestate::{Prestate, PrestateError, MAX_PRESTATE_BYTES};
pub use report::{LogReport, RunReport, RunStatus};
pub use run::{
    execute, execute_shared, prepare_db, RepeatRunner, RunConfig, RunError, RunOutcome, ShmReport,
    Trace, DEFAULT_RECEIVER, DEFAULT_SENDER,
};
pub use statetest::{SharedMemoryExecutor, TracingExecutor};
pub use trace::{Eip3155Tracer, HaltLocator, HaltSite, TraceOptions};

/// The fork `evm run` uses unless told otherwise: revm 43's default (`Osaka`, the
/// newest fork it treats as finished; `Amsterdam` is selectable but still in progress).
pub const DEFAULT_SPEC: revm::primitives::hardfork::SpecId =
    revm::primitives::hardfork::SpecId::OSAKA;
