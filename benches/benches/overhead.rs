//! Hot-loop overhead of shared memory on programs that never use it: stock revm
//! vs `HookedJournal<_, ()>` vs shared memory on (`production`) but unused, in
//! the same run, on snailtracer, analysis, burntpix and rows of revm's
//! gas-cost-estimator sample. Every variant must report the same result (and
//! the published gas where there is one). Each EVM is built once and runs
//! `transact` again and again over the same state, as revm's own benches do.
//!
//! After criterion, two tables: criterion's means with ratios, and an
//! interleaved best-of-N check (variants alternate round by round, so a load
//! change on the machine hits all three alike).

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use criterion::{measurement::WallTime, BatchSize, BenchmarkGroup, Criterion};
use revm::{
    context::{result::ExecutionResult, TxEnv},
    Database, ExecuteEvm,
};
use shm_benches::{
    analysis, burntpix, estimator, hooked_evm, or_exit, production_manager,
    report::{duration, mean_ns, publish, ratio, Table},
    shm_evm, snailtracer, stock_evm, Workload,
};
use std::{
    fmt::Debug,
    hint::black_box,
    time::{Duration, Instant},
};

const VARIANTS: [&str; 3] = ["stock", "hooked_unit", "shm_unused"];
const ESTIMATOR_ROWS: [&str; 6] = [
    "MSTORE_50",
    "MCOPY_50",
    "CALL_50",
    "SSTORE_50",
    "SLOAD_50",
    "KECCAK256_50",
];

fn run_once<E>(evm: &mut E, tx: &TxEnv) -> ExecutionResult
where
    E: ExecuteEvm<Tx = TxEnv, ExecutionResult = ExecutionResult>,
    E::Error: Debug,
{
    evm.transact(tx.clone())
        .expect("the transaction runs")
        .result
}

fn bench_variant<E>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, evm: &mut E, tx: &TxEnv)
where
    E: ExecuteEvm<Tx = TxEnv, ExecutionResult = ExecutionResult>,
    E::Error: Debug,
{
    group.bench_function(name, |b| {
        b.iter_batched(
            || tx.clone(),
            |tx| black_box(evm.transact(tx).expect("the transaction runs")),
            BatchSize::SmallInput,
        )
    });
}

/// Best and median time of one transaction per variant, the variants taking
/// turns sample by sample.
fn interleaved(runs: &mut [&mut dyn FnMut()]) -> Vec<(f64, f64)> {
    // Size a sample to ~2 ms so that short transactions are timed in batches.
    let start = Instant::now();
    (runs[0])();
    let one = start.elapsed().max(Duration::from_nanos(100));
    let batch = (Duration::from_millis(2).as_nanos() / one.as_nanos()).max(1) as u32;
    let rounds = if one > Duration::from_millis(20) {
        20
    } else {
        60
    };
    let mut samples = vec![Vec::new(); runs.len()];
    for _ in 0..rounds {
        for (run, samples) in runs.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            for _ in 0..batch {
                run();
            }
            samples.push(start.elapsed().as_nanos() as f64 / batch as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            (s[0], s[s.len() / 2])
        })
        .collect()
}

/// Benches one workload on the three variants and returns the interleaved
/// (best, median) per variant.
fn workload<DB: Database + Clone>(
    c: &mut Criterion,
    work: Workload<DB>,
    sample_size: Option<usize>,
) -> (String, Vec<(f64, f64)>)
where
    DB::Error: Debug + Send + Sync + 'static,
{
    let manager = production_manager();
    let mut stock = stock_evm(work.db.clone());
    let mut hooked = hooked_evm(work.db.clone());
    let mut shm = shm_evm(&manager, work.db.clone());

    let reference = run_once(&mut stock, &work.tx);
    if let Some(gas) = work.expected_gas {
        assert!(reference.is_success(), "{}: {reference:?}", work.name);
        assert_eq!(reference.tx_gas_used(), gas, "{}: stock gas", work.name);
    }
    assert_eq!(
        run_once(&mut hooked, &work.tx),
        reference,
        "{}: hooked_unit",
        work.name
    );
    assert_eq!(
        run_once(&mut shm, &work.tx),
        reference,
        "{}: shm_unused",
        work.name
    );

    let mut group = c.benchmark_group(&work.name);
    if let Some(n) = sample_size {
        group.sample_size(n);
    }
    bench_variant(&mut group, VARIANTS[0], &mut stock, &work.tx);
    bench_variant(&mut group, VARIANTS[1], &mut hooked, &work.tx);
    bench_variant(&mut group, VARIANTS[2], &mut shm, &work.tx);
    group.finish();

    // The same three EVMs, taking turns.
    let tx = &work.tx;
    let best = interleaved(&mut [
        &mut || drop(black_box(stock.transact(tx.clone()))),
        &mut || drop(black_box(hooked.transact(tx.clone()))),
        &mut || drop(black_box(shm.transact(tx.clone()))),
    ]);
    (work.name, best)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut names = Vec::new();
    let mut checks = Vec::new();
    let mut add = |(name, best): (String, Vec<(f64, f64)>)| {
        names.push(name.clone());
        checks.push((name, best));
    };
    // Read every program before the first measurement, so a missing file
    // stops the run at once with its name.
    let snailtracer = or_exit(snailtracer());
    let analysis = or_exit(analysis());
    let burntpix = or_exit(burntpix());
    let rows: Vec<_> = ESTIMATOR_ROWS
        .iter()
        .map(|row| or_exit(estimator(row)))
        .collect();
    add(workload(&mut c, snailtracer, Some(20)));
    add(workload(&mut c, analysis, None));
    add(workload(&mut c, burntpix, Some(10)));
    for row in rows {
        add(workload(&mut c, row, None));
    }
    c.final_summary();

    let mut means = Table::new([
        "workload",
        "stock",
        "hooked_unit",
        "shm_unused",
        "hooked_unit / stock",
        "shm_unused / stock",
    ]);
    for name in &names {
        let t: Vec<Option<f64>> = VARIANTS.iter().map(|v| mean_ns(name, v)).collect();
        means.row([
            name.clone(),
            duration(t[0]),
            duration(t[1]),
            duration(t[2]),
            ratio(t[1], t[0]),
            ratio(t[2], t[0]),
        ]);
    }
    publish("Hot-loop overhead: criterion means", &means);

    let mut best = Table::new([
        "workload",
        "stock best",
        "hooked_unit best",
        "shm_unused best",
        "hooked/stock best (median)",
        "shm/stock best (median)",
    ]);
    for (name, v) in &checks {
        best.row([
            name.clone(),
            duration(Some(v[0].0)),
            duration(Some(v[1].0)),
            duration(Some(v[2].0)),
            format!(
                "{} ({})",
                ratio(Some(v[1].0), Some(v[0].0)),
                ratio(Some(v[1].1), Some(v[0].1))
            ),
            format!(
                "{} ({})",
                ratio(Some(v[2].0), Some(v[0].0)),
                ratio(Some(v[2].1), Some(v[0].1))
            ),
        ]);
    }
    publish("Hot-loop overhead: interleaved best of N", &best);
}
