//! Every target in one binary, chosen by the environment variable `SHM_FUZZ_TARGET`
//! (a name of `shm_fuzz::targets::ALL`): one instrumented link instead of nine, which
//! is what makes `scripts/fuzz-long.sh` affordable on two cores.
#![no_main]

use std::sync::OnceLock;

fn chosen() -> shm_fuzz::targets::Target {
    static TARGET: OnceLock<shm_fuzz::targets::Target> = OnceLock::new();
    *TARGET.get_or_init(|| {
        let name = std::env::var("SHM_FUZZ_TARGET").unwrap_or_default();
        shm_fuzz::targets::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| {
                let names: Vec<&str> = shm_fuzz::targets::ALL.iter().map(|(n, _)| *n).collect();
                eprintln!("set SHM_FUZZ_TARGET to one of {names:?}");
                std::process::exit(2)
            })
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| chosen()(data));
