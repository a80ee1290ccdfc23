//! The exchange programs (issue 9): the same payload moved four ways — as
//! calldata, through transient storage (TSTORE/TLOAD), through storage
//! (SSTORE/SLOAD) and through a region (SHARED_*) — in four scenarios, so that
//! `benches/benches/exchange.rs` can measure gas and time in one run and
//! `tests/tests/exchange.rs` can check every program without timing it.
//!
//! # The payload
//!
//! Word `i` of a payload is `(i + 1) · M mod 2²⁵⁶` ([`payload_word`]), with `M`
//! an odd 256-bit constant: bytes that are almost never zero (as hashes or
//! prices are, and as calldata pricing cares about), computed by the producer
//! in a few gas a word. [`SIZES`]: 32 B, 1 KiB, 32 KiB and 1 MiB.
//!
//! # The scenarios
//!
//! | scenario | the producer | the reader(s) must end with |
//! |---|---|---|
//! | [`Handoff`](Scenario::Handoff) | computes the payload and calls a callee | the whole payload in memory |
//! | [`Sparse`](Scenario::Sparse) | the same | 32 words at scattered offsets in memory ([`needed_words`]) |
//! | [`FanOut`](Scenario::FanOut) | computes it once and calls [`FAN_OUT`] callees | each the whole payload in memory |
//! | [`Outside`](Scenario::Outside) | is outside the transaction: the host, before the run | the 32 words, in each of many transactions |
//!
//! In the first three the callee is the producing contract itself, called
//! again (`CALL` to `ADDRESS`): transient storage and storage belong to one
//! contract, so a second frame of that contract is the only callee that can
//! TLOAD or SLOAD what the producer stored (another contract would need a
//! getter call that returns the data as returndata — calldata's path plus the
//! stores). Calldata and regions would work across contracts alike; the
//! region callee still MAPs the region, as a callee in another contract must
//! under the `production` preset's Strict level. One topology for all four
//! keeps EIP-2929's account costs out of the comparison.
//!
//! # How each medium is written
//!
//! - **Calldata**: the producer computes the payload into memory and CALLs with
//!   it as arguments; the callee CALLDATACOPYs what it needs (or CALLDATALOADs
//!   each needed word). In [`Outside`](Scenario::Outside) the transaction
//!   carries the whole payload ([`Medium::Calldata`], where it fits) or just
//!   the needed words ([`Medium::CalldataWords`]).
//! - **Transient storage / storage**: the producer TSTOREs / SSTOREs word `i`
//!   at slot `i` straight from the stack (no memory); the callee TLOADs /
//!   SLOADs into memory. In [`Outside`](Scenario::Outside) storage is the
//!   reader's prestate (cold SLOADs); transient storage does not outlive a
//!   transaction, so it has no variant there.
//! - **Region**: the producer SHARED_ALLOCs the region and computes the
//!   payload through a memory *window* of at most [`WINDOW`] bytes, writing
//!   each full window into the region with one SHARED_WRITE; it passes the
//!   handle as calldata; the callee MAPs and READs once (or READs each needed
//!   word). The region is the buffer and EVM memory only a window, so the
//!   payload is held twice (region, callee memory) as with calldata (caller
//!   memory, callee memory) — not three times, which is what makes a region
//!   lose when the producer first builds the whole payload in memory. In
//!   [`Outside`](Scenario::Outside) the host made the region before the run
//!   (`create_region`, `write_region`, a read grant and a host mapping for the
//!   reader) and the transaction's calldata is the handle.
//!
//! Every reader ends with `STOP`; [`Prepared::run_checked`] runs the program
//! under an inspector that copies each reader's memory at that `STOP` and
//! compares it with what the reader must hold.
//!
//! ```
//! use shm_benches::exchange::{Exchange, Medium, Scenario, TX_GAS_CAP};
//!
//! let exchange = Exchange::new(Scenario::Handoff, Medium::Region, 1024);
//! let prepared = exchange.prepare().unwrap();
//! let run = prepared.run_checked(TX_GAS_CAP).unwrap();
//! assert!(run.gas_used > 21_000);
//! ```

