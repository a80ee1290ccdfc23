//! Handles (spec §2, §3): `generation << 32 | index`, generations never reused
//! (a stale handle never reaches a new region), handles predicted by a model
//! over random transaction sequences (proptest), and determinism across fresh
//! managers.

mod common;

use alloy_primitives::{Address, U256};
use common::*;
use proptest::prelude::*;
use shm_manager::{HaltCause, SharedMemoryConfig};

const OWNER: Address = Address::repeat_byte(0xa1);
const CHILD: Address = Address::repeat_byte(0xc1);

#[test]
fn a_stale_handle_halts_even_after_its_slot_is_reused() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let old = region_owned_by(&mut h, OWNER, 64, 1);
    assert_eq!(old, handle(1, 1));
    h.deploy_asm_at(OWNER, &(free(&arg(0)) + "STOP"));
    assert_ok(&h.call(OWNER, &arg_word(old)));
    // Slot 1 is reused at generation 2 by a new region with its own bytes.
    let new = region_owned_by(&mut h, OWNER, 64, 1);
    assert_eq!(new, handle(1, 2));
    host_write(&h, new, 0, &[0x5a; 32]);
    for (_, code) in [
        ("READ", read(&arg(0), 0, 32, 0)),
        ("WRITE", write(&arg(0), 0, 32, 0)),
        ("MAP", map(&arg(0), 0)),
        ("FREE", free(&arg(0))),
    ] {
        let target = h.deploy_asm(&(code + "STOP"));
        assert_halt(&h.call(target, &arg_word(old)), HaltCause::FreedRegion);
    }
    assert_eq!(
        host_read(&h, new, 0, 32),
        vec![0x5a; 32],
        "the new region is untouched"
    );
}

#[test]
fn a_reverted_alloc_burns_its_generation_within_the_transaction() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    // The child allocates, returns its handle in the revert data.
    h.deploy_asm_at(CHILD, &(alloc_to(0, 64, 0) + "PUSH 32 PUSH 0 REVERT"));
    let target = h.deploy_asm(&format!(
        "{}POP\n{}{}{}{}",
        call(CHILD, 0, 0, 0, 32),
        alloc_to(32, 64, 0),
        // The stale handle, in the same transaction, after its slot was reused.
        read(&mem(0), 0, 32, 64) + "POP\n",
        "STOP\n",
        ""
    ));
    let (out, _) = call_inspected(&mut h, target, &[]);
    assert_halt(&out, HaltCause::FreedRegion);
    // Without the stale read: what the two ALLOCs pushed.
    let target = h.deploy_asm(&format!(
        "{}POP\n{}{}",
        call(CHILD, 0, 0, 0, 32),
        alloc_to(32, 64, 0),
        ret(0, 64)
    ));
    let out = h.call(target, &[]);
    assert_ok(&out);
    let (undone, reused) = (out.word(0), out.word(1));
    assert_eq!(
        index_of(undone),
        index_of(reused),
        "the slot is reused at once"
    );
    assert_eq!(generation_of(reused), generation_of(undone) + 1);
}

fn index_of(word: U256) -> u64 {
    word.to::<u64>() & 0xffff_ffff
}

fn generation_of(word: U256) -> u64 {
    word.to::<u64>() >> 32
}

// ----- the model -----

#[derive(Clone, Debug)]
enum Op {
    /// ALLOC of `size` bytes; persistent when `persistent`.
    Alloc { size: u64, persistent: bool },
    /// FREE of the `pick`-th live handle known to the test (mod their number).
    Free { pick: usize },
    /// A child frame ALLOCs and reverts.
    RevertedAlloc,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..=4096, any::<bool>()).prop_map(|(size, persistent)| Op::Alloc { size, persistent }),
        2 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => Just(Op::RevertedAlloc),
    ]
}

/// Slot bookkeeping as spec §2 and the registry describe it: the lowest free
/// slot, at its next generation; frees are final at transaction end; a
/// reverted ALLOC frees its slot at once; `max_regions` counts pending frees.
#[derive(Default)]
struct Model {
    issued: Vec<u32>,
    occupied: Vec<bool>,
    persistent: Vec<bool>,
}

