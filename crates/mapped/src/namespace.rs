//! A namespace: one directory of region files shared by the processes that
//! attach to it, who may use it ([`Access`]), and the handles it issues.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shm_primitives::RegionHandle;

use crate::generations::{self, GENERATIONS};
use crate::region::{builder_of, in_use, region_file_name};
use crate::sys::{self, flock_within};
use crate::{MappedError, MappedRegion, RegionHeader, RegionStatus};

/// The lock file that serialises handle allocation and snapshot loads.
const ALLOC_LOCK: &str = ".alloc.lock";
/// The lock file that processes hold while attached (shared with IPC).
const USE_LOCK: &str = ".use.lock";

/// The highest handle index a namespace holds: its generations table takes 4
/// bytes per index (4 MiB at this limit), and a namespace never needs more
/// slots than `max_regions` allows at once across its processes.
pub const MAX_INDEX: u32 = 1 << 20;

/// How long handle allocation waits for another process's allocation.
const ALLOC_WAIT: Duration = Duration::from_secs(5);
/// How long `remove` waits for a region's lock.
const REMOVE_WAIT: Duration = Duration::from_millis(200);

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

/// Who may use a namespace's files.
///
/// The mode is a property of the namespace, fixed when its directory is made:
/// a private namespace is `0700` with `0600` files, a group namespace
/// `2770` (files take the directory's group) with `0660` files. The access a
/// process asks for decides what it makes and what it accepts: a process
/// asking for [`Access::Private`] attaches only to namespaces its own uid
/// owns; [`Access::Group`] also accepts a group namespace of another owner
/// whose group this process is in. A namespace open to every user is always
/// refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Access {
    /// The owner only (the default).
    #[default]
    Private,
    /// The owner and the members of the directory's group.
    Group,
}

