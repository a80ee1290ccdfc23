//! The trace flags `evm run` and `evm statetest` share (geth's spelling).

use clap::Args;
use shm_evm::TraceOptions;

/// `--trace` and the flags that shape it; any of them turns tracing on.
#[derive(Args, Debug, Clone, Copy, Default)]
pub(crate) struct TraceArgs {
    /// Write an EIP-3155 JSON trace (one object per line) to standard error;
    /// 0xE0–0xE4 are named SHARED_ALLOC … SHARED_WRITE when shared memory is on.
    #[arg(long)]
    trace: bool,
    /// Include each step's memory in the trace (implies --trace).
    #[arg(long = "trace.memory")]
    trace_memory: bool,
    /// Leave the stack out of the trace (implies --trace).
    #[arg(long = "trace.nostack")]
    trace_nostack: bool,
    /// Include the last call's return data in the trace instead of `0x` (implies --trace).
    #[arg(long = "trace.returndata")]
    trace_returndata: bool,
}

impl TraceArgs {
    /// Whether a trace was asked for.
    pub(crate) fn enabled(&self) -> bool {
        self.trace || self.trace_memory || self.trace_nostack || self.trace_returndata
    }

    /// The tracer's options (the summary line included, as revm writes it).
    pub(crate) fn options(&self) -> TraceOptions {
        TraceOptions {
            memory: self.trace_memory,
            stack: !self.trace_nostack,
            return_data: self.trace_returndata,
            ..TraceOptions::default()
        }
    }
}
