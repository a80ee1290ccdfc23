//! Runs one workload's transaction N times on one variant of the overhead bench
//! (stock revm, `HookedJournal<_, ()>`, or shared memory on but unused), for
//! counting instructions per transaction under callgrind, where criterion's own
//! loop would mix the three variants:
//!
//! ```sh
//! cargo build --profile maxperf -p shm-benches --example repeat_tx
//! valgrind --tool=callgrind target/maxperf/examples/repeat_tx SSTORE_50 shm_unused 510
//! ```
//!
//! (N = 510 minus N = 10, divided by 500, is one transaction; docs/performance.md.)
//! Workloads: an estimator row (`SSTORE_50`, …), `snailtracer`, `analysis` or
//! `burntpix`.

use revm::{context::TxEnv, Database, ExecuteEvm};
use shm_benches::{
    analysis, burntpix, estimator, hooked_evm, or_exit, production_manager, shm_evm, snailtracer,
    stock_evm, Workload,
};
use std::{fmt::Debug, hint::black_box, process::ExitCode};

fn repeat<E: ExecuteEvm<Tx = TxEnv>>(evm: &mut E, tx: &TxEnv, times: u64) -> Result<(), String>
where
    E::Error: Debug,
{
    for _ in 0..times {
        black_box(evm.transact(tx.clone()).map_err(|e| format!("{e:?}"))?);
    }
    Ok(())
}

fn run<DB: Database + Clone>(work: Workload<DB>, variant: &str, times: u64) -> Result<(), String>
where
    DB::Error: Debug + Send + Sync + 'static,
{
    match variant {
        "stock" => repeat(&mut stock_evm(work.db), &work.tx, times),
        "hooked_unit" => repeat(&mut hooked_evm(work.db), &work.tx, times),
        "shm_unused" => repeat(
            &mut shm_evm(&production_manager(), work.db),
            &work.tx,
            times,
        ),
        other => Err(format!(
            "unknown variant {other:?} (stock, hooked_unit, shm_unused)"
        )),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, variant, times] = args.as_slice() else {
        eprintln!("usage: repeat_tx <workload> <stock|hooked_unit|shm_unused> <times>");
        return ExitCode::from(2);
    };
    if !["stock", "hooked_unit", "shm_unused"].contains(&variant.as_str()) {
        eprintln!("error: unknown variant {variant:?} (stock, hooked_unit, shm_unused)");
        return ExitCode::from(2);
    }
    let Ok(times) = times.parse::<u64>() else {
        eprintln!("error: <times> must be a whole number, got {times:?}");
        return ExitCode::from(2);
    };
    let result = match workload.as_str() {
        "snailtracer" => run(or_exit(snailtracer()), variant, times),
        "analysis" => run(or_exit(analysis()), variant, times),
        "burntpix" => run(or_exit(burntpix()), variant, times),
        row => run(or_exit(estimator(row)), variant, times),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
