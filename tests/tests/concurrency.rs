//! Concurrent transactions on one manager, from real threads: strict two-phase
//! locking per region (spec §6). Conflicting transactions serialise; a
//! transaction that cannot get a region within `lock_wait` halts with "region
//! busy" and leaves nothing behind.

use alloy_primitives::U256;
use shm_manager::{
    HaltCause, Intent, RegionRequest, SharedMemoryConfig, SharedMemoryManager, HOST_CONTEXT,
};
use shm_primitives::{RegionHandle, RegionOptions};
use shm_tests::{words, Harness};
use std::{sync::Arc, thread, time::Duration};

/// Calldata: (handle, n). Locks the region for writing first (a zero-length
/// WRITE), then n times: read the counter in its first word, add one, write it
/// back. Returns the counter.
const COUNTER: &str = r"
    PUSH 0 PUSH 0 PUSH 0 PUSH 0 CALLDATALOAD SHARED_WRITE POP   ; take the region exclusively
    PUSH 32 CALLDATALOAD                                        ; [n]
    loop:
    JUMPDEST
    DUP1 ISZERO PUSH @done JUMPI
    PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_READ POP   ; mem[0..32] = counter
    PUSH 0 MLOAD PUSH 1 ADD PUSH 0 MSTORE
    PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_WRITE POP  ; counter += 1
    PUSH 1 SWAP1 SUB
    PUSH @loop JUMP
    done:
    JUMPDEST
    PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_READ POP
    PUSH 32 PUSH 0 RETURN
";

fn shared_counter(manager: &SharedMemoryManager) -> RegionHandle {
    let options = RegionOptions {
        persistent: true,
        public_write: true,
        ..RegionOptions::default()
    };
    manager
        .create_region(RegionRequest::new(64).named("counter").options(options))
        .unwrap()
}

fn counter_value(manager: &SharedMemoryManager, handle: RegionHandle) -> U256 {
    let mut buf = [0u8; 32];
    manager.read_region(handle, 0, &mut buf).unwrap();
    U256::from_be_bytes(buf)
}

