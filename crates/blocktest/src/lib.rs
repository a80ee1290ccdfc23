//! Runs the Ethereum blockchain tests (the `BlockchainTests` fixtures: `ValidBlocks`,
//! `InvalidBlocks`, `TransitionTests`) through alloy-evm's `EthBlockExecutor`, with EVMs
//! from alloy-evm's `EthEvmFactory` or from `shm_alloy_evm::ShmEvmFactory` with shared
//! memory off or on ([`BlockExecutors`]).
//!
//! For each test the genesis and every block are decoded from RLP and imported in order,
//! as a node imports them: the header is checked against its parent and the body against
//! the header ([`consensus`]: what reth's consensus crate checks — gas limit bounds, base
//! fee, timestamps, difficulty, blob gas, withdrawals, uncles — which the executor does
//! not), then the block is executed and its gas used, logs bloom, receipts root and state
//! root are checked against the header. A block the fixture marks invalid must be rejected
//! with the exception it names ([`Rejection`]), leaving the chain as it was. Side chains
//! are kept; the head follows the heaviest chain before the merge and the newest block
//! after it. Finally the head must be `lastblockhash` and its state `postState`.
//!
//! ```no_run
//! use alloy_evm::eth::EthEvmFactory;
//! use shm_blocktest::{run, BlocktestOptions};
//! let report = run(&BlocktestOptions::new(["BlockchainTests"]), &EthEvmFactory::default())?;
//! for failure in &report.failures {
//!     eprintln!("{failure}");
//! }
//! println!("{}", report.summary_line());
//! # Ok::<(), shm_statetest::RunnerError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chain;
pub mod consensus;
mod exception;
mod fixture;
mod network;
mod report;
mod runner;

pub use chain::{run_test, BlockExecutors, TestFailure};
pub use exception::{BlockException, Rejection, TransactionException};
pub use fixture::{BlockchainTest, FixtureAccount, FixtureBlock, FixtureFile};
pub use network::{ForkSchedule, Network, UnknownNetwork, CHAIN_ID};
pub use report::{Failure, FailureKind, Report, Skip};
pub use runner::{run, BlocktestOptions};
