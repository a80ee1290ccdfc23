//! The one rule for how a write lands in a region, and when it grows it.

use core::ops::Range;

use crate::{words, PAGE_SIZE};

/// How a write of `len` bytes at `offset` lands in a region (spec §5): what
/// fits below the size, unless the region auto-grows, in which case it first
/// grows to `min(offset + len, max_size)` — but only when the write then lands
/// at least one byte (a zero-length write, or one starting at or past the
/// maximum size, never grows a region).
///
/// The same plan prices a `SHARED_WRITE` (growth words, pages to save) and
/// performs it, so the two can never disagree.
///
/// ```
/// use shm_primitives::WritePlan;
/// // 10 bytes at 60 into a 64-byte region that may grow to 100.
/// let plan = WritePlan::new(64, 100, true, 60, 10);
/// assert_eq!((plan.new_size, plan.written, plan.added_words()), (70, 10, 1));
/// // Without auto-grow only 4 bytes fit.
/// assert_eq!(WritePlan::new(64, 100, false, 60, 10).written, 4);
/// // Starting past the maximum: nothing lands, nothing grows.
/// let past = WritePlan::new(64, 100, true, 100, 10);
/// assert_eq!((past.new_size, past.written), (64, 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WritePlan {
    /// Where the write starts.
    pub offset: u64,
    /// The region's size before the write.
    pub size: u64,
    /// The region's size after the write (`size` unless it grows).
    pub new_size: u64,
    /// Bytes that land, from `offset` on.
    pub written: u64,
}

impl WritePlan {
    /// The plan for `len` bytes at `offset` into a region of `size` bytes that
    /// may grow to `max_size` when `auto_grow`. `offset + len` saturates (the
    /// caller has refused an overflowing range before).
    pub const fn new(size: u64, max_size: u64, auto_grow: bool, offset: u64, len: u64) -> Self {
        let end = offset.saturating_add(len);
        let mut new_size = size;
        if auto_grow && end > size {
            let target = if end < max_size { end } else { max_size };
            if target > size && offset < target {
                new_size = target;
            }
        }
        Self::landing(offset, size, new_size, end)
    }

    const fn landing(offset: u64, size: u64, new_size: u64, end: u64) -> Self {
        let written = if offset >= new_size {
            0
        } else if end < new_size {
            end - offset
        } else {
            new_size - offset
        };
        Self {
            offset,
            size,
            new_size,
            written,
        }
    }

    /// The same write when growth was refused (the pool had no room): it
    /// writes what fits in the current size.
    pub const fn without_growth(self) -> Self {
        Self::landing(
            self.offset,
            self.size,
            self.size,
            self.offset.saturating_add(self.written),
        )
    }

    /// Whether the region grows.
    pub const fn grows(&self) -> bool {
        self.new_size > self.size
    }

    /// Words of region memory the growth adds (what ALLOC's formula prices).
    pub const fn added_words(&self) -> u64 {
        words(self.new_size) - words(self.size)
    }

    /// The bytes the write changes that existed before it: the revert journal
    /// saves their pages (bytes added by growth are undone by shrinking).
    pub const fn existing(&self) -> Range<u64> {
        let end = self.offset + self.written;
        let end = if end < self.size { end } else { self.size };
        if self.offset >= end {
            0..0
        } else {
            self.offset..end
        }
    }

    /// The 4 KiB pages of [`existing`](Self::existing), first..=last, or
    /// `None` when the write changes no existing byte.
    pub const fn existing_pages(&self) -> Option<(u64, u64)> {
        let range = self.existing();
        if range.start >= range.end {
            return None;
        }
        let page = PAGE_SIZE as u64;
        Some((range.start / page, (range.end - 1) / page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_rules() {
        // Zero-length writes never grow.
        assert_eq!(WritePlan::new(64, 100, true, 64, 0).new_size, 64);
        // Growth is capped at the maximum, and what lands is what fits then.
        let capped = WritePlan::new(64, 100, true, 90, 20);
        assert_eq!((capped.new_size, capped.written), (100, 10));
        assert_eq!(capped.existing(), 0..0);
        // Refused growth writes what fits in the old size.
        let refused = WritePlan::new(64, 100, true, 60, 10).without_growth();
        assert_eq!((refused.new_size, refused.written), (64, 4));
        assert_eq!(refused.existing(), 60..64);
        // Pages of existing bytes only.
        let across = WritePlan::new(8192, 8192, false, 4090, 10);
        assert_eq!(across.existing_pages(), Some((0, 1)));
        assert_eq!(
            WritePlan::new(8192, 8192, false, 9000, 1).existing_pages(),
            None
        );
        // Saturating ends never overflow.
        assert_eq!(
            WritePlan::new(10, u64::MAX, true, u64::MAX - 1, 5).written,
            1
        );
    }
}
