//! Replays one transaction's plan against the records it returned: what its
//! own reads must have seen, which of its writes it committed as final, which
//! regions it recreated, and the foreign stamps it read (for the ledger).

use std::collections::HashMap;

use revm::context::result::ExecutionResult;

use crate::ledger::{Seen, Stamp, Writer};
use crate::program::{Decision, End, Op, Plan, DIRTY_BYTE};

/// One record of a frame's log.
#[derive(Debug)]
pub(crate) enum Rec {
    Plain {
        tag: u16,
        a: [u8; 32],
        b: [u8; 32],
    },
    Call {
        tag: u16,
        success: bool,
        child: Vec<Rec>,
    },
}

fn word(bytes: &[u8], i: usize) -> [u8; 32] {
    bytes[i * 32..i * 32 + 32].try_into().expect("32 bytes")
}

fn small(word: &[u8; 32]) -> Result<u64, String> {
    if word[..24] != [0; 24] {
        return Err(format!("not a small number: {}", crate::ledger::hex(word)));
    }
    Ok(u64::from_be_bytes(word[24..].try_into().expect("8 bytes")))
}

/// Parses a frame's log.
pub(crate) fn parse(bytes: &[u8], plan: &Plan) -> Result<Vec<Rec>, String> {
    if !bytes.len().is_multiple_of(96) {
        return Err(format!("a log of {} bytes", bytes.len()));
    }
    let mut recs = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rec = &bytes[at..at + 96];
        at += 96;
        let tag = u16::try_from(small(&word(rec, 0))?).map_err(|e| e.to_string())?;
        if plan.is_call(tag) {
            let success = match small(&word(rec, 1))? {
                0 => false,
                1 => true,
                n => return Err(format!("CALL returned {n}")),
            };
            let len = small(&word(rec, 2))? as usize;
            let Some(child) = bytes.get(at..at + len) else {
                return Err(format!("a callee log of {len} bytes past the end"));
            };
            at += len;
            recs.push(Rec::Call {
                tag,
                success,
                child: parse(child, plan)?,
            });
        } else {
            recs.push(Rec::Plain {
                tag,
                a: word(rec, 1),
                b: word(rec, 2),
            });
        }
    }
    Ok(recs)
}

/// What the transaction wrote and has not undone (yet): the value of each
/// (handle, slot, half) and the write it came from, and the regions it
/// recreated (directory index, new handle).
#[derive(Clone, Default)]
struct Overlay {
    words: HashMap<(u64, u16, u8), ([u8; 32], u8)>,
    recreated: Vec<(usize, u64)>,
}

/// What a transaction left, once replayed.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// Its writes committed as final (bits by write index).
    pub(crate) mask: u32,
    /// Shared regions it recreated and published.
    pub(crate) recreated: Vec<(usize, u64)>,
    /// Foreign stamps it read.
    pub(crate) seen: Vec<Seen>,
    /// Reads it made that reached the checker.
    pub(crate) reads: u64,
}

pub(crate) struct Replay<'a> {
    plan: &'a Plan,
    cow: bool,
    out: Replayed,
    errors: Vec<String>,
}

impl<'a> Replay<'a> {
    /// Replays `plan` against `result`; `cow`: copy-on-write mappings are on.
    /// Returns what the transaction left and what was wrong with what it saw.
    pub(crate) fn run(
        plan: &'a Plan,
        result: &ExecutionResult,
        cow: bool,
    ) -> (Replayed, Vec<String>) {
        let mut replay = Replay {
            plan,
            cow,
            out: Replayed::default(),
            errors: Vec::new(),
        };
        let outer = plan.frames[0].end;
        let mut overlay = Overlay::default();
        match result {
            ExecutionResult::Success { .. } | ExecutionResult::Revert { .. } => {
                let success = result.is_success();
                if success != (outer == End::Return) {
                    replay.error(format!("the outer frame was to {outer:?} but {result:?}"));
                }
                let bytes = result.output().cloned().unwrap_or_default();
                match parse(&bytes, plan) {
                    Ok(recs) => replay.frame(0, &recs, &mut overlay),
                    Err(e) => replay.error(e),
                }
                if success && plan.decision == Decision::Commit {
                    for (_, write) in overlay.words.values() {
                        replay.out.mask |= 1 << write;
                    }
                    replay.out.recreated = overlay.recreated;
                }
            }
            ExecutionResult::Halt { .. } => {}
        }
        (replay.out, replay.errors)
    }

    fn error(&mut self, what: String) {
        self.errors.push(format!("{:?}: {what}", self.plan.writer));
    }

