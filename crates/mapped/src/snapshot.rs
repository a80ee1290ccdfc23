//! Snapshots: every region of a namespace in one file, each compressed with
//! `None`, LZ4 (lz4_flex, block format) or Zstd (level 3).
//!
//! Layout (little-endian):
//!
//! ```text
//! "EVMSHMSN"  u32 version (1)  u32 region count
//! per region:
//!   the region's 4096-byte header page (fixed part, as in the region file)
//!   u64 size  u64 commit generation  u32 CRC-32 of the raw bytes
//!   u8 compression (0 none, 1 LZ4, 2 Zstd)  [3 bytes reserved]  u64 stored length
//!   stored bytes
//! "EVMSHMND"  u32 CRC-32 of everything before it
//! ```
//!
//! Loading checks the trailer, every header, every length and every raw
//! checksum before it creates any file, so a corrupt or truncated snapshot
//! loads nothing.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use shm_primitives::Compression;

use crate::header::{compression_code, le_u32, le_u64};
use crate::{MappedError, MappedRegion, Namespace, RegionHeader, HEADER_LEN};

const SNAPSHOT_MAGIC: [u8; 8] = *b"EVMSHMSN";
const TRAILER_MAGIC: [u8; 8] = *b"EVMSHMND";
const SNAPSHOT_VERSION: u32 = 1;
const ZSTD_LEVEL: i32 = 3;
/// How long a dump waits for each region's lock.
const DUMP_LOCK_WAIT: Duration = Duration::from_secs(5);

/// One region in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRegion {
    /// Its header (handle, owner, options, name, …).
    pub header: RegionHeader,
    /// Its commit generation when dumped.
    pub commit_generation: u64,
    /// Its bytes (the logical size).
    pub data: Vec<u8>,
}

/// The regions of a namespace, in memory.
///
/// ```
/// use shm_mapped::{RegionHeader, Snapshot, SnapshotRegion};
/// use shm_primitives::{Address, Compression, RegionHandle};
///
/// let header = RegionHeader::new(RegionHandle::new(1, 1).unwrap(), 4096, Address::ZERO);
/// let snapshot = Snapshot { regions: vec![SnapshotRegion { header, commit_generation: 2, data: vec![7; 100] }] };
/// let bytes = snapshot.encode(Some(Compression::Zstd))?;
/// assert_eq!(Snapshot::decode(&bytes, "mem".as_ref())?, snapshot);
/// assert!(Snapshot::decode(&bytes[..bytes.len() - 1], "mem".as_ref()).is_err());
/// # Ok::<(), shm_mapped::MappedError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The regions, by handle index.
    pub regions: Vec<SnapshotRegion>,
}

/// What a dump or load did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// Regions written or loaded.
    pub regions: usize,
    /// Bytes of region data.
    pub raw_bytes: u64,
    /// Bytes of the snapshot file.
    pub file_bytes: u64,
}

fn compress(data: &[u8], compression: Compression) -> Result<Vec<u8>, MappedError> {
    Ok(match compression {
        Compression::None => data.to_vec(),
        Compression::Lz4 => lz4_flex::block::compress(data),
        Compression::Zstd => {
            zstd::bulk::compress(data, ZSTD_LEVEL).map_err(|source| MappedError::Io {
                path: "zstd".into(),
                source,
            })?
        }
    })
}

impl Snapshot {
    /// Reads every region of `ns`, each under its lock (so no half-committed
    /// transaction is copied; an interrupted one is rolled back first).
    ///
    /// # Errors
    /// Errors of opening or locking a region (a corrupt file stops the dump).
    pub fn capture(ns: &Namespace) -> Result<Self, MappedError> {
        let mut regions = Vec::new();
        for path in ns.region_paths()? {
            let region = MappedRegion::open(&path)?;
            region.lock(DUMP_LOCK_WAIT)?;
            let size = usize::try_from(region.size()).unwrap_or(usize::MAX);
            let mut data = vec![0u8; size.min(region.header().capacity as usize)];
            region.read_at(0, &mut data, DUMP_LOCK_WAIT)?;
            let commit_generation = region.commit_generation();
            region.unlock(None)?;
            regions.push(SnapshotRegion {
                header: region.header().clone(),
                commit_generation,
                data,
            });
        }
        Ok(Self { regions })
    }

