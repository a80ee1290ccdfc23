//! `evm`: run EVM bytecode and Ethereum state tests on revm 43, with or without
//! shared memory.
//!
//! Exit codes: 0 success; 1 revert (or failed state tests); 2 usage or input error;
//! 3 the transaction was rejected before execution; 4 halt; 5 `--bench` runs disagreed;
//! 6 standard output (or the trace) could not be written.

mod alloc_counter;
mod blocktest;
mod input;
mod output;
mod run;
mod shm;
mod statetest;
mod trace;

use clap::{Parser, Subcommand};
pub(crate) use trace::TraceArgs;

#[global_allocator]
static GLOBAL: alloc_counter::CountingAlloc = alloc_counter::CountingAlloc;

#[derive(Parser, Debug)]
#[command(
    name = "evm",
    version,
    about = "Run EVM bytecode and Ethereum state tests (revm 43, with optional shared memory)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run bytecode over an in-memory state.
    Run(Box<run::RunArgs>),
    /// Run Ethereum state tests (GeneralStateTests fixtures: files or folders).
    Statetest(statetest::StatetestArgs),
    /// Run Ethereum blockchain tests (BlockchainTests fixtures) through alloy-evm's block executor.
    Blocktest(blocktest::BlocktestArgs),
    /// Inspect and manage a mapped shared-memory namespace: ls, show, rm, dump, load.
    Shm(shm::ShmArgs),
    /// Assemble a file of the project's tiny assembly (see `examples/*.easm`) and print the hex.
    Asm {
        /// The source file (`-` reads standard input).
        path: std::path::PathBuf,
    },
    /// Disassemble bytecode: one instruction per line (offset, name, immediate).
    Disasm {
        /// The code in hex (`0x` optional).
        #[arg(
            value_name = "CODE",
            conflicts_with = "codefile",
            required_unless_present = "codefile"
        )]
        code: Option<String>,
        /// File holding the code in hex (`-` reads standard input).
        #[arg(long, value_name = "PATH")]
        codefile: Option<std::path::PathBuf>,
        /// Name 0xE0–0xE4 as the shared-memory opcodes (SHARED_ALLOC … SHARED_WRITE).
        #[arg(long)]
        shm: bool,
    },
}

/// The process exit status, with the project's fixed meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitCode(u8);

impl ExitCode {
    /// The transaction (or every test) succeeded.
    pub const SUCCESS: Self = Self(0);
    /// The transaction reverted.
    pub const REVERT: Self = Self(1);
    /// A state test failed.
    pub const FAILURE: Self = Self(1);
    /// Bad usage or input: one line on stderr says what.
    pub const USAGE: Self = Self(2);
    /// revm rejected the transaction before executing it.
    pub const REJECTED: Self = Self(3);
    /// The transaction halted exceptionally.
    pub const HALT: Self = Self(4);
    /// `--bench` runs disagreed.
    pub const NONDETERMINISTIC: Self = Self(5);
    /// Standard output, the outcome lines or the trace could not be written.
    pub const OUTPUT: Self = Self(6);

    /// Prints `error: …` as one line and returns the usage code.
    pub fn usage(error: impl std::fmt::Display) -> Self {
        output::eprintln(&format!("error: {error}"));
        Self::USAGE
    }

    /// Prints `error: …` as one line and returns the rejected-transaction code.
    pub fn rejected(error: impl std::fmt::Display) -> Self {
        output::eprintln(&format!("error: {error}"));
        Self::REJECTED
    }

    /// Success, or the output code when `printed` failed.
    fn printed(printed: std::io::Result<()>) -> Self {
        match printed {
            Ok(()) => Self::SUCCESS,
            Err(error) => output::stdout_failed(error),
        }
    }
}

fn asm(path: &std::path::Path) -> ExitCode {
    let source = match input::read_text("asm", path) {
        Ok(source) => source,
        Err(e) => return ExitCode::usage(e),
    };
    match shm_evm::asm::assemble(&source) {
        Ok(code) => ExitCode::printed(output::println(&code.to_string())),
        Err(e) => ExitCode::usage(format!("asm: {}: {e}", path.display())),
    }
}

fn disasm(code: Option<&str>, codefile: Option<&std::path::Path>, shm: bool) -> ExitCode {
    let code = match (code, codefile) {
        (Some(hex), _) => input::parse_hex("code", hex),
        (None, Some(path)) => {
            input::read_text("codefile", path).and_then(|text| input::parse_hex("codefile", &text))
        }
        (None, None) => return ExitCode::usage("no code given: pass CODE or --codefile PATH"),
    };
    match code {
        Ok(code) => ExitCode::printed(output::print(&shm_evm::asm::disassemble(&code, shm))),
        Err(e) => ExitCode::usage(e),
    }
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version on stdout with success, usage errors on stderr.
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() {
                ExitCode::USAGE.0
            } else {
                0
            });
        }
    };
    let code = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Statetest(args) => return statetest::run(args),
        Command::Blocktest(args) => return blocktest::run(args),
        Command::Asm { path } => asm(&path),
        Command::Disasm {
            code,
            codefile,
            shm,
        } => disasm(code.as_deref(), codefile.as_deref(), shm),
        Command::Shm(args) => shm::run(args),
    };
    std::process::ExitCode::from(code.0)
}
