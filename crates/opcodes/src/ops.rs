//! The bodies of the five operations and their prices, in the spec's order
//! of checks: static context → unknown flag or option bits → handle → lock →
//! mapping → permission → offsets → gas → effect (spec §5).

use revm::interpreter::Gas;
use shm_manager::{Intent, ShmError, TxRegions};
use shm_primitives::{
    region_offset, words, AllocFlags, ContextId, HaltCause, MapOptions, RegionHandle,
    RegionOptions, WritePlan, PAGE_SIZE, U256,
};
use shm_region::{RegionSpec, WriteOutcome};

use crate::session::{ActiveSession, OpError};
use crate::table::{hint_covers, Entry};

/// A region whose table entry allows the operation's intent. Only what the
/// checks need is copied out, the rest is read in place: copying a whole entry
/// per warm access cost a fifth of READ's time (a store-forwarding stall).
#[derive(Clone, Copy, Debug)]
struct Hit {
    handle: RegionHandle,
    warm: bool,
    tx_mapping: Option<MapOptions>,
}

/// A READ that passed its checks and paid its price; the instruction expands
/// memory and then calls [`ActiveSession::finish_read`].
#[derive(Clone, Copy, Debug)]
pub struct ReadAccess {
    handle: RegionHandle,
    offset: u64,
    /// Bytes to copy into memory.
    pub len: usize,
}

/// A WRITE that passed its checks and paid its price; the instruction
/// expands memory and then calls [`ActiveSession::finish_write`].
#[derive(Clone, Copy, Debug)]
pub struct WriteAccess {
    handle: RegionHandle,
    plan: WritePlan,
    /// Gas paid for growth, given back if the pool refuses it.
    growth_cost: u64,
    /// Whether the pages the write changes were all saved in this frame
    /// already (then the write needs no journal work).
    all_saved: bool,
    /// Whether the table's hint already said so (then it needs no update).
    hinted: bool,
    /// Whether the write goes to the context's private copy-on-write view.
    copy_on_write: bool,
    /// Bytes of memory the write reads.
    pub len: usize,
}

/// The transaction a prepared region belongs to.
#[inline]
fn held(tx: &Option<TxRegions>) -> &TxRegions {
    tx.as_ref().expect("a resolved region has a transaction")
}

#[inline]
fn charge(gas: &mut Gas, cost: u64) -> Result<(), OpError> {
    if gas.record_regular_cost(cost) {
        Ok(())
    } else {
        Err(OpError::OutOfGas)
    }
}

impl ActiveSession {
    /// The entry for `word` as `context` means to use it: from the
    /// transaction's table when it is there and allows `intent`, else
    /// resolved (and then cached).
    #[inline]
    fn prepare(
        &mut self,
        context: ContextId,
        word: U256,
        intent: Intent,
        gas_left: u64,
    ) -> Result<Hit, OpError> {
        let Some(handle) = RegionHandle::from_u256(word) else {
            return Err(self.halt(HaltCause::InvalidHandle));
        };
        match self.table.get(handle) {
            Some(entry) if entry.allows(context, intent) => Ok(Hit {
                handle,
                warm: entry.warm,
                tx_mapping: entry.tx_mapping,
            }),
            _ => self.resolve(handle, context, intent, gas_left),
        }
    }

    /// The slow path: resolve through the manager (lock with a bounded wait,
    /// liveness, permission), then cache.
    #[cold]
    #[inline(never)]
    fn resolve(
        &mut self,
        handle: RegionHandle,
        context: ContextId,
        intent: Intent,
        gas_left: u64,
    ) -> Result<Hit, OpError> {
        let tx_mapping = self.journal.mapping(handle, context);
        let wait = if self.wait_poisoned {
            std::time::Duration::ZERO
        } else {
            self.manager
                .config()
                .wait_for_gas(gas_left, self.wait_remaining)
        };
        let mut waited = std::time::Duration::ZERO;
        let result =
            self.tx()
                .resolve_timed(handle, context, intent, tx_mapping, wait, &mut waited);
        self.wait_remaining = self.wait_remaining.saturating_sub(waited);
        let region = result.map_err(|error| self.halt_for(error))?;
        let warm = self.journal.is_warm(handle);
        self.table
            .insert(Entry::uncached(region, context, intent, warm, tx_mapping));
        Ok(Hit {
            handle,
            warm,
            tx_mapping,
        })
    }

