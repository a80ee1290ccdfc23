//! The worst shared-memory programs next to the slowest mainnet loops, in the
//! same run (issue "sound gas"): criterion times one transaction of each
//! (a fresh manager and state per transaction, made outside the timed part),
//! and the table after it gives nanoseconds per gas and the ratio to the slowest
//! mainnet loop of the run. Criterion's runs share one process whose allocator
//! is pinned to keep its heap ([`pin_allocator`]): the regime of a node that has
//! run transactions before. Each program then runs again in a process of its own
//! (this binary, with `ADVERSARIAL_ONE=<name>`) with the C library's defaults,
//! where new heap pages fault: those columns give its ns/gas, the ratio to the
//! slowest mainnet program in that regime, its page faults per transaction and
//! its peak RSS.
//!
//! `ADVERSARIAL_GAS` sets the gas of every transaction (default 16,777,216,
//! EIP-7825's cap).

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion};
use shm_benches::{
    adversarial::{hostile_programs, Hostile, Side, TX_GAS_CAP},
    report::{mean_ns, publish, Table},
};
use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

const GROUP: &str = "adversarial";

fn gas() -> u64 {
    std::env::var("ADVERSARIAL_GAS")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(TX_GAS_CAP)
}

/// Peak resident set of this process image, in KiB: `VmHWM` of
/// `/proc/self/status` (not `getrusage`, whose maximum a child inherits from
/// the parent that forked it).
fn max_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(-1)
}

/// Minor page faults of this process so far (field 10 of `/proc/self/stat`).
fn minor_faults() -> i64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(-1)
}

/// What a run in a process of its own measured (see [`run_one`]).
struct OwnProcess {
    /// Peak resident set of the process, in KiB.
    max_rss_kib: i64,
    /// Mean wall time of one transaction after the first, in nanoseconds.
    ns_per_run: f64,
    /// Mean minor page faults of one transaction after the first.
    faults_per_run: f64,
}

