//! Shared memory as revm instructions ([`instructions`], [`ShmEvmBuilder`]), and
//! the [`HookedJournal`] that keeps its revert journal in step with revm's own:
//! it tells a [`FrameHook`] each time revm opens, commits or reverts a
//! checkpoint and each time a transaction ends.
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

/// Implements each listed method as a call of the method of the same name on
/// `self.$field`, with the same arguments: the wrappers here change nothing of
/// what they forward.
macro_rules! forward {
    ($field:ident;) => {};
    ($field:ident; $(#[$attr:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?)
        $(-> $ret:ty)?; $($rest:tt)*) => {
        #[inline]
        $(#[$attr])*
        fn $name(&self $(, $arg: $ty)*) $(-> $ret)? {
            self.$field.$name($($arg),*)
        }
        forward!($field; $($rest)*);
    };
    ($field:ident; $(#[$attr:meta])* fn $name:ident(&mut self $(, $arg:ident: $ty:ty)* $(,)?)
        $(-> $ret:ty)?; $($rest:tt)*) => {
        #[inline]
        $(#[$attr])*
        fn $name(&mut self $(, $arg: $ty)*) $(-> $ret)? {
            self.$field.$name($($arg),*)
        }
        forward!($field; $($rest)*);
    };
}

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
