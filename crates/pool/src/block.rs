//! A block handed out by a pool.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use crate::pool::{PoolShared, Shard};
use crate::raw::RawBlock;
use crate::{PoolError, SizeClass};

/// Where a pooled block came from and where it goes back to.
pub(crate) enum Home {
    /// A block of a size class, going back to the shard it was taken from.
    /// The block holds that shard rather than the whole pool so that
    /// threads on different shards never touch a common reference count.
    Classed { class: SizeClass, shard: Arc<Shard> },
    /// A single allocation above 1 MiB, freed to the system on release.
    Large(Arc<PoolShared>),
}

/// Memory a [`Block`] can own instead of pool memory: for example a
/// memory-mapped file (`shm-mapped`). The block hands out its bytes through
/// this trait and drops it when the block is dropped (it never goes to a pool).
///
/// A memory that refuses a write makes the block's write fail with
/// [`PoolError::WriteRefused`], and nothing is written.
///
/// ```
/// use shm_pool::{Block, ExternalMemory, PoolError, WriteRefused};
/// struct Heap(Vec<u8>);
/// impl ExternalMemory for Heap {
///     fn bytes(&self) -> &[u8] { &self.0 }
///     fn bytes_mut(&mut self) -> &mut [u8] { &mut self.0 }
///     fn before_write(&mut self, offset: usize, _len: usize) -> Result<(), WriteRefused> {
///         if offset >= 4096 { Err(WriteRefused("the second page is read-only".into())) } else { Ok(()) }
///     }
/// }
/// let mut block = Block::from_external(Box::new(Heap(vec![0; 8192])), 100);
/// block.write_at(1, b"hi")?;
/// assert_eq!((block.len(), block.class(), &block.as_slice()[..3]), (8192, None, &b"\0hi"[..]));
/// assert!(matches!(block.write_at(5000, b"no"), Err(PoolError::WriteRefused(_))));
/// assert_eq!(&block.as_slice()[5000..5002], b"\0\0");
/// # Ok::<(), shm_pool::PoolError>(())
/// ```
pub trait ExternalMemory: Send + Sync {
    /// All the bytes.
    fn bytes(&self) -> &[u8];
    /// All the bytes, writable. [`ExternalMemory::before_write`] accepted the
    /// range about to change.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Told before `len` bytes at `offset` change (a mapped file writes its
    /// undo log here). An error refuses the write: the block writes nothing
    /// and reports [`PoolError::WriteRefused`]. The default accepts.
    ///
    /// # Errors
    /// [`WriteRefused`] when the change must not happen (its undo record
    /// could not be written).
    fn before_write(&mut self, offset: usize, len: usize) -> Result<(), WriteRefused> {
        let _ = (offset, len);
        Ok(())
    }
}

/// Why [`ExternalMemory::before_write`] refused a write (for a mapped region:
/// its undo record could not be written, e.g. the disk is full).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WriteRefused(pub String);

/// The memory behind a block.
enum Memory {
    /// From a pool, and going back to it.
    Pooled {
        raw: ManuallyDrop<RawBlock>,
        home: Home,
    },
    /// Owned memory from elsewhere ([`Block::from_external`]).
    External(Box<dyn ExternalMemory>),
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
    memory: Memory,
    dirty: usize,
    requested: usize,
}

impl Block {
    pub(crate) fn new(raw: RawBlock, home: Home, requested: usize) -> Self {
        Self {
            memory: Memory::Pooled {
                raw: ManuallyDrop::new(raw),
                home,
            },
            dirty: 0,
            requested,
        }
    }

    /// A block over memory that does not come from a pool (a mapped file):
    /// its bytes may already hold data, so the whole block counts as dirty.
    /// Dropping the block drops `memory`.
    pub fn from_external(memory: Box<dyn ExternalMemory>, requested: usize) -> Self {
        let dirty = memory.bytes().len();
        Self {
            memory: Memory::External(memory),
            dirty,
            requested,
        }
    }

    /// Whether the block owns external memory ([`Block::from_external`]).
    #[inline]
    pub fn is_external(&self) -> bool {
        matches!(self.memory, Memory::External(_))
    }

    /// Length in bytes: the capacity of its class, or for a large block the
    /// requested size rounded up to whole pages (for external memory, its length).
    #[inline]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// The address of a pooled block's first byte, as a raw pointer taken from
    /// the allocation itself rather than from a borrow of it: a reader that is
    /// kept from racing writers by other means (the transaction layer's
    /// two-phase locks) may read through it while the block lives, whatever
    /// borrows of the block come and go meanwhile. `None` for external memory
    /// (a mapped file), which can be remapped. Reading through it is `unsafe`
    /// and the reader's responsibility.
    ///
    /// ```
    /// use shm_pool::{BlockPool, PoolConfig, SizeClass};
    /// let pool = BlockPool::new(PoolConfig::with_blocks([1, 0, 0, 0]));
    /// let block = pool.allocate_class(SizeClass::B64)?;
    /// assert_eq!(block.pooled_base(), Some(block.as_slice().as_ptr()));
    /// pool.release(block);
    /// # Ok::<(), shm_pool::PoolError>(())
    /// ```
    #[inline]
    pub fn pooled_base(&self) -> Option<*const u8> {
        match &self.memory {
            Memory::Pooled { raw, .. } => Some(raw.base()),
            Memory::External(_) => None,
        }
    }

