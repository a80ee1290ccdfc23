//! The revert journal against a real region registry.

use proptest::prelude::*;
use shm_journal::{PageKey, TxJournal};
use shm_pool::{BlockPool, PoolConfig};
use shm_primitives::{Address, MapOptions, RegionHandle, RegionOptions, PAGE_SIZE};
use shm_region::{RegionError, RegionRegistry, RegionSpec, RegistryConfig};

fn registry() -> RegionRegistry {
    RegionRegistry::new(
        BlockPool::new(PoolConfig::default()),
        RegistryConfig::default(),
    )
}

fn bytes(registry: &RegionRegistry, h: RegionHandle, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    registry.read(h, offset, &mut buf).unwrap();
    buf
}

const ALICE: Address = Address::repeat_byte(0xa1);

#[test]
fn nested_revert_restores_only_the_child() {
    let r = registry();
    let h = r
        .create(RegionSpec::new(3 * PAGE_SIZE as u64, ALICE))
        .unwrap();
    let mut j = TxJournal::default();
    j.checkpoint(); // outer frame
    j.write(&r, h, 0, &[1; 10], false).unwrap();
    j.checkpoint(); // inner frame
    j.write(&r, h, 5, &[2; 10], false).unwrap();
    j.write(&r, h, 8192, &[3; 4], false).unwrap();
    assert_eq!(
        bytes(&r, h, 0, 16),
        [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0]
    );
    j.revert(&r);
    assert_eq!(
        bytes(&r, h, 0, 16),
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(bytes(&r, h, 8192, 4), [0; 4]);
    j.commit();
    let end = j.end_transaction(&r, true);
    assert!(end.created.is_empty() && end.freed.is_empty());
    assert_eq!(bytes(&r, h, 0, 10), [1; 10]);
    assert!(j.is_clean());
}

#[test]
fn page_saved_once_per_frame_and_child_saves_count_for_parent() {
    let r = registry();
    let h = r
        .create(RegionSpec::new(2 * PAGE_SIZE as u64, ALICE))
        .unwrap();
    let mut j = TxJournal::default();
    j.checkpoint();
    assert_eq!(j.unsaved_pages(h, None, 4000, 200, 8192), 2);
    j.write(&r, h, 4000, &[7; 200], false).unwrap();
    assert_eq!(j.unsaved_pages(h, None, 0, 8192, 8192), 0);
    j.checkpoint();
    // A new frame must save again: its revert needs the page as the parent left it.
    assert_eq!(j.unsaved_pages(h, None, 0, 1, 8192), 1);
    j.write(&r, h, 0, &[9; 1], false).unwrap();
    j.commit();
    assert!(j.saved_in_frame(PageKey::region(h, 0)));
    assert_eq!(j.unsaved_pages(h, None, 0, 8192, 8192), 0);
    // Child saves (committed) that the parent already had are redundant; reverting
    // the parent restores its own start state.
    j.revert(&r);
    assert_eq!(bytes(&r, h, 0, 8192), vec![0; 8192]);
}

#[test]
fn child_save_counts_as_parent_save_without_parent_write() {
    let r = registry();
    let h = r.create(RegionSpec::new(PAGE_SIZE as u64, ALICE)).unwrap();
    r.write(h, 0, &[5; 4], false).unwrap(); // host write before the transaction
    let mut j = TxJournal::default();
    j.checkpoint();
    j.checkpoint();
    j.write(&r, h, 0, &[6; 4], false).unwrap();
    j.commit();
    assert!(
        j.saved_in_frame(PageKey::region(h, 0)),
        "a committed child's save counts for the parent"
    );
    j.write(&r, h, 1, &[8; 1], false).unwrap();
    j.revert(&r);
    assert_eq!(bytes(&r, h, 0, 4), [5; 4]);
}

#[test]
fn revert_of_create_burns_the_handle_and_of_free_restores_it() {
    let r = registry();
    let kept = r.create(RegionSpec::new(64, ALICE)).unwrap();
    r.write(kept, 0, b"keep", false).unwrap();
    let mut j = TxJournal::default();
    j.checkpoint();
    let made = r.create(RegionSpec::new(64, ALICE)).unwrap();
    j.record_created(made, 64);
    j.begin_free(&r, kept).unwrap();
    assert!(matches!(r.check(kept), Err(RegionError::RegionFreed(_))));
    j.revert(&r);
    assert_eq!(bytes(&r, kept, 0, 4), b"keep");
    assert!(
        r.check(made).is_err(),
        "an undone ALLOC's handle stays dead"
    );
    let again = r.create(RegionSpec::new(64, ALICE)).unwrap();
    assert_ne!(again, made, "generations are never reused");
    assert!(r.check(made).is_err());
}

#[test]
fn transaction_end_settles_frees_and_reports_created() {
    let r = registry();
    let doomed = r.create(RegionSpec::new(64, ALICE)).unwrap();
    let mut j = TxJournal::default();
    j.checkpoint();
    let scoped = r.create(RegionSpec::new(64, ALICE)).unwrap();
    j.record_created(scoped, 64);
    let persistent = r
        .create(RegionSpec::new(64, ALICE).options(RegionOptions {
            persistent: true,
            ..RegionOptions::default()
        }))
        .unwrap();
    j.record_created(persistent, 64);
    j.begin_free(&r, doomed).unwrap();
    j.commit();
    let end = j.end_transaction(&r, true);
    assert_eq!(end.created, vec![(scoped, 64), (persistent, 64)]);
    assert_eq!(end.freed, vec![(doomed, 64)]);
    assert!(matches!(r.check(doomed), Err(RegionError::RegionFreed(_))));
}

#[test]
fn failed_transaction_undoes_everything() {
    let r = registry();
    let h = r.create(RegionSpec::new(PAGE_SIZE as u64, ALICE)).unwrap();
    let mut j = TxJournal::default();
    j.checkpoint();
    j.write(&r, h, 0, b"gone", false).unwrap();
    j.warm(h);
    j.add_words(4);
    j.map(h, ALICE, MapOptions::empty());
    let end = j.end_transaction(&r, false);
    assert!(end.created.is_empty());
    assert_eq!(bytes(&r, h, 0, 4), [0; 4]);
    assert!(j.is_clean());
    assert_eq!(j.words_allocated(), 0);
}

#[test]
fn growth_is_undone() {
    let r = registry();
    let grow = RegionOptions {
        auto_grow: true,
        ..RegionOptions::default()
    };
    let h = r.create(RegionSpec::new(100, ALICE).options(grow)).unwrap();
    let mut j = TxJournal::default();
    j.checkpoint();
    let out = j.write(&r, h, 90, &[1; 100], true).unwrap();
    assert_eq!((out.written, out.new_size), (100, 190));
    j.revert(&r);
    assert_eq!(r.lock_read(h).unwrap().size(), 100);
    assert_eq!(bytes(&r, h, 90, 10), [0; 10]);
}

#[test]
fn warm_set_and_words_revert_with_frames() {
    let r = registry();
    let h = r.create(RegionSpec::new(64, ALICE)).unwrap();
    let mut j = TxJournal::default();
    j.checkpoint();
    assert!(j.warm(h));
    assert!(!j.warm(h));
    j.checkpoint();
    j.add_words(10);
    j.revert(&r);
    assert!(j.is_warm(h));
    assert_eq!(j.words_allocated(), 0);
    j.revert(&r);
    assert!(!j.is_warm(h));
}

#[test]
fn copy_on_write_is_private_and_reverts() {
    let r = registry();
    let h = r
        .create(RegionSpec::new(2 * PAGE_SIZE as u64, ALICE))
        .unwrap();
    r.write(h, 0, b"live", false).unwrap();
    let bob = Address::repeat_byte(0xb0);
    let mut j = TxJournal::default();
    j.checkpoint();
    j.map(h, bob, MapOptions::COPY_ON_WRITE);
    assert_eq!(j.unfaulted_pages(h, bob, 0, 8192, 8192), 2);
    let (n, faults) = j.write_private(&r, h, bob, 2, b"PRIV").unwrap();
    assert_eq!((n, faults), (4, 1));
    let mut seen = [0u8; 6];
    j.read_private(&r, h, bob, 0, &mut seen).unwrap();
    assert_eq!(&seen, b"liPRIV");
    assert_eq!(
        bytes(&r, h, 0, 6),
        b"live\0\0",
        "the region itself is untouched"
    );
    // A nested frame writes the private page again and reverts.
    j.checkpoint();
    j.write_private(&r, h, bob, 0, b"XX").unwrap();
    j.read_private(&r, h, bob, 0, &mut seen).unwrap();
    assert_eq!(&seen, b"XXPRIV");
    j.revert(&r);
    j.read_private(&r, h, bob, 0, &mut seen).unwrap();
    assert_eq!(&seen, b"liPRIV");
    // Remap drops private pages; reverting the remap brings them back.
    j.checkpoint();
    j.map(h, bob, MapOptions::empty());
    assert_eq!(j.private_pages(), 0);
    j.revert(&r);
    assert_eq!(j.private_pages(), 1);
    // Reverting the mapping frame drops everything.
    j.revert(&r);
    assert_eq!(j.private_pages(), 0);
    assert_eq!(j.mapping(h, bob), None);
}

#[test]
fn a_fault_after_a_remap_in_the_same_frame_is_charged_again() {
    let r = registry();
    let h = r
        .create(RegionSpec::new(2 * PAGE_SIZE as u64, ALICE))
        .unwrap();
    let bob = Address::repeat_byte(0xb0);
    let mut j = TxJournal::default();
    j.checkpoint();
    j.map(h, bob, MapOptions::COPY_ON_WRITE);
    assert_eq!(j.unsaved_pages(h, Some(bob), 0, 1, 8192), 1);
    assert_eq!(j.write_private(&r, h, bob, 0, b"a").unwrap(), (1, 1));
    assert_eq!(j.unsaved_pages(h, Some(bob), 0, 1, 8192), 0);
    // The remap drops the private page, so the next write faults it again.
    j.map(h, bob, MapOptions::COPY_ON_WRITE);
    assert_eq!(j.unsaved_pages(h, Some(bob), 0, 1, 8192), 1);
    assert_eq!(j.write_private(&r, h, bob, 0, b"b").unwrap(), (1, 1));
    assert_eq!(j.unsaved_pages(h, Some(bob), 0, 1, 8192), 0);
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
        let r = registry();
        let sizes = [16_384usize, 5_000];
        let handles: Vec<_> = sizes.iter().map(|&s| r.create(RegionSpec::new(s as u64, ALICE)).unwrap()).collect();
        let mut model: Vec<Vec<u8>> = sizes.iter().map(|&s| vec![0; s]).collect();
        let mut snapshots: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut j = TxJournal::default();
        j.checkpoint();
        snapshots.push(model.clone());
        for op in ops {
            match op {
                Op::Checkpoint => { j.checkpoint(); snapshots.push(model.clone()); }
                Op::Commit if snapshots.len() > 1 => { j.commit(); snapshots.pop(); }
                Op::Revert if snapshots.len() > 1 => { j.revert(&r); model = snapshots.pop().unwrap(); }
                Op::Commit | Op::Revert => {}
                Op::Write { region, offset, len, byte } => {
                    let data = vec![byte; len];
                    let out = j.write(&r, handles[region], offset, &data, false).unwrap();
                    let m = &mut model[region];
                    let start = (offset as usize).min(m.len());
                    let end = (offset as usize + len).min(m.len());
                    m[start..end].fill(byte);
                    prop_assert_eq!(out.written, end - start);
                }
            }
            for (i, h) in handles.iter().enumerate() {
                let actual = bytes(&r, *h, 0, sizes[i]);
                let first_diff = actual.iter().zip(&model[i]).position(|(a, b)| a != b);
                prop_assert!(first_diff.is_none(), "region {} differs from the model at byte {:?}", i, first_diff);
            }
        }
        while j.depth() > 0 {
            j.revert(&r);
        }
        let base = snapshots.remove(0);
        for (i, h) in handles.iter().enumerate() {
            prop_assert!(bytes(&r, *h, 0, sizes[i]) == base[i], "region {} not back to its start state", i);
        }
    }
}
