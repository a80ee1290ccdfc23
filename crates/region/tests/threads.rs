//! Real threads reading and writing shared regions at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use shm_primitives::Address;
use shm_region::RegionSpec;

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
                while !done.load(Ordering::Relaxed) {
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
        done.store(true, Ordering::Relaxed);

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
