//! Writing results without panicking: every write to standard output is checked (a
//! closed pipe or a full disk ends the command with one line and exit code 6), and
//! messages on standard error are best effort (there is nowhere left to report a
//! failure to write them).

use crate::ExitCode;
use std::io::{self, Write};

/// Writes `text` to standard output and flushes it.
pub(crate) fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `text` and a line break to standard output and flushes it.
pub(crate) fn println(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes one line to standard error, ignoring failure.
pub(crate) fn eprintln(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}

/// Reports that standard output could not be written, and returns the exit code for it.
pub(crate) fn stdout_failed(error: io::Error) -> ExitCode {
    eprintln(&format!("error: cannot write to standard output: {error}"));
    ExitCode::OUTPUT
}

/// Reports that the trace on standard error could not be written, and returns the exit
/// code for it.
pub(crate) fn trace_failed(error: io::Error) -> ExitCode {
    eprintln(&format!("error: cannot write the trace: {error}"));
    ExitCode::OUTPUT
}