    #[inline]
    fn warm(&mut self, hit: &Hit) {
        if !hit.warm {
            self.journal.warm(hit.handle);
            if let Some(cached) = self.table.get_mut(hit.handle) {
                cached.warm = true;
            }
        }
    }

    /// `region_offset` and `size` as a range of the region (spec §5: a `size`
    /// or an end past 2^64 − 1 halts with "offset overflow").
    #[inline]
    fn range(&mut self, offset: U256, size: U256) -> Result<(u64, u64), OpError> {
        let Ok(len) = u64::try_from(size) else {
            return Err(self.halt(HaltCause::OffsetOverflow));
        };
        match region_offset(offset, len) {
            Some(offset) => Ok((offset, len)),
            None => Err(self.halt(HaltCause::OffsetOverflow)),
        }
    }

    /// SHARED_ALLOC: a new region of `size` bytes owned by `context`. Returns
    /// the handle, or `None` (push 0) on a resource failure, which costs only
    /// `alloc_base`.
    pub fn alloc(
        &mut self,
        context: ContextId,
        size: U256,
        flags: U256,
        gas: &mut Gas,
    ) -> Result<Option<RegionHandle>, OpError> {
        let Some(flags) = AllocFlags::from_word(flags) else {
            return Err(self.halt(HaltCause::BadFlags));
        };
        let max = self.manager.config().max_region_size;
        let size = match u64::try_from(size) {
            Ok(size) if size > 0 && size <= max => size,
            _ => return charge(gas, self.gas.alloc_base).map(|()| None),
        };
        let persistent = flags.contains(AllocFlags::PERSISTENT);
        let added = words(size);
        let mut growth = self
            .gas
            .growth_cost(self.journal.words_allocated(), added, persistent);
        if self.manager.is_mapped() {
            let file_work = if self.manager.is_mapped_on_disk() {
                self.gas.mapped_alloc_on_disk
            } else {
                self.gas.mapped_alloc
            };
            growth = growth.saturating_add(file_work);
        }
        charge(gas, self.gas.alloc_base.saturating_add(growth))?;
        let spec = RegionSpec::new(size, context).options(RegionOptions::from(flags));
        let Ok(handle) = self.tx().create(spec) else {
            gas.erase_cost(growth);
            return Ok(None);
        };
        self.journal.record_created(handle, size, persistent);
        self.journal.warm(handle);
        self.journal.add_words(added);
        self.journal.map(handle, context, MapOptions::empty());
        Ok(Some(handle))
    }

    /// SHARED_FREE: begins freeing the region; final when the transaction's
    /// effects are published.
    pub fn free(&mut self, context: ContextId, word: U256, gas: &mut Gas) -> Result<(), OpError> {
        let hit = self.prepare(context, word, Intent::Free, gas.remaining())?;
        charge(gas, self.gas.free)?;
        let handle = hit.handle;
        let size = self.tx().begin_free(handle).map_err(|e| self.halt_for(e))?;
        self.journal.record_free(handle, size);
        self.table.remove(handle);
        Ok(())
    }

    /// SHARED_MAP: the context gains (or replaces) a mapping for this
    /// transaction. Mapping again with the same options and no private pages
    /// to drop changes nothing, and records nothing.
    #[inline(always)]
    pub fn map(
        &mut self,
        context: ContextId,
        word: U256,
        options: U256,
        gas: &mut Gas,
    ) -> Result<(), OpError> {
        let Some(options) = MapOptions::from_word(options) else {
            return Err(self.halt(HaltCause::BadFlags));
        };
        let hit = self.prepare(context, word, Intent::Map, gas.remaining())?;
        charge(gas, self.gas.access(!hit.warm))?;
        self.warm(&hit);
        let handle = hit.handle;
        let options = self.manager.effective_map_options(options);
        if hit.tx_mapping == Some(options) && !self.journal.has_private_view(handle, context) {
            return Ok(());
        }
        self.journal.map(handle, context, options);
        self.settle_cow_pages();
        self.tx().record_mapping(handle, context);
        // Mapping and copy-on-write change what READ and WRITE may do.
        if let Some(cached) = self.table.get_mut(handle) {
            cached.keep_only(Intent::Map);
            cached.tx_mapping = Some(options);
        }
        Ok(())
    }

