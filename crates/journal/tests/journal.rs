//! The revert journal against a real region registry, which stands in for the
//! transaction layer: writes go through the registry's guards with the
//! journal's `save_page` as their observer, and undo comes back through
//! [`RegionOps`].

use proptest::prelude::*;
use shm_journal::{Page, PageKey, PendingEffects, RegionOps, TxJournal};
use shm_pool::{BlockPool, PoolConfig};
use shm_primitives::{Address, MapOptions, RegionHandle, RegionOptions, WritePlan, PAGE_SIZE};
use shm_region::{Liveness, RegionRegistry, RegionSpec, RegistryConfig, WriteOutcome};

struct Regions(RegionRegistry);

impl RegionOps for Regions {
    fn restore_page(&mut self, handle: RegionHandle, page: u64, saved: &Page) {
        self.0
            .lock_write(handle)
            .unwrap()
            .restore_page(page, saved)
            .unwrap();
    }
    fn set_size(&mut self, handle: RegionHandle, size: u64) {
        self.0.lock_write(handle).unwrap().set_size(size).unwrap();
    }
    fn free_created(&mut self, handle: RegionHandle, _: u64) {
        self.0.free(handle).unwrap();
    }
    fn cancel_free(&mut self, handle: RegionHandle) {
        self.0.cancel_free(handle).unwrap();
    }
    fn finish_free(&mut self, handle: RegionHandle) {
        self.0.finish_free(handle).unwrap();
    }
}

fn regions() -> Regions {
    Regions(RegionRegistry::new(
        BlockPool::new(PoolConfig::default()),
        RegistryConfig::default(),
    ))
}

impl Regions {
    fn create(&self, size: u64) -> RegionHandle {
        self.0.create(RegionSpec::new(size, ALICE)).unwrap()
    }

    /// A write as the transaction layer does it: the journal sees each page
    /// before it changes, and records growth.
    fn write(
        &self,
        j: &mut TxJournal,
        h: RegionHandle,
        offset: u64,
        data: &[u8],
        grow: bool,
    ) -> WriteOutcome {
        let mut guard = self.0.lock_write(h).unwrap();
        let plan = guard.plan(offset, data.len() as u64, grow);
        let out = guard
            .write_planned(
                plan,
                data,
                Some(&mut |page, bytes| j.save_page(h, page, bytes)),
            )
            .unwrap();
        if out.grew() {
            j.record_resized(h, out.old_size);
        }
        out
    }

    fn bytes(&self, h: RegionHandle, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.0.lock_read(h).unwrap().read(offset, &mut buf).unwrap();
        buf
    }

    fn size(&self, h: RegionHandle) -> u64 {
        self.0.lock_read(h).unwrap().size()
    }

    /// A write through `context`'s copy-on-write view; returns the faults.
    fn write_private(
        &self,
        j: &mut TxJournal,
        h: RegionHandle,
        context: Address,
        offset: u64,
        data: &[u8],
    ) -> u64 {
        let size = self.size(h);
        let plan = WritePlan::new(size, size, false, offset, data.len() as u64);
        j.write_private(h, context, &plan, data, &mut |page, out| {
            self.0.lock_read(h).unwrap().read_page(page, out).unwrap();
        })
    }

    fn read_private(
        &self,
        j: &TxJournal,
        h: RegionHandle,
        context: Address,
        len: usize,
    ) -> Vec<u8> {
        let mut buf = self.bytes(h, 0, len);
        j.overlay(h, context, 0, &mut buf);
        buf
    }
}

fn plan(offset: u64, len: u64, size: u64) -> WritePlan {
    WritePlan::new(size, size, false, offset, len)
}

const ALICE: Address = Address::repeat_byte(0xa1);

