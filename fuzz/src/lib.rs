//! Fuzz targets for evm-shm, as a library: every parser, hostile bytecode in nested
//! frames with shared memory on, and the host API against a reference model.
//!
//! Each target in [`targets`] takes arbitrary bytes and panics when an invariant
//! breaks (a panic inside the code under test is a finding too). Three drivers run
//! them:
//!
//! - libFuzzer, coverage-guided: the binaries in `fuzz/fuzz_targets/`, built by
//!   `cargo fuzz` on the pinned stable toolchain (`docs/reliability.md` has the
//!   command and the flags that make it work);
//! - the workspace tests (`fuzz/tests/replay.rs`): every checked-in corpus input and
//!   every regression input, then a bounded count of inputs from a seeded generator,
//!   through the same functions, so CI exercises the targets without building the
//!   instrumented binaries;
//! - `scripts/fuzz-long.sh`: the long run.
//!
//! ```
//! // Every target accepts any input; these only have to return.
//! shm_fuzz::targets::hex(b"0x60 01");
//! shm_fuzz::targets::asm(b"PUSH 1 PUSH @end JUMP\nend: JUMPDEST");
//! shm_fuzz::targets::header(&[0u8; 16]);
//! ```
#![warn(missing_docs)]

pub mod bytecode;
pub mod disasm;
pub mod findings;
pub mod host_model;
pub mod parsers;
mod scratch;

/// The fuzz targets: one function per libFuzzer binary, each `fn(&[u8])`.
pub mod targets {
    pub use crate::bytecode::bytecode;
    pub use crate::host_model::host_model;
    pub use crate::parsers::{asm, header, hex, prestate, region_file, snapshot, statetest};

    /// A fuzz target: takes any bytes, panics on a broken invariant.
    pub type Target = fn(&[u8]);

    /// Every target by name, in the order `scripts/fuzz-long.sh` runs them.
    pub const ALL: [(&str, Target); 9] = [
        ("hex", hex),
        ("prestate", prestate),
        ("statetest", statetest),
        ("asm", asm),
        ("header", header),
        ("snapshot", snapshot),
        ("region_file", region_file),
        ("host_model", host_model),
        ("bytecode", bytecode),
    ];
}
