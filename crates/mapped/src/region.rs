//! One region file: its mapping, its cross-process lock, its undo log, commit
//! and crash recovery.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use parking_lot::Mutex;
use shm_pool::{Block, ExternalMemory};

use crate::header::{
    le_u32, le_u64, OFF_ACCESS, OFF_CHECKSUM, OFF_COMMIT, OFF_IN_TX, OFF_LOCK_PID, OFF_SIZE,
    OFF_WAITERS,
};
use crate::{now_ms, MappedError, RegionHeader, HEADER_LEN};

const PAGE: usize = 4096;
/// Undo-log record kinds.
const REC_PAGE: u32 = 1;
const REC_HEADER: u32 = 2;
/// kind u32, page u64, length u32, base generation u64, CRC-32 u32.
const REC_HEAD_LEN: usize = 28;
/// Payload of a header record: size, commit generation, checksum.
const HEADER_WORDS: usize = 24;

/// The state of a region as its header's mutable words show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionStatus {
    /// The fixed header.
    pub header: RegionHeader,
    /// Logical size at the last commit.
    pub size: u64,
    /// Commits that changed the region since it was created.
    pub commit_generation: u64,
    /// Last commit or lock, ms since the Unix epoch.
    pub last_access_ms: u64,
    /// Pid of the process holding the lock (0: free; diagnostic only, the
    /// lock itself is a `flock` the kernel drops when its holder dies).
    pub lock_pid: u32,
    /// Whether an undo log is waiting: a transaction is running, or its
    /// process died and the next lock holder rolls it back.
    pub undo_pending: bool,
}

#[derive(Default)]
struct UndoLog {
    file: Option<File>,
    /// Where the next record goes: records of the running transaction start
    /// at 0 and overwrite older, stale ones.
    offset: u64,
    /// Pages saved since the last commit.
    saved: HashSet<u64>,
    header_saved: bool,
    /// A record could not be written: commit reports it.
    failed: bool,
}

/// A region file mapped into this process: header page + data.
///
/// The data bytes are handed to the region registry as a [`Block`]
/// ([`MappedRegion::block`]); the manager keeps the `Arc` to lock, commit and
/// recover. Writers of the data must hold the cross-process lock
/// ([`lock`](Self::lock)); every page is saved to the undo log
/// (`rNNNNNNNN.undo`) before its first change after a commit, and
/// [`unlock`](Self::unlock) commits: header words updated, log truncated.
///
/// ```
/// use shm_mapped::{MappedRegion, RegionHeader};
/// use shm_primitives::{Address, RegionHandle};
/// use std::time::Duration;
///
/// let dir = tempfile::tempdir().unwrap();
/// let header = RegionHeader::new(RegionHandle::new(1, 1).unwrap(), 4096, Address::ZERO);
/// let region = MappedRegion::create(dir.path(), &header, 100)?;
/// region.lock(Duration::from_secs(1))?;
/// let mut block = region.clone().block();
/// block.write_at(0, b"hello")?;
/// region.unlock(Some(100))?;
/// let again = MappedRegion::open(region.path())?;
/// assert_eq!(&again.data()[..5], b"hello");
/// assert_eq!(again.status().commit_generation, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MappedRegion {
    path: PathBuf,
    undo_path: PathBuf,
    file: File,
    map: MmapRaw,
    header: RegionHeader,
    undo: Mutex<UndoLog>,
    /// Whether this process holds the file lock.
    locked: Mutex<bool>,
    /// Keep the files when the last reference goes (persistent detach).
    keep: AtomicBool,
}

/// The file name of region `index` in a namespace directory.
pub fn region_file_name(index: u32) -> String {
    format!("r{index:08}.shm")
}

fn undo_path_of(path: &Path) -> PathBuf {
    path.with_extension("undo")
}

