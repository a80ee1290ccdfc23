//! Halts counted per cause.

use serde::Serialize;
use shm_primitives::HaltCause;

/// Halts counted per [`HaltCause`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HaltCounts {
    /// [`HaltCause::InvalidHandle`].
    pub invalid_handle: u64,
    /// [`HaltCause::FreedRegion`].
    pub freed_region: u64,
    /// [`HaltCause::NoMapping`].
    pub no_mapping: u64,
    /// [`HaltCause::PermissionDenied`].
    pub permission_denied: u64,
    /// [`HaltCause::StaticWrite`].
    pub static_write: u64,
    /// [`HaltCause::BadFlags`].
    pub bad_flags: u64,
    /// [`HaltCause::OffsetOverflow`].
    pub offset_overflow: u64,
    /// [`HaltCause::RegionBusy`].
    pub region_busy: u64,
    /// [`HaltCause::JournalFailed`].
    pub journal_failed: u64,
    /// [`HaltCause::JournalFull`].
    pub journal_full: u64,
}

impl HaltCounts {
    /// Builds the counts from an array indexed by [`HaltCause::index`].
    pub const fn from_array(counts: [u64; HaltCause::ALL.len()]) -> Self {
        let [invalid_handle, freed_region, no_mapping, permission_denied, static_write, bad_flags, offset_overflow, region_busy, journal_failed, journal_full] =
            counts;
        Self {
            invalid_handle,
            freed_region,
            no_mapping,
            permission_denied,
            static_write,
            bad_flags,
            offset_overflow,
            region_busy,
            journal_failed,
            journal_full,
        }
    }

    /// Halts with `cause`.
    pub const fn get(&self, cause: HaltCause) -> u64 {
        match cause {
            HaltCause::InvalidHandle => self.invalid_handle,
            HaltCause::FreedRegion => self.freed_region,
            HaltCause::NoMapping => self.no_mapping,
            HaltCause::PermissionDenied => self.permission_denied,
            HaltCause::StaticWrite => self.static_write,
            HaltCause::BadFlags => self.bad_flags,
            HaltCause::OffsetOverflow => self.offset_overflow,
            HaltCause::RegionBusy => self.region_busy,
            HaltCause::JournalFailed => self.journal_failed,
            HaltCause::JournalFull => self.journal_full,
        }
    }

    /// Halts of every cause.
    pub fn total(&self) -> u64 {
        HaltCause::ALL
            .iter()
            .map(|&cause| self.get(cause))
            .fold(0, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_array_and_get_agree_on_every_cause() {
        let counts = HaltCounts::from_array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        for cause in HaltCause::ALL {
            assert_eq!(counts.get(cause), cause.index() as u64 + 1, "{cause:?}");
        }
        assert_eq!(counts.total(), 55);
    }

    #[test]
    fn names_are_distinct_snake_case_and_match_serde() {
        let mut names: Vec<_> = HaltCause::ALL.iter().map(|c| c.name()).collect();
        for (cause, name) in HaltCause::ALL.iter().zip(&names) {
            assert!(name.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
            assert_eq!(serde_json::to_string(cause).unwrap(), format!("\"{name}\""));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HaltCause::ALL.len());
    }
}
