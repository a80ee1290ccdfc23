//! Why a shared-memory opcode halted.

use core::fmt;

use serde::Serialize;

/// The precise cause of an exceptional halt of a shared-memory opcode
/// (spec §5), counted per cause by the [`MetricsRecorder`](crate::MetricsRecorder).
///
/// ```
/// use shm_metrics::HaltCause;
/// assert_eq!(HaltCause::StaticWrite.name(), "static_write");
/// assert_eq!(HaltCause::ALL[HaltCause::RegionBusy.index()], HaltCause::RegionBusy);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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
    /// The region's lock could not be had within the configured wait.
    RegionBusy,
}

impl HaltCause {
    /// Every cause, in declaration order; `ALL[c.index()] == c`.
    pub const ALL: [HaltCause; 8] = [
        HaltCause::InvalidHandle,
        HaltCause::FreedRegion,
        HaltCause::NoMapping,
        HaltCause::PermissionDenied,
        HaltCause::StaticWrite,
        HaltCause::BadFlags,
        HaltCause::OffsetOverflow,
        HaltCause::RegionBusy,
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
        }
    }
}

impl fmt::Display for HaltCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

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
}

impl HaltCounts {
    /// Builds the counts from an array indexed by [`HaltCause::index`].
    pub const fn from_array(counts: [u64; 8]) -> Self {
        let [invalid_handle, freed_region, no_mapping, permission_denied, static_write, bad_flags, offset_overflow, region_busy] =
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
        let counts = HaltCounts::from_array([1, 2, 3, 4, 5, 6, 7, 8]);
        for cause in HaltCause::ALL {
            assert_eq!(counts.get(cause), cause.index() as u64 + 1, "{cause:?}");
        }
        assert_eq!(counts.total(), 36);
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
