//! Shared memory behind alloy-evm's [`EvmFactory`](alloy_evm::EvmFactory): the seam through
//! which Rust nodes and tools build EVMs.
//!
//! reth (`EthEvmConfig::new_with_evm_factory`), alloy-evm's `EthBlockExecutorFactory` and
//! Foundry never call revm builders directly: they take an `EvmFactory`. [`ShmEvmFactory`]
//! is one, producing [`ShmEthEvm`] (alloy-evm's [`Evm`](alloy_evm::Evm) trait) with shared
//! memory on or off by configuration:
//!
//! * off, every EVM behaves exactly as alloy-evm's `EthEvm` (tested transaction by
//!   transaction against `EthEvmFactory`);
//! * on, each EVM carries its own `ShmSession` over one shared `SharedMemoryManager`, and
//!   0xE0–0xE4 are the shared-memory instructions.
//!
//! Precompiles are alloy-evm's [`PrecompilesMap`](alloy_evm::precompiles::PrecompilesMap),
//! as reth's factories use ([`HookedPrecompiles`] runs the map over our hooked journal).
//! [`check_shared_memory_opcodes`] refuses shared memory on a fork that defines an opcode
//! at 0xE0–0xE4.
//!
//! Region effects follow the embedder's commit: [`ShmEthEvm::transact_commit`](alloy_evm::Evm::transact_commit)
//! and the executors of [`ShmBlockExecutorFactory`] (alloy-evm's Ethereum block executor,
//! publishing what it commits) make them final; a simulation's are abandoned.
//!
//! ```
//! use alloy_evm::{block::{BlockExecutor, BlockExecutorFactory}, eth::{EthBlockExecutionCtx,
//!     EthBlockExecutorFactory, receipt_builder::AlloyReceiptBuilder, spec::EthSpec}, EvmEnv, EvmFactory};
//! use revm::database::{InMemoryDB, State};
//! use shm_alloy_evm::ShmEvmFactory;
//!
//! // alloy-evm's Ethereum block executor, driven by our factory (shared memory off here).
//! let executors = EthBlockExecutorFactory::new(
//!     AlloyReceiptBuilder::default(), EthSpec::mainnet(), ShmEvmFactory::off());
//! let mut state = State::builder().with_database(InMemoryDB::default()).build();
//! let evm = executors.evm_factory().create_evm(&mut state, EvmEnv::default());
//! let ctx = EthBlockExecutionCtx {
//!     parent_hash: Default::default(), parent_beacon_block_root: None, ommers: &[],
//!     withdrawals: None, extra_data: Default::default(), tx_count_hint: None, slot_number: None,
//! };
//! let executor = executors.create_executor(evm, ctx);
//! let result = executor.execute_block(Vec::<alloy_consensus::transaction::Recovered<alloy_consensus::TxEnvelope>>::new())?;
//! assert_eq!(result.gas_used, 0);
//! # Ok::<(), alloy_evm::block::BlockExecutionError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod evm;
mod executor;
mod factory;
mod opcodes;
mod precompiles;

pub use evm::{ShmEthEvm, ShmEvmContext, ShmRevmEvm};
pub use executor::{PublishRegions, ShmBlockExecutor, ShmBlockExecutorFactory};
pub use factory::ShmEvmFactory;
pub use opcodes::{
    check_opcodes, check_shared_memory_opcodes, defined_opcodes, DefinedOpcode, OpcodeConflict,
    SHARED_MEMORY_OPCODES,
};
pub use precompiles::HookedPrecompiles;
