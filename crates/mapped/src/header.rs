//! The versioned header page at the start of every region file.
//!
//! Layout (little-endian; the header is one 4 KiB page so the data that
//! follows is page-aligned in the mapping):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `EVMSHMRG` |
//! | 8 | 4 | format version (2) |
//! | 12 | 4 | header length (4096) |
//! | 16 | 4 | handle index |
//! | 20 | 4 | handle generation |
//! | 24 | 8 | capacity: data bytes in the file |
//! | 32 | 8 | most the region may grow to |
//! | 40 | 20 | owner (context address) |
//! | 60 | 1 | owner permissions (READ 1, WRITE 2, EXECUTE 4) |
//! | 61 | 1 | options: persistent 1, auto-grow 2, public read 4, public write 8, copy-on-write 16, checksummed 32 |
//! | 62 | 1 | compression for snapshots (0 none, 1 LZ4, 2 Zstd) |
//! | 63 | 1 | reserved (0) |
//! | 64 | 4 | pid of the creating process |
//! | 68 | 2 | name length (0: anonymous) |
//! | 70 | 2 | reserved (0) |
//! | 72 | 8 | created, ms since the Unix epoch |
//! | 80 | 256 | name (UTF-8), zero-padded |
//! | 336 | 4 | CRC-32 of bytes 0..336 (the fixed part above) |
//! | 512 | 8 | logical size (mutable, set at commit) |
//! | 520 | 8 | commit generation (mutable, +1 per commit that changed bytes) |
//! | 528 | 8 | last access, ms since the Unix epoch (mutable) |
//! | 536 | 8 | CRC-32 of the committed contents, Paranoid (mutable) |
//! | 544 | 4 | pid of the process holding the lock, 0 when free (diagnostic) |
//! | 552 | 8 | 1 while a transaction has undo records in the log, 2 while a message is copied in without them (mutable) |
//! | 560 | 4 | processes sleeping in `wait_for_commit` (mutable) |
//! | 568 | 4 | the lock: 0 free, else the lease id of the holder (mutable, a futex word) |
//! | 572 | 4 | processes sleeping for the lock (mutable) |
//! | 576 | 8 | 1 once the region was freed: every mapping of it is stale (mutable) |
//!
//! The fixed part never changes after creation and is checksummed; the mutable
//! words are only written by the holder of the region's lock, as aligned atomics.

use std::path::Path;

use shm_primitives::{Address, Compression, Permissions, RegionHandle, RegionOptions};

use crate::MappedError;

/// Magic bytes at the start of a region file.
pub const REGION_MAGIC: [u8; 8] = *b"EVMSHMRG";
/// The format version this build writes and reads.
/// (Version 2: the lock is a word in the header, not a `flock`; a version-1
/// process would not see it, so the two never share a file.)
pub const FORMAT_VERSION: u32 = 2;
/// Bytes of the header page; the data starts here.
pub const HEADER_LEN: usize = 4096;
/// Longest region name the header holds.
pub const MAX_NAME_LEN: usize = 256;

const FIXED_LEN: usize = 336;
pub(crate) const OFF_SIZE: usize = 512;
pub(crate) const OFF_COMMIT: usize = 520;
pub(crate) const OFF_ACCESS: usize = 528;
pub(crate) const OFF_CHECKSUM: usize = 536;
pub(crate) const OFF_LOCK_PID: usize = 544;
pub(crate) const OFF_IN_TX: usize = 552;
pub(crate) const OFF_WAITERS: usize = 560;
pub(crate) const OFF_LOCK: usize = 568;
pub(crate) const OFF_LOCK_WAITERS: usize = 572;
pub(crate) const OFF_FREED: usize = 576;

const OPT_PERSISTENT: u8 = 1;
const OPT_AUTO_GROW: u8 = 2;
const OPT_PUBLIC_READ: u8 = 4;
const OPT_PUBLIC_WRITE: u8 = 8;
const OPT_COW: u8 = 16;
const OPT_CHECKSUMMED: u8 = 32;

