//! Memory-mapped region files: the disk side of EVM shared memory.
//!
//! A *namespace* is a directory (by default `/dev/shm/<namespace>/`) holding
//! one file per region, `rNNNNNNNN.shm` (NNNNNNNN = the handle's index): a
//! 4 KiB versioned header ([`RegionHeader`]: magic, version, handle, capacity,
//! owner, permissions, options, name, and mutable words for the size, the
//! commit generation, the last access and — Paranoid — a CRC-32 of the
//! contents kept at commit) followed by the region's bytes. Every process
//! that attaches maps the same file (`MAP_SHARED`), so writes of one are
//! reads of the others.
//!
//! - **Locking across processes:** an exclusive `flock` on the region file
//!   ([`MappedRegion::lock`]), polled with a timeout, so a busy region gives
//!   [`MappedError::LockTimeout`], never a deadlock; the kernel drops the lock
//!   of a process that dies.
//! - **Crash recovery:** before a page changes for the first time after a
//!   commit, its old bytes (and the old header words) are appended to the
//!   region's undo log `rNNNNNNNN.undo`. [`MappedRegion::unlock`] commits:
//!   header words updated, generation + 1, log truncated (the commit point).
//!   The next process to take the lock of a region whose log is not empty
//!   rolls it back (the writer died half way), ignoring a torn last record.
//! - **Snapshots:** [`Snapshot`] dumps a namespace into one file, each region
//!   stored plain, LZ4 or Zstd; a corrupt or truncated snapshot loads nothing.
//!
//! ```
//! use shm_mapped::{Namespace, RegionHeader, Snapshot};
//! use shm_primitives::Address;
//! use std::time::Duration;
//!
//! let root = tempfile::tempdir().unwrap();
//! let ns = Namespace::open(root.path(), "demo")?;
//! let region = ns.create_region(|_| (false, 0), |h| RegionHeader::new(h, 4096, Address::ZERO).named("log"), 16)?;
//! region.lock(Duration::from_secs(1))?;
//! region.clone().block().write_at(0, b"sixteen bytes!!!").unwrap();
//! region.unlock(None)?;
//!
//! let other = ns.open_region("log")?; // what another process would see
//! assert_eq!(&other.data()[..16], b"sixteen bytes!!!");
//! assert_eq!(Snapshot::capture(&ns)?.regions[0].data, b"sixteen bytes!!!");
//! # Ok::<(), shm_mapped::MappedError>(())
//! ```
#![warn(missing_docs)]

mod error;
mod header;
mod namespace;
mod region;
mod snapshot;

pub use error::MappedError;
pub use header::{RegionHeader, FORMAT_VERSION, HEADER_LEN, MAX_NAME_LEN, REGION_MAGIC};
pub use namespace::{default_root, parse_handle, ListedRegion, Namespace};
pub use region::{region_file_name, MappedRegion, RegionStatus};
pub use snapshot::{dump_namespace, load_snapshot, Snapshot, SnapshotRegion, SnapshotReport};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether process `pid` is alive (`kill(pid, 0)`); used to tell regions of
/// live processes from those a dead process left behind.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