    /// SHARED_READ, up to the copy: checks, then charges access and copy. A
    /// READ of 0 bytes is complete here.
    #[inline(always)]
    pub fn begin_read(
        &mut self,
        context: ContextId,
        word: U256,
        offset: U256,
        size: U256,
        gas: &mut Gas,
    ) -> Result<ReadAccess, OpError> {
        let hit = self.prepare(context, word, Intent::Read, gas.remaining())?;
        let (offset, len) = self.range(offset, size)?;
        charge(
            gas,
            self.gas
                .access(!hit.warm)
                .saturating_add(self.gas.copy(len)),
        )?;
        self.warm(&hit);
        Ok(ReadAccess {
            handle: hit.handle,
            offset,
            // `len` ≤ what the gas paid for, so far below `usize::MAX`.
            len: len as usize,
        })
    }

    /// SHARED_READ's copy into `buf` (memory, already expanded): bytes past
    /// the region's end are zero, and a copy-on-write view shows its private
    /// pages. Returns the bytes that came from the region.
    #[inline(always)]
    pub fn finish_read(
        &mut self,
        context: ContextId,
        access: &ReadAccess,
        buf: &mut [u8],
    ) -> Result<usize, OpError> {
        let handle = access.handle;
        let read = held(&self.tx).read(&self.table.entry(handle).region, access.offset, buf);
        let n = match read {
            Ok(n) => n,
            Err(ShmError::StaleResolution(_)) => {
                self.reresolve(context, handle, Intent::Read)?;
                let read =
                    held(&self.tx).read(&self.table.entry(handle).region, access.offset, buf);
                read.map_err(|e| self.halt_for(e))?
            }
            Err(error) => return Err(self.halt_for(error)),
        };
        if self.journal.has_private_view(handle, context) {
            self.journal
                .overlay(handle, context, access.offset, &mut buf[..n]);
        }
        self.counts.reads += 1;
        self.counts.read_bytes += n as u64;
        Ok(n)
    }

    /// After the host changed a region's grants or mappings: resolve it again
    /// (the permission may be gone).
    #[cold]
    fn reresolve(
        &mut self,
        context: ContextId,
        handle: RegionHandle,
        intent: Intent,
    ) -> Result<Hit, OpError> {
        self.table.remove(handle);
        self.resolve(handle, context, intent, 0)
    }

    /// SHARED_WRITE, up to the copy: checks, then charges access, copy, pages
    /// first saved in this frame (or faulted) and growth. A WRITE of 0 bytes
    /// is complete here.
    #[inline(always)]
    pub fn begin_write(
        &mut self,
        context: ContextId,
        word: U256,
        offset: U256,
        size: U256,
        gas: &mut Gas,
    ) -> Result<WriteAccess, OpError> {
        let hit = self.prepare(context, word, Intent::Write, gas.remaining())?;
        let (offset, len) = self.range(offset, size)?;
        let handle = hit.handle;
        let entry = self.table.entry(handle);
        let region = &entry.region;
        let cow = region.copy_on_write;
        // Copy-on-write writes never grow the region (spec §5).
        let grows = region.options.auto_grow && !cow;
        let persistent = region.options.persistent;
        let plan = WritePlan::new(region.size, region.max_size, grows, offset, len);
        let hinted = hint_covers(entry.saved_hint, &plan, self.journal.epoch(), cow);
        let pages = if hinted {
            0
        } else {
            let private = cow.then_some(context);
            self.journal.unsaved_pages(handle, private, &plan)
        };
        let held = self.journal.pages_held();
        let limit = self.manager.config().max_journal_bytes / PAGE_SIZE as u64;
        if held.saturating_add(pages) > limit {
            return Err(self.halt(HaltCause::JournalFull));
        }
        let growth_cost = if plan.grows() {
            self.gas.growth_cost(
                self.journal.words_allocated(),
                plan.added_words(),
                persistent,
            )
        } else {
            0
        };
        let cost = self
            .gas
            .access(!hit.warm)
            .saturating_add(self.gas.copy(len))
            .saturating_add(self.gas.pages_cost(held, pages))
            .saturating_add(growth_cost);
        charge(gas, cost)?;
        self.journal.charge_pages(pages);
        self.warm(&hit);
        Ok(WriteAccess {
            handle,
            plan,
            growth_cost,
            all_saved: pages == 0,
            hinted,
            copy_on_write: cow,
            len: len as usize,
        })
    }