impl Access {
    /// Permission bits of a new namespace directory.
    pub fn dir_mode(self) -> u32 {
        match self {
            Access::Private => 0o700,
            Access::Group => 0o2770,
        }
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
    /// Whether a live process has it attached.
    pub in_use: bool,
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
/// ns.remove("a", false)?;
/// assert!(ns.list()?.is_empty());
/// # Ok::<(), shm_mapped::MappedError>(())
/// ```
#[derive(Debug)]
pub struct Namespace {
    name: String,
    dir: PathBuf,
    /// Permission bits of the files made here (0600, or 0660 in a group namespace).
    file_mode: u32,
    alloc_lock: File,
    use_lock: File,
    /// Whether its file system keeps files in memory ([`memory_backed`](Self::memory_backed)).
    memory_backed: bool,
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
    /// Opens (creating if needed) private namespace `name` under `root`, and
    /// checks that the directory is this process's and writable. Same as
    /// [`open_with`](Self::open_with) with [`Access::Private`].
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(root: &Path, name: &str) -> Result<Self, MappedError> {
        Self::open_with(root, name, Access::Private)
    }

    /// Opens (creating if needed, with `access`'s mode) namespace `name`
    /// under `root`, checks who owns it ([`Access`]) and that it is writable.
    /// A private namespace of this process's uid whose directory lets others
    /// in (made by an older build, or by hand) is tightened to `0700`.
    ///
    /// # Errors
    /// [`MappedError::InvalidNamespace`], [`MappedError::NotWritable`],
    /// [`MappedError::ForeignOwner`], [`MappedError::Insecure`],
    /// [`MappedError::GenerationsLost`] (a namespace made here that cannot
    /// record its handle table).
    pub fn open_with(root: &Path, name: &str, access: Access) -> Result<Self, MappedError> {
        if !valid_name(name) {
            return Err(MappedError::InvalidNamespace(name.to_string()));
        }
        let dir = root.join(name);
        let not_writable = |source| MappedError::NotWritable {
            path: dir.clone(),
            source,
        };
        if !root.exists() {
            fs::create_dir_all(root).map_err(not_writable)?;
        }
        let made = match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_complete(root, &dir, name, access).map_err(not_writable)?
            }
            _ => false,
        };
        let file_mode = check_owner(&dir, access)?;
        // A directory with nothing in it (not even the lock files every open
        // makes) is new, e.g. made by hand to set up a group namespace.
        let made = made || fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_none());
        let open_lock = |file: &str| {
            let path = dir.join(file);
            let lock = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(file_mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            if lock.metadata()?.uid() == sys::euid() {
                sys::set_mode(&lock, file_mode)?;
            }
            Ok(lock)
        };
        let alloc_lock = open_lock(ALLOC_LOCK).map_err(not_writable)?;
        let use_lock = open_lock(USE_LOCK).map_err(not_writable)?;
        // Opening an existing lock file needs no write access to the
        // directory: probe it with a file of our own.
        let probe = dir.join(format!(".probe.{}", std::process::id()));
        File::create(&probe).map_err(not_writable)?;
        let _ = fs::remove_file(&probe);
        sweep_abandoned_builds(&dir);
        let ns = Self {
            name: name.to_string(),
            memory_backed: sys::memory_backed(&dir),
            dir,
            file_mode,
            alloc_lock,
            use_lock,
        };
        if made {
            // A new namespace has issued nothing: its table starts empty, and
            // from now on a missing table means a lost one.
            ns.with_alloc_lock(|| match generations::read(&ns.dir)? {
                Some(_) => Ok(()),
                None => generations::write(&ns.dir, &[], ns.file_mode),
            })?;
        }
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the namespace's file system keeps its files in memory (tmpfs
    /// or ramfs, as `/dev/shm`): making a region file there costs a few
    /// microseconds; on a disk file system it can cost milliseconds (a
    /// journal, a flush on rename), which the gas schedule prices apart.
    pub fn memory_backed(&self) -> bool {
        self.memory_backed
    }

    /// Permission bits of the files made in it: 0600, or 0660 in a group namespace.
    pub fn file_mode(&self) -> u32 {
        self.file_mode
    }

    /// Declares this process a user of the namespace for as long as the
    /// `Namespace` lives: `shared` (IPC: other processes may attach too) or
    /// exclusive (no other process may use it).
    ///
    /// # Errors
    /// [`MappedError::NamespaceBusy`].
    pub fn claim(&self, shared: bool) -> Result<(), MappedError> {
        match sys::try_flock(&self.use_lock, !shared) {
            Ok(true) => Ok(()),
            Ok(false) => Err(MappedError::NamespaceBusy {
                path: self.dir.clone(),
            }),
            Err(e) => Err(MappedError::io(self.dir.join(USE_LOCK))(e)),
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
                in_use: in_use(&path).unwrap_or(false),
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

    /// Removes the region called `key` (see [`find`](Self::find)) and its undo
    /// log, and marks it freed for every process that maps it (their next
    /// access halts as on a freed handle). Refuses a region a live process has
    /// attached or holds the lock of, unless `force`.
    ///
    /// # Errors
    /// As [`find`](Self::find), [`MappedError::InUse`], [`MappedError::Io`].
    pub fn remove(&self, key: &str, force: bool) -> Result<PathBuf, MappedError> {
        let path = self.find(key)?;
        let region = match MappedRegion::open(&path) {
            Ok(region) => region,
            // A damaged file: nobody can map it, so it can go.
            Err(_) => {
                let _ = fs::remove_file(path.with_extension("undo"));
                fs::remove_file(&path).map_err(MappedError::io(&path))?;
                return Ok(path);
            }
        };
        let holder = region.status().holder.filter(|h| h.alive);
        if !force && (holder.is_some() || in_use(&path)?) {
            return Err(MappedError::InUse {
                path,
                holder: holder
                    .map(|h| format!(" (pid {} holds its lock)", h.pid))
                    .unwrap_or_default(),
            });
        }
        // Under the lock when it can be had, so no transaction is half way.
        let locked = region.lock(REMOVE_WAIT).is_ok();
        let removed = region.remove_files();
        if locked {
            let _ = region.unlock(None);
        }
        removed?;
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
        sys::funlock(&self.alloc_lock);
        result
    }

    /// The highest generation issued per index (index 1 first).
    ///
    /// # Errors
    /// [`MappedError::GenerationsLost`] when the table is missing or damaged,
    /// [`MappedError::Io`].
    pub fn generations(&self) -> Result<Vec<u32>, MappedError> {
        generations::read(&self.dir)?.ok_or_else(|| MappedError::GenerationsLost {
            path: self.dir.join(GENERATIONS),
            reason: "the table of issued handle generations is missing".into(),
        })
    }

    /// Checks the handle table before a process attaches: it exists, is
    /// intact, and is not behind any region file (one header read per file).
    ///
    /// # Errors
    /// [`MappedError::GenerationsLost`], [`MappedError::Io`].
    pub fn check_generations(&self) -> Result<(), MappedError> {
        let table = self.generations()?;
        for region in self.region_paths()? {
            let Ok(region) = MappedRegion::open(&region) else {
                continue;
            };
            let handle = region.header().handle;
            let issued = table.get(handle.index() as usize - 1).copied().unwrap_or(0);
            if issued < handle.generation() {
                return Err(MappedError::GenerationsLost {
                    path: self.dir.join(GENERATIONS),
                    reason: format!(
                        "the table says index {} issued generations up to {issued}, but {} has generation {}",
                        handle.index(),
                        region.path().display(),
                        handle.generation()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Rebuilds a missing or damaged `generations` table from what is left:
    /// the region files' headers and whatever of the old table still decodes.
    /// Generations issued to regions that were freed since and that the old
    /// table no longer shows cannot be known: a handle of such a region could
    /// be issued again. So this is for an operator who accepts that
    /// (`evm shm repair`); attaching never does it by itself. Returns the
    /// indexes the table covers.
    ///
    /// # Errors
    /// [`MappedError::Io`], [`MappedError::LockTimeout`].
    pub fn rebuild_generations(&self) -> Result<usize, MappedError> {
        self.with_alloc_lock(|| {
            let mut table = generations::salvage(&self.dir);
            for path in self.region_paths()? {
                let Ok(region) = MappedRegion::open(&path) else {
                    continue;
                };
                let handle = region.header().handle;
                let slot = handle.index() as usize - 1;
                if table.len() <= slot {
                    table.resize(slot + 1, 0);
                }
                table[slot] = table[slot].max(handle.generation());
            }
            generations::write(&self.dir, &table, self.file_mode)?;
            Ok(table.len())
        })
    }

    /// Records that `handle` was issued (under the allocation lock): the
    /// table only ever grows.
    pub(crate) fn record_generation(&self, handle: RegionHandle) -> Result<(), MappedError> {
        if handle.index() > MAX_INDEX {
            // The table holds 4 bytes per index below it: a crafted snapshot
            // with index 0xF0000000 asked for 16 GB (fuzz finding F1).
            return Err(MappedError::CorruptHeader {
                path: self.dir.clone(),
                reason: format!(
                    "handle index {} above the {MAX_INDEX} a namespace holds",
                    handle.index()
                ),
            });
        }
        let mut table = self.generations()?;
        let slot = handle.index() as usize - 1;
        if table.len() <= slot {
            table.resize(slot + 1, 0);
        }
        table[slot] = table[slot].max(handle.generation());
        generations::write(&self.dir, &table, self.file_mode)
    }

    /// Whether `handle` was issued in this namespace (its generation is not
    /// above the highest the table records for its index): a handle that was
    /// issued and names no region file any more names a freed region.
    pub fn was_issued(&self, handle: RegionHandle) -> bool {
        generations::read(&self.dir)
            .ok()
            .flatten()
            .and_then(|table| table.get(handle.index() as usize - 1).copied())
            .is_some_and(|issued| handle.generation() <= issued)
    }

    /// Creates a region file under a fresh handle, holding the allocation
    /// lock: the lowest index that has no file here and that `local(index)`
    /// (this process's registry: `(occupied, highest generation issued)`)
    /// does not use, at a generation above every one issued for that index
    /// here or locally. `make(handle)` gives the header; `size` is the
    /// initial logical size.
    ///
    /// # Errors
    /// [`MappedError::NoFreeHandle`], [`MappedError::GenerationsLost`], file
    /// errors, `make`'s error.
    pub fn create_region(
        &self,
        local: impl Fn(u32) -> (bool, u32),
        make: impl FnOnce(RegionHandle) -> Result<RegionHeader, MappedError>,
        size: u64,
    ) -> Result<Arc<MappedRegion>, MappedError> {
        self.with_alloc_lock(|| {
            let generations = self.generations()?;
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
            // Recorded before the file exists: a crash in between wastes a
            // generation, never reuses one.
            self.record_generation(handle)?;
            MappedRegion::create_with_mode(&self.dir, &header, size, self.file_mode)
        })
    }
}

/// Makes namespace directory `dir` whole — mode set exactly, lock files and an
/// empty generations table in it — under a temporary name, then moves it into
/// place unless another process made `dir` first. So a namespace is never seen
/// without its table (which would read as a lost one). Whether this call made it.
/// How old a region file being built must be before another process may take
/// it for abandoned. A build (create, size, header, rename) takes milliseconds;
/// the age keeps a sweep from racing a live builder whose pid this process
/// cannot see (another pid namespace).
const ABANDONED_BUILD_AGE: Duration = Duration::from_secs(60);

/// Removes region files a process died building (hidden `.….new` files, see
/// `MappedRegion::create`): its process is gone and the file is older than
/// [`ABANDONED_BUILD_AGE`]. Best effort: a file it cannot judge or remove stays.
fn sweep_abandoned_builds(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(builder_of) else {
            continue;
        };
        let old_enough = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age >= ABANDONED_BUILD_AGE);
        if old_enough && !sys::process_alive(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn create_complete(root: &Path, dir: &Path, name: &str, access: Access) -> io::Result<bool> {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".{name}.new.{}.{n}", std::process::id()));
    let file_mode = if access == Access::Group {
        0o660
    } else {
        0o600
    };
    let made = (|| {
        fs::DirBuilder::new().mode(access.dir_mode()).create(&tmp)?;
        // The umask applies at creation: set the bits exactly.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(access.dir_mode()))?;
        for lock in [ALLOC_LOCK, USE_LOCK] {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(file_mode)
                .open(tmp.join(lock))?;
            sys::set_mode(&file, file_mode)?;
        }
        generations::write(&tmp, &[], file_mode).map_err(|e| match e {
            MappedError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })?;
        sys::rename_no_replace(&tmp, dir)
    })();
    match made {
        Ok(()) => Ok(true),
        // Another process made it first: theirs is the namespace.
        Err(_) if fs::symlink_metadata(dir).is_ok() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(false)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Checks who owns namespace directory `dir` and what its mode lets in,
/// against `access`; tightens a private namespace of ours that lets others in.
/// Returns the permission bits for files made in it.
fn check_owner(dir: &Path, access: Access) -> Result<u32, MappedError> {
    let insecure = |reason: String| MappedError::Insecure {
        path: dir.to_path_buf(),
        reason,
    };
    let meta = fs::symlink_metadata(dir).map_err(|source| MappedError::NotWritable {
        path: dir.to_path_buf(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(insecure("it is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(MappedError::NotWritable {
            path: dir.to_path_buf(),
            source: io::Error::from(io::ErrorKind::NotADirectory),
        });
    }
    let mode = meta.mode() & 0o7777;
    let group_namespace = mode & 0o070 == 0o070;
    let uid = sys::euid();
    if meta.uid() == uid {
        let wanted = if group_namespace {
            (mode & !0o007) | 0o2770
        } else {
            0o700
        };
        if mode != wanted {
            fs::set_permissions(dir, fs::Permissions::from_mode(wanted)).map_err(|source| {
                MappedError::NotWritable {
                    path: dir.to_path_buf(),
                    source,
                }
            })?;
        }
    } else {
        if access != Access::Group {
            return Err(MappedError::ForeignOwner {
                path: dir.to_path_buf(),
                owner: meta.uid(),
                uid,
            });
        }
        if mode & 0o007 != 0 {
            return Err(insecure(format!(
                "it is open to every user (mode {mode:04o})"
            )));
        }
        if !group_namespace || !sys::in_group(meta.gid()) {
            return Err(insecure(format!(
                "it belongs to uid {} and is not a group namespace of a group of this process (mode {mode:04o}, group {})",
                meta.uid(),
                meta.gid()
            )));
        }
    }
    Ok(if group_namespace { 0o660 } else { 0o600 })
}

/// A handle as `evm run` prints it: decimal or `0x` hex of `generation << 32 | index`.
pub fn parse_handle(text: &str) -> Option<RegionHandle> {
    let raw = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => text.parse::<u64>().ok()?,
    };
    RegionHandle::new(raw as u32, (raw >> 32) as u32)
}