use crate::{bench_cfg, production_manager};
use alloy_primitives::{Address, Bytes, U256};
use revm::{
    bytecode::Bytecode,
    context::{result::ExecutionResult, TxEnv},
    database::{CacheDB, EmptyDB, BENCH_CALLER, BENCH_TARGET},
    interpreter::{
        interpreter_types::{InputsTr, Jumps, MemoryTr},
        Interpreter,
    },
    primitives::{StorageKey, StorageValue, TxKind},
    state::AccountInfo,
    ExecuteEvm, InspectEvm, Inspector,
};
use shm_evm::asm::{assemble, AsmError};
use shm_manager::{Grant, RegionRequest, SharedMemoryManager, ShmError};
use shm_opcodes::{ShmEvm, ShmEvmBuilder};
use shm_primitives::{MapOptions, Permissions, RegionHandle};
use std::{fmt, sync::Arc};

/// EIP-7825's per-transaction gas cap: what "fits" means.
pub const TX_GAS_CAP: u64 = 16_777_216;

/// Gas limit for running a program that does not fit under the cap, to
/// measure what it would need.
pub const UNCAPPED_GAS: u64 = 1_000_000_000;

/// Payload sizes in bytes.
pub const SIZES: [u64; 4] = [32, 1 << 10, 32 << 10, 1 << 20];

/// Callees of [`Scenario::FanOut`].
pub const FAN_OUT: u64 = 16;

/// Words a sparse reader needs (all of them when the payload is smaller).
pub const SPARSE_WORDS: u64 = 32;

/// The region producer's memory window, in bytes: one page, so each
/// SHARED_WRITE fills exactly the page it saves in the journal.
pub const WINDOW: u64 = 4 << 10;

/// Who sends the transactions.
pub const SENDER: Address = BENCH_CALLER;

/// Where the exchange contract lives.
pub const EXCHANGE: Address = BENCH_TARGET;

/// The multiplier of [`payload_word`]: an odd 256-bit constant (the 64-bit
/// golden-ratio constant repeated, low limb made odd).
const MULTIPLIER: U256 = U256::from_limbs([
    0x7f4a_7c15_f39c_c061,
    0x5a30_8d31_3198_a2e0,
    0x9e37_79b9_7f4a_7c15,
    0x9e37_79b9_7f4a_7c15,
]);

/// Word `i` of every payload: `(i + 1) · M mod 2²⁵⁶`.
pub fn payload_word(i: u64) -> U256 {
    U256::from(i + 1).wrapping_mul(MULTIPLIER)
}

/// The payload of `size` bytes (a multiple of 32).
pub fn payload(size: u64) -> Vec<u8> {
    (0..size / 32)
        .flat_map(|i| payload_word(i).to_be_bytes::<32>())
        .collect()
}

/// The word indices a sparse reader needs, in the order it reads them: one in
/// each of [`SPARSE_WORDS`] equal strides of the payload, at a scattered
/// position within its stride (every word when the payload has 32 or fewer).
pub fn needed_words(size: u64) -> Vec<u64> {
    let words = size / 32;
    let count = SPARSE_WORDS.min(words);
    let stride = words / count;
    (0..count)
        .map(|j| j * stride + (j * 7919 + 13) % stride)
        .collect()
}

/// The needed words of the payload, concatenated.
fn needed_bytes(size: u64) -> Vec<u8> {
    needed_words(size)
        .into_iter()
        .flat_map(|i| payload_word(i).to_be_bytes::<32>())
        .collect()
}

/// Where the data comes from and what the reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// (a) A producer hands the whole payload to a callee, which needs all
    /// of it in memory.
    Handoff,
    /// (b) As (a), but the callee needs only [`needed_words`].
    Sparse,
    /// (c) One payload, read whole by [`FAN_OUT`] callees.
    FanOut,
    /// (d) The data was published outside the transaction; each transaction
    /// needs [`needed_words`].
    Outside,
}

impl Scenario {
    /// All four, in the issue's order.
    pub const ALL: [Scenario; 4] = [
        Scenario::Handoff,
        Scenario::Sparse,
        Scenario::FanOut,
        Scenario::Outside,
    ];

