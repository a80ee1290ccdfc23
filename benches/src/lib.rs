//! Shared set-up for the workspace-level benchmarks (see `benches/`).
