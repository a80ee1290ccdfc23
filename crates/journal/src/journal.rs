//! One transaction's log of shared-memory effects, and its undo.

use shm_primitives::{ContextId, MapOptions, RegionHandle, WritePlan, PAGE_SIZE};

use crate::frames::Frames;
use crate::pending::{PendingEffects, PendingEntry};
use crate::private::{PrivatePages, PrivateViews};
use crate::{Map, Page, RegionOps, Set};

/// Names a page that the journal can save: a page of a region's live bytes, or a
/// context's private copy-on-write copy of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The region.
    pub handle: RegionHandle,
    /// Page index (byte offset / 4096).
    pub page: u64,
    /// `Some(context)` for that context's private copy-on-write page.
    pub private: Option<ContextId>,
}

impl PageKey {
    /// A page of the region's live bytes.
    pub const fn region(handle: RegionHandle, page: u64) -> Self {
        Self {
            handle,
            page,
            private: None,
        }
    }
    /// A context's private copy of a page.
    pub const fn private(handle: RegionHandle, page: u64, context: ContextId) -> Self {
        Self {
            handle,
            page,
            private: Some(context),
        }
    }
}

/// What a page held before the first write to it in a frame.
enum Before {
    Bytes(Box<Page>),
    /// A private page that did not exist yet (a copy-on-write fault): undo drops it.
    Absent,
}

enum Entry {
    Created {
        handle: RegionHandle,
        size: u64,
        persistent: bool,
    },
    FreeBegun(RegionHandle, u64),
    Mapped {
        handle: RegionHandle,
        context: ContextId,
        previous: Option<MapOptions>,
        /// Boxed: most remaps drop nothing, and every entry is as large as
        /// the largest variant.
        dropped: Option<Box<PrivatePages>>,
    },
    Page {
        key: PageKey,
        before: Before,
        /// The save of this page that was the latest before this one (its
        /// frame tag), restored when this one is undone.
        previous_tag: Option<u32>,
    },
    Resized {
        handle: RegionHandle,
        old_size: u64,
    },
    Warmed(RegionHandle),
    Words(u64),
}

/// What [`TxJournal::revert`] undid that a cache of resolved handles must
/// forget: regions created, freed, mapped, warmed or resized in the frame.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reverted {
    /// Regions (and sizes) whose creation was undone.
    pub undone: Vec<(RegionHandle, u64)>,
    /// Regions whose state other than bytes changed back (free, mapping,
    /// warmth, size, creation).
    pub touched: Vec<RegionHandle>,
}

/// What the end of a transaction left for the caller to settle.
#[derive(Debug, Default)]
pub struct TxEnd {
    /// Transaction-scoped regions (and sizes at creation) the transaction
    /// created and did not free: the caller frees them now (spec §4).
    pub scoped: Vec<(RegionHandle, u64)>,
    /// Regions (and sizes) whose creation a failed transaction undid.
    pub undone: Vec<(RegionHandle, u64)>,
    /// Private copy-on-write pages dropped.
    pub cow_pages_dropped: usize,
}

/// The journal of one transaction's shared-memory effects (see the crate docs).
///
/// The caller (the EVM frame hook) calls [`checkpoint`](Self::checkpoint) when revm
/// opens a frame checkpoint and [`commit`](Self::commit) or
/// [`revert`](Self::revert) when revm settles it, and
/// [`end_transaction`](Self::end_transaction) once per transaction.
///
/// The journal does no region work itself: undoing goes through a
/// [`RegionOps`], and writes report the pages they are about to change
/// through [`save_page`](Self::save_page).
#[derive(Default)]
pub struct TxJournal {
    entries: Vec<Entry>,
    frames: Frames,
    /// The frame tag of the latest save of each page (older saves are linked
    /// through the entries' `previous_tag`).
    saved: Map<PageKey, u32>,
    warm: Set<RegionHandle>,
    /// Mappings made by bytecode in this transaction (they end with it).
    mappings: Map<(RegionHandle, ContextId), MapOptions>,
    private: PrivateViews,
    /// Words of region memory allocated by this transaction (spec §8's `W`).
    words: u64,
    /// Page buffers charged to this transaction (the `P` of the page price):
    /// restored on revert to its value at the checkpoint.
    pages: u64,
    /// Moves on every checkpoint opened or settled: equal epochs mean the
    /// same innermost frame with nothing of it undone.
    epoch: u64,
    /// The most `words` and `pages` held at once in this transaction so far.
    peak: TxPeak,
    /// `peak` of the last transaction that ended.
    last_peak: TxPeak,
}

