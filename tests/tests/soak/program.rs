//! Random transactions for the soak, as plans the checker can replay and as
//! the bytecode that carries them out.
//!
//! A transaction calls one contract (`CONTRACT`, the same address in every
//! thread and process, so it owns every region the soak uses). Its calldata
//! is a frame selector and a table of region handles; its code is generated
//! for the plan: frame 0 maps every region in the table and runs its ops,
//! and each inner frame is reached by a CALL of the contract to itself with
//! another selector. Every op that observes something appends a 3-word
//! record `[tag, a, b]` to the frame's log, which the frame returns (or
//! reverts with); a CALL appends `[tag, success, length]` followed by the
//! callee's log, so the records of every frame that did not halt reach the
//! checker.

use alloy_primitives::Address;

use crate::ledger::{Stamp, Writer};

/// The contract every soak transaction calls.
pub(crate) const CONTRACT: Address = Address::repeat_byte(0x5c);
/// Size of the shared persistent regions (two pages).
pub(crate) const REGION_SIZE: u64 = 8192;
/// 64-byte slots in a shared region.
pub(crate) const SLOTS: u16 = (REGION_SIZE / 64) as u16;
/// Handles a transaction names (calldata words 1..=3).
pub(crate) const TABLE: usize = 3;
/// ALLOC flags of a shared persistent region: persistent, public read and write.
pub(crate) const SHARED_FLAGS: u64 = 1 | 4 | 8;
/// At most this many writes (bits of a commit mask) per transaction.
const MAX_WRITES: u8 = 30;

const LOGP: u64 = 0x3e0;
const SCRATCH: u64 = 0x400;
const NEW_HANDLE: u64 = 0x440;
const DIRTY: u64 = 0x480;
const ARGS: u64 = 0x800;
const LOG: u64 = 0x1000;
/// What a transaction-scoped region is scribbled with after its zero check:
/// no stamp, so a fresh region that ever shows it leaked recycled memory.
pub(crate) const DIRTY_BYTE: u8 = 0xd1;

/// A small deterministic generator (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// READ 64 bytes of a slot; record `[tag, word0, word1]`.
    Read { r: usize, slot: u16, tag: u16 },
    /// WRITE one half (32 bytes) of a slot with `stamp`.
    Write {
        r: usize,
        slot: u16,
        half: u8,
        stamp: Stamp,
    },
    /// CALL the contract itself to run frame `frame`; record
    /// `[tag, success, length]` and the callee's records.
    Call { frame: usize, tag: u16 },
    /// ALLOC a transaction-scoped region (auto-growing if `grow`), READ 64
    /// bytes at `at` (record: must be zero), then scribble on it (past its
    /// end if it grows).
    Scoped {
        size: u64,
        grow: bool,
        at: u64,
        scribble_at: u64,
        tag: u16,
    },
    /// MAP copy-on-write, WRITE a stamp into both halves of a slot
    /// (privately), READ it back (record), MAP read-write again (which drops
    /// the private page): the stamp must never be seen by anybody else.
    Cow {
        r: usize,
        slot: u16,
        stamp: Stamp,
        tag: u16,
    },
    /// FREE the region and ALLOC a new shared persistent one in its place;
    /// records `[tag, new handle, 0]` and `[tag + 1, word0, word1]` of slot
    /// `slot` of the new region (must be zero). Always the last op of its
    /// frame.
    Recreate { r: usize, slot: u16, tag: u16 },
    /// A loop of `n` iterations (holds the locks longer).
    Spin { n: u32 },
    /// LOG1 of the scratch words (what the last READ saw), topic `topic`.
    Log { topic: u16 },
    /// SSTORE of the first scratch word at `key`.
    Store { key: u16 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Return,
    Revert,
    Halt,
}

#[derive(Clone, Debug)]
pub(crate) struct Frame {
    pub(crate) ops: Vec<Op>,
    pub(crate) end: End,
}

/// How the embedder treats the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// `transact_commit` / `inspect_tx_commit`: published.
    Commit,
    /// `transact` / `inspect_tx`, then an explicit `abandon()`.
    Abandon,
    /// `transact` / `inspect_tx`, left undecided: the next transaction on the
    /// same EVM abandons it.
    Forget,
}

/// What kinds of transactions to draw.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mix {
    /// ALLOC (transaction-scoped regions, recreating shared ones). Off for
    /// transactions that must touch only their own regions: handles are one
    /// namespace for all transactions.
    pub(crate) alloc: bool,
    /// Simulations (abandoned, forgotten) and inspected runs besides
    /// committed ones.
    pub(crate) embedder: bool,
}

