//! One test per finding of the fuzz targets in code this crate does not own, built
//! by hand from its description (docs/reliability.md, `shm_fuzz::findings`). Open
//! findings are `#[ignore]`d with their number; the fix un-ignores them (F1, F2 and F4
//! are fixed).

use shm_mapped::{MappedRegion, RegionHeader, HEADER_LEN};
use shm_primitives::{Address, RegionHandle};
use std::time::Duration;

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An undo-log record as `crates/mapped/src/region.rs` writes it.
fn undo_record(kind: u32, page: u64, payload: &[u8], generation: u64) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&page.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    let crc = crc32(&[&out[..], payload].concat());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// F2: the rollback of an interrupted transaction restores the header words from
/// the undo log without the check `open` makes: a log whose (checksummed) header
/// record says size 1 MiB leaves a 4 KiB region claiming 1 MiB.
#[test]
fn rollback_never_restores_a_size_above_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let header = RegionHeader::new(RegionHandle::new(1, 1).unwrap(), 4096, Address::ZERO);
    let mut file = header.encode();
    file.resize(HEADER_LEN + 4096, 0);
    file[512..520].copy_from_slice(&10u64.to_le_bytes()); // size 10
    file[552..560].copy_from_slice(&1u64.to_le_bytes()); // a transaction was in flight
    let path = dir.path().join(shm_mapped::region_file_name(1));
    std::fs::write(&path, &file).unwrap();
    let mut words = [0u8; 24];
    words[0..8].copy_from_slice(&(1u64 << 20).to_le_bytes()); // size 1 MiB
    std::fs::write(path.with_extension("undo"), undo_record(2, 0, &words, 0)).unwrap();

    let region = MappedRegion::open(&path).expect("a valid file");
    let _ = region.lock(Duration::from_millis(100));
    assert!(
        region.size() <= region.header().max_size,
        "size {} above the maximum {}",
        region.size(),
        region.header().max_size
    );
}

/// F2, as a node meets it: a persistent region whose undo log says 1 MiB. The
/// manager attaching the namespace must not take the region at a size its block
/// cannot hold; today it refuses the whole namespace with "region size 1048576
/// exceeds the maximum of 4096 bytes" (a clear error, not a panic).
#[test]
fn attach_after_a_rollback_to_an_oversized_region_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path().join("f2");
    std::fs::create_dir_all(&ns).unwrap();
    let mut header = RegionHeader::new(RegionHandle::new(1, 1).unwrap(), 4096, Address::ZERO);
    header.options.persistent = true;
    let mut file = header.encode();
    file.resize(HEADER_LEN + 4096, 0);
    file[512..520].copy_from_slice(&10u64.to_le_bytes());
    file[552..560].copy_from_slice(&1u64.to_le_bytes());
    let path = ns.join(shm_mapped::region_file_name(1));
    std::fs::write(&path, &file).unwrap();
    let mut words = [0u8; 24];
    words[0..8].copy_from_slice(&(1u64 << 20).to_le_bytes());
    std::fs::write(path.with_extension("undo"), undo_record(2, 0, &words, 0)).unwrap();

    let config = shm_manager::SharedMemoryConfig {
        namespace_root: Some(dir.path().to_path_buf()),
        ..shm_manager::SharedMemoryConfig::production().with_namespace("f2")
    };
    match shm_manager::SharedMemoryManager::new(config) {
        Ok(manager) => {
            for info in manager.list_regions().unwrap() {
                assert!(info.meta.size() <= info.meta.max_size());
                assert!(info.meta.size() <= info.capacity as u64);
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
}
