//! Region files, namespaces, locks and recovery, with real files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use shm_mapped::{MappedError, MappedRegion, Namespace, RegionHeader, HEADER_LEN};
use shm_primitives::{Address, Compression, Permissions, RegionHandle, RegionOptions};

const WAIT: Duration = Duration::from_secs(2);

fn namespace() -> (tempfile::TempDir, Namespace) {
    let root = tempfile::tempdir().unwrap();
    let ns = Namespace::open(root.path(), "test").unwrap();
    (root, ns)
}

fn create(ns: &Namespace, name: &str, capacity: u64, size: u64) -> Arc<MappedRegion> {
    ns.create_region(
        |_| (false, 0),
        |h| RegionHeader::new(h, capacity, Address::repeat_byte(0xa1)).named(name),
        size,
    )
    .unwrap()
}

fn write(region: &Arc<MappedRegion>, offset: usize, bytes: &[u8]) {
    region.clone().block().write_at(offset, bytes).unwrap();
}

/// Committed bytes, copied out under the region's lock.
fn read(region: &MappedRegion, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    region.read_at(offset, &mut buf, WAIT).unwrap();
    buf
}

/// The bytes in the file right now, committed or not (no lock).
fn raw(path: &std::path::Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, HEADER_LEN as u64 + offset)
        .unwrap();
    buf
}

#[test]
fn header_round_trips_every_field() {
    let (_root, ns) = namespace();
    let header = |h| {
        let mut header = RegionHeader::new(h, 10_000, Address::repeat_byte(7)).named("prices")?;
        header.permissions = Permissions::read_only();
        header.options = RegionOptions {
            persistent: true,
            public_read: true,
            compression: Compression::Zstd,
            ..RegionOptions::default()
        };
        header.checksummed = true;
        Ok(header)
    };
    let region = ns.create_region(|_| (false, 0), header, 777).unwrap();
    let reopened = MappedRegion::open(region.path()).unwrap();
    assert_eq!(reopened.header(), region.header());
    let status = reopened.status();
    assert_eq!(
        (status.size, status.commit_generation, status.lock_pid),
        (777, 0, 0)
    );
    assert_eq!(status.header.capacity, 12_288);
    assert_eq!(status.header.name.as_deref(), Some("prices"));
    assert!(status.header.options.persistent && status.header.checksummed);
    assert_eq!(status.header.options.compression, Compression::Zstd);
}

#[test]
fn corrupt_header_is_refused() {
    let (_root, ns) = namespace();
    let path = create(&ns, "a", 4096, 10).path().to_path_buf();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xff], 45).unwrap(); // inside the owner field
    let err = MappedRegion::open(&path).unwrap_err();
    assert!(matches!(err, MappedError::CorruptHeader { .. }), "{err}");
    assert!(err.to_string().contains("corrupt header"), "{err}");
}

#[test]
fn wrong_magic_and_wrong_version_are_refused() {
    let (_root, ns) = namespace();
    let path = create(&ns, "a", 4096, 10).path().to_path_buf();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&1u32.to_le_bytes(), 8).unwrap();
    let err = MappedRegion::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            MappedError::WrongVersion {
                found: 1,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
    file.write_all_at(b"NOTSHM!!", 0).unwrap();
    assert!(matches!(
        MappedRegion::open(&path),
        Err(MappedError::BadMagic { .. })
    ));
}

#[test]
fn truncated_files_are_refused() {
    let (_root, ns) = namespace();
    let path = create(&ns, "a", 8192, 10).path().to_path_buf();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(HEADER_LEN as u64 + 4096).unwrap();
    let err = MappedRegion::open(&path).unwrap_err();
    assert!(
        matches!(err, MappedError::Truncated { len, expected, .. } if len == 8192 && expected == 12_288),
        "{err}"
    );
    file.set_len(100).unwrap();
    assert!(matches!(
        MappedRegion::open(&path),
        Err(MappedError::Truncated { len: 100, .. })
    ));
    file.set_len(0).unwrap();
    assert!(matches!(
        MappedRegion::open(&path),
        Err(MappedError::Truncated { len: 0, .. })
    ));
}

