#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shm_fuzz::targets::prestate(data));