/// The most host memory a transaction's shared-memory work held at once, in
/// the units its gas pays for (spec §8): region memory it allocated (priced by
/// `f(W)`) and the journal's page buffers (priced by `g(P)`). Each is the peak
/// of its own count; both counts go back on revert, and the gas spent does not,
/// so a transaction that spent `G` gas had `f(peak W) ≤ G` and `g(peak P) ≤ G`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxPeak {
    /// Words of region memory (`W`).
    pub region_words: u64,
    /// Page buffers (`P`): saved copies and private copy-on-write pages.
    pub page_buffers: u64,
}

impl TxJournal {
    /// Open checkpoints.
    pub fn depth(&self) -> usize {
        self.frames.depth()
    }

    /// Whether nothing has been recorded since the last transaction end.
    pub fn is_clean(&self) -> bool {
        self.entries.is_empty()
            && self.warm.is_empty()
            && self.mappings.is_empty()
            && self.private.is_empty()
    }

    /// Opens a checkpoint. O(1).
    #[inline]
    pub fn checkpoint(&mut self) {
        self.epoch += 1;
        self.frames.push(self.entries.len(), self.pages);
    }

    /// Changes whenever a checkpoint is opened, committed or reverted (and at
    /// transaction end): a caller that knows a page was saved at one epoch
    /// knows it is still saved in the current frame while the epoch stands.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Commits the innermost checkpoint into its parent. O(1): pages the frame
    /// saved now count as saved by the parent without being walked.
    #[inline]
    pub fn commit(&mut self) {
        self.epoch += 1;
        if self.frames.commit().is_none() {
            tracing::error!(target: "shm::journal", "commit without an open checkpoint");
        }
    }

    /// Reverts the innermost checkpoint: undoes every effect recorded since it
    /// was opened, newest first. O(entries of the frame and of its committed
    /// children).
    pub fn revert(&mut self, undo: &mut dyn RegionOps) -> Reverted {
        self.epoch += 1;
        let Some(frame) = self.frames.pop() else {
            tracing::error!(target: "shm::journal", "revert without an open checkpoint");
            return Reverted::default();
        };
        // Every page buffer charged in the frame is freed by its undo.
        self.pages = frame.pages;
        self.undo_from(frame.start, undo)
    }

    fn undo_from(&mut self, start: usize, undo: &mut dyn RegionOps) -> Reverted {
        let mut reverted = Reverted::default();
        let mut entries = self.entries.split_off(start);
        while let Some(entry) = entries.pop() {
            match entry {
                Entry::Created { handle, size, .. } => {
                    undo.free_created(handle, size);
                    reverted.undone.push((handle, size));
                    reverted.touched.push(handle);
                }
                Entry::FreeBegun(handle, _) => {
                    undo.cancel_free(handle);
                    reverted.touched.push(handle);
                }
                Entry::Mapped {
                    handle,
                    context,
                    previous,
                    dropped,
                } => {
                    match previous {
                        Some(options) => self.mappings.insert((handle, context), options),
                        None => self.mappings.remove(&(handle, context)),
                    };
                    self.private.take(handle, context);
                    if let Some(view) = dropped {
                        self.private.put(handle, context, *view);
                    }
                    reverted.touched.push(handle);
                }
                Entry::Page {
                    key,
                    before,
                    previous_tag,
                } => {
                    match previous_tag {
                        Some(tag) => self.saved.insert(key, tag),
                        None => self.saved.remove(&key),
                    };
                    match (key.private, before) {
                        (None, Before::Bytes(bytes)) => {
                            undo.restore_page(key.handle, key.page, &bytes)
                        }
                        (Some(context), Before::Bytes(bytes)) => {
                            self.private.insert(key.handle, context, key.page, bytes)
                        }
                        (Some(context), Before::Absent) => {
                            self.private.remove(key.handle, context, key.page)
                        }
                        (None, Before::Absent) => {}
                    }
                }
                Entry::Resized { handle, old_size } => {
                    undo.set_size(handle, old_size);
                    reverted.touched.push(handle);
                }
                Entry::Warmed(handle) => {
                    self.warm.remove(&handle);
                    reverted.touched.push(handle);
                }
                Entry::Words(words) => self.words -= words,
            }
        }
        reverted
    }

