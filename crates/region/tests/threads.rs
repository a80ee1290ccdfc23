//! Real threads on one registry: reading and writing shared regions at once,
//! and racing creates and frees, under which the region limit, the persistent
//! limit (the reserve kept for transaction-scoped regions) and unique names
//! stay exact. Every limit check counts outcomes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Barrier;
use std::thread;

use shm_primitives::{Address, AllocFlags, RegionHandle};
use shm_region::RegionError::{self, *};
use shm_region::{RegionRegistry, RegionSpec};

mod common;
use common::{registry_with, xorshift, RegistryExt};

const THREADS: usize = 8;
const LANE: usize = 4096;
const RECORD: usize = 256;
const RECORDS: usize = 16;
const ROUNDS: u64 = 1_500;

/// Every record in `buf` (record-aligned) must be one whole value: no tearing.
fn assert_whole_records(buf: &[u8]) -> Vec<u64> {
    let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap());
    buf.chunks_exact(RECORD)
        .map(|record| {
            let first = word(&record[..8]);
            for w in record.chunks_exact(8) {
                assert_eq!(word(w), first, "torn record");
            }
            first
        })
        .collect()
}

#[test]
fn threads_share_regions_without_tearing() {
    let registry = registry_with([64, 64, 8, 2], 64, 1 << 20, 64);
    let owner = Address::repeat_byte(1);
    let create =
        |size: usize, name| registry.create(RegionSpec::new(size as u64, owner).named(name));
    let lanes = create(THREADS * LANE, "lanes").unwrap();
    let records = create(RECORDS * RECORD, "records").unwrap();
    let (registry, done) = (&registry, &AtomicBool::new(false));

    thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    let mut seed = 0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1);
                    let mut random = |n: usize| xorshift(&mut seed) as usize % n;
                    let (mut lane, mut check) = (vec![0u8; LANE], vec![0u8; LANE]);
                    let lane_at = |t: usize| (t * LANE) as u64;
                    let mut written = Vec::new();
                    for seq in 1..=ROUNDS {
                        // Own lane: write it, read it back, see exactly that.
                        lane.fill((seq as u8) ^ (t as u8));
                        registry.write(lanes, lane_at(t), &lane, false).unwrap();
                        registry.read(lanes, lane_at(t), &mut check).unwrap();
                        assert_eq!(lane, check, "a lane has one writer");

                        // Shared records: 1–4 whole records at a random record, each
                        // 8-byte word `t << 32 | seq`.
                        let first = random(RECORDS);
                        let count = (1 + random(4)).min(RECORDS - first);
                        let word = ((t as u64) << 32) | seq;
                        let value = word.to_le_bytes().repeat(count * RECORD / 8);
                        let at = (first * RECORD) as u64;
                        registry.write(records, at, &value, false).unwrap();
                        written.extend((first..first + count).map(|r| (r, word)));

                        // Read an arbitrary record-aligned span; every record is whole.
                        let from = random(RECORDS);
                        let mut seen = vec![0u8; (RECORDS - from) * RECORD];
                        let at = (from * RECORD) as u64;
                        registry.read(records, at, &mut seen).unwrap();
                        assert_whole_records(&seen);

                        // Someone else's lane is always one whole fill (its writes are atomic).
                        let other = (t + 1 + random(THREADS - 1)) % THREADS;
                        registry.read(lanes, lane_at(other), &mut check).unwrap();
                        assert!(check.iter().all(|&b| b == check[0]), "torn lane");
                    }
                    written
                })
            })
            .collect();
        // Two threads churn the slot table meanwhile.
        for c in 0..2u8 {
            scope.spawn(move || {
                let owner = Address::repeat_byte(0x10 + c);
                while !done.load(Relaxed) {
                    let h = registry.create(RegionSpec::new(4096, owner)).unwrap();
                    registry.write(h, 0, &[c; 4096], false).unwrap();
                    let mut buf = [0u8; 4096];
                    registry.read(h, 0, &mut buf).unwrap();
                    assert!(buf.iter().all(|&b| b == c));
                    registry.free(h).unwrap();
                }
            });
        }
        let written: Vec<Vec<(usize, u64)>> =
            workers.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, Relaxed);

        // Final state: each lane holds its thread's last fill...
        let mut lane = vec![0u8; LANE];
        for t in 0..THREADS {
            registry.read(lanes, (t * LANE) as u64, &mut lane).unwrap();
            let last = (ROUNDS as u8) ^ (t as u8);
            assert!(lane.iter().all(|&b| b == last), "lane {t}");
        }
        // ...and each record one whole value that some thread wrote to that very record.
        let mut all = vec![0u8; RECORDS * RECORD];
        registry.read(records, 0, &mut all).unwrap();
        for (r, word) in assert_whole_records(&all).into_iter().enumerate() {
            let writer = (word >> 32) as usize;
            assert!(writer < THREADS, "record {r} holds {word:#x}");
            let never = format!("record {r} holds a value never written there");
            assert!(written[writer].contains(&(r, word)), "{never}");
        }
    });
    assert_eq!(registry.len(), 2);
}

const MAX: usize = 12;
/// Three quarters of the slots, as the presets deal them.
const PERSISTENT: usize = MAX * 3 / 4;

fn registry() -> RegionRegistry {
    registry_with([64, 0, 0, 0], MAX, 1 << 16, PERSISTENT)
}

fn spec(persistent: bool) -> RegionSpec {
    let mut flags = AllocFlags::empty();
    flags.set(AllocFlags::PERSISTENT, persistent);
    RegionSpec::new(64, Address::repeat_byte(3)).options(flags.into())
}

