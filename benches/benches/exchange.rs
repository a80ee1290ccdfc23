//! Where regions win: the same payload moved as calldata, through transient
//! storage, through storage and through a region, at 32 B, 1 KiB, 32 KiB and
//! 1 MiB, in four scenarios (programs and their design:
//! `benches/src/exchange.rs`). Gas and time come from the same run.
//!
//! Before any timing, every program runs once under EIP-7825's cap
//! (16,777,216 gas) with an inspector that checks each reader ended with the
//! bytes it needed. A program that fails under the cap is run again with
//! 1e9 gas — it must then succeed and check — and is reported as "does not
//! fit" with the gas it needs; it is not timed. Criterion times one
//! transaction of each program that fits (the same EVM and state each time,
//! nothing committed), and the tables after it give ratios against the
//! scenario's calldata variant.
//!
//! `EXCHANGE_ONE=<scenario>/<size>/<medium>` (as the tables name them, e.g.
//! `outside/1 MiB/region`) runs only that program, checked, then
//! `EXCHANGE_RUNS` (default 1) more times on one EVM, and prints its gas:
//! what `benches/exchange_instructions.sh` counts instructions of under
//! callgrind, where the load of the machine does not matter.

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion};
use revm::ExecuteEvm;
use shm_benches::{
    exchange::{
        all_exchanges, size_label, Exchange, ExchangeError, Medium, Prepared, Scenario, SIZES,
        TX_GAS_CAP, UNCAPPED_GAS,
    },
    report::{duration, mean_ns, publish, ratio, Table},
};
use std::{collections::HashMap, hint::black_box};

/// What every transaction pays before it runs (the empty transaction pays
/// more: EIP-7623's calldata floor, for its handle).
const BASE_TX_GAS: u64 = 21_000;

/// What the check found for one program.
#[derive(Clone, Copy, Debug)]
enum Fit {
    /// It fits under the cap, using this much gas.
    Fits(u64),
    /// It needs this much gas, more than the cap.
    TooBig(u64),
}

fn group(scenario: Scenario, size: u64) -> String {
    format!(
        "exchange_{}_{}",
        scenario.name(),
        size_label(size).replace(' ', "")
    )
}

fn fail(error: ExchangeError) -> ! {
    eprintln!("error: {error}");
    std::process::exit(1)
}

fn check(prepared: &Prepared) -> Fit {
    match prepared.run_checked(TX_GAS_CAP) {
        Ok(run) => Fit::Fits(run.gas_used),
        Err(ExchangeError::Failed { .. } | ExchangeError::Refused { .. }) => {
            match prepared.run_checked(UNCAPPED_GAS) {
                Ok(run) if run.gas_used > TX_GAS_CAP => Fit::TooBig(run.gas_used),
                Ok(run) => fail(ExchangeError::Bug(
                    prepared.exchange.to_string(),
                    format!(
                        "failed under the cap but used only {} gas without it",
                        run.gas_used
                    ),
                )),
                Err(error) => fail(error),
            }
        }
        Err(error) => fail(error),
    }
}

/// Child mode: one program, checked, then run `EXCHANGE_RUNS` times.
fn run_one(name: &str) {
    let Some(exchange) = all_exchanges().into_iter().find(|e| e.to_string() == name) else {
        eprintln!("error: no exchange program named {name:?}");
        std::process::exit(2);
    };
    let runs: u64 = match std::env::var("EXCHANGE_RUNS") {
        Ok(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("error: EXCHANGE_RUNS={text:?} is not a count");
            std::process::exit(2)
        }),
        Err(_) => 1,
    };
    let prepared = exchange.prepare().unwrap_or_else(|e| fail(e));
    let gas_limit = match check(&prepared) {
        Fit::Fits(_) => TX_GAS_CAP,
        Fit::TooBig(_) => UNCAPPED_GAS,
    };
    let mut evm = prepared.evm();
    let tx = prepared.tx(gas_limit);
    let mut gas = 0;
    for _ in 0..runs {
        gas = black_box(evm.transact(tx.clone()).expect("runs"))
            .result
            .tx_gas_used();
    }
    println!("{name}: {runs} runs, {gas} gas each");
}

fn main() {
    if let Ok(name) = std::env::var("EXCHANGE_ONE") {
        run_one(&name);
        return;
    }
    let mut c = Criterion::default().configure_from_args();

    let mut prepared: Vec<(Prepared, Fit)> = Vec::new();
    for exchange in all_exchanges() {
        let p = exchange.prepare().unwrap_or_else(|e| fail(e));
        let fit = check(&p);
        prepared.push((p, fit));
    }
    eprintln!(
        "exchange: all {} programs checked (every reader held its bytes)",
        prepared.len()
    );

    for scenario in Scenario::ALL {
        for size in SIZES {
            let mut g = c.benchmark_group(group(scenario, size));
            if size >= 32 << 10 {
                g.sample_size(20);
            }
            for (p, fit) in &prepared {
                let e = p.exchange;
                if e.scenario != scenario || e.size != size || !matches!(fit, Fit::Fits(_)) {
                    continue;
                }
                let mut evm = p.evm();
                let tx = p.tx(TX_GAS_CAP);
                g.bench_function(e.medium.name(), |b| {
                    b.iter_batched(
                        || tx.clone(),
                        |tx| black_box(evm.transact(tx).expect("runs")),
                        BatchSize::SmallInput,
                    )
                });
            }
            g.finish();
        }
    }
    c.final_summary();

    let fits: HashMap<Exchange, Fit> = prepared.iter().map(|(p, f)| (p.exchange, *f)).collect();
    for scenario in Scenario::ALL {
        publish(&title(scenario), &table(scenario, &fits));
    }
    publish("Exchange targets (issue 9)", &targets(&fits));
}

