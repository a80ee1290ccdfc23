//! One region file mapped into this process: its header words, its lock, its
//! commit and crash recovery. The undo-log format is in `undo.rs`, the system
//! calls (futex, flock, fallocate, leases) in `sys.rs`.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use parking_lot::Mutex;
use shm_pool::{Block, ExternalMemory, WriteRefused};

use crate::header::{
    le_u64, OFF_ACCESS, OFF_CHECKSUM, OFF_COMMIT, OFF_FREED, OFF_IN_TX, OFF_LOCK, OFF_LOCK_PID,
    OFF_LOCK_WAITERS, OFF_SIZE, OFF_WAITERS,
};
use crate::sys::{self, Lease};
use crate::undo::{Record, UndoLog, HEADER_WORDS, PAGE};
use crate::{now_ms, MappedError, RegionHeader, HEADER_LEN};

/// The in-transaction word: undo records are in the log.
const IN_TX_UNDO: u64 = 1;
/// The in-transaction word: a message is being copied in without undo records.
const IN_TX_MESSAGE: u64 = 2;
/// Spins on a taken lock word before sleeping (well under a microsecond).
const LOCK_SPINS: u32 = 100;
/// How often a sleeping waiter checks that the lock's holder still lives.
const HOLDER_CHECK: Duration = Duration::from_millis(10);

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
    /// Who holds the lock, if anyone.
    pub holder: Option<LockHolder>,
    /// Pid of the process holding the lock (0: free; diagnostic).
    pub lock_pid: u32,
    /// Whether a transaction is open: one is running, or its process died
    /// and the next lock holder rolls it back.
    pub undo_pending: bool,
    /// Whether the region was freed (its file removed): a mapping that still
    /// shows it is stale.
    pub freed: bool,
}

/// The process holding a region's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockHolder {
    /// Its pid as it recorded it (in its own pid namespace; diagnostic).
    pub pid: u32,
    /// Whether it is alive (its lease is held). A dead holder's lock is taken
    /// over, and its transaction rolled back, by the next process to lock.
    pub alive: bool,
}

/// A region file mapped into this process: header page + data.
///
/// The data bytes are handed to the region registry as a [`Block`]
/// ([`MappedRegion::block`]); the manager keeps the `Arc` to lock, commit and
/// recover. Writers of the data hold the region's lock ([`lock`](Self::lock));
/// every page is saved to the undo log (`rNNNNNNNN.undo`) before its first
/// change after a commit, and [`unlock`](Self::unlock) commits. Readers that
/// are not the registry copy committed bytes out with [`read_at`](Self::read_at).
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
/// let mut buf = [0u8; 5];
/// assert_eq!(again.read_at(0, &mut buf, Duration::from_secs(1))?, 5);
/// assert_eq!(&buf, b"hello");
/// assert_eq!(again.status().commit_generation, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MappedRegion {
    path: PathBuf,
    dir: PathBuf,
    file: File,
    map: MmapRaw,
    header: RegionHeader,
    /// Permission bits of the region file, for the undo log and the lease.
    mode: u32,
    undo: Mutex<UndoLog>,
    /// Whether this mapping holds the region's lock.
    locked: Mutex<bool>,
    /// This process's lease in the namespace, once it has locked.
    lease: OnceLock<Arc<Lease>>,
    /// Data bytes from 0 known to have pages in the file (`fallocate`d).
    reserved: AtomicU64,
    /// Keep the files when the last reference goes (persistent detach).
    keep: AtomicBool,
    /// A commit happened under the lock: `release` wakes `wait_for_commit` sleepers.
    wake_on_release: AtomicBool,
}

/// The file name of region `index` in a namespace directory.
pub fn region_file_name(index: u32) -> String {
    format!("r{index:08}.shm")
}

/// The hidden name a region file is built under before it is moved into place
/// (see [`MappedRegion::create`]): `.{region file}.{pid}.{n}.new`.
fn building_name(index: u32, pid: u32, n: u64) -> String {
    format!(".{}.{pid}.{n}.new", region_file_name(index))
}