    /// Ends the transaction. A failed transaction (`committed == false`) first
    /// undoes everything. What outlives the transaction and waits for the
    /// embedder's decision (frees, saved pages and growth of regions that
    /// outlive it, persistent creations) moves into `pending`; mappings,
    /// private pages, the warm set, `W` and `P` are dropped. Transaction-scoped
    /// regions it created are returned for the caller to free.
    pub fn end_transaction(
        &mut self,
        committed: bool,
        undo: &mut dyn RegionOps,
        pending: &mut PendingEffects,
    ) -> TxEnd {
        if self.frames.depth() > 0 {
            tracing::error!(target: "shm::journal", open = self.frames.depth(), "transaction ended with open checkpoints");
        }
        self.frames.clear();
        self.epoch += 1;
        self.last_peak = std::mem::take(&mut self.peak);
        if self.is_clean() {
            // A transaction that never touched shared memory: nothing to settle
            // (the common case of an EVM with shared memory on but unused).
            self.words = 0;
            self.pages = 0;
            return TxEnd::default();
        }
        let mut end = TxEnd {
            cow_pages_dropped: self.private.pages(),
            ..TxEnd::default()
        };
        if !committed {
            end.undone = self.undo_from(0, undo).undone;
        }
        let scoped: Set<RegionHandle> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Created {
                    handle,
                    persistent: false,
                    ..
                } => Some(*handle),
                _ => None,
            })
            .collect();
        let mut freed: Set<RegionHandle> = Set::default();
        for entry in self.entries.drain(..) {
            match entry {
                Entry::Created {
                    handle,
                    size,
                    persistent,
                } => {
                    if persistent {
                        pending.entries.push(PendingEntry::Created(handle, size));
                    } else {
                        end.scoped.push((handle, size));
                    }
                }
                Entry::FreeBegun(handle, size) => {
                    if scoped.contains(&handle) {
                        // Freed by its own transaction: the free is final now.
                        freed.insert(handle);
                        undo.finish_free(handle);
                    } else {
                        pending.entries.push(PendingEntry::FreeBegun(handle, size));
                    }
                }
                Entry::Page {
                    key:
                        PageKey {
                            handle,
                            page,
                            private: None,
                        },
                    before: Before::Bytes(bytes),
                    ..
                } if !scoped.contains(&handle) => {
                    pending
                        .entries
                        .push(PendingEntry::Page(handle, page, bytes));
                }
                Entry::Resized { handle, old_size } if !scoped.contains(&handle) => {
                    pending
                        .entries
                        .push(PendingEntry::Resized(handle, old_size));
                }
                _ => {}
            }
        }
        end.scoped.retain(|(handle, _)| !freed.contains(handle));
        self.saved.clear();
        self.warm.clear();
        self.mappings.clear();
        self.private.clear();
        self.words = 0;
        self.pages = 0;
        end
    }

    /// Records a region of `size` bytes this transaction created.
    pub fn record_created(&mut self, handle: RegionHandle, size: u64, persistent: bool) {
        self.entries.push(Entry::Created {
            handle,
            size,
            persistent,
        });
    }

    /// Records a free that only becomes final when the transaction's effects
    /// are published (so a revert, or the embedder dropping the transaction,
    /// can still bring the region back, bytes intact).
    pub fn record_free(&mut self, handle: RegionHandle, size: u64) {
        self.entries.push(Entry::FreeBegun(handle, size));
    }

    /// Marks `handle` warm; returns whether it was cold (EIP-2929 style, journalled).
    pub fn warm(&mut self, handle: RegionHandle) -> bool {
        let was_cold = self.warm.insert(handle);
        if was_cold {
            self.entries.push(Entry::Warmed(handle));
        }
        was_cold
    }

    /// Whether `handle` was touched in this transaction.
    pub fn is_warm(&self, handle: RegionHandle) -> bool {
        self.warm.contains(&handle)
    }

    /// Adds to the words of region memory this transaction allocated.
    pub fn add_words(&mut self, words: u64) {
        if words > 0 {
            self.words += words;
            self.peak.region_words = self.peak.region_words.max(self.words);
            self.entries.push(Entry::Words(words));
        }
    }

    /// Words of region memory this transaction allocated so far, growth included.
    pub fn words_allocated(&self) -> u64 {
        self.words
    }

    /// Page buffers charged to this transaction and not freed by a revert:
    /// saved copies and private copy-on-write pages (the `P` of the page
    /// price, spec §8's bound on host memory). Every buffer the journal holds
    /// was charged once, so it holds at most this many.
    pub fn pages_held(&self) -> u64 {
        self.pages
    }

    /// Charges `pages` more page buffers (what a write about to save or fault
    /// them was priced for). A revert of the frame takes them back.
    pub fn charge_pages(&mut self, pages: u64) {
        self.pages = self.pages.saturating_add(pages);
        self.peak.page_buffers = self.peak.page_buffers.max(self.pages);
    }

    /// The most region words and page buffers the last transaction that ended
    /// held at once (what spec §8 bounds by the gas it spent).
    pub fn last_peak(&self) -> TxPeak {
        self.last_peak
    }

    /// The mapping bytecode made for `context` in this transaction.
    pub fn mapping(&self, handle: RegionHandle, context: ContextId) -> Option<MapOptions> {
        self.mappings.get(&(handle, context)).copied()
    }

    /// Maps (or remaps) `handle` for `context`; a remap drops the old mapping's
    /// private pages (kept in the journal so a revert restores them). Returns
    /// how many private pages the remap dropped.
    pub fn map(&mut self, handle: RegionHandle, context: ContextId, options: MapOptions) -> usize {
        let previous = self.mappings.insert((handle, context), options);
        let dropped = self.private.take(handle, context).map(Box::new);
        let count = dropped.as_ref().map_or(0, |view| view.len());
        self.entries.push(Entry::Mapped {
            handle,
            context,
            previous,
            dropped,
        });
        count
    }

    /// Whether `key` was saved in the current frame (or by a committed child of it).
    pub fn saved_in_frame(&mut self, key: PageKey) -> bool {
        match self.saved.get(&key) {
            Some(&tag) => self.frames.is_current(tag),
            None => false,
        }
    }

    /// Pages a write of `plan` would save (or, through `context`'s
    /// copy-on-write view when `private` is set, fault): what gas charges for.
    ///
    /// A private page counts when it was not saved in this frame, or when the
    /// context holds no private copy of it although one was saved in this
    /// frame (a remap dropped it: the write faults it again). Each page
    /// counts once.
    pub fn unsaved_pages(
        &mut self,
        handle: RegionHandle,
        private: Option<ContextId>,
        plan: &WritePlan,
    ) -> u64 {
        let Some((first, last)) = plan.existing_pages() else {
            return 0;
        };
        let mut count = 0;
        for page in first..=last {
            let key = PageKey {
                handle,
                page,
                private,
            };
            let unsaved = !self.saved_in_frame(key)
                || private
                    .is_some_and(|context| self.private.page(handle, context, page).is_none());
            count += u64::from(unsaved);
        }
        count
    }

    /// Records that region page `page` is about to change and holds `bytes`
    /// (zero-padded to a page), unless it was saved in this frame already: the
    /// observer a region write calls for each page it changes.
    pub fn save_page(&mut self, handle: RegionHandle, page: u64, bytes: &[u8]) {
        let key = PageKey::region(handle, page);
        if !self.saved_in_frame(key) {
            self.push_save(key, Before::Bytes(page_copy(bytes)));
        }
    }

    fn push_save(&mut self, key: PageKey, before: Before) {
        let Some(tag) = self.frames.current_id() else {
            // No frame is open (a write outside any checkpoint): nothing can
            // be reverted, so nothing needs saving.
            return;
        };
        let previous_tag = self.saved.insert(key, tag);
        self.entries.push(Entry::Page {
            key,
            before,
            previous_tag,
        });
    }

    /// Records that the region's size was `old_size` before growth.
    pub fn record_resized(&mut self, handle: RegionHandle, old_size: u64) {
        self.entries.push(Entry::Resized { handle, old_size });
    }

    /// Whether `context` holds any private page of `handle` (reads go through
    /// its view only then).
    #[inline]
    pub fn has_private_view(&self, handle: RegionHandle, context: ContextId) -> bool {
        // Most transactions hold no private page at all: no lookup then.
        !self.private.is_empty() && self.private.has_view(handle, context)
    }

    /// Copies `context`'s private pages over the bytes of `buf`, read from the
    /// region at `offset`: a read through a copy-on-write view.
    pub fn overlay(&self, handle: RegionHandle, context: ContextId, offset: u64, buf: &mut [u8]) {
        self.private.overlay(handle, context, offset, buf);
    }

    /// Writes `data` through `context`'s copy-on-write view at `plan.offset`
    /// (a plan that never grows): the first write to a page copies it
    /// privately (a fault, filled by `fault`); the region never changes.
    /// Returns the pages faulted.
    pub fn write_private(
        &mut self,
        handle: RegionHandle,
        context: ContextId,
        plan: &WritePlan,
        data: &[u8],
        fault: &mut dyn FnMut(u64, &mut Page),
    ) -> u64 {
        let (offset, end) = (plan.offset, plan.offset + plan.written);
        let mut faults = 0;
        let mut at = offset;
        while at < end {
            let page = at / PAGE_SIZE as u64;
            let page_start = page * PAGE_SIZE as u64;
            let chunk_end = (page_start + PAGE_SIZE as u64).min(end);
            let key = PageKey::private(handle, page, context);
            if !self.saved_in_frame(key) {
                let before = match self.private.page(handle, context, page) {
                    Some(bytes) => Before::Bytes(Box::new(*bytes)),
                    None => Before::Absent,
                };
                self.push_save(key, before);
            }
            if self.private.page(handle, context, page).is_none() {
                let mut fresh = Box::new([0u8; PAGE_SIZE]);
                fault(page, &mut fresh);
                self.private.insert(handle, context, page, fresh);
                faults += 1;
            }
            if let Some(target) = self.private.page_mut(handle, context, page) {
                let src = &data[(at - offset) as usize..(chunk_end - offset) as usize];
                let dst = (at - page_start) as usize;
                target[dst..dst + src.len()].copy_from_slice(src);
            }
            at = chunk_end;
        }
        faults
    }

    /// Private copy-on-write pages currently held.
    pub fn private_pages(&self) -> usize {
        self.private.pages()
    }

    /// Bytes of host memory this journal holds now: entries, saved pages,
    /// private pages, the warm set, mappings and frame bookkeeping. What the
    /// bounds of spec §8 are tested against.
    pub fn footprint(&self) -> usize {
        let saved_copies = self
            .entries
            .iter()
            .map(|entry| match entry {
                Entry::Page {
                    before: Before::Bytes(_),
                    ..
                } => PAGE_SIZE,
                Entry::Mapped {
                    dropped: Some(view),
                    ..
                } => view.len() * PAGE_SIZE + view.capacity() * 16,
                _ => 0,
            })
            .sum::<usize>();
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + saved_copies
            + self.saved.capacity() * std::mem::size_of::<(PageKey, u32)>()
            + self.warm.capacity() * std::mem::size_of::<RegionHandle>()
            + self.mappings.capacity()
                * std::mem::size_of::<((RegionHandle, ContextId), MapOptions)>()
            + self.private.footprint()
            + self.frames.footprint()
    }
}