    /// The snapshot file's bytes; each region compressed with `compression`,
    /// or with its own option when `None`.
    ///
    /// # Errors
    /// [`MappedError::Io`] when Zstd fails.
    pub fn encode(&self, compression: Option<Compression>) -> Result<Vec<u8>, MappedError> {
        let mut out = Vec::new();
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.regions.len() as u32).to_le_bytes());
        for region in &self.regions {
            let how = compression.unwrap_or(region.header.options.compression);
            let stored = compress(&region.data, how)?;
            out.extend_from_slice(&region.header.encode());
            out.extend_from_slice(&(region.data.len() as u64).to_le_bytes());
            out.extend_from_slice(&region.commit_generation.to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&region.data).to_le_bytes());
            out.extend_from_slice(&[compression_code(how), 0, 0, 0]);
            out.extend_from_slice(&(stored.len() as u64).to_le_bytes());
            out.extend_from_slice(&stored);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&TRAILER_MAGIC);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Parses and checks a snapshot read from `path` (named in errors).
    ///
    /// # Errors
    /// [`MappedError::CorruptSnapshot`] for anything wrong: bad magic or
    /// version, truncation, a checksum, a length, a header, a codec error.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Self, MappedError> {
        let corrupt = |reason: String| MappedError::CorruptSnapshot {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < 16 + 12 || bytes[..8] != SNAPSHOT_MAGIC {
            return Err(corrupt(
                "not a shared-memory snapshot (bad magic or too short)".into(),
            ));
        }
        let version = le_u32(bytes, 8);
        if version != SNAPSHOT_VERSION {
            return Err(corrupt(format!(
                "format version {version}, this build reads {SNAPSHOT_VERSION}"
            )));
        }
        let body_end = bytes.len() - 12;
        if bytes[body_end..body_end + 8] != TRAILER_MAGIC {
            return Err(corrupt("truncated (no trailer)".into()));
        }
        if crc32fast::hash(&bytes[..body_end]) != le_u32(bytes, body_end + 8) {
            return Err(corrupt("checksum mismatch (corrupt or truncated)".into()));
        }
        let count = le_u32(bytes, 12) as usize;
        let mut at = 16;
        let mut regions = Vec::with_capacity(count.min(4096));
        for n in 0..count {
            let fixed_end = at + HEADER_LEN + 32;
            if fixed_end > body_end {
                return Err(corrupt(format!("region {n}: truncated record")));
            }
            let header = RegionHeader::decode(&bytes[at..at + HEADER_LEN], path)
                .map_err(|e| corrupt(format!("region {n}: {e}")))?;
            at += HEADER_LEN;
            let size = le_u64(bytes, at);
            let commit_generation = le_u64(bytes, at + 8);
            let crc = le_u32(bytes, at + 16);
            let how = bytes[at + 20];
            let stored_len = le_u64(bytes, at + 24);
            at += 32;
            if size > header.max_size {
                return Err(corrupt(format!(
                    "region {n}: size {size} above its maximum"
                )));
            }
            let end = usize::try_from(stored_len)
                .ok()
                .and_then(|l| at.checked_add(l))
                .filter(|&end| end <= body_end)
                .ok_or_else(|| corrupt(format!("region {n}: stored length past the end")))?;
            let stored = &bytes[at..end];
            at = end;
            let size = usize::try_from(size)
                .map_err(|_| corrupt(format!("region {n}: size too large")))?;
            let data = match how {
                0 => stored.to_vec(),
                1 => lz4_flex::block::decompress(stored, size)
                    .map_err(|e| corrupt(format!("region {n}: LZ4: {e}")))?,
                2 => zstd::bulk::decompress(stored, size)
                    .map_err(|e| corrupt(format!("region {n}: Zstd: {e}")))?,
                other => return Err(corrupt(format!("region {n}: unknown compression {other}"))),
            };
            if data.len() != size || crc32fast::hash(&data) != crc {
                return Err(corrupt(format!(
                    "region {n}: contents do not match their checksum"
                )));
            }
            regions.push(SnapshotRegion {
                header,
                commit_generation,
                data,
            });
        }
        if at != body_end {
            return Err(corrupt("trailing bytes after the last region".into()));
        }
        Ok(Self { regions })
    }

    /// Creates every region of the snapshot in `ns` (same handles, names and
    /// bytes), or none: a region whose index or name already exists there
    /// stops the load before any file is made, and a failure half way removes
    /// what was made.
    ///
    /// # Errors
    /// [`MappedError::AlreadyExists`], file errors.
    pub fn restore(&self, ns: &Namespace) -> Result<SnapshotReport, MappedError> {
        ns.with_alloc_lock(|| {
            for region in &self.regions {
                let handle = region.header.handle;
                let taken = ns
                    .dir()
                    .join(crate::region_file_name(handle.index()))
                    .exists()
                    || region
                        .header
                        .name
                        .as_deref()
                        .is_some_and(|name| ns.find(name).is_ok());
                if taken {
                    let what = region
                        .header
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("#{}", handle.index()));
                    return Err(MappedError::AlreadyExists(what));
                }
            }
            let mut made: Vec<std::sync::Arc<MappedRegion>> = Vec::new();
            let result = (|| {
                for region in &self.regions {
                    ns.record_generation(region.header.handle)?;
                    let mapped = MappedRegion::create_with_mode(
                        ns.dir(),
                        &region.header,
                        region.data.len() as u64,
                        ns.file_mode(),
                    )?;
                    made.push(mapped.clone());
                    mapped.lock(DUMP_LOCK_WAIT)?;
                    let mut block = mapped.clone().block();
                    block
                        .write_at(0, &region.data)
                        .map_err(|e| MappedError::CorruptHeader {
                            path: mapped.path().to_path_buf(),
                            reason: e.to_string(),
                        })?;
                    drop(block);
                    mapped.unlock(Some(region.data.len() as u64))?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                for mapped in made {
                    let _ = mapped.remove_files();
                }
                return Err(e);
            }
            Ok(SnapshotReport {
                regions: self.regions.len(),
                raw_bytes: self.regions.iter().map(|r| r.data.len() as u64).sum(),
                file_bytes: 0,
            })
        })
    }
}

