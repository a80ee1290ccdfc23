//! The isolation invariant: every word a transaction writes into a shared
//! region is a *stamp* naming its writer, and every word anybody reads is
//! checked against what was committed.
//!
//! A stamp says who wrote it (process, thread, transaction sequence number,
//! which write of that transaction) and where (handle, 64-byte slot). A slot
//! is written as two separate 32-byte WRITEs of the same stamp, so a reader
//! that sees the two halves differ saw a write half done (a *torn* read).
//!
//! Three checks together catch a transaction seeing another's uncommitted
//! bytes:
//!
//! - **at read time** (the [`DirtyReadInspector`] on inspected runs): a
//!   stamp of a transaction of this process that has not yet reached its
//!   commit is a dirty read, and two different foreign halves are a torn read;
//! - **after the transaction** (`check.rs`, from the transaction's own
//!   records): its own writes read back exactly as its surviving frames left
//!   them, fresh regions read zero, and no foreign word is misplaced or torn;
//! - **when the writer's fate is known** ([`Ledger::observe`]): every foreign
//!   stamp anybody read must be one that its transaction *committed as
//!   final* — never one from a reverted frame, an abandoned simulation, a
//!   copy-on-write view, or a write the same transaction overwrote later.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Mutex;

/// The first bytes of every stamp.
pub(crate) const MAGIC: [u8; 4] = *b"SOAK";

/// Who wrote a stamp, and which of its writes it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Writer {
    /// 0 for the test process, 1 for the helper process.
    pub(crate) process: u8,
    /// The writing thread within its process.
    pub(crate) thread: u8,
    /// The thread's transaction (or host call) number, from 0.
    pub(crate) seq: u64,
}

/// A decoded stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Stamp {
    pub(crate) writer: Writer,
    /// Which write of the transaction (0..32): the bit in its commit mask.
    pub(crate) write: u8,
    /// The region it was written into.
    pub(crate) handle: u64,
    /// The 64-byte slot it was written into.
    pub(crate) slot: u16,
}

impl Stamp {
    /// The 32-byte word.
    pub(crate) fn encode(&self) -> [u8; 32] {
        let mut w = [0xa5u8; 32];
        w[0..4].copy_from_slice(&MAGIC);
        w[4..12].copy_from_slice(&self.handle.to_be_bytes());
        w[12..14].copy_from_slice(&self.slot.to_be_bytes());
        w[14] = self.writer.process;
        w[15] = self.writer.thread;
        w[16..24].copy_from_slice(&self.writer.seq.to_be_bytes());
        w[24] = self.write;
        w
    }

