//! `evm run`: execute bytecode once (or repeatedly with `--bench`) over an in-memory state.

use crate::{
    alloc_counter,
    input::{parse_address, parse_hex, parse_u128, parse_u256, parse_u64, read_text, InputError},
    output, ExitCode, TraceArgs,
};
use alloy_primitives::Bytes;
use clap::Args;
use shm_evm::{
    execute, execute_shared, Prestate, RepeatRunner, RunConfig, RunReport, RunStatus, Trace,
};
use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
use shm_opcodes::GasSchedule;
use std::{io::Write, path::PathBuf, time::Instant};

/// The most runs `--bench-runs` and `--repeat` take (each run's time is kept).
const MAX_RUNS: usize = 1_000_000;

/// Arguments of `evm run`.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Runtime code in hex (`0x` optional).
    #[arg(value_name = "CODE", conflicts_with_all = ["code_flag", "codefile"])]
    code: Option<String>,
    /// Runtime code in hex (same as the positional CODE).
    #[arg(long = "code", value_name = "HEX", conflicts_with = "codefile")]
    code_flag: Option<String>,
    /// File holding the code in hex (`-` reads standard input); whitespace is ignored.
    #[arg(long, value_name = "PATH", conflicts_with = "asm")]
    codefile: Option<PathBuf>,
    /// File holding the code in the project's tiny assembly (see `examples/*.easm`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["code", "code_flag"])]
    asm: Option<PathBuf>,
    /// Calldata in hex.
    #[arg(long, value_name = "HEX", conflicts_with = "inputfile")]
    input: Option<String>,
    /// File holding the calldata in hex (`-` reads standard input).
    #[arg(long, value_name = "PATH")]
    inputfile: Option<PathBuf>,
    /// Gas limit (decimal or 0x hex); EIP-7825's per-transaction cap is lifted.
    #[arg(long, default_value = "10000000000")]
    gas: String,
    /// Wei sent with the call (decimal or 0x hex).
    #[arg(long, default_value = "0")]
    value: String,
    /// Gas price in wei (decimal or 0x hex); the block's base fee is 0, so the sender
    /// pays gas used × price to the block's beneficiary.
    #[arg(long, value_name = "WEI", default_value = "0")]
    price: String,
    /// Run the code as initcode in a contract-creation transaction (the input, if any,
    /// is appended to it) and print the deployed code and the new address.
    #[arg(long, conflicts_with = "receiver")]
    create: bool,
    /// Transaction sender.
    #[arg(long, default_value_t = shm_evm::DEFAULT_SENDER.to_string())]
    sender: String,
    /// Call target, where the code is installed.
    #[arg(long, default_value_t = shm_evm::DEFAULT_RECEIVER.to_string())]
    receiver: String,
    /// Fork rules (Frontier … Osaka, Amsterdam).
    #[arg(long, default_value = "Osaka")]
    fork: String,
    /// Accounts to install first, as a state-test `pre` alloc (JSON file).
    #[arg(long, value_name = "FILE")]
    prestate: Option<PathBuf>,
    /// Turn shared memory on with a preset (0xE0–0xE4 become SHARED_ALLOC … SHARED_WRITE).
    #[arg(long, value_name = "PRESET", num_args = 0..=1, default_missing_value = "production")]
    shm: Option<String>,
    /// Print shared-memory statistics and counters after the result (needs --shm).
    #[arg(long)]
    shm_stats: bool,
    /// Keep regions in the mapped namespace NAME (a directory under /dev/shm, or
    /// --shm-root): persistent regions survive the process, and every process
    /// attached to NAME sees the same regions under the same handles. Turns
    /// shared memory on with the production preset unless --shm names another.
    #[arg(long, value_name = "NAME")]
    shm_namespace: Option<String>,
    /// Root directory of namespaces (default: /dev/shm).
    #[arg(long, value_name = "DIR", requires = "shm_namespace")]
    shm_root: Option<PathBuf>,
    /// Group access to the namespace (default: private to its owner): see
    /// `namespace_group_access` and docs/ipc.md.
    #[arg(long, requires = "shm_namespace")]
    shm_group: bool,
    /// Longest wait for a region's lock, in milliseconds (default: the preset's).
    #[arg(long, value_name = "MS")]
    shm_lock_wait_ms: Option<u64>,
    /// Run the transaction N times over the same shared memory (each over a fresh
    /// state); prints the last result and how many runs did not succeed.
    #[arg(long, value_name = "N", default_value_t = 1, conflicts_with = "bench")]
    repeat: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    trace: TraceArgs,
    /// Print the post state (every account) after the result.
    #[arg(long)]
    dump: bool,
    /// Run repeatedly; check that output and gas are the same every time and print
    /// gas used, time per run (median and spread) and allocations per run.
    #[arg(long)]
    bench: bool,
    /// Number of timed runs for `--bench` (after one warm-up run; at least 1).
    #[arg(long, default_value_t = 20, requires = "bench")]
    bench_runs: usize,
}

