//! Typed errors of region files, namespaces and snapshots.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong with a namespace, a region file or a snapshot. Bad input
/// (a corrupt, truncated or foreign file) is always one of these, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum MappedError {
    /// The namespace directory cannot be created or written.
    #[error("namespace directory {path} is not writable: {source}")]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A system call on a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file does not start with the region-file (or snapshot) magic.
    #[error("{path}: not a shared-memory region file (bad magic)")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by another format version.
    #[error("{path}: format version {found}, this build reads version {expected}")]
    WrongVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },
    /// The header's fields are inconsistent or its checksum does not match.
    #[error("{path}: corrupt header: {reason}")]
    CorruptHeader {
        /// The file.
        path: PathBuf,
        /// Which check failed.
        reason: String,
    },
    /// The file is shorter than its header says.
    #[error("{path}: truncated: {len} bytes, the header needs {expected}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The length the header implies.
        expected: u64,
    },
    /// The contents do not match the checksum kept at the last commit (Paranoid).
    #[error("{path}: contents do not match the checksum of the last commit (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// The cross-process lock was not obtained in time.
    #[error("{path}: lock not obtained within {waited:?} (held by pid {holder})")]
    LockTimeout {
        /// The region file or namespace lock file.
        path: PathBuf,
        /// How long it waited.
        waited: Duration,
        /// The pid recorded by the holder (0 when unknown).
        holder: u32,
    },
    /// No region of that name or handle in the namespace.
    #[error("no region {0} in the namespace")]
    NotFound(String),
    /// A region name longer than the header holds.
    #[error("region name of {len} bytes: at most {max} fit in the header")]
    NameTooLong {
        /// Its length.
        len: usize,
        /// The most the header holds.
        max: usize,
    },
    /// A namespace name that is not one path component of safe characters.
    #[error("invalid namespace name {0:?}: use letters, digits, '-', '_' and '.'")]
    InvalidNamespace(String),
    /// The snapshot is corrupt or truncated; nothing was loaded.
    #[error("snapshot {path}: {reason}; nothing was loaded")]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Which check failed.
        reason: String,
    },
    /// The namespace already holds a region the snapshot would create.
    #[error("namespace already has region {0}; nothing was loaded")]
    AlreadyExists(String),
    /// Another process uses the namespace without IPC.
    #[error("namespace {path} is in use by another process (enable IPC to share it)")]
    NamespaceBusy {
        /// The namespace directory.
        path: PathBuf,
    },
    /// Every handle index of the namespace is in use or retired.
    #[error("no free region handle left in the namespace")]
    NoFreeHandle,
    /// The region was freed (its file removed) by another process: this
    /// mapping of it is stale.
    #[error("{path}: the region was freed by another process")]
    Freed {
        /// The region file.
        path: PathBuf,
    },
    /// The namespace's table of issued generations is missing or damaged, so
    /// an old handle could name a new region: the namespace is refused.
    #[error("{path}: {reason}; old handles could name new regions, so the namespace is refused (restore the file, or rebuild it from the region files with `evm shm repair`)")]
    GenerationsLost {
        /// The `generations` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The namespace belongs to another user and this process was not
    /// configured to share namespaces with a group.
    #[error("namespace {path} belongs to uid {owner}, not to this process (uid {uid}): refused, another user could read and change its regions (share a namespace between users with group access)")]
    ForeignOwner {
        /// The namespace directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        uid: u32,
    },
    /// The namespace's directory is not safe to use (a symbolic link, open to
    /// every user, or a group namespace of a group this process is not in).
    #[error("namespace {path} refused: {reason}")]
    Insecure {
        /// The namespace directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A live process uses the region (`evm shm rm` without `--force`).
    #[error("{path} is in use by a live process{holder}; refusing to remove it (use --force to remove it anyway)")]
    InUse {
        /// The region file.
        path: PathBuf,
        /// " (pid N holds its lock)" when a live process holds the lock.
        holder: String,
    },
    /// A size that does not fit this platform's address space.
    #[error("region of {0} bytes does not fit in memory on this platform")]
    TooLarge(u64),
}

impl MappedError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
