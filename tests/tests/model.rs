//! The shared-memory property test (issue 4): random sequences of the five opcodes in
//! nested frames with random reverts, run on revm and on a plain reference model of
//! the spec; stack results, per-instruction gas, region contents and halts must match.
//!
//! A generated [`Case`] is a few transactions; each is a *program tree*: a frame is a
//! list of steps (ALLOC, FREE, MAP, READ, WRITE, and helpers that poke EVM memory or
//! overwrite a handle slot with a bad handle) and calls of child frames (CALL or
//! STATICCALL, to the same contract or a second one with the same code) that end with
//! RETURN, REVERT or an exceptional halt (INVALID).
//!
//! The tree is compiled to one contract that dispatches on its first calldata word
//! (the frame to run). Each frame keeps a table of handle slots in memory, received
//! from its caller in calldata and handed back at the start of its output, which the
//! caller adopts when the child returns (and, if the step says so, also when it
//! reverts: that is how stale handles reach later steps). Every shared-memory step
//! records its stack result and the gas between two `GAS` readings; a call records its
//! success flag, return-data size and gas, followed by the child's whole output; the
//! top frame ends with a READ of every live region it may read (count and hash). A
//! frame's output is its table, its records and its data area (which every READ lands
//! in, and which starts filled with a pattern so that WRITEs carry non-zero bytes).
//! Outputs travel up as return data, so reverted frames are observed too; a halted
//! frame shows only as its caller's failed call that burnt the child's whole budget.
//! After each transaction the registry must hold exactly the model's regions, bytes
//! included, and every other handle seen must be dead.
//!
//! The model ([`Model`]) interprets the same tree over byte vectors with one snapshot
//! per frame (revert = restore), implementing the spec's semantics and §8's gas.

use alloy_primitives::{Address, U256};
use proptest::prelude::*;
use revm::context::result::ExecutionResult;
use shm_manager::{HaltCause, SharedMemoryConfig};
use shm_primitives::{RegionHandle, SecurityLevel};
use shm_tests::Harness;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Write as _};

// ----- layout of a frame's EVM memory -----

/// Handle slots per frame.
const SLOTS: usize = 6;
/// `[0, 32)`: the frame id a CALL passes as calldata word 0; then the handle table.
const TABLE_OFF: usize = 32;
/// After the table: the records, then the data area, then (top frame) the read-backs.
const RECORDS_OFF: usize = TABLE_OFF + 32 * SLOTS;
/// The data area READ and WRITE use (pre-expanded; a memory range past it expands).
const DATA_LEN: usize = 3 * 4096;
/// At most this many bytes of a region are read back at the end of a transaction
/// (more than a region grows to by writes at generated offsets).
const DUMP_LEN: usize = 32 * 1024;
const PAGE: u64 = 4096;
/// Transaction gas: children get fixed, widely spaced budgets, so that no frame ever
/// runs out of gas (the model does not price ordinary opcodes) and a halted child
/// always burns exactly its budget.
const TX_GAS: u64 = 1_000_000_000_000_000_000;
const MAX_DEPTH: usize = 3;

const fn child_gas(depth: usize) -> u64 {
    match depth {
        1 => 10_000_000_000_000_000,
        2 => 100_000_000_000_000,
        _ => 1_000_000_000_000,
    }
}

/// The two contexts: the transaction's target and a second contract with the same code.
const CONTRACTS: [Address; 2] = [Address::repeat_byte(0xa1), Address::repeat_byte(0xb2)];

/// Gas of the opcodes around each measured instruction: the `PUSH32`s of its operands,
/// the `MLOAD` of its handle and the closing `GAS`.
const OVERHEAD_ALLOC: u64 = 3 + 3 + 2;
const OVERHEAD_FREE: u64 = 3 + 3 + 2;
const OVERHEAD_MAP: u64 = 3 + 3 + 3 + 2;
const OVERHEAD_COPY: u64 = 4 * 3 + 3 + 2;
/// CALL: seven pushes, the warm account access, the closing GAS.
const OVERHEAD_CALL: u64 = 7 * 3 + 100 + 2;
const OVERHEAD_STATICCALL: u64 = 6 * 3 + 100 + 2;

// ----- the program tree -----

#[derive(Clone, Copy, PartialEq, Eq)]
enum AllocSize {
    Bytes(u32),
    Zero,
    /// `max_region_size + 1`.
    OverMax,
    /// Not a u64.
    Huge,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bits {
    /// Known bits only (0–15).
    Known(u8),
    /// Some unknown bit set in the low byte.
    Unknown(u8),
    /// Bit 255.
    High,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Offset {
    At(u32),
    /// `u64::MAX - k`.
    NearMax(u32),
    /// `2^64 + k`.
    Beyond(u8),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Spoil {
    Zero,
    /// Sets bit 100.
    UpperBit,
    /// Keeps the index, generation 0.
    GenerationZero,
    /// Generation + 1000 (never issued in a case).
    FutureGeneration,
    /// Index 2^32 − 1, generation 1.
    HugeIndex,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CallKind {
    Call,
    Static,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    Return,
    Revert,
    Invalid,
}

#[derive(Clone, PartialEq, Eq)]
enum Step {
    Alloc {
        slot: usize,
        size: AllocSize,
        flags: Bits,
    },
    Free {
        slot: usize,
    },
    Map {
        slot: usize,
        options: Bits,
    },
    Read {
        slot: usize,
        offset: Offset,
        size: u32,
        mem: u32,
    },
    Write {
        slot: usize,
        offset: Offset,
        size: u32,
        mem: u32,
    },
    /// MSTORE of a word derived from `seed` at data-area offset `mem`.
    Poke {
        mem: u32,
        seed: u64,
    },
    Spoil {
        slot: usize,
        how: Spoil,
    },
    Copy {
        from: usize,
        to: usize,
    },
    Call {
        target: usize,
        kind: CallKind,
        adopt_on_revert: bool,
        child: Frame,
    },
}

#[derive(Clone, PartialEq, Eq)]
struct Frame {
    steps: Vec<Step>,
    end: End,
}

/// A generated case: transactions run in order on one fresh manager.
#[derive(Clone, PartialEq, Eq)]
struct Case {
    txs: Vec<Frame>,
}

impl fmt::Debug for AllocSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(n) => write!(f, "{n}"),
            Self::Zero => write!(f, "0"),
            Self::OverMax => write!(f, "max+1"),
            Self::Huge => write!(f, "2^64+5"),
        }
    }
}

impl fmt::Debug for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known(b) | Self::Unknown(b) => write!(f, "{b:#06b}"),
            Self::High => write!(f, "1<<255"),
        }
    }
}

impl fmt::Debug for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::At(n) => write!(f, "{n}"),
            Self::NearMax(k) => write!(f, "u64::MAX-{k}"),
            Self::Beyond(k) => write!(f, "2^64+{k}"),
        }
    }
}

impl Frame {
    fn render(&self, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent);
        for (i, step) in self.steps.iter().enumerate() {
            let _ = match step {
                Step::Alloc { slot, size, flags } => {
                    writeln!(
                        out,
                        "{pad}{i}: s{slot} = ALLOC(size {size:?}, flags {flags:?})"
                    )
                }
                Step::Free { slot } => writeln!(out, "{pad}{i}: FREE(s{slot})"),
                Step::Map { slot, options } => {
                    writeln!(out, "{pad}{i}: MAP(s{slot}, options {options:?})")
                }
                Step::Read {
                    slot,
                    offset,
                    size,
                    mem,
                } => writeln!(
                    out,
                    "{pad}{i}: READ(s{slot}, off {offset:?}, size {size}, mem +{mem})"
                ),
                Step::Write {
                    slot,
                    offset,
                    size,
                    mem,
                } => writeln!(
                    out,
                    "{pad}{i}: WRITE(s{slot}, off {offset:?}, size {size}, mem +{mem})"
                ),
                Step::Poke { mem, seed } => writeln!(out, "{pad}{i}: poke mem +{mem} <- {seed:#x}"),
                Step::Spoil { slot, how } => writeln!(out, "{pad}{i}: s{slot} <- bad {how:?}"),
                Step::Copy { from, to } => writeln!(out, "{pad}{i}: s{to} <- s{from}"),
                Step::Call {
                    target,
                    kind,
                    adopt_on_revert,
                    child,
                } => {
                    let name = ["A", "B"][*target];
                    let adopt = if *adopt_on_revert {
                        ", adopt slots on revert"
                    } else {
                        ""
                    };
                    let _ = writeln!(out, "{pad}{i}: {kind:?} {name}{adopt} {{");
                    child.render(indent + 1, out);
                    writeln!(out, "{pad}}}")
                }
            };
        }
        let _ = writeln!(out, "{pad}{:?}", self.end);
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(step_line(self).trim().trim_start_matches("0: "))
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("\n");
        self.render(1, &mut out);
        f.write_str(&out)
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for (i, tx) in self.txs.iter().enumerate() {
            let _ = writeln!(out, "tx {i} (context A):");
            tx.render(1, &mut out);
        }
        f.write_str(&out)
    }
}

