//! Tests for the rows of `docs/security.md`'s threat model that no other test
//! covered. Each test names the threat it stands for.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use alloy_primitives::{Address, U256};
use common::*;
use shm_manager::{HaltCause, RegionRequest, SharedMemoryConfig, SharedMemoryManager, ShmError};
use shm_primitives::{RegionHandle, RegionOptions};

const OWNER: Address = Address::repeat_byte(0xa1);
const STRANGER: Address = Address::repeat_byte(0xb1);

// ----- leaks through freed, recycled or cut memory -----

/// Threat: a region's bytes outliving it. A region freed by its owner gives
/// its pool block back; the next region made from that block — by another
/// contract, in another transaction — reads zero, at every level (Paranoid
/// also scrubs at the free; the others clear what was written, lazily).
#[test]
fn a_new_region_never_shows_a_freed_regions_bytes() {
    for (name, mut config) in level_configs() {
        // One 4 KiB block: the second region must take the first one's.
        config.pool_blocks[1] = 1;
        let mut h = Harness::new(config);
        let secret = region_owned_by(&mut h, OWNER, 4096, 1);
        host_write(&h, secret, 0, &[0x5e; 4096]);
        h.deploy_asm_at(OWNER, &(free(&arg(0)) + "STOP"));
        assert_ok(&h.call(OWNER, &arg_word(secret)));
        let stats = h.manager.get_memory_stats().unwrap();
        assert_eq!(
            stats.pool_classes[1].allocated, 0,
            "{name}: the block is back"
        );
        // A stranger's new (persistent) region, read whole.
        h.deploy_asm_at(
            STRANGER,
            &(alloc_to(0x2000, 4096, 1) + &read(&mem(0x2000), 0, 4096, 0) + "POP " + &ret(0, 4096)),
        );
        let out = h.call(STRANGER, &[]);
        assert_ok(&out);
        assert_eq!(
            h.manager.get_memory_stats().unwrap().pool_classes[1].allocated,
            1,
            "{name}: the new region has the freed region's block"
        );
        assert!(
            out.output().iter().all(|&b| b == 0),
            "{name}: the new region shows the freed region's bytes"
        );
    }
}

/// Threat: bytes written past a region's end by a frame whose growth was
/// undone. The revert cuts the size back and zeroes what was cut, so growing
/// the region again shows zeros — in the same transaction, and after it.
#[test]
fn growth_after_a_reverted_growth_reads_zero() {
    for ((name, config), end) in level_configs()
        .into_iter()
        .flat_map(|c| [(c.clone(), "REVERT"), (c, "RETURN")])
    {
        let mut h = Harness::new(config);
        // Persistent, auto-growing, 64 bytes.
        let region = region_owned_by(&mut h, OWNER, 64, 0b11);
        // Called with calldata (handle, 1): grows the region to 4032 bytes
        // with 0xdd… at 4000 and reverts. Called with (handle): calls itself
        // so, then grows the region to 5001 bytes and returns 4000..4032.
        let code = format!(
            "PUSH 32 CALLDATALOAD PUSH @inner JUMPI\n\
             {map}POP\n\
             PUSH 0 PUSH 0x20 MSTORE {handle} PUSH 0 MSTORE PUSH 1 PUSH 0x20 MSTORE\n\
             PUSH 0 PUSH 0 PUSH 64 PUSH 0 PUSH 0 ADDRESS GAS CALL POP\n\
             PUSH 0xee PUSH 0x100 MSTORE8 {grow}POP\n\
             {read}POP {ret}\n\
             inner:\nJUMPDEST\n{map}POP {secret}{write}POP PUSH 0 PUSH 0 {end}\n",
            map = map(&arg(0), 0),
            handle = arg(0),
            grow = write(&arg(0), 5000, 1, 0x100),
            read = read(&arg(0), 4000, 32, 0x200),
            ret = ret(0x200, 32),
            secret = mstore(0x300, fill(0xdd)),
            write = write(&arg(0), 4000, 32, 0x300),
        );
        h.deploy_asm_at(OWNER, &code);
        let out = h.call(OWNER, &arg_word(region));
        assert_ok(&out);
        // (The control: when the frame returns, its bytes are there.)
        let seen = if end == "REVERT" { 0 } else { 0xdd };
        assert_eq!(out.word(0), filled(seen), "{name} {end}: same transaction");
        let size = h
            .manager
            .region_info(RegionHandle::from_u256(region).unwrap())
            .unwrap()
            .meta
            .size();
        assert_eq!(size, 5001, "{name}: the outer growth stayed");
        assert_eq!(
            host_read(&h, region, 4000, 32),
            vec![seen; 32],
            "{name} {end}"
        );
    }
}

// ----- re-entrancy through shared regions -----

