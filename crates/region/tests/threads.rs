//! Real threads reading and writing shared regions at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use shm_primitives::Address;
use shm_region::RegionSpec;

mod common;
use common::{registry_with, RegistryExt};

const THREADS: usize = 8;
const LANE: usize = 4096;
const RECORD: usize = 256;
const RECORDS: usize = 16;
const ROUNDS: u64 = 1_500;

/// A record-sized value whose every 8-byte word is `writer << 32 | seq`.
fn record_word(writer: usize, seq: u64) -> u64 {
    ((writer as u64) << 32) | seq
}

fn fill_records(buf: &mut [u8], word: u64) {
    for chunk in buf.chunks_exact_mut(8) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
}

/// Every record in `buf` (record-aligned) must be one whole value: no tearing.
fn assert_whole_records(buf: &[u8]) -> Vec<u64> {
    buf.chunks_exact(RECORD)
        .map(|record| {
            let first = u64::from_le_bytes(record[..8].try_into().unwrap());
            for word in record.chunks_exact(8) {
                assert_eq!(
                    u64::from_le_bytes(word.try_into().unwrap()),
                    first,
                    "torn record"
                );
            }
            first
        })
        .collect()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn threads_share_regions_without_tearing() {
    let registry = Arc::new(registry_with([64, 64, 8, 2], 64, 1 << 20));
    let owner = Address::repeat_byte(1);
    let lanes = registry
        .create(RegionSpec::new((THREADS * LANE) as u64, owner).named("lanes"))
        .unwrap();
    let records = registry
        .create(RegionSpec::new((RECORDS * RECORD) as u64, owner).named("records"))
        .unwrap();
    let done = AtomicBool::new(false);

    thread::scope(|scope| {
        let mut workers = Vec::new();
        for t in 0..THREADS {
            let registry = Arc::clone(&registry);
            workers.push(scope.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                let mut lane = vec![0u8; LANE];
                let mut check = vec![0u8; LANE];
                let mut written = Vec::new();
                for seq in 1..=ROUNDS {
                    // Own lane: write it, read it back, see exactly that.
                    lane.fill((seq as u8) ^ (t as u8));
                    registry
                        .write(lanes, (t * LANE) as u64, &lane, false)
                        .unwrap();
                    registry.read(lanes, (t * LANE) as u64, &mut check).unwrap();
                    assert_eq!(lane, check, "a lane has one writer");

                    // Shared records: 1–4 whole records at a random record.
                    let first = (rng.next() as usize) % RECORDS;
                    let count = 1 + (rng.next() as usize) % 4;
                    let count = count.min(RECORDS - first);
                    let mut value = vec![0u8; count * RECORD];
                    fill_records(&mut value, record_word(t, seq));
                    registry
                        .write(records, (first * RECORD) as u64, &value, false)
                        .unwrap();
                    written.extend((first..first + count).map(|r| (r, record_word(t, seq))));

                    // Read an arbitrary record-aligned span; every record is whole.
                    let from = (rng.next() as usize) % RECORDS;
                    let mut seen = vec![0u8; (RECORDS - from) * RECORD];
                    registry
                        .read(records, (from * RECORD) as u64, &mut seen)
                        .unwrap();
                    assert_whole_records(&seen);

                    // Someone else's lane is always one whole fill (its writes are atomic).
                    let other = (t + 1 + (rng.next() as usize) % (THREADS - 1)) % THREADS;
                    registry
                        .read(lanes, (other * LANE) as u64, &mut check)
                        .unwrap();
                    assert!(check.iter().all(|&b| b == check[0]), "torn lane");
                }
                written
            }));
        }
        // Two threads churn the slot table meanwhile.
        for c in 0..2u8 {
            let registry = Arc::clone(&registry);
            let done = &done;
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
            assert!(
                lane.iter().all(|&b| b == (ROUNDS as u8) ^ (t as u8)),
                "lane {t}"
            );
        }
        // ...and each record one whole value that some thread wrote to that very record.
        let mut all = vec![0u8; RECORDS * RECORD];
        registry.read(records, 0, &mut all).unwrap();
        for (r, word) in assert_whole_records(&all).into_iter().enumerate() {
            let writer = (word >> 32) as usize;
            assert!(writer < THREADS, "record {r} holds {word:#x}");
            assert!(
                written[writer].contains(&(r, word)),
                "record {r} holds a value never written there"
            );
        }
    });
    assert_eq!(registry.len(), 2);
}