// ----- generation -----

fn alloc_size() -> impl Strategy<Value = AllocSize> {
    prop_oneof![
        12 => (1u32..=64).prop_map(AllocSize::Bytes),
        12 => (65u32..=4096).prop_map(AllocSize::Bytes),
        4 => (4097u32..=12288).prop_map(AllocSize::Bytes),
        1 => Just(AllocSize::Zero),
        1 => Just(AllocSize::OverMax),
        1 => Just(AllocSize::Huge),
    ]
}

/// ALLOC flags or MAP options; `risky` adds unknown bits now and then.
fn bits(risky: bool) -> impl Strategy<Value = Bits> {
    let rare = u32::from(risky);
    prop_oneof![
        40 => (0u8..16).prop_map(Bits::Known),
        rare => (16u8..=255).prop_map(Bits::Unknown),
        rare => Just(Bits::High),
    ]
}

/// A region offset; `risky` adds offsets whose sum with the size can overflow.
fn offset(risky: bool) -> impl Strategy<Value = Offset> {
    let rare = u32::from(risky);
    prop_oneof![
        12 => (0u32..=64).prop_map(Offset::At),
        16 => (0u32..=4200).prop_map(Offset::At),
        6 => (0u32..=16384).prop_map(Offset::At),
        2 * rare => (0u32..=8192).prop_map(Offset::NearMax),
        rare => (0u8..=4).prop_map(Offset::Beyond),
    ]
}

fn copy_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        1 => Just(0u32),
        4 => 1u32..=64,
        3 => 65u32..=4200,
        1 => 4201u32..=9000,
    ]
}

fn mem_offset() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 0u32..=(DATA_LEN as u32),
        1 => (DATA_LEN as u32)..=(DATA_LEN as u32 + 8192),
    ]
}

/// A slot *selector*: [`steer`] turns it into a slot, mostly one that holds a handle.
fn slot() -> impl Strategy<Value = usize> {
    0..256usize
}

/// A step other than a call. The top frame's steps are not `risky` (no bad flag
/// bits, overflowing offsets or spoiled slots), since a halt there hides the whole
/// transaction's records; children halt often enough.
///
/// `maps`: weight of MAP; its options are copy-on-write (bit 0 alone) half the time.
fn leaf_step(risky: bool, maps: u32) -> BoxedStrategy<Step> {
    let spoil = prop_oneof![
        Just(Spoil::Zero),
        Just(Spoil::UpperBit),
        Just(Spoil::GenerationZero),
        Just(Spoil::FutureGeneration),
        Just(Spoil::HugeIndex),
    ];
    prop_oneof![
        6 => (slot(), alloc_size(), bits(risky))
            .prop_map(|(slot, size, flags)| Step::Alloc { slot, size, flags }),
        1 => slot().prop_map(|slot| Step::Free { slot }),
        maps => (slot(), prop_oneof![bits(risky), Just(Bits::Known(1))])
            .prop_map(|(slot, options)| Step::Map { slot, options }),
        3 => (slot(), offset(risky), copy_size(), mem_offset()).prop_map(
            |(slot, offset, size, mem)| Step::Read { slot, offset, size, mem }
        ),
        4 => (slot(), offset(risky), copy_size(), mem_offset()).prop_map(
            |(slot, offset, size, mem)| Step::Write { slot, offset, size, mem }
        ),
        2 => (0u32..=(DATA_LEN as u32 - 32), any::<u64>())
            .prop_map(|(mem, seed)| Step::Poke { mem, seed }),
        u32::from(risky) => (slot(), spoil).prop_map(|(slot, how)| Step::Spoil { slot, how }),
        2 => (slot(), slot()).prop_map(|(from, to)| Step::Copy { from, to }),
    ]
    .boxed()
}

fn end(top: bool) -> impl Strategy<Value = End> {
    let returns = if top { 6 } else { 3 };
    prop_oneof![
        returns => Just(End::Return),
        1 => Just(End::Revert),
        1 => Just(End::Invalid),
    ]
}

/// A frame at `depth` (0 = the transaction's) whose calls go to contexts `0..contexts`.
fn frame(depth: usize, contexts: usize, maps: u32) -> BoxedStrategy<Frame> {
    let max_steps = [10, 7, 5, 4][depth];
    let step = if depth < MAX_DEPTH {
        let call = (
            0..contexts,
            prop_oneof![4 => Just(CallKind::Call), 1 => Just(CallKind::Static)],
            any::<bool>(),
            frame(depth + 1, contexts, maps),
        )
            .prop_map(|(target, kind, adopt_on_revert, child)| Step::Call {
                target,
                kind,
                adopt_on_revert,
                child,
            });
        let calls = if depth == 0 { 6 } else { 3 };
        prop_oneof![12 => leaf_step(depth > 0, maps), calls => call].boxed()
    } else {
        leaf_step(true, maps)
    };
    // A transaction starts with an ALLOC that succeeds, so that its steps have a
    // region to work on.
    let first = (depth == 0)
        .then(|| {
            (slot(), 1u32..=8192, 0u8..16).prop_map(|(slot, size, flags)| Step::Alloc {
                slot,
                size: AllocSize::Bytes(size),
                flags: Bits::Known(flags),
            })
        })
        .into_iter()
        .collect::<Vec<_>>();
    (
        first,
        prop::collection::vec(step, 0..=max_steps),
        end(depth == 0),
    )
        .prop_map(|(first, steps, end)| Frame {
            steps: first.into_iter().chain(steps).collect(),
            end,
        })
        .boxed()
}

/// Up to `max_txs` transactions whose calls go to `contexts` contracts; `maps`:
/// weight of MAP among the steps (2 is about one step in fourteen).
fn case(contexts: usize, max_txs: usize, maps: u32) -> impl Strategy<Value = Case> {
    prop::collection::vec(frame(0, contexts, maps), 1..=max_txs).prop_map(|txs| {
        let mut case = Case { txs };
        steer(&mut case);
        case
    })
}

/// What a slot statically holds, as far as the program text tells: a handle from an
/// ALLOC, or nothing useful.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Filled {
    persistent: bool,
    /// Filled by an ALLOC of this frame (not handed back by a child, which may have
    /// halted or been refused on the way).
    own: bool,
}

type Known = [Option<Filled>; SLOTS];

/// Turns the generated slot selectors into slots: most steps use a slot that an
/// earlier ALLOC filled (as far as the text tells; reverts, failed ALLOCs and frees
/// still make stale handles), some any slot; ALLOC mostly fills an empty one. Without
/// this most programs would halt at their first step on an empty slot.
fn steer(case: &mut Case) {
    let mut known: Known = [None; SLOTS];
    for tx in &mut case.txs {
        // Transaction-scoped regions end with the transaction.
        for k in known.iter_mut() {
            *k = k
                .filter(|f| f.persistent)
                .map(|f| Filled { own: true, ..f });
        }
        let mut inside = known;
        steer_frame(tx, &mut inside, 0);
        if tx.end == End::Return {
            known = inside;
        }
    }
}

/// The top frame mostly uses its own ALLOCs' slots: a halt there loses the whole
/// transaction's records, and a slot a child filled may hold nothing after all.
fn pick(selector: usize, known: &Known, depth: usize) -> usize {
    let filled: Vec<usize> = (0..SLOTS).filter(|&s| known[s].is_some()).collect();
    let own: Vec<usize> = filled
        .iter()
        .copied()
        .filter(|&s| known[s].is_some_and(|f| f.own))
        .collect();
    if depth == 0 && selector < 192 && !own.is_empty() {
        own[selector % own.len()]
    } else if selector < 248 && !filled.is_empty() {
        filled[selector % filled.len()]
    } else {
        selector % SLOTS
    }
}

fn steer_frame(frame: &mut Frame, known: &mut Known, depth: usize) {
    for step in &mut frame.steps {
        match step {
            Step::Alloc { slot, flags, size } => {
                let empty: Vec<usize> = (0..SLOTS).filter(|&s| known[s].is_none()).collect();
                *slot = if *slot < 200 && !empty.is_empty() {
                    empty[*slot % empty.len()]
                } else {
                    *slot % SLOTS
                };
                let persistent = matches!(flags, Bits::Known(b) if *b & 1 != 0);
                // An ALLOC of a bad size pushes 0.
                known[*slot] = matches!(size, AllocSize::Bytes(_)).then_some(Filled {
                    persistent,
                    own: true,
                });
            }
            Step::Free { slot } => {
                *slot = pick(*slot, known, depth);
                known[*slot] = None;
            }
            Step::Map { slot, .. } | Step::Read { slot, .. } | Step::Write { slot, .. } => {
                *slot = pick(*slot, known, depth);
            }
            Step::Spoil { slot, .. } => {
                *slot = pick(*slot, known, depth);
                known[*slot] = None;
            }
            Step::Copy { from, to } => {
                *from = pick(*from, known, depth);
                *to %= SLOTS;
                known[*to] = known[*from];
            }
            Step::Call {
                child,
                adopt_on_revert,
                ..
            } => {
                let mut inside = *known;
                steer_frame(child, &mut inside, depth + 1);
                let adopted = match child.end {
                    End::Return => true,
                    End::Revert => *adopt_on_revert,
                    End::Invalid => false,
                };
                if adopted {
                    for (before, after) in known.iter_mut().zip(inside) {
                        if *before != after {
                            *before = after.map(|f| Filled { own: false, ..f });
                        }
                    }
                }
            }
            Step::Poke { .. } => {}
        }
    }
}

