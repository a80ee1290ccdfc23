//! A region's bytes for a transaction that holds the region by its two-phase
//! lock, which already excludes every other writer, resizer and freer, instead
//! of its slot lock (taking that again for each 32-byte access cost about a
//! hundred instructions): the one place of this crate with `unsafe`.
#![allow(unsafe_code)]

use crate::guard::copy_out;

/// The address and length of a region's live bytes when they were captured
/// ([`RegionReadGuard::raw_bytes`](crate::RegionReadGuard::raw_bytes), or
/// [`RegionWriteGuard::raw_bytes_for_writes`](crate::RegionWriteGuard::raw_bytes_for_writes)
/// for a capture that may also write). Capturing is safe; reading or writing
/// through it is not (see [`read`](Self::read) and [`write`](Self::write)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawRegionBytes {
    ptr: *mut u8,
    len: usize,
    /// Captured for writes: the block's dirty mark covers all `len` bytes.
    writable: bool,
}

// SAFETY: a plain address and length: sending or sharing one reads nothing.
// The only read through it is the `unsafe fn read`, whose contract makes the
// caller answer for the bytes.
unsafe impl Send for RawRegionBytes {}
// SAFETY: as for `Send`.
unsafe impl Sync for RawRegionBytes {}

impl RawRegionBytes {
    /// `len` live bytes at `ptr`, the pooled block's own pointer (see
    /// [`Block::pooled_base`](shm_pool::Block::pooled_base)); `writable` only
    /// when the block's dirty mark was raised to `len` (see
    /// [`Block::pooled_base_for_writes`](shm_pool::Block::pooled_base_for_writes)).
    pub(crate) fn new(ptr: *mut u8, len: usize, writable: bool) -> Self {
        Self { ptr, len, writable }
    }

    /// Whether it was captured for writes.
    pub fn is_writable(&self) -> bool {
        self.writable
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

    /// Copies `data` into the bytes at `offset`; returns `false` (writing
    /// nothing) unless this was captured for writes and `offset + data.len()`
    /// lies within the captured bytes. It never grows a region.
    ///
    /// # Safety
    /// For the whole call, the `len` bytes this was captured from must still
    /// be live region bytes that nobody else reads or writes: the region's
    /// block not released to its pool, moved by growth or shrunk, and no other
    /// reader or writer holding it. A holder of the region's two-phase lock in
    /// exclusive mode has that from every other party; it must also not have
    /// resized or freed the region itself since the capture.
    #[inline]
    pub unsafe fn write(&self, offset: u64, data: &[u8]) -> bool {
        let fits = usize::try_from(offset)
            .ok()
            .and_then(|start| start.checked_add(data.len()).map(|end| (start, end)))
            .filter(|&(_, end)| end <= self.len);
        let Some((start, _)) = fits.filter(|_| self.writable) else {
            return false;
        };
        // SAFETY: `start + data.len() ≤ len`, and `ptr..ptr + len` were the
        // live bytes of a pooled block at capture, `ptr` carrying the
        // allocation's own provenance; by the caller's contract they still
        // are and nobody else touches them during this call, so no reference
        // to them is alive. `data` is a caller's slice, which cannot overlap
        // them (no reference to them exists). The dirty mark covers them
        // (`for_writes`), so the pool zeroes them when the block returns.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(start), data.len());
        }
        true
    }
}