    /// Short name, used in criterion group names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Handoff => "handoff",
            Scenario::Sparse => "sparse",
            Scenario::FanOut => "fan_out",
            Scenario::Outside => "outside",
        }
    }

    /// What the table calls it.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Handoff => "(a) handoff: the callee needs the whole payload",
            Scenario::Sparse => "(b) sparse: the callee needs 32 scattered words",
            Scenario::FanOut => "(c) fan-out: 16 callees each need the whole payload",
            Scenario::Outside => {
                "(d) from outside the transaction: each transaction needs 32 scattered words"
            }
        }
    }

    /// The media that apply, the baseline first.
    pub fn media(self) -> &'static [Medium] {
        match self {
            Scenario::Handoff | Scenario::Sparse | Scenario::FanOut => &[
                Medium::Calldata,
                Medium::Transient,
                Medium::Storage,
                Medium::Region,
            ],
            Scenario::Outside => &[
                Medium::CalldataWords,
                Medium::Calldata,
                Medium::Storage,
                Medium::Region,
                Medium::Empty,
            ],
        }
    }

    /// The medium ratios are taken against.
    pub fn baseline(self) -> Medium {
        self.media()[0]
    }
}

/// How the data travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Medium {
    /// Calldata: call arguments, or the transaction's data in
    /// [`Scenario::Outside`] (the whole payload).
    Calldata,
    /// [`Scenario::Outside`] only: just the needed words, as the transaction's data.
    CalldataWords,
    /// Transient storage (EIP-1153).
    Transient,
    /// Storage.
    Storage,
    /// A shared-memory region.
    Region,
    /// [`Scenario::Outside`] only: a transaction with the region's handle as
    /// data that reads nothing — the fixed cost of a transaction.
    Empty,
}

impl Medium {
    /// Short name, used as criterion's bench id.
    pub fn name(self) -> &'static str {
        match self {
            Medium::Calldata => "calldata",
            Medium::CalldataWords => "calldata_words",
            Medium::Transient => "transient",
            Medium::Storage => "storage",
            Medium::Region => "region",
            Medium::Empty => "empty_tx",
        }
    }
}

/// A payload size as the tables write it.
pub fn size_label(size: u64) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// Why an exchange program could not be prepared or did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The program did not assemble (a bug in this module).
    #[error("{0}: {1}")]
    Asm(String, AsmError),
    /// The host could not publish the region.
    #[error("{0}: publishing the region: {1}")]
    Host(String, ShmError),
    /// revm refused the transaction before running it (for example, its
    /// calldata alone costs more than its gas limit).
    #[error("{name}: refused at {gas_limit} gas: {reason}")]
    Refused {
        /// The exchange.
        name: String,
        /// Its gas limit.
        gas_limit: u64,
        /// revm's error.
        reason: String,
    },
    /// The program ran but the run makes no sense (a bug in this module).
    #[error("{0}: {1}")]
    Bug(String, String),
    /// The transaction did not succeed.
    #[error("{name}: the transaction did not succeed at {gas_limit} gas: {result}")]
    Failed {
        /// The exchange.
        name: String,
        /// Its gas limit.
        gas_limit: u64,
        /// revm's result.
        result: String,
    },
    /// A reader did not end with what it needed.
    #[error("{name}: reader {reader} of {readers} holds the wrong bytes (first difference at byte {at})")]
    Mismatch {
        /// The exchange.
        name: String,
        /// Which reader.
        reader: usize,
        /// How many readers there are.
        readers: usize,
        /// The first byte that differs (or the length held, if too short).
        at: usize,
    },
    /// Not as many readers stopped as the scenario has.
    #[error("{name}: {got} readers stopped, {want} expected")]
    Readers {
        /// The exchange.
        name: String,
        /// Readers seen.
        got: usize,
        /// Readers expected.
        want: usize,
    },
    /// The run under the inspector and the plain run disagree.
    #[error("{name}: {inspected} gas under the checking inspector, {plain} without")]
    GasDiffers {
        /// The exchange.
        name: String,
        /// Gas of the inspected run.
        inspected: u64,
        /// Gas of the plain run.
        plain: u64,
    },
}

/// One program: a scenario, a medium and a payload size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Exchange {
    /// What is exchanged, and who needs what.
    pub scenario: Scenario,
    /// How.
    pub medium: Medium,
    /// Payload bytes (a multiple of 32).
    pub size: u64,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.scenario.name(),
            size_label(self.size),
            self.medium.name()
        )
    }
}