impl Model {
    fn live(&self) -> usize {
        self.occupied.iter().filter(|&&o| o).count()
    }
    fn alloc(&mut self, persistent: bool, max_regions: usize) -> Option<(u32, u32)> {
        if self.live() >= max_regions {
            return None;
        }
        let persistent_live = (0..self.occupied.len())
            .filter(|&i| self.occupied[i] && self.persistent[i])
            .count();
        if persistent && persistent_live >= MAX_PERSISTENT {
            return None;
        }
        let slot = match self.occupied.iter().position(|&o| !o) {
            Some(slot) => slot,
            None => {
                self.issued.push(0);
                self.occupied.push(false);
                self.persistent.push(false);
                self.occupied.len() - 1
            }
        };
        self.issued[slot] += 1;
        self.occupied[slot] = true;
        self.persistent[slot] = persistent;
        Some((slot as u32 + 1, self.issued[slot]))
    }
    fn release(&mut self, index: u32) {
        self.occupied[index as usize - 1] = false;
    }
}

const MAX_REGIONS: usize = 6;
const MAX_PERSISTENT: usize = 4;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn alloc_pushes_model_handles_never_a_host_address(
        txs in prop::collection::vec(prop::collection::vec(op(), 1..7), 1..5)
    ) {
        let mut config = SharedMemoryConfig::testing();
        config.max_regions = MAX_REGIONS;
        config.max_persistent_regions = MAX_PERSISTENT;
        let mut h = Harness::new(config);
        h.deploy_asm_at(CHILD, &(alloc(64, 0) + "PUSH 0 MSTORE PUSH 32 PUSH 0 REVERT"));
        let mut model = Model::default();
        // Handles alive across transactions (persistent), as bytecode saw them.
        let mut carried: Vec<U256> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut allocs = 0u64;
        for ops in &txs {
            let mut code = String::new();
            let mut expected: Vec<U256> = Vec::new();
            // Handles this transaction may free: carried ones and its own
            // (with the memory slot holding its own).
            let mut freeable: Vec<(Option<u64>, U256)> =
                carried.iter().map(|&h| (None, h)).collect();
            let mut frees_this_tx = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                let at = 32 * i as u64;
                match *op {
                    Op::Alloc { size, persistent } => {
                        allocs += 1;
                        code += &alloc_to(at, size, u64::from(persistent));
                        let predicted = model
                            .alloc(persistent, MAX_REGIONS)
                            .map_or(U256::ZERO, |(i, g)| handle(i, g));
                        if predicted != U256::ZERO {
                            freeable.push((Some(at), predicted));
                        }
                        expected.push(predicted);
                    }
                    Op::RevertedAlloc => {
                        allocs += 1;
                        code += &call(CHILD, 0, 0, at, 32);
                        code += "POP\n";
                        let predicted = model.alloc(false, MAX_REGIONS);
                        if let Some((index, _)) = predicted {
                            model.release(index);
                        }
                        expected.push(predicted.map_or(U256::ZERO, |(i, g)| handle(i, g)));
                    }
                    Op::Free { pick } => {
                        if freeable.is_empty() {
                            code += &mstore(at, 0);
                            expected.push(U256::ZERO);
                            continue;
                        }
                        let (slot, word) = freeable.remove(pick % freeable.len());
                        let operand = match slot {
                            Some(slot) => mem(slot),
                            None => format!("PUSH {word}"),
                        };
                        code += &free(&operand);
                        code += &store(at);
                        expected.push(U256::from(1));
                        frees_this_tx.push(word);
                        carried.retain(|&c| c != word);
                    }
                }
            }
            code += &ret(0, 32 * ops.len() as u64);
            let target = h.deploy_asm(&code);
            let out = h.call(target, &[]);
            prop_assert!(out.is_success(), "{:?} {:?}", out.result, out.last_halt);
            for (i, op) in ops.iter().enumerate() {
                let word = out.word(i);
                prop_assert_eq!(word, expected[i], "op {} {:?}", i, op);
                if matches!(op, Op::Free { .. }) || word.is_zero() {
                    continue;
                }
                // The stack form: upper 192 bits zero, index and generation ≥ 1,
                // and small: a slot index and a count of allocations, never a
                // pointer or a pool offset.
                prop_assert!(word < U256::from(1u128 << 64));
                let (index, generation) = (index_of(word), generation_of(word));
                prop_assert!((1..=MAX_REGIONS as u64).contains(&index));
                prop_assert!(generation >= 1 && generation <= allocs);
                prop_assert!(seen.insert(word), "handle {} issued twice", word);
            }
            // Transaction end: frees become final; scoped regions go.
            for word in frees_this_tx {
                model.release(index_of(word) as u32);
            }
            for slot in 0..model.occupied.len() {
                if model.occupied[slot] && !model.persistent[slot] {
                    model.occupied[slot] = false;
                }
            }
            for (i, op) in ops.iter().enumerate() {
                if let Op::Alloc { persistent: true, .. } = op {
                    let word = out.word(i);
                    if !word.is_zero() && freeable.iter().any(|&(_, w)| w == word) {
                        carried.push(word);
                    }
                }
            }
            prop_assert_eq!(h.manager.list_regions().unwrap().len(), model.live());
        }
    }
}