/// Child mode (`ADVERSARIAL_ONE=<name>`): runs the program `ADVERSARIAL_REPEAT`
/// times (default 1), each on a fresh set-up as the bench does, with the C
/// library's allocator left at its defaults, and prints `gas_used max_rss_kib
/// ns_per_run faults_per_run`. Runs after the first are averaged (the first also
/// pays for lazy set-up); with one run, that one is reported. Also the way to
/// profile one program: `ADVERSARIAL_ONE=revert_1024 ADVERSARIAL_REPEAT=200 perf
/// record …`.
fn run_one(name: &str) {
    let Some(program) = hostile_programs().into_iter().find(|p| p.name == name) else {
        eprintln!("no program named {name}");
        std::process::exit(2);
    };
    let repeat: u32 = std::env::var("ADVERSARIAL_REPEAT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1);
    let (mut gas_used, mut counted, mut nanos, mut faults) = (0, 0u32, 0u128, 0i64);
    for run in 0..repeat {
        let mut prepared = program.prepare(gas());
        let faults_before = minor_faults();
        let started = Instant::now();
        gas_used = prepared.execute().gas_used;
        let elapsed = started.elapsed();
        let faulted = minor_faults() - faults_before;
        drop(prepared);
        if run > 0 || repeat == 1 {
            counted += 1;
            nanos += elapsed.as_nanos();
            faults += faulted;
        }
    }
    println!(
        "{gas_used} {} {:.1} {:.1}",
        max_rss_kib(),
        nanos as f64 / f64::from(counted),
        faults as f64 / f64::from(counted)
    );
}

/// Runs `name` in a process of its own (this binary, in child mode).
fn own_process(me: &std::path::Path, name: &str, gas: u64) -> Option<OwnProcess> {
    let out = Command::new(me)
        .env("ADVERSARIAL_ONE", name)
        .env("ADVERSARIAL_GAS", gas.to_string())
        .env("ADVERSARIAL_REPEAT", OWN_PROCESS_RUNS.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let fields: Vec<f64> = text
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    (fields.len() == 4).then(|| OwnProcess {
        max_rss_kib: fields[1] as i64,
        ns_per_run: fields[2],
        faults_per_run: fields[3],
    })
}

/// The mainnet program with the most ns/gas by `per_gas`, and that figure.
fn slowest_of_mainnet(
    programs: &[Hostile],
    per_gas: impl Fn(&str) -> Option<f64>,
) -> Option<(&str, f64)> {
    programs
        .iter()
        .filter(|p| p.side == Side::Mainnet)
        .filter_map(|p| per_gas(p.name).map(|v| (p.name, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Transactions per own-process run: the first is set-up's, the rest are averaged.
const OWN_PROCESS_RUNS: u32 = 6;

/// Makes the C library's allocator keep what it has: no trimming of the heap's
/// top and a fixed threshold for `mmap`.
///
/// glibc otherwise adapts both to what the process freed before, so a program's
/// time depended on which programs ran before it in the same process: a mainnet
/// dive that found a heap grown by earlier programs ran without page faults,
/// while one in a fresh process took one per new heap page (≈ 3.5 µs each on the
/// 2-core VM of `docs/gas.md`). With the allocator pinned, every program runs on a
/// warm heap, as in a node that has executed transactions before; the
/// own-process columns keep glibc's defaults and show the other regime.
fn pin_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const KEEP_HEAP_BYTES: libc::c_int = 1 << 30;
        // glibc's largest allowed mmap threshold on 64-bit targets.
        const MMAP_ABOVE_BYTES: libc::c_int = 32 << 20;
        // SAFETY: `mallopt` only sets the allocator's tuning parameters, which
        // it reads under its own lock; no allocation is invalidated. Called
        // first thing in `main`, before criterion starts any thread.
        let kept = unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_HEAP_BYTES)
                & libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_ABOVE_BYTES)
        };
        if kept != 1 {
            eprintln!("warning: mallopt refused; programs may see an adapting heap");
        }
    }
}

fn main() {
    if let Ok(name) = std::env::var("ADVERSARIAL_ONE") {
        run_one(&name);
        return;
    }
    pin_allocator();
    let gas = gas();
    let programs = hostile_programs();
    let mut c = Criterion::default().configure_from_args();
    let mut used = HashMap::new();
    {
        let mut group = c.benchmark_group(GROUP);
        group.sample_size(10);
        for program in &programs {
            let gas_used = program.prepare(gas).execute().gas_used;
            used.insert(program.name, gas_used);
            group.bench_function(program.name, |b| {
                // `_ref`: the set-up is dropped outside the timed part too.
                b.iter_batched_ref(
                    || program.prepare(gas),
                    |prepared| prepared.execute(),
                    BatchSize::PerIteration,
                )
            });
        }
        group.finish();
    }
    c.final_summary();

    let ns_per_gas = |name: &str| mean_ns(GROUP, name).map(|ns| ns / used[name].max(1) as f64);
    let slowest_mainnet = slowest_of_mainnet(&programs, ns_per_gas);
    let me = std::env::current_exe().expect("this binary");
    let own: HashMap<&str, OwnProcess> = programs
        .iter()
        .filter_map(|p| Some((p.name, own_process(&me, p.name, gas)?)))
        .collect();
    let own_per_gas = |name: &str| {
        own.get(name)
            .map(|o| o.ns_per_run / used[name].max(1) as f64)
    };
    let own_slowest = slowest_of_mainnet(&programs, own_per_gas);
    let ratio = |v: Option<f64>, worst: Option<(&str, f64)>| match (v, worst) {
        (Some(v), Some((_, w))) => format!("{:.3}", v / w),
        _ => "n/a".into(),
    };
    let mut table = Table::new([
        "program",
        "side",
        "gas used",
        "time",
        "ns/gas",
        "× slowest mainnet",
        "own process: ns/gas",
        "× slowest mainnet",
        "page faults",
        "peak RSS (MiB)",
    ]);
    for program in &programs {
        let per_gas = ns_per_gas(program.name);
        let own_gas = own_per_gas(program.name);
        let own_run = own.get(program.name);
        table.row([
            program.name.to_string(),
            format!("{:?}", program.side),
            used[program.name].to_string(),
            shm_benches::report::duration(mean_ns(GROUP, program.name)),
            per_gas.map_or("n/a".into(), |v| format!("{v:.3}")),
            ratio(per_gas, slowest_mainnet),
            own_gas.map_or("n/a".into(), |v| format!("{v:.3}")),
            ratio(own_gas, own_slowest),
            own_run.map_or("n/a".into(), |o| format!("{:.0}", o.faults_per_run)),
            own_run.map_or("n/a".into(), |o| {
                format!("{:.1}", o.max_rss_kib as f64 / 1024.0)
            }),
        ]);
    }
    let name_of = |worst: Option<(&str, f64)>| {
        worst.map_or("n/a".into(), |(n, v)| format!("{n} ({v:.3} ns/gas)"))
    };
    let title = format!(
        "Hostile programs at {gas} gas per transaction; slowest mainnet loop: {} on a warm heap, {} in a process of its own",
        name_of(slowest_mainnet),
        name_of(own_slowest)
    );
    publish(&title, &table);
}
