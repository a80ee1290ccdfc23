use shm_primitives::{ContextId, MapOptions, RegionHandle, PAGE_SIZE};
use shm_region::{RegionError, RegionRegistry, WriteOutcome};
use std::collections::{HashMap, HashSet};

/// One 4 KiB page of bytes.
pub type Page = [u8; PAGE_SIZE];

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
    /// Superseded by an older save of an enclosing frame after a commit.
    Redundant,
}

enum Entry {
    Created(RegionHandle, u64),
    FreeBegun(RegionHandle, u64),
    Mapped {
        handle: RegionHandle,
        context: ContextId,
        previous: Option<MapOptions>,
        dropped: HashMap<u64, Box<Page>>,
    },
    Page {
        key: PageKey,
        before: Before,
    },
    Resized {
        handle: RegionHandle,
        old_size: u64,
    },
    Warmed(RegionHandle),
    Words(u64),
}

/// What the end of a transaction left for the caller to settle.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TxEnd {
    /// Regions (and their sizes at creation) the transaction created that are
    /// still alive: the caller frees the transaction-scoped ones and keeps the
    /// persistent ones.
    pub created: Vec<(RegionHandle, u64)>,
    /// Regions (and sizes) whose free became final at this transaction end.
    pub freed: Vec<(RegionHandle, u64)>,
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
#[derive(Default)]
pub struct TxJournal {
    entries: Vec<Entry>,
    /// `entries.len()` when each open checkpoint was taken.
    checkpoints: Vec<usize>,
    /// For each saved page, the depths of the frames that hold a save of it,
    /// innermost last.
    saved: HashMap<PageKey, Vec<u32>>,
    warm: HashSet<RegionHandle>,
    /// Mappings made by bytecode in this transaction (they end with it).
    mappings: HashMap<(RegionHandle, ContextId), MapOptions>,
    /// Private copy-on-write pages per mapping.
    private: HashMap<(RegionHandle, ContextId), HashMap<u64, Box<Page>>>,
    /// Words of region memory allocated by this transaction (spec §8's `W`).
    words: u64,
}

impl TxJournal {
    /// Open checkpoints.
    pub fn depth(&self) -> usize {
        self.checkpoints.len()
    }

    /// Whether nothing has been recorded since the last transaction end.
    pub fn is_clean(&self) -> bool {
        self.entries.is_empty()
            && self.warm.is_empty()
            && self.mappings.is_empty()
            && self.private.is_empty()
    }

    /// Opens a checkpoint. O(1).
    pub fn checkpoint(&mut self) {
        self.checkpoints.push(self.entries.len());
    }

    /// Commits the innermost checkpoint into its parent. O(entries of the frame).
    pub fn commit(&mut self) {
        let depth = self.checkpoints.len() as u32;
        let Some(start) = self.checkpoints.pop() else {
            tracing::error!(target: "shm::journal", "commit without an open checkpoint");
            return;
        };
        let parent = depth.saturating_sub(1);
        for entry in &mut self.entries[start..] {
            let Entry::Page { key, before } = entry else {
                continue;
            };
            if matches!(before, Before::Redundant) {
                continue;
            }
            let Some(stack) = self.saved.get_mut(key) else {
                continue;
            };
            let n = stack.len();
            if n >= 2 && stack[n - 2] == parent {
                // The parent saved this page before the child did: its older copy is
                // the one a revert of the parent needs.
                stack.pop();
                *before = Before::Redundant;
            } else if let Some(top) = stack.last_mut() {
                *top = parent;
            }
        }
    }

    /// Reverts the innermost checkpoint: undoes every effect recorded since it was
    /// opened, newest first. O(entries of the frame). Returns the regions (and
    /// sizes) whose creation was undone, for the caller's metrics.
    pub fn revert(&mut self, registry: &RegionRegistry) -> Vec<(RegionHandle, u64)> {
        let Some(start) = self.checkpoints.pop() else {
            tracing::error!(target: "shm::journal", "revert without an open checkpoint");
            return Vec::new();
        };
        self.undo_from(start, registry)
    }

