//! Real threads: host calls on shared regions, and the two-phase lock table.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use shm_manager::{
    LockMode, RegionBusy, RegionLockTable, RegionRequest, SharedMemoryConfig, SharedMemoryManager,
    TxId,
};
use shm_primitives::{Address, MapOptions, RegionHandle};
use LockMode::{Exclusive, Shared};

const THREADS: usize = 8;
const CHUNK: usize = 512;
const ROUNDS: usize = 200;
const A: RegionHandle = RegionHandle::new(1, 1).unwrap();
const B: RegionHandle = RegionHandle::new(2, 1).unwrap();
/// A lock wait only a missed wake-up runs out.
const LONG: Duration = Duration::from_secs(20);

fn fill(thread: usize, round: usize) -> u8 {
    ((thread * 31 + round) % 251) as u8 + 1
}

/// `f`'s result and how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    (f(), start.elapsed())
}

#[test]
fn eight_threads_read_and_write_shared_regions() {
    let mut config = SharedMemoryConfig::development();
    // Generous: a descheduled thread on a loaded machine must not make
    // another give up; this test is about contents, not waits.
    config.lock_wait = Duration::from_secs(30);
    let m = SharedMemoryManager::new(config).unwrap();
    let size = (THREADS * CHUNK) as u64;
    let regions: Vec<RegionHandle> = (0..4)
        .map(|i| m.create_region(RegionRequest::new(size).named(format!("r{i}"))))
        .collect::<Result<_, _>>()
        .unwrap();
    let start = Barrier::new(THREADS);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (m, regions, start) = (&m, &regions, &start);
            s.spawn(move || {
                let me = Address::repeat_byte(t as u8 + 1);
                let own = (t * CHUNK) as u64;
                start.wait();
                for round in 0..ROUNDS {
                    for &h in regions {
                        let value = fill(t, round);
                        assert_eq!(m.write_region(h, own, &[value; CHUNK]), Ok(CHUNK));
                        let mut mine = [0u8; CHUNK];
                        assert_eq!(m.read_region(h, own, &mut mine), Ok(CHUNK));
                        assert!(mine.iter().all(|&b| b == value), "own chunk changed");
                        // Whole-region reads see every other chunk whole: each
                        // write is atomic with respect to each read.
                        let mut all = vec![0u8; THREADS * CHUNK];
                        assert_eq!(m.read_region(h, 0, &mut all), Ok(all.len()));
                        for chunk in all.chunks(CHUNK) {
                            assert!(chunk.iter().all(|&b| b == chunk[0]), "torn chunk");
                        }
                    }
                    if round % 20 == 0 {
                        let h = regions[round % regions.len()];
                        assert_eq!(m.map_shared_region(h, me, MapOptions::empty()), Ok(()));
                        assert_eq!(m.unmap_shared_region(h, me), Ok(()));
                    }
                }
            });
        }
    });
    for &h in &regions {
        let mut all = vec![0u8; THREADS * CHUNK];
        m.read_region(h, 0, &mut all).unwrap();
        for (t, chunk) in all.chunks(CHUNK).enumerate() {
            assert!(chunk.iter().all(|&b| b == fill(t, ROUNDS - 1)), "chunk {t}");
        }
    }
    let snap = m.metrics_snapshot();
    let writes = THREADS * ROUNDS * regions.len();
    assert_eq!(snap.writes as usize, writes);
    assert_eq!(snap.write_bytes as usize, writes * CHUNK);
    assert_eq!(snap.mappings, snap.unmappings);
    assert!(m.locked_regions().is_empty());
}

#[test]
fn threads_create_and_collect_concurrently() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap();
    thread::scope(|s| {
        for t in 0..THREADS as u8 {
            let m = &m;
            s.spawn(move || {
                for i in 0..50 {
                    let h = m.create_region(RegionRequest::new(64 + i)).unwrap();
                    // Still referenced by its creator: no collection may take it.
                    assert_eq!(m.write_region(h, 0, &[t; 8]), Ok(8));
                    if i % 3 == 0 {
                        m.garbage_collect().unwrap();
                    }
                    let mut buf = [0u8; 8];
                    assert_eq!(m.read_region(h, 0, &mut buf), Ok(8));
                    assert_eq!(buf, [t; 8]);
                    m.release_region(h).unwrap();
                }
            });
        }
    });
    m.garbage_collect().unwrap();
    assert_eq!(m.get_memory_stats().unwrap().active_regions, 0);
    let snap = m.metrics_snapshot();
    assert_eq!(snap.regions_created, snap.regions_destroyed);
    assert_eq!(snap.memory_bytes, 0);
}

