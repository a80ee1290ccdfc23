//! Effects of executed transactions that the embedder has not yet committed
//! or dropped (spec §6: region effects follow the embedder's decision).

use shm_primitives::{RegionHandle, PAGE_SIZE};

use crate::{Page, RegionOps};

/// One effect kept until the embedder decides.
pub(crate) enum PendingEntry {
    /// A persistent region the transaction created: abandoning frees it.
    Created(RegionHandle, u64),
    /// A free the transaction began: publishing makes it final, abandoning
    /// cancels it.
    FreeBegun(RegionHandle, u64),
    /// A page of a region as it was before the transaction changed it.
    Page(RegionHandle, u64, Box<Page>),
    /// A region's size before the transaction grew it.
    Resized(RegionHandle, u64),
}

/// What executed transactions did to regions that outlive them, kept so the
/// embedder's decision can be carried out: [`publish`](Self::publish) when it
/// commits the state, [`abandon`](Self::abandon) when it drops it (a
/// simulation, a traced re-run, a transaction a block builder leaves out).
///
/// Transactions run back to back before a decision (revm's `transact_many`)
/// add to the same `PendingEffects`; the decision covers them all, the way the
/// state they return together is committed or dropped together.
#[derive(Default)]
pub struct PendingEffects {
    pub(crate) entries: Vec<PendingEntry>,
}

/// What [`PendingEffects::publish`] made final.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    /// Regions (and sizes) whose free became final.
    pub freed: Vec<(RegionHandle, u64)>,
}

/// What [`PendingEffects::abandon`] undid.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Abandoned {
    /// Persistent regions (and sizes) whose creation was undone.
    pub undone: Vec<(RegionHandle, u64)>,
    /// Pages restored.
    pub pages_restored: usize,
}

impl PendingEffects {
    /// Whether nothing waits for a decision.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pages of saved region bytes held.
    pub fn pages(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, PendingEntry::Page(..)))
            .count()
    }

    /// Bytes this holds (entries and saved pages), for bounds.
    pub fn footprint(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<PendingEntry>() + self.pages() * PAGE_SIZE
    }

    /// The embedder committed: frees become final (through
    /// [`RegionOps::finish_free`]), and nothing is left to undo.
    pub fn publish(&mut self, ops: &mut dyn RegionOps) -> Published {
        let mut published = Published::default();
        for entry in self.entries.drain(..) {
            if let PendingEntry::FreeBegun(handle, size) = entry {
                ops.finish_free(handle);
                published.freed.push((handle, size));
            }
        }
        published
    }

    /// The embedder dropped the result: every effect is undone, newest first,
    /// so every region is exactly as it was before the first transaction.
    pub fn abandon(&mut self, undo: &mut dyn RegionOps) -> Abandoned {
        let mut abandoned = Abandoned::default();
        while let Some(entry) = self.entries.pop() {
            match entry {
                PendingEntry::Created(handle, size) => {
                    undo.free_created(handle, size);
                    abandoned.undone.push((handle, size));
                }
                PendingEntry::FreeBegun(handle, _) => undo.cancel_free(handle),
                PendingEntry::Page(handle, page, bytes) => {
                    undo.restore_page(handle, page, &bytes);
                    abandoned.pages_restored += 1;
                }
                PendingEntry::Resized(handle, size) => undo.set_size(handle, size),
            }
        }
        abandoned
    }
}

impl Drop for PendingEffects {
    fn drop(&mut self) {
        if !self.entries.is_empty() {
            // The owner must publish or abandon; dropping silently would
            // leave regions half-changed. Logged, never a panic.
            tracing::error!(target: "shm::journal", pending = self.entries.len(), "pending shared-memory effects dropped without a decision");
        }
    }
}

impl std::fmt::Debug for PendingEffects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEffects")
            .field("entries", &self.entries.len())
            .field("pages", &self.pages())
            .finish()
    }
}