/// Runs `work(t)` on threads `t` in `0..threads`, released at once; returns
/// what each gave.
fn at_once<T: Send>(threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(threads);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(t)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

/// `threads` threads each try `tries` creates of `spec` at once; returns the
/// handles made and the refusals.
fn race(
    registry: &RegionRegistry,
    threads: usize,
    tries: usize,
    persistent: bool,
) -> (Vec<RegionHandle>, Vec<RegionError>) {
    let create = || registry.create(spec(persistent));
    let results = at_once(threads, |_| {
        (0..tries).map(|_| create()).collect::<Vec<_>>()
    });
    let (made, refused): (Vec<_>, Vec<_>) = results.into_iter().flatten().partition(Result::is_ok);
    let refused = refused.into_iter().filter_map(Result::err).collect();
    (made.into_iter().flatten().collect(), refused)
}

#[test]
fn racing_creates_fill_the_limits_exactly() {
    let registry = registry();
    for round in 0..60 {
        let threads = 2 + round % 3;
        // Persistent regions first: exactly the persistent limit gets in.
        let (persistent, refused) = race(&registry, threads, PERSISTENT, true);
        assert_eq!(persistent.len(), PERSISTENT, "round {round}");
        let full = TooManyPersistentRegions { limit: PERSISTENT };
        assert_eq!(refused, vec![full; refused.len()]);
        // The reserve is left for the others, and nothing beyond it.
        let (scoped, refused) = race(&registry, threads, MAX, false);
        assert_eq!(scoped.len(), MAX - PERSISTENT, "round {round}");
        let full = TooManyRegions { limit: MAX };
        assert_eq!(refused, vec![full; refused.len()]);
        assert_eq!(registry.len(), MAX);
        // Every slot once: the handles are distinct and exactly the first MAX indices.
        let all: Vec<RegionHandle> = persistent.iter().chain(&scoped).copied().collect();
        let indices: HashSet<u32> = all.iter().map(|h| h.index()).collect();
        assert_eq!(indices, (1..=MAX as u32).collect::<HashSet<_>>());
        // Free them all at once from several threads.
        let chunks: Vec<_> = all.chunks(MAX.div_ceil(threads)).collect();
        at_once(chunks.len(), |i| {
            for &h in chunks[i] {
                registry.free(h).unwrap();
            }
        });
        assert_eq!(registry.len(), 0);
        for h in all {
            assert_eq!(registry.check(h), Err(RegionFreed(h)));
        }
    }
    // Sixty rounds reused the same twelve slots at ever newer generations.
    assert_eq!(registry.handles().len(), 0);
    let h = registry.create(spec(false)).unwrap();
    assert_eq!((h.index(), h.generation()), (1, 61));
}

#[test]
fn storms_of_creates_and_frees_keep_the_counts() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 2_000;
    let registry = registry();
    let barrier = Barrier::new(THREADS);
    let holding: [AtomicUsize; THREADS] = Default::default();
    let holding_persistent: [AtomicUsize; THREADS] = Default::default();
    let sum = |a: &[AtomicUsize]| a.iter().map(|n| n.load(SeqCst)).sum::<usize>();
    at_once(THREADS, |t| {
        let mut held: Vec<(RegionHandle, bool)> = Vec::new();
        let mut seed = 0x9e37_79b9_u64 ^ (t as u64 + 1);
        for round in 0..ROUNDS {
            xorshift(&mut seed);
            let persistent = seed.is_multiple_of(2);
            if held.len() < 4 && !seed.is_multiple_of(3) {
                match registry.create(spec(persistent)) {
                    Ok(h) => held.push((h, persistent)),
                    Err(TooManyRegions { .. } | TooManyPersistentRegions { .. }) => {}
                    Err(other) => panic!("unexpected {other}"),
                }
            } else if let Some((h, _)) = held.pop() {
                registry.free(h).unwrap();
            }
            if round.is_multiple_of(250) {
                // Quiescent point: the count is the sum of what each holds.
                holding[t].store(held.len(), SeqCst);
                let persistent = held.iter().filter(|(_, p)| *p).count();
                holding_persistent[t].store(persistent, SeqCst);
                barrier.wait();
                assert_eq!(registry.len(), sum(&holding));
                assert!(sum(&holding) <= MAX && sum(&holding_persistent) <= PERSISTENT);
                barrier.wait();
            }
        }
        for (h, _) in held {
            registry.free(h).unwrap();
        }
    });
    assert_eq!(registry.len(), 0);
    // The counts came back to zero exactly: the limits admit exactly as many as before.
    let (persistent, _) = race(&registry, 3, PERSISTENT, true);
    let (scoped, _) = race(&registry, 3, MAX, false);
    let admitted = (persistent.len(), scoped.len());
    assert_eq!(admitted, (PERSISTENT, MAX - PERSISTENT));
}

#[test]
fn one_name_goes_to_one_region() {
    let registry = registry();
    for round in 0..50 {
        let name = format!("prices-{round}");
        let results = at_once(4, |_| registry.create(spec(false).named(name.clone())));
        let winners: Vec<RegionHandle> = results.iter().filter_map(|r| r.clone().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let mut refused = results.iter().filter_map(|r| r.clone().err());
        assert!(refused.all(|e| e == NameTaken(name.clone())));
        assert_eq!(registry.lookup(&name), Ok(winners[0]));
        registry.free(winners[0]).unwrap();
        assert!(registry.lookup(&name).is_err());
    }
    assert_eq!(registry.len(), 0);
}
