//! Locked access to one live region: bounded reads, planned writes, growth,
//! page restores and metadata changes.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{MappedRwLockReadGuard, MappedRwLockWriteGuard};
use shm_pool::{BlockPool, PoolError};
use shm_primitives::{ContextId, MapOptions, WritePlan, PAGE_SIZE};

use crate::raw::RawRegionBytes;
use crate::slot::Occupant;
use crate::{Grant, RegionError, RegionMeta, WriteOutcome};

/// The part of `offset..offset + len` inside `size` bytes (empty past the
/// end), or [`RegionError::OffsetOverflow`] when the end overflows 64 bits.
#[inline]
fn clip(offset: u64, len: usize, size: usize) -> Result<Range<usize>, RegionError> {
    let len64 = len as u64;
    if offset.checked_add(len64).is_none() {
        return Err(RegionError::OffsetOverflow { offset, len: len64 });
    }
    match usize::try_from(offset) {
        Ok(start) if start < size => Ok(start..start + len.min(size - start)),
        _ => Ok(0..0),
    }
}

/// `requested` bytes as a `usize`, when that is 1 to `max` bytes.
pub(crate) fn checked_size(requested: u64, max: u64) -> Result<usize, RegionError> {
    match usize::try_from(requested) {
        Ok(0) => Err(RegionError::ZeroSize),
        Ok(size) if requested <= max => Ok(size),
        _ => Err(RegionError::RegionTooLarge { requested, max }),
    }
}

/// Byte offset of page `page`.
fn page_offset(page: u64) -> Result<u64, RegionError> {
    page.checked_mul(PAGE_SIZE as u64)
        .ok_or(RegionError::PageOutOfRange(page))
}

#[inline]
fn live_bytes(occupant: &Occupant) -> &[u8] {
    &occupant.block.as_slice()[..occupant.meta.size]
}

/// Copies the live `bytes` at `offset` into `buf`, zero past their end;
/// returns how many came from `bytes`. Every read of a region ends here.
#[inline]
pub(crate) fn copy_out(bytes: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize, RegionError> {
    let range = clip(offset, buf.len(), bytes.len())?;
    let n = range.len();
    let (from_region, past_end) = buf.split_at_mut(n);
    from_region.copy_from_slice(&bytes[range]);
    if !past_end.is_empty() {
        past_end.fill(0);
    }
    Ok(n)
}

/// A shared lock on one live region: many may be held at once. Obtained from
/// [`RegionRegistry::lock_read`](crate::RegionRegistry::lock_read).
pub struct RegionReadGuard<'a> {
    pub(crate) occupant: MappedRwLockReadGuard<'a, Occupant>,
    pub(crate) access_version: &'a AtomicU64,
}

/// `Debug` and the read-only accessors both guards have.
macro_rules! region_view {
    ($guard:ident) => {
        impl std::fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($guard))
                    .field("handle", &self.occupant.meta.handle)
                    .field("size", &self.occupant.meta.size)
                    .finish()
            }
        }

        impl $guard<'_> {
            /// The region's metadata (for access checks and listings).
            #[inline]
            pub fn meta(&self) -> &RegionMeta {
                &self.occupant.meta
            }

            /// Logical size in bytes.
            pub fn size(&self) -> u64 {
                self.occupant.meta.size as u64
            }

            /// The region's live bytes (exactly its size).
            pub fn bytes(&self) -> &[u8] {
                live_bytes(&self.occupant)
            }

            /// Changes with every grant, revoke, host map and host unmap of the
            /// region's slot: equal versions mean equal access rights.
            #[inline]
            pub fn access_version(&self) -> u64 {
                self.access_version.load(Ordering::Acquire)
            }
        }
    };
}

region_view!(RegionReadGuard);
region_view!(RegionWriteGuard);

impl RegionReadGuard<'_> {
    /// Copies bytes at `offset` into `buf`; bytes past the end read as zero
    /// (as CALLDATACOPY). Returns how many came from the region.
    ///
    /// # Errors
    /// [`RegionError::OffsetOverflow`] when `offset + buf.len()` overflows 64 bits.
    #[inline]
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, RegionError> {
        copy_out(live_bytes(&self.occupant), offset, buf)
    }

    /// Copies page `page` into `out` as [`read`](Self::read) does.
    ///
    /// # Errors
    /// [`RegionError::PageOutOfRange`] when the page's offset overflows 64 bits.
    pub fn read_page(&self, page: u64, out: &mut [u8; PAGE_SIZE]) -> Result<usize, RegionError> {
        copy_out(live_bytes(&self.occupant), page_offset(page)?, out)
    }

    /// Where the region's live bytes are, for a reader that will hold the
    /// region by other means than this guard (see [`RawRegionBytes::read`]);
    /// `None` for a region whose bytes are not a pooled block (a mapped file).
    #[inline]
    pub fn raw_bytes(&self) -> Option<RawRegionBytes> {
        let base = self.occupant.block.pooled_base()?.cast_mut();
        Some(RawRegionBytes::new(base, self.occupant.meta.size, false))
    }
}

