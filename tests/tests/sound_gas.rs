//! The rules that keep hostile programs within what their gas pays for
//! (issue "sound gas", spec §4, §6, §8), and the regressions of the
//! stress run (issue 13): each one through real bytecode on revm.

mod common;

use alloy_primitives::U256;
use common::*;
use shm_manager::{
    HaltCause, Intent, RegionRequest, SharedMemoryConfig, SharedMemoryManager, HOST_CONTEXT,
};
use shm_primitives::RegionOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg_word(value: U256) -> Vec<u8> {
    value.to_be_bytes::<32>().to_vec()
}

#[test]
fn a_size_of_2_to_the_64_halts_with_offset_overflow() {
    for op in ["SHARED_READ", "SHARED_WRITE"] {
        let mut h = Harness::new(SharedMemoryConfig::testing());
        let code = format!(
            "{} PUSH 0 PUSH 0x10000000000000000 PUSH 0 DUP4 {op} STOP",
            alloc(64, 0)
        );
        let target = h.deploy_asm(&code);
        let out = h.call(target, &[]);
        assert!(out.result.is_halt(), "{op}: {:?}", out.result);
        assert_eq!(out.last_halt, Some(HaltCause::OffsetOverflow), "{op}");
    }
}

#[test]
fn filling_the_persistent_slots_locks_nobody_out_of_alloc() {
    // testing: 32 regions, 24 of them persistent at most.
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let hog = h.deploy_asm(
        "PUSH 0 loop: JUMPDEST
         PUSH 1 PUSH 32 SHARED_ALLOC
         ISZERO PUSH @done JUMPI
         PUSH 1 ADD PUSH @loop JUMP
         done: JUMPDEST PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN",
    );
    let out = h.call(hog, &[]);
    assert!(out.is_success(), "{:?}", out.result);
    assert_eq!(out.word(0), U256::from(24), "persistent regions stop at 24");
    // Another context's transaction-scoped ALLOCs still get handles.
    let other = h.deploy_asm(&format!(
        "{} {} ADD ISZERO ISZERO PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN",
        alloc(32, 0),
        alloc(32, 0)
    ));
    let out = h.call(other, &[]);
    assert!(out.is_success(), "{:?}", out.result);
    assert_eq!(out.word(0), U256::from(1));
}

#[test]
fn a_transaction_waits_its_budget_once_whatever_its_frames_retry() {
    // A parent retries a child CALL that reads a region another transaction
    // holds; every child halts busy, the parent catches it and tries again.
    // Only the first wait waits; the rest halt at once.
    let config = SharedMemoryConfig {
        lock_wait: Duration::from_millis(100),
        // So that even a small frame could wait the whole budget on its own.
        lock_wait_ns_per_gas: 1_000_000,
        ..SharedMemoryConfig::development()
    };
    let manager = SharedMemoryManager::new(config).unwrap();
    let region = manager
        .create_region(RegionRequest::new(64).options(RegionOptions {
            public_read: true,
            ..RegionOptions::default()
        }))
        .unwrap();
    let mut foreign = manager.begin_transaction();
    foreign
        .resolve(region, HOST_CONTEXT, Intent::Write, None, Duration::ZERO)
        .unwrap();
    let mut h = Harness::with_manager(Arc::clone(&manager));
    let child = h.deploy_asm(&format!("{} STOP", read(&arg(0), 0, 32, 0)));
    const RETRIES: u64 = 30;
    let parent = h.deploy_asm(&format!(
        "{calldata} PUSH {RETRIES}
         loop: JUMPDEST
         {call} POP
         PUSH 1 SWAP1 SUB DUP1 PUSH @loop JUMPI
         STOP",
        calldata = calldata_to(0),
        call = call_gas(child, 20_000, 0, 32, 0, 0),
    ));
    let start = Instant::now();
    let out = h.call(parent, &arg_word(region.to_u256()));
    let took = start.elapsed();
    assert!(out.is_success(), "{:?}", out.result);
    let halts = manager.metrics_snapshot().halts.region_busy;
    assert_eq!(halts, RETRIES, "every retry halted busy");
    // 30 waits of 100 ms would take 3 s; one budget is 100 ms.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    foreign.release();
}