impl MappedRegion {
    /// Creates the region file for `header` in `dir` (refusing an existing one),
    /// sized for its capacity (sparse: pages cost memory once written), with
    /// logical size `size`, and maps it.
    ///
    /// # Errors
    /// [`MappedError::Io`] (also when the file exists), [`MappedError::TooLarge`].
    pub fn create(dir: &Path, header: &RegionHeader, size: u64) -> Result<Arc<Self>, MappedError> {
        let path = dir.join(region_file_name(header.handle.index()));
        let total = header
            .capacity
            .checked_add(HEADER_LEN as u64)
            .ok_or(MappedError::TooLarge(header.capacity))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(MappedError::io(&path))?;
        let made = (|| {
            file.set_len(total).map_err(MappedError::io(&path))?;
            file.write_all_at(&header.encode(), 0)
                .map_err(MappedError::io(&path))?;
            let region = Self::map(path.clone(), file, header.clone())?;
            region.word(OFF_SIZE).store(size, Ordering::Release);
            region.word(OFF_ACCESS).store(now_ms(), Ordering::Relaxed);
            if header.checksummed {
                let crc = crc32fast::hash(&region.data()[..region.clamp(size)]);
                region
                    .word(OFF_CHECKSUM)
                    .store(u64::from(crc), Ordering::Relaxed);
            }
            Ok(region)
        })();
        if made.is_err() {
            let _ = fs::remove_file(&path);
        }
        made
    }