#[test]
fn unwritable_namespace_directory_is_refused() {
    let root = tempfile::tempdir().unwrap();
    // A root that is a regular file: nothing can be made under it, even by root.
    let file_root = root.path().join("plain-file");
    fs::write(&file_root, b"x").unwrap();
    let err = Namespace::open(&file_root, "ns").unwrap_err();
    assert!(matches!(err, MappedError::NotWritable { .. }), "{err}");
    assert!(err.to_string().contains("not writable"), "{err}");
    // /proc refuses new directories whoever asks.
    assert!(matches!(
        Namespace::open("/proc".as_ref(), "evm-shm-test"),
        Err(MappedError::NotWritable { .. })
    ));
    assert!(matches!(
        Namespace::open(root.path(), "../escape"),
        Err(MappedError::InvalidNamespace(_))
    ));
}

#[test]
fn handles_take_the_lowest_free_index_and_never_reuse_a_generation() {
    let (_root, ns) = namespace();
    let a = create(&ns, "a", 4096, 1);
    let b = create(&ns, "b", 4096, 1);
    assert_eq!(a.header().handle, RegionHandle::new(1, 1).unwrap());
    assert_eq!(b.header().handle, RegionHandle::new(2, 1).unwrap());
    ns.remove("a", false).unwrap();
    let c = create(&ns, "c", 4096, 1);
    assert_eq!(c.header().handle, RegionHandle::new(1, 2).unwrap());
    // An index the local registry occupies is skipped; its generation counts.
    let d = ns
        .create_region(
            |i| (i == 3, if i == 3 { 9 } else { 0 }),
            |h| RegionHeader::new(h, 4096, Address::ZERO).named("d"),
            1,
        )
        .unwrap();
    assert_eq!(d.header().handle, RegionHandle::new(4, 1).unwrap());
    let e = ns
        .create_region(
            |i| (false, if i == 3 { 9 } else { 0 }),
            |h| Ok(RegionHeader::new(h, 4096, Address::ZERO)),
            1,
        )
        .unwrap();
    assert_eq!(e.header().handle, RegionHandle::new(3, 10).unwrap());
    let names: Vec<_> = ns
        .list()
        .unwrap()
        .into_iter()
        .map(|l| l.status.unwrap().header.handle.index())
        .collect();
    assert_eq!(names, vec![1, 2, 3, 4]);
    assert_eq!(
        ns.find(&format!("{}", b.header().handle.to_u64())).unwrap(),
        b.path()
    );
    assert!(matches!(ns.find("nope"), Err(MappedError::NotFound(_))));
}

#[test]
fn commit_publishes_and_bumps_the_generation() {
    let (_root, ns) = namespace();
    let region = create(&ns, "a", 8192, 5000);
    region.lock(WAIT).unwrap();
    write(&region, 4090, b"across-a-page");
    let reader = ns.open_region("a").unwrap();
    // Shared mapping: the bytes are visible at once; the commit publishes the generation.
    assert_eq!(raw(reader.path(), 4090, 13), b"across-a-page");
    assert_eq!(reader.commit_generation(), 0);
    assert!(reader.status().undo_pending);
    region.unlock(Some(6000)).unwrap();
    assert_eq!((reader.commit_generation(), reader.size()), (1, 6000));
    assert!(!reader.status().undo_pending);
    // A lock and unlock with no write is not a commit.
    region.lock(WAIT).unwrap();
    region.unlock(None).unwrap();
    assert_eq!(reader.commit_generation(), 1);
}

#[test]
fn a_second_opener_times_out_on_a_held_lock() {
    let (_root, ns) = namespace();
    let holder = create(&ns, "a", 4096, 10);
    holder.lock(WAIT).unwrap();
    let other = ns.open_region("a").unwrap();
    let err = other.lock(Duration::from_millis(30)).unwrap_err();
    match &err {
        MappedError::LockTimeout {
            waited,
            holder: pid,
            ..
        } => {
            assert!(*waited >= Duration::from_millis(30));
            assert_eq!(*pid, std::process::id());
        }
        other => panic!("{other}"),
    }
    holder.unlock(None).unwrap();
    other.lock(WAIT).unwrap();
    other.unlock(None).unwrap();
}

