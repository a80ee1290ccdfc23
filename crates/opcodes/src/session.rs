//! One EVM's shared-memory state ([`ShmSession`]).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use shm_journal::{Page, PendingEffects, RegionOps, TxJournal, TxPeak};
use shm_manager::{AccessCounts, SharedMemoryManager, ShmError, TxRegions};
use shm_primitives::{HaltCause, RegionHandle};

use crate::table::ResolvedTable;
use crate::{FrameHook, GasSchedule, TxOutcome};

/// Why a shared-memory instruction did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpError {
    /// An exceptional halt with a shared-memory cause (spec §5).
    Halt(HaltCause),
    /// Not enough gas.
    OutOfGas,
}

/// The shared-memory side of one EVM: the [`FrameHook`] that revm's journal
/// drives (so the revert journal checkpoints with revm's frames) and the
/// state of the current transaction. `ShmSession::default()` is *off*: every
/// hook call is a no-op.
///
/// # When region effects land (spec §6)
///
/// revm ends every transaction with `commit_tx`, whether or not the embedder
/// keeps its state. So a transaction's effects on regions that outlive it
/// (writes, growth and frees of persistent and host regions, persistent
/// creations) are *pending* when it ends, its regions still locked, until the
/// embedder decides:
///
/// - [`publish`](Self::publish) — the embedder committed the state (the
///   [`ShmDb`](crate::ShmDb) around the database calls it from
///   `DatabaseCommit::commit`, so every revm `*_commit` publishes);
/// - [`abandon`](Self::abandon) — the embedder dropped it (`transact` of a
///   simulation, a traced re-run, a transaction a builder leaves out). This
///   also happens by itself when the next transaction starts on the same EVM
///   after revm handed the state out (`finalize`), and when the session is
///   dropped, so a result nobody commits never changes a region.
///
/// Transactions run back to back without a `finalize` in between (revm's
/// `transact_many`) are decided together, as their state is.
#[derive(Default)]
pub struct ShmSession {
    active: Option<Box<ActiveSession>>,
}

/// Executed transactions' effects that wait for the embedder's decision,
/// shared (behind a `Mutex`) between the session and the database wrapper
/// that sees the embedder commit.
#[derive(Default)]
pub(crate) struct Undecided {
    /// The lock owner of the undecided transactions (their regions stay
    /// locked until the decision).
    regions: Option<TxRegions>,
    pending: PendingEffects,
}

impl Undecided {
    /// The embedder's decision: when it committed (`publish`) every pending
    /// effect becomes final, when it dropped the result every one is undone;
    /// either way the regions are released. Returns whether anything waited.
    pub(crate) fn decide(&mut self, publish: bool) -> bool {
        let Some(mut regions) = self.regions.take() else {
            return false;
        };
        if publish {
            self.pending.publish(&mut regions);
        } else {
            self.pending.abandon(&mut regions);
        }
        regions.release();
        true
    }
}

/// An active session: the manager, the gas schedule and this transaction's state.
pub struct ActiveSession {
    pub(crate) manager: Arc<SharedMemoryManager>,
    pub(crate) gas: GasSchedule,
    /// This transaction's door to regions, from its first shared-memory
    /// operation on (a transaction that never touches shared memory never
    /// touches the manager).
    pub(crate) tx: Option<TxRegions>,
    pub(crate) journal: TxJournal,
    pub(crate) table: ResolvedTable,
    pub(crate) counts: AccessCounts,
    /// What is left of `lock_wait` for the whole transaction (spec §6, §8).
    pub(crate) wait_remaining: Duration,
    /// Set by the first busy halt: the transaction never waits again.
    pub(crate) wait_poisoned: bool,
    /// Private copy-on-write pages last reported to the manager's gauge.
    pub(crate) cow_reported: u64,
    pub(crate) last_halt: Option<HaltCause>,
    pub(crate) undecided: Arc<Mutex<Undecided>>,
    /// This session left effects undecided at its last transaction end.
    has_undecided: bool,
    /// revm handed the state of those transactions out (`finalize`): the next
    /// transaction abandons whatever the embedder did not commit.
    handed_over: bool,
}

impl ShmSession {
    /// An active session over `manager` with the gas schedule `gas`.
    pub fn new(manager: Arc<SharedMemoryManager>, gas: GasSchedule) -> Self {
        Self {
            active: Some(Box::new(ActiveSession {
                wait_remaining: manager.config().lock_wait,
                wait_poisoned: false,
                manager,
                gas,
                tx: None,
                journal: TxJournal::default(),
                table: ResolvedTable::default(),
                counts: AccessCounts::default(),
                cow_reported: 0,
                last_halt: None,
                undecided: Arc::default(),
                has_undecided: false,
                handed_over: false,
            })),
        }
    }