    /// Opens and validates an existing region file and maps it. Does not
    /// recover or check contents: [`lock`](Self::lock) recovers,
    /// [`verify_checksum`](Self::verify_checksum) checks.
    ///
    /// # Errors
    /// [`MappedError::Io`], [`MappedError::Truncated`], [`MappedError::BadMagic`],
    /// [`MappedError::WrongVersion`], [`MappedError::CorruptHeader`].
    pub fn open(path: &Path) -> Result<Arc<Self>, MappedError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(MappedError::io(path))?;
        let len = file.metadata().map_err(MappedError::io(path))?.len();
        let mut page = vec![0u8; HEADER_LEN.min(len as usize)];
        file.read_exact(&mut page).map_err(MappedError::io(path))?;
        let header = RegionHeader::decode(&page, path)?;
        let expected = header.capacity.saturating_add(HEADER_LEN as u64);
        if len < expected {
            return Err(MappedError::Truncated {
                path: path.to_path_buf(),
                len,
                expected,
            });
        }
        let region = Self::map(path.to_path_buf(), file, header)?;
        let size = region.word(OFF_SIZE).load(Ordering::Acquire);
        if size > region.header.max_size {
            return Err(MappedError::CorruptHeader {
                path: path.to_path_buf(),
                reason: format!("size {size} above the maximum {}", region.header.max_size),
            });
        }
        Ok(region)
    }

    fn map(path: PathBuf, file: File, header: RegionHeader) -> Result<Arc<Self>, MappedError> {
        let total = usize::try_from(header.capacity)
            .ok()
            .and_then(|c| c.checked_add(HEADER_LEN))
            .ok_or(MappedError::TooLarge(header.capacity))?;
        let map = MmapOptions::new()
            .len(total)
            .map_raw(&file)
            .map_err(MappedError::io(&path))?;
        Ok(Arc::new(Self {
            undo_path: undo_path_of(&path),
            path,
            file,
            map,
            header,
            undo: Mutex::new(UndoLog::default()),
            locked: Mutex::new(false),
            keep: AtomicBool::new(true),
        }))
    }

    /// The region file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fixed header.
    pub fn header(&self) -> &RegionHeader {
        &self.header
    }

    /// One aligned mutable header word.
    fn word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= HEADER_LEN);
        // SAFETY: the mapping is page-aligned and at least HEADER_LEN long, the
        // offsets are constants that are multiples of 8 inside the header, and
        // the mapping lives as long as `self`. Other processes touch these words
        // only through atomics too.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU64) }
    }

    fn waiters(&self) -> &AtomicU32 {
        // SAFETY: as in `word`: OFF_WAITERS is 4-aligned inside the header.
        unsafe { &*(self.map.as_ptr().add(OFF_WAITERS) as *const AtomicU32) }
    }

    /// The low 32 bits of the commit generation (little-endian: its first
    /// four bytes), the word sleepers wait on.
    fn generation_low(&self) -> &AtomicU32 {
        // SAFETY: as in `word`: OFF_COMMIT is 8-aligned, so its first four
        // bytes are a 4-aligned u32 inside the header; all platforms this
        // builds on with futexes (Linux on x86-64, AArch64) are little-endian.
        unsafe { &*(self.map.as_ptr().add(OFF_COMMIT) as *const AtomicU32) }
    }

    /// Waits until the commit generation is no longer `seen` — another
    /// process published — and returns it: spins a hundred times (under a
    /// microsecond; spinning longer starves the writer on a busy machine), then sleeps (a
    /// futex on the shared header word, woken by the commit) for at most
    /// `timeout`; returns the unchanged generation when the time is up.
    pub fn wait_for_commit(&self, seen: u64, timeout: Duration) -> u64 {
        for _ in 0..100 {
            let now = self.commit_generation();
            if now != seen {
                return now;
            }
            std::hint::spin_loop();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.commit_generation();
            let left = deadline.saturating_duration_since(Instant::now());
            if now != seen || left.is_zero() {
                return now;
            }
            self.waiters().fetch_add(1, Ordering::SeqCst);
            // Re-check after registering: a commit in between either sees the
            // waiter and wakes it, or is seen here (SeqCst on both sides).
            if self.word(OFF_COMMIT).load(Ordering::SeqCst) == seen {
                futex_wait(self.generation_low(), seen as u32, left);
            }
            self.waiters().fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn pid_word(&self) -> &AtomicU32 {
        // SAFETY: as in `word`: OFF_LOCK_PID is 4-aligned inside the header.
        unsafe { &*(self.map.as_ptr().add(OFF_LOCK_PID) as *const AtomicU32) }
    }

    fn clamp(&self, size: u64) -> usize {
        usize::try_from(size.min(self.header.capacity)).unwrap_or(usize::MAX)
    }

    fn capacity(&self) -> usize {
        self.map.len() - HEADER_LEN
    }

    /// The data bytes (the whole capacity).
    pub fn data(&self) -> &[u8] {
        // SAFETY: the mapping holds HEADER_LEN + capacity bytes and lives as
        // long as `self`. Writers in this process go through the region
        // registry's lock; writers in other processes hold the file lock.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(HEADER_LEN), self.capacity()) }
    }

    /// The data bytes, writable. Callers hold the region registry's write lock
    /// (the only `MappedBytes` of a region lives in its registry slot) or are
    /// rolling back under the file lock with no data borrow alive.
    #[allow(clippy::mut_from_ref)]
    fn data_mut(&self) -> &mut [u8] {
        // SAFETY: as in `data`; exclusivity is the caller's contract above.
        unsafe {
            std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(HEADER_LEN), self.capacity())
        }
    }

    /// What the header's mutable words say now.
    pub fn status(&self) -> RegionStatus {
        RegionStatus {
            header: self.header.clone(),
            size: self.word(OFF_SIZE).load(Ordering::Acquire),
            commit_generation: self.word(OFF_COMMIT).load(Ordering::Acquire),
            last_access_ms: self.word(OFF_ACCESS).load(Ordering::Relaxed),
            lock_pid: self.pid_word().load(Ordering::Relaxed),
            undo_pending: self.undo_pending(),
        }
    }

    /// Logical size at the last commit.
    pub fn size(&self) -> u64 {
        self.word(OFF_SIZE).load(Ordering::Acquire)
    }

    /// The commit generation: +1 per commit that changed the region. A reader
    /// that sees it change knows new bytes were published.
    pub fn commit_generation(&self) -> u64 {
        self.word(OFF_COMMIT).load(Ordering::Acquire)
    }

    /// A [`Block`] over the data bytes for the region registry. Writes through
    /// it save each page to the undo log first.
    pub fn block(self: Arc<Self>) -> Block {
        let requested = self.clamp(self.size());
        Block::from_external(Box::new(MappedBytes { region: self }), requested)
    }

    /// Whether the files are kept when the last reference is dropped (default
    /// `true`). The manager sets `false` for a region it frees, so the file is
    /// removed once the registry lets go of its bytes.
    pub fn set_keep(&self, keep: bool) {
        self.keep.store(keep, Ordering::Relaxed);
    }

    /// Takes the cross-process lock (an exclusive `flock` on the file; the
    /// kernel releases it if this process dies), waiting at most `timeout`,
    /// then rolls back an interrupted transaction if an undo log is left.
    /// Re-entrant within the process (the manager's lock table serialises
    /// this process's transactions). Returns the pages rolled back.
    ///
    /// # Errors
    /// [`MappedError::LockTimeout`], [`MappedError::Io`].
    pub fn lock(&self, timeout: Duration) -> Result<usize, MappedError> {
        let mut locked = self.locked.lock();
        if *locked {
            return Ok(0);
        }
        flock_within(&self.file, &self.path, timeout, || {
            self.pid_word().load(Ordering::Relaxed)
        })?;
        *locked = true;
        self.pid_word().store(std::process::id(), Ordering::Relaxed);
        self.word(OFF_ACCESS).store(now_ms(), Ordering::Relaxed);
        match self.recover() {
            Ok(pages) => Ok(pages),
            Err(e) => {
                self.release_flock(&mut locked);
                Err(e)
            }
        }
    }

    /// Whether this process holds the lock.
    pub fn is_locked(&self) -> bool {
        *self.locked.lock()
    }

    /// Commits (see [`commit`](Self::commit)) and releases the lock. Nothing
    /// happens when this process does not hold it.
    ///
    /// # Errors
    /// As [`commit`](Self::commit); the lock is released anyway.
    pub fn unlock(&self, size: Option<u64>) -> Result<(), MappedError> {
        let mut locked = self.locked.lock();
        if !*locked {
            return Ok(());
        }
        let committed = self.commit(size);
        self.release_flock(&mut locked);
        committed
    }

    fn release_flock(&self, locked: &mut bool) {
        self.pid_word().store(0, Ordering::Relaxed);
        // SAFETY: the descriptor is open for the life of `self.file`.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
        *locked = false;
    }

    /// Publishes the writes since the last commit: stores `size` (when given)
    /// and the contents checksum (Paranoid), then bumps the commit generation
    /// — the commit point: every undo record carries the generation it was
    /// saved under, so the bump makes them all stale at once (no truncation,
    /// no extra system call). A commit with nothing written only refreshes
    /// the access time.
    ///
    /// # Errors
    /// [`MappedError::Io`] when an undo record could not be written: the
    /// transaction is not published, and the next lock holder rolls back what
    /// the log holds.
    pub fn commit(&self, size: Option<u64>) -> Result<(), MappedError> {
        let mut undo = self.undo.lock();
        let changed = undo.header_saved || size.is_some_and(|s| s != self.size());
        if changed {
            if !undo.header_saved {
                self.save_header(&mut undo);
            }
            if undo.failed {
                undo.failed = false;
                return Err(MappedError::Io {
                    path: self.undo_path.clone(),
                    source: std::io::Error::other("undo log incomplete: commit refused"),
                });
            }
            let size = size
                .unwrap_or_else(|| self.size())
                .min(self.header.max_size);
            if self.header.checksummed {
                let crc = crc32fast::hash(&self.data()[..self.clamp(size)]);
                self.word(OFF_CHECKSUM)
                    .store(u64::from(crc), Ordering::Relaxed);
            }
            self.word(OFF_SIZE).store(size, Ordering::Release);
            // The commit point (Release: the data and words above are visible
            // to whoever sees the new generation).
            self.word(OFF_COMMIT).fetch_add(1, Ordering::SeqCst);
            self.word(OFF_IN_TX).store(0, Ordering::Release);
            if self.waiters().load(Ordering::SeqCst) > 0 {
                futex_wake(self.generation_low());
            }
            undo.offset = 0;
            undo.saved.clear();
            undo.header_saved = false;
        }
        self.word(OFF_ACCESS).store(now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Encodes one undo record saved under the current commit generation.
    fn record(&self, kind: u32, page: u64, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&page.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.commit_generation().to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&out[start..]);
        crc.update(payload);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(payload);
    }

    /// Writes encoded records at the log's current end (opened on first use).
    fn append(&self, undo: &mut UndoLog, records: &[u8]) {
        if undo.file.is_none() {
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&self.undo_path)
            {
                Ok(file) => undo.file = Some(file),
                Err(_) => {
                    undo.failed = true;
                    return;
                }
            }
        }
        if let Some(file) = undo.file.as_ref() {
            // One write for all the records of one call: a process killed
            // mid-way leaves a torn record that recovery recognises by its
            // checksum and ignores (the in-place write it guards had not
            // started).
            if file.write_all_at(records, undo.offset).is_err() {
                undo.failed = true;
            } else {
                undo.offset += records.len() as u64;
            }
        }
    }

    fn header_words(&self) -> [u8; HEADER_WORDS] {
        let mut words = [0u8; HEADER_WORDS];
        words[0..8].copy_from_slice(&self.size().to_le_bytes());
        words[8..16].copy_from_slice(&self.commit_generation().to_le_bytes());
        words[16..24].copy_from_slice(
            &self
                .word(OFF_CHECKSUM)
                .load(Ordering::Relaxed)
                .to_le_bytes(),
        );
        words
    }

    fn save_header(&self, undo: &mut UndoLog) {
        self.word(OFF_IN_TX).store(1, Ordering::Release);
        let mut records = Vec::with_capacity(REC_HEAD_LEN + HEADER_WORDS);
        self.record(REC_HEADER, 0, &self.header_words(), &mut records);
        self.append(undo, &records);
        undo.header_saved = true;
    }

    /// Saves every page of `offset..offset + len` not saved since the last
    /// commit (the first save of a transaction also saves the header words).
    fn save_pages(&self, offset: usize, len: usize) {
        if len == 0 {
            return;
        }
        let mut undo = self.undo.lock();
        let data = self.data();
        let last = (offset + len - 1) / PAGE;
        let mut records = Vec::new();
        if !undo.header_saved {
            // Flag first: a holder that finds it set reads the log.
            self.word(OFF_IN_TX).store(1, Ordering::Release);
            self.record(REC_HEADER, 0, &self.header_words(), &mut records);
            undo.header_saved = true;
        }
        for page in offset / PAGE..=last {
            if undo.saved.insert(page as u64) {
                let start = page * PAGE;
                let end = (start + PAGE).min(data.len());
                self.record(REC_PAGE, page as u64, &data[start..end], &mut records);
            }
        }
        if !records.is_empty() {
            self.append(&mut undo, &records);
        }
    }

    /// Parses the records of the log that belong to the current commit
    /// generation, from the start, stopping at the first torn, foreign or
    /// stale one: `(kind, page, payload)`.
    fn current_records<'a>(&self, log: &'a [u8]) -> Vec<(u32, u64, &'a [u8])> {
        let generation = self.commit_generation();
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
            records.push((kind, page, payload));
            at += REC_HEAD_LEN + len;
        }
        records
    }

    /// Whether a transaction has undo records in the log: one is running, or
    /// its writer died and the next holder rolls back (one load of a header
    /// word; no system call).
    fn undo_pending(&self) -> bool {
        self.word(OFF_IN_TX).load(Ordering::Acquire) != 0
    }

    /// Rolls back an interrupted transaction from the undo log (its writer died
    /// holding the lock): restores the saved pages and header words, then
    /// empties the log. Records of older generations (committed) and a torn
    /// last record are ignored. Returns the pages restored. Called by
    /// [`lock`](Self::lock); the caller holds the lock.
    fn recover(&self) -> Result<usize, MappedError> {
        let undo = self.undo.lock();
        if !undo.saved.is_empty() || undo.header_saved {
            // Our own transaction's log: nothing to recover.
            return Ok(0);
        }
        // The common case costs one small read: the first record is stale.
        if !self.undo_pending() {
            return Ok(0);
        }
        let log = fs::read(&self.undo_path).map_err(MappedError::io(&self.undo_path))?;
        let records = self.current_records(&log);
        let data = self.data_mut();
        let mut pages = 0;
        let mut header = None;
        for (kind, page, payload) in records {
            match kind {
                REC_HEADER if payload.len() == HEADER_WORDS => header = Some(payload),
                REC_PAGE => {
                    let start = usize::try_from(page)
                        .unwrap_or(usize::MAX)
                        .saturating_mul(PAGE);
                    if let Some(target) = data.get_mut(start..start.saturating_add(payload.len())) {
                        target.copy_from_slice(payload);
                        pages += 1;
                    }
                }
                _ => break,
            }
        }
        if let Some(words) = header {
            self.word(OFF_SIZE)
                .store(le_u64(words, 0), Ordering::Release);
            self.word(OFF_CHECKSUM)
                .store(le_u64(words, 16), Ordering::Relaxed);
            self.word(OFF_COMMIT)
                .store(le_u64(words, 8), Ordering::Release);
        }
        // The restored generation equals the records' base: empty the log so
        // they are not applied again, then clear the flag.
        let truncate = match undo.file.as_ref() {
            Some(file) => file.set_len(0),
            None => OpenOptions::new()
                .write(true)
                .open(&self.undo_path)
                .and_then(|f| f.set_len(0)),
        };
        truncate.map_err(MappedError::io(&self.undo_path))?;
        self.word(OFF_IN_TX).store(0, Ordering::Release);
        Ok(pages)
    }

    /// Checks the contents against the checksum of the last commit (only for
    /// checksummed regions; others pass).
    ///
    /// # Errors
    /// [`MappedError::ChecksumMismatch`].
    pub fn verify_checksum(&self) -> Result<(), MappedError> {
        if !self.header.checksummed {
            return Ok(());
        }
        let stored = self.word(OFF_CHECKSUM).load(Ordering::Relaxed) as u32;
        let computed = crc32fast::hash(&self.data()[..self.clamp(self.size())]);
        if stored == computed {
            Ok(())
        } else {
            Err(MappedError::ChecksumMismatch {
                path: self.path.clone(),
                stored,
                computed,
            })
        }
    }

    /// Removes the region file and its undo log now (the mapping stays valid
    /// until dropped).
    ///
    /// # Errors
    /// [`MappedError::Io`].
    pub fn remove_files(&self) -> Result<(), MappedError> {
        let _ = fs::remove_file(&self.undo_path);
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(MappedError::io(&self.path)(e))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        if !self.keep.load(Ordering::Relaxed) {
            let _ = self.remove_files();
        }
    }
}

