//! The revert journal of one transaction's shared-memory effects.
//!
//! A [`TxJournal`] keeps, for one transaction, everything bytecode did to shared
//! memory in a way that nested checkpoints can undo: region creations, frees (as
//! two-phase frees that only become final when the transaction's effects are
//! published), mappings, data writes (as 4 KiB page snapshots taken on the first
//! write to a page in a frame), growth, copy-on-write private pages, the
//! per-transaction warm set, the words of region memory the transaction
//! allocated (`W`) and the page buffers its journal holds (`P`).
//!
//! Costs (spec §6): a checkpoint is O(1); a commit is O(1) — a page saved by a
//! committed child counts as saved in its parent through a union-find over frame
//! ids, never by walking the child's pages; a revert is O(entries it undoes).
//!
//! The journal does no region work: undo goes through [`RegionOps`], which the
//! transaction layer implements over the manager. When a transaction ends, what
//! outlives it moves into [`PendingEffects`] until the embedder publishes or
//! abandons it (spec §6: region effects follow the embedder's decision).
//!
//! ```
//! use shm_journal::{PendingEffects, RegionOps, TxJournal, Page};
//! use shm_primitives::{Address, RegionHandle, WritePlan};
//!
//! /// A one-page "region" in a Vec, to show the protocol.
//! struct Bytes(Vec<u8>);
//! impl RegionOps for Bytes {
//!     fn restore_page(&mut self, _: RegionHandle, page: u64, saved: &Page) {
//!         let at = page as usize * 4096;
//!         let n = self.0.len().saturating_sub(at).min(4096);
//!         self.0[at..at + n].copy_from_slice(&saved[..n]);
//!     }
//!     fn set_size(&mut self, _: RegionHandle, size: u64) { self.0.resize(size as usize, 0) }
//!     fn free_created(&mut self, _: RegionHandle, _: u64) {}
//!     fn cancel_free(&mut self, _: RegionHandle) {}
//!     fn finish_free(&mut self, _: RegionHandle) {}
//! }
//!
//! let h = RegionHandle::new(1, 1).unwrap();
//! let mut region = Bytes(vec![0; 100]);
//! let mut journal = TxJournal::default();
//! journal.checkpoint();
//! let plan = WritePlan::new(100, 100, false, 10, 5);
//! assert_eq!(journal.unsaved_pages(h, None, &plan), 1);
//! journal.save_page(h, 0, &region.0);          // before the write changes page 0
//! region.0[10..15].copy_from_slice(b"hello");
//! assert_eq!(journal.unsaved_pages(h, None, &plan), 0);
//! journal.revert(&mut region);                 // the frame reverts: the bytes go back
//! assert_eq!(region.0, vec![0; 100]);
//! let mut pending = PendingEffects::default();
//! journal.end_transaction(true, &mut region, &mut pending);
//! assert!(pending.is_empty() && journal.is_clean());
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod frames;
mod journal;
mod pending;
mod private;

pub use journal::{PageKey, Reverted, TxEnd, TxJournal, TxPeak};
pub use pending::{Abandoned, PendingEffects, Published};
use shm_primitives::{RegionHandle, PAGE_SIZE};

/// The hash maps of the journal. Their keys are page indexes and handles that
/// bytecode chooses, so the hasher is seeded at random per map (HashDoS), and it
/// is foldhash rather than the standard library's SipHash: a page save looks its
/// page up once, and SipHash was about a tenth of a page save's instructions.
/// revm keys its own state (addresses, storage slots) the same way.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A set with [`Map`]'s hasher.
type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// One 4 KiB page of bytes.
pub type Page = [u8; PAGE_SIZE];

/// The region operations the journal asks for when it undoes or settles
/// effects. The transaction layer implements it over the manager; each call is
/// for a region the transaction holds locked, so none can fail for lack of
/// the lock — an implementation logs anything else that goes wrong.
pub trait RegionOps {
    /// Writes a saved page back, without changing the region's size.
    fn restore_page(&mut self, handle: RegionHandle, page: u64, saved: &Page);
    /// Sets the region's size back (undo of growth; cut bytes are zeroed).
    fn set_size(&mut self, handle: RegionHandle, size: u64);
    /// Frees a region whose creation is undone (its generation stays burnt).
    fn free_created(&mut self, handle: RegionHandle, size: u64);
    /// Undoes a begun free: the region is live again under the same handle.
    fn cancel_free(&mut self, handle: RegionHandle);
    /// Makes a begun free final.
    fn finish_free(&mut self, handle: RegionHandle);
}