/// Every exchange of every scenario, size and medium.
pub fn all_exchanges() -> Vec<Exchange> {
    let mut all = Vec::new();
    for scenario in Scenario::ALL {
        for size in SIZES {
            for &medium in scenario.media() {
                all.push(Exchange::new(scenario, medium, size));
            }
        }
    }
    all
}

impl Exchange {
    /// The exchange of `size` bytes by `medium` in `scenario`.
    pub fn new(scenario: Scenario, medium: Medium, size: u64) -> Self {
        Self {
            scenario,
            medium,
            size,
        }
    }

    fn words(&self) -> u64 {
        self.size / 32
    }

    /// What each reader must hold at its `STOP`, in memory from offset 0.
    pub fn expected(&self) -> Vec<Vec<u8>> {
        match self.scenario {
            Scenario::Handoff => vec![payload(self.size)],
            Scenario::FanOut => vec![payload(self.size); FAN_OUT as usize],
            Scenario::Sparse => vec![needed_bytes(self.size)],
            Scenario::Outside if self.medium == Medium::Empty => vec![Vec::new()],
            Scenario::Outside => vec![needed_bytes(self.size)],
        }
    }

    /// The contract's assembly.
    pub fn source(&self) -> String {
        match self.scenario {
            Scenario::Outside => self.outside_reader(),
            Scenario::Handoff | Scenario::Sparse | Scenario::FanOut => {
                let calls = if self.scenario == Scenario::FanOut {
                    FAN_OUT
                } else {
                    1
                };
                format!(
                    "CALLER ADDRESS EQ PUSH @callee JUMPI
                     {producer}
                     {calls}
                     callee:
                     JUMPDEST
                     {callee}
                     fail:
                     JUMPDEST
                     PUSH0 PUSH0 REVERT",
                    producer = self.producer(),
                    calls = call_loop(calls, self.args_len()),
                    callee = self.callee(),
                )
            }
        }
    }

    /// Bytes of memory the producer passes as call arguments.
    fn args_len(&self) -> u64 {
        match self.medium {
            Medium::Calldata => self.size,
            Medium::Region => 32,
            _ => 0,
        }
    }

    /// Computes the payload into the medium; leaves the stack empty.
    fn producer(&self) -> String {
        let words = self.words();
        let word = format!("DUP1 PUSH 1 ADD PUSH32 {MULTIPLIER} MUL");
        let sink = match self.medium {
            Medium::Calldata => "DUP2 PUSH 5 SHL MSTORE",
            Medium::Transient => "DUP2 TSTORE",
            Medium::Storage => "DUP2 SSTORE",
            Medium::Region => return self.region_producer(),
            Medium::CalldataWords | Medium::Empty => unreachable!("Outside only"),
        };
        format!(
            "PUSH0                                   ; [i]
             produce:
             JUMPDEST
             {word}                                  ; [w, i]
             {sink}                                  ; word i stored; [i]
             PUSH 1 ADD
             DUP1 PUSH {words} GT PUSH @produce JUMPI
             POP"
        )
    }

    /// ALLOC, then the payload through a window of memory, one WRITE per
    /// full window; leaves the handle at memory 0 (the call's argument).
    fn region_producer(&self) -> String {
        let size = self.size;
        let words = self.words();
        let window = WINDOW.min(size);
        let window_words = window / 32;
        let mask = window_words - 1;
        format!(
            "PUSH0 PUSH {size} SHARED_ALLOC           ; [h] (flags 0: the callee is the owner)
             DUP1 ISZERO PUSH @fail JUMPI
             PUSH0                                   ; [i, h]
             produce:
             JUMPDEST
             DUP1 PUSH 1 ADD PUSH32 {MULTIPLIER} MUL ; [w, i, h]
             DUP2 PUSH {mask} AND PUSH 5 SHL MSTORE  ; window[i mod {window_words}] = w
             PUSH 1 ADD                              ; [i+1, h]
             DUP1 PUSH {mask} AND PUSH @produce JUMPI
             ; the window is full: region[32(i+1-{window_words}) ..] = window
             PUSH0 PUSH {window} PUSH {window_words} DUP4 SUB PUSH 5 SHL DUP5 SHARED_WRITE POP
             DUP1 PUSH {words} GT PUSH @produce JUMPI
             POP                                     ; [h]
             PUSH0 MSTORE"
        )
    }

