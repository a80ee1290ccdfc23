//! Real threads: host calls on shared regions, and the two-phase lock table.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use shm_manager::{
    LockMode, RegionLockTable, RegionRequest, SharedMemoryConfig, SharedMemoryManager, TxId,
};
use shm_primitives::{Address, MapOptions, RegionHandle};

const THREADS: usize = 8;
const CHUNK: usize = 512;
const ROUNDS: usize = 200;

fn fill(thread: usize, round: usize) -> u8 {
    ((thread * 31 + round) % 251) as u8 + 1
}

#[test]
fn eight_threads_read_and_write_shared_regions() {
    let config = SharedMemoryConfig {
        // Generous: a descheduled thread on a loaded machine must not make
        // another give up; this test is about contents, not waits.
        lock_wait: Duration::from_secs(30),
        ..SharedMemoryConfig::development()
    };
    let m = SharedMemoryManager::new(config).unwrap();
    let regions: Vec<RegionHandle> = (0..4)
        .map(|i| {
            m.create_region(RegionRequest::new((THREADS * CHUNK) as u64).named(format!("r{i}")))
                .unwrap()
        })
        .collect();
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let m = Arc::clone(&m);
            let regions = regions.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let me = Address::repeat_byte(t as u8 + 1);
                let own = (t * CHUNK) as u64;
                start.wait();
                for round in 0..ROUNDS {
                    for &h in &regions {
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
                        m.map_shared_region(h, me, MapOptions::empty()).unwrap();
                        m.unmap_shared_region(h, me).unwrap();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    for &h in &regions {
        let mut all = vec![0u8; THREADS * CHUNK];
        m.read_region(h, 0, &mut all).unwrap();
        for (t, chunk) in all.chunks(CHUNK).enumerate() {
            assert!(chunk.iter().all(|&b| b == fill(t, ROUNDS - 1)), "chunk {t}");
        }
    }
    let snap = m.metrics_snapshot();
    assert_eq!(snap.writes as usize, THREADS * ROUNDS * regions.len());
    assert_eq!(
        snap.write_bytes as usize,
        THREADS * ROUNDS * regions.len() * CHUNK
    );
    assert_eq!(snap.mappings, snap.unmappings);
    assert!(m.locked_regions().is_empty());
}

#[test]
fn threads_create_and_collect_concurrently() {
    let m = SharedMemoryManager::new(SharedMemoryConfig::development()).unwrap();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                for i in 0..50 {
                    let h = m.create_region(RegionRequest::new(64 + i)).unwrap();
                    // Still referenced by its creator: no collection may take it.
                    assert_eq!(m.write_region(h, 0, &[t as u8; 8]), Ok(8));
                    if i % 3 == 0 {
                        m.garbage_collect().unwrap();
                    }
                    let mut buf = [0u8; 8];
                    assert_eq!(m.read_region(h, 0, &mut buf), Ok(8));
                    assert_eq!(buf, [t as u8; 8]);
                    m.release_region(h).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    m.garbage_collect().unwrap();
    assert_eq!(m.get_memory_stats().unwrap().active_regions, 0);
    let snap = m.metrics_snapshot();
    assert_eq!(snap.regions_created, snap.regions_destroyed);
    assert_eq!(snap.memory_bytes, 0);
}

fn region() -> RegionHandle {
    RegionHandle::new(1, 1).unwrap()
}

#[test]
fn exclusive_excludes_everyone() {
    let locks = Arc::new(RegionLockTable::new());
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let (locks, inside, most) =
                (Arc::clone(&locks), Arc::clone(&inside), Arc::clone(&most));
            thread::spawn(move || {
                for round in 0..100 {
                    let tx = TxId(t * 1000 + round + 1);
                    locks
                        .acquire(region(), tx, LockMode::Exclusive, Duration::from_secs(30))
                        .unwrap();
                    let now = inside.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    thread::yield_now();
                    inside.fetch_sub(1, SeqCst);
                    assert_eq!(locks.release_all(tx, [region()]), 1);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(most.load(SeqCst), 1);
    // And a holder keeps readers and writers out.
    locks
        .acquire(region(), TxId(1), LockMode::Exclusive, Duration::ZERO)
        .unwrap();
    let shared = locks.acquire(
        region(),
        TxId(2),
        LockMode::Shared,
        Duration::from_millis(10),
    );
    assert!(shared.is_err());
}

#[test]
fn shared_admits_many() {
    let locks = Arc::new(RegionLockTable::new());
    let together = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let (locks, together) = (Arc::clone(&locks), Arc::clone(&together));
            thread::spawn(move || {
                let got = locks.acquire(
                    region(),
                    TxId(t + 1),
                    LockMode::Shared,
                    Duration::from_secs(5),
                );
                // Everyone holds it at once here.
                together.wait();
                let held = locks.mode_held(region(), TxId(t + 1));
                together.wait();
                (got, held)
            })
        })
        .collect();
    for worker in workers {
        let (got, held) = worker.join().unwrap();
        assert!(got.is_ok());
        assert_eq!(held, Some(LockMode::Shared));
    }
}

#[test]
fn upgrade_waits_for_the_other_reader() {
    let locks = Arc::new(RegionLockTable::new());
    let (t1, t2) = (TxId(1), TxId(2));
    locks
        .acquire(region(), t1, LockMode::Shared, Duration::ZERO)
        .unwrap();
    locks
        .acquire(region(), t2, LockMode::Shared, Duration::ZERO)
        .unwrap();
    let upgrader = {
        let locks = Arc::clone(&locks);
        thread::spawn(move || {
            let start = Instant::now();
            let result = locks.acquire(region(), t1, LockMode::Exclusive, Duration::from_secs(20));
            (result, start.elapsed())
        })
    };
    thread::sleep(Duration::from_millis(30));
    assert_eq!(
        locks.mode_held(region(), t1),
        Some(LockMode::Shared),
        "not upgraded yet"
    );
    locks.release_all(t2, [region()]);
    let (result, waited) = upgrader.join().unwrap();
    assert!(result.is_ok());
    assert!(
        waited < Duration::from_secs(10),
        "woken by the release, not the timeout"
    );
    assert_eq!(locks.mode_held(region(), t1), Some(LockMode::Exclusive));
}

#[test]
fn transactions_waiting_for_each_other_end_within_the_bound() {
    let locks = Arc::new(RegionLockTable::new());
    let (a, b) = (region(), RegionHandle::new(2, 1).unwrap());
    let (t1, t2) = (TxId(1), TxId(2));
    locks
        .acquire(a, t1, LockMode::Exclusive, Duration::ZERO)
        .unwrap();
    locks
        .acquire(b, t2, LockMode::Exclusive, Duration::ZERO)
        .unwrap();
    let short = Duration::from_millis(60);
    let long = Duration::from_secs(20);
    let first = {
        let locks = Arc::clone(&locks);
        thread::spawn(move || {
            let start = Instant::now();
            let result = locks.acquire(b, t1, LockMode::Exclusive, short);
            let waited = start.elapsed();
            // The busy halt ends the transaction: its locks go.
            locks.release_transaction(t1);
            (result, waited)
        })
    };
    let second = {
        let locks = Arc::clone(&locks);
        thread::spawn(move || {
            let start = Instant::now();
            let result = locks.acquire(a, t2, LockMode::Exclusive, long);
            (result, start.elapsed())
        })
    };
    let (first_result, first_waited) = first.join().unwrap();
    let (second_result, second_waited) = second.join().unwrap();
    let busy = first_result.unwrap_err();
    assert_eq!((busy.handle, busy.tx), (b, t1));
    assert!(first_waited >= short && first_waited < long);
    assert!(second_result.is_ok());
    assert!(second_waited < long);
}

#[test]
fn symmetric_deadlock_both_give_up() {
    let locks = Arc::new(RegionLockTable::new());
    let (a, b) = (region(), RegionHandle::new(2, 1).unwrap());
    locks
        .acquire(a, TxId(1), LockMode::Exclusive, Duration::ZERO)
        .unwrap();
    locks
        .acquire(b, TxId(2), LockMode::Exclusive, Duration::ZERO)
        .unwrap();
    let wait = Duration::from_millis(50);
    let go = Arc::new(Barrier::new(2));
    let spawn = |want: RegionHandle, tx: TxId| {
        let (locks, go) = (Arc::clone(&locks), Arc::clone(&go));
        thread::spawn(move || {
            go.wait();
            let start = Instant::now();
            // Neither releases: a deadlock without the bound.
            (
                locks.acquire(want, tx, LockMode::Exclusive, wait),
                start.elapsed(),
            )
        })
    };
    let one = spawn(b, TxId(1));
    let two = spawn(a, TxId(2));
    for worker in [one, two] {
        let (result, waited) = worker.join().unwrap();
        assert!(result.is_err());
        assert!(
            waited >= wait && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }
}

#[test]
fn release_wakes_waiters() {
    let locks = Arc::new(RegionLockTable::new());
    locks
        .acquire(region(), TxId(1), LockMode::Exclusive, Duration::ZERO)
        .unwrap();
    let waiters: Vec<_> = (2..6)
        .map(|t| {
            let locks = Arc::clone(&locks);
            thread::spawn(move || {
                let start = Instant::now();
                let result =
                    locks.acquire(region(), TxId(t), LockMode::Shared, Duration::from_secs(20));
                (result, start.elapsed())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(30));
    assert_eq!(locks.release_transaction(TxId(1)), 1);
    for waiter in waiters {
        let (result, waited) = waiter.join().unwrap();
        assert!(result.is_ok());
        assert!(
            waited < Duration::from_secs(10),
            "woken by the release, not the timeout"
        );
    }
    for t in 2..6 {
        assert_eq!(locks.mode_held(region(), TxId(t)), Some(LockMode::Shared));
    }
}
