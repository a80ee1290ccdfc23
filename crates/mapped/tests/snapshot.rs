//! Snapshot dump/load round trips and refusals, with real files.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use shm_mapped::{
    dump_namespace, load_snapshot, MappedError, MappedRegion, Namespace, RegionHeader,
};
use shm_primitives::{Address, Compression, RegionOptions};

fn fill(ns: &Namespace, contents: &[Vec<u8>]) -> Vec<Arc<MappedRegion>> {
    contents
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let region = ns
                .create_region(
                    |_| (false, 0),
                    |h| {
                        let mut header = RegionHeader::new(
                            h,
                            bytes.len().max(1) as u64,
                            Address::repeat_byte(i as u8),
                        )
                        .named(format!("region-{i}"))?;
                        header.options = RegionOptions {
                            persistent: true,
                            ..RegionOptions::default()
                        };
                        Ok(header)
                    },
                    bytes.len() as u64,
                )
                .unwrap();
            region.lock(Duration::from_secs(1)).unwrap();
            region.clone().block().write_at(0, bytes).unwrap();
            region.unlock(None).unwrap();
            region
        })
        .collect()
}

fn contents_of(ns: &Namespace) -> Vec<(String, u64, Vec<u8>)> {
    ns.region_paths()
        .unwrap()
        .iter()
        .map(|p| {
            let r = MappedRegion::open(p).unwrap();
            let mut data = vec![0u8; r.size() as usize];
            r.read_at(0, &mut data, Duration::from_secs(1)).unwrap();
            (
                r.header().name.clone().unwrap_or_default(),
                r.header().handle.to_u64(),
                data,
            )
        })
        .collect()
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Zstd)
    ]
}

/// Random bytes with runs, so the codecs have something to find.
fn region_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<u8>(), 1usize..200), 0..60).prop_map(|runs| {
        runs.into_iter()
            .flat_map(|(b, n)| std::iter::repeat_n(b, n))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn dump_and_load_round_trip(contents in prop::collection::vec(region_bytes(), 1..5), how in compression()) {
        let root = tempfile::tempdir().unwrap();
        let from = Namespace::open(root.path(), "from").unwrap();
        let regions = fill(&from, &contents);
        let file = root.path().join("snap.bin");
        let dumped = dump_namespace(&from, &file, Some(how)).unwrap();
        prop_assert_eq!(dumped.regions, contents.len());
        let to = Namespace::open(root.path(), "to").unwrap();
        let loaded = load_snapshot(&file, &to).unwrap();
        prop_assert_eq!(loaded.raw_bytes, contents.iter().map(|c| c.len() as u64).sum::<u64>());
        prop_assert_eq!(contents_of(&from), contents_of(&to));
        for (region, loaded) in regions.iter().zip(to.region_paths().unwrap()) {
            let loaded = MappedRegion::open(&loaded).unwrap();
            prop_assert_eq!(region.header(), loaded.header());
        }
    }
}

#[test]
fn compression_shrinks_repetitive_data() {
    let root = tempfile::tempdir().unwrap();
    let ns = Namespace::open(root.path(), "ns").unwrap();
    fill(&ns, &[vec![0x5b; 100_000]]);
    let sizes: Vec<u64> = [Compression::None, Compression::Lz4, Compression::Zstd]
        .into_iter()
        .map(|how| {
            dump_namespace(&ns, &root.path().join("s"), Some(how))
                .unwrap()
                .file_bytes
        })
        .collect();
    assert!(
        sizes[0] > 100_000 && sizes[1] < 5_000 && sizes[2] < sizes[1],
        "{sizes:?}"
    );
}

#[test]
fn corrupt_or_truncated_snapshots_load_nothing() {
    let root = tempfile::tempdir().unwrap();
    let ns = Namespace::open(root.path(), "ns").unwrap();
    fill(&ns, &[b"first region".to_vec(), vec![9; 20_000]]);
    let file = root.path().join("snap.bin");
    dump_namespace(&ns, &file, Some(Compression::Lz4)).unwrap();
    let good = fs::read(&file).unwrap();
    let target = Namespace::open(root.path(), "target").unwrap();

    for (what, bytes) in [
        ("truncated", good[..good.len() - 100].to_vec()),
        ("truncated to the header", good[..20].to_vec()),
        ("empty", Vec::new()),
        ("flipped", {
            let mut b = good.clone();
            b[5000] ^= 0x40;
            b
        }),
    ] {
        let bad = root.path().join("bad.bin");
        fs::write(&bad, &bytes).unwrap();
        let err = load_snapshot(&bad, &target).unwrap_err();
        assert!(
            matches!(err, MappedError::CorruptSnapshot { .. }),
            "{what}: {err}"
        );
        assert!(
            err.to_string().contains("nothing was loaded"),
            "{what}: {err}"
        );
        assert!(target.region_paths().unwrap().is_empty(), "{what}");
    }
    // Loading where the regions already exist loads nothing either.
    let err = load_snapshot(&file, &ns).unwrap_err();
    assert!(matches!(err, MappedError::AlreadyExists(_)), "{err}");
    assert_eq!(ns.region_paths().unwrap().len(), 2);
    load_snapshot(&file, &target).unwrap();
    assert_eq!(contents_of(&target), contents_of(&ns));
}