    /// The callee's part: the medium into memory, then STOP.
    fn callee(&self) -> String {
        let size = self.size;
        let words = self.words();
        let whole = self.scenario != Scenario::Sparse;
        match (self.medium, whole) {
            (Medium::Calldata, true) => format!("PUSH {size} PUSH0 PUSH0 CALLDATACOPY STOP"),
            (Medium::Calldata, false) => {
                each_needed(size, |i, at| {
                    format!("PUSH {} CALLDATALOAD PUSH {at} MSTORE", i * 32)
                }) + " STOP"
            }
            (Medium::Transient | Medium::Storage, true) => {
                let load = self.load();
                format!(
                    "PUSH0                           ; [i]
                     read:
                     JUMPDEST
                     DUP1 {load} DUP2 PUSH 5 SHL MSTORE
                     PUSH 1 ADD
                     DUP1 PUSH {words} GT PUSH @read JUMPI
                     STOP"
                )
            }
            (Medium::Transient | Medium::Storage, false) => {
                let load = self.load();
                each_needed(size, |i, at| format!("PUSH {i} {load} PUSH {at} MSTORE")) + " STOP"
            }
            (Medium::Region, true) => format!(
                "PUSH0 CALLDATALOAD                  ; [h]
                 PUSH0 DUP2 SHARED_MAP POP
                 PUSH0 PUSH {size} PUSH0 DUP4 SHARED_READ POP
                 STOP"
            ),
            (Medium::Region, false) => format!(
                "PUSH0 CALLDATALOAD                  ; [h]
                 PUSH0 DUP2 SHARED_MAP POP
                 {reads}
                 STOP",
                reads = region_reads(size)
            ),
            (Medium::CalldataWords | Medium::Empty, _) => unreachable!("Outside only"),
        }
    }

    fn load(&self) -> &'static str {
        if self.medium == Medium::Transient {
            "TLOAD"
        } else {
            "SLOAD"
        }
    }

    /// The reader of [`Scenario::Outside`]: the transaction's target.
    fn outside_reader(&self) -> String {
        let size = self.size;
        let reads = match self.medium {
            Medium::Calldata => each_needed(size, |i, at| {
                format!("PUSH {} CALLDATALOAD PUSH {at} MSTORE", i * 32)
            }),
            Medium::CalldataWords => "CALLDATASIZE PUSH0 PUSH0 CALLDATACOPY".to_string(),
            Medium::Storage => {
                each_needed(size, |i, at| format!("PUSH {i} SLOAD PUSH {at} MSTORE"))
            }
            Medium::Region => format!("PUSH0 CALLDATALOAD {}", region_reads(size)),
            Medium::Empty => String::new(),
            Medium::Transient => unreachable!("transient storage does not outlive a transaction"),
        };
        reads + " STOP"
    }

    /// Makes the state (and, for [`Scenario::Outside`] with a region, the
    /// published region) and the transaction, over a fresh `production`
    /// manager.
    ///
    /// # Errors
    /// [`ExchangeError::Asm`] or [`ExchangeError::Host`] (both bugs or a
    /// misconfigured manager).
    pub fn prepare(&self) -> Result<Prepared, ExchangeError> {
        self.prepare_with(production_manager())
    }

    /// As [`prepare`](Self::prepare), over `manager`.
    ///
    /// # Errors
    /// As [`prepare`](Self::prepare).
    pub fn prepare_with(
        &self,
        manager: Arc<SharedMemoryManager>,
    ) -> Result<Prepared, ExchangeError> {
        let code = assemble(&self.source()).map_err(|e| ExchangeError::Asm(self.to_string(), e))?;
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            EXCHANGE,
            AccountInfo::default().with_code(Bytecode::new_raw(code)),
        );
        let mut data = Bytes::new();
        if self.scenario == Scenario::Outside {
            match self.medium {
                Medium::Calldata => data = payload(self.size).into(),
                Medium::CalldataWords => data = needed_bytes(self.size).into(),
                Medium::Storage => {
                    for i in 0..self.words() {
                        db.insert_account_storage(
                            EXCHANGE,
                            StorageKey::from(i),
                            StorageValue::from(payload_word(i)),
                        )
                        .expect("a CacheDB over EmptyDB never fails");
                    }
                }
                Medium::Region | Medium::Empty => {
                    let handle = self
                        .publish(&manager)
                        .map_err(|e| ExchangeError::Host(self.to_string(), e))?;
                    data = handle.to_u256().to_be_bytes::<32>().to_vec().into();
                }
                Medium::Transient => {}
            }
        }
        Ok(Prepared {
            exchange: *self,
            manager,
            db,
            data,
            expected: self.expected(),
        })
    }

    /// What the host does once, before the transactions: a region owned by
    /// the host holding the payload, which the reader may read (a grant) and
    /// has mapped (Strict).
    fn publish(&self, manager: &SharedMemoryManager) -> Result<RegionHandle, ShmError> {
        let handle = manager.create_region(RegionRequest::new(self.size).named(format!(
            "exchange-{}",
            size_label(self.size).replace(' ', "")
        )))?;
        manager.write_region(handle, 0, &payload(self.size))?;
        manager.grant(handle, EXCHANGE, Grant::new(Permissions::read_only()))?;
        manager.map_shared_region(handle, EXCHANGE, MapOptions::empty())?;
        Ok(handle)
    }
}

