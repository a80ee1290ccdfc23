//! The registry's limits under concurrent creates and frees: the region limit,
//! the persistent limit (the reserve kept for transaction-scoped regions) and
//! unique names stay exact with 2–4 threads. Every check counts outcomes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::thread;

use shm_primitives::{Address, RegionHandle, RegionOptions};
use shm_region::{RegionError, RegionRegistry, RegionSpec};

mod common;
use common::xorshift;

const MAX: usize = 12;
/// Three quarters of the slots, as the presets deal them.
const PERSISTENT: usize = MAX * 3 / 4;

fn registry() -> RegionRegistry {
    common::registry_with([64, 0, 0, 0], MAX, 1 << 16, PERSISTENT)
}

fn spec(persistent: bool) -> RegionSpec {
    let options = RegionOptions {
        persistent,
        ..RegionOptions::default()
    };
    RegionSpec::new(64, Address::repeat_byte(3)).options(options)
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
        let full = RegionError::TooManyPersistentRegions { limit: PERSISTENT };
        assert_eq!(refused, vec![full; refused.len()]);
        // The reserve is left for the others, and nothing beyond it.
        let (scoped, refused) = race(&registry, threads, MAX, false);
        assert_eq!(scoped.len(), MAX - PERSISTENT, "round {round}");
        let full = RegionError::TooManyRegions { limit: MAX };
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
            assert_eq!(registry.check(h), Err(RegionError::RegionFreed(h)));
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
                    Err(
                        RegionError::TooManyRegions { .. }
                        | RegionError::TooManyPersistentRegions { .. },
                    ) => {}
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
        assert!(refused.all(|e| e == RegionError::NameTaken(name.clone())));
        assert_eq!(registry.lookup(&name), Ok(winners[0]));
        registry.free(winners[0]).unwrap();
        assert!(registry.lookup(&name).is_err());
    }
    assert_eq!(registry.len(), 0);
}