// ----- word values of the arguments -----

fn alloc_size_word(size: AllocSize, max_region_size: u64) -> U256 {
    match size {
        AllocSize::Bytes(n) => U256::from(n),
        AllocSize::Zero => U256::ZERO,
        AllocSize::OverMax => U256::from(max_region_size) + U256::ONE,
        AllocSize::Huge => (U256::ONE << 64) + U256::from(5),
    }
}

fn bits_word(bits: Bits) -> U256 {
    match bits {
        Bits::Known(b) | Bits::Unknown(b) => U256::from(b),
        Bits::High => U256::ONE << 255,
    }
}

fn offset_word(offset: Offset) -> U256 {
    match offset {
        Offset::At(n) => U256::from(n),
        Offset::NearMax(k) => U256::from(u64::MAX - u64::from(k)),
        Offset::Beyond(k) => (U256::ONE << 64) + U256::from(k),
    }
}

/// Word `j` of a frame's data area at start is `(j + 1) * PATTERN` (mod 2^256).
const PATTERN: U256 = U256::from_limbs([
    0x9e37_79b9_7f4a_7c15,
    0xf39c_c060_5ced_c834,
    0x1082_276b_f3a2_7251,
    0xf86c_6a11_d0c1_8e95,
]);

fn data_pattern() -> Vec<u8> {
    (0..DATA_LEN / 32)
        .flat_map(|j| U256::from(j + 1).wrapping_mul(PATTERN).to_be_bytes::<32>())
        .collect()
}

fn poke_word(seed: u64) -> [u8; 32] {
    let mut word = [0u8; 32];
    for (i, chunk) in word.chunks_mut(8).enumerate() {
        let v =
            seed.rotate_left(16 * i as u32) ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1));
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    word
}

// ----- layout -----

/// Bytes of a frame's records: two words per shared-memory step, three words and the
/// child's output per call.
fn records_len(frame: &Frame) -> usize {
    frame
        .steps
        .iter()
        .map(|step| match step {
            Step::Alloc { .. }
            | Step::Free { .. }
            | Step::Map { .. }
            | Step::Read { .. }
            | Step::Write { .. } => 64,
            Step::Call { child, .. } => 96 + output_len(child),
            Step::Poke { .. } | Step::Spoil { .. } | Step::Copy { .. } => 0,
        })
        .sum()
}

/// Bytes a (non-top) frame returns or reverts with: its table, its records and its
/// data area.
fn output_len(frame: &Frame) -> usize {
    32 * SLOTS + records_len(frame) + DATA_LEN
}

/// Where a frame's data area starts in its memory.
fn data_base(frame: &Frame) -> usize {
    RECORDS_OFF + records_len(frame)
}

fn address_word(address: Address) -> U256 {
    U256::from_be_slice(address.as_slice())
}

/// Bytes of a read-back of `len` region bytes in the top frame's output.
fn dump_len(len: usize) -> usize {
    64 + len.div_ceil(32) * 32
}

/// Per slot, how many bytes the top frame reads back (`None`: not read).
type Dumps = [Option<usize>; SLOTS];

fn table_addr(slot: usize) -> usize {
    TABLE_OFF + 32 * slot
}

// ----- compiler -----

/// Compiles a transaction's program tree to the assembly of one contract: a
/// dispatcher on calldata word 0, then one block per frame (numbered in pre-order).
struct Compiler {
    blocks: Vec<String>,
    next_frame: usize,
    next_label: usize,
    max_region_size: u64,
}

/// An assembler operand.
trait Operand {
    fn word(self) -> U256;
}

impl Operand for U256 {
    fn word(self) -> U256 {
        self
    }
}

impl Operand for usize {
    fn word(self) -> U256 {
        U256::from(self)
    }
}

impl Operand for u64 {
    fn word(self) -> U256 {
        U256::from(self)
    }
}

impl Operand for u32 {
    fn word(self) -> U256 {
        U256::from(self)
    }
}

/// A `PUSH32`: every measured instruction's operands are pushed at the same price.
fn p32(value: impl Operand) -> String {
    format!("PUSH32 {:#x}\n", value.word())
}

/// The narrowest PUSH (outside measured windows).
fn push(value: impl Operand) -> String {
    format!("PUSH {:#x}\n", value.word())
}

impl Compiler {
    /// The contract's code for one transaction; `dumps[i]`: how many bytes of slot
    /// `i`'s region the top frame reads back at its end.
    fn compile(top: &Frame, dumps: Dumps, max_region_size: u64) -> String {
        let mut compiler = Compiler {
            blocks: Vec::new(),
            next_frame: 0,
            next_label: 0,
            max_region_size,
        };
        compiler.frame(top, Some(dumps), 0);
        let mut source = String::from("PUSH0 CALLDATALOAD\n");
        for id in 0..compiler.next_frame {
            source += &format!("DUP1 PUSH {id} EQ PUSH @f{id} JUMPI\n");
        }
        source += "INVALID\n";
        for block in &compiler.blocks {
            source += block;
        }
        source += &format!(
            "pattern:\nDATA 0x{}\n",
            alloy_primitives::hex::encode(data_pattern())
        );
        source
    }

    /// Emits `frame` (and its children) and returns its id.
    fn frame(&mut self, frame: &Frame, dumps: Option<Dumps>, depth: usize) -> usize {
        let id = self.next_frame;
        self.next_frame += 1;
        let top = dumps.is_some();
        let base = data_base(frame);
        let mut code = format!("f{id}:\nJUMPDEST\nPOP\n");
        // Pre-expand memory over table, records and data area; take the table.
        code += &format!("PUSH0 {}MSTORE\n", push(base + DATA_LEN - 32));
        // Fill the data area with a pattern kept at the end of the code, so that
        // WRITE copies bytes that differ from a region's zeros.
        code += &format!("{}PUSH @pattern {}CODECOPY\n", push(DATA_LEN), push(base));
        code += &format!(
            "{}PUSH 32 {}CALLDATACOPY\n",
            push(32 * SLOTS),
            push(TABLE_OFF)
        );
        if top {
            // Warm the second contract once, so every CALL costs a warm access.
            code += &format!("{}BALANCE POP\n", push(address_word(CONTRACTS[1])));
        }
        let mut rec = RECORDS_OFF;
        for step in &frame.steps {
            code += &self.step(step, &mut rec, base, depth);
        }
        // The top frame reads back every live region it may read, after its data
        // area: `[count][count of one byte past][bytes]` each.
        let mut out_end = base + DATA_LEN;
        for (slot, len) in dumps.unwrap_or_default().iter().enumerate() {
            let Some(len) = *len else { continue };
            code += &format!(
                "{}{}PUSH0 {}MLOAD SHARED_READ {}MSTORE\n",
                push(out_end + 64),
                push(len),
                push(table_addr(slot)),
                push(out_end)
            );
            code += &format!(
                "PUSH0 PUSH 1 {}{}MLOAD SHARED_READ {}MSTORE\n",
                push(len),
                push(table_addr(slot)),
                push(out_end + 32)
            );
            out_end += dump_len(len);
        }
        let out_len = out_end - TABLE_OFF;
        code += &match frame.end {
            End::Return => format!("{}{}RETURN\n", push(out_len), push(TABLE_OFF)),
            End::Revert => format!("{}{}REVERT\n", push(out_len), push(TABLE_OFF)),
            End::Invalid => "INVALID\n".to_string(),
        };
        self.blocks.push(code);
        id
    }

    /// Stores `[result, g0 - g1]` from the stack `[g1, result, g0]` at `rec`.
    fn record(rec: &mut usize) -> String {
        let code = format!(
            "SWAP1 {}MSTORE SWAP1 SUB {}MSTORE\n",
            p32(*rec),
            p32(*rec + 32)
        );
        *rec += 64;
        code
    }