#[test]
fn nested_revert_restores_only_the_child() {
    let mut r = regions();
    let h = r.create(3 * PAGE_SIZE as u64);
    let mut j = TxJournal::default();
    j.checkpoint(); // outer frame
    r.write(&mut j, h, 0, &[1; 10], false);
    j.checkpoint(); // inner frame
    r.write(&mut j, h, 5, &[2; 10], false);
    r.write(&mut j, h, 8192, &[3; 4], false);
    assert_eq!(
        r.bytes(h, 0, 16),
        [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0]
    );
    j.revert(&mut r);
    assert_eq!(
        r.bytes(h, 0, 16),
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(r.bytes(h, 8192, 4), [0; 4]);
    j.commit();
    let mut pending = PendingEffects::default();
    let end = j.end_transaction(true, &mut r, &mut pending);
    assert!(end.scoped.is_empty());
    assert_eq!(r.bytes(h, 0, 10), [1; 10]);
    assert!(j.is_clean());
    // The region outlives the transaction: its saved page waits for the decision.
    assert_eq!(pending.pages(), 1);
    pending.abandon(&mut r);
    assert_eq!(
        r.bytes(h, 0, 10),
        [0; 10],
        "abandoned: as before the transaction"
    );
}

#[test]
fn page_saved_once_per_frame_and_child_saves_count_for_parent() {
    let mut r = regions();
    let size = 2 * PAGE_SIZE as u64;
    let h = r.create(size);
    let mut j = TxJournal::default();
    j.checkpoint();
    assert_eq!(j.unsaved_pages(h, None, &plan(4000, 200, size)), 2);
    r.write(&mut j, h, 4000, &[7; 200], false);
    assert_eq!(j.unsaved_pages(h, None, &plan(0, size, size)), 0);
    j.checkpoint();
    // A new frame must save again: its revert needs the page as the parent left it.
    assert_eq!(j.unsaved_pages(h, None, &plan(0, 1, size)), 1);
    r.write(&mut j, h, 0, &[9; 1], false);
    j.commit();
    assert!(j.saved_in_frame(PageKey::region(h, 0)));
    assert_eq!(j.unsaved_pages(h, None, &plan(0, size, size)), 0);
    // Reverting the parent restores its own start state (the child's newer
    // copy is restored first, then the parent's older one).
    j.revert(&mut r);
    assert_eq!(r.bytes(h, 0, 8192), vec![0; 8192]);
}

#[test]
fn child_save_counts_as_parent_save_without_parent_write() {
    let mut r = regions();
    let h = r.create(PAGE_SIZE as u64);
    let mut j = TxJournal::default();
    j.checkpoint();
    j.checkpoint();
    r.write(&mut j, h, 0, &[5; 4], false);
    j.commit();
    assert_eq!(j.unsaved_pages(h, None, &plan(0, 4, PAGE_SIZE as u64)), 0);
    r.write(&mut j, h, 1, &[8; 1], false);
    j.revert(&mut r);
    assert_eq!(r.bytes(h, 0, 4), [0; 4]);
}

#[test]
fn deep_commits_keep_saves_without_walking_them() {
    // A save at depth 600, committed through 600 frames, counts as saved in
    // each frame it reaches; a revert of the outermost still restores.
    let mut r = regions();
    let h = r.create(256 * PAGE_SIZE as u64);
    let mut j = TxJournal::default();
    for _ in 0..600 {
        j.checkpoint();
    }
    for page in 0..256u64 {
        r.write(&mut j, h, page * PAGE_SIZE as u64, &[1], false);
    }
    for _ in 0..599 {
        j.commit();
        assert!(j.saved_in_frame(PageKey::region(h, 255)));
    }
    assert_eq!(j.depth(), 1);
    j.revert(&mut r);
    assert!(r.bytes(h, 0, 256 * PAGE_SIZE).iter().all(|&b| b == 0));
}

#[test]
fn revert_of_create_burns_the_handle_and_of_free_restores_it() {
    let mut r = regions();
    let kept = r.create(64);
    r.0.lock_write(kept)
        .unwrap()
        .write(0, b"keep", false)
        .unwrap();
    let mut j = TxJournal::default();
    j.checkpoint();
    let made = r.create(64);
    j.record_created(made, 64, false);
    r.0.begin_free(kept).unwrap();
    j.record_free(kept, 64);
    assert_eq!(r.0.liveness(kept), Liveness::PendingFree);
    let reverted = j.revert(&mut r);
    assert_eq!(reverted.undone, vec![(made, 64)]);
    assert!(reverted.touched.contains(&kept) && reverted.touched.contains(&made));
    assert_eq!(r.bytes(kept, 0, 4), b"keep");
    assert_eq!(
        r.0.liveness(made),
        Liveness::Freed,
        "an undone ALLOC's handle stays dead"
    );
    let again = r.create(64);
    assert_ne!(again, made, "generations are never reused");
}

#[test]
fn transaction_end_settles_scoped_regions_and_leaves_the_rest_pending() {
    let mut r = regions();
    let doomed = r.create(64);
    let mut j = TxJournal::default();
    j.checkpoint();
    let scoped = r.create(64);
    j.record_created(scoped, 64, false);
    let persistent =
        r.0.create(RegionSpec::new(64, ALICE).options(RegionOptions {
            persistent: true,
            ..RegionOptions::default()
        }))
        .unwrap();
    j.record_created(persistent, 64, true);
    r.0.begin_free(doomed).unwrap();
    j.record_free(doomed, 64);
    // A scoped region freed by its own transaction is final at its end.
    let short = r.create(64);
    j.record_created(short, 64, false);
    r.0.begin_free(short).unwrap();
    j.record_free(short, 64);
    j.commit();
    let mut pending = PendingEffects::default();
    let end = j.end_transaction(true, &mut r, &mut pending);
    assert_eq!(end.scoped, vec![(scoped, 64)]);
    assert_eq!(r.0.liveness(short), Liveness::Freed);
    assert_eq!(r.0.liveness(doomed), Liveness::PendingFree);
    // Published: the free is final; the persistent region stays.
    let published = pending.publish(&mut r);
    assert_eq!(published.freed, vec![(doomed, 64)]);
    assert_eq!(r.0.liveness(doomed), Liveness::Freed);
    assert_eq!(r.0.liveness(persistent), Liveness::Live);
}

#[test]
fn abandoned_transactions_leave_regions_as_they_were() {
    let mut r = regions();
    let grow = RegionOptions {
        auto_grow: true,
        ..RegionOptions::default()
    };
    let h =
        r.0.create(RegionSpec::new(100, ALICE).options(grow))
            .unwrap();
    let doomed = r.create(64);
    let mut pending = PendingEffects::default();
    // Two transactions back to back, decided together.
    for round in 0..2u8 {
        let mut j = TxJournal::default();
        j.checkpoint();
        r.write(&mut j, h, 90, &[round + 1; 100], true);
        if round == 1 {
            r.0.begin_free(doomed).unwrap();
            j.record_free(doomed, 64);
        }
        let persistent =
            r.0.create(RegionSpec::new(8, ALICE).options(RegionOptions {
                persistent: true,
                ..RegionOptions::default()
            }))
            .unwrap();
        j.record_created(persistent, 8, true);
        j.commit();
        j.end_transaction(true, &mut r, &mut pending);
    }
    assert_eq!(r.size(h), 190);
    let abandoned = pending.abandon(&mut r);
    assert_eq!(abandoned.undone.len(), 2);
    assert_eq!(r.size(h), 100);
    assert_eq!(r.bytes(h, 90, 10), [0; 10]);
    assert_eq!(r.0.liveness(doomed), Liveness::Live);
    assert_eq!(r.0.len(), 2, "the persistent creations are undone");
    assert!(pending.is_empty());
}

#[test]
fn failed_transaction_undoes_everything() {
    let mut r = regions();
    let h = r.create(PAGE_SIZE as u64);
    let mut j = TxJournal::default();
    j.checkpoint();
    r.write(&mut j, h, 0, b"gone", false);
    j.warm(h);
    j.add_words(4);
    j.map(h, ALICE, MapOptions::empty());
    let mut pending = PendingEffects::default();
    let end = j.end_transaction(false, &mut r, &mut pending);
    assert!(end.scoped.is_empty() && pending.is_empty());
    assert_eq!(r.bytes(h, 0, 4), [0; 4]);
    assert!(j.is_clean());
    assert_eq!(j.words_allocated(), 0);
}

#[test]
fn growth_is_undone() {
    let mut r = regions();
    let grow = RegionOptions {
        auto_grow: true,
        ..RegionOptions::default()
    };
    let h =
        r.0.create(RegionSpec::new(100, ALICE).options(grow))
            .unwrap();
    let mut j = TxJournal::default();
    j.checkpoint();
    let out = r.write(&mut j, h, 90, &[1; 100], true);
    assert_eq!((out.written, out.new_size), (100, 190));
    j.revert(&mut r);
    assert_eq!(r.size(h), 100);
    assert_eq!(r.bytes(h, 90, 10), [0; 10]);
}

#[test]
fn warm_set_words_and_page_charges_revert_with_frames() {
    let mut r = regions();
    let h = r.create(64);
    let mut j = TxJournal::default();
    j.checkpoint();
    assert!(j.warm(h));
    assert!(!j.warm(h));
    j.charge_pages(3);
    j.checkpoint();
    j.add_words(10);
    j.charge_pages(5);
    assert_eq!(j.pages_held(), 8);
    j.revert(&mut r);
    assert!(j.is_warm(h));
    assert_eq!(j.words_allocated(), 0);
    assert_eq!(j.pages_held(), 3);
    j.revert(&mut r);
    assert!(!j.is_warm(h));
    assert_eq!(j.pages_held(), 0);
}

#[test]
fn copy_on_write_is_private_and_reverts() {
    let mut r = regions();
    let size = 2 * PAGE_SIZE as u64;
    let h = r.create(size);
    r.0.lock_write(h).unwrap().write(0, b"live", false).unwrap();
    let bob = Address::repeat_byte(0xb0);
    let mut j = TxJournal::default();
    j.checkpoint();
    j.map(h, bob, MapOptions::COPY_ON_WRITE);
    assert_eq!(j.unsaved_pages(h, Some(bob), &plan(0, size, size)), 2);
    assert_eq!(r.write_private(&mut j, h, bob, 2, b"PRIV"), 1);
    assert_eq!(r.read_private(&j, h, bob, 6), b"liPRIV");
    assert_eq!(
        r.bytes(h, 0, 6),
        b"live\0\0",
        "the region itself is untouched"
    );
    // A nested frame writes the private page again and reverts.
    j.checkpoint();
    r.write_private(&mut j, h, bob, 0, b"XX");
    assert_eq!(r.read_private(&j, h, bob, 6), b"XXPRIV");
    j.revert(&mut r);
    assert_eq!(r.read_private(&j, h, bob, 6), b"liPRIV");
    // Remap drops private pages; reverting the remap brings them back.
    j.checkpoint();
    assert_eq!(j.map(h, bob, MapOptions::empty()), 1);
    assert_eq!(j.private_pages(), 0);
    j.revert(&mut r);
    assert_eq!(j.private_pages(), 1);
    // Reverting the mapping frame drops everything.
    j.revert(&mut r);
    assert_eq!(j.private_pages(), 0);
    assert_eq!(j.mapping(h, bob), None);
}

#[test]
fn a_fault_after_a_remap_in_the_same_frame_is_charged_again() {
    let r = regions();
    let size = 2 * PAGE_SIZE as u64;
    let h = r.create(size);
    let bob = Address::repeat_byte(0xb0);
    let mut j = TxJournal::default();
    j.checkpoint();
    j.map(h, bob, MapOptions::COPY_ON_WRITE);
    assert_eq!(j.unsaved_pages(h, Some(bob), &plan(0, 1, size)), 1);
    assert_eq!(r.write_private(&mut j, h, bob, 0, b"a"), 1);
    assert_eq!(j.unsaved_pages(h, Some(bob), &plan(0, 1, size)), 0);
    // The remap drops the private page, so the next write faults it again.
    j.map(h, bob, MapOptions::COPY_ON_WRITE);
    assert_eq!(j.unsaved_pages(h, Some(bob), &plan(0, 1, size)), 1);
    assert_eq!(r.write_private(&mut j, h, bob, 0, b"b"), 1);
    assert_eq!(j.unsaved_pages(h, Some(bob), &plan(0, 1, size)), 0);
}

#[test]
fn footprint_counts_saved_pages() {
    let r = regions();
    let h = r.create(64 * PAGE_SIZE as u64);
    let mut j = TxJournal::default();
    let empty = j.footprint();
    j.checkpoint();
    for page in 0..64u64 {
        r.write(&mut j, h, page * PAGE_SIZE as u64, &[1], false);
    }
    let held = j.footprint() - empty;
    assert!(held >= 64 * PAGE_SIZE, "{held}");
    assert!(
        held < 64 * PAGE_SIZE + 64 * 256,
        "{held}: metadata stays small"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Checkpoint,
    Commit,
    Revert,
    Write {
        region: usize,
        offset: u64,
        len: usize,
        byte: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Commit),
        1 => Just(Op::Revert),
        4 => (0..2usize, 0..20_000u64, 0..9000usize, any::<u8>())
            .prop_map(|(region, offset, len, byte)| Op::Write { region, offset, len, byte }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random writes in nested frames with random commits and reverts: region
    /// contents always equal a model that snapshots whole regions per frame.
    #[test]
    fn journal_matches_snapshot_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut r = regions();
        let sizes = [16_384usize, 5_000];
        let handles: Vec<_> = sizes.iter().map(|&s| r.create(s as u64)).collect();
        let mut model: Vec<Vec<u8>> = sizes.iter().map(|&s| vec![0; s]).collect();
        let mut snapshots: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut j = TxJournal::default();
        j.checkpoint();
        snapshots.push(model.clone());
        for op in ops {
            match op {
                Op::Checkpoint => { j.checkpoint(); snapshots.push(model.clone()); }
                Op::Commit if snapshots.len() > 1 => { j.commit(); snapshots.pop(); }
                Op::Revert if snapshots.len() > 1 => { j.revert(&mut r); model = snapshots.pop().unwrap(); }
                Op::Commit | Op::Revert => {}
                Op::Write { region, offset, len, byte } => {
                    let data = vec![byte; len];
                    let out = r.write(&mut j, handles[region], offset, &data, false);
                    let m = &mut model[region];
                    let start = (offset as usize).min(m.len());
                    let end = (offset as usize + len).min(m.len());
                    m[start..end].fill(byte);
                    prop_assert_eq!(out.written, end - start);
                }
            }
            for (i, h) in handles.iter().enumerate() {
                let actual = r.bytes(*h, 0, sizes[i]);
                let first_diff = actual.iter().zip(&model[i]).position(|(a, b)| a != b);
                prop_assert!(first_diff.is_none(), "region {} differs from the model at byte {:?}", i, first_diff);
            }
        }
        while j.depth() > 0 {
            j.revert(&mut r);
        }
        let base = snapshots.remove(0);
        for (i, h) in handles.iter().enumerate() {
            prop_assert!(r.bytes(*h, 0, sizes[i]) == base[i], "region {} not back to its start state", i);
        }
    }
}