impl RunArgs {
    /// Where a run's trace goes: standard error, buffered.
    fn trace_sink(&self) -> Option<std::io::BufWriter<std::io::Stderr>> {
        self.trace
            .enabled()
            .then(|| std::io::BufWriter::new(std::io::stderr()))
    }

    fn config(&self) -> Result<RunConfig, InputError> {
        let code = match (&self.code, &self.code_flag, &self.codefile, &self.asm) {
            (Some(code), ..) | (None, Some(code), ..) => parse_hex("code", code)?,
            (None, None, Some(path), _) => parse_hex("codefile", &read_text("codefile", path)?)?,
            (None, None, None, Some(path)) => shm_evm::asm::assemble(&read_text("asm", path)?)
                .map_err(|e| InputError::Other(format!("asm: {}: {e}", path.display())))?,
            (None, None, None, None) => {
                return Err(InputError::Other(
                    "no code given: pass CODE, --code HEX, --codefile PATH or --asm PATH".into(),
                ))
            }
        };
        let input = match (&self.input, &self.inputfile) {
            (Some(hex), _) => parse_hex("input", hex)?,
            (None, Some(path)) => parse_hex("inputfile", &read_text("inputfile", path)?)?,
            (None, None) => Bytes::new(),
        };
        let spec = self.fork.parse().map_err(|_| {
            InputError::Other(format!(
                "fork: unknown fork `{}` (expected one of: Frontier, Homestead, Tangerine, Spurious, Byzantium, \
                 Petersburg, Istanbul, Berlin, London, Merge, Shanghai, Cancun, Prague, Osaka, Amsterdam)",
                self.fork
            ))
        })?;
        let prestate = match &self.prestate {
            Some(path) => {
                Prestate::from_file(path).map_err(|e| InputError::Other(e.to_string()))?
            }
            None => Prestate::default(),
        };
        let preset = match (&self.shm, &self.shm_namespace) {
            (None, None) => None,
            (Some(preset), _) => Some(preset.as_str()),
            (None, Some(_)) => Some("production"),
        };
        let shared_memory = match preset {
            None => None,
            Some(preset) => {
                let mut config: SharedMemoryConfig = preset
                    .parse()
                    .map_err(|e| InputError::Other(format!("shm: {e}")))?;
                if let Some(namespace) = &self.shm_namespace {
                    config = config.with_namespace(namespace);
                    config.namespace_root = self.shm_root.clone();
                    config.namespace_group_access = self.shm_group;
                }
                if let Some(ms) = self.shm_lock_wait_ms {
                    config.lock_wait = std::time::Duration::from_millis(ms);
                }
                Some(config)
            }
        };
        if self.bench && self.bench_runs == 0 {
            return Err(InputError::Other(
                "--bench-runs: at least one timed run is needed".into(),
            ));
        }
        if self.bench_runs > MAX_RUNS || self.repeat > MAX_RUNS as u64 {
            return Err(InputError::Other(format!(
                "--bench-runs and --repeat: at most {MAX_RUNS} runs"
            )));
        }
        if self.shm_stats && shared_memory.is_none() {
            return Err(InputError::Other(
                "--shm-stats needs --shm or --shm-namespace".into(),
            ));
        }
        Ok(RunConfig {
            shared_memory,
            code,
            input,
            gas_limit: parse_u64("gas", &self.gas)?,
            value: parse_u256("value", &self.value)?,
            create: self.create,
            gas_price: parse_u128("price", &self.price)?,
            sender: parse_address("sender", &self.sender)?,
            receiver: parse_address("receiver", &self.receiver)?,
            spec,
            prestate,
        })
    }
}

/// Runs `evm run`.
pub(crate) fn run(args: RunArgs) -> ExitCode {
    let config = match args.config() {
        Ok(config) => config,
        Err(e) => return ExitCode::usage(e),
    };
    if args.bench {
        return bench(&config, &args);
    }
    if let Some(shm) = &config.shared_memory {
        if shm.is_mapped() || args.repeat > 1 {
            return run_shared(&config, shm, &args);
        }
    } else if args.repeat > 1 {
        return ExitCode::usage("--repeat needs --shm or --shm-namespace");
    }
    let mut sink = args.trace_sink();
    let trace = sink
        .as_mut()
        .map(|sink| Trace::new(sink as &mut dyn Write, args.trace.options()));
    let outcome = match execute(&config, trace) {
        Ok(outcome) => outcome,
        Err(e) => return ExitCode::rejected(e),
    };
    let report = RunReport::new(&outcome, args.dump, args.shm_stats);
    if let Err(error) = print_report(&report, args.json) {
        return output::stdout_failed(error);
    }
    match outcome.trace_error {
        Some(error) => output::trace_failed(error),
        None => ExitCode::of_status(report.status),
    }
}

/// The result as text or one JSON object.
fn print_report(report: &RunReport, json: bool) -> std::io::Result<()> {
    if json {
        output::println(&serde_json::to_string(report).map_err(std::io::Error::other)?)
    } else {
        output::print(&report.to_string())
    }
}