    fn step(&mut self, step: &Step, rec: &mut usize, base: usize, depth: usize) -> String {
        let handle = |slot: usize| format!("{}MLOAD\n", p32(table_addr(slot)));
        match step {
            Step::Alloc { slot, size, flags } => {
                let mut code = format!(
                    "GAS\n{}{}SHARED_ALLOC\nGAS\n",
                    p32(bits_word(*flags)),
                    p32(alloc_size_word(*size, self.max_region_size))
                );
                code += &format!("SWAP1 DUP1 {}MSTORE SWAP1\n", p32(table_addr(*slot)));
                code + &Self::record(rec)
            }
            Step::Free { slot } => {
                format!("GAS\n{}SHARED_FREE\nGAS\n", handle(*slot)) + &Self::record(rec)
            }
            Step::Map { slot, options } => {
                format!(
                    "GAS\n{}{}SHARED_MAP\nGAS\n",
                    p32(bits_word(*options)),
                    handle(*slot)
                ) + &Self::record(rec)
            }
            Step::Read {
                slot,
                offset,
                size,
                mem,
            }
            | Step::Write {
                slot,
                offset,
                size,
                mem,
            } => {
                let op = if matches!(step, Step::Read { .. }) {
                    "SHARED_READ"
                } else {
                    "SHARED_WRITE"
                };
                format!(
                    "GAS\n{}{}{}{}{op}\nGAS\n",
                    p32(base + *mem as usize),
                    p32(*size),
                    p32(offset_word(*offset)),
                    handle(*slot)
                ) + &Self::record(rec)
            }
            Step::Poke { mem, seed } => format!(
                "{}{}MSTORE\n",
                p32(U256::from_be_bytes(poke_word(*seed))),
                p32(base + *mem as usize)
            ),
            Step::Spoil { slot, how } => {
                let value = match how {
                    Spoil::Zero => "PUSH0\n".to_string(),
                    Spoil::UpperBit => format!("{}{}OR\n", handle(*slot), p32(U256::ONE << 100)),
                    Spoil::GenerationZero => {
                        format!("{}{}AND\n", handle(*slot), p32(0xffff_ffffu64))
                    }
                    Spoil::FutureGeneration => {
                        format!("{}{}ADD\n", handle(*slot), p32(1000u64 << 32))
                    }
                    Spoil::HugeIndex => p32((1u64 << 32) | 0xffff_ffff),
                };
                format!("{value}{}MSTORE\n", p32(table_addr(*slot)))
            }
            Step::Copy { from, to } => {
                format!("{}{}MSTORE\n", handle(*from), p32(table_addr(*to)))
            }
            Step::Call {
                target,
                kind,
                adopt_on_revert,
                child,
            } => {
                let child_id = self.frame(child, None, depth + 1);
                let label = self.next_label;
                self.next_label += 1;
                let mut code = format!("{}PUSH0 MSTORE\nGAS\n", p32(child_id));
                code += &p32(0u64); // return size
                code += &p32(0u64); // return offset
                code += &p32(32 + 32 * SLOTS); // argument size
                code += &p32(0u64); // argument offset
                if *kind == CallKind::Call {
                    code += &p32(0u64); // value
                }
                code += &p32(address_word(CONTRACTS[*target]));
                code += &p32(child_gas(depth + 1));
                code += match kind {
                    CallKind::Call => "CALL\n",
                    CallKind::Static => "STATICCALL\n",
                };
                // [g1, success, g0]
                code += &format!(
                    "GAS SWAP1 DUP1 {}MSTORE SWAP2 SUB {}MSTORE\n",
                    p32(*rec),
                    p32(*rec + 64)
                );
                code += &format!("RETURNDATASIZE {}MSTORE\n", p32(*rec + 32));
                code += &format!("RETURNDATASIZE PUSH0 {}RETURNDATACOPY\n", p32(*rec + 96));
                // Adopt the child's slots when it returned (or, if asked, reverted).
                code += &format!("PUSH @a{label} JUMPI\n");
                if *adopt_on_revert {
                    code += &format!("RETURNDATASIZE PUSH @a{label} JUMPI\n");
                }
                code += &format!("PUSH @s{label} JUMP\na{label}:\nJUMPDEST\n");
                code += &format!(
                    "{}{}{}MCOPY\ns{label}:\nJUMPDEST\n",
                    p32(32 * SLOTS),
                    p32(*rec + 96),
                    p32(TABLE_OFF)
                );
                *rec += 96 + output_len(child);
                code
            }
        }
    }
}

// ----- the reference model -----

/// What the model takes from the manager's configuration.
#[derive(Clone, Copy, Debug)]
struct Rules {
    /// Security level Basic (owner and public flags); else None.
    basic: bool,
    cow: bool,
    max_regions: usize,
    max_persistent_regions: usize,
    max_region_size: u64,
}

impl Rules {
    fn of(config: &SharedMemoryConfig) -> Self {
        assert!(matches!(
            config.security_level,
            SecurityLevel::None | SecurityLevel::Basic
        ));
        Self {
            basic: config.security_level == SecurityLevel::Basic,
            cow: config.enable_cow,
            max_regions: config.max_regions,
            max_persistent_regions: config.max_persistent_regions,
            max_region_size: config.max_region_size,
        }
    }
}

/// A handle slot's value, symbolically: regions are named by the model's own ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Zero,
    Region(u32),
    /// A malformed handle or one that was never issued.
    Bad,
}

#[derive(Clone, Debug)]
struct ModelRegion {
    size: u64,
    /// The first bytes; the rest up to `size` are zero.
    data: Vec<u8>,
    persistent: bool,
    auto_grow: bool,
    public_read: bool,
    public_write: bool,
    owner: usize,
    pending_free: bool,
}

impl ModelRegion {
    fn byte(&self, at: u64) -> u8 {
        usize::try_from(at)
            .ok()
            .and_then(|at| self.data.get(at).copied())
            .unwrap_or(0)
    }
}

/// Everything a revert restores.
#[derive(Clone, Default)]
struct ModelState {
    /// Regions in the registry, including those whose free is pending.
    regions: BTreeMap<u32, ModelRegion>,
    warm: BTreeSet<u32>,
    /// §8's `W`.
    words: u64,
    /// Effective options of bytecode mappings, per (region, context).
    mappings: BTreeMap<(u32, usize), u8>,
    /// Private copy-on-write pages, per (region, context).
    private: BTreeMap<(u32, usize), BTreeMap<u64, Vec<u8>>>,
    /// §8's `P`: page buffers charged (saves and faults).
    pages: u64,
}

/// A page journalled in a frame: region, page, and the context for a private page.
type PageKey = (u32, u64, Option<usize>);

/// One frame being interpreted.
struct Run {
    ctx: usize,
    is_static: bool,
    table: [Val; SLOTS],
    /// Pages saved in this frame or by its committed children.
    saved: HashSet<PageKey>,
    /// EVM memory from `base` on.
    mem: Vec<u8>,
    mem_words: u64,
    base: usize,
}

impl Run {
    /// Expands memory over `[abs, abs + len)` (`len > 0`) and returns the cost.
    fn expand(&mut self, abs: usize, len: usize) -> u64 {
        let words_needed = (abs + len).div_ceil(32) as u64;
        if words_needed <= self.mem_words {
            return 0;
        }
        let cost = evm_memory_cost(words_needed) - evm_memory_cost(self.mem_words);
        self.mem_words = words_needed;
        self.mem.resize(words_needed as usize * 32 - self.base, 0);
        cost
    }
}

fn evm_memory_cost(words: u64) -> u64 {
    3 * words + words * words / 512
}

fn words(bytes: u64) -> u64 {
    bytes.div_ceil(32)
}

/// §8 (as changed by issue "sound gas"): `g(P + n) − g(P)`, with
/// `g(P) = 200·P + P²/16`.
fn pages_cost(held: u64, n: u64) -> u64 {
    let g = |p: u64| 200 * p + p * p / 16;
    g(held + n) - g(held)
}

/// §8: `f(W + added) − f(W)`, plus 20,000 per word when persistent.
fn growth_cost(w: u64, added: u64, persistent: bool) -> u64 {
    let f = |w: u64| 3 * w + w * w / 512;
    f(w + added) - f(w) + if persistent { 20_000 * added } else { 0 }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Word(u64),
    /// ALLOC: the new region, or `None` for a pushed 0.
    Alloc(Option<u32>),
}

#[derive(Clone, Debug)]
enum Expect {
    Op {
        result: Outcome,
        gas: u64,
    },
    Call {
        success: bool,
        return_size: usize,
        /// Known only when the child halted (it burns its whole budget).
        gas: Option<u64>,
        child: Option<Box<ExpectFrame>>,
    },
}

#[derive(Clone, Debug)]
struct ExpectFrame {
    table: [Val; SLOTS],
    steps: Vec<Option<Expect>>,
    /// The data area at the end (every READ lands there).
    data: Vec<u8>,
    /// Top frame only: the read-back of each slot.
    dumps: [Option<Dump>; SLOTS],
}