/// The fixed part of a region file's header: what a region is, set at creation.
///
/// ```
/// use shm_mapped::{RegionHeader, HEADER_LEN};
/// use shm_primitives::{Address, Permissions, RegionHandle, RegionOptions};
///
/// let header = RegionHeader::new(RegionHandle::new(3, 1).unwrap(), 8192, Address::repeat_byte(7))
///     .named("prices")?;
/// let page = header.encode();
/// assert_eq!(page.len(), HEADER_LEN);
/// assert_eq!(RegionHeader::decode(&page, "r3".as_ref())?, header);
/// # Ok::<(), shm_mapped::MappedError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionHeader {
    /// The handle the region has in every attached process.
    pub handle: RegionHandle,
    /// Data bytes in the file (page-rounded maximum size).
    pub capacity: u64,
    /// Most the region may grow to.
    pub max_size: u64,
    /// The owning context.
    pub owner: Address,
    /// The owner's rights.
    pub permissions: Permissions,
    /// Options fixed at creation (persistence, public flags, compression, …).
    pub options: RegionOptions,
    /// Whether a CRC-32 of the contents is kept at each commit (Paranoid).
    pub checksummed: bool,
    /// Pid of the process that created it.
    pub creator_pid: u32,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Its name, if any.
    pub name: Option<String>,
}

impl RegionHeader {
    /// A header for an anonymous region of `capacity` data bytes (rounded up
    /// to whole pages) owned by `owner`, read-write, default options, made by
    /// this process now.
    pub fn new(handle: RegionHandle, capacity: u64, owner: Address) -> Self {
        let capacity = capacity.div_ceil(4096).max(1) * 4096;
        Self {
            handle,
            capacity,
            max_size: capacity,
            owner,
            permissions: Permissions::read_write(),
            options: RegionOptions::default(),
            checksummed: false,
            creator_pid: std::process::id(),
            created_ms: crate::now_ms(),
            name: None,
        }
    }

    /// The same header, named.
    ///
    /// # Errors
    /// [`MappedError::NameTooLong`].
    pub fn named(mut self, name: impl Into<String>) -> Result<Self, MappedError> {
        let name = name.into();
        if name.len() > MAX_NAME_LEN {
            return Err(MappedError::NameTooLong {
                len: name.len(),
                max: MAX_NAME_LEN,
            });
        }
        self.name = Some(name);
        Ok(self)
    }