    /// The active session, or `None` when shared memory is off.
    #[inline]
    pub fn active(&mut self) -> Option<&mut ActiveSession> {
        self.active.as_deref_mut()
    }

    /// The manager, when shared memory is on.
    pub fn manager(&self) -> Option<&Arc<SharedMemoryManager>> {
        self.active.as_ref().map(|a| &a.manager)
    }

    /// The precise cause of the last shared-memory halt (kept until the next one),
    /// for reporting: revm's `HaltReason` only carries the nearest mainnet reason.
    pub fn last_halt(&self) -> Option<HaltCause> {
        self.active.as_ref().and_then(|a| a.last_halt)
    }

    /// Forgets the last halt cause (before running a new transaction).
    pub fn clear_last_halt(&mut self) {
        if let Some(active) = self.active() {
            active.last_halt = None;
        }
    }

    /// Makes the undecided transactions' effects final and releases their
    /// regions (the embedder committed their state); `false` if none waited.
    pub fn publish(&mut self) -> bool {
        self.active().is_some_and(|active| active.decide(true))
    }

    /// Undoes the undecided transactions' effects and releases their regions
    /// (the embedder dropped their state); `false` if none waited.
    pub fn abandon(&mut self) -> bool {
        self.active().is_some_and(|active| active.decide(false))
    }

    /// Bytes of host memory the current transaction's revert journal holds
    /// (saved pages, private pages, entries): what spec §8 bounds.
    pub fn journal_footprint(&self) -> usize {
        self.active.as_ref().map_or(0, |a| a.journal.footprint())
    }

    /// Whether the session is between transactions with nothing left over: no
    /// transaction running, no checkpoint open, nothing recorded, no effects
    /// waiting for a decision (buffers keep their capacity).
    pub fn is_idle(&self) -> bool {
        self.active.as_ref().is_none_or(|a| {
            a.tx.is_none()
                && a.journal.depth() == 0
                && a.journal.is_clean()
                && a.journal.pages_held() == 0
                && a.undecided.lock().regions.is_none()
        })
    }

    /// The most region memory and page buffers the last transaction that
    /// ended held at once: spec §8 bounds each by the gas the transaction
    /// spent (`f(W) ≤ gas` and `g(P) ≤ gas`, see [`GasSchedule`]).
    ///
    /// ```
    /// use shm_opcodes::ShmSession;
    /// # let manager = shm_manager::SharedMemoryManager::new("testing".parse().unwrap()).unwrap();
    /// let session = ShmSession::new(manager, shm_opcodes::GasSchedule::default());
    /// assert_eq!(session.last_transaction_peak().page_buffers, 0);
    /// ```
    pub fn last_transaction_peak(&self) -> TxPeak {
        self.active
            .as_ref()
            .map_or_else(TxPeak::default, |a| a.journal.last_peak())
    }

    /// Page buffers the current transaction's journal holds.
    pub fn journal_pages(&self) -> u64 {
        self.active.as_ref().map_or(0, |a| a.journal.pages_held())
    }

    pub(crate) fn undecided(&self) -> Option<Arc<Mutex<Undecided>>> {
        self.active.as_ref().map(|a| Arc::clone(&a.undecided))
    }
}

impl std::fmt::Debug for ShmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.active {
            Some(active) => active.fmt(f),
            None => f.write_str("ShmSession(off)"),
        }
    }
}

impl std::fmt::Debug for ActiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveSession")
            .field("tx", &self.tx)
            .field("journal", &self.journal)
            .field("last_halt", &self.last_halt)
            .field("undecided", &self.has_undecided)
            .finish_non_exhaustive()
    }
}

impl FrameHook for ShmSession {
    #[inline]
    fn checkpoint(&mut self) {
        if let Some(active) = self.active.as_deref_mut() {
            if active.handed_over {
                active.decide(false);
            }
            active.journal.checkpoint();
        }
    }

    #[inline]
    fn checkpoint_commit(&mut self) {
        if let Some(active) = self.active.as_deref_mut() {
            active.journal.commit();
        }
    }

    #[inline]
    fn checkpoint_revert(&mut self) {
        if let Some(active) = self.active.as_deref_mut() {
            active.revert();
        }
    }