    /// Parses a word: `Ok(None)` for zero (never written), `Err` for bytes
    /// that are no stamp at all (leaked or corrupt memory).
    pub(crate) fn decode(word: &[u8; 32]) -> Result<Option<Self>, String> {
        if word == &[0u8; 32] {
            return Ok(None);
        }
        if word[0..4] != MAGIC || word[25..32] != [0xa5; 7] || word[24] >= 32 {
            return Err(format!("bytes that no writer wrote: {}", hex(word)));
        }
        Ok(Some(Self {
            handle: u64::from_be_bytes(word[4..12].try_into().expect("8 bytes")),
            slot: u16::from_be_bytes(word[12..14].try_into().expect("2 bytes")),
            writer: Writer {
                process: word[14],
                thread: word[15],
                seq: u64::from_be_bytes(word[16..24].try_into().expect("8 bytes")),
            },
            write: word[24],
        }))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stamp somebody read, to be checked once its writer's fate is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Seen {
    pub(crate) writer: Writer,
    pub(crate) write: u8,
}

/// What one process knows about the fate of its own writers' transactions,
/// and the observations waiting for it.
pub(crate) struct Ledger {
    process: u8,
    /// Per thread, per transaction in order: the mask of its writes that
    /// were committed as final (0: nothing committed). A transaction is
    /// *decided* once its entry is pushed.
    masks: Vec<Mutex<Vec<u32>>>,
    /// Per thread: 1 + the sequence number of its newest transaction that
    /// reached the commit (the database commit, just before the regions are
    /// published; a host write: just before the call).
    committing: Vec<AtomicU64>,
    /// Observations of this process's transactions not yet decided.
    pending: Mutex<Vec<Seen>>,
    /// Observations of the other process's stamps (checked at the end,
    /// against its ledger).
    foreign: Mutex<HashSet<Seen>>,
    /// Observations checked so far, and violations found.
    checked: AtomicU64,
    violations: Mutex<Vec<String>>,
}

impl Ledger {
    pub(crate) fn new(process: u8, threads: usize) -> Self {
        Self {
            process,
            masks: (0..threads).map(|_| Mutex::new(Vec::new())).collect(),
            committing: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            pending: Mutex::new(Vec::new()),
            foreign: Mutex::new(HashSet::new()),
            checked: AtomicU64::new(0),
            violations: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn process(&self) -> u8 {
        self.process
    }

    /// `writer`'s transaction is about to publish (or a host write to land).
    pub(crate) fn committing(&self, writer: Writer) {
        self.committing[usize::from(writer.thread)].store(writer.seq + 1, Ordering::SeqCst);
    }

    /// Whether `writer`'s transaction (of this process) has reached its commit.
    pub(crate) fn has_reached_commit(&self, writer: Writer) -> bool {
        self.committing[usize::from(writer.thread)].load(Ordering::SeqCst) > writer.seq
    }

    /// `writer`'s transaction is decided: `mask` says which of its writes
    /// were committed as final.
    pub(crate) fn decided(&self, writer: Writer, mask: u32) {
        let mut masks = self.masks[usize::from(writer.thread)].lock().unwrap();
        assert_eq!(masks.len() as u64, writer.seq, "decided in order");
        masks.push(mask);
    }

    /// Records a read of `stamp` by another transaction than its writer's.
    pub(crate) fn observe(&self, seen: Seen) {
        if seen.writer.process != self.process {
            self.foreign.lock().unwrap().insert(seen);
            return;
        }
        if !self.check(seen) {
            self.pending.lock().unwrap().push(seen);
        }
    }

    /// Checks `seen` if its writer is decided; whether it could.
    fn check(&self, seen: Seen) -> bool {
        let masks = self.masks[usize::from(seen.writer.thread)].lock().unwrap();
        let Some(mask) = masks.get(seen.writer.seq as usize) else {
            return false;
        };
        self.checked.fetch_add(1, Ordering::Relaxed);
        if mask & (1 << seen.write) == 0 {
            self.violation(format!(
                "{seen:?} was read by another transaction but never committed as final \
                 (its transaction's committed writes: {mask:#b})"
            ));
        }
        true
    }

    /// Checks the observations whose writers have been decided since.
    pub(crate) fn drain_pending(&self) -> usize {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap());
        let left: Vec<Seen> = pending.into_iter().filter(|s| !self.check(*s)).collect();
        let n = left.len();
        self.pending.lock().unwrap().extend(left);
        n
    }

    /// Checks the other process's observations of this process's stamps.
    pub(crate) fn check_foreign(&self, seen: impl IntoIterator<Item = Seen>) {
        for s in seen {
            assert_eq!(s.writer.process, self.process);
            if !self.check(s) {
                self.violation(format!("{s:?}: read, but its transaction never ran"));
            }
        }
    }

    pub(crate) fn take_foreign(&self) -> Vec<Seen> {
        self.foreign.lock().unwrap().drain().collect()
    }

    pub(crate) fn violation(&self, what: String) {
        let mut v = self.violations.lock().unwrap();
        if v.len() < 50 {
            v.push(what);
        }
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    pub(crate) fn checked(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }

    /// Transactions decided, per thread.
    pub(crate) fn decided_counts(&self) -> Vec<usize> {
        self.masks.iter().map(|m| m.lock().unwrap().len()).collect()
    }

    /// Bytes the ledger holds (the checker's own share of the memory curve).
    pub(crate) fn footprint(&self) -> usize {
        self.masks
            .iter()
            .map(|m| m.lock().unwrap().capacity() * 4)
            .sum::<usize>()
            + self.pending.lock().unwrap().capacity() * std::mem::size_of::<Seen>()
            + self.foreign.lock().unwrap().capacity() * (std::mem::size_of::<Seen>() + 8)
    }

    /// The masks, as lines `thread seq mask` (for the other process).
    pub(crate) fn dump_masks(&self) -> String {
        let mut out = String::new();
        for (thread, masks) in self.masks.iter().enumerate() {
            for (seq, mask) in masks.lock().unwrap().iter().enumerate() {
                if *mask != 0 {
                    out.push_str(&format!("{thread} {seq} {mask}\n"));
                }
            }
        }
        out
    }
}

/// The other process's verdicts, loaded from its dump.
pub(crate) struct ForeignMasks {
    masks: std::collections::HashMap<(u8, u64), u32>,
    decided: Vec<u64>,
}

impl ForeignMasks {
    pub(crate) fn parse(text: &str, decided: Vec<u64>) -> Self {
        let masks = text
            .lines()
            .map(|line| {
                let v: Vec<u64> = line.split(' ').map(|w| w.parse().unwrap()).collect();
                ((v[0] as u8, v[1]), v[2] as u32)
            })
            .collect();
        Self { masks, decided }
    }

    /// Checks this process's observations of the other's stamps.
    pub(crate) fn check(&self, seen: &[Seen], ledger: &Ledger) {
        for s in seen {
            let thread = usize::from(s.writer.thread);
            if self.decided.get(thread).is_none_or(|&n| s.writer.seq >= n) {
                ledger.violation(format!(
                    "{s:?}: read, but its transaction was never decided"
                ));
                continue;
            }
            let mask = self
                .masks
                .get(&(s.writer.thread, s.writer.seq))
                .copied()
                .unwrap_or(0);
            ledger.checked.fetch_add(1, Ordering::Relaxed);
            if mask & (1 << s.write) == 0 {
                ledger.violation(format!(
                    "{s:?} (another process's) was read but never committed as final"
                ));
            }
        }
    }
}
