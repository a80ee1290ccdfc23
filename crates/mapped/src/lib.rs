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
//! - **Locking across processes:** a lock word in the region's header
//!   ([`MappedRegion::lock`]): a compare-and-swap when free, else a short spin
//!   and a futex sleep, bounded by a timeout, so a busy region gives
//!   [`MappedError::LockTimeout`], never a deadlock. Each process holds a
//!   *lease* (a `flock`ed file the kernel releases when it dies); a waiter
//!   that finds the holder's lease dead takes the lock over.
//! - **Crash recovery:** before a page changes for the first time after a
//!   commit, its old bytes (and the old header words) are written to the
//!   region's undo log `rNNNNNNNN.undo`; if that fails the write is refused.
//!   [`MappedRegion::unlock`] commits: header words updated, generation + 1
//!   (the commit point). The next process to take the lock of a region whose
//!   transaction is still open rolls it back (the writer died half way),
//!   ignoring a torn last record.
//! - **Frees are seen everywhere:** a freed region is marked in its header
//!   before its file goes, so every other mapping fails its next lock with
//!   [`MappedError::Freed`].
//! - **Handles are never reused:** the `generations` table, checked on every
//!   attach; a lost or damaged one refuses the namespace.
//! - **Access:** namespaces are private to their owner unless made for a
//!   group ([`Access`]).
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
//! let mut buf = [0u8; 16];
//! other.read_at(0, &mut buf, Duration::from_secs(1))?;
//! assert_eq!(&buf, b"sixteen bytes!!!");
//! assert_eq!(Snapshot::capture(&ns)?.regions[0].data, b"sixteen bytes!!!");
//! # Ok::<(), shm_mapped::MappedError>(())
//! ```
#![warn(missing_docs)]

mod error;
mod generations;
mod header;
mod namespace;
mod region;
mod snapshot;
mod sys;
mod undo;

pub use error::MappedError;
pub use header::{RegionHeader, FORMAT_VERSION, HEADER_LEN, MAX_NAME_LEN, REGION_MAGIC};
pub use namespace::{default_root, parse_handle, Access, ListedRegion, Namespace, MAX_INDEX};
pub use region::{in_use, region_file_name, LockHolder, MappedRegion, RegionStatus};
pub use snapshot::{dump_namespace, load_snapshot, Snapshot, SnapshotRegion, SnapshotReport};
pub use sys::process_alive;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
