//! Cost of one operation: shared-memory instructions next to the mainnet
//! opcodes they are priced against, each as a loop of 1,000 runs in one
//! transaction on a warm region. The table after criterion subtracts the empty
//! loop of the same family (same prologue and calldata) from both time and gas:
//! ns/op and gas/op, operand pushes included, and ns/gas.

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion};
use revm::{
    bytecode::Bytecode,
    context::TxEnv,
    database::{BenchmarkDB, BENCH_TARGET},
    ExecuteEvm,
};
use shm_benches::{
    bench_tx, gas_spent, production_manager,
    programs::{per_op_programs, Family, LoopProgram, ITERATIONS, PAGE_WALK_REGION, SMALL_REGION},
    report::{mean_ns, publish, Table},
    shm_evm, BENCH_GAS_LIMIT,
};
use shm_manager::{RegionRequest, SharedMemoryConfig, SharedMemoryManager};
use shm_primitives::{MapOptions, RegionHandle};
use std::{collections::HashMap, hint::black_box, sync::Arc};

const GROUP: &str = "per_op";

/// A host region owned by and mapped to the bench target.
fn host_region(manager: &SharedMemoryManager, size: u64) -> RegionHandle {
    let handle = manager
        .create_region(RegionRequest::new(size).owner(BENCH_TARGET))
        .expect("a host region");
    manager
        .map_shared_region(handle, BENCH_TARGET, MapOptions::empty())
        .expect("a mapping");
    handle
}

struct Prepared {
    program: LoopProgram,
    manager: Arc<SharedMemoryManager>,
    tx: TxEnv,
    gas: u64,
}

fn main() {
    let mut c = Criterion::default().configure_from_args();

    // One manager for the region programs (its host regions are made once and
    // live across transactions), one with no regions for ALLOC/FREE.
    let regions = production_manager();
    let small = host_region(&regions, SMALL_REGION);
    let big = host_region(&regions, PAGE_WALK_REGION);
    let cold: Vec<RegionHandle> = (0..ITERATIONS).map(|_| host_region(&regions, 32)).collect();
    let allocs = SharedMemoryManager::new(SharedMemoryConfig {
        pool_blocks: [1100, 1100, 64, 16],
        ..SharedMemoryConfig::production()
    })
    .expect("a valid configuration");

    let mut prepared = Vec::new();
    for program in per_op_programs() {
        let manager = match program.family {
            Family::Alloc => allocs.clone(),
            Family::Plain | Family::Cold => regions.clone(),
        };
        let tx = bench_tx(program.family.calldata(small, big, &cold), BENCH_GAS_LIMIT);
        let code = program.code().expect("the program assembles");
        let mut evm = shm_evm(&manager, BenchmarkDB::new_bytecode(Bytecode::new_raw(code)));
        let result = evm.transact(tx.clone()).expect("runs").result;
        assert!(result.is_success(), "{}: {result:?}", program.name);
        let gas = gas_spent(&result);
        prepared.push(Prepared {
            program,
            manager,
            tx,
            gas,
        });
    }

    let mut group = c.benchmark_group(GROUP);
    for p in &prepared {
        let code = p.program.code().expect("the program assembles");
        let mut evm = shm_evm(
            &p.manager,
            BenchmarkDB::new_bytecode(Bytecode::new_raw(code)),
        );
        group.bench_function(p.program.name, |b| {
            b.iter_batched(
                || p.tx.clone(),
                |tx| black_box(evm.transact(tx).expect("runs")),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    c.final_summary();

    // Empty loop per family.
    let baseline: HashMap<&str, (Option<f64>, u64)> = prepared
        .iter()
        .filter(|p| p.program.is_empty_loop())
        .map(|p| {
            (
                family_key(p.program.family),
                (mean_ns(GROUP, p.program.name), p.gas),
            )
        })
        .collect();
    let per_iteration = |p: &Prepared| {
        let (base_ns, base_gas) = baseline[family_key(p.program.family)];
        let ns = mean_ns(GROUP, p.program.name)
            .zip(base_ns)
            .map(|(t, b)| (t - b) / ITERATIONS as f64);
        let gas = (p.gas as f64 - base_gas as f64) / ITERATIONS as f64;
        (ns, gas)
    };

    let mut table = Table::new(["operation", "gas/op", "ns/op", "ns/gas"]);
    let mut rows: Vec<(&str, Option<f64>, f64)> = Vec::new();
    for p in prepared.iter().filter(|p| !p.program.is_empty_loop()) {
        let (ns, gas) = per_iteration(p);
        rows.push((p.program.label, ns, gas));
    }
    // SHARED_FREE: the ALLOC+FREE loop minus the ALLOC loop.
    let find = |name: &str| prepared.iter().find(|p| p.program.name == name);
    if let (Some(pair), Some(alloc)) = (find("SHARED_ALLOC_FREE_32B"), find("SHARED_ALLOC_32B")) {
        let (pair_ns, pair_gas) = per_iteration(pair);
        let (alloc_ns, alloc_gas) = per_iteration(alloc);
        rows.push((
            "SHARED_FREE (ALLOC+FREE minus ALLOC)",
            pair_ns.zip(alloc_ns).map(|(a, b)| a - b),
            pair_gas - alloc_gas,
        ));
    }
    for (label, ns, gas) in rows {
        table.row([
            label.to_string(),
            format!("{gas:.1}"),
            ns.map_or("n/a".into(), |ns| format!("{ns:.1}")),
            ns.map_or("n/a".into(), |ns| format!("{:.3}", ns / gas)),
        ]);
    }
    let mut base = Table::new(["empty loop", "gas/iteration", "ns/iteration"]);
    for p in prepared.iter().filter(|p| p.program.is_empty_loop()) {
        let (ns, gas) = baseline[family_key(p.program.family)];
        base.row([
            p.program.label.to_string(),
            format!("{:.1}", gas as f64 / ITERATIONS as f64),
            ns.map_or("n/a".into(), |ns| format!("{:.2}", ns / ITERATIONS as f64)),
        ]);
    }
    publish(
        "Per-op cost (empty loop of the same family subtracted)",
        &table,
    );
    publish(
        "Empty loops (whole transaction / 1,000, prologue included)",
        &base,
    );
}

fn family_key(family: Family) -> &'static str {
    match family {
        Family::Plain => "plain",
        Family::Cold => "cold",
        Family::Alloc => "alloc",
    }
}
