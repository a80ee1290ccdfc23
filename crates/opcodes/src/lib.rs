//! Shared memory as revm instructions, and the hook that keeps its revert
//! journal in step with revm's own.
//!
//! For now this crate holds [`hook`]: a [`JournalTr`](revm::context_interface::JournalTr)
//! implementation, [`HookedJournal`], that forwards every call to revm's
//! [`Journal`](revm::Journal) and tells a [`FrameHook`] each time revm opens,
//! commits or reverts a checkpoint and each time a transaction ends. State kept
//! by the hook therefore reverts with exactly the frames revm reverts, on
//! `transact*`, `inspect*` and system calls alike.
//!
//! ```
//! use revm::{
//!     database::InMemoryDB, primitives::hardfork::SpecId, ExecuteEvm, MainBuilder,
//! };
//! use shm_opcodes::{hooked_context, FrameHook, TxOutcome};
//!
//! /// Counts the frames that reverted.
//! #[derive(Default)]
//! struct Reverts(usize);
//!
//! impl FrameHook for Reverts {
//!     fn checkpoint(&mut self) {}
//!     fn checkpoint_commit(&mut self) {}
//!     fn checkpoint_revert(&mut self) {
//!         self.0 += 1;
//!     }
//!     fn transaction_end(&mut self, _outcome: TxOutcome) {}
//! }
//!
//! let mut evm = hooked_context(InMemoryDB::default(), SpecId::PRAGUE, Reverts::default())
//!     .build_mainnet();
//! // A call to an account without code: revm opens a checkpoint and commits it.
//! evm.transact(Default::default()).unwrap();
//! assert_eq!(evm.ctx.journaled_state.hook().0, 0);
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod db;
mod evm;
mod gas;
pub mod hook;
pub mod instructions;
mod ops;
mod session;
mod table;

pub use db::ShmDb;
pub use evm::{ShmContext, ShmEvm, ShmEvmBuilder};
pub use gas::GasSchedule;
pub use hook::{hooked_context, FrameHook, HookedContext, HookedEvm, HookedJournal, TxOutcome};
pub use instructions::{halt_result, ShmHost};
pub use ops::{ReadAccess, WriteAccess};
pub use session::{ActiveSession, OpError, ShmSession};
pub use shm_journal::TxPeak;