/// Threat: re-entrancy. A contract writes its region, calls out, and reads
/// it back: what the callee could do to the region in between is exactly
/// what its rights allow — nothing to a private region, anything to a
/// public-write one (the caller must re-read after calls, as with storage),
/// nothing under STATICCALL, and everything the caller may under
/// DELEGATECALL (the callee runs as the caller).
#[test]
fn a_callee_changes_its_callers_region_only_as_its_rights_allow() {
    // The callee maps the region (Strict needs it) and writes 0x02….
    let callee = format!(
        "{}POP {}{}POP STOP",
        map(&arg(0), 0),
        mstore(0, fill(0x02)),
        write(&arg(0), 0, 32, 0)
    );
    // The caller writes 0x01…, calls the callee with the handle, reads back.
    let caller = |call: &str| {
        format!(
            "{map}POP {one}{write}POP {handle} PUSH 0x80 MSTORE\n{call}PUSH 0x20 MSTORE\n\
             {read}POP {ret}",
            map = map(&arg(0), 0),
            one = mstore(0, fill(0x01)),
            write = write(&arg(0), 0, 32, 0),
            handle = arg(0),
            read = read(&arg(0), 0, 32, 0x40),
            ret = ret(0x20, 64),
        )
    };
    for (name, config) in level_configs().into_iter().skip(1) {
        let cases = [
            (
                "CALL, private region",
                1,
                call(STRANGER, 0x80, 32, 0, 0),
                0x01,
                false,
            ),
            (
                "CALL, public-write region",
                0b1001,
                call(STRANGER, 0x80, 32, 0, 0),
                0x02,
                true,
            ),
            (
                "STATICCALL, public-write region",
                0b1001,
                staticcall(STRANGER, 0x80, 32, 0, 0),
                0x01,
                false,
            ),
            (
                "DELEGATECALL, private region",
                1,
                delegatecall(STRANGER, 0x80, 32, 0, 0),
                0x02,
                true,
            ),
        ];
        for (what, flags, call, seen, callee_ok) in cases {
            let mut h = Harness::new(config.clone());
            let region = region_owned_by(&mut h, OWNER, 64, flags);
            h.deploy_asm_at(STRANGER, &callee);
            h.deploy_asm_at(OWNER, &caller(&call));
            let (out, frames) = call_inspected(&mut h, OWNER, &arg_word(region));
            assert_ok(&out);
            assert_eq!(
                out.word(0),
                U256::from(u8::from(callee_ok)),
                "{name}, {what}: callee"
            );
            assert_eq!(
                out.word(1),
                filled(seen),
                "{name}, {what}: what the caller reads"
            );
            if !callee_ok {
                let cause = if what.starts_with("STATIC") {
                    HaltCause::StaticWrite
                } else {
                    HaltCause::PermissionDenied
                };
                assert_frame_halted(&frames, STRANGER, cause);
            }
        }
    }
}

// ----- consensus -----

/// Threat: treating regions as chain state. Regions are not in the state
/// root, so an embedder that rolls the state back (a reorg, a discarded
/// block) does not roll a region back: a committed write stays.
#[test]
fn regions_do_not_follow_a_rollback_of_the_state() {
    let mut h = Harness::new(SharedMemoryConfig::development());
    let region = region_owned_by(&mut h, OWNER, 64, 1);
    h.deploy_asm_at(
        OWNER,
        &format!(
            "{}{}POP PUSH 1 PUSH 0 SSTORE STOP",
            mstore(0, fill(0xaa)),
            write(&arg(0), 0, 32, 0)
        ),
    );
    let before = h.db.clone();
    assert_ok(&h.call(OWNER, &arg_word(region)));
    let storage = |h: &Harness| {
        h.db.cache.accounts[&OWNER]
            .storage
            .get(&U256::ZERO)
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(storage(&h), U256::from(1));
    // The "reorg": the state goes back to before the block.
    h.db = before;
    assert_eq!(storage(&h), U256::ZERO, "the state rolled back");
    assert_eq!(
        host_read(&h, region, 0, 32),
        vec![0xaa; 32],
        "the region did not"
    );
}

// ----- cross-process attachment -----

/// A namespace root of our own in the temporary directory, removed on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(what: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "shm-security-{what}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mapped(root: &Path) -> SharedMemoryConfig {
    SharedMemoryConfig {
        namespace_root: Some(root.to_path_buf()),
        lock_wait: Duration::from_millis(200),
        ..SharedMemoryConfig::testing().with_namespace("ns")
    }
}

fn persistent() -> RegionOptions {
    RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    }
}