impl Mix {
    /// Everything.
    pub(crate) const SOAK: Mix = Mix {
        alloc: true,
        embedder: true,
    };
}

/// One transaction.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) writer: Writer,
    /// For each table entry: (directory index, handle).
    pub(crate) table: Vec<(usize, u64)>,
    /// Frame 0 is the outer one.
    pub(crate) frames: Vec<Frame>,
    pub(crate) decision: Decision,
    /// Run through `inspect_*` with the dirty-read inspector.
    pub(crate) inspect: bool,
}

impl Plan {
    /// A random plan over `regions` (directory index, handle) — at least one.
    pub(crate) fn random(
        rng: &mut Rng,
        mix: Mix,
        writer: Writer,
        regions: &[(usize, u64)],
    ) -> Self {
        assert!(!regions.is_empty());
        let table = (0..TABLE)
            .map(|_| regions[rng.below(regions.len() as u64) as usize])
            .collect::<Vec<_>>();
        let mut gen = Gen {
            rng,
            writer,
            table: &table,
            frames: Vec::new(),
            tag: 1,
            writes: 0,
            alloc: mix.alloc,
        };
        gen.frame(0);
        let frames = gen.frames;
        let decision = match rng.below(100) {
            _ if !mix.embedder => Decision::Commit,
            0..=79 => Decision::Commit,
            80..=89 => Decision::Abandon,
            _ => Decision::Forget,
        };
        let inspect = mix.embedder && rng.chance(50);
        Self {
            writer,
            table,
            frames,
            decision,
            inspect,
        }
    }

    /// The calldata: selector 0 and the handle table.
    pub(crate) fn calldata(&self) -> Vec<u8> {
        let mut data = vec![0u8; 32];
        for (_, handle) in &self.table {
            data.extend_from_slice(&[0u8; 24]);
            data.extend_from_slice(&handle.to_be_bytes());
        }
        data
    }

    pub(crate) fn handle(&self, r: usize) -> u64 {
        self.table[r].1
    }

    /// Whether `tag` is a CALL's.
    pub(crate) fn is_call(&self, tag: u16) -> bool {
        self.frames
            .iter()
            .flat_map(|f| &f.ops)
            .any(|op| matches!(op, Op::Call { tag: t, .. } if *t == tag))
    }

    /// The contract's code for this plan.
    pub(crate) fn assembly(&self) -> String {
        let mut asm = String::with_capacity(8192);
        asm.push_str(&format!(
            "CALLDATASIZE PUSH 0 PUSH 0 CALLDATACOPY\nPUSH {LOG} PUSH {LOGP} MSTORE\nPUSH 0 MLOAD\n"
        ));
        for i in 1..self.frames.len() {
            asm.push_str(&format!("DUP1 PUSH {i} EQ PUSH @frame{i} JUMPI\n"));
        }
        asm.push_str("POP\n");
        for r in 0..TABLE {
            asm.push_str(&format!("PUSH 0 {} SHARED_MAP POP\n", handle(r)));
        }
        let mut spins = 0;
        for (i, frame) in self.frames.iter().enumerate() {
            if i > 0 {
                asm.push_str(&format!("frame{i}:\nJUMPDEST POP\n"));
            }
            for op in &frame.ops {
                op_asm(op, &mut asm, &mut spins);
            }
            asm.push_str(match frame.end {
                End::Return => "PUSH 0x1000 PUSH 0x3e0 MLOAD SUB PUSH 0x1000 RETURN\n",
                End::Revert => "PUSH 0x1000 PUSH 0x3e0 MLOAD SUB PUSH 0x1000 REVERT\n",
                End::Halt => "INVALID\n",
            });
        }
        asm
    }
}

struct Gen<'a> {
    rng: &'a mut Rng,
    writer: Writer,
    table: &'a [(usize, u64)],
    frames: Vec<Frame>,
    tag: u16,
    writes: u8,
    alloc: bool,
}

