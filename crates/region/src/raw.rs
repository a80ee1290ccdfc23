//! A region's bytes for a reader that holds the region by its transaction
//! lock instead of its slot lock: the one place of this crate with `unsafe`.
//!
//! A transaction that holds a region's two-phase lock already excludes every
//! other writer, resizer and freer of it; taking the slot's lock again for each
//! 32-byte read cost two atomic operations and about a hundred instructions.
//! The transaction layer keeps a [`RawRegionBytes`] per resolved region and
//! reads through it while its own bookkeeping proves the bytes are still there.
#![allow(unsafe_code)]

use crate::guard::copy_out;

/// The address and length of a region's live bytes when they were captured
/// ([`RegionReadGuard::raw_bytes`](crate::RegionReadGuard::raw_bytes)).
/// Capturing is safe; reading through it is not (see [`read`](Self::read)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawRegionBytes {
    ptr: *const u8,
    len: usize,
}

// SAFETY: a plain address and length: sending or sharing one reads nothing.
// The only read through it is the `unsafe fn read`, whose contract makes the
// caller answer for the bytes.
unsafe impl Send for RawRegionBytes {}
// SAFETY: as for `Send`.
unsafe impl Sync for RawRegionBytes {}

impl RawRegionBytes {
    /// `len` live bytes at `base`, the pooled block's own pointer (see
    /// [`Block::pooled_base`](shm_pool::Block::pooled_base)).
    pub(crate) fn new(base: *const u8, len: usize) -> Self {
        Self { ptr: base, len }
    }

    /// The region's size when captured.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region was empty when captured (never, for a live region).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the bytes at `offset` into `buf`, zero past the end, as
    /// [`RegionReadGuard::read`](crate::RegionReadGuard::read) does; returns
    /// how many came from the region, or `None` when `offset + buf.len()`
    /// overflows 64 bits.
    ///
    /// # Safety
    /// For the whole call, the `len` bytes this was captured from must still
    /// be live region bytes that nobody writes: the region's block not
    /// released to its pool, moved by growth or shrunk, and no writer holding
    /// it. A holder of the region's two-phase lock (shared or exclusive) has
    /// that from every other party; it must also not have resized, freed or
    /// written the region itself since the capture.
    #[inline]
    pub unsafe fn read(&self, offset: u64, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: `ptr..ptr + len` were the live bytes of a pooled block at
        // capture, `ptr` carrying the allocation's own provenance, and by the
        // caller's contract they still are and nobody writes them during this
        // call; `u8` has no invalid values and any alignment.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        copy_out(bytes, offset, buf).ok()
    }
}
