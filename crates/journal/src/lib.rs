//! The revert journal of one transaction's shared-memory effects.
//!
//! A [`TxJournal`] keeps, for one transaction, everything bytecode did to shared
//! memory in a way that nested checkpoints can undo: region creations, frees (as
//! two-phase frees that only become final at transaction end), mappings, data
//! writes (as 4 KiB page snapshots taken on the first write to a page in a frame),
//! growth, copy-on-write private pages, the per-transaction warm set and the words
//! of region memory the transaction allocated.
//!
//! Checkpoints are O(1); committing or reverting one costs O(entries made in that
//! frame), never O(region size). A page saved by a committed child counts as saved
//! in its parent (spec §8), so the parent does not pay or save it again.
//!
//! ```
//! use shm_journal::{PageKey, TxJournal};
//! use shm_pool::{BlockPool, PoolConfig};
//! use shm_primitives::Address;
//! use shm_region::{RegionRegistry, RegionSpec, RegistryConfig};
//!
//! let registry = RegionRegistry::new(BlockPool::new(PoolConfig::default()), RegistryConfig::default());
//! let h = registry.create(RegionSpec::new(8192, Address::ZERO))?;
//! let mut journal = TxJournal::default();
//!
//! journal.checkpoint();
//! journal.write(&registry, h, 4090, b"straddles two pages", false)?;
//! assert_eq!(journal.saved_in_frame(PageKey::region(h, 0)), true);
//! journal.revert(&registry);                     // the frame reverts: the bytes go back
//! let mut buf = [0xff; 19];
//! registry.read(h, 4090, &mut buf)?;
//! assert_eq!(buf, [0; 19]);
//! # Ok::<(), shm_region::RegionError>(())
//! ```
#![warn(missing_docs)]

mod journal;

pub use journal::{Page, PageKey, TxEnd, TxJournal};
