//! A harness for the workspace-level integration tests: contracts written in the
//! project's tiny assembly, deployed into an in-memory state, called in
//! transactions that run on revm with shared memory on over one
//! [`SharedMemoryManager`], each transaction committed before the next.
//!
//! ```
//! use shm_tests::{Harness, SENDER};
//! let mut h = Harness::new(shm_manager::SharedMemoryConfig::testing());
//! let target = h.deploy_asm("PUSH 0 PUSH 64 SHARED_ALLOC PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN");
//! let out = h.call(target, &[]);
//! assert!(out.is_success());
//! assert_eq!(out.word(0), shm_primitives::U256::from(1u64 << 32 | 1)); // index 1, generation 1
//! # let _ = SENDER;
//! ```
#![forbid(unsafe_code)]

use alloy_primitives::{Address, Bytes, U256};
use revm::{
    bytecode::Bytecode,
    context::{result::ExecutionResult, TxEnv},
    database::{CacheDB, EmptyDB},
    primitives::{hardfork::SpecId, TxKind},
    state::AccountInfo,
    ExecuteCommitEvm,
};
use shm_manager::{HaltCause, SharedMemoryConfig, SharedMemoryManager};
use shm_opcodes::{GasSchedule, ShmEvmBuilder, TxPeak};
use std::sync::Arc;

/// The account every harness transaction comes from.
pub const SENDER: Address = Address::repeat_byte(0x5e);

/// Gas limit of harness transactions unless told otherwise.
pub const GAS_LIMIT: u64 = 30_000_000;

/// What one transaction did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// revm's result.
    pub result: ExecutionResult,
    /// The precise cause of the last shared-memory halt in the transaction.
    pub last_halt: Option<HaltCause>,
    /// The most region memory and page buffers the transaction held at once.
    pub peak: TxPeak,
}

impl Outcome {
    /// Whether the transaction succeeded.
    pub fn is_success(&self) -> bool {
        self.result.is_success()
    }
    /// Return data (empty for a halt).
    pub fn output(&self) -> Bytes {
        self.result.output().cloned().unwrap_or_default()
    }
    /// The `i`-th 32-byte word of the return data (zero past its end).
    pub fn word(&self, i: usize) -> U256 {
        let out = self.output();
        let mut word = [0u8; 32];
        if let Some(bytes) = out.get(i * 32..) {
            let n = bytes.len().min(32);
            word[..n].copy_from_slice(&bytes[..n]);
        }
        U256::from_be_bytes(word)
    }
    /// Gas used by the transaction.
    pub fn gas_used(&self) -> u64 {
        self.result.tx_gas_used()
    }
}

/// An in-memory chain with shared memory on.
#[derive(Debug)]
pub struct Harness {
    /// The manager every transaction of this harness shares.
    pub manager: Arc<SharedMemoryManager>,
    /// The committed state.
    pub db: CacheDB<EmptyDB>,
    /// The gas schedule.
    pub gas: GasSchedule,
    /// Fork rules.
    pub spec: SpecId,
    next_address: u64,
}

impl Harness {
    /// A harness over a new manager with `config`.
    pub fn new(config: SharedMemoryConfig) -> Self {
        Self::with_manager(SharedMemoryManager::new(config).expect("valid config"))
    }

    /// A harness over an existing manager (several harnesses may share one).
    pub fn with_manager(manager: Arc<SharedMemoryManager>) -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            SENDER,
            AccountInfo::default().with_balance(U256::from(10u128.pow(30))),
        );
        Self {
            manager,
            db,
            gas: GasSchedule::default(),
            spec: SpecId::OSAKA,
            next_address: 0xc0,
        }
    }

    /// Installs `code` at `address`.
    pub fn deploy_at(&mut self, address: Address, code: Bytes) {
        let info = AccountInfo::default()
            .with_nonce(1)
            .with_code(Bytecode::new_raw(code));
        self.db.insert_account_info(address, info);
    }

    /// Assembles `source` and installs it at the next fresh address (0x…c0, 0x…c1, …).
    pub fn deploy_asm(&mut self, source: &str) -> Address {
        let address = Address::left_padding_from(&self.next_address.to_be_bytes());
        self.next_address += 1;
        self.deploy_asm_at(address, source);
        address
    }

    /// Assembles `source` and installs it at `address`.
    pub fn deploy_asm_at(&mut self, address: Address, source: &str) {
        let code = shm_evm::asm::assemble(source).unwrap_or_else(|e| panic!("assembly: {e}"));
        self.deploy_at(address, code);
    }

    /// Calls `to` with `input` (gas [`GAS_LIMIT`]) and commits the transaction.
    pub fn call(&mut self, to: Address, input: &[u8]) -> Outcome {
        self.call_with_gas(to, input, GAS_LIMIT)
    }

    /// Calls `to` with `input` and `gas_limit` and commits the transaction.
    pub fn call_with_gas(&mut self, to: Address, input: &[u8], gas_limit: u64) -> Outcome {
        let tx = TxEnv::builder()
            .caller(SENDER)
            .kind(TxKind::Call(to))
            .data(Bytes::copy_from_slice(input))
            .gas_limit(gas_limit)
            .gas_price(0)
            .build()
            .expect("a valid transaction");
        let builder = ShmEvmBuilder::new(self.manager.clone())
            .gas_schedule(self.gas)
            .spec(self.spec);
        let mut ctx = builder.context(&mut self.db);
        ctx.cfg.disable_nonce_check = true;
        ctx.cfg.tx_gas_limit_cap = Some(u64::MAX);
        let mut evm = ShmEvmBuilder::build_from(ctx);
        let result = evm.transact_commit(tx).expect("the transaction is valid");
        let session = evm.ctx.journaled_state.hook();
        Outcome {
            result,
            last_halt: session.last_halt(),
            peak: session.last_transaction_peak(),
        }
    }
}

/// A 32-byte big-endian word of `value`, for calldata.
pub fn word(value: impl Into<U256>) -> [u8; 32] {
    value.into().to_be_bytes()
}

/// Calldata of several words.
pub fn words<const N: usize>(values: [U256; N]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes::<32>()).collect()
}