/// Threat: a damaged file in a namespace. The attach is refused — and must
/// destroy nothing: the regions attached before the damaged file was met
/// stay in the namespace, with their bytes, for every process.
#[test]
fn a_refused_attach_destroys_no_region() {
    let root = TempRoot::new("refused");
    let first = SharedMemoryManager::new(mapped(&root.0)).unwrap();
    let kept = first
        .create_region(RegionRequest::new(64).named("kept").options(persistent()))
        .unwrap();
    first.write_region(kept, 0, b"precious").unwrap();
    // Another process keeps the namespace open meanwhile.
    let dir = first.namespace_dir().unwrap().to_path_buf();
    // A damaged file at a higher index than the good region.
    std::fs::write(dir.join("r00000007.shm"), vec![0x55u8; 8192]).unwrap();

    let refused = SharedMemoryManager::new(mapped(&root.0));
    assert!(
        matches!(&refused, Err(ShmError::Mapped(m)) if m.contains("r00000007.shm")),
        "{refused:?}"
    );
    drop(refused);

    // The good region is untouched: the process that has it still reads it,
    // and so does a process attaching once the damage is removed.
    let mut buf = [0u8; 8];
    first.read_region(kept, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"precious");
    std::fs::remove_file(dir.join("r00000007.shm")).unwrap();
    let later = SharedMemoryManager::new(mapped(&root.0)).unwrap();
    assert_eq!(later.find_region("kept").unwrap(), kept);
    later.read_region(kept, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"precious");
}