/// Dumps every region of `ns` to the file `out` (see [`Snapshot`]).
///
/// # Errors
/// As [`Snapshot::capture`], [`MappedError::Io`].
pub fn dump_namespace(
    ns: &Namespace,
    out: &Path,
    compression: Option<Compression>,
) -> Result<SnapshotReport, MappedError> {
    let snapshot = Snapshot::capture(ns)?;
    let bytes = snapshot.encode(compression)?;
    // As private as the namespace it copies (a new file; an existing one keeps its mode).
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(ns.file_mode())
        .open(out)
        .map_err(MappedError::io(out))?;
    file.write_all(&bytes).map_err(MappedError::io(out))?;
    Ok(SnapshotReport {
        regions: snapshot.regions.len(),
        raw_bytes: snapshot.regions.iter().map(|r| r.data.len() as u64).sum(),
        file_bytes: bytes.len() as u64,
    })
}

/// Loads the snapshot file `input` into `ns`: all of it or nothing.
///
/// # Errors
/// As [`Snapshot::decode`] and [`Snapshot::restore`], [`MappedError::Io`].
pub fn load_snapshot(input: &Path, ns: &Namespace) -> Result<SnapshotReport, MappedError> {
    let bytes = fs::read(input).map_err(MappedError::io(input))?;
    let snapshot = Snapshot::decode(&bytes, input)?;
    let mut report = snapshot.restore(ns)?;
    report.file_bytes = bytes.len() as u64;
    Ok(report)
}