/// `body(word index, memory offset)` for each needed word, one after the other.
fn each_needed(size: u64, body: impl Fn(u64, u64) -> String) -> String {
    needed_words(size)
        .into_iter()
        .enumerate()
        .map(|(j, i)| body(i, j as u64 * 32))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One READ of 32 B per needed word, the handle on top of the stack.
fn region_reads(size: u64) -> String {
    each_needed(size, |i, at| {
        format!("PUSH {at} PUSH 32 PUSH {} DUP4 SHARED_READ POP", i * 32)
    })
}

/// `calls` CALLs of this contract with `args_len` bytes of memory from 0 as
/// arguments, each checked (a failed callee reverts the transaction).
fn call_loop(calls: u64, args_len: u64) -> String {
    format!(
        "PUSH {calls}                            ; [k]
         calls:
         JUMPDEST
         PUSH0 PUSH0 PUSH {args_len} PUSH0 PUSH0 ADDRESS GAS CALL
         ISZERO PUSH @fail JUMPI
         PUSH 1 SWAP1 SUB
         DUP1 PUSH @calls JUMPI
         STOP"
    )
}

/// An exchange ready to run: the state, the calldata and, for a published
/// region, the manager that holds it.
#[derive(Debug)]
pub struct Prepared {
    /// What it is.
    pub exchange: Exchange,
    /// The manager every EVM of this exchange uses.
    pub manager: Arc<SharedMemoryManager>,
    /// The state (never committed to: every run starts from it).
    pub db: CacheDB<EmptyDB>,
    /// The transaction's data.
    pub data: Bytes,
    /// What each reader must hold (see [`Exchange::expected`]).
    pub expected: Vec<Vec<u8>>,
}

/// A checked run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// `tx_gas_used`: intrinsic gas included, refunds deducted.
    pub gas_used: u64,
}

impl Prepared {
    /// The transaction, with `gas_limit`.
    ///
    /// # Panics
    /// Never (the builder only fails on contradictory fee fields).
    pub fn tx(&self, gas_limit: u64) -> TxEnv {
        TxEnv::builder()
            .caller(SENDER)
            .kind(TxKind::Call(EXCHANGE))
            .data(self.data.clone())
            .gas_limit(gas_limit)
            .build()
            .expect("a valid transaction")
    }

    /// An EVM with shared memory on over a copy of the state (EIP-7825's
    /// cap lifted, so that a program that does not fit can be measured).
    pub fn evm(&self) -> ShmEvm<CacheDB<EmptyDB>> {
        crate::shm_evm(&self.manager, self.db.clone())
    }