fn title(scenario: Scenario) -> String {
    format!(
        "Exchange {} — gas and time per transaction; ratios against {}",
        scenario.label(),
        match scenario.baseline() {
            Medium::CalldataWords => "the needed words sent as calldata",
            _ => "calldata",
        }
    )
}

fn gas_of(fit: Option<&Fit>) -> Option<u64> {
    match fit {
        Some(Fit::Fits(gas)) => Some(*gas),
        _ => None,
    }
}

fn time_of(e: Exchange) -> Option<f64> {
    mean_ns(&group(e.scenario, e.size), e.medium.name())
}

fn table(scenario: Scenario, fits: &HashMap<Exchange, Fit>) -> Table {
    let outside = scenario == Scenario::Outside;
    let mut header = vec!["size", "medium", "gas", "gas ÷ base", "time", "time ÷ base"];
    if outside {
        header.extend(["gas − 21,000", "time − empty tx"]);
    }
    let mut table = Table::new(header);
    for size in SIZES {
        let base = Exchange::new(scenario, scenario.baseline(), size);
        let empty = Exchange::new(scenario, Medium::Empty, size);
        let (base_gas, base_ns) = (gas_of(fits.get(&base)), time_of(base));
        let empty_ns = time_of(empty);
        for &medium in scenario.media() {
            let e = Exchange::new(scenario, medium, size);
            let mut row = vec![size_label(size), medium.name().to_string()];
            match fits.get(&e) {
                Some(Fit::Fits(gas)) => {
                    let ns = time_of(e);
                    row.extend([
                        gas.to_string(),
                        ratio(Some(*gas as f64), base_gas.map(|g| g as f64)),
                        duration(ns),
                        ratio(ns, base_ns),
                    ]);
                    if outside {
                        row.push(gas.saturating_sub(BASE_TX_GAS).to_string());
                        row.push(duration(ns.zip(empty_ns).map(|(t, e)| t - e)));
                    }
                }
                Some(Fit::TooBig(gas)) => {
                    row.push(format!("does not fit: needs {gas}"));
                    row.extend(["—"; 3].map(String::from));
                    if outside {
                        row.extend(["—"; 2].map(String::from));
                    }
                }
                None => continue,
            }
            table.row(row);
        }
    }
    table
}

/// The targets, as ratios of this run.
fn targets(fits: &HashMap<Exchange, Fit>) -> Table {
    let gas = |s, m, size| gas_of(fits.get(&Exchange::new(s, m, size))).map(|g| g as f64);
    let ns = |s, m, size| time_of(Exchange::new(s, m, size));
    let above = |v: Option<f64>, e: Option<f64>| v.zip(e).map(|(v, e)| v - e);
    let mib = 1 << 20;
    let d = Scenario::Outside;
    let base_gas = Some(BASE_TX_GAS as f64);
    let empty_ns = ns(d, Medium::Empty, mib);
    let mut table = Table::new(["target", "measured", "goal"]);
    table.row([
        "(d) 1 MiB, 32 words: storage gas ÷ region gas (whole transaction)".to_string(),
        ratio(gas(d, Medium::Storage, mib), gas(d, Medium::Region, mib)),
        "≥ 10".into(),
    ]);
    table.row([
        "(d) the same, above the 21,000 every transaction pays".to_string(),
        ratio(
            above(gas(d, Medium::Storage, mib), base_gas),
            above(gas(d, Medium::Region, mib), base_gas),
        ),
        "≥ 10".into(),
    ]);
    table.row([
        "(d) storage time ÷ region time (whole transaction)".to_string(),
        ratio(ns(d, Medium::Storage, mib), ns(d, Medium::Region, mib)),
        "≥ 10".into(),
    ]);
    table.row([
        "(d) the same, above the time of an empty transaction".to_string(),
        ratio(
            above(ns(d, Medium::Storage, mib), empty_ns),
            above(ns(d, Medium::Region, mib), empty_ns),
        ),
        "≥ 10".into(),
    ]);
    table.row([
        "(d) the 32 words as calldata, gas ÷ region gas".to_string(),
        ratio(
            gas(d, Medium::CalldataWords, mib),
            gas(d, Medium::Region, mib),
        ),
        "> 1".into(),
    ]);
    for size in [32 << 10, mib] {
        table.row([
            format!(
                "(c) fan-out {}: calldata time ÷ region time",
                size_label(size)
            ),
            ratio(
                ns(Scenario::FanOut, Medium::Calldata, size),
                ns(Scenario::FanOut, Medium::Region, size),
            ),
            "≥ 2".into(),
        ]);
    }
    for size in SIZES {
        let a = Scenario::Handoff;
        table.row([
            format!(
                "(a) handoff {}: region ÷ calldata, time / gas",
                size_label(size)
            ),
            format!(
                "{} / {}",
                ratio(ns(a, Medium::Region, size), ns(a, Medium::Calldata, size)),
                ratio(gas(a, Medium::Region, size), gas(a, Medium::Calldata, size)),
            ),
            "≤ 1 / ≤ 1.5".into(),
        ]);
    }
    table
}