#[test]
fn conflicting_transactions_serialise() {
    let config = SharedMemoryConfig {
        lock_wait: Duration::from_secs(20),
        ..SharedMemoryConfig::development()
    };
    let manager = SharedMemoryManager::new(config).unwrap();
    let handle = shared_counter(&manager);
    const THREADS: usize = 2;
    const TXS: usize = 8;
    const STEPS: u64 = 50;

    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let manager = Arc::clone(&manager);
            thread::spawn(move || {
                let mut chain = Harness::with_manager(manager);
                let target = chain.deploy_asm(COUNTER);
                let input = words([handle.to_u256(), U256::from(STEPS)]);
                (0..TXS)
                    .map(|_| {
                        let out = chain.call(target, &input);
                        assert!(out.is_success(), "{:?} {:?}", out.result, out.last_halt);
                        out.word(0)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen: Vec<U256> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    seen.sort();
    // Each transaction saw a counter no other transaction was changing: it started at
    // a multiple of STEPS and ended STEPS later, exactly as if run one after another.
    let expected: Vec<U256> = (1..=(THREADS * TXS) as u64)
        .map(|k| U256::from(k * STEPS))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(
        counter_value(&manager, handle),
        U256::from((THREADS * TXS) as u64 * STEPS)
    );
    assert!(
        manager.locked_regions().is_empty(),
        "every lock released at transaction end"
    );
}

/// Calldata: (handle). Makes a region of its own and writes to it, then writes to
/// the shared region (which another transaction holds), then returns 1.
const GREEDY: &str = r"
    PUSH 0 PUSH 64 SHARED_ALLOC                                ; [own]
    PUSH 0xaa PUSH 0 MSTORE8
    PUSH 0 PUSH 1 PUSH 0 DUP4 SHARED_WRITE POP                 ; own[0] = 0xaa
    PUSH 0 PUSH 1 PUSH 0 PUSH 0 CALLDATALOAD SHARED_WRITE POP  ; shared[0] = 0xaa: waits for the lock
    PUSH 1 PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN
";

#[test]
fn busy_region_halts_and_leaves_nothing_behind() {
    let config = SharedMemoryConfig {
        lock_wait: Duration::from_millis(20),
        ..SharedMemoryConfig::development()
    };
    let manager = SharedMemoryManager::new(config).unwrap();
    let handle = shared_counter(&manager);
    let before = manager.get_memory_stats().unwrap();

    // Another transaction holds the region exclusively (taken through the same
    // transaction layer the EVM uses).
    let mut other = manager.begin_transaction();
    let held = other
        .resolve(handle, HOST_CONTEXT, Intent::Write, None, Duration::ZERO)
        .unwrap();

    let mut chain = Harness::with_manager(Arc::clone(&manager));
    let target = chain.deploy_asm(GREEDY);
    let input = words([handle.to_u256()]);
    let out = chain.call(target, &input);
    assert!(out.result.is_halt(), "{:?}", out.result);
    assert_eq!(out.last_halt, Some(HaltCause::RegionBusy));
    let after = manager.get_memory_stats().unwrap();
    assert_eq!(
        after.active_regions, before.active_regions,
        "the region it made is gone again"
    );
    assert_eq!(after.total_bytes, before.total_bytes);
    let mut buf = [0u8; 32];
    other.read(&held, 0, &mut buf).unwrap();
    assert_eq!(buf, [0; 32], "the shared region is untouched");
    assert_eq!(manager.metrics_snapshot().halts.region_busy, 1);

    // Once the other transaction ends, the same transaction goes through.
    other.release();
    let out = chain.call(target, &input);
    assert!(out.is_success(), "{:?}", out.result);
    assert_eq!(counter_value(&manager, handle).to_be_bytes::<32>()[0], 0xaa);
}

/// A long transaction on one thread holds the region; a second thread's
/// transaction waits `lock_wait`, halts busy, and its effects are gone; after the
/// first ends, the second succeeds.
#[test]
fn two_threads_one_waits_too_long() {
    let config = SharedMemoryConfig {
        lock_wait: Duration::from_millis(10),
        ..SharedMemoryConfig::development()
    };
    let manager = SharedMemoryManager::new(config).unwrap();
    let handle = shared_counter(&manager);
    // Takes the region, then burns gas in a loop for far longer than lock_wait.
    const HOLDER: &str = r"
        PUSH 0 PUSH 0 PUSH 0 PUSH 0 CALLDATALOAD SHARED_WRITE POP
        PUSH 400000
        spin:
        JUMPDEST
        PUSH 1 SWAP1 SUB
        DUP1 PUSH @spin JUMPI
        STOP
    ";
    let holder = {
        let manager = Arc::clone(&manager);
        thread::spawn(move || {
            let mut chain = Harness::with_manager(manager);
            let target = chain.deploy_asm(HOLDER);
            chain.call(target, &words([handle.to_u256()]))
        })
    };
    // Wait until the holder's transaction has the lock.
    let mut waited = 0;
    while !manager.locked_regions().contains(&handle) {
        thread::sleep(Duration::from_micros(200));
        waited += 1;
        assert!(waited < 50_000, "the holder never took the lock");
    }
    let mut chain = Harness::with_manager(Arc::clone(&manager));
    let target = chain.deploy_asm(GREEDY);
    let regions_before = manager.get_memory_stats().unwrap().active_regions;
    let out = chain.call(target, &words([handle.to_u256()]));
    let holder_out = holder.join().unwrap();
    assert!(holder_out.is_success(), "{:?}", holder_out.result);
    if out.is_success() {
        // The holder finished before our wait ran out (a very slow machine): the
        // serial order is holder, then us — still no interleaving.
        assert_eq!(counter_value(&manager, handle).to_be_bytes::<32>()[0], 0xaa);
    } else {
        assert_eq!(out.last_halt, Some(HaltCause::RegionBusy));
        assert_eq!(
            manager.get_memory_stats().unwrap().active_regions,
            regions_before
        );
        assert_eq!(counter_value(&manager, handle), U256::ZERO);
        let retry = chain.call(target, &words([handle.to_u256()]));
        assert!(retry.is_success());
    }
    assert!(manager.locked_regions().is_empty());
}

/// Readers share: two transactions that only READ the same region run at the
/// same time (neither waits for the other's end).
#[test]
fn readers_share_a_region() {
    let config = SharedMemoryConfig {
        lock_wait: Duration::from_millis(5),
        ..SharedMemoryConfig::development()
    };
    let manager = SharedMemoryManager::new(config).unwrap();
    let handle = shared_counter(&manager);
    const READER: &str = r"
        PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_READ POP
        PUSH 300000
        spin:
        JUMPDEST
        PUSH 1 SWAP1 SUB
        DUP1 PUSH @spin JUMPI
        PUSH 32 PUSH 0 RETURN
    ";
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let manager = Arc::clone(&manager);
            thread::spawn(move || {
                let mut chain = Harness::with_manager(manager);
                let target = chain.deploy_asm(READER);
                chain.call(target, &words([handle.to_u256()]))
            })
        })
        .collect();
    for reader in readers {
        let out = reader.join().unwrap();
        assert!(
            out.is_success(),
            "a reader waited for another reader: {:?}",
            out.last_halt
        );
    }
}