impl Gen<'_> {
    fn tag(&mut self, n: u16) -> u16 {
        let t = self.tag;
        self.tag += n;
        t
    }

    fn slot(&mut self) -> u16 {
        // Half the time one of a few hot slots, on both pages.
        const HOT: [u16; 6] = [0, 1, 2, 3, 64, 65];
        if self.rng.chance(50) {
            HOT[self.rng.below(HOT.len() as u64) as usize]
        } else {
            self.rng.below(u64::from(SLOTS)) as u16
        }
    }

    fn stamp(&mut self, r: usize, slot: u16) -> Option<Stamp> {
        if self.writes >= MAX_WRITES {
            return None;
        }
        let write = self.writes;
        self.writes += 1;
        Some(Stamp {
            writer: self.writer,
            write,
            handle: self.table[r].1,
            slot,
        })
    }

    fn r(&mut self) -> usize {
        self.rng.below(TABLE as u64) as usize
    }

    fn read(&mut self) -> Op {
        let r = self.r();
        let slot = self.slot();
        Op::Read {
            r,
            slot,
            tag: self.tag(1),
        }
    }

    fn spin(&mut self) -> Op {
        Op::Spin {
            n: 100 + self.rng.below(2000) as u32,
        }
    }

    /// Generates a frame at `depth` and returns its index.
    fn frame(&mut self, depth: usize) -> usize {
        let index = self.frames.len();
        self.frames.push(Frame {
            ops: Vec::new(),
            end: End::Return,
        });
        let mut ops = Vec::new();
        for _ in 0..1 + self.rng.below(5) {
            match self.rng.below(100) {
                0..=29 => ops.push(self.read()),
                30..=54 => {
                    let r = self.r();
                    let slot = self.slot();
                    let Some(stamp) = self.stamp(r, slot) else {
                        ops.push(self.read());
                        continue;
                    };
                    ops.push(Op::Write {
                        r,
                        slot,
                        half: 0,
                        stamp,
                    });
                    // Something between the halves: a reader that could see
                    // the slot now would see it torn.
                    match self.rng.below(10) {
                        0..=1 => ops.push(self.spin()),
                        2..=3 => ops.push(self.read()),
                        // (Never a CALL: a callee that wrote the same slot
                        // would leave it legitimately half theirs.)
                        _ => {}
                    }
                    ops.push(Op::Write {
                        r,
                        slot,
                        half: 1,
                        stamp,
                    });
                }
                55..=69 if depth < 2 => {
                    let frame = self.frame(depth + 1);
                    let tag = self.tag(1);
                    ops.push(Op::Call { frame, tag });
                }
                70..=79 if self.alloc => {
                    let size = 64 + self.rng.below(5000);
                    let grow = self.rng.chance(30);
                    let at = self.rng.below(size - 63);
                    let scribble_at = if grow {
                        size + self.rng.below(3000)
                    } else {
                        self.rng.below(size - 63)
                    };
                    ops.push(Op::Scoped {
                        size,
                        grow,
                        at,
                        scribble_at,
                        tag: self.tag(1),
                    });
                }
                80..=87 => {
                    let r = self.r();
                    let slot = self.slot();
                    match self.stamp(r, slot) {
                        Some(stamp) => ops.push(Op::Cow {
                            r,
                            slot,
                            stamp,
                            tag: self.tag(1),
                        }),
                        None => ops.push(self.read()),
                    }
                }
                88..=91 => ops.push(self.spin()),
                92..=93 => ops.push(Op::Log {
                    topic: self.rng.below(1000) as u16,
                }),
                94..=95 => ops.push(Op::Store {
                    key: self.rng.below(8) as u16,
                }),
                _ => ops.push(self.read()),
            }
        }
        if self.alloc && self.rng.chance(if depth == 0 { 3 } else { 2 }) {
            let r = self.r();
            let slot = self.slot();
            ops.push(Op::Recreate {
                r,
                slot,
                tag: self.tag(2),
            });
        }
        let end = match (depth, self.rng.below(100)) {
            (0, 0..=84) | (1.., 0..=69) => End::Return,
            (0, 85..=94) | (1.., 70..=91) => End::Revert,
            _ => End::Halt,
        };
        self.frames[index] = Frame { ops, end };
        index
    }
}

/// The handle in table entry `r`, pushed.
fn handle(r: usize) -> String {
    format!("PUSH {} MLOAD", 32 * (1 + r))
}

/// Appends the top of the stack to the frame's log.
const APPEND: &str = " PUSH 0x3e0 MLOAD MSTORE PUSH 0x3e0 MLOAD PUSH 32 ADD PUSH 0x3e0 MSTORE\n";

/// READ 64 bytes at `offset` of the region `h` pushes into the scratch
/// words, and log `[tag, word0, word1]`.
fn read_record(h: &str, offset: u64, tag: u16) -> String {
    format!(
        "PUSH {SCRATCH} PUSH 64 PUSH {offset} {h} SHARED_READ POP\n\
         PUSH {tag}{APPEND}PUSH {SCRATCH} MLOAD{APPEND}PUSH 0x420 MLOAD{APPEND}"
    )
}

