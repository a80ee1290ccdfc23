//! One EVM's shared-memory state: the frame hook that revm's journal drives, and
//! the operations the five instructions perform.

use crate::{FrameHook, GasSchedule, TxOutcome};
use shm_journal::TxJournal;
use shm_manager::{LockMode, SharedMemoryManager, ShmError, TxId};
use shm_metrics::HaltCause;
use shm_primitives::{
    words, AccessKind, AllocFlags, ContextId, MapOptions, Permissions, RegionHandle, RegionOptions,
    U256,
};
use shm_region::{MappingInfo, RegionError, RegionSpec};
use std::sync::Arc;

/// Why a shared-memory instruction did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpError {
    /// An exceptional halt with a shared-memory cause (spec §5).
    Halt(HaltCause),
    /// Not enough gas (the gas callback refused the charge).
    OutOfGas,
}

/// The shared-memory side of one EVM: the [`FrameHook`] that revm's journal drives
/// (so the revert journal checkpoints with revm's frames) and the state of the
/// current transaction.
///
/// `ShmSession::default()` is *off*: every hook call is a no-op. An EVM built by
/// [`crate::ShmEvmBuilder`] holds an active session over a shared
/// [`SharedMemoryManager`].
#[derive(Default)]
pub struct ShmSession {
    active: Option<Box<ActiveSession>>,
}

/// An active session: the manager, the gas schedule and this transaction's state.
pub struct ActiveSession {
    manager: Arc<SharedMemoryManager>,
    gas: GasSchedule,
    /// Assigned on the first shared-memory operation of a transaction, so that a
    /// transaction that never touches shared memory never touches the manager.
    tx: Option<TxId>,
    journal: TxJournal,
    last_halt: Option<HaltCause>,
}