/// A region read back at the end of the top frame: the count READ pushed, the count
/// of a one-byte READ just past those bytes (non-zero if the region is longer), and
/// the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dump {
    count: u64,
    past: u64,
    bytes: Vec<u8>,
}

#[derive(Debug)]
enum Ended {
    Returned(ExpectFrame),
    Reverted(ExpectFrame),
    Halted,
}

struct Model {
    rules: Rules,
    state: ModelState,
    next_id: u32,
    last_halt: Option<HaltCause>,
    /// Every shared-memory halt so far, by cause (for the generator's coverage test).
    halts: BTreeMap<String, usize>,
    /// Copy-on-write faults so far, and READs that saw private bytes.
    cow_faults: usize,
    private_reads: usize,
    /// ALLOCs refused because the registry was full.
    region_limit_hits: usize,
}

impl Model {
    fn new(rules: Rules) -> Self {
        Self {
            rules,
            state: ModelState::default(),
            next_id: 0,
            last_halt: None,
            halts: BTreeMap::new(),
            cow_faults: 0,
            private_reads: 0,
            region_limit_hits: 0,
        }
    }

    /// Runs one transaction whose top frame (context A) receives `table`.
    fn run_tx(&mut self, frame: &Frame, table: [Val; SLOTS]) -> Ended {
        self.last_halt = None;
        let (ended, _) = self.run_frame(frame, 0, false, table, 0);
        // Transaction end: pending frees become final, transaction-scoped regions go,
        // and the warm set, W, mappings and private pages are dropped.
        self.state
            .regions
            .retain(|_, region| region.persistent && !region.pending_free);
        self.state.warm.clear();
        self.state.words = 0;
        self.state.pages = 0;
        self.state.mappings.clear();
        self.state.private.clear();
        ended
    }

    fn run_frame(
        &mut self,
        frame: &Frame,
        ctx: usize,
        is_static: bool,
        table: [Val; SLOTS],
        depth: usize,
    ) -> (Ended, HashSet<PageKey>) {
        let top = depth == 0;
        let snapshot = self.state.clone();
        let base = data_base(frame);
        let mut run = Run {
            ctx,
            is_static,
            table,
            saved: HashSet::new(),
            mem: data_pattern(),
            mem_words: ((base + DATA_LEN) / 32) as u64,
            base,
        };
        let mut steps = Vec::with_capacity(frame.steps.len());
        for step in &frame.steps {
            match self.step(step, &mut run, depth) {
                Ok(expect) => steps.push(expect),
                Err(cause) => {
                    *self.halts.entry(format!("{cause:?}")).or_default() += 1;
                    self.last_halt = Some(cause);
                    self.state = snapshot;
                    return (Ended::Halted, HashSet::new());
                }
            }
        }
        let mut dumps: [Option<Dump>; SLOTS] = Default::default();
        if top {
            for (slot, dump) in dumps.iter_mut().enumerate() {
                if let Ok(id) = self.resolve(run.table[slot]) {
                    if self.may(id, ctx, false) {
                        let len = (self.state.regions[&id].size as usize).min(DUMP_LEN);
                        let (bytes, count) = self.view(id, ctx, 0, len);
                        let (_, past) = self.view(id, ctx, len as u64, 1);
                        *dump = Some(Dump {
                            count: count as u64,
                            past: past as u64,
                            bytes,
                        });
                    }
                }
            }
        }
        let out = ExpectFrame {
            table: run.table,
            steps,
            data: run.mem[..DATA_LEN].to_vec(),
            dumps,
        };
        match frame.end {
            End::Return => (Ended::Returned(out), run.saved),
            End::Revert => {
                self.state = snapshot;
                (Ended::Reverted(out), HashSet::new())
            }
            End::Invalid => {
                self.state = snapshot;
                (Ended::Halted, HashSet::new())
            }
        }
    }

    /// The live region a slot value names, or the halt cause.
    fn resolve(&self, value: Val) -> Result<u32, HaltCause> {
        match value {
            Val::Region(id) => match self.state.regions.get(&id) {
                Some(region) if !region.pending_free => Ok(id),
                _ => Err(HaltCause::FreedRegion),
            },
            Val::Zero | Val::Bad => Err(HaltCause::InvalidHandle),
        }
    }

    /// §7 rights of `ctx` (Basic: owner, public flags; None: everything).
    fn may(&self, id: u32, ctx: usize, write: bool) -> bool {
        let region = &self.state.regions[&id];
        !self.rules.basic
            || region.owner == ctx
            || if write {
                region.public_write
            } else {
                region.public_read || region.public_write
            }
    }

    fn access_cost(&self, id: u32) -> u64 {
        if self.state.warm.contains(&id) {
            100
        } else {
            2_600
        }
    }

    fn copy_on_write(&self, id: u32, ctx: usize) -> bool {
        self.state
            .mappings
            .get(&(id, ctx))
            .is_some_and(|&o| o & 1 != 0 && o & 2 == 0)
    }

    /// `region_offset` checked against `size` (§5 offsets).
    fn offset(offset: Offset, size: u32) -> Result<u64, HaltCause> {
        let offset = match offset {
            Offset::At(n) => u64::from(n),
            Offset::NearMax(k) => u64::MAX - u64::from(k),
            Offset::Beyond(_) => return Err(HaltCause::OffsetOverflow),
        };
        offset
            .checked_add(u64::from(size))
            .map(|_| offset)
            .ok_or(HaltCause::OffsetOverflow)
    }

    /// What `ctx` reads at `[off, off + len)`: zero past the end, its private pages
    /// over live bytes through a copy-on-write mapping; and how many bytes came from
    /// the region.
    fn view(&self, id: u32, ctx: usize, off: u64, len: usize) -> (Vec<u8>, usize) {
        let region = &self.state.regions[&id];
        let n = if off >= region.size {
            0
        } else {
            (region.size - off).min(len as u64) as usize
        };
        let mut bytes = vec![0u8; len];
        if n > 0 {
            // Live bytes (the region's data, then zeros up to its size) ...
            let start = off as usize;
            if let Some(live) = region.data.get(start..(start + n).min(region.data.len())) {
                bytes[..live.len()].copy_from_slice(live);
            }
            // ... under the context's private pages.
            let pages = self
                .copy_on_write(id, ctx)
                .then(|| self.state.private.get(&(id, ctx)))
                .flatten();
            for (&page, copy) in pages.into_iter().flatten() {
                let (from, to) = (page * PAGE, (page + 1) * PAGE);
                let (lo, hi) = (from.max(off), to.min(off + n as u64));
                if lo < hi {
                    bytes[(lo - off) as usize..(hi - off) as usize]
                        .copy_from_slice(&copy[(lo - from) as usize..(hi - from) as usize]);
                }
            }
        }
        (bytes, n)
    }

    fn has_private(&self, id: u32, ctx: usize, page: u64) -> bool {
        self.state
            .private
            .get(&(id, ctx))
            .is_some_and(|p| p.contains_key(&page))
    }

