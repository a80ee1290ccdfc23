//! Running one process's share of a soak (workers, host thread, sampler),
//! and what it reports: throughput, the memory curve, the checks afterwards.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_manager::SharedMemoryManager;
use shm_primitives::RegionHandle;

use crate::ledger::{Ledger, Stamp};
use crate::program::SLOTS;
use crate::worker::{read_directory, Counters, HostThread, Worker};

/// One point of the memory curve.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    pub(crate) seconds: f64,
    pub(crate) transactions: u64,
    pub(crate) rss_bytes: u64,
    /// `MemoryStats::total_bytes`: bytes of live regions.
    pub(crate) region_bytes: u64,
    pub(crate) regions: usize,
    /// Pool blocks handed out, all classes.
    pub(crate) pool_blocks: usize,
    pub(crate) pool_reserved_bytes: usize,
    /// The metrics' memory gauge.
    pub(crate) gauge_bytes: u64,
    pub(crate) cow_pages: u64,
    pub(crate) locked_regions: usize,
    /// The checker's own bytes (ledger), to tell them from the subject's.
    pub(crate) ledger_bytes: usize,
}

impl Sample {
    pub(crate) const CSV_HEADER: &'static str =
        "seconds,transactions,rss_bytes,region_bytes,regions,\
        pool_blocks,pool_reserved_bytes,gauge_bytes,cow_pages,locked_regions,ledger_bytes";

    pub(crate) fn csv(&self) -> String {
        format!(
            "{:.3},{},{},{},{},{},{},{},{},{},{}",
            self.seconds,
            self.transactions,
            self.rss_bytes,
            self.region_bytes,
            self.regions,
            self.pool_blocks,
            self.pool_reserved_bytes,
            self.gauge_bytes,
            self.cow_pages,
            self.locked_regions,
            self.ledger_bytes
        )
    }
}

/// Resident set size of this process (Linux: `/proc/self/statm`, 4 KiB pages).
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn sample(
    manager: &SharedMemoryManager,
    ledger: &Ledger,
    counters: &Counters,
    start: Instant,
) -> Sample {
    let stats = manager.get_memory_stats().expect("stats");
    Sample {
        seconds: start.elapsed().as_secs_f64(),
        transactions: counters.transactions.load(Relaxed),
        rss_bytes: rss_bytes(),
        region_bytes: stats.total_bytes,
        regions: stats.active_regions,
        pool_blocks: stats.pool_classes.iter().map(|c| c.allocated).sum(),
        pool_reserved_bytes: stats.pool_reserved_bytes,
        gauge_bytes: manager.metrics_snapshot().memory_bytes,
        cow_pages: stats.cow_pages,
        locked_regions: manager.locked_regions().len(),
        ledger_bytes: ledger.footprint(),
    }
}

/// What one process's run left.
pub(crate) struct Ran {
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) elapsed: Duration,
}

/// Runs `workers` EVM threads and a host thread of process `process` against
/// `manager` for `duration`, sampling every `every`. With `sabotage` the host
/// thread writes bytes nobody commits (the checker's test).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_process(
    manager: &Arc<SharedMemoryManager>,
    sabotage: bool,
    directory: RegionHandle,
    process: u8,
    workers: usize,
    duration: Duration,
    seed: u64,
    every: Duration,
) -> Ran {
    let ledger = Arc::new(Ledger::new(process, workers + 1));
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let until = start + duration;
    let mut threads = Vec::new();
    for thread in 0..workers {
        let worker = Worker {
            manager: manager.clone(),
            directory,
            ledger: ledger.clone(),
            counters: counters.clone(),
            thread: thread as u8,
            seed: seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(thread as u64 + 1)),
            until,
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("soak-worker-{thread}"))
                .spawn(move || worker.run())
                .expect("spawn"),
        );
    }
    let host = HostThread {
        sabotage,
        manager: manager.clone(),
        directory,
        ledger: ledger.clone(),
        counters: counters.clone(),
        thread: workers as u8,
        seed: seed.rotate_left(17) ^ 0xabcdef,
        until,
    };
    threads.push(
        std::thread::Builder::new()
            .name("soak-host".into())
            .spawn(move || host.run())
            .expect("spawn"),
    );
    let mut samples = vec![sample(manager, &ledger, &counters, start)];
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(every.min(Duration::from_millis(100)));
        if samples
            .last()
            .is_none_or(|s| start.elapsed().as_secs_f64() - s.seconds >= every.as_secs_f64())
        {
            samples.push(sample(manager, &ledger, &counters, start));
            ledger.drain_pending();
        }
    }
    for t in threads {
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let elapsed = start.elapsed();
    samples.push(sample(manager, &ledger, &counters, start));
    Ran {
        ledger,
        counters,
        samples,
        elapsed,
    }
}