    fn undo_from(&mut self, start: usize, registry: &RegionRegistry) -> Vec<(RegionHandle, u64)> {
        let mut undone = Vec::new();
        let entries: Vec<Entry> = self.entries.drain(start..).collect();
        for entry in entries.into_iter().rev() {
            let result = match entry {
                Entry::Created(handle, size) => {
                    undone.push((handle, size));
                    registry.free(handle)
                }
                Entry::FreeBegun(handle, _) => registry.cancel_free(handle),
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
                    if dropped.is_empty() {
                        self.private.remove(&(handle, context));
                    } else {
                        self.private.insert((handle, context), dropped);
                    }
                    Ok(())
                }
                Entry::Page { key, before } => {
                    if matches!(before, Before::Redundant) {
                        continue;
                    }
                    if let Some(stack) = self.saved.get_mut(&key) {
                        stack.pop();
                        if stack.is_empty() {
                            self.saved.remove(&key);
                        }
                    }
                    self.restore(registry, key, before)
                }
                Entry::Resized { handle, old_size } => {
                    registry.set_size(handle, old_size).map(|_| ())
                }
                Entry::Warmed(handle) => {
                    self.warm.remove(&handle);
                    Ok(())
                }
                Entry::Words(words) => {
                    self.words -= words;
                    Ok(())
                }
            };
            if let Err(error) = result {
                // Cannot happen while the transaction holds its region locks; logged
                // rather than panicking so a host bug never takes the node down.
                tracing::error!(target: "shm::journal", %error, "undo failed");
            }
        }
        undone
    }

    fn restore(
        &mut self,
        registry: &RegionRegistry,
        key: PageKey,
        before: Before,
    ) -> Result<(), RegionError> {
        match (key.private, before) {
            (None, Before::Bytes(bytes)) => registry
                .restore_page(key.handle, key.page, &bytes)
                .map(|_| ()),
            (Some(context), Before::Bytes(bytes)) => {
                self.private
                    .entry((key.handle, context))
                    .or_default()
                    .insert(key.page, bytes);
                Ok(())
            }
            (Some(context), Before::Absent) => {
                if let Some(pages) = self.private.get_mut(&(key.handle, context)) {
                    pages.remove(&key.page);
                    if pages.is_empty() {
                        self.private.remove(&(key.handle, context));
                    }
                }
                Ok(())
            }
            (None, _) | (_, Before::Redundant) => Ok(()),
        }
    }

    /// Ends the transaction. A failed transaction (`committed == false`) first
    /// undoes everything. Frees that bytecode began become final; mappings, private
    /// pages, the warm set and `W` are dropped. Regions the transaction created and
    /// did not free are returned for the caller to settle.
    pub fn end_transaction(&mut self, registry: &RegionRegistry, committed: bool) -> TxEnd {
        if !self.checkpoints.is_empty() {
            tracing::error!(target: "shm::journal", open = self.checkpoints.len(), "transaction ended with open checkpoints");
        }
        self.checkpoints.clear();
        let undone = if committed {
            Vec::new()
        } else {
            self.undo_from(0, registry)
        };
        let mut end = TxEnd {
            cow_pages_dropped: self.private.values().map(HashMap::len).sum(),
            undone,
            ..TxEnd::default()
        };
        let mut freed = HashSet::new();
        for entry in &self.entries {
            if let Entry::FreeBegun(handle, size) = entry {
                if let Err(error) = registry.finish_free(*handle) {
                    tracing::error!(target: "shm::journal", %error, "final free failed");
                }
                freed.insert(*handle);
                end.freed.push((*handle, *size));
            }
        }
        for entry in &self.entries {
            if let Entry::Created(handle, size) = entry {
                if !freed.contains(handle) {
                    end.created.push((*handle, *size));
                }
            }
        }
        self.entries.clear();
        self.saved.clear();
        self.warm.clear();
        self.mappings.clear();
        self.private.clear();
        self.words = 0;
        end
    }

    /// Records a region of `size` bytes this transaction created.
    pub fn record_created(&mut self, handle: RegionHandle, size: u64) {
        self.entries.push(Entry::Created(handle, size));
    }

    /// Begins a free that only becomes final at transaction end (so a revert can
    /// still bring the region back, bytes intact).
    pub fn begin_free(
        &mut self,
        registry: &RegionRegistry,
        handle: RegionHandle,
    ) -> Result<(), RegionError> {
        let size = registry.lock_read(handle)?.size();
        registry.begin_free(handle)?;
        self.entries.push(Entry::FreeBegun(handle, size));
        Ok(())
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
            self.entries.push(Entry::Words(words));
        }
    }

    /// Words of region memory this transaction allocated so far, growth included.
    pub fn words_allocated(&self) -> u64 {
        self.words
    }

    /// The mapping bytecode made for `context` in this transaction.
    pub fn mapping(&self, handle: RegionHandle, context: ContextId) -> Option<MapOptions> {
        self.mappings.get(&(handle, context)).copied()
    }

    /// Maps (or remaps) `handle` for `context`; a remap drops the old mapping's
    /// private pages (kept in the journal so a revert restores them).
    pub fn map(&mut self, handle: RegionHandle, context: ContextId, options: MapOptions) {
        let previous = self.mappings.insert((handle, context), options);
        let dropped = self.private.remove(&(handle, context)).unwrap_or_default();
        self.entries.push(Entry::Mapped {
            handle,
            context,
            previous,
            dropped,
        });
    }

    /// Whether `key` was saved in the current frame (or by a committed child of it).
    pub fn saved_in_frame(&self, key: PageKey) -> bool {
        let depth = self.checkpoints.len() as u32;
        self.saved.get(&key).and_then(|stack| stack.last()) == Some(&depth)
    }

    /// Pages of `[offset, offset + len)` clipped to `size` that are not yet saved in
    /// this frame: what the first write would save (and what gas charges for).
    ///
    /// For a context's private pages (`private: Some(context)`), also the pages it
    /// holds no private copy of although one was saved in this frame (a remap
    /// dropped it): the write faults them again, and a fault is charged as a save
    /// is. Each page counts once.
    pub fn unsaved_pages(
        &self,
        handle: RegionHandle,
        private: Option<ContextId>,
        offset: u64,
        len: u64,
        size: u64,
    ) -> u64 {
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return 0;
        }
        let (first, last) = (offset / PAGE_SIZE as u64, (end - 1) / PAGE_SIZE as u64);
        (first..=last)
            .filter(|&page| {
                !self.saved_in_frame(PageKey {
                    handle,
                    page,
                    private,
                }) || private.is_some_and(|context| !self.has_private_page(handle, context, page))
            })
            .count() as u64
    }

    /// Records that `key` is about to change and held `bytes` (zero-padded to a
    /// page) unless it was already saved in this frame.
    fn save(&mut self, key: PageKey, before: impl FnOnce() -> Before) {
        let depth = self.checkpoints.len() as u32;
        let stack = self.saved.entry(key).or_default();
        if stack.last() == Some(&depth) {
            return;
        }
        stack.push(depth);
        self.entries.push(Entry::Page {
            key,
            before: before(),
        });
    }

    /// Writes `data` into the region's live bytes at `offset`, saving each page it
    /// changes first (once per frame) and recording growth. Same results as
    /// [`RegionRegistry::write`].
    pub fn write(
        &mut self,
        registry: &RegionRegistry,
        handle: RegionHandle,
        offset: u64,
        data: &[u8],
        allow_grow: bool,
    ) -> Result<WriteOutcome, RegionError> {
        let mut guard = registry.lock_write(handle)?;
        let outcome = guard.write_observed(offset, data, allow_grow, &mut |page, bytes| {
            self.save(PageKey::region(handle, page), || {
                Before::Bytes(page_copy(bytes))
            });
        })?;
        if outcome.grew() {
            self.entries.push(Entry::Resized {
                handle,
                old_size: outcome.old_size,
            });
        }
        Ok(outcome)
    }

    /// Reads through `context`'s copy-on-write view: its private pages where it has
    /// them, live bytes elsewhere; past the end is zero. Returns bytes that came
    /// from the region (as [`RegionRegistry::read`]).
    pub fn read_private(
        &self,
        registry: &RegionRegistry,
        handle: RegionHandle,
        context: ContextId,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, RegionError> {
        let guard = registry.lock_read(handle)?;
        let n = guard.read(offset, buf)?;
        if let Some(pages) = self.private.get(&(handle, context)) {
            overlay(pages, offset, &mut buf[..n]);
        }
        Ok(n)
    }

    /// Writes through `context`'s copy-on-write mapping: the first write to a page
    /// copies it privately (a fault); the region never changes or grows. Returns
    /// (bytes written, pages faulted).
    pub fn write_private(
        &mut self,
        registry: &RegionRegistry,
        handle: RegionHandle,
        context: ContextId,
        offset: u64,
        data: &[u8],
    ) -> Result<(usize, u64), RegionError> {
        let guard = registry.lock_read(handle)?;
        let size = guard.size();
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(RegionError::OffsetOverflow {
                offset,
                len: data.len() as u64,
            })?
            .min(size);
        if offset >= end {
            return Ok((0, 0));
        }
        let mut faults = 0;
        let mut at = offset;
        while at < end {
            let page = at / PAGE_SIZE as u64;
            let page_start = page * PAGE_SIZE as u64;
            let chunk_end = (page_start + PAGE_SIZE as u64).min(end);
            let key = PageKey::private(handle, page, context);
            if !self.saved_in_frame(key) {
                let before = match self
                    .private
                    .get(&(handle, context))
                    .and_then(|p| p.get(&page))
                {
                    Some(bytes) => Before::Bytes(page_copy(&bytes[..])),
                    None => Before::Absent,
                };
                self.save(key, || before);
            }
            if !self.has_private_page(handle, context, page) {
                let mut fresh = Box::new([0u8; PAGE_SIZE]);
                guard.read_page(page, &mut fresh)?;
                self.private
                    .entry((handle, context))
                    .or_default()
                    .insert(page, fresh);
                faults += 1;
            }
            let pages = self.private.entry((handle, context)).or_default();
            let target = pages.get_mut(&page).expect("inserted or present above");
            let src = &data[(at - offset) as usize..(chunk_end - offset) as usize];
            let dst_start = (at - page_start) as usize;
            target[dst_start..dst_start + src.len()].copy_from_slice(src);
            at = chunk_end;
        }
        Ok(((end - offset) as usize, faults))
    }

    /// Private copy-on-write pages currently held.
    pub fn private_pages(&self) -> usize {
        self.private.values().map(HashMap::len).sum()
    }

    /// Whether `context` has a private copy of `page`.
    pub fn has_private_page(&self, handle: RegionHandle, context: ContextId, page: u64) -> bool {
        self.private
            .get(&(handle, context))
            .is_some_and(|p| p.contains_key(&page))
    }

    /// Pages in `[offset, offset+len)` clipped to `size` that `context` has no
    /// private copy of yet: what a copy-on-write write would fault.
    pub fn unfaulted_pages(
        &self,
        handle: RegionHandle,
        context: ContextId,
        offset: u64,
        len: u64,
        size: u64,
    ) -> u64 {
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return 0;
        }
        let (first, last) = (offset / PAGE_SIZE as u64, (end - 1) / PAGE_SIZE as u64);
        (first..=last)
            .filter(|&page| !self.has_private_page(handle, context, page))
            .count() as u64
    }
}

fn page_copy(bytes: &[u8]) -> Box<Page> {
    let mut page = Box::new([0u8; PAGE_SIZE]);
    page[..bytes.len()].copy_from_slice(bytes);
    page
}

/// Copies the parts of private pages that fall in `[offset, offset + buf.len())`.
fn overlay(pages: &HashMap<u64, Box<Page>>, offset: u64, buf: &mut [u8]) {
    if buf.is_empty() {
        return;
    }
    let end = offset + buf.len() as u64;
    let (first, last) = (offset / PAGE_SIZE as u64, (end - 1) / PAGE_SIZE as u64);
    for page in first..=last {
        let Some(bytes) = pages.get(&page) else {
            continue;
        };
        let page_start = page * PAGE_SIZE as u64;
        let from = offset.max(page_start);
        let to = end.min(page_start + PAGE_SIZE as u64);
        buf[(from - offset) as usize..(to - offset) as usize]
            .copy_from_slice(&bytes[(from - page_start) as usize..(to - page_start) as usize]);
    }
}