#[test]
fn an_interrupted_transaction_is_rolled_back_by_the_next_holder() {
    let (_root, ns) = namespace();
    let region = create(&ns, "a", 3 * 4096, 3 * 4096);
    region.lock(WAIT).unwrap();
    write(&region, 0, &[1; 3 * 4096]);
    region.unlock(None).unwrap();
    assert_eq!(region.commit_generation(), 1);

    // A transaction writes two pages, then its process "dies": the file lock
    // goes with the descriptor, the undo log stays.
    region.lock(WAIT).unwrap();
    write(&region, 100, &[2; 5000]);
    let path = region.path().to_path_buf();
    drop(region);
    let undo = path.with_extension("undo");
    assert!(fs::metadata(&undo).unwrap().len() > 0);
    // A torn record at the tail (the process died while appending) is ignored.
    OpenOptions::new()
        .append(true)
        .open(&undo)
        .unwrap()
        .write_all(&[1, 0, 0, 0, 9])
        .unwrap();

    let next = MappedRegion::open(&path).unwrap();
    assert_eq!(
        raw(&path, 100, 1),
        [2],
        "the half-done write is in the file"
    );
    assert_eq!(next.lock(WAIT).unwrap(), 2, "two pages rolled back");
    assert!(read(&next, 0, 3 * 4096).iter().all(|&b| b == 1));
    assert_eq!((next.commit_generation(), next.size()), (1, 3 * 4096));
    assert_eq!(fs::metadata(&undo).unwrap().len(), 0);
    next.unlock(None).unwrap();
}

#[test]
fn paranoid_checksum_catches_changed_contents() {
    let (_root, ns) = namespace();
    let region = ns
        .create_region(
            |_| (false, 0),
            |h| {
                let mut header = RegionHeader::new(h, 4096, Address::ZERO);
                header.checksummed = true;
                Ok(header)
            },
            64,
        )
        .unwrap();
    region.verify_checksum().unwrap();
    region.lock(WAIT).unwrap();
    write(&region, 0, b"committed");
    region.unlock(None).unwrap();
    region.verify_checksum().unwrap();
    // Someone changes the bytes behind the lock's back.
    let file = OpenOptions::new().write(true).open(region.path()).unwrap();
    file.write_all_at(b"X", HEADER_LEN as u64 + 3).unwrap();
    let err = MappedRegion::open(region.path())
        .unwrap()
        .verify_checksum()
        .unwrap_err();
    assert!(matches!(err, MappedError::ChecksumMismatch { .. }), "{err}");
}

#[test]
fn claims_exclude_other_users_unless_shared() {
    let (root, ns) = namespace();
    let other = Namespace::open(root.path(), "test").unwrap();
    ns.claim(false).unwrap();
    assert!(matches!(
        other.claim(true),
        Err(MappedError::NamespaceBusy { .. })
    ));
    drop(ns);
    other.claim(true).unwrap();
    let third = Namespace::open(root.path(), "test").unwrap();
    third.claim(true).unwrap();
    assert!(matches!(
        Namespace::open(root.path(), "test").unwrap().claim(false),
        Err(MappedError::NamespaceBusy { .. })
    ));
}

#[test]
fn dropping_a_region_keeps_or_removes_its_file() {
    let (_root, ns) = namespace();
    let kept = create(&ns, "kept", 4096, 1);
    let path = kept.path().to_path_buf();
    drop(kept);
    assert!(path.exists());
    let gone = MappedRegion::open(&path).unwrap();
    gone.set_keep(false);
    drop(gone);
    assert!(!path.exists());
}