/// Threat: attaching to a namespace that other processes use. A process
/// attaching while another makes and frees regions (transaction-scoped
/// files come and go all the time) must attach, every time.
///
/// Failed before the fix (1 attach in 200): a file removed between the
/// directory listing and its opening (ENOENT), or met between its creation
/// and its header write (truncated, bad magic), refused the attach. Region
/// files are now made whole under a hidden name and moved into place, and a
/// file gone since the listing is skipped.
#[test]
fn attaching_while_another_process_makes_and_frees_regions() {
    let root = TempRoot::new("attach");
    let first = SharedMemoryManager::new(mapped(&root.0)).unwrap();
    let kept = first
        .create_region(RegionRequest::new(64).named("kept").options(persistent()))
        .unwrap();
    let stop = root.0.join("stop");
    let ready = root.0.join("ready");
    let mut churn = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "churn_helper_process",
            "--nocapture",
            "--include-ignored",
        ])
        .env(CHURN_ROOT, &root.0)
        .spawn()
        .unwrap();
    while !ready.exists() {
        assert!(
            churn.try_wait().unwrap().is_none(),
            "the churning process ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut failures = Vec::new();
    for _ in 0..200 {
        match SharedMemoryManager::new(mapped(&root.0)) {
            Ok(other) => assert_eq!(other.find_region("kept").unwrap(), kept),
            Err(e) => failures.push(e.to_string()),
        }
    }
    std::fs::write(&stop, "").unwrap();
    assert!(
        churn.wait().unwrap().success(),
        "the churning process failed"
    );
    assert!(
        failures.is_empty(),
        "{} of 200 attaches failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(first.region_info(kept).is_ok(), "the kept region survived");
}

const CHURN_ROOT: &str = "SHM_SECURITY_CHURN_ROOT";

/// The churning process of the test above: makes and frees persistent and
/// transaction-scoped regions until told to stop (nothing without the
/// variable).
#[test]
fn churn_helper_process() {
    let Some(root) = std::env::var_os(CHURN_ROOT) else {
        return;
    };
    let root = PathBuf::from(root);
    let manager = SharedMemoryManager::new(mapped(&root)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut round = 0u64;
    while !root.join("stop").exists() && std::time::Instant::now() < deadline {
        let h = manager
            .create_region(RegionRequest::new(4096).options(persistent()))
            .unwrap();
        manager.free_region(h).unwrap();
        let mut tx = manager.begin_transaction();
        let scoped = tx
            .create(shm_manager::RegionSpec::new(
                4096,
                shm_primitives::Address::ZERO,
            ))
            .unwrap();
        tx.free_scoped(&[(scoped, 4096)]);
        tx.release();
        round += 1;
        if round == 1 {
            std::fs::write(root.join("ready"), "").unwrap();
        }
    }
}

/// Threat: a handle another process made, used first by several threads of
/// this one at once. Every one of them must find the region (never
/// "invalid handle" for a handle the namespace issued).
///
/// Failed before the fix: `MappedBacking::refresh` answered "unknown" to
/// every thread but the one that attached the region (it found the slot
/// taken — by the region itself, attached meanwhile — and nothing stale
/// there), so the others halted "invalid region handle". Refreshes are now
/// one at a time, and a handle another thread attached meanwhile is found.
#[test]
fn threads_meeting_a_new_handle_at_once_all_find_it() {
    const THREADS: usize = 4;
    let root = TempRoot::new("refresh");
    let maker = SharedMemoryManager::new(mapped(&root.0)).unwrap();
    let user = SharedMemoryManager::new(mapped(&root.0)).unwrap();
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let handle = Arc::new(std::sync::Mutex::new(None));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (user, barrier, handle) = (user.clone(), barrier.clone(), handle.clone());
            std::thread::spawn(move || {
                let mut failures = 0;
                loop {
                    barrier.wait();
                    let Some(h) = *handle.lock().unwrap() else {
                        return failures;
                    };
                    let mut buf = [0u8; 8];
                    if let Err(e) = user.read_region(h, 0, &mut buf) {
                        eprintln!("{h:?}: {e}");
                        failures += 1;
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for round in 0..200u64 {
        // Made (at the index the previous round freed) by the other process.
        let h = maker
            .create_region(RegionRequest::new(64).options(persistent()))
            .unwrap();
        maker.write_region(h, 0, &round.to_be_bytes()).unwrap();
        *handle.lock().unwrap() = Some(h);
        barrier.wait(); // go
        barrier.wait(); // done
        maker.free_region(h).unwrap();
    }
    *handle.lock().unwrap() = None;
    barrier.wait();
    let failures: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(failures, 0, "reads of a live handle refused");
}

/// Threat: memory use hidden from the operator. The metrics' memory gauge
/// drives `gc_threshold_mb` and what Prometheus shows, so it must follow
/// every region this process maps — also those another process frees.
///
/// Failed before the fix: a region another process freed left this
/// process's registry (`MappedBacking::forget`) without being counted as
/// destroyed, so `created − destroyed` stayed above the live regions and the
/// gauge above their bytes. The mapped backing now moves the manager's
/// metrics itself (also for growth another process committed).
#[test]
fn metrics_follow_regions_another_process_frees() {
    let root = TempRoot::new("metrics");
    let maker = SharedMemoryManager::new(mapped(&root.0)).unwrap();
    let user = SharedMemoryManager::new(mapped(&root.0)).unwrap();
    let h = maker
        .create_region(RegionRequest::new(4096).options(persistent()))
        .unwrap();
    let mut buf = [0u8; 8];
    user.read_region(h, 0, &mut buf).unwrap(); // attached here
    maker.free_region(h).unwrap();
    assert_eq!(
        user.read_region(h, 0, &mut buf),
        Err(ShmError::RegionFreed(h))
    );
    let stats = user.get_memory_stats().unwrap();
    let metrics = user.metrics_snapshot();
    assert_eq!(stats.active_regions, 0);
    assert_eq!(
        metrics.regions_created - metrics.regions_destroyed,
        0,
        "{metrics:?}"
    );
    assert_eq!(
        metrics.memory_bytes, 0,
        "the gauge still counts the freed region"
    );
}

// ----- resource exhaustion -----

/// Threat: one context taking a shared resource from everybody. Persistent
/// regions are priced like new storage slots (20,000 gas a word), yet their
/// *number* is a manager-wide limit (`max_persistent_regions`, 768 in
/// `production`): one transaction under the EIP-7825 cap (16,777,216 gas)
/// takes every persistent slot with 1-byte regions, and from then on every
/// other context's persistent ALLOC pushes 0 until the owner or the host
/// frees some (collection never does). Transaction-scoped ALLOCs keep
/// working (the reserve of spec §4).
#[test]
fn one_transaction_can_take_every_persistent_slot() {
    const CAP: u64 = 16_777_216;
    let mut h = Harness::new(SharedMemoryConfig::production());
    let hog = h.deploy_asm(
        "PUSH 0 loop: JUMPDEST
         PUSH 1 PUSH 1 SHARED_ALLOC
         ISZERO PUSH @done JUMPI
         PUSH 1 ADD PUSH @loop JUMP
         done: JUMPDEST PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN",
    );
    let out = h.call_with_gas(hog, &[], CAP);
    assert!(out.is_success(), "{:?}", out.result);
    let taken = out.word(0);
    assert_eq!(
        taken,
        U256::from(768),
        "every persistent slot, in one transaction"
    );
    assert!(out.gas_used() <= CAP);
    println!("768 persistent regions for {} gas", out.gas_used());
    // Anybody else: no persistent region; transaction-scoped ones still.
    let other = h.deploy_asm(&format!(
        "{} PUSH 0 MSTORE {} PUSH 32 MSTORE PUSH 64 PUSH 0 RETURN",
        alloc(32, 1),
        alloc(32, 0)
    ));
    let out = h.call(other, &[]);
    assert_ok(&out);
    assert_eq!(out.word(0), U256::ZERO, "a persistent ALLOC pushes 0");
    assert_ne!(out.word(1), U256::ZERO, "a transaction-scoped ALLOC works");
}