    /// The header page: the fixed part, its checksum, and zeroed mutable words.
    pub fn encode(&self) -> Vec<u8> {
        let mut page = vec![0u8; HEADER_LEN];
        page[0..8].copy_from_slice(&REGION_MAGIC);
        page[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        page[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        page[16..20].copy_from_slice(&self.handle.index().to_le_bytes());
        page[20..24].copy_from_slice(&self.handle.generation().to_le_bytes());
        page[24..32].copy_from_slice(&self.capacity.to_le_bytes());
        page[32..40].copy_from_slice(&self.max_size.to_le_bytes());
        page[40..60].copy_from_slice(self.owner.as_slice());
        page[60] = self.permissions.bits();
        page[61] = self.option_bits();
        page[62] = compression_code(self.options.compression);
        page[64..68].copy_from_slice(&self.creator_pid.to_le_bytes());
        let name = self.name.as_deref().unwrap_or("").as_bytes();
        let name_len = name.len().min(MAX_NAME_LEN);
        page[68..70].copy_from_slice(&(name_len as u16).to_le_bytes());
        page[72..80].copy_from_slice(&self.created_ms.to_le_bytes());
        page[80..80 + name_len].copy_from_slice(&name[..name_len]);
        let crc = crc32fast::hash(&page[..FIXED_LEN]);
        page[FIXED_LEN..FIXED_LEN + 4].copy_from_slice(&crc.to_le_bytes());
        page
    }

    fn option_bits(&self) -> u8 {
        let o = &self.options;
        let mut bits = 0;
        for (on, bit) in [
            (o.persistent, OPT_PERSISTENT),
            (o.auto_grow, OPT_AUTO_GROW),
            (o.public_read, OPT_PUBLIC_READ),
            (o.public_write, OPT_PUBLIC_WRITE),
            (o.copy_on_write, OPT_COW),
            (self.checksummed, OPT_CHECKSUMMED),
        ] {
            if on {
                bits |= bit;
            }
        }
        bits
    }

    /// Parses and validates a header page read from `path` (named in errors).
    ///
    /// # Errors
    /// [`MappedError::Truncated`] (fewer than [`HEADER_LEN`] bytes),
    /// [`MappedError::BadMagic`], [`MappedError::WrongVersion`],
    /// [`MappedError::CorruptHeader`].
    pub fn decode(page: &[u8], path: &Path) -> Result<Self, MappedError> {
        let corrupt = |reason: &str| MappedError::CorruptHeader {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        if page.len() < HEADER_LEN {
            return Err(MappedError::Truncated {
                path: path.to_path_buf(),
                len: page.len() as u64,
                expected: HEADER_LEN as u64,
            });
        }
        if page[0..8] != REGION_MAGIC {
            return Err(MappedError::BadMagic {
                path: path.to_path_buf(),
            });
        }
        let version = le_u32(page, 8);
        if version != FORMAT_VERSION {
            return Err(MappedError::WrongVersion {
                path: path.to_path_buf(),
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        let stored_crc = le_u32(page, FIXED_LEN);
        if crc32fast::hash(&page[..FIXED_LEN]) != stored_crc {
            return Err(corrupt("checksum of the fixed fields does not match"));
        }
        if le_u32(page, 12) as usize != HEADER_LEN {
            return Err(corrupt("unexpected header length"));
        }
        let handle = RegionHandle::new(le_u32(page, 16), le_u32(page, 20))
            .ok_or_else(|| corrupt("handle index or generation is 0"))?;
        let capacity = le_u64(page, 24);
        let max_size = le_u64(page, 32);
        if capacity == 0 || !capacity.is_multiple_of(4096) || max_size > capacity {
            return Err(corrupt(
                "capacity is not whole pages or below the maximum size",
            ));
        }
        let permissions =
            Permissions::from_bits(page[60]).ok_or_else(|| corrupt("unknown permission bits"))?;
        let bits = page[61];
        if bits & !(OPT_CHECKSUMMED * 2 - 1) != 0 {
            return Err(corrupt("unknown option bits"));
        }
        let compression = match page[62] {
            0 => Compression::None,
            1 => Compression::Lz4,
            2 => Compression::Zstd,
            _ => return Err(corrupt("unknown compression")),
        };
        let name_len = usize::from(u16::from_le_bytes([page[68], page[69]]));
        if name_len > MAX_NAME_LEN {
            return Err(corrupt("name length above 256"));
        }
        let name = match name_len {
            0 => None,
            n => Some(
                std::str::from_utf8(&page[80..80 + n])
                    .map_err(|_| corrupt("name is not UTF-8"))?
                    .to_string(),
            ),
        };
        Ok(Self {
            handle,
            capacity,
            max_size,
            owner: Address::from_slice(&page[40..60]),
            permissions,
            options: RegionOptions {
                copy_on_write: bits & OPT_COW != 0,
                auto_grow: bits & OPT_AUTO_GROW != 0,
                persistent: bits & OPT_PERSISTENT != 0,
                public_read: bits & OPT_PUBLIC_READ != 0,
                public_write: bits & OPT_PUBLIC_WRITE != 0,
                compression,
            },
            checksummed: bits & OPT_CHECKSUMMED != 0,
            creator_pid: le_u32(page, 64),
            created_ms: le_u64(page, 72),
            name,
        })
    }
}

pub(crate) fn compression_code(compression: Compression) -> u8 {
    match compression {
        Compression::None => 0,
        Compression::Lz4 => 1,
        Compression::Zstd => 2,
    }
}

pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}