fn write_half(h: &str, slot: u16, half: u8, stamp: &Stamp) -> String {
    format!(
        "PUSH 0x{} PUSH {SCRATCH} MSTORE\nPUSH {SCRATCH} PUSH 32 PUSH {} {h} SHARED_WRITE POP\n",
        crate::ledger::hex(&stamp.encode()),
        u64::from(slot) * 64 + u64::from(half) * 32
    )
}

fn op_asm(op: &Op, asm: &mut String, spins: &mut usize) {
    match op {
        Op::Read { r, slot, tag } => {
            asm.push_str(&read_record(&handle(*r), u64::from(*slot) * 64, *tag));
        }
        Op::Write {
            r,
            slot,
            half,
            stamp,
        } => asm.push_str(&write_half(&handle(*r), *slot, *half, stamp)),
        Op::Call { frame, tag } => asm.push_str(&format!(
            "PUSH {frame} PUSH {ARGS} MSTORE PUSH {table} PUSH 0x20 PUSH {args1} MCOPY\n\
             PUSH 0 PUSH 0 PUSH {args_len} PUSH {ARGS} PUSH 0 ADDRESS GAS CALL\n\
             PUSH {tag}{APPEND}{APPEND}RETURNDATASIZE{APPEND}\
             RETURNDATASIZE PUSH 0 PUSH {LOGP} MLOAD RETURNDATACOPY\n\
             PUSH {LOGP} MLOAD RETURNDATASIZE ADD PUSH {LOGP} MSTORE\n",
            table = 32 * TABLE,
            args1 = ARGS + 32,
            args_len = 32 * (TABLE + 1),
        )),
        Op::Scoped {
            size,
            grow,
            at,
            scribble_at,
            tag,
        } => {
            let flags = if *grow { 2 } else { 0 };
            let dirty = format!("0x{}", format!("{DIRTY_BYTE:02x}").repeat(32));
            asm.push_str(&format!(
                "PUSH {flags} PUSH {size} SHARED_ALLOC PUSH {NEW_HANDLE} MSTORE\n"
            ));
            asm.push_str(&read_record(&format!("PUSH {NEW_HANDLE} MLOAD"), *at, *tag));
            asm.push_str(&format!(
                "PUSH {dirty} PUSH {DIRTY} MSTORE PUSH {dirty} PUSH {d1} MSTORE\n\
                 PUSH {DIRTY} PUSH 64 PUSH {scribble_at} PUSH {NEW_HANDLE} MLOAD SHARED_WRITE POP\n",
                d1 = DIRTY + 32
            ));
        }
        Op::Cow {
            r,
            slot,
            stamp,
            tag,
        } => {
            let h = handle(*r);
            asm.push_str(&format!("PUSH 1 {h} SHARED_MAP POP\n"));
            asm.push_str(&write_half(&h, *slot, 0, stamp));
            asm.push_str(&write_half(&h, *slot, 1, stamp));
            asm.push_str(&read_record(&h, u64::from(*slot) * 64, *tag));
            asm.push_str(&format!("PUSH 0 {h} SHARED_MAP POP\n"));
        }
        Op::Recreate { r, slot, tag } => {
            asm.push_str(&format!(
                "{h} SHARED_FREE POP\n\
                 PUSH {SHARED_FLAGS} PUSH {REGION_SIZE} SHARED_ALLOC PUSH {NEW_HANDLE} MSTORE\n\
                 PUSH {tag}{APPEND}PUSH {NEW_HANDLE} MLOAD{APPEND}PUSH 0{APPEND}",
                h = handle(*r)
            ));
            asm.push_str(&read_record(
                &format!("PUSH {NEW_HANDLE} MLOAD"),
                u64::from(*slot) * 64,
                tag + 1,
            ));
        }
        Op::Log { topic } => {
            asm.push_str(&format!("PUSH {topic} PUSH 64 PUSH {SCRATCH} LOG1\n"));
        }
        Op::Store { key } => {
            asm.push_str(&format!("PUSH {SCRATCH} MLOAD PUSH {key} SSTORE\n"));
        }
        Op::Spin { n } => {
            let k = *spins;
            *spins += 1;
            asm.push_str(&format!(
                "PUSH {n}\nspin{k}:\nJUMPDEST PUSH 1 SWAP1 SUB DUP1 PUSH @spin{k} JUMPI POP\n"
            ));
        }
    }
}