/// Called with `(page_index, page_bytes)` for every page a write is about to
/// change, before it changes; `page_bytes` is the page's content within the
/// region as it was before the write (shorter than a page for the last one).
pub type PageObserver<'f> = dyn FnMut(u64, &[u8]) + 'f;

/// An exclusive lock on one live region. Obtained from
/// [`RegionRegistry::lock_write`](crate::RegionRegistry::lock_write).
pub struct RegionWriteGuard<'a> {
    pub(crate) pool: &'a BlockPool,
    pub(crate) occupant: MappedRwLockWriteGuard<'a, Occupant>,
    pub(crate) access_version: &'a AtomicU64,
}

impl RegionWriteGuard<'_> {
    /// As [`RegionReadGuard::raw_bytes`], for a holder that will also write
    /// through the capture (see [`RawRegionBytes::write`]): the block's dirty
    /// mark is raised to the region's size, so that the pool zeroes whatever
    /// is written there when the block goes back.
    #[inline]
    pub fn raw_bytes_for_writes(&mut self) -> Option<RawRegionBytes> {
        let size = self.occupant.meta.size;
        let base = self.occupant.block.pooled_base_for_writes(size)?;
        Some(RawRegionBytes::new(base, size, true))
    }

    fn access_changed(&self) {
        self.access_version.fetch_add(1, Ordering::Release);
    }

    /// The [`WritePlan`] for `len` bytes at `offset` (growing when `allow_grow`
    /// and the region auto-grows).
    pub fn plan(&self, offset: u64, len: u64, allow_grow: bool) -> WritePlan {
        let meta = &self.occupant.meta;
        WritePlan::new(
            meta.size as u64,
            meta.max_size as u64,
            allow_grow && meta.options.auto_grow,
            offset,
            len,
        )
    }

    /// Writes `data` at `offset`; past the end writes what fits. When
    /// `allow_grow` and the region auto-grows, it first grows to cover the
    /// write (up to its `max_size`); growth the pool refuses is reported in the
    /// outcome.
    ///
    /// # Errors
    /// [`RegionError::OffsetOverflow`]; [`RegionError::Pool`] when the memory
    /// refused the change (a mapped file's undo record could not be written).
    pub fn write(
        &mut self,
        offset: u64,
        data: &[u8],
        allow_grow: bool,
    ) -> Result<WriteOutcome, RegionError> {
        let len = data.len() as u64;
        if offset.checked_add(len).is_none() {
            return Err(RegionError::OffsetOverflow { offset, len });
        }
        self.write_planned(self.plan(offset, len, allow_grow), data, None)
    }

    /// Performs `plan` (made by [`plan`](Self::plan), or by [`WritePlan::new`]
    /// from the current size) with `data`, first showing `observer` each page
    /// that existed before the write and that it changes (the revert journal's
    /// hook: pages only growth adds are undone by shrinking back).
    ///
    /// # Errors
    /// [`RegionError::StalePlan`] when the plan was made for another size or
    /// more bytes than `data` holds; [`RegionError::Pool`] as for `write`.
    #[inline]
    pub fn write_planned(
        &mut self,
        mut plan: WritePlan,
        data: &[u8],
        observer: Option<&mut PageObserver<'_>>,
    ) -> Result<WriteOutcome, RegionError> {
        let old_size = self.occupant.meta.size;
        if plan.size != old_size as u64
            || plan.new_size > self.occupant.meta.max_size as u64
            || plan.written > data.len() as u64
        {
            return Err(RegionError::StalePlan);
        }
        // Pages that exist before growth: the same whether growth succeeds.
        if let Some(observer) = observer {
            if let Some((first, last)) = plan.existing_pages() {
                let bytes = live_bytes(&self.occupant);
                for page in first as usize..=last as usize {
                    let start = page * PAGE_SIZE;
                    let end = (start + PAGE_SIZE).min(bytes.len());
                    observer(page as u64, &bytes[start..end]);
                }
            }
        }
        let mut growth_error = None;
        if plan.grows() {
            // `new_size` ≤ `max_size`, a `usize`.
            if let Err(error) = self.resize_to(plan.new_size as usize) {
                growth_error = Some(error);
                plan = plan.without_growth();
            }
        }
        let written = plan.written as usize;
        if written > 0 {
            if let Err(error) = self
                .occupant
                .block
                .write_at(plan.offset as usize, &data[..written])
            {
                // The memory refused (a mapped file's undo record): the write
                // did not happen, so neither does its growth.
                if self.occupant.meta.size != old_size {
                    let _ = self.resize_to(old_size);
                }
                return Err(error.into());
            }
        }
        Ok(WriteOutcome {
            written,
            old_size: old_size as u64,
            new_size: self.occupant.meta.size as u64,
            growth_error,
        })
    }

    /// Sets the logical size (the revert journal's undo of growth); shrinking
    /// zeroes the cut bytes and keeps the block. Returns the old size.
    ///
    /// # Errors
    /// [`RegionError::ZeroSize`], [`RegionError::RegionTooLarge`],
    /// [`RegionError::Pool`].
    pub fn set_size(&mut self, new_size: u64) -> Result<u64, RegionError> {
        let old_size = self.size();
        self.resize_to(checked_size(new_size, self.occupant.meta.max_size as u64)?)?;
        Ok(old_size)
    }

    /// `new_size` is non-zero and within `max_size`.
    fn resize_to(&mut self, new_size: usize) -> Result<(), PoolError> {
        let size = self.occupant.meta.size;
        if new_size < size {
            self.occupant
                .block
                .range_mut(new_size, size - new_size)?
                .fill(0);
        } else if new_size > self.occupant.block.len() {
            let mut bigger = self.pool.allocate(new_size)?;
            bigger.write_at(0, &self.occupant.block.as_slice()[..size])?;
            // The old block goes back to its pool when dropped here.
            self.occupant.block = bigger;
        }
        self.occupant.meta.size = new_size;
        Ok(())
    }

    /// Writes saved bytes back at page `page` without changing the size (the
    /// revert journal's undo of writes); returns how many fell in the region.
    ///
    /// # Errors
    /// [`RegionError::PageOutOfRange`]; [`RegionError::Pool`] as for `write`.
    pub fn restore_page(
        &mut self,
        page: u64,
        saved: &[u8; PAGE_SIZE],
    ) -> Result<usize, RegionError> {
        let range = clip(page_offset(page)?, PAGE_SIZE, self.occupant.meta.size)?;
        let n = range.len();
        if n > 0 {
            self.occupant.block.write_at(range.start, &saved[..n])?;
        }
        Ok(n)
    }

    /// Gives `context` a host mapping with `options`, replacing any it had;
    /// returns the replaced one. Permission checks are `shm-access`'s job.
    pub fn map(&mut self, context: ContextId, options: MapOptions) -> Option<MapOptions> {
        self.access_changed();
        self.occupant.meta.mappings.insert(context, options)
    }

    /// Removes the host mapping of `context` and returns it.
    ///
    /// # Errors
    /// [`RegionError::MappingNotFound`].
    pub fn unmap(&mut self, context: ContextId) -> Result<MapOptions, RegionError> {
        let handle = self.occupant.meta.handle;
        let mapping = self.occupant.meta.mappings.remove(&context);
        let mapping = mapping.ok_or(RegionError::MappingNotFound { handle, context })?;
        self.access_changed();
        Ok(mapping)
    }

    /// Grants `context` rights on the region; returns the grant it replaces.
    pub fn grant(&mut self, context: ContextId, grant: Grant) -> Option<Grant> {
        self.access_changed();
        self.occupant.meta.grants.insert(context, grant)
    }

    /// Withdraws the grant of `context`; returns it.
    pub fn revoke(&mut self, context: ContextId) -> Option<Grant> {
        self.access_changed();
        self.occupant.meta.grants.remove(&context)
    }

    /// Takes a host reference; returns the new count of host references.
    pub fn add_host_ref(&mut self) -> u32 {
        let refs = &mut self.occupant.meta.host_refs;
        *refs = refs.saturating_add(1);
        *refs
    }

    /// Drops a host reference (never below zero); returns the new count.
    pub fn drop_host_ref(&mut self) -> u32 {
        let refs = &mut self.occupant.meta.host_refs;
        *refs = refs.saturating_sub(1);
        *refs
    }
}
