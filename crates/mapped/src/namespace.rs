//! A namespace: one directory of region files shared by the processes that
//! attach to it.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shm_primitives::RegionHandle;

use crate::region::{flock_within, region_file_name};
use crate::{MappedError, MappedRegion, RegionHeader, RegionStatus};

/// The lock file that serialises handle allocation and snapshot loads.
const ALLOC_LOCK: &str = ".alloc.lock";
/// The lock file that processes hold while attached (shared with IPC).
const USE_LOCK: &str = ".use.lock";
/// Highest generation issued per handle index (u32 LE each, index 1 first), so
/// generations are never reused across processes and restarts.
const GENERATIONS: &str = "generations";

/// How long handle allocation waits for another process's allocation.
const ALLOC_WAIT: Duration = Duration::from_secs(5);

/// The default root of namespaces: `/dev/shm` when it exists, else the
/// system's temporary directory.
pub fn default_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// One entry of [`Namespace::list`]: a region file and what it holds, or why
/// it could not be read.
#[derive(Debug)]
pub struct ListedRegion {
    /// The file.
    pub path: PathBuf,
    /// Its status, or the error opening it gave.
    pub status: Result<RegionStatus, MappedError>,
}

/// A namespace directory (`<root>/<name>/`), created if missing.
///
/// ```
/// use shm_mapped::{Namespace, RegionHeader};
/// use shm_primitives::Address;
///
/// let root = tempfile::tempdir().unwrap();
/// let ns = Namespace::open(root.path(), "demo")?;
/// let region = ns.create_region(|_| (false, 0), |h| RegionHeader::new(h, 4096, Address::ZERO).named("a"), 64)?;
/// assert_eq!(region.header().handle.index(), 1);
/// assert_eq!(ns.list()?.len(), 1);
/// ns.remove("a")?;
/// assert!(ns.list()?.is_empty());
/// # Ok::<(), shm_mapped::MappedError>(())
/// ```
#[derive(Debug)]
pub struct Namespace {
    name: String,
    dir: PathBuf,
    alloc_lock: File,
    use_lock: File,
}

