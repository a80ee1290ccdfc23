//! The undo log of one region file, `rNNNNNNNN.undo`: before a page of the
//! region changes for the first time since the last commit, its bytes are
//! written here, so that a transaction whose process dies can be rolled back.
//!
//! Record (little-endian): kind u32 (1 page, 2 header words), page u64,
//! length u32, the commit generation it was saved under u64, CRC-32 u32 of
//! the 24 bytes before it and the payload, then the payload. The records of
//! the running transaction start at offset 0 and overwrite older ones; a
//! commit makes them all stale at once by bumping the generation.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::header::{le_u32, le_u64};
use crate::sys;

/// Bytes of a region's data page.
pub(crate) const PAGE: usize = 4096;
const REC_PAGE: u32 = 1;
const REC_HEADER: u32 = 2;
/// kind u32, page u64, length u32, base generation u64, CRC-32 u32.
const REC_HEAD_LEN: usize = 28;
/// Payload of a header record: size, commit generation, checksum.
pub(crate) const HEADER_WORDS: usize = 24;

/// One record of the current generation, read back for a rollback.
#[derive(Debug)]
pub(crate) enum Record {
    /// The header's mutable words (size, commit generation, checksum) as they
    /// were at the start of the transaction.
    Header([u8; HEADER_WORDS]),
    /// The bytes of data page `page` before the transaction changed it.
    Page {
        /// Page number (offset / 4096).
        page: u64,
        /// Its bytes (a whole page, or less at the end of the capacity).
        bytes: Vec<u8>,
    },
}

/// This process's writer side of a region's undo log.
#[derive(Debug)]
pub(crate) struct UndoLog {
    path: PathBuf,
    /// Permission bits of the file when it is made (those of the region file).
    mode: u32,
    file: Option<File>,
    /// Where the next record goes.
    offset: u64,
    /// Pages saved since the last commit.
    saved: HashSet<u64>,
    /// Whether the header words were saved: a transaction has begun.
    header_saved: bool,
}

impl UndoLog {
    pub(crate) fn new(path: PathBuf, mode: u32) -> Self {
        Self {
            path,
            mode,
            file: None,
            offset: 0,
            saved: HashSet::new(),
            header_saved: false,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this process's transaction has saved anything since the last commit.
    pub(crate) fn in_transaction(&self) -> bool {
        self.header_saved
    }

    /// Saves, under `generation`, the header words (on the first save of a
    /// transaction) and every page `first..=last` of `data` not saved since
    /// the last commit, in one write: a process killed mid-way leaves a torn
    /// record that a rollback recognises by its checksum (the in-place change
    /// it guards had not started).
    ///
    /// # Errors
    /// The system's error when the log cannot be opened or written (a full
    /// disk). Nothing is marked saved then, and the log is cut back to where
    /// it was, so no torn record of this call stays behind.
    pub(crate) fn save(
        &mut self,
        generation: u64,
        header_words: &[u8; HEADER_WORDS],
        data: &[u8],
        first: u64,
        last: u64,
    ) -> io::Result<()> {
        let mut records = Vec::new();
        if !self.header_saved {
            encode(REC_HEADER, 0, generation, header_words, &mut records);
        }
        let mut pages = Vec::new();
        for page in first..=last {
            if self.saved.contains(&page) {
                continue;
            }
            let start = usize::try_from(page)
                .unwrap_or(usize::MAX)
                .saturating_mul(PAGE);
            let end = start.saturating_add(PAGE).min(data.len());
            if start >= end {
                break;
            }
            encode(REC_PAGE, page, generation, &data[start..end], &mut records);
            pages.push(page);
        }
        if records.is_empty() {
            return Ok(());
        }
        let offset = self.offset;
        let file = self.open()?;
        if let Err(e) = file.write_all_at(&records, offset) {
            // Give back what a partial write took (on a full disk this is
            // what lets the next transaction write its records).
            let _ = file.set_len(offset);
            return Err(e);
        }
        self.offset += records.len() as u64;
        self.saved.extend(pages);
        self.header_saved = true;
        Ok(())
    }

    fn open(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(self.mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)?;
            sys::set_mode(&file, self.mode)?;
            self.file = Some(file);
        }
        Ok(self.file.as_ref().expect("opened above"))
    }

    /// The transaction committed: its records are stale (the generation moved),
    /// the next one writes from the start of the log.
    pub(crate) fn committed(&mut self) {
        self.offset = 0;
        self.saved.clear();
        self.header_saved = false;
    }

    /// Empties the log after a rollback, so its records are never applied twice.
    ///
    /// # Errors
    /// The system's error.
    pub(crate) fn truncate(&mut self) -> io::Result<()> {
        self.committed();
        match self.file.as_ref() {
            Some(file) => file.set_len(0),
            None => match OpenOptions::new().write(true).open(&self.path) {
                Ok(file) => file.set_len(0),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            },
        }
    }

    /// The records of the log saved under `generation`, from the start,
    /// stopping at the first torn, foreign or stale one.
    ///
    /// # Errors
    /// The system's error reading the file (a missing file has no records).
    pub(crate) fn read_current(&self, generation: u64) -> io::Result<Vec<Record>> {
        let log = match fs::read(&self.path) {
            Ok(log) => log,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(parse_current(&log, generation))
    }
}

fn encode(kind: u32, page: u64, generation: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&page.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[start..]);
    crc.update(payload);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

fn parse_current(log: &[u8], generation: u64) -> Vec<Record> {
    let mut records = Vec::new();
    let mut at = 0;
    while at + REC_HEAD_LEN <= log.len() {
        let kind = le_u32(log, at);
        let page = le_u64(log, at + 4);
        let len = le_u32(log, at + 12) as usize;
        let base = le_u64(log, at + 16);
        let stored = le_u32(log, at + 24);
        let Some(payload) = log.get(at + REC_HEAD_LEN..at + REC_HEAD_LEN + len) else {
            break;
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&log[at..at + 24]);
        crc.update(payload);
        if base != generation || crc.finalize() != stored {
            break;
        }
        match kind {
            REC_HEADER if payload.len() == HEADER_WORDS => {
                let mut words = [0u8; HEADER_WORDS];
                words.copy_from_slice(payload);
                records.push(Record::Header(words));
            }
            REC_PAGE if payload.len() <= PAGE => records.push(Record::Page {
                page,
                bytes: payload.to_vec(),
            }),
            _ => break,
        }
        at += REC_HEAD_LEN + len;
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_stop_at_stale_or_torn_ones() {
        let mut log = Vec::new();
        encode(REC_HEADER, 0, 7, &[1; HEADER_WORDS], &mut log);
        encode(REC_PAGE, 3, 7, &[2; PAGE], &mut log);
        let whole = log.len();
        encode(REC_PAGE, 4, 6, &[3; PAGE], &mut log); // stale
        let records = parse_current(&log, 7);
        assert!(matches!(records[0], Record::Header(w) if w == [1; HEADER_WORDS]));
        assert!(matches!(&records[1], Record::Page { page: 3, bytes } if bytes[..] == [2; PAGE]));
        assert_eq!(records.len(), 2);
        // A torn second record: only the first counts.
        assert_eq!(parse_current(&log[..whole - 1], 7).len(), 1);
        assert!(parse_current(&log, 8).is_empty());
    }
}