/// Runs over one manager made here (so a namespace error is a usage error, and
/// `--repeat` reuses the manager): each run is one transaction, which takes and
/// releases its regions' locks.
fn run_shared(config: &RunConfig, shm: &SharedMemoryConfig, args: &RunArgs) -> ExitCode {
    let manager = match SharedMemoryManager::new(shm.clone()) {
        Ok(manager) => manager,
        Err(e) => return ExitCode::usage(format!("shm: {e}")),
    };
    let mut sink = args.trace_sink();
    let mut unsuccessful = 0u64;
    let mut worst = RunStatus::Success;
    let mut last = None;
    for _ in 0..args.repeat.max(1) {
        let trace = sink
            .as_mut()
            .map(|sink| Trace::new(sink as &mut dyn Write, args.trace.options()));
        let outcome = match execute_shared(config, &manager, GasSchedule::default(), trace) {
            Ok(outcome) => outcome,
            Err(e) => return ExitCode::rejected(e),
        };
        if let Some(error) = outcome.trace_error {
            return output::trace_failed(error);
        }
        let report = RunReport::new(&outcome, args.dump, args.shm_stats);
        if report.status != RunStatus::Success {
            unsuccessful += 1;
            if worst == RunStatus::Success || report.status == RunStatus::Halt {
                worst = report.status;
            }
            if let Some(cause) = &report.shared_memory_halt {
                output::eprintln(&format!("run {unsuccessful}: {cause}"));
            }
        }
        last = Some(report);
    }
    let Some(report) = last else {
        return ExitCode::SUCCESS;
    };
    let mut printed = print_report(&report, args.json);
    if printed.is_ok() && args.repeat > 1 {
        printed = output::println(&format!(
            "runs: {}, unsuccessful: {unsuccessful}",
            args.repeat
        ));
    }
    match printed {
        Ok(()) => ExitCode::of_status(worst),
        Err(error) => output::stdout_failed(error),
    }
}

fn bench(config: &RunConfig, args: &RunArgs) -> ExitCode {
    alloc_counter::start();
    let mut runner = match RepeatRunner::new(config) {
        Ok(runner) => runner,
        Err(e) => return ExitCode::rejected(e),
    };
    let mut reference: Option<RunReport> = None;
    let mut times = Vec::with_capacity(args.bench_runs);
    let mut allocations = (0u64, 0u64);
    // One untimed warm-up run, then the timed ones.
    for run in 0..=args.bench_runs {
        if let Err(e) = runner.prepare() {
            return ExitCode::rejected(e);
        }
        let (allocs_before, bytes_before) = alloc_counter::counts();
        let start = Instant::now();
        let result = runner.run();
        let elapsed = start.elapsed();
        let (allocs_after, bytes_after) = alloc_counter::counts();
        let result = match result {
            Ok(out) => out,
            Err(e) => return ExitCode::rejected(e),
        };
        let report = RunReport::from_result(&result);
        match &reference {
            None => reference = Some(report),
            Some(first) => {
                if first.output != report.output
                    || first.gas_used != report.gas_used
                    || first.status != report.status
                {
                    output::eprintln(&format!(
                        "error: run {run} differs from the first: gas {} vs {}, output {} vs {}",
                        report.gas_used, first.gas_used, report.output, first.output
                    ));
                    return ExitCode::NONDETERMINISTIC;
                }
            }
        }
        if run > 0 {
            times.push(elapsed.as_nanos() as u64);
            allocations = (allocs_after - allocs_before, bytes_after - bytes_before);
        }
    }
    let Some(report) = reference else {
        return ExitCode::usage("--bench-runs: at least one timed run is needed");
    };
    times.sort_unstable();
    let (Some(&min), Some(&max)) = (times.first(), times.last()) else {
        return ExitCode::usage("--bench-runs: at least one timed run is needed");
    };
    let median = times[times.len() / 2];
    let printed = if args.json {
        let json = serde_json::json!({
            "result": report,
            "runs": times.len(),
            "median_ns": median,
            "min_ns": min,
            "max_ns": max,
            "allocations_per_run": allocations.0,
            "allocated_bytes_per_run": allocations.1,
        });
        output::println(&json.to_string())
    } else {
        output::print(&format!(
            "{report}execution time: median {} (min {}, max {}, {} runs)\nallocations: {} per run ({} bytes)\n",
            human(median),
            human(min),
            human(max),
            times.len(),
            allocations.0,
            allocations.1
        ))
    };
    match printed {
        Ok(()) => ExitCode::of_status(report.status),
        Err(error) => output::stdout_failed(error),
    }
}

fn human(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.2} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

impl ExitCode {
    fn of_status(status: RunStatus) -> Self {
        match status {
            RunStatus::Success => Self::SUCCESS,
            RunStatus::Revert => Self::REVERT,
            RunStatus::Halt => Self::HALT,
        }
    }
}
