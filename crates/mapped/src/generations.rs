//! The namespace's `generations` file: the highest generation issued per
//! handle index, so that a generation is never issued twice — across
//! processes and restarts, and after the region it named was freed (when no
//! region file remembers it any more).
//!
//! Layout (little-endian): `"EVMSHMGN"`, u32 version (1), u32 count, `count`
//! × u32 (index 1 first), u32 CRC-32 of everything before it. Written whole to
//! a temporary file and renamed over the old one, so a reader sees the old
//! table or the new one, never a mix.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::header::le_u32;
use crate::{sys, MappedError};

/// The file's name in the namespace directory.
pub(crate) const GENERATIONS: &str = "generations";
const MAGIC: [u8; 8] = *b"EVMSHMGN";
const VERSION: u32 = 1;

/// Encodes the table.
fn encode(table: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + 4 * table.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(table.len() as u32).to_le_bytes());
    for generation in table {
        out.extend_from_slice(&generation.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the table; the error says what is wrong.
fn decode(bytes: &[u8]) -> Result<Vec<u32>, String> {
    if bytes.len() < 20 || bytes[..8] != MAGIC {
        return Err("not a generations table (bad magic or too short)".into());
    }
    let version = le_u32(bytes, 8);
    if version != VERSION {
        return Err(format!(
            "generations table version {version}, this build reads {VERSION}"
        ));
    }
    let count = le_u32(bytes, 12) as usize;
    if count.checked_mul(4).and_then(|n| n.checked_add(20)) != Some(bytes.len()) {
        return Err("generations table truncated or too long".into());
    }
    let body = bytes.len() - 4;
    if crc32fast::hash(&bytes[..body]) != le_u32(bytes, body) {
        return Err("generations table damaged (checksum mismatch)".into());
    }
    Ok((0..count).map(|i| le_u32(bytes, 16 + 4 * i)).collect())
}

/// Reads the table of namespace directory `dir`: `Ok(None)` when there is no
/// file.
///
/// # Errors
/// [`MappedError::GenerationsLost`] when it is damaged, [`MappedError::Io`].
pub(crate) fn read(dir: &Path) -> Result<Option<Vec<u32>>, MappedError> {
    let path = dir.join(GENERATIONS);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|reason| MappedError::GenerationsLost { path, reason }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(MappedError::io(path)(e)),
    }
}

/// What a damaged file still tells, for a rebuild: the table if it decodes
/// in this format or as the raw u32s of the first version, else nothing.
pub(crate) fn salvage(dir: &Path) -> Vec<u32> {
    let Ok(bytes) = fs::read(dir.join(GENERATIONS)) else {
        return Vec::new();
    };
    if let Ok(table) = decode(&bytes) {
        return table;
    }
    if !bytes.starts_with(&MAGIC) && bytes.len().is_multiple_of(4) {
        return bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
    }
    Vec::new()
}

/// Writes the table of `dir` (permission bits `mode`): a temporary file
/// renamed over the old one.
///
/// # Errors
/// [`MappedError::Io`].
pub(crate) fn write(dir: &Path, table: &[u32], mode: u32) -> Result<(), MappedError> {
    let path = dir.join(GENERATIONS);
    let tmp: PathBuf = dir.join(format!(".{GENERATIONS}.{}", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        sys::set_mode(&file, mode)?;
        file.write_all(&encode(table))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(MappedError::io(tmp)(e));
    }
    fs::rename(&tmp, &path).map_err(MappedError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let table = vec![3, 0, 7];
        let bytes = encode(&table);
        assert_eq!(decode(&bytes).unwrap(), table);
        for cut in [0, 8, 19, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut flipped = bytes.clone();
        flipped[17] ^= 1;
        assert!(decode(&flipped).unwrap_err().contains("checksum"));
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::<u32>::new());
    }
}
