use bitflags::bitflags;

bitflags! {
    /// What a context may do with a region.
    ///
    /// ```
    /// use shm_primitives::Permissions;
    /// assert!(Permissions::read_write().contains(Permissions::WRITE));
    /// assert!(!Permissions::read_only().contains(Permissions::WRITE));
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Permissions: u8 {
        /// Read the region's bytes (SHARED_READ, SHARED_MAP).
        const READ = 1;
        /// Write the region's bytes (SHARED_WRITE).
        const WRITE = 1 << 1;
        /// Reserved for code execution from a region; no opcode uses it yet.
        const EXECUTE = 1 << 2;
    }
}

impl Permissions {
    /// Read only.
    pub const fn read_only() -> Self {
        Self::READ
    }
    /// Read and write.
    pub const fn read_write() -> Self {
        Self::READ.union(Self::WRITE)
    }
    /// Read, write and execute.
    pub const fn full_access() -> Self {
        Self::all()
    }
}

bitflags! {
    /// The `flags` operand of `SHARED_ALLOC` (spec §5). Unknown bits make the opcode halt.
    ///
    /// ```
    /// use shm_primitives::{AllocFlags, U256};
    /// assert!(AllocFlags::from_word(U256::from(0b1000)).unwrap().public_read());
    /// assert!(AllocFlags::from_word(U256::from(1 << 4)).is_none());
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct AllocFlags: u8 {
        /// Lives across transactions until freed.
        const PERSISTENT = 1;
        /// WRITE past the end grows the region (up to `max_region_size`).
        const AUTO_GROW = 1 << 1;
        /// Any context may read.
        const PUBLIC_READ = 1 << 2;
        /// Any context may write (implies public read).
        const PUBLIC_WRITE = 1 << 3;
    }
}

impl AllocFlags {
    /// Parses a stack word; `None` if any unknown bit is set.
    pub fn from_word(word: alloy_primitives::U256) -> Option<Self> {
        let raw: u8 = u8::try_from(word).ok()?;
        Self::from_bits(raw)
    }
    /// Public read, given directly or implied by public write.
    pub const fn public_read(self) -> bool {
        self.intersects(Self::PUBLIC_READ.union(Self::PUBLIC_WRITE))
    }
    /// Public write.
    pub const fn public_write(self) -> bool {
        self.contains(Self::PUBLIC_WRITE)
    }
}

bitflags! {
    /// The `options` operand of `SHARED_MAP` (spec §5). Unknown bits make the opcode halt.
    ///
    /// ```
    /// use shm_primitives::MapOptions;
    /// let o = MapOptions::COPY_ON_WRITE | MapOptions::READ_ONLY;
    /// assert!(o.read_only() && !o.copy_on_write()); // read-only wins
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct MapOptions: u8 {
        /// Private pages on first write.
        const COPY_ON_WRITE = 1;
        /// No writes through this mapping.
        const READ_ONLY = 1 << 1;
        /// Performance hint, no effect on results or gas.
        const LAZY = 1 << 2;
        /// Performance hint, no effect on results or gas.
        const PREFETCH = 1 << 3;
    }
}

impl MapOptions {
    /// Parses a stack word; `None` if any unknown bit is set.
    pub fn from_word(word: alloy_primitives::U256) -> Option<Self> {
        let raw: u8 = u8::try_from(word).ok()?;
        Self::from_bits(raw)
    }
    /// Read-only mapping (wins over copy-on-write).
    pub const fn read_only(self) -> bool {
        self.contains(Self::READ_ONLY)
    }
    /// Copy-on-write mapping (only when not read-only).
    pub const fn copy_on_write(self) -> bool {
        self.contains(Self::COPY_ON_WRITE) && !self.read_only()
    }
}

/// How strictly bytecode access is checked (spec §7). Ordered: each level adds
/// checks to the one below it.
///
/// ```
/// use shm_primitives::SecurityLevel;
/// assert!(SecurityLevel::Strict > SecurityLevel::Basic);
/// assert_eq!("paranoid".parse::<SecurityLevel>().unwrap(), SecurityLevel::Paranoid);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SecurityLevel {
    /// Handles, bounds and the static rule only.
    None,
    /// Plus owner, public flags and host grants.
    #[default]
    Basic,
    /// Plus a mapping before READ/WRITE; only the owner frees.
    Strict,
    /// Plus zeroing on final free, checksums of mapped files, every refusal logged.
    Paranoid,
}

/// Error parsing a [`SecurityLevel`] or [`Compression`] name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown {what} `{name}` (expected one of: {expected})")]
pub struct ParseNameError {
    what: &'static str,
    name: String,
    expected: &'static str,
}

impl core::str::FromStr for SecurityLevel {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "basic" => Ok(Self::Basic),
            "strict" => Ok(Self::Strict),
            "paranoid" => Ok(Self::Paranoid),
            _ => Err(ParseNameError {
                what: "security level",
                name: s.to_string(),
                expected: "none, basic, strict, paranoid",
            }),
        }
    }
}

/// Compression applied when a region is snapshotted to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Stored as is.
    #[default]
    None,
    /// LZ4 block format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl core::str::FromStr for Compression {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            _ => Err(ParseNameError {
                what: "compression",
                name: s.to_string(),
                expected: "none, lz4, zstd",
            }),
        }
    }
}

/// Options of a region, fixed at creation (spec §4, §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegionOptions {
    /// Mappings made with the copy-on-write option get private pages.
    pub copy_on_write: bool,
    /// WRITE past the end grows the region.
    pub auto_grow: bool,
    /// Survives the end of the transaction that made it.
    pub persistent: bool,
    /// Any context may read.
    pub public_read: bool,
    /// Any context may write.
    pub public_write: bool,
    /// Compression used when snapshotted to disk.
    pub compression: Compression,
}

impl Default for RegionOptions {
    fn default() -> Self {
        Self {
            copy_on_write: true,
            auto_grow: false,
            persistent: false,
            public_read: false,
            public_write: false,
            compression: Compression::None,
        }
    }
}

impl From<AllocFlags> for RegionOptions {
    fn from(flags: AllocFlags) -> Self {
        Self {
            persistent: flags.contains(AllocFlags::PERSISTENT),
            auto_grow: flags.contains(AllocFlags::AUTO_GROW),
            public_read: flags.public_read(),
            public_write: flags.public_write(),
            ..Self::default()
        }
    }
}

/// The kind of access being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// SHARED_READ, or mapping a region.
    Read,
    /// SHARED_WRITE.
    Write,
    /// SHARED_FREE.
    Free,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;

    #[test]
    fn flag_words() {
        assert_eq!(
            AllocFlags::from_word(U256::from(0xf)),
            Some(AllocFlags::all())
        );
        assert_eq!(AllocFlags::from_word(U256::from(0x10)), None);
        assert_eq!(AllocFlags::from_word(U256::from(1) << 200), None);
        assert_eq!(MapOptions::from_word(U256::from(0x10)), None);
        assert!(MapOptions::from_word(U256::from(1))
            .unwrap()
            .copy_on_write());
        let o: RegionOptions = AllocFlags::PUBLIC_WRITE.into();
        assert!(o.public_read && o.public_write && !o.persistent);
    }
}
