//! Why a shared-memory opcode halted.

use core::fmt;

/// The precise cause of an exceptional halt of a shared-memory opcode
/// (spec §5), reported by `evm run` and counted per cause by `shm-metrics`.
///
/// ```
/// use shm_primitives::HaltCause;
/// assert_eq!(HaltCause::StaticWrite.name(), "static_write");
/// assert_eq!(HaltCause::ALL[HaltCause::RegionBusy.index()], HaltCause::RegionBusy);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HaltCause {
    /// The handle names nothing (index or generation 0, upper bits set, unknown slot).
    InvalidHandle,
    /// The handle named a region that has been freed.
    FreedRegion,
    /// Strict: READ or WRITE without a mapping.
    NoMapping,
    /// The context lacks the permission the access needs.
    PermissionDenied,
    /// ALLOC, FREE or WRITE in a static context.
    StaticWrite,
    /// Unknown bits in ALLOC flags or MAP options.
    BadFlags,
    /// `region_offset + size` above 2^64 − 1.
    OffsetOverflow,
    /// The region's lock could not be had within the transaction's wait budget
    /// (spec §6); node-local, never part of consensus.
    RegionBusy,
    /// A mapped region's undo record could not be written (a full disk, a
    /// damaged file): the write did not happen (spec §6).
    JournalFailed,
    /// The transaction's revert journal reached the configured
    /// `max_journal_bytes` (spec §8's bound on host memory per transaction).
    JournalFull,
}

impl HaltCause {
    /// Every cause, in declaration order; `ALL[c.index()] == c`.
    pub const ALL: [HaltCause; 10] = [
        HaltCause::InvalidHandle,
        HaltCause::FreedRegion,
        HaltCause::NoMapping,
        HaltCause::PermissionDenied,
        HaltCause::StaticWrite,
        HaltCause::BadFlags,
        HaltCause::OffsetOverflow,
        HaltCause::RegionBusy,
        HaltCause::JournalFailed,
        HaltCause::JournalFull,
    ];

    /// Position in [`HaltCause::ALL`].
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Snake-case name, as used in the Prometheus `cause` label and in serde.
    pub const fn name(self) -> &'static str {
        match self {
            HaltCause::InvalidHandle => "invalid_handle",
            HaltCause::FreedRegion => "freed_region",
            HaltCause::NoMapping => "no_mapping",
            HaltCause::PermissionDenied => "permission_denied",
            HaltCause::StaticWrite => "static_write",
            HaltCause::BadFlags => "bad_flags",
            HaltCause::OffsetOverflow => "offset_overflow",
            HaltCause::RegionBusy => "region_busy",
            HaltCause::JournalFailed => "journal_failed",
            HaltCause::JournalFull => "journal_full",
        }
    }

    /// A short human description, as `evm run` reports it.
    pub const fn description(self) -> &'static str {
        match self {
            HaltCause::InvalidHandle => "invalid region handle",
            HaltCause::FreedRegion => "region was freed",
            HaltCause::NoMapping => "region is not mapped in this context",
            HaltCause::PermissionDenied => "permission denied",
            HaltCause::StaticWrite => "state change in a static context",
            HaltCause::BadFlags => "unknown flag or option bits",
            HaltCause::OffsetOverflow => "region offset + size overflows 64 bits",
            HaltCause::RegionBusy => "region busy: lock wait timed out",
            HaltCause::JournalFailed => "region journal failed",
            HaltCause::JournalFull => "shared-memory journal full",
        }
    }
}

impl fmt::Display for HaltCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_snake_case() {
        let mut names: Vec<_> = HaltCause::ALL.iter().map(|c| c.name()).collect();
        for (index, cause) in HaltCause::ALL.iter().enumerate() {
            assert_eq!(cause.index(), index);
            assert!(cause
                .name()
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch == '_'));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HaltCause::ALL.len());
    }
}
