//! The transaction's table of resolved handles: what makes a warm access a
//! table lookup instead of a handle resolution.

use shm_manager::{Intent, Resolved};
use shm_primitives::{ContextId, MapOptions, RegionHandle, WritePlan};

/// Intents already checked for an entry's context, as bits.
const fn bit(intent: Intent) -> u8 {
    match intent {
        Intent::Read => 1,
        Intent::Write => 2,
        Intent::Map => 4,
        Intent::Free => 8,
    }
}

/// One region the transaction resolved for one context.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) region: Resolved,
    /// The context the permissions were checked for.
    pub(crate) context: ContextId,
    /// Intents whose permission check passed for `context`.
    allowed: u8,
    /// The region is warm in this transaction (a revert that cools it
    /// removes the entry).
    pub(crate) warm: bool,
    /// The mapping the transaction made for `context` (a MAP by the
    /// transaction updates it; a revert of one removes the entry).
    pub(crate) tx_mapping: Option<MapOptions>,
    /// `(journal epoch, page)`: the one page the last write changed was saved
    /// in the frame that was current at that epoch. While the epoch stands
    /// (no checkpoint opened or settled since), a write within that page
    /// needs no journal lookup at all.
    pub(crate) saved_hint: Option<(u64, u64)>,
}

/// Whether every existing page `plan` changes is known to be saved in the
/// current frame (journal epoch `epoch`), by `hint` (see [`Entry`]).
#[inline]
pub(crate) fn hint_covers(
    hint: Option<(u64, u64)>,
    plan: &WritePlan,
    epoch: u64,
    cow: bool,
) -> bool {
    match (plan.existing_pages(), hint) {
        (None, _) => true,
        (Some((first, last)), Some((at, page))) => {
            first == last && first == page && at == epoch && !cow
        }
        _ => false,
    }
}

impl Entry {
    /// An entry for a region the table does not cache.
    pub(crate) fn uncached(
        region: Resolved,
        context: ContextId,
        intent: Intent,
        warm: bool,
        tx_mapping: Option<MapOptions>,
    ) -> Self {
        Self {
            region,
            context,
            allowed: bit(intent),
            warm,
            tx_mapping,
            saved_hint: None,
        }
    }

    #[inline]
    pub(crate) fn allows(&self, context: ContextId, intent: Intent) -> bool {
        self.context == context && self.allowed & bit(intent) != 0
    }

    /// Keeps only the check of `intent` (a remap changed what the others may do).
    pub(crate) fn keep_only(&mut self, intent: Intent) {
        self.allowed &= bit(intent);
        self.saved_hint = None;
    }

    /// Records that `plan`'s pages are saved in the frame current at `epoch`.
    #[inline]
    pub(crate) fn note_saved(&mut self, plan: &WritePlan, epoch: u64) {
        self.saved_hint = match plan.existing_pages() {
            Some((first, last)) if first == last && !self.region.copy_on_write => {
                Some((epoch, first))
            }
            _ => None,
        };
    }
}

/// Slot indexes above this share one entry, `overflow` (a mapped namespace
/// could name any index; the table must not grow with hostile handles).
const MAX_CACHED_INDEX: usize = 1 << 16;

/// Resolved handles, by slot index.
///
/// An entry is kept while it stays true and dropped exactly when it may go
/// stale: a revert that undid anything of its region but bytes, a FREE or
/// remap by the transaction, the transaction's end. Growth by the
/// transaction updates its size. Host changes of grants and mappings are
/// caught at access time by the region's access version.
#[derive(Debug, Default)]
pub(crate) struct ResolvedTable {
    entries: Vec<Option<Entry>>,
    /// The one entry of an index above `MAX_CACHED_INDEX`: the latest
    /// resolved region is always in the table, which the operations rely on.
    overflow: Option<Entry>,
    /// Indexes in use, to clear in O(entries) at transaction end.
    used: Vec<u32>,
}

impl ResolvedTable {
    /// The entry for `handle`, when one is cached.
    #[inline]
    pub(crate) fn get(&self, handle: RegionHandle) -> Option<&Entry> {
        self.slot(handle.index() as usize)?
            .as_ref()
            .filter(|e| e.region.handle == handle)
    }

    /// The entry for a region an operation prepared: it stays until the
    /// next resolution, FREE, remap, revert or transaction end.
    #[inline]
    pub(crate) fn entry(&self, handle: RegionHandle) -> &Entry {
        self.get(handle)
            .expect("a prepared region has a table entry")
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, handle: RegionHandle) -> Option<&mut Entry> {
        self.slot_mut(handle.index() as usize)?
            .as_mut()
            .filter(|e| e.region.handle == handle)
    }