/// Whether `name` is a safe single path component.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Namespace {
    /// Opens (creating if needed) namespace `name` under `root`, and checks
    /// that the directory is writable.
    ///
    /// # Errors
    /// [`MappedError::InvalidNamespace`], [`MappedError::NotWritable`].
    pub fn open(root: &Path, name: &str) -> Result<Self, MappedError> {
        if !valid_name(name) {
            return Err(MappedError::InvalidNamespace(name.to_string()));
        }
        let dir = root.join(name);
        let not_writable = |source| MappedError::NotWritable {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(not_writable)?;
        let open_lock = |file: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(dir.join(file))
        };
        let alloc_lock = open_lock(ALLOC_LOCK).map_err(not_writable)?;
        let use_lock = open_lock(USE_LOCK).map_err(not_writable)?;
        // Opening an existing lock file needs no write access to the
        // directory: probe it with a file of our own.
        let probe = dir.join(format!(".probe.{}", std::process::id()));
        File::create(&probe).map_err(not_writable)?;
        let _ = fs::remove_file(&probe);
        Ok(Self {
            name: name.to_string(),
            dir,
            alloc_lock,
            use_lock,
        })
    }

    /// Opens namespace `name` under [`default_root`].
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_default(name: &str) -> Result<Self, MappedError> {
        Self::open(&default_root(), name)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Declares this process a user of the namespace for as long as the
    /// `Namespace` lives: `shared` (IPC: other processes may attach too) or
    /// exclusive (no other process may use it).
    ///
    /// # Errors
    /// [`MappedError::NamespaceBusy`].
    pub fn claim(&self, shared: bool) -> Result<(), MappedError> {
        let op = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
        // SAFETY: the descriptor is open for the life of `self.use_lock`.
        if unsafe { libc::flock(self.use_lock.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
            Ok(())
        } else {
            Err(MappedError::NamespaceBusy {
                path: self.dir.clone(),
            })
        }
    }

    /// Region files, by handle index.
    ///
    /// # Errors
    /// [`MappedError::Io`].
    pub fn region_paths(&self) -> Result<Vec<PathBuf>, MappedError> {
        let mut paths: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map_err(MappedError::io(&self.dir))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "shm")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('r'))
            })
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Every region file with its status (or the error it gave), by index.
    ///
    /// # Errors
    /// [`MappedError::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<Vec<ListedRegion>, MappedError> {
        Ok(self
            .region_paths()?
            .into_iter()
            .map(|path| ListedRegion {
                status: MappedRegion::open(&path).map(|r| r.status()),
                path,
            })
            .collect())
    }

    /// The file of the region called `key`: its name, its handle (decimal or
    /// `0x` hex, as pushed on the stack) or `#index`.
    ///
    /// # Errors
    /// [`MappedError::NotFound`], [`MappedError::Io`].
    pub fn find(&self, key: &str) -> Result<PathBuf, MappedError> {
        let by_handle = parse_handle(key);
        for path in self.region_paths()? {
            let Ok(region) = MappedRegion::open(&path) else {
                // An unreadable file can still be named by its index.
                if let Some(index) = key.strip_prefix('#') {
                    if path.file_name().and_then(|n| n.to_str())
                        == index.parse::<u32>().ok().map(region_file_name).as_deref()
                    {
                        return Ok(path);
                    }
                }
                continue;
            };
            let header = region.header();
            let matches = header.name.as_deref() == Some(key)
                || by_handle == Some(header.handle)
                || key.strip_prefix('#').and_then(|i| i.parse::<u32>().ok())
                    == Some(header.handle.index());
            if matches {
                return Ok(path);
            }
        }
        Err(MappedError::NotFound(key.to_string()))
    }

    /// Opens the region called `key` (see [`find`](Self::find)).
    ///
    /// # Errors
    /// As [`find`](Self::find) and [`MappedRegion::open`].
    pub fn open_region(&self, key: &str) -> Result<Arc<MappedRegion>, MappedError> {
        MappedRegion::open(&self.find(key)?)
    }

    /// Removes the region called `key` (see [`find`](Self::find)) and its undo log.
    ///
    /// # Errors
    /// As [`find`](Self::find), [`MappedError::Io`].
    pub fn remove(&self, key: &str) -> Result<PathBuf, MappedError> {
        let path = self.find(key)?;
        let _ = fs::remove_file(path.with_extension("undo"));
        fs::remove_file(&path).map_err(MappedError::io(&path))?;
        Ok(path)
    }

    /// Runs `f` holding the namespace's allocation lock (other processes'
    /// allocations and loads wait).
    ///
    /// # Errors
    /// [`MappedError::LockTimeout`], or `f`'s error.
    pub fn with_alloc_lock<T>(
        &self,
        f: impl FnOnce() -> Result<T, MappedError>,
    ) -> Result<T, MappedError> {
        let path = self.dir.join(ALLOC_LOCK);
        flock_within(&self.alloc_lock, &path, ALLOC_WAIT, || 0)?;
        let result = f();
        // SAFETY: the descriptor is open for the life of `self.alloc_lock`.
        unsafe { libc::flock(self.alloc_lock.as_raw_fd(), libc::LOCK_UN) };
        result
    }

    /// Highest generation issued per index (index 1 first).
    pub(crate) fn generations(&self) -> Vec<u32> {
        fs::read(self.dir.join(GENERATIONS))
            .map(|bytes| {
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn record_generation(&self, handle: RegionHandle) -> Result<(), MappedError> {
        let mut generations = self.generations();
        let slot = handle.index() as usize - 1;
        if generations.len() <= slot {
            generations.resize(slot + 1, 0);
        }
        generations[slot] = generations[slot].max(handle.generation());
        let bytes: Vec<u8> = generations.iter().flat_map(|g| g.to_le_bytes()).collect();
        let path = self.dir.join(GENERATIONS);
        let tmp = self
            .dir
            .join(format!(".{GENERATIONS}.{}", std::process::id()));
        fs::write(&tmp, bytes).map_err(MappedError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(MappedError::io(&path))
    }

    /// Creates a region file under a fresh handle, holding the allocation
    /// lock: the lowest index that has no file here and that `local(index)`
    /// (this process's registry: `(occupied, highest generation issued)`)
    /// does not use, at a generation above every one issued for that index
    /// here or locally. `make(handle)` gives the header; `size` is the
    /// initial logical size.
    ///
    /// # Errors
    /// [`MappedError::NoFreeHandle`], file errors, `make`'s error.
    pub fn create_region(
        &self,
        local: impl Fn(u32) -> (bool, u32),
        make: impl FnOnce(RegionHandle) -> Result<RegionHeader, MappedError>,
        size: u64,
    ) -> Result<Arc<MappedRegion>, MappedError> {
        self.with_alloc_lock(|| {
            let generations = self.generations();
            let mut index = 1u32;
            let handle = loop {
                let (occupied, local_issued) = local(index);
                let file = self.dir.join(region_file_name(index));
                let issued = generations
                    .get(index as usize - 1)
                    .copied()
                    .unwrap_or(0)
                    .max(local_issued);
                if !occupied && !file.exists() && issued < u32::MAX {
                    if let Some(handle) = RegionHandle::new(index, issued + 1) {
                        break handle;
                    }
                }
                index = index.checked_add(1).ok_or(MappedError::NoFreeHandle)?;
            };
            let header = make(handle)?;
            let region = MappedRegion::create(&self.dir, &header, size)?;
            self.record_generation(handle)?;
            Ok(region)
        })
    }
}

/// A handle as `evm run` prints it: decimal or `0x` hex of `generation << 32 | index`.
pub fn parse_handle(text: &str) -> Option<RegionHandle> {
    let raw = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => text.parse::<u64>().ok()?,
    };
    RegionHandle::new(raw as u32, (raw >> 32) as u32)
}
