//! The worst shared-memory programs next to the slowest mainnet loops, in the
//! same run (issue "sound gas"): criterion times one transaction of each
//! (a fresh manager and state per transaction, made outside the timed part),
//! and the table after it gives nanoseconds per gas, the ratio to the slowest
//! mainnet loop of the run, and each program's peak RSS, measured in a process
//! of its own (this binary again, with `ADVERSARIAL_ONE=<name>`).
//!
//! `ADVERSARIAL_GAS` sets the gas of every transaction (default 16,777,216,
//! EIP-7825's cap).

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion};
use shm_benches::{
    adversarial::{hostile_programs, Side, TX_GAS_CAP},
    report::{mean_ns, publish, Table},
};
use std::process::Command;

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

/// Child mode: run one program once at `gas`, print `gas_used max_rss_kib`.
fn run_one(name: &str) {
    let Some(program) = hostile_programs().into_iter().find(|p| p.name == name) else {
        eprintln!("no program named {name}");
        std::process::exit(2);
    };
    let mut prepared = program.prepare(gas());
    let before = max_rss_kib();
    let ran = prepared.execute();
    println!("{} {} {}", ran.gas_used, before, max_rss_kib());
}

fn main() {
    if let Ok(name) = std::env::var("ADVERSARIAL_ONE") {
        run_one(&name);
        return;
    }
    let gas = gas();
    let programs = hostile_programs();
    let mut c = Criterion::default().configure_from_args();
    let mut used = std::collections::HashMap::new();
    {
        let mut group = c.benchmark_group(GROUP);
        group.sample_size(10);
        for program in &programs {
            let gas_used = program.prepare(gas).execute().gas_used;
            used.insert(program.name, gas_used);
            group.bench_function(program.name, |b| {
                b.iter_batched(
                    || program.prepare(gas),
                    |mut prepared| prepared.execute(),
                    BatchSize::PerIteration,
                )
            });
        }
        group.finish();
    }
    c.final_summary();

    let ns_per_gas = |name: &str| mean_ns(GROUP, name).map(|ns| ns / used[name].max(1) as f64);
    let slowest_mainnet = programs
        .iter()
        .filter(|p| p.side == Side::Mainnet)
        .filter_map(|p| ns_per_gas(p.name).map(|v| (p.name, v)))
        .fold(None, |worst: Option<(&str, f64)>, (name, v)| match worst {
            Some((_, w)) if w >= v => worst,
            _ => Some((name, v)),
        });
    let me = std::env::current_exe().expect("this binary");
    let mut table = Table::new([
        "program",
        "side",
        "gas used",
        "time",
        "ns/gas",
        "× slowest mainnet",
        "peak RSS (MiB, own process)",
    ]);
    for program in &programs {
        let rss = Command::new(&me)
            .env("ADVERSARIAL_ONE", program.name)
            .env("ADVERSARIAL_GAS", gas.to_string())
            .output()
            .ok()
            .and_then(|out| {
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                let fields: Vec<i64> = text
                    .split_whitespace()
                    .filter_map(|f| f.parse().ok())
                    .collect();
                (fields.len() == 3).then(|| fields[2] as f64 / 1024.0)
            });
        let per_gas = ns_per_gas(program.name);
        table.row([
            program.name.to_string(),
            format!("{:?}", program.side),
            used[program.name].to_string(),
            shm_benches::report::duration(mean_ns(GROUP, program.name)),
            per_gas.map_or("n/a".into(), |v| format!("{v:.3}")),
            match (per_gas, slowest_mainnet) {
                (Some(v), Some((_, w))) => format!("{:.3}", v / w),
                _ => "n/a".into(),
            },
            rss.map_or("n/a".into(), |r| format!("{r:.1}")),
        ]);
    }
    let title = format!(
        "Hostile programs at {gas} gas per transaction; slowest mainnet loop: {}",
        slowest_mainnet.map_or("n/a".into(), |(n, v)| format!("{n} ({v:.3} ns/gas)"))
    );
    publish(&title, &table);
}