#[test]
fn a_frame_with_little_gas_barely_waits() {
    // One wait is bounded by the waiting frame's gas (6 ns per gas): a child
    // given 10,000 gas waits at most 60 µs, not the 5 s lock_wait.
    let config = SharedMemoryConfig {
        lock_wait: Duration::from_secs(5),
        ..SharedMemoryConfig::development()
    };
    let manager = SharedMemoryManager::new(config).unwrap();
    let region = manager
        .create_region(RegionRequest::new(64).options(RegionOptions {
            public_read: true,
            ..RegionOptions::default()
        }))
        .unwrap();
    let mut foreign = manager.begin_transaction();
    foreign
        .resolve(region, HOST_CONTEXT, Intent::Write, None, Duration::ZERO)
        .unwrap();
    let mut h = Harness::with_manager(Arc::clone(&manager));
    let child = h.deploy_asm(&format!("{} STOP", read(&arg(0), 0, 32, 0)));
    let parent = h.deploy_asm(&format!(
        "{} {} STOP",
        calldata_to(0),
        call_gas(child, 10_000, 0, 32, 0, 0)
    ));
    let start = Instant::now();
    let out = h.call(parent, &arg_word(region.to_u256()));
    assert!(out.is_success(), "{:?}", out.result);
    assert_eq!(manager.metrics_snapshot().halts.region_busy, 1);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    foreign.release();
}

#[test]
fn a_write_past_the_journal_cap_halts_journal_full() {
    // 4 pages of journal per transaction at most.
    let config = SharedMemoryConfig {
        max_journal_bytes: 4 * 4096,
        ..SharedMemoryConfig::testing()
    };
    let mut h = Harness::new(config);
    let four = h.deploy_asm(&format!(
        "{} PUSH 0 MSTORE {} STOP",
        alloc(5 * 4096, 1),
        write(&mem(0), 0, 4 * 4096, 0)
    ));
    let out = h.call(four, &[]);
    assert!(out.is_success(), "{:?}", out.result);
    let five = h.deploy_asm(&format!(
        "{} PUSH 0 MSTORE {} STOP",
        alloc(5 * 4096, 1),
        write(&mem(0), 0, 5 * 4096, 0)
    ));
    let out = h.call(five, &[]);
    assert!(out.result.is_halt(), "{:?}", out.result);
    assert_eq!(out.last_halt, Some(HaltCause::JournalFull));
}

#[test]
fn page_saves_cost_more_as_the_journal_grows() {
    // Writing n fresh pages of a host region costs g(n) = 200n + n²/16 for
    // the pages, on top of access and copy.
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = h
        .manager
        .create_region(RegionRequest::new(1024 * 4096).options(RegionOptions {
            public_write: true,
            ..RegionOptions::default()
        }))
        .unwrap();
    let mut pages_gas = |pages: u64| {
        let code = format!("{} STOP", write(&arg(0), 0, pages * 4096, 0));
        let target = h.deploy_asm(&code);
        let out = h.call(target, &arg_word(region.to_u256()));
        assert!(out.is_success(), "{:?}", out.result);
        out.gas_used()
    };
    let one = pages_gas(1);
    let many = pages_gas(256);
    let words = |pages: u64| pages * 128;
    let memory = |w: u64| 3 * w + w * w / 512;
    let g = |p: u64| 200 * p + p * p / 16;
    // Same access cost (cold), same call overhead: the difference is copy,
    // memory expansion and pages.
    let expected =
        (3 * words(256) + memory(words(256)) + g(256)) - (3 * words(1) + memory(words(1)) + g(1));
    assert_eq!(many - one, expected);
}

#[test]
fn growth_moves_the_memory_gauge() {
    // Issue 13: only host resizes moved the gauge; an EVM auto-grow left it behind.
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let target = h.deploy_asm(&format!(
        "{} PUSH 0 MSTORE {} STOP",
        alloc(32, 0b11),
        write(&mem(0), 10_000, 32, 0)
    ));
    let out = h.call(target, &[]);
    assert!(out.is_success(), "{:?}", out.result);
    let stats = h.manager.get_memory_stats().unwrap();
    let metrics = h.manager.metrics_snapshot();
    assert_eq!(stats.total_bytes, 10_032);
    assert_eq!(metrics.memory_bytes, stats.total_bytes);
}

