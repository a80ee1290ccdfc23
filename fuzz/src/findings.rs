//! Findings still open in code this crate does not own. While one is open, the
//! targets step around it (so a long run finds something new instead of the same
//! crash again) and its reproducer waits in `fuzz/open/<target>/`, replayed by the
//! ignored test `open_findings` in `fuzz/tests/replay.rs`, which turns the
//! stepping around off ([`step_around`]). When the fix lands: set the flag to
//! `false`, move the reproducer to `fuzz/regressions/<target>/`.
//! docs/reliability.md describes each one.

use std::cell::Cell;

thread_local! {
    static STEP_AROUND: Cell<bool> = const { Cell::new(true) };
}

/// Whether the targets step around open findings on this thread (the default).
pub fn stepping_around() -> bool {
    STEP_AROUND.with(Cell::get)
}

/// Turns stepping around open findings on or off for this thread.
pub fn step_around(on: bool) {
    STEP_AROUND.with(|s| s.set(on));
}

/// F1: loading a snapshot whose region has a large handle index (any index up to
/// 2^32 − 1 is a valid handle) makes `Namespace::record_generation` allocate and
/// write 4 bytes per index below it: index 3.7e9 asks for 14.7 GB and aborts the
/// process (`evm shm load` of a crafted or corrupted-then-rechecksummed file).
pub const SNAPSHOT_HUGE_INDEX_OPEN: bool = false;

/// Indexes up to this are restored while F1 is open (4 MiB of generations file).
pub const SNAPSHOT_INDEX_LIMIT: u32 = 1 << 20;

/// F2: rolling back an interrupted transaction (`MappedRegion::lock`) restores the
/// header words from the undo log without the check `MappedRegion::open` makes, so
/// a log with a well-formed header record can leave a region whose size is above
/// its maximum (and its capacity). A manager attaching the namespace then refuses
/// all of it ("region size … exceeds the maximum"). While open, the `region_file`
/// target does not assert the size after a rollback.
pub const ROLLBACK_SIZE_UNCHECKED_OPEN: bool = false;

/// F4: a `--prestate` file whose JSON has a key with an escaped line break
/// (`"bal\nce"`) gets a two-line error from `evm run`: serde_json names the unknown
/// field verbatim and `PrestateError` prints it as is (`crates/evm/src/prestate.rs`).
/// While open, the `prestate` target checks the one-line rule on the message with
/// line breaks escaped.
pub const PRESTATE_MULTILINE_ERROR_OPEN: bool = false;