/// The process that was building the region file `name`, when `name` is one
/// being built ([`building_name`]'s form).
pub(crate) fn builder_of(name: &str) -> Option<u32> {
    let fields: Vec<&str> = name
        .strip_prefix('.')?
        .strip_suffix(".new")?
        .split('.')
        .collect();
    match fields.as_slice() {
        [region, "shm", pid, n] if region.starts_with('r') && n.parse::<u64>().is_ok() => {
            pid.parse().ok()
        }
        _ => None,
    }
}

impl MappedRegion {
    /// Creates the region file for `header` in `dir` (refusing an existing one)
    /// with permission bits 0600, sized for its capacity (sparse: pages beyond
    /// the size cost memory once written), with logical size `size`, and maps it.
    ///
    /// # Errors
    /// [`MappedError::Io`] (also when the file exists or the disk is full),
    /// [`MappedError::TooLarge`].
    pub fn create(dir: &Path, header: &RegionHeader, size: u64) -> Result<Arc<Self>, MappedError> {
        Self::create_with_mode(dir, header, size, 0o600)
    }

    /// As [`create`](Self::create), with permission bits `mode` (0600 private,
    /// 0660 for a namespace shared with a group).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_with_mode(
        dir: &Path,
        header: &RegionHeader,
        size: u64,
        mode: u32,
    ) -> Result<Arc<Self>, MappedError> {
        let path = dir.join(region_file_name(header.handle.index()));
        let total = header
            .capacity
            .checked_add(HEADER_LEN as u64)
            .ok_or(MappedError::TooLarge(header.capacity))?;
        if path.exists() {
            return Err(MappedError::io(&path)(std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        // Made whole under a name no listing picks up, then moved into
        // place: a process attaching meanwhile never meets a file without
        // its header (it would refuse the namespace as damaged).
        static MADE: AtomicU64 = AtomicU64::new(0);
        let building = dir.join(building_name(
            header.handle.index(),
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed),
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&building)
            .map_err(MappedError::io(&building))?;
        let made = (|| {
            sys::set_mode(&file, mode).map_err(MappedError::io(&path))?;
            file.set_len(total).map_err(MappedError::io(&path))?;
            file.write_all_at(&header.encode(), 0)
                .map_err(MappedError::io(&path))?;
            let region = Self::map(path.clone(), file, header.clone())?;
            region
                .reserve_through(region.clamp(size))
                .map_err(MappedError::io(&path))?;
            region.word(OFF_SIZE).store(size, Ordering::Release);
            region.word(OFF_ACCESS).store(now_ms(), Ordering::Relaxed);
            if header.checksummed {
                // SAFETY: the file was just made; nobody else writes it yet.
                let crc = crc32fast::hash(unsafe { &region.bytes()[..region.clamp(size)] });
                region
                    .word(OFF_CHECKSUM)
                    .store(u64::from(crc), Ordering::Relaxed);
            }
            sys::rename_no_replace(&building, &path).map_err(MappedError::io(&path))?;
            Ok(region)
        })();
        if made.is_err() {
            let _ = fs::remove_file(&building);
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
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(MappedError::io(path))?;
        let meta = file.metadata().map_err(MappedError::io(path))?;
        if !meta.is_file() {
            return Err(MappedError::CorruptHeader {
                path: path.to_path_buf(),
                reason: "not a regular file".into(),
            });
        }
        let len = meta.len();
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
        let size = region.size();
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
        let mode = file.metadata().map(|m| m.mode() & 0o660).unwrap_or(0o600) | 0o600;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Arc::new(Self {
            undo: Mutex::new(UndoLog::new(path.with_extension("undo"), mode)),
            dir,
            path,
            file,
            map,
            header,
            mode,
            locked: Mutex::new(false),
            lease: OnceLock::new(),
            reserved: AtomicU64::new(0),
            keep: AtomicBool::new(true),
            wake_on_release: AtomicBool::new(false),
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

    // ----- header words -----

    /// One aligned mutable header word.
    fn word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= HEADER_LEN);
        // SAFETY: the mapping is page-aligned and at least HEADER_LEN long, the
        // offsets are constants that are multiples of 8 inside the header, and
        // the mapping lives as long as `self`. Other processes touch these words
        // only through atomics too.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU64) }
    }

    /// One aligned 32-bit header word.
    fn word32(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= HEADER_LEN);
        // SAFETY: as in `word`, for a 4-aligned offset.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU32) }
    }

    /// The low 32 bits of the commit generation (little-endian: its first
    /// four bytes), the word sleepers wait on. All platforms with futexes this
    /// builds on (Linux on x86-64, AArch64) are little-endian.
    fn generation_low(&self) -> &AtomicU32 {
        self.word32(OFF_COMMIT)
    }

    fn clamp(&self, size: u64) -> usize {
        usize::try_from(size.min(self.header.capacity)).unwrap_or(usize::MAX)
    }

    fn capacity(&self) -> usize {
        self.map.len() - HEADER_LEN
    }

    /// The data bytes (the whole capacity).
    ///
    /// # Safety
    /// Other processes may write these bytes while they hold the region's
    /// lock. The caller holds the lock (or is the registry's block, whose
    /// users hold it), so the bytes do not change under the returned slice
    /// except through this process's own `&mut` accesses, which Rust's
    /// borrows of the block already order.
    unsafe fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping holds HEADER_LEN + capacity bytes and lives as
        // long as `self`; the contract above covers concurrent writers.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(HEADER_LEN), self.capacity()) }
    }

    /// The data bytes, writable.
    ///
    /// # Safety
    /// The caller holds the region's lock (so no other process writes), and
    /// no other reference into the data is alive in this process for as long
    /// as the returned slice is: it is the registry's block under the
    /// registry's write lock (the only `MappedBytes` of a region lives in its
    /// registry slot), or a rollback / message copy made while this mapping's
    /// lock is held and before any block borrow.
    #[allow(clippy::mut_from_ref)]
    unsafe fn data_mut(&self) -> &mut [u8] {
        // SAFETY: as in `bytes`; exclusivity is the caller's contract above.
        unsafe {
            std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(HEADER_LEN), self.capacity())
        }
    }

    /// What the header's mutable words say now.
    pub fn status(&self) -> RegionStatus {
        let holder = match self.word32(OFF_LOCK).load(Ordering::Acquire) {
            0 => None,
            id => Some(LockHolder {
                pid: self.word32(OFF_LOCK_PID).load(Ordering::Relaxed),
                alive: sys::lease_alive(&self.dir, id),
            }),
        };
        RegionStatus {
            header: self.header.clone(),
            size: self.size(),
            commit_generation: self.commit_generation(),
            last_access_ms: self.word(OFF_ACCESS).load(Ordering::Relaxed),
            lock_pid: self.word32(OFF_LOCK_PID).load(Ordering::Relaxed),
            holder,
            undo_pending: self.undo_pending(),
            freed: self.freed(),
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

    /// Whether the region was freed (by any process): its file is gone or
    /// going, and this mapping is stale. One load of a header word.
    pub fn freed(&self) -> bool {
        self.word(OFF_FREED).load(Ordering::Acquire) != 0
    }

    /// Whether a transaction is open (one load of a header word; no system call).
    fn undo_pending(&self) -> bool {
        self.word(OFF_IN_TX).load(Ordering::Acquire) != 0
    }

    /// A [`Block`] over the data bytes for the region registry. Writes through
    /// it save each page to the undo log first, and are refused
    /// ([`shm_pool::PoolError::WriteRefused`]) when that fails.
    pub fn block(self: Arc<Self>) -> Block {
        let requested = self.clamp(self.size());
        Block::from_external(Box::new(MappedBytes { region: self }), requested)
    }

    /// Whether the files are kept when the last reference is dropped (default
    /// `true`). The manager sets `false` for a region it frees, so the file is
    /// removed (and the region marked freed for every other mapping) once the
    /// registry lets go of its bytes.
    pub fn set_keep(&self, keep: bool) {
        self.keep.store(keep, Ordering::Relaxed);
    }

    /// Declares this process a user of the region for as long as the mapping
    /// lives (a shared `flock` on the file, which the kernel drops when the
    /// process dies), so that [`in_use`] tells `evm shm rm` not to remove it.
    ///
    /// # Errors
    /// [`MappedError::Io`].
    pub fn mark_in_use(&self) -> Result<(), MappedError> {
        sys::try_flock(&self.file, false)
            .map(|_| ())
            .map_err(MappedError::io(&self.path))
    }

    // ----- the lock -----

    fn lease(&self) -> Result<&Arc<Lease>, MappedError> {
        if let Some(lease) = self.lease.get() {
            return Ok(lease);
        }
        let lease = sys::lease(&self.dir, self.mode)?;
        Ok(self.lease.get_or_init(|| lease))
    }

    /// Takes the region's lock (a word in the header: an atomic
    /// compare-and-swap when free, else a short spin and a futex sleep; a
    /// holder found dead is taken over), waiting at most `timeout`, then rolls
    /// back an interrupted transaction if one is open. Re-entrant within this
    /// mapping (the manager's lock table serialises its process's
    /// transactions). Returns the pages rolled back.
    ///
    /// # Errors
    /// [`MappedError::LockTimeout`], [`MappedError::Freed`] (another process
    /// freed the region: this mapping is stale), [`MappedError::Io`].
    pub fn lock(&self, timeout: Duration) -> Result<usize, MappedError> {
        let mut locked = self.locked.lock();
        self.lock_held(&mut locked, timeout)
    }

    /// [`lock`](Self::lock) with this mapping's `locked` flag already in hand.
    fn lock_held(&self, locked: &mut bool, timeout: Duration) -> Result<usize, MappedError> {
        if *locked {
            return Ok(0);
        }
        if self.freed() {
            return Err(self.freed_error());
        }
        let id = self.lease()?.id();
        self.acquire_word(id, timeout)?;
        *locked = true;
        self.word32(OFF_LOCK_PID)
            .store(std::process::id(), Ordering::Relaxed);
        self.word(OFF_ACCESS).store(now_ms(), Ordering::Relaxed);
        // Freed while we waited: its last holder removed it.
        if self.freed() {
            self.release(locked);
            return Err(self.freed_error());
        }
        match self.recover() {
            Ok(pages) => Ok(pages),
            Err(e) => {
                self.release(locked);
                Err(e)
            }
        }
    }

    fn freed_error(&self) -> MappedError {
        MappedError::Freed {
            path: self.path.clone(),
        }
    }

    fn acquire_word(&self, id: u32, timeout: Duration) -> Result<(), MappedError> {
        let word = self.word32(OFF_LOCK);
        let take = |from: u32| {
            word.compare_exchange(from, id, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        };
        if take(0) {
            return Ok(());
        }
        for _ in 0..LOCK_SPINS {
            std::hint::spin_loop();
            if word.load(Ordering::Relaxed) == 0 && take(0) {
                return Ok(());
            }
        }
        let start = Instant::now();
        // A dead holder is rare: live contention costs no lease check for the
        // first millisecond.
        let mut next_check = HOLDER_CHECK / 10;
        loop {
            let holder = word.load(Ordering::SeqCst);
            if holder == 0 {
                if take(0) {
                    return Ok(());
                }
                continue;
            }
            let waited = start.elapsed();
            if waited >= next_check {
                // A dead holder's lock is ours to take over: its transaction
                // is rolled back by `recover`.
                if !sys::lease_alive(&self.dir, holder) {
                    if take(holder) {
                        return Ok(());
                    }
                    continue;
                }
                next_check = waited + HOLDER_CHECK;
            }
            if waited >= timeout {
                return Err(MappedError::LockTimeout {
                    path: self.path.clone(),
                    waited,
                    holder: self.word32(OFF_LOCK_PID).load(Ordering::Relaxed),
                });
            }
            let waiters = self.word32(OFF_LOCK_WAITERS);
            waiters.fetch_add(1, Ordering::SeqCst);
            // Re-check after registering: a release in between either sees
            // the waiter and wakes it, or is seen here (SeqCst on both sides).
            if word.load(Ordering::SeqCst) == holder {
                let left = (timeout - waited).min(next_check.saturating_sub(waited));
                sys::futex_wait(word, holder, left.max(Duration::from_micros(1)));
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Frees the lock word and wakes its sleepers, then, after a commit, the
    /// processes waiting for one.
    fn release(&self, locked: &mut bool) {
        self.word32(OFF_LOCK_PID).store(0, Ordering::Relaxed);
        self.word32(OFF_LOCK).store(0, Ordering::SeqCst);
        if self.word32(OFF_LOCK_WAITERS).load(Ordering::SeqCst) > 0 {
            sys::futex_wake(self.word32(OFF_LOCK));
        }
        // The generation moved before the lock word (SeqCst both): a waiter
        // that registered after this load saw the new generation.
        if self.wake_on_release.swap(false, Ordering::Relaxed)
            && self.word32(OFF_WAITERS).load(Ordering::SeqCst) > 0
        {
            sys::futex_wake(self.generation_low());
        }
        *locked = false;
    }

    /// Whether this mapping holds the lock.
    pub fn is_locked(&self) -> bool {
        *self.locked.lock()
    }

    /// Commits (see [`commit`](Self::commit)) and releases the lock. Nothing
    /// happens when this mapping does not hold it.
    ///
    /// # Errors
    /// As [`commit`](Self::commit); the lock is released anyway.
    pub fn unlock(&self, size: Option<u64>) -> Result<(), MappedError> {
        let mut locked = self.locked.lock();
        self.unlock_held(&mut locked, size)
    }

    fn unlock_held(&self, locked: &mut bool, size: Option<u64>) -> Result<(), MappedError> {
        if !*locked {
            return Ok(());
        }
        let committed = self.commit(size);
        self.release(locked);
        committed
    }

    /// Publishes the writes since the last commit: stores `size` (when given)
    /// and the contents checksum (Paranoid), then bumps the commit generation
    /// — the commit point: every undo record carries the generation it was
    /// saved under, so the bump makes them all stale at once (no system call).
    /// `wait_for_commit` sleepers are woken when the lock is then released. A
    /// commit with nothing written only refreshes the access time.
    ///
    /// # Errors
    /// [`MappedError::Io`] when only the size changed and its undo record
    /// could not be written: the size is not published then.
    pub fn commit(&self, size: Option<u64>) -> Result<(), MappedError> {
        let mut undo = self.undo.lock();
        let changed = undo.in_transaction() || size.is_some_and(|s| s != self.size());
        if changed {
            if !undo.in_transaction() {
                // A size-only change: its old value is saved like any other.
                self.save(&mut undo, 0, 0)?;
            }
            let size = size
                .unwrap_or_else(|| self.size())
                .min(self.header.max_size);
            self.publish_words(size);
            undo.committed();
        }
        self.word(OFF_ACCESS).store(now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Stores the size (and the checksum), bumps the generation, clears the
    /// in-transaction word, and has `release` wake `wait_for_commit` sleepers.
    fn publish_words(&self, size: u64) {
        if self.header.checksummed {
            // SAFETY: the caller holds the lock.
            let crc = crc32fast::hash(unsafe { &self.bytes()[..self.clamp(size)] });
            self.word(OFF_CHECKSUM)
                .store(u64::from(crc), Ordering::Relaxed);
        }
        self.word(OFF_SIZE).store(size, Ordering::Release);
        // The commit point (the data and words above are visible to whoever
        // sees the new generation).
        self.word(OFF_COMMIT).fetch_add(1, Ordering::SeqCst);
        self.word(OFF_IN_TX).store(0, Ordering::Release);
        // Sleepers are woken once the lock is released too (`release`): woken
        // earlier, a reader would find the lock still taken and sleep again.
        self.wake_on_release.store(true, Ordering::Relaxed);
    }

    /// Message mode: copies `bytes` in at `offset` and publishes them as one
    /// commit, *without* undo records (a message needs no rollback, and this
    /// saves the log's system call): lock, copy, size, generation + 1, wake,
    /// unlock. Returns the new commit generation. For regions used as message
    /// channels only: a publisher killed mid-copy leaves the bytes torn, but
    /// never announced (the generation does not move; the next lock holder
    /// clears the mark and the next message overwrites them).
    ///
    /// ```
    /// use shm_mapped::{MappedRegion, RegionHeader};
    /// use shm_primitives::{Address, RegionHandle};
    /// use std::time::Duration;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let header = RegionHeader::new(RegionHandle::new(1, 1).unwrap(), 4096, Address::ZERO);
    /// let channel = MappedRegion::create(dir.path(), &header, 0)?;
    /// let reader = MappedRegion::open(channel.path())?;
    /// let generation = channel.publish(0, b"ping", Duration::from_secs(1))?;
    /// assert_eq!(reader.wait_for_commit(generation - 1, Duration::from_secs(1)), generation);
    /// let mut buf = [0u8; 4];
    /// reader.read_at(0, &mut buf, Duration::from_secs(1))?;
    /// assert_eq!(&buf, b"ping");
    /// # Ok::<(), shm_mapped::MappedError>(())
    /// ```
    ///
    /// # Errors
    /// As [`lock`](Self::lock); [`MappedError::TooLarge`] when the message
    /// does not fit the region's maximum size; [`MappedError::Io`] when the
    /// file has no room for its pages (a full disk).
    pub fn publish(
        &self,
        offset: usize,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<u64, MappedError> {
        let end = offset
            .checked_add(bytes.len())
            .filter(|&end| end as u64 <= self.header.max_size)
            .ok_or(MappedError::TooLarge(
                (offset as u64).saturating_add(bytes.len() as u64),
            ))?;
        let mut locked = self.locked.lock();
        if *locked {
            // Inside a transaction of this mapping: an ordinary journalled
            // write, which that transaction's commit publishes.
            self.save_pages(offset, bytes.len())?;
            // SAFETY: this mapping holds the lock, and message channels are
            // not registry regions, so no block borrow of it is alive.
            unsafe { self.data_mut()[offset..end].copy_from_slice(bytes) };
            return Ok(self.commit_generation());
        }
        self.lock_held(&mut locked, timeout)?;
        let published = self
            .reserve_through(end)
            .map_err(MappedError::io(&self.path))
            .map(|()| {
                self.word(OFF_IN_TX).store(IN_TX_MESSAGE, Ordering::Release);
                // SAFETY: as above.
                unsafe { self.data_mut()[offset..end].copy_from_slice(bytes) };
                self.publish_words(self.size().max(end as u64));
                self.commit_generation()
            });
        self.release(&mut locked);
        published
    }

    /// Copies committed bytes at `offset` into `buf` under the region's lock
    /// (taken for the copy unless this mapping holds it already, in which case
    /// the caller's own writes are what it sees). Bytes past the committed
    /// size read as zero. Returns how many came from the region.
    ///
    /// # Errors
    /// As [`lock`](Self::lock).
    pub fn read_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, MappedError> {
        let mut locked = self.locked.lock();
        let took = !*locked;
        self.lock_held(&mut locked, timeout)?;
        let size = self.clamp(self.size());
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(size);
        let n = (size - start).min(buf.len());
        // SAFETY: this mapping holds the lock: no other process writes, and
        // this process's other threads wait for `locked`.
        buf[..n].copy_from_slice(unsafe { &self.bytes()[start..start + n] });
        buf[n..].fill(0);
        if took {
            self.unlock_held(&mut locked, None)?;
        }
        Ok(n)
    }

    /// Waits until the commit generation is no longer `seen` — another
    /// process published — and returns it: spins a hundred times (under a
    /// microsecond; spinning longer starves the writer on a busy machine),
    /// then sleeps (a futex on the shared header word, woken by the commit)
    /// for at most `timeout`; returns the unchanged generation when the time
    /// is up.
    pub fn wait_for_commit(&self, seen: u64, timeout: Duration) -> u64 {
        self.wait_for_commit_spinning(seen, Duration::ZERO, timeout)
    }

    /// As [`wait_for_commit`](Self::wait_for_commit), spinning for up to
    /// `spin` before sleeping: on an idle core a reader that spins sees a
    /// commit within a cache-line transfer instead of a wake-up, at the price
    /// of that core; on a busy machine it takes the core from the writer.
    pub fn wait_for_commit_spinning(&self, seen: u64, spin: Duration, timeout: Duration) -> u64 {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let now = self.commit_generation();
            if now != seen {
                return now;
            }
            std::hint::spin_loop();
            spins += 1;
            // At least a hundred spins; past that, look at the clock every 64.
            if spins >= 100 && spins.is_multiple_of(64) && start.elapsed() >= spin {
                break;
            }
        }
        let deadline = start + timeout;
        let waiters = self.word32(OFF_WAITERS);
        loop {
            let now = self.commit_generation();
            let left = deadline.saturating_duration_since(Instant::now());
            if now != seen || left.is_zero() {
                return now;
            }
            waiters.fetch_add(1, Ordering::SeqCst);
            // Re-check after registering: a commit in between either sees the
            // waiter and wakes it, or is seen here (SeqCst on both sides).
            if self.word(OFF_COMMIT).load(Ordering::SeqCst) == seen {
                sys::futex_wait(self.generation_low(), seen as u32, left);
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    // ----- undo log and recovery -----

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

    /// Gives the file pages for data bytes `0..end` (see [`sys::reserve`]).
    fn reserve_through(&self, end: usize) -> std::io::Result<()> {
        let end = (end.div_ceil(PAGE) * PAGE).min(self.capacity()) as u64;
        let reserved = self.reserved.load(Ordering::Acquire);
        if end <= reserved {
            return Ok(());
        }
        sys::reserve(&self.file, HEADER_LEN as u64 + reserved, end - reserved)?;
        self.reserved.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Saves the pages of data bytes `offset..offset + len` not saved since
    /// the last commit (and, first in a transaction, the header words), after
    /// making sure the file has pages for them.
    ///
    /// # Errors
    /// [`MappedError::Io`] when the file or its undo log has no room (or
    /// cannot be written): the bytes must not change then.
    fn save_pages(&self, offset: usize, len: usize) -> Result<(), MappedError> {
        if len == 0 {
            return Ok(());
        }
        self.reserve_through(offset.saturating_add(len))
            .map_err(MappedError::io(&self.path))?;
        let mut undo = self.undo.lock();
        self.save(&mut undo, offset, len)
    }

    fn save(&self, undo: &mut UndoLog, offset: usize, len: usize) -> Result<(), MappedError> {
        let first = !undo.in_transaction();
        if first {
            // Flag first: a holder that finds it set reads the log.
            self.word(OFF_IN_TX).store(IN_TX_UNDO, Ordering::SeqCst);
        }
        let (first_page, last_page) = if len == 0 {
            (1, 0) // header words only
        } else {
            ((offset / PAGE) as u64, ((offset + len - 1) / PAGE) as u64)
        };
        // SAFETY: the caller holds the lock; the pages are read before the
        // write they guard.
        let data = unsafe { self.bytes() };
        let saved = undo.save(
            self.commit_generation(),
            &self.header_words(),
            data,
            first_page,
            last_page,
        );
        if let Err(source) = saved {
            if first {
                // Nothing of this transaction is in the log: nothing is open.
                self.word(OFF_IN_TX).store(0, Ordering::SeqCst);
            }
            return Err(MappedError::Io {
                path: undo.path().to_path_buf(),
                source,
            });
        }
        Ok(())
    }

    /// Rolls back an interrupted transaction from the undo log (its writer
    /// died holding the lock): restores the saved pages and header words,
    /// then empties the log. Records of older generations (committed) and a
    /// torn last record are ignored; a torn message (message mode) has nothing
    /// to restore. Returns the pages restored. Called by [`lock`](Self::lock).
    fn recover(&self) -> Result<usize, MappedError> {
        let mut undo = self.undo.lock();
        if undo.in_transaction() {
            // Our own transaction's log: nothing to recover.
            return Ok(0);
        }
        // The common case: one load, no system call.
        let mark = self.word(OFF_IN_TX).load(Ordering::Acquire);
        if mark == 0 {
            return Ok(0);
        }
        let mut pages = 0;
        if mark == IN_TX_UNDO {
            let records = undo
                .read_current(self.commit_generation())
                .map_err(MappedError::io(undo.path()))?;
            // SAFETY: this mapping holds the lock and this runs inside `lock`,
            // before any block borrow of this region is used again.
            let data = unsafe { self.data_mut() };
            let mut header = None;
            for record in records {
                match record {
                    Record::Header(words) => header = Some(words),
                    Record::Page { page, bytes } => {
                        let start = usize::try_from(page)
                            .unwrap_or(usize::MAX)
                            .saturating_mul(PAGE);
                        if let Some(target) = data.get_mut(start..start.saturating_add(bytes.len()))
                        {
                            target.copy_from_slice(&bytes);
                            pages += 1;
                        }
                    }
                }
            }
            if let Some(words) = header {
                let size = le_u64(&words, 0);
                if size > self.header.max_size {
                    // A well-formed record with a size the region can never
                    // have: the log is damaged; restoring it would make every
                    // later attach refuse the namespace.
                    return Err(MappedError::CorruptHeader {
                        path: undo.path().to_path_buf(),
                        reason: format!(
                            "undo log restores size {size}, above the maximum {}",
                            self.header.max_size
                        ),
                    });
                }
                self.word(OFF_SIZE).store(size, Ordering::Release);
                self.word(OFF_CHECKSUM)
                    .store(le_u64(&words, 16), Ordering::Relaxed);
                self.word(OFF_COMMIT)
                    .store(le_u64(&words, 8), Ordering::Release);
            }
            // The restored generation equals the records' base: empty the log
            // so they are not applied again, then clear the flag.
            undo.truncate().map_err(MappedError::io(undo.path()))?;
        }
        self.word(OFF_IN_TX).store(0, Ordering::Release);
        Ok(pages)
    }

    /// Checks the contents against the checksum of the last commit (only for
    /// checksummed regions; others pass). The caller holds the lock.
    ///
    /// # Errors
    /// [`MappedError::ChecksumMismatch`].
    pub fn verify_checksum(&self) -> Result<(), MappedError> {
        if !self.header.checksummed {
            return Ok(());
        }
        let stored = self.word(OFF_CHECKSUM).load(Ordering::Relaxed) as u32;
        // SAFETY: the caller holds the lock (or nobody writes: a fresh file).
        let computed = crc32fast::hash(unsafe { &self.bytes()[..self.clamp(self.size())] });
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

    /// Marks the region freed for every process that maps it (they find out
    /// at their next lock). [`remove_files`](Self::remove_files) and dropping
    /// a region that is not kept do this too; call it before releasing the
    /// lock of a region freed while locked.
    pub fn mark_freed(&self) {
        self.word(OFF_FREED).store(1, Ordering::SeqCst);
    }

    /// Marks the region freed for every process that maps it (they find out
    /// at their next lock) and removes its file and undo log — unless the
    /// name already belongs to another file (the region was re-made there).
    ///
    /// # Errors
    /// [`MappedError::Io`].
    pub fn remove_files(&self) -> Result<(), MappedError> {
        self.mark_freed();
        if !sys::same_file(&self.file, &self.path) {
            return Ok(());
        }
        let _ = fs::remove_file(self.path.with_extension("undo"));
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(MappedError::io(&self.path)(e))
            }
            _ => Ok(()),
        }
    }
}

/// Whether a live process other than this open uses the region file at
/// `path` (it attached it: [`MappedRegion::mark_in_use`]).
///
/// # Errors
/// [`MappedError::Io`] when the file cannot be opened.
pub fn in_use(path: &Path) -> Result<bool, MappedError> {
    let file = File::open(path).map_err(MappedError::io(path))?;
    let free = sys::try_flock(&file, true).map_err(MappedError::io(path))?;
    if free {
        sys::funlock(&file);
    }
    Ok(!free)
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        // A mapping dropped holding the lock lets go without committing: an
        // open transaction is rolled back by the next holder, as if this
        // process had died.
        let remove = !self.keep.load(Ordering::Relaxed);
        if remove {
            // Marked before the lock goes: a process that gets the lock next
            // must find it freed, not use a file about to be removed.
            self.mark_freed();
        }
        if *self.locked.get_mut() {
            let mut held = true;
            self.release(&mut held);
        }
        if remove {
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
        // SAFETY: the registry's users hold the region's lock while they use
        // its block (the manager's lock table takes it first).
        unsafe { self.region.bytes() }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the block (and so this) is the only writer in the process:
        // `&mut self` comes from the registry's write lock on the region, whose
        // users hold the region's lock.
        unsafe { self.region.data_mut() }
    }

    fn before_write(&mut self, offset: usize, len: usize) -> Result<(), WriteRefused> {
        self.region
            .save_pages(offset, len)
            .map_err(|e| WriteRefused(format!("region journal failed: {e}")))
    }
}