impl std::fmt::Debug for TxJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxJournal")
            .field("depth", &self.frames.depth())
            .field("entries", &self.entries.len())
            .field("pages", &self.pages)
            .field("words", &self.words)
            .field("private_pages", &self.private.pages())
            .finish()
    }
}

/// `bytes` (at most a page) as a page, zero past them. Built without zeroing
/// the buffer first: a page save is a 4 KiB copy, and a zeroed allocation
/// (`calloc`) wrote every byte once more just before the copy overwrote it
/// (callgrind, adversarial `revert_1024`: a third of the save's instructions).
fn page_copy(bytes: &[u8]) -> Box<Page> {
    let bytes = &bytes[..bytes.len().min(PAGE_SIZE)];
    let mut page = Vec::with_capacity(PAGE_SIZE);
    page.extend_from_slice(bytes);
    page.resize(PAGE_SIZE, 0);
    match Box::<Page>::try_from(page.into_boxed_slice()) {
        Ok(page) => page,
        Err(_) => unreachable!("the vector holds exactly PAGE_SIZE bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_small() {
        // Every journal entry is as large as its largest variant: keep it to
        // a cache line so that 100-gas operations (MAP) hold few bytes per gas.
        assert!(
            std::mem::size_of::<Entry>() <= 64,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }
}