    #[inline]
    fn slot(&self, index: usize) -> Option<&Option<Entry>> {
        if index > MAX_CACHED_INDEX {
            Some(&self.overflow)
        } else {
            self.entries.get(index)
        }
    }

    #[inline]
    fn slot_mut(&mut self, index: usize) -> Option<&mut Option<Entry>> {
        if index > MAX_CACHED_INDEX {
            Some(&mut self.overflow)
        } else {
            self.entries.get_mut(index)
        }
    }

    /// Records that `entry.region` passed the check of `entry`'s intent for
    /// its context.
    pub(crate) fn insert(&mut self, mut entry: Entry) {
        let index = entry.region.handle.index() as usize;
        if index <= MAX_CACHED_INDEX && self.entries.len() <= index {
            self.entries.resize(index + 1, None);
        }
        let slot = self
            .slot_mut(index)
            .expect("the entries were resized to the index");
        match *slot {
            // Same region and context: the earlier checks still hold (the
            // region was resolved again for another intent), and so does the
            // stronger lock.
            Some(old)
                if old.region.handle == entry.region.handle && old.context == entry.context =>
            {
                entry.region.mode = entry.region.mode.max(old.region.mode);
                entry.allowed |= old.allowed;
                entry.saved_hint = old.saved_hint;
            }
            _ => entry.saved_hint = None,
        }
        if slot.replace(entry).is_none() && index <= MAX_CACHED_INDEX {
            self.used.push(index as u32);
        }
    }

    /// Forgets `handle`.
    pub(crate) fn remove(&mut self, handle: RegionHandle) {
        if let Some(slot) = self.slot_mut(handle.index() as usize) {
            slot.take_if(|e| e.region.handle == handle);
        }
    }

    /// Forgets everything (transaction end).
    pub(crate) fn clear(&mut self) {
        for index in self.used.drain(..) {
            self.entries[index as usize] = None;
        }
        self.overflow = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
    use shm_primitives::{Address, Permissions, RegionOptions};
    use std::time::Duration;

    /// Entries are per region and context, and indexes past the cache share
    /// one entry.
    #[test]
    fn entries_per_region_and_context_and_past_the_cache() {
        let manager = SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap();
        let (rw, options) = (Permissions::read_write(), RegionOptions::default());
        let h = manager.create_shared_region("t", 64, rw, options).unwrap();
        let mut tx = manager.begin_transaction();
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let region = tx
            .resolve(h, a, Intent::Read, None, Duration::ZERO)
            .unwrap();
        let mut table = ResolvedTable::default();
        table.insert(Entry::uncached(region, a, Intent::Read, true, None));
        let entry = table.get(h).unwrap();
        assert!(entry.allows(a, Intent::Read));
        assert!(!entry.allows(a, Intent::Write));
        assert!(!entry.allows(b, Intent::Read));
        table.insert(Entry::uncached(region, a, Intent::Write, true, None));
        assert!(table.get(h).unwrap().allows(a, Intent::Read));
        // Another generation of the same slot is another region.
        let stale = RegionHandle::new(h.index(), h.generation() + 1).unwrap();
        assert!(table.get(stale).is_none());
        table.remove(stale);
        assert!(table.get(h).is_some());
        table.clear();
        assert!(table.get(h).is_none());

        // Indexes a hostile namespace could name: the table does not grow to them.
        let [far, farther] = [1 << 20, u32::MAX].map(|index| {
            let mut far = region;
            far.handle = RegionHandle::new(index, 1).unwrap();
            far
        });
        table.insert(Entry::uncached(far, a, Intent::Read, true, None));
        assert!(table.get(far.handle).unwrap().allows(a, Intent::Read));
        assert!(table.entries.len() <= MAX_CACHED_INDEX + 1);
        table.insert(Entry::uncached(farther, a, Intent::Read, true, None));
        assert!(table.get(far.handle).is_none(), "one entry past the cache");
        assert!(table.get(farther.handle).is_some());
        table.remove(farther.handle);
        assert!(table.get(farther.handle).is_none());
        table.insert(Entry::uncached(farther, a, Intent::Read, true, None));
        table.clear();
        assert!(table.get(farther.handle).is_none() && table.used.is_empty());
        tx.release();
    }
}
