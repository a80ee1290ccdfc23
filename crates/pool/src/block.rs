//! A block handed out by a pool.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use crate::pool::PoolShared;
use crate::raw::RawBlock;
use crate::{PoolError, SizeClass};

/// Where a block came from and where it goes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockKind {
    /// A pooled block of a size class.
    Classed(SizeClass),
    /// A single allocation above 1 MiB, freed to the system on release.
    Large,
}

/// A zero-initialised block of memory from a [`BlockPool`](crate::BlockPool).
///
/// The block owns its bytes. It goes back to the pool it came from when it is
/// [released](crate::BlockPool::release) or simply dropped, so a forgotten
/// release never leaks a pool slot.
///
/// Every block starts all-zero. To keep that cheap the block tracks a *dirty
/// mark*: the end of the prefix that may hold non-zero bytes. Only that prefix is
/// zeroed before the block is handed out again. [`Block::write_at`] and
/// [`Block::range_mut`] raise the mark only as far as they write;
/// [`Block::as_mut_slice`] marks the whole block dirty.
///
/// ```
/// use shm_pool::{BlockPool, PoolConfig, SizeClass};
/// let pool = BlockPool::new(PoolConfig::with_blocks([4, 4, 1, 1]));
/// let mut block = pool.allocate(100)?;
/// assert_eq!((block.class(), block.len()), (Some(SizeClass::K4), 4096));
/// block.write_at(10, b"hello")?;
/// assert_eq!(block.dirty_len(), 15);
/// assert_eq!(&block.as_slice()[8..16], b"\0\0hello\0");
/// pool.release(block);
/// # Ok::<(), shm_pool::PoolError>(())
/// ```
pub struct Block {
    raw: ManuallyDrop<RawBlock>,
    kind: BlockKind,
    dirty: usize,
    requested: usize,
    pool: Arc<PoolShared>,
}

impl Block {
    pub(crate) fn new(
        raw: RawBlock,
        kind: BlockKind,
        requested: usize,
        pool: Arc<PoolShared>,
    ) -> Self {
        Self {
            raw: ManuallyDrop::new(raw),
            kind,
            dirty: 0,
            requested,
            pool,
        }
    }

    /// Length in bytes: the capacity of its class, or for a large block the
    /// requested size rounded up to whole pages.
    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Always `false`: the pool never hands out an empty block.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.len() == 0
    }

    /// The size class, or `None` for a large block (above 1 MiB).
    #[inline]
    pub fn class(&self) -> Option<SizeClass> {
        match self.kind {
            BlockKind::Classed(class) => Some(class),
            BlockKind::Large => None,
        }
    }

    /// Bytes the caller asked for when allocating (at most [`Block::len`]).
    #[inline]
    pub fn requested_len(&self) -> usize {
        self.requested
    }

    /// End of the prefix that may hold non-zero bytes; everything from here to
    /// [`Block::len`] is zero.
    #[inline]
    pub fn dirty_len(&self) -> usize {
        self.dirty
    }

    /// The whole block.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        self.raw.as_slice()
    }

    /// The whole block, writable. Marks the whole block dirty; prefer
    /// [`Block::write_at`] or [`Block::range_mut`] for partial writes.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.dirty = self.raw.len();
        self.raw.as_mut_slice()
    }

    /// `len` bytes at `offset`, writable; raises the dirty mark to `offset + len`.
    ///
    /// # Errors
    /// [`PoolError::OutOfBounds`] if the range does not lie inside the block.
    pub fn range_mut(&mut self, offset: usize, len: usize) -> Result<&mut [u8], PoolError> {
        let end = self.checked_end(offset, len)?;
        self.dirty = self.dirty.max(end);
        Ok(&mut self.raw.as_mut_slice()[offset..end])
    }

    /// Copies `data` into the block at `offset`; raises the dirty mark to
    /// `offset + data.len()`.
    ///
    /// # Errors
    /// [`PoolError::OutOfBounds`] if the data does not fit at `offset`; nothing is written then.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<(), PoolError> {
        self.range_mut(offset, data.len())?.copy_from_slice(data);
        Ok(())
    }

    /// Copies `out.len()` bytes starting at `offset` into `out`.
    ///
    /// # Errors
    /// [`PoolError::OutOfBounds`] if the range does not lie inside the block.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> Result<(), PoolError> {
        let end = self.checked_end(offset, out.len())?;
        out.copy_from_slice(&self.as_slice()[offset..end]);
        Ok(())
    }

    /// Zeroes the dirty prefix and resets the dirty mark to 0.
    pub fn clear(&mut self) {
        self.raw.zero_prefix(self.dirty);
        self.dirty = 0;
    }

    /// Address of the first byte, for alignment checks and diagnostics.
    #[inline]
    pub fn addr(&self) -> usize {
        self.raw.addr()
    }

    fn checked_end(&self, offset: usize, len: usize) -> Result<usize, PoolError> {
        let capacity = self.raw.len();
        offset
            .checked_add(len)
            .filter(|&end| end <= capacity)
            .ok_or(PoolError::OutOfBounds {
                offset,
                len,
                capacity,
            })
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `raw` is taken exactly once, here, and `self` is never used
        // again after `drop`, so it cannot be read or dropped twice.
        let raw = unsafe { ManuallyDrop::take(&mut self.raw) };
        self.pool
            .take_back(raw, self.kind, self.dirty, self.requested);
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("class", &self.class())
            .field("len", &self.len())
            .field("requested", &self.requested)
            .field("dirty_len", &self.dirty)
            .finish_non_exhaustive()
    }
}