impl ShmSession {
    /// An active session over `manager` with the gas schedule `gas`.
    pub fn new(manager: Arc<SharedMemoryManager>, gas: GasSchedule) -> Self {
        Self {
            active: Some(Box::new(ActiveSession {
                manager,
                gas,
                tx: None,
                journal: TxJournal::default(),
                last_halt: None,
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
}

impl FrameHook for ShmSession {
    #[inline]
    fn checkpoint(&mut self) {
        if let Some(active) = self.active.as_deref_mut() {
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
}

impl ActiveSession {
    /// The manager.
    pub fn manager(&self) -> &Arc<SharedMemoryManager> {
        &self.manager
    }

    /// The gas schedule.
    pub fn gas(&self) -> &GasSchedule {
        &self.gas
    }

    /// The revert journal of the current transaction.
    pub fn journal(&self) -> &TxJournal {
        &self.journal
    }

    fn tx(&mut self) -> TxId {
        match self.tx {
            Some(tx) => tx,
            None => *self.tx.insert(self.manager.next_transaction_id()),
        }
    }

    fn revert(&mut self) {
        let private_before = self.journal.private_pages();
        let undone = self.journal.revert(self.manager.registry());
        for (handle, size) in undone {
            self.manager.metrics().record_region_destroyed(handle, size);
        }
        self.settle_cow_pages(private_before);
    }

    /// Keeps the manager's copy-on-write page gauge in step with the private
    /// pages this journal holds, after an operation that may have made or
    /// dropped some (a revert restores or drops them, a remap drops them).
    fn settle_cow_pages(&self, before: usize) {
        let after = self.journal.private_pages();
        if after > before {
            self.manager.cow_pages_add((after - before) as u64);
        } else if before > after {
            self.manager.cow_pages_sub((before - after) as u64);
        }
    }

    fn end_transaction(&mut self, committed: bool) {
        let Some(tx) = self.tx.take() else {
            // Nothing touched shared memory: only the (empty) checkpoints to drop.
            if !self.journal.is_clean() || self.journal.depth() > 0 {
                self.journal
                    .end_transaction(self.manager.registry(), committed);
            }
            return;
        };
        // Every private page goes at transaction end, including those a failed
        // transaction's undo drops or restores first.
        let private_held = self.journal.private_pages();
        let end = self
            .journal
            .end_transaction(self.manager.registry(), committed);
        let metrics = self.manager.metrics();
        for (handle, size) in &end.undone {
            metrics.record_region_destroyed(*handle, *size);
        }
        for (handle, size) in &end.freed {
            metrics.record_region_destroyed(*handle, *size);
        }
        self.manager.cow_pages_sub(private_held as u64);
        let scoped: Vec<RegionHandle> = end.created.iter().map(|(h, _)| *h).collect();
        if let Err(error) = self.manager.transaction_finished(tx, &scoped) {
            tracing::error!(target: "shm::session", %error, "ending the transaction failed");
        }
    }

    fn halt(&mut self, cause: HaltCause) -> OpError {
        self.manager.metrics().record_halt(cause);
        self.last_halt = Some(cause);
        OpError::Halt(cause)
    }

    fn halt_for(&mut self, error: ShmError) -> OpError {
        let cause = error.halt_cause().unwrap_or(HaltCause::InvalidHandle);
        self.halt(cause)
    }

    /// Parses a stack word as a handle, takes the transaction's lock on the region
    /// in `mode` (bounded wait) and checks that the region is alive.
    fn open(&mut self, word: U256, mode: LockMode) -> Result<RegionHandle, OpError> {
        let Some(handle) = RegionHandle::from_u256(word) else {
            return Err(self.halt(HaltCause::InvalidHandle));
        };
        match self.manager.registry().check(handle) {
            Ok(()) => {}
            Err(RegionError::RegionFreed(_)) => return Err(self.halt(HaltCause::FreedRegion)),
            // In a mapped namespace another process may have made it since.
            Err(_) if self.manager.refresh_handle(handle) => {}
            Err(_) => return Err(self.halt(HaltCause::InvalidHandle)),
        }
        let tx = self.tx();
        let wait = self.manager.config().lock_wait;
        if self
            .manager
            .locks()
            .acquire(handle, tx, mode, wait)
            .is_err()
        {
            return Err(self.halt(HaltCause::RegionBusy));
        }
        // Another transaction may have freed it while we waited for its lock.
        match self.manager.registry().check(handle) {
            Ok(()) => Ok(handle),
            Err(RegionError::RegionFreed(_)) => Err(self.halt(HaltCause::FreedRegion)),
            Err(_) => Err(self.halt(HaltCause::InvalidHandle)),
        }
    }

    /// The mapping `context` has of `handle`: one made by bytecode in this
    /// transaction, else one the host made.
    fn mapping(
        &self,
        handle: RegionHandle,
        context: ContextId,
        host: Option<&MappingInfo>,
    ) -> Option<MappingInfo> {
        match self.journal.mapping(handle, context) {
            Some(options) => Some(MappingInfo::new(options)),
            None => host.map(|m| MappingInfo::new(m.options)),
        }
    }

    /// Charges the access cost (cold on first touch in the transaction).
    fn access_cost(&self, handle: RegionHandle) -> u64 {
        self.gas.access(!self.journal.is_warm(handle))
    }

    /// SHARED_ALLOC: a new region of `size` bytes owned by `context`. Returns the
    /// handle, or `None` (push 0) on a resource failure. `charge` is asked for the
    /// full price before the region is made; a failure afterwards gives back all
    /// but the base (`refund`).
    pub fn alloc(
        &mut self,
        context: ContextId,
        size: U256,
        flags: U256,
        charge: &mut dyn FnMut(u64) -> bool,
        refund: &mut dyn FnMut(u64),
    ) -> Result<Option<RegionHandle>, OpError> {
        let Some(flags) = AllocFlags::from_word(flags) else {
            return Err(self.halt(HaltCause::BadFlags));
        };
        let config = self.manager.config();
        let size = match u64::try_from(size) {
            Ok(size) if size > 0 && size <= config.max_region_size => size,
            _ => {
                return if charge(self.gas.alloc_base) {
                    Ok(None)
                } else {
                    Err(OpError::OutOfGas)
                }
            }
        };
        if self.manager.registry().len() >= config.max_regions {
            return if charge(self.gas.alloc_base) {
                Ok(None)
            } else {
                Err(OpError::OutOfGas)
            };
        }
        let persistent = flags.contains(AllocFlags::PERSISTENT);
        let added = words(size);
        let growth = self
            .gas
            .growth_cost(self.journal.words_allocated(), added, persistent);
        if !charge(self.gas.alloc_base.saturating_add(growth)) {
            return Err(OpError::OutOfGas);
        }
        let tx = self.tx();
        let spec = RegionSpec::new(size, context)
            .permissions(Permissions::read_write())
            .options(RegionOptions::from(flags));
        let handle = match self.manager.create_for_transaction(tx, spec) {
            Ok(handle) => handle,
            Err(_) => {
                refund(growth);
                return Ok(None);
            }
        };
        self.journal.record_created(handle, size);
        self.journal.warm(handle);
        self.journal.add_words(added);
        self.journal.map(handle, context, MapOptions::empty());
        Ok(Some(handle))
    }

    /// SHARED_FREE: begins freeing the region; final at transaction end.
    pub fn free(
        &mut self,
        context: ContextId,
        word: U256,
        charge: &mut dyn FnMut(u64) -> bool,
    ) -> Result<(), OpError> {
        let handle = self.open(word, LockMode::Exclusive)?;
        {
            let guard = self
                .manager
                .registry()
                .lock_read(handle)
                .map_err(|_| OpError::Halt(HaltCause::InvalidHandle))?;
            if let Err(error) = self
                .manager
                .check_access(guard.meta(), context, AccessKind::Free)
            {
                drop(guard);
                return Err(self.halt_for(error));
            }
        }
        if !charge(self.gas.free) {
            return Err(OpError::OutOfGas);
        }
        self.journal
            .begin_free(self.manager.registry(), handle)
            .map_err(|_| OpError::Halt(HaltCause::FreedRegion))?;
        Ok(())
    }

    /// SHARED_MAP: the context gains (or replaces) a mapping for this transaction.
    pub fn map(
        &mut self,
        context: ContextId,
        word: U256,
        options: U256,
        charge: &mut dyn FnMut(u64) -> bool,
    ) -> Result<(), OpError> {
        let Some(options) = MapOptions::from_word(options) else {
            return Err(self.halt(HaltCause::BadFlags));
        };
        let handle = self.open(word, LockMode::Shared)?;
        {
            let guard = self
                .manager
                .registry()
                .lock_read(handle)
                .map_err(|_| OpError::Halt(HaltCause::InvalidHandle))?;
            if let Err(error) = self.manager.check_map(guard.meta(), context) {
                drop(guard);
                return Err(self.halt_for(error));
            }
        }
        if !charge(self.access_cost(handle)) {
            return Err(OpError::OutOfGas);
        }
        self.journal.warm(handle);
        let options = self.manager.effective_map_options(options);
        // A remap drops the old mapping's private pages.
        let private_before = self.journal.private_pages();
        self.journal.map(handle, context, options);
        self.settle_cow_pages(private_before);
        self.manager.metrics().record_mapping(handle, context);
        Ok(())
    }
}

/// A READ or WRITE that passed the handle, mapping and permission checks.
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    handle: RegionHandle,
    /// Goes through the context's private copy-on-write view.
    copy_on_write: bool,
}

/// The price of a WRITE, computed before it runs.
#[derive(Clone, Copy, Debug)]
pub struct WriteQuote {
    /// Everything but EVM memory expansion.
    pub cost: u64,
    /// The part of `cost` that pays for auto-growth (given back if the pool
    /// cannot supply it).
    pub growth: u64,
}

impl ActiveSession {
    /// Handle, lock, mapping (Strict) and permission checks of READ
    /// (`AccessKind::Read`) or WRITE (`AccessKind::Write`), in the spec's order.
    pub fn prepare(
        &mut self,
        context: ContextId,
        word: U256,
        kind: AccessKind,
    ) -> Result<Prepared, OpError> {
        let Some(handle) = RegionHandle::from_u256(word) else {
            return Err(self.halt(HaltCause::InvalidHandle));
        };
        // A write through a copy-on-write mapping never changes the region, so it
        // only needs the region shared.
        let copy_on_write = kind == AccessKind::Write && self.is_copy_on_write(handle, context);
        let mode = if kind == AccessKind::Write && !copy_on_write {
            LockMode::Exclusive
        } else {
            LockMode::Shared
        };
        let handle = self.open(word, mode)?;
        let manager = Arc::clone(&self.manager);
        let checked = match manager.registry().lock_read(handle) {
            Ok(guard) => {
                let mapping = self.mapping(handle, context, guard.meta().mapping(context));
                // Read rights suffice for a copy-on-write write (spec §5).
                let kind = if copy_on_write {
                    AccessKind::Read
                } else {
                    kind
                };
                manager.check_access_mapped(guard.meta(), context, kind, mapping.as_ref())
            }
            Err(_) => return Err(self.halt(HaltCause::FreedRegion)),
        };
        checked.map_err(|error| self.halt_for(error))?;
        Ok(Prepared {
            handle,
            copy_on_write,
        })
    }

    fn is_copy_on_write(&self, handle: RegionHandle, context: ContextId) -> bool {
        match self.journal.mapping(handle, context) {
            Some(options) => options.copy_on_write(),
            None => self
                .manager
                .registry()
                .lock_read(handle)
                .ok()
                .and_then(|g| g.meta().mapping(context).map(|m| m.options.copy_on_write()))
                .unwrap_or(false),
        }
    }

    /// Marks the region warm after a READ or WRITE of 0 bytes paid its access
    /// cost (non-empty ones are warmed by [`read`](Self::read) and
    /// [`write`](Self::write)), so that the next touch is charged warm.
    pub fn touch(&mut self, prepared: &Prepared) {
        self.journal.warm(prepared.handle);
    }

    /// Records an offset-overflow halt (`region_offset + size` ≥ 2^64).
    pub fn offset_overflow(&mut self) -> OpError {
        self.halt(HaltCause::OffsetOverflow)
    }

    /// Records a static-context halt of ALLOC, FREE or WRITE.
    pub fn static_violation(&mut self) -> OpError {
        self.halt(HaltCause::StaticWrite)
    }

    /// Gas of a READ of `len` bytes (memory expansion aside).
    pub fn read_cost(&self, prepared: &Prepared, len: u64) -> u64 {
        self.access_cost(prepared.handle)
            .saturating_add(self.gas.copy(len))
    }

    /// Performs a READ: fills `buf` (zero past the region's end) and returns how
    /// many bytes came from the region.
    pub fn read(
        &mut self,
        context: ContextId,
        prepared: Prepared,
        region_offset: u64,
        buf: &mut [u8],
    ) -> usize {
        self.journal.warm(prepared.handle);
        // Through the context's copy-on-write view: its private pages (from a COW
        // mapping made by bytecode or by the host) where it has them, live bytes elsewhere.
        let read = self.journal.read_private(
            self.manager.registry(),
            prepared.handle,
            context,
            region_offset,
            buf,
        );
        let n = read.unwrap_or(0);
        buf[n..].fill(0);
        self.manager.metrics().record_read(n as u64);
        n
    }

    /// Gas of a WRITE of `len` bytes at `region_offset` (memory expansion aside):
    /// access, copy, journal pages first saved in this frame (or copy-on-write
    /// faults), and auto-growth priced as ALLOC prices words.
    pub fn write_quote(
        &self,
        context: ContextId,
        prepared: &Prepared,
        region_offset: u64,
        len: u64,
    ) -> WriteQuote {
        let base = self.read_cost(prepared, len);
        let Ok(guard) = self.manager.registry().lock_read(prepared.handle) else {
            return WriteQuote {
                cost: base,
                growth: 0,
            };
        };
        let meta = guard.meta();
        let size = meta.size();
        let private = prepared.copy_on_write.then_some(context);
        let pages = self
            .journal
            .unsaved_pages(prepared.handle, private, region_offset, len, size);
        let end = region_offset.saturating_add(len);
        // Growth happens only when the write then lands bytes: never for a zero-length
        // write, nor for one that starts at or past the maximum size.
        let target = end.min(meta.max_size());
        let growth = if !prepared.copy_on_write
            && meta.options().auto_grow
            && end > size
            && region_offset < target
        {
            let added = words(target).saturating_sub(words(size));
            self.gas.growth_cost(
                self.journal.words_allocated(),
                added,
                meta.options().persistent,
            )
        } else {
            0
        };
        let cost = base
            .saturating_add(self.gas.journal_page.saturating_mul(pages))
            .saturating_add(growth);
        WriteQuote { cost, growth }
    }

    /// Performs a WRITE of `data` at `region_offset` and returns the bytes
    /// written; growth the pool refuses is given back through `refund`.
    pub fn write(
        &mut self,
        context: ContextId,
        prepared: Prepared,
        quote: WriteQuote,
        region_offset: u64,
        data: &[u8],
        refund: &mut dyn FnMut(u64),
    ) -> usize {
        self.journal.warm(prepared.handle);
        let registry = self.manager.registry();
        let metrics = self.manager.metrics();
        if prepared.copy_on_write {
            let (written, faults) = self
                .journal
                .write_private(registry, prepared.handle, context, region_offset, data)
                .unwrap_or((0, 0));
            for _ in 0..faults {
                metrics.record_cow_fault();
            }
            self.manager.cow_pages_add(faults);
            metrics.record_write(written as u64);
            return written;
        }
        match self
            .journal
            .write(registry, prepared.handle, region_offset, data, true)
        {
            Ok(outcome) => {
                if outcome.grew() {
                    self.journal
                        .add_words(words(outcome.new_size).saturating_sub(words(outcome.old_size)));
                } else if quote.growth > 0 {
                    refund(quote.growth);
                }
                metrics.record_write(outcome.written as u64);
                outcome.written
            }
            Err(error) => {
                tracing::error!(target: "shm::session", %error, "write after a successful check failed");
                0
            }
        }
    }
}
