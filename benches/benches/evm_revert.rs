//! Revert cost at the EVM level, by region size: one transaction makes 100
//! calls to a frame that SHARED_WRITEs 32 B into each of `k` pages of a host
//! region and then REVERTs. Region 64 KiB vs 1 MiB vs 64 MiB (the `production`
//! preset's largest), `k` = 1 and 8: the time must not grow with region size.

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use alloy_primitives::U256;
use criterion::{BatchSize, Criterion};
use revm::{
    bytecode::Bytecode,
    database::{BenchmarkDB, BENCH_TARGET},
    ExecuteEvm,
};
use shm_benches::{
    bench_tx, production_manager,
    report::{duration, mean_ns, publish, ratio, Table},
    shm_evm, BENCH_GAS_LIMIT,
};
use shm_evm::asm::assemble;
use shm_manager::RegionRequest;
use shm_primitives::MapOptions;
use std::hint::black_box;

const GROUP: &str = "evm_frame_revert";
const CALLS: u64 = 100;
const SIZES: [(u64, &str); 3] = [(64 << 10, "64KiB"), (1 << 20, "1MiB"), (64 << 20, "64MiB")];
const PAGES: [u64; 2] = [1, 8];

/// Calldata `[h, k, inner]`: the outer frame calls itself `CALLS` times with
/// `inner = 1`; the inner frame writes page `k-1` … page 0 and reverts.
fn program() -> revm::primitives::Bytes {
    assemble(&format!(
        "PUSH 0x40 CALLDATALOAD PUSH @inner JUMPI
         PUSH0 CALLDATALOAD PUSH0 MSTORE
         PUSH 0x20 CALLDATALOAD PUSH 0x20 MSTORE
         PUSH 1 PUSH 0x40 MSTORE
         PUSH {CALLS}
         outer:
         JUMPDEST
         PUSH0 PUSH0 PUSH 0x60 PUSH0 PUSH0 ADDRESS GAS CALL POP
         PUSH 1 SWAP1 SUB DUP1 PUSH @outer JUMPI
         STOP
         inner:
         JUMPDEST
         PUSH 0xab PUSH0 MSTORE8
         PUSH 0x20 CALLDATALOAD
         pages:
         JUMPDEST
         PUSH0 PUSH 32 DUP3 PUSH 1 SWAP1 SUB PUSH 12 SHL PUSH0 CALLDATALOAD SHARED_WRITE POP
         PUSH 1 SWAP1 SUB DUP1 PUSH @pages JUMPI
         PUSH0 PUSH0 REVERT"
    ))
    .expect("the program assembles")
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let manager = production_manager();
    let code = Bytecode::new_raw(program());
    let mut group = c.benchmark_group(GROUP);
    for (size, size_name) in SIZES {
        let handle = manager
            .create_region(RegionRequest::new(size).owner(BENCH_TARGET))
            .expect("a host region");
        manager
            .map_shared_region(handle, BENCH_TARGET, MapOptions::empty())
            .expect("a mapping");
        for k in PAGES {
            let mut data = handle.to_u256().to_be_bytes::<32>().to_vec();
            data.extend_from_slice(&U256::from(k).to_be_bytes::<32>());
            data.extend_from_slice(&[0; 32]);
            let tx = bench_tx(data.into(), BENCH_GAS_LIMIT);
            let mut evm = shm_evm(&manager, BenchmarkDB::new_bytecode(code.clone()));

            // The writes happen, and the reverts undo them.
            let writes = manager.metrics_snapshot().writes;
            let result = evm.transact(tx.clone()).expect("runs").result;
            assert!(result.is_success(), "{result:?}");
            assert_eq!(manager.metrics_snapshot().writes - writes, CALLS * k);
            let mut first = [0xff; 32];
            manager
                .read_region(handle, 0, &mut first)
                .expect("a host read");
            assert_eq!(first, [0; 32], "the reverts restored page 0");

            group.bench_function(format!("{size_name}_k{k}"), |b| {
                b.iter_batched(
                    || tx.clone(),
                    |tx| black_box(evm.transact(tx).expect("runs")),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
    c.final_summary();

    let mut table = Table::new([
        "k (pages written, then reverted)",
        "64 KiB",
        "1 MiB",
        "64 MiB",
        "1 MiB / 64 KiB",
        "64 MiB / 64 KiB",
    ]);
    for k in PAGES {
        let t: Vec<Option<f64>> = SIZES
            .iter()
            .map(|(_, name)| mean_ns(GROUP, &format!("{name}_k{k}")))
            .collect();
        table.row([
            k.to_string(),
            duration(t[0]),
            duration(t[1]),
            duration(t[2]),
            ratio(t[1], t[0]),
            ratio(t[2], t[0]),
        ]);
    }
    publish(
        &format!("EVM-level frame revert: one transaction of {CALLS} reverting calls"),
        &table,
    );
}
