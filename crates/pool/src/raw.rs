//! One owned, zero-initialised allocation from the system allocator.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Memory obtained with `alloc_zeroed(layout)` and given back with
/// `dealloc(ptr, layout)` when dropped. It is the only owner of its bytes.
pub(crate) struct RawBlock {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a `RawBlock` is the sole owner of its allocation (like a `Box<[u8]>`);
// shared references only read the bytes and every write needs `&mut self`.
unsafe impl Send for RawBlock {}
// SAFETY: as above: `&RawBlock` offers read-only access, so sharing it is sound.
unsafe impl Sync for RawBlock {}

impl RawBlock {
    /// Allocates `layout.size()` zero bytes, or `None` when the system refuses
    /// or the layout is empty.
    pub(crate) fn alloc_zeroed(layout: Layout) -> Option<Self> {
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: `layout` has a non-zero size, checked just above.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        NonNull::new(ptr).map(|ptr| Self { ptr, layout })
    }

    /// Length in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    /// The allocation's own address, as a raw pointer with the allocation's
    /// provenance (not derived from a reference, so later borrows of the block
    /// do not retire it).
    #[inline]
    pub(crate) fn base(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The allocation's own pointer, for writes through it: it carries the
    /// allocation's provenance, not a borrow's. Writing through it is the
    /// caller's `unsafe` business.
    #[inline]
    pub(crate) fn base_mut(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised bytes (zeroed at
        // allocation, written only through `as_mut_slice`) owned by `self`, and
        // the returned borrow keeps `self` alive and unaliased by writers.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }

    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// Zeroes the first `len` bytes (clamped to the block).
    #[inline]
    pub(crate) fn zero_prefix(&mut self, len: usize) {
        let len = len.min(self.len());
        self.as_mut_slice()[..len].fill(0);
    }

    /// Zeroes the first `len` bytes in a way the optimiser may not drop even if
    /// the memory is deallocated right after (Paranoid scrubbing).
    pub(crate) fn scrub_prefix(&mut self, len: usize) {
        self.zero_prefix(len);
        std::hint::black_box(self.as_slice());
    }
}

impl Drop for RawBlock {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed(self.layout)` and is freed only
        // here, once, with that same layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