    fn step(
        &mut self,
        step: &Step,
        run: &mut Run,
        depth: usize,
    ) -> Result<Option<Expect>, HaltCause> {
        let ctx = run.ctx;
        let op = |result, gas| Ok(Some(Expect::Op { result, gas }));
        match step {
            Step::Alloc { slot, size, flags } => {
                if run.is_static {
                    return Err(HaltCause::StaticWrite);
                }
                let Bits::Known(flags) = *flags else {
                    return Err(HaltCause::BadFlags);
                };
                let size = match *size {
                    AllocSize::Bytes(n) if u64::from(n) <= self.rules.max_region_size => {
                        u64::from(n)
                    }
                    _ => 0,
                };
                let persistent = flags & 1 != 0;
                // Spec §4: persistent regions leave the rest of the slots to
                // transaction-scoped ones.
                let persistent_full = persistent
                    && self.state.regions.values().filter(|r| r.persistent).count()
                        >= self.rules.max_persistent_regions;
                let full = self.state.regions.len() >= self.rules.max_regions || persistent_full;
                self.region_limit_hits += usize::from(size > 0 && full);
                if size == 0 || full {
                    run.table[*slot] = Val::Zero;
                    return op(Outcome::Alloc(None), OVERHEAD_ALLOC + 200);
                }
                let added = words(size);
                let gas = 200 + growth_cost(self.state.words, added, persistent);
                let id = self.next_id;
                self.next_id += 1;
                self.state.regions.insert(
                    id,
                    ModelRegion {
                        size,
                        data: Vec::new(),
                        persistent,
                        auto_grow: flags & 2 != 0,
                        public_read: flags & 4 != 0,
                        public_write: flags & 8 != 0,
                        owner: ctx,
                        pending_free: false,
                    },
                );
                self.state.warm.insert(id);
                self.state.words += added;
                self.state.mappings.insert((id, ctx), 0);
                run.table[*slot] = Val::Region(id);
                op(Outcome::Alloc(Some(id)), OVERHEAD_ALLOC + gas)
            }
            Step::Free { slot } => {
                if run.is_static {
                    return Err(HaltCause::StaticWrite);
                }
                let id = self.resolve(run.table[*slot])?;
                let region = self.state.regions.get_mut(&id).expect("resolved");
                if self.rules.basic && region.owner != ctx {
                    return Err(HaltCause::PermissionDenied);
                }
                region.pending_free = true;
                op(Outcome::Word(1), OVERHEAD_FREE + 100)
            }
            Step::Map { slot, options } => {
                let Bits::Known(options) = *options else {
                    return Err(HaltCause::BadFlags);
                };
                let id = self.resolve(run.table[*slot])?;
                if !self.may(id, ctx, false) {
                    return Err(HaltCause::PermissionDenied);
                }
                let gas = self.access_cost(id);
                self.state.warm.insert(id);
                let options = if self.rules.cow {
                    options
                } else {
                    options & !1
                };
                self.state.mappings.insert((id, ctx), options);
                self.state.private.remove(&(id, ctx));
                op(Outcome::Word(1), OVERHEAD_MAP + gas)
            }
            Step::Read {
                slot,
                offset,
                size,
                mem,
            } => {
                let id = self.resolve(run.table[*slot])?;
                if !self.may(id, ctx, false) {
                    return Err(HaltCause::PermissionDenied);
                }
                let off = Self::offset(*offset, *size)?;
                let len = *size as usize;
                let mut gas = self.access_cost(id) + 3 * words(len as u64);
                self.state.warm.insert(id);
                let mut n = 0;
                if len > 0 {
                    let abs = run.base + *mem as usize;
                    gas += run.expand(abs, len);
                    let (bytes, from_region) = self.view(id, ctx, off, len);
                    if from_region > 0 && self.state.private.contains_key(&(id, ctx)) {
                        self.private_reads += 1;
                    }
                    let at = abs - run.base;
                    run.mem[at..at + len].copy_from_slice(&bytes);
                    n = from_region;
                }
                op(Outcome::Word(n as u64), OVERHEAD_COPY + gas)
            }
            Step::Write {
                slot,
                offset,
                size,
                mem,
            } => {
                if run.is_static {
                    return Err(HaltCause::StaticWrite);
                }
                let id = self.resolve(run.table[*slot])?;
                let cow = self.copy_on_write(id, ctx);
                if self.rules.basic {
                    let read_only = self
                        .state
                        .mappings
                        .get(&(id, ctx))
                        .is_some_and(|o| o & 2 != 0);
                    let allowed = if cow {
                        self.may(id, ctx, false)
                    } else {
                        self.may(id, ctx, true) && !read_only
                    };
                    if !allowed {
                        return Err(HaltCause::PermissionDenied);
                    }
                }
                let off = Self::offset(*offset, *size)?;
                let len = u64::from(*size);
                let mut gas = self.access_cost(id) + 3 * words(len);
                self.state.warm.insert(id);
                if len == 0 {
                    return op(Outcome::Word(0), OVERHEAD_COPY + gas);
                }
                let abs = run.base + *mem as usize;
                let region = self.state.regions[&id].clone();
                let old_size = region.size;
                let end = off + len;
                let existing_end = end.min(old_size);
                let pages: Vec<u64> = if off < existing_end {
                    (off / PAGE..=(existing_end - 1) / PAGE).collect()
                } else {
                    Vec::new()
                };
                if cow {
                    // A page costs 200 the first time it is saved in this frame, and a
                    // copy-on-write fault costs 200: at most one charge per page.
                    let charged = pages
                        .iter()
                        .filter(|&&p| {
                            !run.saved.contains(&(id, p, Some(ctx)))
                                || !self.has_private(id, ctx, p)
                        })
                        .count() as u64;
                    gas += pages_cost(self.state.pages, charged);
                    self.state.pages += charged;
                    gas += run.expand(abs, len as usize);
                    let data = run.mem[abs - run.base..abs - run.base + len as usize].to_vec();
                    for &p in &pages {
                        run.saved.insert((id, p, Some(ctx)));
                        if !self.has_private(id, ctx, p) {
                            self.cow_faults += 1;
                            let page: Vec<u8> = (p * PAGE..(p + 1) * PAGE)
                                .map(|at| if at < old_size { region.byte(at) } else { 0 })
                                .collect();
                            self.state
                                .private
                                .entry((id, ctx))
                                .or_default()
                                .insert(p, page);
                        }
                    }
                    let private = self.state.private.entry((id, ctx)).or_default();
                    let written = existing_end.saturating_sub(off);
                    for i in 0..written {
                        let at = off + i;
                        let page = private.get_mut(&(at / PAGE)).expect("faulted above");
                        page[(at % PAGE) as usize] = data[i as usize];
                    }
                    return op(Outcome::Word(written), OVERHEAD_COPY + gas);
                }
                let growth = (region.auto_grow
                    && end > old_size
                    && off < end.min(self.rules.max_region_size))
                .then(|| {
                    let target = end.min(self.rules.max_region_size);
                    (target, words(target) - words(old_size))
                });
                let charged = pages
                    .iter()
                    .filter(|&&p| !run.saved.contains(&(id, p, None)))
                    .count() as u64;
                gas += pages_cost(self.state.pages, charged);
                self.state.pages += charged;
                if let Some((_, added)) = growth {
                    gas += growth_cost(self.state.words, added, region.persistent);
                }
                gas += run.expand(abs, len as usize);
                let data = run.mem[abs - run.base..abs - run.base + len as usize].to_vec();
                if let Some((_, added)) = growth {
                    self.state.words += added;
                }
                let region = self.state.regions.get_mut(&id).expect("resolved");
                if let Some((target, _)) = growth {
                    region.size = target;
                }
                for &p in &pages {
                    run.saved.insert((id, p, None));
                }
                let written_end = end.min(region.size);
                let written = written_end.saturating_sub(off);
                if written > 0 {
                    let (from, to) = (off as usize, written_end as usize);
                    if region.data.len() < to {
                        region.data.resize(to, 0);
                    }
                    region.data[from..to].copy_from_slice(&data[..to - from]);
                }
                op(Outcome::Word(written), OVERHEAD_COPY + gas)
            }
            Step::Poke { mem, seed } => {
                let at = *mem as usize;
                run.mem[at..at + 32].copy_from_slice(&poke_word(*seed));
                Ok(None)
            }
            Step::Spoil { slot, how } => {
                run.table[*slot] = if *how == Spoil::Zero {
                    Val::Zero
                } else {
                    Val::Bad
                };
                Ok(None)
            }
            Step::Copy { from, to } => {
                run.table[*to] = run.table[*from];
                Ok(None)
            }
            Step::Call {
                target,
                kind,
                adopt_on_revert,
                child,
            } => {
                let child_static = run.is_static || *kind == CallKind::Static;
                let (ended, saved) =
                    self.run_frame(child, *target, child_static, run.table, depth + 1);
                let overhead = match kind {
                    CallKind::Call => OVERHEAD_CALL,
                    CallKind::Static => OVERHEAD_STATICCALL,
                };
                Ok(Some(match ended {
                    Ended::Returned(out) => {
                        run.saved.extend(saved);
                        run.table = out.table;
                        Expect::Call {
                            success: true,
                            return_size: output_len(child),
                            gas: None,
                            child: Some(Box::new(out)),
                        }
                    }
                    Ended::Reverted(out) => {
                        if *adopt_on_revert {
                            run.table = out.table;
                        }
                        Expect::Call {
                            success: false,
                            return_size: output_len(child),
                            gas: None,
                            child: Some(Box::new(out)),
                        }
                    }
                    Ended::Halted => Expect::Call {
                        success: false,
                        return_size: 0,
                        gas: Some(overhead + child_gas(depth + 1)),
                        child: None,
                    },
                }))
            }
        }
    }
}

// ----- reading what revm produced -----

#[derive(Debug)]
enum Observed {
    Op {
        result: U256,
        gas: U256,
    },
    Call {
        success: U256,
        return_size: U256,
        gas: U256,
        child: Option<Box<ObservedFrame>>,
    },
}

#[derive(Debug)]
struct ObservedFrame {
    table: [U256; SLOTS],
    steps: Vec<Option<Observed>>,
    data: Vec<u8>,
    /// Read-backs as `(count, count past, bytes)`.
    dumps: [Option<(U256, U256, Vec<u8>)>; SLOTS],
}

fn word_at(bytes: &[u8], at: usize) -> U256 {
    U256::from_be_slice(&bytes[at..at + 32])
}

