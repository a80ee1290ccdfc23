//! The system calls of region files, in one place: futex wait and wake on
//! shared header words, `flock` on namespace files, `fallocate`, process
//! checks, and the per-process *lease* that tells a live lock holder from a
//! dead one.
//!
//! # Leases
//!
//! A region's lock is a word in its header (see `region.rs`), not a `flock`,
//! so the kernel does not release it when its holder dies. Instead every
//! process that locks regions of a namespace holds a *lease*: a file
//! `<namespace>/.lease.XXXXXXXX` on which it keeps an exclusive `flock` for as
//! long as it lives. The lock word holds the lease's id; a waiter that finds
//! the word taken checks the lease: if nobody holds its `flock` (or the file
//! is gone), the holder is dead and the waiter takes the lock over. This
//! works across pid namespaces (containers sharing `/dev/shm`) and never
//! mistakes a reused pid for the dead holder.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::MappedError;

/// Sleeps while `word` holds `expected`, at most `timeout` (or returns at once).
#[cfg(target_os = "linux")]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
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
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE does not touch the word.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn futex_wait(_word: &AtomicU32, _expected: u32, timeout: Duration) {
    std::thread::sleep(timeout.min(Duration::from_micros(50)));
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn futex_wake(_word: &AtomicU32) {}

/// Tries a `flock` without waiting: `Ok(true)` when taken, `Ok(false)` when
/// another open file holds a conflicting one.
pub(crate) fn try_flock(file: &File, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    loop {
        // SAFETY: the descriptor is open for the life of `file`.
        if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// Drops this open file's `flock`.
pub(crate) fn funlock(file: &File) {
    // SAFETY: the descriptor is open for the life of `file`.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
}

/// Takes an exclusive `flock` on `file`, polling with a growing pause, for at
/// most `timeout` (namespace lock files; regions lock with a header word).
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
        if try_flock(file, true).map_err(MappedError::io(path))? {
            return Ok(());
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

/// Gives `file` real pages for `offset..offset + len` now, so that writing
/// them through the mapping later cannot fault (a full tmpfs would kill the
/// process with SIGBUS); a full disk is reported here instead.
pub(crate) fn reserve(file: &File, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        };
        loop {
            // SAFETY: the descriptor is open for the life of `file`; mode 0
            // only allocates (the file is already at least this long).
            if unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) } == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                // A file system without fallocate: pages are made on first write.
                Some(libc::EOPNOTSUPP) => return Ok(()),
                _ => return Err(err),
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len);
        Ok(())
    }
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`), in one step.
pub(crate) fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::ffi::OsStrExt;
        let cstr = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
        };
        let (from, to) = (cstr(from)?, cstr(to)?);
        // SAFETY: both paths are valid NUL-terminated strings for the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        // Elsewhere: refuse an existing target, then rename (a narrow race:
        // an empty directory made in between would be replaced).
        if fs::symlink_metadata(to).is_ok() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        fs::rename(from, to)
    }
}

/// Whether the file system holding `dir` keeps its files in memory (tmpfs,
/// ramfs): creating, sizing and removing a file there is a few microseconds
/// of kernel work, where a disk file system may write a journal and flush
/// data on rename. Unknown file systems count as disks.
pub(crate) fn memory_backed(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        const RAMFS_MAGIC: i64 = 0x8584_58f6;
        let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `path` is a valid NUL-terminated string and `stat` a
        // zeroed buffer of the type `statfs` fills.
        let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above; the kernel writes only within `stat`.
        if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
            return false;
        }
        #[allow(clippy::unnecessary_cast)] // the field's type differs by target
        let kind = stat.f_type as i64;
        kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

/// Whether `path` still names the file open as `file` (same device and inode):
/// a region file that was freed and re-made under the same name is another file.
pub(crate) fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Sets a file's permission bits exactly (the umask applies at creation).
pub(crate) fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// The effective uid of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process is in group `gid` (its effective or a supplementary group).
pub(crate) fn in_group(gid: u32) -> bool {
    // SAFETY: getegid has no preconditions and cannot fail.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    // SAFETY: a zero-length call only counts the groups.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let Ok(len) = usize::try_from(count) else {
        return false;
    };
    let mut groups = vec![0 as libc::gid_t; len];
    // SAFETY: `groups` has room for `count` entries.
    let got = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    usize::try_from(got).is_ok_and(|n| groups[..n.min(len)].contains(&gid))
}

/// Whether process `pid` is alive (`kill(pid, 0)`), in this pid namespace.
/// Diagnostic only: liveness of a lock holder is decided by its lease.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

// ----- leases -----

const LEASE_PREFIX: &str = ".lease.";
const LEASE_NEW_PREFIX: &str = ".lease-new.";

/// This process's lease in one namespace directory (see the module docs).
#[derive(Debug)]
pub(crate) struct Lease {
    id: u32,
    path: PathBuf,
    /// Holds the exclusive `flock` that says "alive".
    _file: File,
}

impl Lease {
    /// The id stored in the lock words of regions this process holds (never 0).
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Makes a lease file in `dir` with permission bits `mode`: created under a
    /// temporary name, locked, and only then linked under its id, so a file
    /// under a lease name is never seen unlocked while its process lives.
    fn create(dir: &Path, mode: u32) -> Result<Self, MappedError> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("{LEASE_NEW_PREFIX}{pid}.{n}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(MappedError::io(&tmp))?;
        let made = (|| {
            set_mode(&file, mode).map_err(MappedError::io(&tmp))?;
            if !try_flock(&file, true).map_err(MappedError::io(&tmp))? {
                return Err(MappedError::io(&tmp)(io::Error::other("lease file locked")));
            }
            let mut seed = u64::from(pid) << 32
                ^ u64::from(n)
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
            for _ in 0..64 {
                // xorshift64*: ids only need to differ, not to be secret.
                seed ^= seed >> 12;
                seed ^= seed << 25;
                seed ^= seed >> 27;
                let id = (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32;
                if id == 0 {
                    continue;
                }
                let path = lease_path(dir, id);
                match fs::hard_link(&tmp, &path) {
                    Ok(()) => return Ok((id, path)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(MappedError::io(&path)(e)),
                }
            }
            Err(MappedError::io(&tmp)(io::Error::other(
                "no free lease id after 64 tries",
            )))
        })();
        let _ = fs::remove_file(&tmp);
        let (id, path) = made?;
        Ok(Self {
            id,
            path,
            _file: file,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn lease_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{LEASE_PREFIX}{id:08x}"))
}

/// The leases of this process, by namespace directory; a lease lives as long
/// as some region of its directory holds it.
static LEASES: Mutex<Vec<(PathBuf, Weak<Lease>)>> = Mutex::new(Vec::new());

/// This process's lease in `dir`, made (with permission bits `mode`) on
/// first use; dead processes' lease files are removed then.
pub(crate) fn lease(dir: &Path, mode: u32) -> Result<Arc<Lease>, MappedError> {
    let mut leases = LEASES.lock();
    leases.retain(|(_, lease)| lease.strong_count() > 0);
    if let Some(lease) = leases
        .iter()
        .find(|(d, _)| d == dir)
        .and_then(|(_, lease)| lease.upgrade())
    {
        return Ok(lease);
    }
    remove_dead_leases(dir);
    let lease = Arc::new(Lease::create(dir, mode)?);
    leases.push((dir.to_path_buf(), Arc::downgrade(&lease)));
    Ok(lease)
}

/// Whether the process holding lease `id` of `dir` is alive: its lease file
/// exists and someone holds its `flock`. When it cannot tell (no permission
/// to open the file), it says alive: a lock is never taken from a live holder.
pub(crate) fn lease_alive(dir: &Path, id: u32) -> bool {
    match File::open(lease_path(dir, id)) {
        Err(e) => e.kind() != io::ErrorKind::NotFound,
        Ok(file) => !matches!(try_flock(&file, false), Ok(true)),
    }
}

/// Removes the lease files of dead processes (and temporary ones a process
/// died making). A file a live process holds is never removed.
fn remove_dead_leases(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(LEASE_PREFIX) || name.starts_with(LEASE_NEW_PREFIX)) {
            continue;
        }
        let path = entry.path();
        // A temporary file is locked only an instant after it is made: leave
        // young ones to their maker.
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(60));
        if name.starts_with(LEASE_NEW_PREFIX) && young {
            continue;
        }
        if let Ok(file) = File::open(&path) {
            // Taken: nobody holds it, so its process is gone. Removed while we
            // hold the lock, so a reader that opened it first also finds it free.
            if matches!(try_flock(&file, true), Ok(true)) {
                let _ = fs::remove_file(&path);
            }
        }
    }
}