impl std::fmt::Debug for MappedRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedRegion")
            .field("path", &self.path)
            .field("handle", &self.header.handle)
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

/// The data bytes of a [`MappedRegion`] as a pool [`Block`]'s memory.
struct MappedBytes {
    region: Arc<MappedRegion>,
}

impl ExternalMemory for MappedBytes {
    fn bytes(&self) -> &[u8] {
        self.region.data()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // The block (and so this) is the only writer: `&mut self` comes from
        // the registry's write lock on the region.
        self.region.data_mut()
    }

    fn before_write(&mut self, offset: usize, len: usize) -> Result<(), shm_pool::WriteRefused> {
        self.region.save_pages(offset, len);
        Ok(())
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout` (or returns at once).
#[cfg(target_os = "linux")]
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a valid, aligned u32 in a shared mapping that outlives
    // the call; FUTEX_WAIT (not private: other processes map it) only reads it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            0usize,
            0u32,
        );
    }
}

/// Wakes every process sleeping on `word`.
#[cfg(target_os = "linux")]
fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE does not touch the word.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

#[cfg(not(target_os = "linux"))]
fn futex_wait(_word: &AtomicU32, _expected: u32, timeout: Duration) {
    std::thread::sleep(timeout.min(Duration::from_micros(50)));
}

#[cfg(not(target_os = "linux"))]
fn futex_wake(_word: &AtomicU32) {}

/// Takes an exclusive `flock` on `file`, polling with a growing pause, for at
/// most `timeout`.
pub(crate) fn flock_within(
    file: &File,
    path: &Path,
    timeout: Duration,
    holder: impl Fn() -> u32,
) -> Result<(), MappedError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(5);
    let mut spins = 0;
    loop {
        // SAFETY: the descriptor is open for the life of `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK)
            && err.kind() != std::io::ErrorKind::Interrupted
        {
            return Err(MappedError::io(path)(err));
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(MappedError::LockTimeout {
                path: path.to_path_buf(),
                waited,
                holder: holder(),
            });
        }
        if spins < 20 {
            spins += 1;
            std::thread::yield_now();
        } else {
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_micros(200));
        }
    }
}