/// Parses a frame's output (its table, records and data area; for the top frame,
/// then the read-backs of `dumps`).
fn parse_frame(frame: &Frame, bytes: &[u8], dumps: Dumps) -> Result<ObservedFrame, String> {
    let expected = 32 * SLOTS
        + records_len(frame)
        + DATA_LEN
        + dumps
            .iter()
            .flatten()
            .map(|&len| dump_len(len))
            .sum::<usize>();
    if bytes.len() != expected {
        return Err(format!(
            "output of {} bytes, the layout has {expected}",
            bytes.len()
        ));
    }
    let table = std::array::from_fn(|slot| word_at(bytes, 32 * slot));
    let mut at = 32 * SLOTS;
    let mut steps = Vec::new();
    for step in &frame.steps {
        steps.push(match step {
            Step::Call { child, .. } => {
                let len = output_len(child);
                let return_size = word_at(bytes, at + 32);
                let child_frame = if return_size == U256::from(len) {
                    Some(parse_frame(
                        child,
                        &bytes[at + 96..at + 96 + len],
                        Dumps::default(),
                    )?)
                } else {
                    None
                };
                let observed = Observed::Call {
                    success: word_at(bytes, at),
                    return_size,
                    gas: word_at(bytes, at + 64),
                    child: child_frame.map(Box::new),
                };
                at += 96 + len;
                Some(observed)
            }
            Step::Poke { .. } | Step::Spoil { .. } | Step::Copy { .. } => None,
            _ => {
                let observed = Observed::Op {
                    result: word_at(bytes, at),
                    gas: word_at(bytes, at + 32),
                };
                at += 64;
                Some(observed)
            }
        });
    }
    let data = bytes[at..at + DATA_LEN].to_vec();
    at += DATA_LEN;
    let dumps = dumps.map(|len| {
        len.map(|len| {
            let read = (
                word_at(bytes, at),
                word_at(bytes, at + 32),
                bytes[at + 64..at + 64 + len].to_vec(),
            );
            at += dump_len(len);
            read
        })
    });
    Ok(ObservedFrame {
        table,
        steps,
        data,
        dumps,
    })
}

fn step_line(step: &Step) -> String {
    let mut out = String::new();
    Frame {
        steps: vec![match step {
            Step::Call {
                target,
                kind,
                adopt_on_revert,
                child,
            } => Step::Call {
                target: *target,
                kind: *kind,
                adopt_on_revert: *adopt_on_revert,
                child: Frame {
                    steps: Vec::new(),
                    end: child.end,
                },
            },
            other => other.clone(),
        }],
        end: End::Return,
    }
    .render(0, &mut out);
    out.lines().next().unwrap_or_default().to_string()
}

/// Compares what revm did with what the model expects; binds model regions to the
/// handles revm gave them.
#[derive(Default)]
struct Checker {
    handles: HashMap<u32, U256>,
    issued: HashSet<U256>,
}

impl Checker {
    fn frame(
        &mut self,
        frame: &Frame,
        expect: &ExpectFrame,
        observed: &ObservedFrame,
        path: &str,
    ) -> Result<(), String> {
        for (i, step) in frame.steps.iter().enumerate() {
            let at = || format!("{path}, step {i} {step:?}");
            match (&expect.steps[i], &observed.steps[i]) {
                (None, None) => {}
                (Some(Expect::Op { result, gas }), Some(Observed::Op { result: r, gas: g })) => {
                    if U256::from(*gas) != *g {
                        return Err(format!("{}: gas: model {gas}, revm {g}", at()));
                    }
                    match result {
                        Outcome::Word(w) if U256::from(*w) != *r => {
                            return Err(format!("{}: result: model {w}, revm {r}", at()));
                        }
                        Outcome::Word(_) => {}
                        Outcome::Alloc(None) if !r.is_zero() => {
                            return Err(format!("{}: model pushes 0, revm {r:#x}", at()));
                        }
                        Outcome::Alloc(None) => {}
                        Outcome::Alloc(Some(id)) => {
                            if RegionHandle::from_u256(*r).is_none() {
                                return Err(format!("{}: {r:#x} is not a handle", at()));
                            }
                            if !self.issued.insert(*r) {
                                return Err(format!("{}: handle {r:#x} issued twice", at()));
                            }
                            self.handles.insert(*id, *r);
                        }
                    }
                }
                (
                    Some(Expect::Call {
                        success,
                        return_size,
                        gas,
                        child,
                    }),
                    Some(Observed::Call {
                        success: s,
                        return_size: rs,
                        gas: g,
                        child: c,
                    }),
                ) => {
                    if U256::from(*success as u8) != *s || U256::from(*return_size) != *rs {
                        return Err(format!(
                            "{}: model success {success} with {return_size} bytes, revm {s} with {rs}",
                            at()
                        ));
                    }
                    if let Some(gas) = gas {
                        if U256::from(*gas) != *g {
                            return Err(format!("{}: gas: model {gas}, revm {g}", at()));
                        }
                    }
                    if let (Some(expect), Some(observed), Step::Call { child: tree, .. }) =
                        (child, c, step)
                    {
                        self.frame(tree, expect, observed, &format!("{path} > {i}"))?;
                    }
                }
                (e, o) => return Err(format!("{}: model {e:?}, revm {o:?}", at())),
            }
        }
        for (slot, (value, word)) in expect.table.iter().zip(&observed.table).enumerate() {
            let want = match value {
                Val::Zero => U256::ZERO,
                Val::Region(id) => *self
                    .handles
                    .get(id)
                    .ok_or_else(|| format!("{path}: model region {id} never seen"))?,
                Val::Bad => continue,
            };
            if want != *word {
                return Err(format!(
                    "{path}: slot {slot} at the end: model {value:?} = {want:#x}, revm {word:#x}"
                ));
            }
        }
        if let Some(at) = (0..DATA_LEN).find(|&i| expect.data[i] != observed.data[i]) {
            return Err(format!(
                "{path}: data area (where READs land) byte {at}: model {:#04x}, revm {:#04x}",
                expect.data[at], observed.data[at]
            ));
        }
        for (slot, (dump, read)) in expect.dumps.iter().zip(&observed.dumps).enumerate() {
            let (Some(dump), Some((count, past, bytes))) = (dump, read) else {
                continue;
            };
            if U256::from(dump.count) != *count || U256::from(dump.past) != *past {
                return Err(format!(
                    "{path}: read-back of slot {slot}: model {} bytes (then {}), revm {count} (then {past})",
                    dump.count, dump.past
                ));
            }
            if let Some(at) = (0..bytes.len()).find(|&i| dump.bytes[i] != bytes[i]) {
                return Err(format!(
                    "{path}: read-back of slot {slot}, byte {at}: model {:#04x}, revm {:#04x}",
                    dump.bytes[at], bytes[at]
                ));
            }
        }
        Ok(())
    }

    /// After a transaction: the registry holds exactly the model's regions, with
    /// their bytes; every other handle seen is dead.
    fn host(&self, harness: &Harness, model: &Model, path: &str) -> Result<(), String> {
        let manager = &harness.manager;
        let live = manager.list_regions().map_err(|e| format!("{path}: {e}"))?;
        if live.len() != model.state.regions.len() {
            return Err(format!(
                "{path}: {} regions in the registry, model {}",
                live.len(),
                model.state.regions.len()
            ));
        }
        for (id, region) in &model.state.regions {
            let word = self
                .handles
                .get(id)
                .ok_or_else(|| format!("{path}: live model region {id} never seen"))?;
            let handle = RegionHandle::from_u256(*word).expect("checked when bound");
            let size = manager
                .region_info(handle)
                .map_err(|e| format!("{path}: region {id} ({handle}): {e}"))?
                .meta
                .size();
            if size != region.size {
                return Err(format!(
                    "{path}: region {id} has {size} bytes, model {}",
                    region.size
                ));
            }
            let mut bytes = vec![0u8; region.size as usize];
            manager
                .read_region(handle, 0, &mut bytes)
                .map_err(|e| format!("{path}: {e}"))?;
            let data = &region.data[..region.data.len().min(bytes.len())];
            let differs =
                bytes[..data.len()] != *data || bytes[data.len()..].iter().any(|&b| b != 0);
            if differs {
                let at = (0..bytes.len())
                    .find(|&at| bytes[at] != region.byte(at as u64))
                    .unwrap_or_default();
                return Err(format!(
                    "{path}: region {id} byte {at}: model {}, registry {}",
                    region.byte(at as u64),
                    bytes[at]
                ));
            }
        }
        for (id, word) in &self.handles {
            let handle = RegionHandle::from_u256(*word).expect("checked when bound");
            if !model.state.regions.contains_key(id) && manager.region_info(handle).is_ok() {
                return Err(format!("{path}: region {id} ({handle}) should be gone"));
            }
        }
        Ok(())
    }
}

// ----- driving a case -----