/// Asserts that a waiter got its lock, woken by a release rather than its timeout.
fn woken((result, waited): (Result<(), RegionBusy>, Duration)) {
    assert_eq!(result, Ok(()));
    let in_time = waited < Duration::from_secs(10);
    assert!(in_time, "woken by the release, not the timeout");
}

#[test]
fn exclusive_excludes_everyone() {
    let locks = RegionLockTable::new();
    let (inside, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
    thread::scope(|s| {
        for t in 0..THREADS as u64 {
            let (locks, inside, most) = (&locks, &inside, &most);
            s.spawn(move || {
                for round in 0..100 {
                    let tx = TxId(t * 1000 + round + 1);
                    assert_eq!(locks.acquire(A, tx, Exclusive, LONG), Ok(()));
                    most.fetch_max(inside.fetch_add(1, SeqCst) + 1, SeqCst);
                    thread::yield_now();
                    inside.fetch_sub(1, SeqCst);
                    // Both ways a transaction lets go of its locks.
                    let released = if round % 2 == 0 {
                        locks.release_all(tx, [A])
                    } else {
                        locks.release_transaction(tx)
                    };
                    assert_eq!(released, 1);
                }
            });
        }
    });
    assert_eq!(most.load(SeqCst), 1);
    // And a holder keeps readers out.
    assert_eq!(locks.acquire(A, TxId(1), Exclusive, Duration::ZERO), Ok(()));
    assert!(locks
        .acquire(A, TxId(2), Shared, Duration::from_millis(10))
        .is_err());
}

#[test]
fn upgrade_waits_for_the_other_reader() {
    let locks = RegionLockTable::new();
    let (t1, t2) = (TxId(1), TxId(2));
    assert_eq!(locks.acquire(A, t1, Shared, Duration::ZERO), Ok(()));
    assert_eq!(locks.acquire(A, t2, Shared, Duration::ZERO), Ok(()));
    thread::scope(|s| {
        let upgrader = s.spawn(|| timed(|| locks.acquire(A, t1, Exclusive, LONG)));
        thread::sleep(Duration::from_millis(30));
        assert_eq!(locks.mode_held(A, t1), Some(Shared), "not upgraded yet");
        locks.release_all(t2, [A]);
        woken(upgrader.join().unwrap());
    });
    assert_eq!(locks.mode_held(A, t1), Some(Exclusive));
}

#[test]
fn transactions_waiting_for_each_other_end_within_the_bound() {
    // Transaction 1 holds `A` exclusively, transaction 2 `B`, and each asks for the other's.
    let locks = RegionLockTable::new();
    let (t1, t2) = (TxId(1), TxId(2));
    assert_eq!(locks.acquire(A, t1, Exclusive, Duration::ZERO), Ok(()));
    assert_eq!(locks.acquire(B, t2, Exclusive, Duration::ZERO), Ok(()));
    let wait = Duration::from_millis(50);
    let go = Barrier::new(2);
    thread::scope(|s| {
        let (locks, go) = (&locks, &go);
        // Neither releases: a deadlock without the bound.
        let workers = [(B, t1), (A, t2)].map(|(want, tx)| {
            s.spawn(move || {
                go.wait();
                timed(|| locks.acquire(want, tx, Exclusive, wait))
            })
        });
        for worker in workers {
            let (result, waited) = worker.join().unwrap();
            assert!(result.is_err());
            let bounded = waited >= wait && waited < Duration::from_secs(10);
            assert!(bounded, "{waited:?}");
        }
    });
    // The first gives up and its busy halt ends it: the second goes on.
    thread::scope(|s| {
        let first = s.spawn(|| {
            let outcome = timed(|| locks.acquire(B, t1, Exclusive, wait));
            locks.release_transaction(t1);
            outcome
        });
        let second = s.spawn(|| timed(|| locks.acquire(A, t2, Exclusive, LONG)));
        let (first_result, first_waited) = first.join().unwrap();
        let busy = first_result.unwrap_err();
        assert_eq!((busy.handle, busy.tx), (B, t1));
        assert!(first_waited >= wait && first_waited < LONG);
        woken(second.join().unwrap());
    });
}

#[test]
fn release_wakes_waiters() {
    let locks = RegionLockTable::new();
    assert_eq!(locks.acquire(A, TxId(1), Exclusive, Duration::ZERO), Ok(()));
    thread::scope(|s| {
        let locks = &locks;
        let waiters: Vec<_> = (2..6)
            .map(|t| s.spawn(move || timed(|| locks.acquire(A, TxId(t), Shared, LONG))))
            .collect();
        thread::sleep(Duration::from_millis(30));
        assert_eq!(locks.release_transaction(TxId(1)), 1);
        waiters.into_iter().for_each(|w| woken(w.join().unwrap()));
    });
    for t in 2..6 {
        assert_eq!(locks.mode_held(A, TxId(t)), Some(Shared));
    }
}