    /// The write itself, through the transaction: pages not yet saved in this
    /// frame go to the journal first, unless `all_saved` says there are none.
    #[inline(always)]
    fn write_through(
        &mut self,
        access: &WriteAccess,
        data: &[u8],
        all_saved: bool,
    ) -> Result<WriteOutcome, ShmError> {
        let handle = access.handle;
        let tx = held(&self.tx);
        let region = &self.table.entry(handle).region;
        let journal = &mut self.journal;
        if all_saved {
            tx.write_saved(region, access.plan, data)
        } else {
            tx.write(region, access.plan, data, &mut |page, bytes| {
                journal.save_page(handle, page, bytes)
            })
        }
    }

    /// SHARED_WRITE's copy of `data` (memory) into the region, or into the
    /// context's private view; returns the bytes written. Growth the pool
    /// refuses is given back through `gas`.
    #[inline(always)]
    pub fn finish_write(
        &mut self,
        context: ContextId,
        access: &WriteAccess,
        data: &[u8],
        gas: &mut Gas,
    ) -> Result<usize, OpError> {
        let handle = access.handle;
        if access.copy_on_write {
            let plan = access.plan;
            let tx = held(&self.tx);
            let faults = self.journal.write_private(handle, context, &plan, data, &mut |page, out| {
                if let Err(error) = tx.read_page(handle, page, out) {
                    tracing::error!(target: "shm::session", %error, "copy-on-write fault of a held region failed");
                }
            });
            self.settle_cow_pages();
            self.counts.cow_faults += faults;
            self.counts.writes += 1;
            self.counts.write_bytes += plan.written;
            return Ok(plan.written as usize);
        }
        let epoch = self.journal.epoch();
        // What `begin_write` priced (the size only changes by our writes).
        let size_priced = access.plan.size;
        let outcome = match self.write_through(access, data, access.all_saved) {
            Ok(outcome) => outcome,
            Err(ShmError::StaleResolution(_)) => {
                // The host changed the region's rights meanwhile: check again,
                // then write as priced.
                self.reresolve(context, handle, Intent::Write)?;
                if self.table.entry(handle).region.size != size_priced {
                    return Err(self.halt(HaltCause::InvalidHandle));
                }
                self.write_through(access, data, false)
                    .map_err(|e| self.halt_for(e))?
            }
            // A mapped region's undo record could not be written: nothing
            // changed, and the transaction must not report success.
            Err(ShmError::InvalidRegionHandle(_) | ShmError::RegionFreed(_)) => {
                return Err(self.halt(HaltCause::InvalidHandle))
            }
            Err(_) => return Err(self.halt(HaltCause::JournalFailed)),
        };
        if outcome.grew() {
            self.journal.record_resized(handle, outcome.old_size);
            self.journal
                .add_words(words(outcome.new_size).saturating_sub(words(outcome.old_size)));
            if let Some(cached) = self.table.get_mut(handle) {
                cached.region.size = outcome.new_size;
            }
        } else if access.growth_cost > 0 {
            gas.erase_cost(access.growth_cost);
        }
        if !access.hinted {
            if let Some(cached) = self.table.get_mut(handle) {
                cached.note_saved(&access.plan, epoch);
            }
        }
        self.counts.writes += 1;
        self.counts.write_bytes += outcome.written as u64;
        Ok(outcome.written)
    }
}