/// The `testing` preset (security None, COW off) with pools large enough that they
/// never run dry (the model does not simulate the pool) and few enough regions that
/// the region limit is reached.
fn testing_config() -> SharedMemoryConfig {
    SharedMemoryConfig {
        max_regions: 6,
        max_persistent_regions: 4,
        pool_blocks: [64, 64, 64, 2],
        ..SharedMemoryConfig::testing()
    }
}

/// The `development` preset (Basic, COW on), with the same pool and limit changes.
fn development_config() -> SharedMemoryConfig {
    SharedMemoryConfig {
        max_regions: 6,
        max_persistent_regions: 4,
        pool_blocks: [64, 64, 64, 2],
        ..SharedMemoryConfig::development()
    }
}

/// Runs `case` on a fresh manager with `config`; with `check`, compares every
/// transaction with the model. Returns a transcript of what revm did.
fn run_case(case: &Case, config: SharedMemoryConfig, check: bool) -> Result<Vec<String>, String> {
    let rules = Rules::of(&config);
    let mut harness = Harness::new(config);
    let mut model = Model::new(rules);
    let mut checker = Checker::default();
    let mut table = [Val::Zero; SLOTS];
    let mut table_words = [U256::ZERO; SLOTS];
    let mut transcript = Vec::new();
    for (t, frame) in case.txs.iter().enumerate() {
        let path = format!("tx {t}");
        let ended = model.run_tx(frame, table);
        let dumps: Dumps = match &ended {
            Ended::Returned(out) | Ended::Reverted(out) => {
                std::array::from_fn(|slot| out.dumps[slot].as_ref().map(|d| d.bytes.len()))
            }
            Ended::Halted => Dumps::default(),
        };
        let source = Compiler::compile(frame, dumps, rules.max_region_size);
        for address in CONTRACTS {
            harness.deploy_asm_at(address, &source);
        }
        let mut input = vec![0u8; 32];
        for word in &table_words {
            input.extend_from_slice(&word.to_be_bytes::<32>());
        }
        let outcome = harness.call_with_gas(CONTRACTS[0], &input, TX_GAS);
        transcript.push(format!("{:?} {:?}", outcome.result, outcome.last_halt));
        let output = outcome.output();
        if matches!(
            outcome.result,
            ExecutionResult::Success { .. } | ExecutionResult::Revert { .. }
        ) {
            if let Ok(observed) = parse_frame(frame, &output, dumps) {
                table_words = observed.table;
            }
        }
        if !check {
            continue;
        }
        match (&ended, &outcome.result) {
            (Ended::Returned(expect), ExecutionResult::Success { .. })
            | (Ended::Reverted(expect), ExecutionResult::Revert { .. }) => {
                let observed =
                    parse_frame(frame, &output, dumps).map_err(|e| format!("{path}: {e}"))?;
                checker.frame(frame, expect, &observed, &path)?;
                table = expect.table;
            }
            (Ended::Halted, ExecutionResult::Halt { .. }) => {
                if outcome.gas_used() != TX_GAS {
                    return Err(format!(
                        "{path}: halted with {} gas used",
                        outcome.gas_used()
                    ));
                }
            }
            (ended, result) => {
                let ended = match ended {
                    Ended::Returned(_) => "returns",
                    Ended::Reverted(_) => "reverts",
                    Ended::Halted => "halts",
                };
                return Err(format!(
                    "{path}: the model's transaction {ended}, revm: {result:?}"
                ));
            }
        }
        if outcome.last_halt != model.last_halt {
            return Err(format!(
                "{path}: last shared-memory halt: model {:?}, revm {:?}",
                model.last_halt, outcome.last_halt
            ));
        }
        checker.host(&harness, &model, &path)?;
    }
    Ok(transcript)
}

/// `default` cases, or `PROPTEST_CASES` when set (for longer local runs).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    /// Security None (`testing`): two contexts, every operation allowed.
    #[test]
    fn testing_preset_matches_the_model(case in case(2, 3, 2)) {
        if let Err(error) = run_case(&case, testing_config(), true) {
            prop_assert!(false, "{}", error);
        }
    }

    /// Security Basic (`development`, copy-on-write on): owner rights, public flags,
    /// read-only and copy-on-write mappings, across two contexts.
    #[test]
    fn development_preset_matches_the_model(case in case(2, 2, 6)) {
        if let Err(error) = run_case(&case, development_config(), true) {
            prop_assert!(false, "{}", error);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    /// §3: the same transactions on two fresh managers give identical handles,
    /// outputs, gas and halts.
    #[test]
    fn same_transactions_same_results(case in case(2, 3, 2), development in any::<bool>()) {
        let config = || if development { development_config() } else { testing_config() };
        let first = run_case(&case, config(), false);
        let second = run_case(&case, config(), false);
        prop_assert_eq!(first, second);
    }
}

/// Found by the development property: after a remap dropped a private page that was
/// already saved in the frame, the next copy-on-write write faulted it again for free.
#[test]
fn copy_on_write_fault_after_remap_in_the_same_frame_costs_a_page() {
    let alloc = |slot| Step::Alloc {
        slot,
        size: AllocSize::Bytes(1749),
        flags: Bits::Known(0),
    };
    let write = Step::Write {
        slot: 0,
        offset: Offset::At(0),
        size: 1,
        mem: 0,
    };
    let map_cow = Step::Map {
        slot: 0,
        options: Bits::Known(1),
    };
    let case = Case {
        txs: vec![Frame {
            steps: vec![alloc(0), map_cow.clone(), write.clone(), map_cow, write],
            end: End::Return,
        }],
    };
    if let Err(error) = run_case(&case, development_config(), true) {
        panic!("{error}");
    }
}

/// The generator reaches what the properties are meant to cover: every instruction
/// with and without effect, every halt cause the configuration allows, returning,
/// reverting and halting children, and copy-on-write faults and private reads
/// (checked on the model alone, so it is cheap).
#[test]
fn generated_programs_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    fn tally(expect: &ExpectFrame, frame: &Frame, seen: &mut BTreeSet<String>) {
        for (step, e) in frame.steps.iter().zip(&expect.steps) {
            match (step, e) {
                (
                    Step::Call { child, .. },
                    Some(Expect::Call {
                        success,
                        gas,
                        child: c,
                        ..
                    }),
                ) => {
                    seen.insert(format!("call success={success} halted={}", gas.is_some()));
                    if let Some(c) = c {
                        tally(c, child, seen);
                    }
                }
                (_, Some(Expect::Op { result, .. })) => {
                    let name = match step {
                        Step::Alloc { .. } => "ALLOC",
                        Step::Free { .. } => "FREE",
                        Step::Map { .. } => "MAP",
                        Step::Read { .. } => "READ",
                        _ => "WRITE",
                    };
                    let none = matches!(result, Outcome::Word(0) | Outcome::Alloc(None));
                    seen.insert(format!("{name} none={none}"));
                }
                _ => {}
            }
        }
    }
    let presets = [
        (testing_config(), case(2, 3, 2).boxed()),
        (development_config(), case(2, 2, 6).boxed()),
    ];
    for (config, strategy) in presets {
        let mut runner = TestRunner::deterministic();
        let mut model = Model::new(Rules::of(&config));
        let mut seen = BTreeSet::new();
        let (mut observed, mut txs) = (0, 0);
        for _ in 0..200 {
            let case = strategy.new_tree(&mut runner).expect("a case").current();
            model.state = ModelState::default();
            let mut table = [Val::Zero; SLOTS];
            for tx in &case.txs {
                txs += 1;
                if let Ended::Returned(e) | Ended::Reverted(e) = model.run_tx(tx, table) {
                    observed += 1;
                    tally(&e, tx, &mut seen);
                    table = e.table;
                }
            }
        }
        let mut wanted: Vec<String> = ["ALLOC", "READ", "WRITE"]
            .iter()
            .flat_map(|op| [format!("{op} none=false"), format!("{op} none=true")])
            .chain(["FREE none=false".into(), "MAP none=false".into()])
            .chain((0..3).map(|i| {
                [
                    "call success=true halted=false",
                    "call success=false halted=false",
                    "call success=false halted=true",
                ][i]
                    .to_string()
            }))
            .collect();
        wanted.retain(|w| !seen.contains(w));
        assert!(wanted.is_empty(), "never reached: {wanted:?}");
        let mut causes = vec![
            "InvalidHandle",
            "FreedRegion",
            "StaticWrite",
            "BadFlags",
            "OffsetOverflow",
        ];
        if config.security_level == SecurityLevel::Basic {
            causes.push("PermissionDenied");
            assert!(
                model.cow_faults > 0 && model.private_reads > 0,
                "no copy-on-write traffic"
            );
        }
        for cause in causes {
            assert!(
                model.halts.get(cause).copied().unwrap_or(0) > 0,
                "no {cause} halt"
            );
        }
        assert!(
            model.region_limit_hits > 0,
            "the region limit is never reached"
        );
        assert!(
            2 * observed > txs,
            "only {observed} of {txs} transactions observable"
        );
    }
}