#[test]
fn stale_records_of_committed_transactions_are_never_replayed() {
    let (_root, ns) = namespace();
    let region = create(&ns, "a", 3 * 4096, 3 * 4096);
    // tx 1 saves three pages of zeros and writes ones; committed.
    region.lock(WAIT).unwrap();
    write(&region, 0, &[1; 3 * 4096]);
    region.unlock(None).unwrap();
    // tx 2 saves one page (over the start of the log); committed.
    region.lock(WAIT).unwrap();
    write(&region, 0, &[2; 10]);
    region.unlock(None).unwrap();
    assert_eq!(region.commit_generation(), 2);
    assert!(!region.status().undo_pending);
    // tx 3 writes page 0 and dies: the log holds its records first, then tx 1's stale ones.
    region.lock(WAIT).unwrap();
    write(&region, 0, &[3; 10]);
    let path = region.path().to_path_buf();
    drop(region);
    let next = MappedRegion::open(&path).unwrap();
    assert!(next.status().undo_pending);
    assert_eq!(next.lock(WAIT).unwrap(), 1, "only tx 3's page");
    assert_eq!(read(&next, 0, 11), &[2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1]);
    assert!(
        read(&next, 4096, 2 * 4096).iter().all(|&b| b == 1),
        "tx 1's zeros stay unapplied"
    );
    assert_eq!(next.commit_generation(), 2);
    next.unlock(None).unwrap();
}

#[test]
fn a_waiter_sleeps_until_another_opener_commits() {
    let (_root, ns) = namespace();
    let writer = create(&ns, "a", 4096, 64);
    let reader = ns.open_region("a").unwrap();
    // Nothing published: the wait times out with the same generation.
    let start = std::time::Instant::now();
    assert_eq!(reader.wait_for_commit(0, Duration::from_millis(30)), 0);
    assert!(start.elapsed() >= Duration::from_millis(30));
    let waiter = std::thread::spawn(move || {
        let generation = reader.wait_for_commit(0, Duration::from_secs(10));
        (generation, read(&reader, 0, 1)[0])
    });
    std::thread::sleep(Duration::from_millis(50));
    writer.lock(WAIT).unwrap();
    write(&writer, 0, b"Z");
    writer.unlock(None).unwrap();
    assert_eq!(waiter.join().unwrap(), (1, b'Z'));
}

#[test]
fn a_write_whose_undo_record_cannot_be_written_is_refused_and_leaves_nothing_open() {
    let (_root, ns) = namespace();
    let first = create(&ns, "a", 8192, 8192);
    first.lock(WAIT).unwrap();
    write(&first, 0, b"committed");
    first.unlock(None).unwrap();
    let path = first.path().to_path_buf();
    drop(first);
    // The fault: the undo log's name taken by a directory.
    let undo = path.with_extension("undo");
    let _ = fs::remove_file(&undo);
    fs::create_dir(&undo).unwrap();

    let region = MappedRegion::open(&path).unwrap();
    region.lock(WAIT).unwrap();
    let err = region
        .clone()
        .block()
        .write_at(0, b"never seen")
        .unwrap_err();
    assert!(matches!(err, shm_pool::PoolError::WriteRefused(_)), "{err}");
    assert!(err.to_string().contains("region journal failed"), "{err}");
    assert!(err.to_string().contains("Is a directory"), "{err}");
    assert_eq!(raw(&path, 0, 9), b"committed", "the bytes did not change");
    assert!(!region.status().undo_pending, "no transaction is left open");
    region.unlock(None).unwrap();
    assert_eq!(region.commit_generation(), 1, "nothing was committed");

    // The namespace stays usable: once the fault is gone, writes work again.
    fs::remove_dir(&undo).unwrap();
    let again = MappedRegion::open(&path).unwrap();
    again.lock(WAIT).unwrap();
    write(&again, 0, b"written");
    again.unlock(None).unwrap();
    assert_eq!(read(&again, 0, 7), b"written");
}

