//! The four block sizes a pool keeps.

use core::fmt;
use std::alloc::Layout;

/// One of the four block sizes a [`BlockPool`](crate::BlockPool) keeps ready.
///
/// ```
/// use shm_pool::SizeClass;
/// assert_eq!(SizeClass::for_size(100), Some(SizeClass::K4));
/// assert_eq!(SizeClass::K4.bytes(), 4096);
/// assert_eq!(SizeClass::for_size(2 << 20), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SizeClass {
    /// 64-byte blocks, 64-byte aligned (one cache line, two EVM words).
    B64,
    /// 4 KiB blocks, page-aligned.
    K4,
    /// 64 KiB blocks, page-aligned.
    K64,
    /// 1 MiB blocks, page-aligned.
    M1,
}

impl SizeClass {
    /// Every class, smallest first; `ALL[c.index()] == c`.
    pub const ALL: [SizeClass; 4] = [SizeClass::B64, SizeClass::K4, SizeClass::K64, SizeClass::M1];

    /// The largest class size: requests above it become one large allocation.
    pub const MAX_BYTES: usize = SizeClass::M1.bytes();

    /// Size of a block of this class in bytes.
    #[inline]
    pub const fn bytes(self) -> usize {
        match self {
            SizeClass::B64 => 64,
            SizeClass::K4 => 4 << 10,
            SizeClass::K64 => 64 << 10,
            SizeClass::M1 => 1 << 20,
        }
    }

    /// Alignment of a block of this class: 64 bytes for [`SizeClass::B64`],
    /// a page (4096 bytes) for the others.
    #[inline]
    pub const fn align(self) -> usize {
        match self {
            SizeClass::B64 => 64,
            _ => crate::PAGE_ALIGN,
        }
    }

    /// Size and alignment of a block of this class.
    #[inline]
    pub const fn layout(self) -> Layout {
        // SAFETY: `align()` is a power of two (64 or 4096) and `bytes()` is a
        // multiple of it no larger than 1 MiB, far below `isize::MAX`.
        unsafe { Layout::from_size_align_unchecked(self.bytes(), self.align()) }
    }

    /// Position of this class in [`SizeClass::ALL`] and in the per-class arrays
    /// of [`PoolConfig`](crate::PoolConfig) and [`PoolStats`](crate::PoolStats).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The smallest class whose blocks hold `len` bytes, or `None` above 1 MiB.
    /// A zero length maps to the smallest class.
    #[inline]
    pub fn for_size(len: usize) -> Option<SizeClass> {
        SizeClass::ALL
            .into_iter()
            .find(|class| len <= class.bytes())
    }

    /// The next larger class, if any (the order in which exhausted classes fall back).
    #[inline]
    pub const fn larger(self) -> Option<SizeClass> {
        match self {
            SizeClass::B64 => Some(SizeClass::K4),
            SizeClass::K4 => Some(SizeClass::K64),
            SizeClass::K64 => Some(SizeClass::M1),
            SizeClass::M1 => None,
        }
    }
}

impl fmt::Display for SizeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SizeClass::B64 => "64B",
            SizeClass::K4 => "4KiB",
            SizeClass::K64 => "64KiB",
            SizeClass::M1 => "1MiB",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_size_picks_smallest_fitting_class() {
        assert_eq!(SizeClass::for_size(0), Some(SizeClass::B64));
        assert_eq!(SizeClass::for_size(1), Some(SizeClass::B64));
        assert_eq!(SizeClass::for_size(64), Some(SizeClass::B64));
        assert_eq!(SizeClass::for_size(65), Some(SizeClass::K4));
        assert_eq!(SizeClass::for_size(4096), Some(SizeClass::K4));
        assert_eq!(SizeClass::for_size(4097), Some(SizeClass::K64));
        assert_eq!(SizeClass::for_size(65536), Some(SizeClass::K64));
        assert_eq!(SizeClass::for_size(65537), Some(SizeClass::M1));
        assert_eq!(SizeClass::for_size(1 << 20), Some(SizeClass::M1));
        assert_eq!(SizeClass::for_size((1 << 20) + 1), None);
        assert_eq!(SizeClass::for_size(usize::MAX), None);
    }

    #[test]
    fn all_is_indexed_and_ordered() {
        for (i, class) in SizeClass::ALL.into_iter().enumerate() {
            assert_eq!(class.index(), i);
            assert!(class.bytes().is_power_of_two());
            assert_eq!(class.bytes() % class.align(), 0);
            let checked = Layout::from_size_align(class.bytes(), class.align()).unwrap();
            assert_eq!(class.layout(), checked);
            if let Some(next) = class.larger() {
                assert!(next.bytes() > class.bytes());
                assert_eq!(next.index(), i + 1);
            }
        }
    }
}