// ----- determinism -----

/// A transaction sequence touching every kind of effect: allocations
/// (scoped, persistent, auto-grow), writes, a reverted child, copy-on-write,
/// reads, frees, a halt, and a carried-over persistent region.
fn run_sequence(config: SharedMemoryConfig) -> Vec<(String, Vec<u8>, u64)> {
    let mut h = Harness::new(config);
    let viewer = addr(0xb1);
    let mut log = Vec::new();
    let mut record = |out: &Outcome| {
        log.push((
            format!("{:?} {:?}", out.result, out.last_halt),
            out.output().to_vec(),
            out.gas_used(),
        ))
    };
    h.deploy_asm_at(
        CHILD,
        &(alloc(100, 0) + "POP\n" + &write(&arg(0), 0, 64, 0) + "POP PUSH 0 PUSH 0 REVERT"),
    );
    h.deploy_asm_at(
        viewer,
        &(map(&arg(0), 1)
            + "POP\n"
            + &mstore(0, fill(0x0b))
            + &write(&arg(0), 10, 32, 0)
            + "POP\n"
            + &read(&arg(0), 0, 64, 0x40)
            + "POP\n"
            + &ret(0x40, 64)),
    );
    let main = format!(
        "{}{}{}{}POP\n{}{}POP\n{}POP\n{}POP\n{}{}{}",
        alloc_to(0, 5000, 0b110),
        alloc_to(0x20, 64, 0b101),
        mstore(0x100, fill(0x01)),
        write(&mem(0), 4990, 32, 0x100),
        call(CHILD, 0, 32, 0, 0),
        call(viewer, 0x20, 32, 0x200, 64),
        read(&mem(0), 0, 5100, 0x300),
        free(&mem(0)),
        alloc_to(0x40, 33, 0),
        read(&mem(0x20), 0, 64, 0x60),
        ret(0, 0x2000)
    );
    let target = h.deploy_asm(&main);
    for _ in 0..3 {
        record(&h.call(target, &[]));
    }
    let carried = region_owned_by(&mut h, OWNER, 4096, 0b1011);
    let user = h.deploy_asm(
        &(map(&arg(0), 0)
            + "POP\n"
            + &write(&arg(0), 4000, 200, 0)
            + &store(0)
            + &read(&arg(0), 0, 4300, 0x40)
            + "POP\n"
            + &ret(0, 4400)),
    );
    for _ in 0..2 {
        record(&h.call(user, &arg_word(carried)));
    }
    let halting = h.deploy_asm(&(free(&arg(0)) + "POP\n" + &read(&arg(0), 0, 1, 0) + "STOP"));
    record(&h.call(halting, &arg_word(carried)));
    let regions: Vec<String> = h
        .manager
        .list_regions()
        .unwrap()
        .iter()
        .map(|info| {
            format!(
                "{:?} {} {}",
                info.meta.handle(),
                info.meta.size(),
                info.meta.owner()
            )
        })
        .collect();
    log.push((regions.join(";"), Vec::new(), 0));
    let m = h.manager.metrics_snapshot();
    log.push((
        format!(
            "{} {} {} {} {} {} {} {:?}",
            m.regions_created,
            m.regions_destroyed,
            m.reads,
            m.read_bytes,
            m.writes,
            m.write_bytes,
            m.cow_faults,
            m.halts
        ),
        Vec::new(),
        0,
    ));
    log
}

#[test]
fn the_same_transactions_on_fresh_managers_give_identical_results() {
    for (name, config) in level_configs() {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let config = config.clone();
                std::thread::spawn(move || run_sequence(config))
            })
            .collect();
        let runs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let again = run_sequence(config);
        assert_eq!(runs[0], runs[1], "{name}: two threads");
        assert_eq!(runs[0], again, "{name}: a third run");
        // The sequence really ran: handles came out and something halted last.
        assert!(
            runs[0]
                .iter()
                .any(|(result, _, _)| result.contains("Success")),
            "{name}"
        );
    }
}
