//! Regions in a mapped namespace: persistence, transaction-scoped files,
//! cross-manager locking and visibility, refusals. Two managers in one test
//! process open the files separately, so their file locks conflict exactly as
//! two processes' do (the `evm` binary's tests use real processes).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use shm_manager::{
    Intent, RegionSpec, SharedMemoryConfig, SharedMemoryManager, ShmError, HOST_CONTEXT,
};
use shm_primitives::{Address, Permissions, RegionOptions, SecurityLevel, WritePlan};

fn config(root: &tempfile::TempDir) -> SharedMemoryConfig {
    SharedMemoryConfig {
        namespace_root: Some(root.path().to_path_buf()),
        lock_wait: Duration::from_millis(100),
        ..SharedMemoryConfig::testing().with_namespace("ns")
    }
}

fn persistent() -> RegionOptions {
    RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    }
}

fn manager(config: &SharedMemoryConfig) -> Arc<SharedMemoryManager> {
    SharedMemoryManager::new(config.clone()).unwrap()
}

#[test]
fn persistent_regions_survive_and_transaction_regions_do_not() {
    let root = tempfile::tempdir().unwrap();
    let config = config(&root);
    let first = manager(&config);
    let dir = first.namespace_dir().unwrap().to_path_buf();
    let kept = first
        .create_shared_region("kept", 5000, Permissions::read_write(), persistent())
        .unwrap();
    first.write_region(kept, 4000, b"page two").unwrap();
    let mut tx = first.begin_transaction();
    let temp = tx
        .create(RegionSpec::new(64, Address::repeat_byte(1)))
        .unwrap();
    assert_ne!(temp.index(), kept.index());
    assert_eq!(
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "shm"))
            .count(),
        2
    );
    tx.free_scoped(&[(temp, 64)]);
    tx.release();
    let files = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".shm"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(files(&dir), vec![format!("r{:08}.shm", kept.index())]);
    drop(first);
    assert_eq!(
        files(&dir).len(),
        1,
        "the persistent file outlives its manager"
    );

    let second = manager(&config);
    assert_eq!(second.find_region("kept").unwrap(), kept);
    let mut buf = [0u8; 8];
    assert_eq!(second.read_region(kept, 4000, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"page two");
    let info = second.region_info(kept).unwrap();
    assert_eq!(info.meta.size(), 5000);
    assert!(info.meta.options().persistent);
    // A new region never reuses the freed transaction region's generation.
    let next = second
        .create_shared_region(
            "next",
            64,
            Permissions::read_write(),
            RegionOptions::default(),
        )
        .unwrap();
    assert!(next.index() != kept.index());
    assert!(next.index() != temp.index() || next.generation() > temp.generation());
    second.free_region(kept).unwrap();
    drop(second);
    assert!(
        files(&dir).is_empty(),
        "freed and non-persistent files are gone"
    );
}

#[test]
fn a_writer_holds_other_managers_off_until_its_transaction_ends() {
    let root = tempfile::tempdir().unwrap();
    let config = config(&root);
    let a = manager(&config);
    let h = a
        .create_shared_region("shared", 64, Permissions::read_write(), persistent())
        .unwrap();
    let b = manager(&config);
    assert_eq!(b.find_region("shared").unwrap(), h);

    let mut tx = a.begin_transaction();
    let region = tx
        .resolve(
            h,
            HOST_CONTEXT,
            Intent::Write,
            None,
            Duration::from_millis(100),
        )
        .unwrap();
    tx.write(
        &region,
        WritePlan::new(region.size, region.max_size, false, 0, 6),
        b"from a",
        &mut |_, _| {},
    )
    .unwrap();
    // B sees the bytes through the shared mapping, but cannot lock the region.
    let generation = b.mapped_region(h).unwrap().commit_generation();
    assert!(matches!(
        b.write_region(h, 0, b"from b"),
        Err(ShmError::RegionBusy { .. })
    ));
    tx.release();
    assert_eq!(
        b.mapped_region(h).unwrap().commit_generation(),
        generation + 1
    );
    b.write_region(h, 6, b"+b").unwrap();
    let mut buf = [0u8; 8];
    a.read_region(h, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"from a+b");
}

#[test]
fn handles_agree_across_managers() {
    let root = tempfile::tempdir().unwrap();
    let config = config(&root);
    let a = manager(&config);
    let b = manager(&config);
    let from_a = a
        .create_shared_region("a", 64, Permissions::read_write(), persistent())
        .unwrap();
    // B attached before A made it: B learns it by handle, at its first use.
    assert_eq!(b.read_region(from_a, 0, &mut [0; 1]), Ok(1));
    a.write_region(from_a, 0, b"x").unwrap();
    let mut byte = [0u8; 1];
    b.read_region(from_a, 0, &mut byte).unwrap();
    assert_eq!(&byte, b"x");
    // B's own region takes another index, and a name taken in A is taken in B.
    let from_b = b
        .create_shared_region("b", 64, Permissions::read_write(), persistent())
        .unwrap();
    assert_ne!(from_b.index(), from_a.index());
    assert!(matches!(
        b.create_shared_region("a", 64, Permissions::read_write(), persistent()),
        Err(ShmError::NameTaken(_))
    ));
}

#[test]
fn a_namespace_without_ipc_belongs_to_one_manager() {
    let root = tempfile::tempdir().unwrap();
    let config = SharedMemoryConfig {
        enable_ipc: false,
        ..config(&root)
    };
    let first = manager(&config);
    let err = SharedMemoryManager::new(config.clone()).unwrap_err();
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(first);
    manager(&config);
}

#[test]
fn corrupt_files_and_bad_checksums_refuse_the_attach() {
    let root = tempfile::tempdir().unwrap();
    let paranoid = SharedMemoryConfig {
        security_level: SecurityLevel::Paranoid,
        ..config(&root)
    };
    let first = manager(&paranoid);
    let h = first
        .create_shared_region("r", 64, Permissions::read_write(), persistent())
        .unwrap();
    first.write_region(h, 0, b"checked").unwrap();
    let path = first.mapped_region(h).unwrap().path().to_path_buf();
    drop(first);
    manager(&paranoid);

    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"X", 4096 + 2).unwrap();
    let err = SharedMemoryManager::new(paranoid.clone()).unwrap_err();
    assert!(matches!(err, ShmError::Mapped(_)), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");

    file.write_all_at(&7u32.to_le_bytes(), 8).unwrap();
    let err = SharedMemoryManager::new(paranoid).unwrap_err();
    assert!(err.to_string().contains("format version 7"), "{err}");
}

#[test]
fn an_unwritable_namespace_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let file_root = root.path().join("file");
    std::fs::write(&file_root, b"").unwrap();
    let err = SharedMemoryManager::new(SharedMemoryConfig {
        namespace_root: Some(file_root),
        ..SharedMemoryConfig::testing().with_namespace("ns")
    })
    .unwrap_err();
    assert!(err.to_string().contains("not writable"), "{err}");
    let err = SharedMemoryManager::new(SharedMemoryConfig {
        namespace: Some("ns".into()),
        ..SharedMemoryConfig::testing()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ShmError::InvalidConfig("a namespace needs enable_memory_mapping")
    );
}