    /// As [`pooled_base`](Self::pooled_base), for writes made later through
    /// the pointer, outside any borrow of the block: raises the dirty mark to
    /// `len` first (clamped to the block), so that bytes written below it are
    /// zeroed when the block goes back to its pool. `None` for external memory,
    /// whose writes must go through [`write_at`](Self::write_at).
    ///
    /// ```
    /// use shm_pool::{BlockPool, PoolConfig, SizeClass};
    /// let pool = BlockPool::new(PoolConfig::with_blocks([1, 0, 0, 0]));
    /// let mut block = pool.allocate_class(SizeClass::B64)?;
    /// let base = block.pooled_base_for_writes(40);
    /// assert_eq!((base.map(|p| p.cast_const()), block.dirty_len()), (block.pooled_base(), 40));
    /// pool.release(block);
    /// # Ok::<(), shm_pool::PoolError>(())
    /// ```
    #[inline]
    pub fn pooled_base_for_writes(&mut self, len: usize) -> Option<*mut u8> {
        let base = match &self.memory {
            Memory::Pooled { raw, .. } => raw.base_mut(),
            Memory::External(_) => return None,
        };
        self.dirty = self.dirty.max(len.min(self.len()));
        Some(base)
    }

    /// Always `false`: the pool never hands out an empty block.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size class, or `None` for a large block (above 1 MiB) or external memory.
    #[inline]
    pub fn class(&self) -> Option<SizeClass> {
        match self.memory {
            Memory::Pooled {
                home: Home::Classed { class, .. },
                ..
            } => Some(class),
            _ => None,
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
        match &self.memory {
            Memory::Pooled { raw, .. } => raw.as_slice(),
            Memory::External(memory) => memory.bytes(),
        }
    }

    /// The whole block, writable. Marks the whole block dirty; prefer
    /// [`Block::write_at`] or [`Block::range_mut`] for partial writes.
    ///
    /// # Errors
    /// [`PoolError::WriteRefused`] when external memory refuses the change
    /// (never for pool memory).
    #[inline]
    pub fn as_mut_slice(&mut self) -> Result<&mut [u8], PoolError> {
        let len = self.len();
        self.range_mut(0, len)
    }

    /// `len` bytes at `offset`, writable; raises the dirty mark to `offset + len`.
    ///
    /// # Errors
    /// [`PoolError::OutOfBounds`] if the range does not lie inside the block,
    /// [`PoolError::WriteRefused`] when external memory refuses the change.
    pub fn range_mut(&mut self, offset: usize, len: usize) -> Result<&mut [u8], PoolError> {
        let end = self.checked_end(offset, len)?;
        let dirty = self.dirty.max(end);
        let bytes = match &mut self.memory {
            Memory::Pooled { raw, .. } => &mut raw.as_mut_slice()[offset..end],
            Memory::External(memory) => {
                memory.before_write(offset, end - offset)?;
                &mut memory.bytes_mut()[offset..end]
            }
        };
        self.dirty = dirty;
        Ok(bytes)
    }

    /// Copies `data` into the block at `offset`; raises the dirty mark to
    /// `offset + data.len()`.
    ///
    /// # Errors
    /// [`PoolError::OutOfBounds`] if the data does not fit at `offset`,
    /// [`PoolError::WriteRefused`] when external memory refuses the change;
    /// nothing is written then.
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
    ///
    /// # Errors
    /// [`PoolError::WriteRefused`] when external memory refuses the change
    /// (never for pool memory); nothing is zeroed then.
    pub fn clear(&mut self) -> Result<(), PoolError> {
        let dirty = self.dirty.min(self.len());
        if dirty > 0 {
            self.range_mut(0, dirty)?.fill(0);
        }
        self.dirty = 0;
        Ok(())
    }

    /// Address of the first byte, for alignment checks and diagnostics.
    #[inline]
    pub fn addr(&self) -> usize {
        self.as_slice().as_ptr() as usize
    }

    fn checked_end(&self, offset: usize, len: usize) -> Result<usize, PoolError> {
        let capacity = self.len();
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
        if let Memory::Pooled { raw, home } = &mut self.memory {
            // SAFETY: `raw` is taken exactly once, here, and `self` is never used
            // again after `drop`, so it cannot be read or dropped twice.
            let raw = unsafe { ManuallyDrop::take(raw) };
            match home {
                Home::Classed { shard, .. } => shard.take_back(raw, self.dirty, self.requested),
                Home::Large(pool) => pool.take_back_large(raw, self.dirty, self.requested),
            }
        }
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("class", &self.class())
            .field("external", &self.is_external())
            .field("len", &self.len())
            .field("requested", &self.requested)
            .field("dirty_len", &self.dirty)
            .finish_non_exhaustive()
    }
}