/// A tmpfs mounted for one test (needs root), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file until the file system is full; returns it.
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.path().join("filler");
        let mut file = fs::File::create(&filler).unwrap();
        let chunk = [0xeeu8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.write_all(&chunk[..1]);
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_refuses_writes_and_growth_instead_of_killing_the_process() {
    let Some(tmpfs) = Tmpfs::mount("256k") else {
        eprintln!("skipped: mounting a tmpfs needs root (the directory-in-place-of-the-log test covers the refusal)");
        return;
    };
    let ns = Namespace::open(tmpfs.path(), "full").unwrap();
    let fixed = create(&ns, "fixed", 16_384, 16_384);
    // Auto-growing: room for 64 KiB, 4 KiB in use (the rest has no pages yet).
    let growing = ns
        .create_region(
            |_| (false, 0),
            |h| {
                let mut header = RegionHeader::new(h, 65_536, Address::ZERO).named("growing")?;
                header.options.auto_grow = true;
                Ok(header)
            },
            4096,
        )
        .unwrap();
    let filler = tmpfs.fill();

    // The undo record of an in-place write does not fit: refused, nothing changed.
    fixed.lock(WAIT).unwrap();
    let err = fixed.clone().block().write_at(0, &[1; 4096]).unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(raw(fixed.path(), 0, 4096), vec![0; 4096]);
    assert!(!fixed.status().undo_pending);
    fixed.unlock(None).unwrap();
    let undo = fixed.path().with_extension("undo");
    assert!(
        fs::metadata(&undo).map(|m| m.len()).unwrap_or(0) == 0,
        "no torn record is left in the log"
    );

    // Growing into pages the file does not have yet: without a reservation
    // first, the store into the mapping would kill this process with SIGBUS.
    growing.lock(WAIT).unwrap();
    let err = growing
        .clone()
        .block()
        .write_at(8192, &[2; 4096])
        .unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    growing.unlock(None).unwrap();

    // Space again: the same writes go through and commit.
    fs::remove_file(&filler).unwrap();
    for (region, offset, byte) in [(&fixed, 0, 1u8), (&growing, 8192, 2)] {
        region.lock(WAIT).unwrap();
        write(region, offset, &[byte; 4096]);
        region.unlock(Some(offset as u64 + 4096)).unwrap();
        assert_eq!(read(region, offset as u64, 4096), vec![byte; 4096]);
    }
    // And the namespace attaches as before.
    assert_eq!(
        Namespace::open(tmpfs.path(), "full")
            .unwrap()
            .list()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_freed_region_is_seen_as_freed_by_every_other_mapping() {
    let (_root, ns) = namespace();
    let region = create(&ns, "a", 4096, 64);
    let other = ns.open_region("a").unwrap();
    assert!(!other.freed());
    region.set_keep(false);
    drop(region); // the free: marked in the header, then the file goes
    assert!(other.freed());
    assert!(matches!(other.lock(WAIT), Err(MappedError::Freed { .. })));
    // Re-made under the same file name: the stale mapping's drop leaves it alone.
    let again = create(&ns, "b", 4096, 64);
    assert_eq!(again.header().handle, RegionHandle::new(1, 2).unwrap());
    other.set_keep(false);
    drop(other);
    assert!(again.path().exists());
    again.lock(WAIT).unwrap();
    again.unlock(None).unwrap();

    // Freed while another mapping waits for its lock: the waiter gets the
    // lock only after the mark, so it never uses the region being removed.
    let holder = create(&ns, "c", 4096, 64);
    holder.lock(WAIT).unwrap();
    let waiter = ns.open_region("c").unwrap();
    let waiting = std::thread::spawn(move || waiter.lock(WAIT).map(|_| ()));
    std::thread::sleep(Duration::from_millis(20));
    holder.set_keep(false);
    drop(holder);
    assert!(matches!(
        waiting.join().unwrap(),
        Err(MappedError::Freed { .. })
    ));
}

#[test]
fn remove_refuses_a_region_a_live_process_uses_unless_forced() {
    let (_root, ns) = namespace();
    let region = create(&ns, "a", 4096, 64);
    let user = ns.open_region("a").unwrap();
    user.mark_in_use().unwrap();
    let err = ns.remove("a", false).unwrap_err();
    assert!(matches!(err, MappedError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    // A holder of its lock counts too, and is named.
    drop(user);
    region.lock(WAIT).unwrap();
    let err = ns.remove("a", false).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("pid {} holds its lock", std::process::id())),
        "{err}"
    );
    region.unlock(None).unwrap();
    let user = ns.open_region("a").unwrap();
    user.mark_in_use().unwrap();
    ns.remove("a", true).unwrap();
    assert!(user.freed() && region.freed());
    assert!(ns.list().unwrap().is_empty());
}

#[test]
fn messages_are_published_without_an_undo_log_and_read_under_the_lock() {
    let (_root, ns) = namespace();
    let channel = create(&ns, "channel", 4096, 0);
    let reader = ns.open_region("channel").unwrap();
    let waiter = std::thread::spawn(move || {
        let generation =
            reader.wait_for_commit_spinning(0, Duration::from_millis(1), Duration::from_secs(10));
        let mut buf = [0u8; 5];
        let n = reader.read_at(0, &mut buf, WAIT).unwrap();
        (generation, n, buf)
    });
    let generation = channel.publish(0, b"hello", WAIT).unwrap();
    assert_eq!(generation, 1);
    assert_eq!(waiter.join().unwrap(), (1, 5, *b"hello"));
    assert!(
        !channel.path().with_extension("undo").exists(),
        "no undo record was written"
    );
    assert_eq!(channel.size(), 5);
    assert!(matches!(
        channel.publish(4000, &[0; 200], WAIT),
        Err(MappedError::TooLarge(_))
    ));
}

#[test]
fn the_generations_table_is_kept_checked_and_rebuilt_only_on_request() {
    let (root, ns) = namespace();
    let a = create(&ns, "a", 4096, 1);
    drop(a);
    ns.remove("a", false).unwrap();
    let table = ns.dir().join("generations");
    ns.check_generations().unwrap();
    fs::remove_file(&table).unwrap();
    // Lost: no handle is issued and the check says why.
    let err = ns
        .create_region(
            |_| (false, 0),
            |h| Ok(RegionHeader::new(h, 4096, Address::ZERO)),
            1,
        )
        .unwrap_err();
    assert!(matches!(err, MappedError::GenerationsLost { .. }), "{err}");
    assert!(err.to_string().contains("evm shm repair"), "{err}");
    assert!(ns.check_generations().is_err());
    // Opening again does not quietly start a new table.
    let reopened = Namespace::open(root.path(), "test").unwrap();
    assert!(reopened.check_generations().is_err());
    // Rebuilt on request (from the files; the freed region's generation is
    // not in any of them, which is why this is never automatic).
    ns.rebuild_generations().unwrap();
    ns.check_generations().unwrap();
    // Garbage in place of the table is refused too.
    fs::write(&table, b"garbage!").unwrap();
    assert!(matches!(
        ns.check_generations(),
        Err(MappedError::GenerationsLost { .. })
    ));
}

#[test]
fn namespaces_are_private_by_default_and_for_a_group_on_request() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = tempfile::tempdir().unwrap();
    let mode = |path: &std::path::Path| fs::metadata(path).unwrap().mode() & 0o7777;

    let private = Namespace::open(root.path(), "private").unwrap();
    let region = create(&private, "a", 4096, 64);
    region.lock(WAIT).unwrap();
    write(&region, 0, b"x");
    region.unlock(None).unwrap();
    assert_eq!(mode(private.dir()), 0o700);
    for entry in fs::read_dir(private.dir()).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }

    let group = Namespace::open_with(root.path(), "group", shm_mapped::Access::Group).unwrap();
    let shared = create(&group, "a", 4096, 64);
    shared.lock(WAIT).unwrap();
    write(&shared, 0, b"x");
    shared.unlock(None).unwrap();
    assert_eq!(mode(group.dir()), 0o2770);
    for entry in fs::read_dir(group.dir()).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o660, "{}", path.display());
    }

    // A private namespace of ours that lets others in is closed again.
    fs::set_permissions(private.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    Namespace::open(root.path(), "private").unwrap();
    assert_eq!(mode(private.dir()), 0o700);

    // A symbolic link in place of the directory is refused.
    std::os::unix::fs::symlink(private.dir(), root.path().join("link")).unwrap();
    let err = Namespace::open(root.path(), "link").unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");

    // Another user's namespace (as root: a chown makes one).
    if fs::metadata(root.path()).unwrap().uid() != 0 {
        return; // not root: the real-uid test in bins/evm/tests/ipc.rs covers it
    }
    let theirs = Namespace::open(root.path(), "theirs").unwrap();
    let dir = theirs.dir().to_path_buf();
    drop(theirs);
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let err = Namespace::open(root.path(), "theirs").unwrap_err();
    assert!(
        matches!(
            err,
            MappedError::ForeignOwner {
                owner: 65534,
                uid: 0,
                ..
            }
        ),
        "{err}"
    );
    // Group access does not help when it is not a group namespace of our group…
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o2770)).unwrap();
    let err = Namespace::open_with(root.path(), "theirs", shm_mapped::Access::Group).unwrap_err();
    assert!(
        err.to_string().contains("not a group namespace of a group"),
        "{err}"
    );
    // …nor ever when every user may write it.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o2777)).unwrap();
    let err = Namespace::open_with(root.path(), "theirs", shm_mapped::Access::Group).unwrap_err();
    assert!(err.to_string().contains("open to every user"), "{err}");
    // Our own group (root's group 0): accepted with group access only.
    std::os::unix::fs::chown(&dir, Some(65534), Some(0)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o2770)).unwrap();
    assert!(Namespace::open(root.path(), "theirs").is_err());
    Namespace::open_with(root.path(), "theirs", shm_mapped::Access::Group).unwrap();
}