    fn transaction_end(&mut self, outcome: TxOutcome) {
        if let Some(active) = self.active.as_deref_mut() {
            active.end_transaction(outcome == TxOutcome::Committed);
        }
    }

    fn finalized(&mut self) {
        if let Some(active) = self.active.as_deref_mut() {
            active.handed_over = active.has_undecided;
        }
    }
}

impl Drop for ActiveSession {
    fn drop(&mut self) {
        // A transaction cut short (a panic unwinding through revm, an EVM
        // dropped mid-transaction) ends like a failed one; effects nobody
        // committed are undone. Either way no region stays locked.
        if self.tx.is_some() || self.journal.depth() > 0 {
            self.end_transaction(false);
        }
        self.undecided.lock().decide(false);
    }
}

/// The journal's undo when the transaction has touched no region: there is
/// nothing to undo, so nothing is ever called.
struct NoRegions;

impl RegionOps for NoRegions {
    fn restore_page(&mut self, _: RegionHandle, _: u64, _: &Page) {}
    fn set_size(&mut self, _: RegionHandle, _: u64) {}
    fn free_created(&mut self, _: RegionHandle, _: u64) {}
    fn cancel_free(&mut self, _: RegionHandle) {}
    fn finish_free(&mut self, _: RegionHandle) {}
}

impl ActiveSession {
    /// The transaction's door to regions, begun on first use. A transaction
    /// that follows undecided ones without a `finalize` between (revm's
    /// `transact_many`) continues under their locks.
    pub(crate) fn tx(&mut self) -> &mut TxRegions {
        let continues = self.has_undecided && !self.handed_over;
        self.tx.get_or_insert_with(|| {
            continues
                .then(|| self.undecided.lock().regions.take())
                .flatten()
                .unwrap_or_else(|| self.manager.begin_transaction())
        })
    }

    /// Settles the undecided transactions ([`Undecided::decide`]).
    #[cold]
    fn decide(&mut self, publish: bool) -> bool {
        self.handed_over = false;
        self.has_undecided = false;
        self.undecided.lock().decide(publish)
    }

    fn revert(&mut self) {
        let reverted = match self.tx.as_mut() {
            Some(tx) => self.journal.revert(tx),
            None => self.journal.revert(&mut NoRegions),
        };
        for handle in reverted.touched {
            self.table.remove(handle);
        }
        self.settle_cow_pages();
    }

    /// Moves the manager's copy-on-write page gauge to the private pages this
    /// transaction holds now.
    pub(crate) fn settle_cow_pages(&mut self) {
        let now = self.journal.private_pages() as u64;
        if now != self.cow_reported {
            if let Some(tx) = self.tx.as_ref() {
                tx.record_cow_pages(
                    now.saturating_sub(self.cow_reported),
                    self.cow_reported.saturating_sub(now),
                );
            }
            self.cow_reported = now;
        }
    }

    fn end_transaction(&mut self, committed: bool) {
        let Some(mut tx) = self.tx.take() else {
            // Nothing touched shared memory: only the (empty) checkpoints to
            // drop — the whole cost of shared memory on but unused.
            let mut unused = PendingEffects::default();
            self.journal
                .end_transaction(committed, &mut NoRegions, &mut unused);
            return;
        };
        self.wait_remaining = self.manager.config().lock_wait;
        self.wait_poisoned = false;
        self.table.clear();
        let mut state = self.undecided.lock();
        let end = self
            .journal
            .end_transaction(committed, &mut tx, &mut state.pending);
        tx.free_scoped(&end.scoped);
        tx.record_accesses(std::mem::take(&mut self.counts));
        tx.record_cow_pages(0, std::mem::take(&mut self.cow_reported));
        if state.pending.is_empty() {
            drop(state);
            tx.release();
            self.has_undecided = false;
        } else {
            state.regions = Some(tx);
            self.has_undecided = true;
        }
    }

    // Halts are cold: kept out of line so the warm paths stay small.
    #[cold]
    #[inline(never)]
    pub(crate) fn halt(&mut self, cause: HaltCause) -> OpError {
        self.manager.record_halt(cause);
        self.last_halt = Some(cause);
        OpError::Halt(cause)
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn halt_for(&mut self, error: ShmError) -> OpError {
        let cause = match error {
            ShmError::RegionBusy { .. } => {
                // Spec §6/§8: after one busy halt the transaction waits no more,
                // whatever its frames do next.
                self.wait_poisoned = true;
                HaltCause::RegionBusy
            }
            other => other.halt_cause().unwrap_or(HaltCause::InvalidHandle),
        };
        self.halt(cause)
    }
}