    fn plain<'r>(&mut self, rec: &'r Rec, want: u16) -> Option<(&'r [u8; 32], &'r [u8; 32])> {
        match rec {
            Rec::Plain { tag, a, b } if *tag == want => Some((a, b)),
            other => {
                self.error(format!("record {other:?} where tag {want} was due"));
                None
            }
        }
    }

    /// Replays frame `index` against its records. A frame that halted
    /// returned none; one that stopped early returned fewer.
    fn frame(&mut self, index: usize, recs: &[Rec], overlay: &mut Overlay) {
        let plan = self.plan;
        let mut recs = recs.iter();
        for op in &plan.frames[index].ops {
            match op {
                Op::Write {
                    r,
                    slot,
                    half,
                    stamp,
                } => {
                    overlay.words.insert(
                        (plan.handle(*r), *slot, *half),
                        (stamp.encode(), stamp.write),
                    );
                }
                Op::Read { r, slot, tag } => {
                    let Some(rec) = recs.next() else { return };
                    let Some((a, b)) = self.plain(rec, *tag) else {
                        return;
                    };
                    self.observe(plan.handle(*r), *slot, a, b, overlay);
                }
                Op::Call { frame, tag } => {
                    let Some(rec) = recs.next() else { return };
                    let Rec::Call {
                        tag: got,
                        success,
                        child,
                    } = rec
                    else {
                        return self.error(format!("{rec:?} where CALL {tag} was due"));
                    };
                    if got != tag {
                        return self.error(format!("CALL {got} where {tag} was due"));
                    }
                    let before = overlay.clone();
                    self.frame(*frame, child, overlay);
                    let callee_end = plan.frames[*frame].end;
                    if *success && callee_end != End::Return {
                        self.error(format!("frame {frame} was to {callee_end:?} but succeeded"));
                    }
                    if !*success {
                        *overlay = before;
                    }
                }
                Op::Scoped { tag, .. } => {
                    let Some(rec) = recs.next() else { return };
                    let Some((a, b)) = self.plain(rec, *tag) else {
                        return;
                    };
                    self.out.reads += 1;
                    if a != &[0; 32] || b != &[0; 32] {
                        let dirty = a.contains(&DIRTY_BYTE) || b.contains(&DIRTY_BYTE);
                        self.error(format!(
                            "a fresh region is not zero ({}): {}{}",
                            if dirty {
                                "another region's bytes"
                            } else {
                                "stale bytes"
                            },
                            crate::ledger::hex(a),
                            crate::ledger::hex(b)
                        ));
                    }
                }
                Op::Cow {
                    stamp,
                    tag,
                    r,
                    slot,
                } => {
                    let Some(rec) = recs.next() else { return };
                    let Some((a, b)) = self.plain(rec, *tag) else {
                        return;
                    };
                    self.out.reads += 1;
                    let want = stamp.encode();
                    if a != &want || b != &want {
                        self.error(format!(
                            "a copy-on-write view does not show its own write: {}",
                            crate::ledger::hex(a)
                        ));
                    }
                    if !self.cow {
                        // Copy-on-write is off: the mapping was read-write.
                        for half in 0..2 {
                            overlay
                                .words
                                .insert((plan.handle(*r), *slot, half), (want, stamp.write));
                        }
                    }
                }
                Op::Recreate { r, tag, .. } => {
                    let Some(rec) = recs.next() else { return };
                    let Some((new, _)) = self.plain(rec, *tag) else {
                        return;
                    };
                    let new = match small(new) {
                        Ok(h) => h,
                        Err(e) => return self.error(e),
                    };
                    // ALLOC pushed 0 (no memory): the READ of handle 0 halted.
                    let Some(rec) = recs.next() else { return };
                    let Some((a, b)) = self.plain(rec, tag + 1) else {
                        return;
                    };
                    self.out.reads += 1;
                    if a != &[0; 32] || b != &[0; 32] {
                        self.error(format!(
                            "a recreated region is not zero: {}",
                            crate::ledger::hex(a)
                        ));
                    }
                    overlay.recreated.push((plan.table[*r].0, new));
                }
                Op::Spin { .. } | Op::Log { .. } | Op::Store { .. } => {}
            }
        }
        if let Some(extra) = recs.next() {
            self.error(format!("a record no op made: {extra:?}"));
        }
    }

    /// Checks a READ of slot `slot` of `handle` that saw `a` and `b`.
    fn observe(&mut self, handle: u64, slot: u16, a: &[u8; 32], b: &[u8; 32], overlay: &Overlay) {
        self.out.reads += 1;
        let me = self.plan.writer;
        let mut external = 0;
        for (half, word) in [(0u8, a), (1u8, b)] {
            if let Some((own, _)) = overlay.words.get(&(handle, slot, half)) {
                if word != own {
                    self.error(format!(
                        "slot {slot} of {handle:#x} half {half} should read back its own write \
                         {} but read {}",
                        crate::ledger::hex(own),
                        crate::ledger::hex(word)
                    ));
                }
                continue;
            }
            external += 1;
            match Stamp::decode(word) {
                Err(e) => self.error(format!("slot {slot} of {handle:#x}: {e}")),
                Ok(None) => {}
                Ok(Some(stamp)) => {
                    if stamp.handle != handle || stamp.slot != slot {
                        self.error(format!(
                            "slot {slot} of {handle:#x} holds a stamp written to slot {} of {:#x}",
                            stamp.slot, stamp.handle
                        ));
                    } else if stamp.writer == me {
                        self.error(format!(
                            "slot {slot} of {handle:#x} shows this transaction's own write \
                             {} after it was undone",
                            stamp.write
                        ));
                    } else {
                        self.out.seen.push(Seen {
                            writer: stamp.writer,
                            write: stamp.write,
                        });
                    }
                }
            }
        }
        if external == 2 && a != b {
            self.error(format!(
                "slot {slot} of {handle:#x} is torn: {} / {}",
                crate::ledger::hex(a),
                crate::ledger::hex(b)
            ));
        }
    }
}

/// The writer a stamp's bytes name (for the inspector), if they are one.
pub(crate) fn writer_of(word: &[u8; 32]) -> Option<Writer> {
    Stamp::decode(word).ok().flatten().map(|s| s.writer)
}