#[test]
fn reverted_growth_moves_the_gauge_back() {
    let mut h = Harness::new(SharedMemoryConfig::testing());
    let region = h
        .manager
        .create_region(RegionRequest::new(32).options(RegionOptions {
            auto_grow: true,
            ..RegionOptions::default()
        }))
        .unwrap();
    let child = h.deploy_asm(&format!(
        "{} PUSH 0 PUSH 0 REVERT",
        write(&arg(0), 10_000, 32, 0)
    ));
    let parent = h.deploy_asm(&format!(
        "{} {} STOP",
        calldata_to(0),
        call(child, 0, 32, 0, 0)
    ));
    let out = h.call(parent, &arg_word(region.to_u256()));
    assert!(out.is_success(), "{:?}", out.result);
    let stats = h.manager.get_memory_stats().unwrap();
    assert_eq!(stats.total_bytes, 32);
    assert_eq!(h.manager.metrics_snapshot().memory_bytes, 32);
}

#[test]
fn an_uncommitted_free_is_waited_for_and_then_undone() {
    // Issue 13: transaction A frees f and keeps running; B's READ of f must
    // wait for A's outcome — A reverts, so B succeeds — never halt "freed" early.
    let config = SharedMemoryConfig {
        lock_wait: Duration::from_secs(10),
        ..SharedMemoryConfig::development()
    };
    let manager = SharedMemoryManager::new(config).unwrap();
    let f = manager
        .create_region(RegionRequest::new(64).options(RegionOptions {
            public_read: true,
            ..RegionOptions::default()
        }))
        .unwrap();
    manager.write_region(f, 0, &[7; 32]).unwrap();
    let mut a = manager.begin_transaction();
    a.resolve(f, HOST_CONTEXT, Intent::Free, None, Duration::ZERO)
        .unwrap();
    a.begin_free(f).unwrap();
    let reader = {
        let manager = Arc::clone(&manager);
        std::thread::spawn(move || {
            let mut h = Harness::with_manager(manager);
            let target = h.deploy_asm(&format!("{} POP {}", read(&arg(0), 0, 32, 0), ret(0, 32)));
            h.call(target, &f.to_u256().to_be_bytes::<32>())
        })
    };
    // Until A decides, B waits (it holds no lock yet and has not halted).
    std::thread::sleep(Duration::from_millis(100));
    assert!(!reader.is_finished());
    assert_eq!(manager.metrics_snapshot().halts.total(), 0);
    shm_journal::RegionOps::cancel_free(&mut a, f);
    a.release();
    let out = reader.join().unwrap();
    assert!(out.is_success(), "{:?}", out.result);
    assert_eq!(out.word(0), filled(7));
}

#[test]
fn a_transaction_reports_the_most_it_held_and_its_gas_paid_for_it() {
    // Spec §8: region memory and page buffers go back on revert, the gas spent
    // does not, so each peak is paid for: f(peak W) ≤ spent and g(peak P) ≤
    // spent. The fuzz target `bytecode` asserts this after every transaction;
    // here the peaks themselves are checked.
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = h
        .manager
        .create_region(RegionRequest::new(64 * 4096).options(RegionOptions {
            public_write: true,
            ..RegionOptions::default()
        }))
        .unwrap();
    // The child saves 8 fresh pages and reverts (P back to 0); the parent
    // then saves 4: the peak is the child's 8, not the 4 held at the end.
    let child = h.deploy_asm(&format!(
        "{} PUSH 0 PUSH 0 REVERT",
        write(&arg(0), 0, 8 * 4096, 0)
    ));
    let parent = h.deploy_asm(&format!(
        "{} {} {} STOP",
        calldata_to(0),
        call(child, 0, 32, 0, 0),
        write(&mem(0), 0, 4 * 4096, 0)
    ));
    let out = h.call(parent, &arg_word(region.to_u256()));
    assert!(out.is_success(), "{:?}", out.result);
    assert_eq!(out.peak.page_buffers, 8);
    assert_eq!(out.peak.region_words, 0);
    let spent = out.result.gas().total_gas_spent();
    assert!(h.gas.page_cost(8) + h.gas.page_cost(4) <= spent);

    // An ALLOC of 5 pages holds 640 words; the next transaction starts over.
    let allocating = h.deploy_asm(&format!("{} STOP", alloc(5 * 4096, 0)));
    let out = h.call(allocating, &[]);
    assert!(out.is_success(), "{:?}", out.result);
    assert_eq!(out.peak.region_words, 640);
    assert!(h.gas.memory_cost(640) <= out.result.gas().total_gas_spent());
    let idle = h.deploy_asm("STOP");
    assert_eq!(h.call(idle, &[]).peak, shm_opcodes::TxPeak::default());
}
