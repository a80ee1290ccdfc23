//! The benchmark programs of `../shared/bench-data` keep their gas and output
//! exactly with shared memory on (they never use 0xE0–0xE4), under every preset.

use alloy_primitives::{address, hex, Bytes};
use shm_evm::{execute, RunConfig, RunReport};
use shm_manager::SharedMemoryConfig;

fn bench_data(file: &str) -> Bytes {
    let path = format!(
        "{}/../../shared/bench-data/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    hex::decode(text.trim()).expect("bench-data hex").into()
}

/// revm's bench set-up: code at 0xffff…ff, caller 0xeeee…ee, nonce check off, no gas cap.
fn config(code: Bytes, input: &str, gas_limit: u64) -> RunConfig {
    let mut config = RunConfig::new(code);
    config.input = hex::decode(input).unwrap().into();
    config.gas_limit = gas_limit;
    config.sender = address!("0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    config.receiver = address!("0xffffffffffffffffffffffffffffffffffffffff");
    config
}

fn check_everywhere(config: RunConfig, gas: u64, output_len: usize) {
    let mut config = config;
    let stock = RunReport::from_result(&execute(&config, None).unwrap().result);
    assert_eq!(stock.gas_used, gas, "stock revm");
    assert_eq!(stock.output.len(), output_len);
    for preset in [
        SharedMemoryConfig::production(),
        SharedMemoryConfig::development(),
        SharedMemoryConfig::testing(),
    ] {
        config.shared_memory = Some(preset);
        let on = RunReport::from_result(&execute(&config, None).unwrap().result);
        assert_eq!(on.gas_used, stock.gas_used);
        assert_eq!(on.output, stock.output);
        assert_eq!(on.status, stock.status);
    }
}

#[test]
fn snailtracer_keeps_its_gas() {
    check_everywhere(
        config(bench_data("snailtracer.hex"), "30627b7c", 1_000_000_000),
        161_088_532,
        96,
    );
}

#[test]
fn analysis_keeps_its_gas() {
    check_everywhere(
        config(bench_data("analysis.hex"), "8035F0CE", 10_000_000),
        33_749,
        3_130,
    );
}
