//! Property: whatever sequence of checkpoint operations drives a
//! `HookedJournal`, the hook sees well-paired, LIFO checkpoints, and its
//! depth always equals revm's journal depth.

use proptest::prelude::*;
use revm::{
    context_interface::{journaled_state::JournalCheckpoint, JournalTr},
    database::EmptyDB,
    primitives::hardfork::SpecId,
};
use shm_opcodes::{FrameHook, HookedJournal, TxOutcome};

#[derive(Clone, Copy, Debug)]
enum Op {
    Checkpoint,
    Commit,
    Revert,
    CommitTx,
    DiscardTx,
    Finalize,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Checkpoint),
        3 => Just(Op::Commit),
        3 => Just(Op::Revert),
        1 => Just(Op::CommitTx),
        1 => Just(Op::DiscardTx),
        1 => Just(Op::Finalize),
    ]
}

/// Keeps its own stack of open checkpoints and fails loudly on misuse.
#[derive(Default)]
struct Strict {
    open: Vec<u32>,
    next: u32,
    errors: Vec<String>,
    ends: Vec<TxOutcome>,
}

impl FrameHook for Strict {
    fn checkpoint(&mut self) {
        self.open.push(self.next);
        self.next += 1;
    }
    fn checkpoint_commit(&mut self) {
        if self.open.pop().is_none() {
            self.errors.push("commit with nothing open".into());
        }
    }
    fn checkpoint_revert(&mut self) {
        if self.open.pop().is_none() {
            self.errors.push("revert with nothing open".into());
        }
    }
    fn transaction_end(&mut self, outcome: TxOutcome) {
        if !self.open.is_empty() {
            self.errors
                .push("transaction ended with checkpoints open".into());
        }
        self.ends.push(outcome);
    }
}

proptest! {
    #[test]
    fn hook_depth_tracks_revm_depth(ops in prop::collection::vec(op(), 0..200)) {
        let mut journal = HookedJournal::new_with_hook(EmptyDB::default(), Strict::default());
        journal.set_spec_id(SpecId::OSAKA);
        let mut taken: Vec<JournalCheckpoint> = Vec::new();
        let mut expected_ends = Vec::new();
        for op in ops {
            match op {
                Op::Checkpoint => taken.push(journal.checkpoint()),
                Op::Commit => {
                    taken.pop();
                    journal.checkpoint_commit();
                }
                Op::Revert => {
                    let checkpoint = taken.pop().unwrap_or_default();
                    journal.checkpoint_revert(checkpoint);
                }
                Op::CommitTx => {
                    taken.clear();
                    journal.commit_tx();
                    expected_ends.push(TxOutcome::Committed);
                }
                Op::DiscardTx => {
                    taken.clear();
                    journal.discard_tx();
                    expected_ends.push(TxOutcome::Discarded);
                }
                Op::Finalize => {
                    if !taken.is_empty() {
                        expected_ends.push(TxOutcome::Committed);
                    }
                    taken.clear();
                    let _ = journal.finalize();
                }
            }
            prop_assert_eq!(journal.hook().open.len(), journal.depth());
            prop_assert_eq!(journal.open_checkpoints(), journal.depth());
            prop_assert_eq!(taken.len(), journal.depth());
        }
        prop_assert!(journal.hook().errors.is_empty(), "{:?}", journal.hook().errors);
        prop_assert_eq!(&journal.hook().ends, &expected_ends);
    }
}