#[test]
fn symbolic_links_in_a_namespace_are_never_followed() {
    let (root, ns) = namespace();
    let region = create(&ns, "a", 4096, 64);
    let path = region.path().to_path_buf();
    drop(region);
    // Someone with write access to the directory plants links to a file of ours.
    let victim = root.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let undo = path.with_extension("undo");
    let _ = fs::remove_file(&undo);
    std::os::unix::fs::symlink(&victim, &undo).unwrap();
    let region = MappedRegion::open(&path).unwrap();
    region.lock(WAIT).unwrap();
    let err = region.clone().block().write_at(0, b"x").unwrap_err();
    assert!(err.to_string().contains("region journal failed"), "{err}");
    region.unlock(None).unwrap();
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"precious",
        "the undo record went nowhere"
    );
    // A link in place of the region file is not opened either.
    let linked = ns.dir().join(shm_mapped::region_file_name(7));
    std::os::unix::fs::symlink(&path, &linked).unwrap();
    assert!(MappedRegion::open(&linked).is_err());
}

#[test]
fn a_namespace_is_never_seen_without_its_generations_table() {
    // Processes (here: threads with their own opens) making the same new
    // namespace at once: every one of them finds a whole namespace.
    let root = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let name = format!("race{round}");
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (root, name) = (root.path().to_path_buf(), name.clone());
                std::thread::spawn(move || {
                    let ns = Namespace::open(&root, &name).unwrap();
                    ns.check_generations().unwrap();
                })
            })
            .collect();
        for opener in openers {
            opener.join().unwrap();
        }
    }
    // No temporary directory is left behind.
    let leftovers: Vec<_> = fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A process that dies while building a region file (between creating it under
/// its hidden name and moving it into place) leaves that file behind; the next
/// open of the namespace removes it once its builder is gone and it is old
/// enough, and leaves every other file alone.
#[test]
fn files_a_dead_process_was_building_are_swept_at_open() {
    let root = tempfile::tempdir().unwrap();
    let ns = Namespace::open(root.path(), "test").unwrap();
    let dir = ns.dir().to_path_buf();
    drop(ns);
    // A real process, run to its end: its pid names nobody now.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let make = |name: String, modified: std::time::SystemTime| {
        let path = dir.join(name);
        let file = fs::File::create(&path).unwrap();
        file.set_modified(modified).unwrap();
        path
    };
    let abandoned = make(format!(".r00000007.shm.{dead}.0.new"), long_ago);
    let fresh = make(
        format!(".r00000008.shm.{dead}.1.new"),
        std::time::SystemTime::now(),
    );
    let ours = make(
        format!(".r00000009.shm.{}.2.new", std::process::id()),
        long_ago,
    );
    let unrelated = make(format!(".r00000010.shm.{dead}.x.new"), long_ago);
    let _ns = Namespace::open(root.path(), "test").unwrap();
    assert!(!abandoned.exists(), "a dead builder's old file is removed");
    assert!(fresh.exists(), "a recent one may still be moved into place");
    assert!(ours.exists(), "a live builder's file stays");
    assert!(unrelated.exists(), "a name not of the builder's form stays");
}
