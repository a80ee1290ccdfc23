use alloy_primitives::U256;
use core::fmt;

/// A generation-checked name for a region, as it appears on the EVM stack.
///
/// The stack form is a `u256` whose low 64 bits are `generation << 32 | index` and
/// whose upper 192 bits are zero. Index 0 and generation 0 name nothing, so the
/// all-zero word (what a failed `SHARED_ALLOC` pushes) is never a handle.
///
/// ```
/// use shm_primitives::{RegionHandle, U256};
/// let h = RegionHandle::new(3, 9).unwrap();
/// assert_eq!(h.to_u64(), (9u64 << 32) | 3);
/// assert!(RegionHandle::from_u256(U256::ZERO).is_none());
/// assert!(RegionHandle::from_u256(U256::from(1u128 << 64 | 1 << 32 | 1)).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionHandle {
    index: u32,
    generation: u32,
}

impl RegionHandle {
    /// A handle for slot `index` at `generation`; `None` when either is zero.
    #[inline]
    pub const fn new(index: u32, generation: u32) -> Option<Self> {
        if index == 0 || generation == 0 {
            None
        } else {
            Some(Self { index, generation })
        }
    }

    /// The registry slot this handle names (never 0).
    #[inline]
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The generation of the slot this handle was issued for (never 0).
    #[inline]
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// The packed 64-bit form: `generation << 32 | index`.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }

    /// Parses the packed 64-bit form; `None` if it names nothing.
    #[inline]
    pub const fn from_u64(raw: u64) -> Option<Self> {
        Self::new(raw as u32, (raw >> 32) as u32)
    }

    /// The stack form.
    #[inline]
    pub fn to_u256(self) -> U256 {
        U256::from(self.to_u64())
    }

    /// Parses the stack form; `None` if any of the upper 192 bits is set or it
    /// names nothing.
    #[inline]
    pub fn from_u256(word: U256) -> Option<Self> {
        let limbs = word.as_limbs();
        if limbs[1] | limbs[2] | limbs[3] != 0 {
            return None;
        }
        Self::from_u64(limbs[0])
    }
}

impl fmt::Debug for RegionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionHandle({}@{})", self.index, self.generation)
    }
}

impl fmt::Display for RegionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.to_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        let h = RegionHandle::new(u32::MAX, u32::MAX).unwrap();
        assert_eq!(RegionHandle::from_u64(h.to_u64()), Some(h));
        assert_eq!(RegionHandle::from_u256(h.to_u256()), Some(h));
        assert_eq!(RegionHandle::new(0, 1), None);
        assert_eq!(RegionHandle::new(1, 0), None);
        assert_eq!(RegionHandle::from_u64(1), None); // generation 0
        assert_eq!(RegionHandle::from_u64(1 << 32), None); // index 0
        assert_eq!(RegionHandle::from_u256(U256::MAX), None);
        assert_eq!(
            RegionHandle::from_u256(U256::from(1u64 << 32 | 5) | (U256::from(1) << 255)),
            None
        );
    }
}