    /// Runs the transaction once under an inspector that copies each
    /// reader's memory at its `STOP`, checks every reader holds what it
    /// needs, runs it again without the inspector and checks the gas agrees.
    ///
    /// # Errors
    /// [`ExchangeError::Failed`] when the transaction does not succeed at
    /// `gas_limit` and [`ExchangeError::Refused`] when revm refuses it (both
    /// mean it does not fit when `gas_limit` is [`TX_GAS_CAP`]);
    /// [`ExchangeError::Mismatch`] / [`ExchangeError::Readers`] when a reader
    /// holds the wrong bytes; [`ExchangeError::GasDiffers`].
    pub fn run_checked(&self, gas_limit: u64) -> Result<Run, ExchangeError> {
        let name = self.exchange.to_string();
        let longest = self.expected.iter().map(Vec::len).max().unwrap_or(0);
        let capture = Capture {
            reader_caller: if self.exchange.scenario == Scenario::Outside {
                SENDER
            } else {
                EXCHANGE
            },
            len: longest,
            held: Vec::new(),
        };
        let ctx = ShmEvmBuilder::new(self.manager.clone())
            .context(self.db.clone())
            .modify_cfg_chained(bench_cfg);
        let mut evm = ShmEvmBuilder::build_from_with_inspector(ctx, capture);
        let refused = |e: &dyn fmt::Debug| ExchangeError::Refused {
            name: name.clone(),
            gas_limit,
            reason: format!("{e:?}"),
        };
        let result = evm
            .inspect_tx(self.tx(gas_limit))
            .map_err(|e| refused(&e))?
            .result;
        let inspected = self.succeeded(&result, gas_limit)?;
        let held = std::mem::take(&mut evm.inspector.held);
        if held.len() != self.expected.len() {
            return Err(ExchangeError::Readers {
                name,
                got: held.len(),
                want: self.expected.len(),
            });
        }
        for (reader, (held, want)) in held.iter().zip(&self.expected).enumerate() {
            if held.get(..want.len()) != Some(want.as_slice()) {
                let at = held
                    .iter()
                    .zip(want)
                    .position(|(a, b)| a != b)
                    .unwrap_or(held.len());
                return Err(ExchangeError::Mismatch {
                    name,
                    reader,
                    readers: self.expected.len(),
                    at,
                });
            }
        }
        let plain = self
            .evm()
            .transact(self.tx(gas_limit))
            .map_err(|e| refused(&e))?
            .result;
        let plain = self.succeeded(&plain, gas_limit)?;
        if plain != inspected {
            return Err(ExchangeError::GasDiffers {
                name,
                inspected,
                plain,
            });
        }
        Ok(Run { gas_used: plain })
    }

    fn succeeded(&self, result: &ExecutionResult, gas_limit: u64) -> Result<u64, ExchangeError> {
        if result.is_success() {
            Ok(result.tx_gas_used())
        } else {
            Err(ExchangeError::Failed {
                name: self.exchange.to_string(),
                gas_limit,
                result: format!("{result:?}").chars().take(200).collect(),
            })
        }
    }
}

/// Copies the first `len` bytes of memory of every frame called by
/// `reader_caller` when it executes `STOP`.
#[derive(Debug)]
struct Capture {
    reader_caller: Address,
    len: usize,
    held: Vec<Vec<u8>>,
}

impl<CTX> Inspector<CTX> for Capture {
    fn step(&mut self, interp: &mut Interpreter, _context: &mut CTX) {
        if interp.bytecode.opcode() == revm::bytecode::opcode::STOP
            && interp.input.caller_address() == self.reader_caller
            && interp.input.target_address() == EXCHANGE
        {
            let len = self.len.min(interp.memory.size());
            self.held.push(interp.memory.slice(0..len).to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_words_are_distinct_in_range_and_scattered() {
        for size in SIZES {
            let words = needed_words(size);
            assert_eq!(words.len() as u64, SPARSE_WORDS.min(size / 32));
            assert!(words.windows(2).all(|w| w[0] < w[1]), "{size}: {words:?}");
            assert!(words.iter().all(|&i| i < size / 32));
        }
        // Not a fixed offset in each stride.
        let big = needed_words(1 << 20);
        let offsets: std::collections::HashSet<u64> = big.iter().map(|i| i % 1024).collect();
        assert!(offsets.len() > 16, "{offsets:?}");
    }

    #[test]
    fn payload_bytes_are_almost_never_zero() {
        let bytes = payload(32 << 10);
        let zeros = bytes.iter().filter(|&&b| b == 0).count();
        assert!(zeros * 100 < bytes.len(), "{zeros} zero bytes");
        assert_eq!(&bytes[..32], &payload_word(0).to_be_bytes::<32>());
    }

    #[test]
    fn every_program_assembles() {
        for exchange in all_exchanges() {
            assemble(&exchange.source()).unwrap_or_else(|e| panic!("{exchange}: {e}"));
        }
    }
}
