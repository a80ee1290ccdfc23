//! The hostile programs of `shm_benches::adversarial`, each run under the
//! EIP-7825 transaction cap (16,777,216 gas), with every bound of spec §8
//! asserted by counting — bytes the host holds, regions and files made,
//! locks and pages left — never by wall time (the time per gas is measured by
//! `benches/benches/adversarial.rs`, figures in `docs/gas.md`).

use shm_benches::adversarial::{hostile_programs, Backing, Side, TX_GAS_CAP};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting the bytes live and the most live at once.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged (so `System`'s guarantees are the caller's), and only adds relaxed
// counter updates, which allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received; `layout` has a non-zero size (the
        // caller's contract).
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (hence by `System`)
        // with `layout`: the caller's contract.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc` for `ptr` and `layout`; `new_size` is non-zero
        // (the caller's contract).
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

const MIB: usize = 1 << 20;

/// Spec §8: no program makes the host hold more than 64 MiB of shared-memory
/// state beyond the region bytes paid for. The programs that copy 1 MiB or
/// grow a region by 1 MiB also hold that much EVM memory and region memory,
/// which EVM memory and ALLOC's prices pay for: a 4 MiB allowance covers both.
const BOUND: usize = 64 * MIB + 4 * MIB;

#[test]
fn hostile_programs_stay_within_the_bounds_under_the_gas_cap() {
    let mut report = Vec::new();
    for program in hostile_programs()
        .into_iter()
        .filter(|p| p.side == Side::Shared)
    {
        let mut prepared = program.prepare(TX_GAS_CAP);
        let manager = prepared.manager.clone().expect("a shared program");
        let regions_before = manager.get_memory_stats().unwrap().active_regions;
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let ran = prepared.execute();
        let held = PEAK.load(Relaxed).saturating_sub(before);
        report.push(format!(
            "{:<20} gas {:>10} held {:>10} B",
            program.name, ran.gas_used, held
        ));
        assert!(
            held <= BOUND,
            "{}: held {held} bytes at the cap (bound {BOUND})",
            program.name
        );
        assert!(ran.gas_used <= TX_GAS_CAP, "{}", program.name);
        // Nothing outlives the transaction but what it was meant to keep.
        assert!(
            manager.locked_regions().is_empty(),
            "{}: locks left",
            program.name
        );
        assert_eq!(
            manager.cow_pages(),
            0,
            "{}: private pages left",
            program.name
        );
        let stats = manager.get_memory_stats().unwrap();
        assert_eq!(stats.pending_frees, 0, "{}", program.name);
        assert!(
            stats.active_regions <= regions_before,
            "{}: transaction-scoped regions left",
            program.name
        );
        let metrics = manager.metrics_snapshot();
        assert_eq!(
            metrics.regions_created - metrics.regions_destroyed,
            stats.active_regions as u64,
            "{}: metrics agree with the registry",
            program.name
        );
        assert_eq!(
            metrics.memory_bytes, stats.total_bytes,
            "{}: the memory gauge agrees",
            program.name
        );
        if let Some(backing) = program.mapped {
            // Every file-backed ALLOC pays for its file-system work: 32,000
            // on tmpfs, 320,000 on a disk file system.
            let made = metrics.regions_created;
            let price = if manager.is_mapped_on_disk() {
                320_000
            } else {
                32_000
            };
            if backing == Backing::Memory && std::path::Path::new("/dev/shm").is_dir() {
                assert!(!manager.is_mapped_on_disk(), "/dev/shm is tmpfs");
            }
            assert!(made > 10, "{made}");
            assert!(
                made * price <= TX_GAS_CAP,
                "{made} region files for {TX_GAS_CAP} gas"
            );
        }
    }
    println!("{}", report.join("\n"));
}