/// Reads every slot of every shared region through the host API: each must
/// hold two equal halves of a stamp written there (and committed, which the
/// ledger checks) or zero.
pub(crate) fn sweep(
    manager: &SharedMemoryManager,
    directory: RegionHandle,
    ledger: &Ledger,
) -> usize {
    let mut stamped = 0;
    for (_, raw) in read_directory(manager, directory) {
        let handle = RegionHandle::from_u64(raw).expect("a handle");
        let mut bytes = vec![0u8; 64 * usize::from(SLOTS)];
        manager.read_region(handle, 0, &mut bytes).expect("read");
        for (slot, pair) in bytes.chunks(64).enumerate() {
            let a: [u8; 32] = pair[..32].try_into().expect("32");
            let b: [u8; 32] = pair[32..].try_into().expect("32");
            if a != b {
                ledger.violation(format!("slot {slot} of {raw:#x} is torn at the end"));
            }
            match Stamp::decode(&a) {
                Err(e) => ledger.violation(format!("slot {slot} of {raw:#x} at the end: {e}")),
                Ok(None) => {}
                Ok(Some(s)) => {
                    stamped += 1;
                    if (s.handle, usize::from(s.slot)) != (raw, slot) {
                        ledger.violation(format!("slot {slot} of {raw:#x} holds {s:?}"));
                    }
                    ledger.observe(crate::ledger::Seen {
                        writer: s.writer,
                        write: s.write,
                    });
                }
            }
        }
    }
    stamped
}

/// A human summary of a run (also the body of `summary.txt`).
pub(crate) fn summary(name: &str, ran: &Ran, threads: usize) -> String {
    let c = &ran.counters;
    let secs = ran.elapsed.as_secs_f64();
    let txs = c.transactions.load(Relaxed);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{name}: {txs} transactions in {secs:.1} s on {threads} EVM threads + 1 host thread \
         = {:.0} tx/s",
        txs as f64 / secs
    );
    let _ = writeln!(
        out,
        "  succeeded {} reverted {} halted {} (region busy {}, freed region {}, invalid handle {}); \
         published {} abandoned {}; inspected {}; regions recreated {}",
        c.succeeded.load(Relaxed),
        c.reverted.load(Relaxed),
        c.halted.load(Relaxed),
        c.busy.load(Relaxed),
        c.freed.load(Relaxed),
        c.invalid_handle.load(Relaxed),
        c.committed.load(Relaxed),
        c.abandoned.load(Relaxed),
        c.inspected.load(Relaxed),
        c.recreated.load(Relaxed),
    );
    let _ = writeln!(
        out,
        "  reads checked {} (ledger: {} stamps verified); host reads {} writes {} busy {}; gc runs {}; \
         largest journal footprint {} bytes",
        c.reads_checked.load(Relaxed),
        ran.ledger.checked(),
        c.host_reads.load(Relaxed),
        c.host_writes.load(Relaxed),
        c.host_busy.load(Relaxed),
        c.gc_runs.load(Relaxed),
        c.max_journal_footprint.load(Relaxed),
    );
    let first = ran.samples.first().expect("a sample");
    let peak = ran.samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
    let last = ran.samples.last().expect("a sample");
    let _ = writeln!(
        out,
        "  RSS {:.1} MiB at start, {:.1} MiB peak, {:.1} MiB at the end (ledger {:.1} MiB); \
         region bytes peak {}",
        mib(first.rss_bytes),
        mib(peak),
        mib(last.rss_bytes),
        mib(last.ledger_bytes as u64),
        ran.samples
            .iter()
            .map(|s| s.region_bytes)
            .max()
            .unwrap_or(0),
    );
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Writes `samples.csv` and `summary.txt` of a run into `$SOAK_OUT/<name>/`
/// when `SOAK_OUT` is set.
pub(crate) fn write_out(name: &str, ran: &Ran, summary: &str) {
    let Some(dir) = std::env::var_os("SOAK_OUT") else {
        return;
    };
    let dir = std::path::Path::new(&dir).join(name);
    std::fs::create_dir_all(&dir).expect("SOAK_OUT is writable");
    let mut csv = String::from(Sample::CSV_HEADER);
    csv.push('\n');
    for s in &ran.samples {
        csv.push_str(&s.csv());
        csv.push('\n');
    }
    std::fs::write(dir.join("samples.csv"), csv).expect("write samples.csv");
    std::fs::write(dir.join("summary.txt"), summary).expect("write summary.txt");
}
