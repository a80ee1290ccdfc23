//! Loop programs that time one operation: a prologue, then [`ITERATIONS`] runs
//! of a body, in one transaction. Subtracting the empty loop of the same
//! [`Family`] (same prologue, same calldata) from a program's time and gas
//! leaves the body's own: nanoseconds and gas per operation, operand pushes
//! included.
//!
//! ```
//! use shm_benches::programs::{per_op_programs, Family};
//! let programs = per_op_programs();
//! assert!(programs.iter().any(|p| p.name == "empty" && p.family == Family::Plain));
//! for program in &programs {
//!     program.code().unwrap();
//! }
//! ```

use alloy_primitives::{Bytes, U256};
use shm_evm::asm::{assemble, AsmError};
use shm_primitives::RegionHandle;

/// Runs of the body per transaction.
pub const ITERATIONS: u64 = 1_000;

/// Size of the warm region every `Plain` program can use (`h`).
pub const SMALL_REGION: u64 = 64 << 10;

/// Size of the region the fresh-page writes walk through (`hbig`): one page per
/// iteration, plus page 0 that the prologue touches.
pub const PAGE_WALK_REGION: u64 = 4 << 20;

/// The prologue and calldata a program shares with its empty loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Calldata `[h, hbig]` (two host regions owned by and mapped to the
    /// target). The prologue loads both, expands memory to 64 KiB, writes 32 KiB
    /// of `h` (warming it and saving its first 8 pages in the journal) and reads
    /// 32 B of `hbig` (warming it). Body stack: `[counter, h, hbig]`.
    Plain,
    /// As `Plain`, with [`ITERATIONS`] more handles in the calldata (words 2…),
    /// each a 32-byte host region nobody has touched in the transaction.
    Cold,
    /// No calldata, no prologue, run over a manager with no regions and at
    /// least [`ITERATIONS`] free blocks of 64 B and of 4 KiB. Body stack:
    /// `[counter]`.
    Alloc,
}

impl Family {
    fn prologue(self) -> &'static str {
        match self {
            Family::Plain | Family::Cold => {
                "PUSH 0x20 CALLDATALOAD PUSH0 CALLDATALOAD   ; [h, hbig]
                 PUSH0 PUSH 0xffe0 MSTORE                     ; memory: 64 KiB
                 PUSH0 PUSH 0x8000 PUSH0 DUP4 SHARED_WRITE POP ; h: warm, 8 pages saved
                 PUSH0 PUSH 32 PUSH0 DUP5 SHARED_READ POP      ; hbig: warm"
            }
            Family::Alloc => "",
        }
    }

    /// The calldata: the handles the prologue and bodies load.
    pub fn calldata(self, small: RegionHandle, big: RegionHandle, cold: &[RegionHandle]) -> Bytes {
        let mut words = match self {
            Family::Plain => vec![small, big],
            Family::Cold => [&[small, big][..], cold].concat(),
            Family::Alloc => vec![],
        }
        .into_iter()
        .flat_map(|h| h.to_u256().to_be_bytes::<32>())
        .collect::<Vec<u8>>();
        words.shrink_to_fit();
        words.into()
    }
}

/// One loop program.
#[derive(Clone, Debug)]
pub struct LoopProgram {
    /// Bench name (`[A-Za-z0-9_]`).
    pub name: &'static str,
    /// What the table calls it.
    pub label: &'static str,
    /// Prologue and calldata.
    pub family: Family,
    /// Assembly of one iteration; must leave the stack as it found it.
    pub body: String,
}

impl LoopProgram {
    fn new(
        name: &'static str,
        label: &'static str,
        family: Family,
        body: impl Into<String>,
    ) -> Self {
        Self {
            name,
            label,
            family,
            body: body.into(),
        }
    }

    /// The bytecode.
    ///
    /// # Errors
    /// If the body does not assemble.
    pub fn code(&self) -> Result<Bytes, AsmError> {
        assemble(&format!(
            "{prologue}
             PUSH {ITERATIONS}
             loop:
             JUMPDEST
             {body}
             PUSH 1 SWAP1 SUB DUP1 PUSH @loop JUMPI
             STOP",
            prologue = self.family.prologue(),
            body = self.body,
        ))
    }

    /// Whether this is its family's empty loop.
    pub fn is_empty_loop(&self) -> bool {
        self.body.trim().is_empty()
    }
}

/// MULMOD with three full-width operands.
fn mulmod_body() -> String {
    let max = U256::MAX;
    format!(
        "PUSH32 {n} PUSH32 {b} PUSH32 {a} MULMOD POP",
        n = max - U256::from(4),
        b = max - U256::from(2),
        a = max - U256::from(1),
    )
}

/// Every per-op program: the empty loop of each family first, then the
/// mainnet references, then the shared-memory instructions.
pub fn per_op_programs() -> Vec<LoopProgram> {
    use Family::*;
    let mut programs = vec![
        LoopProgram::new("empty", "empty loop", Plain, ""),
        LoopProgram::new("empty_cold", "empty loop (cold calldata)", Cold, ""),
        LoopProgram::new("empty_alloc", "empty loop (no regions)", Alloc, ""),
        LoopProgram::new("MLOAD_32B", "MLOAD 32 B", Plain, "PUSH 0x40 MLOAD POP"),
        LoopProgram::new("MSTORE_32B", "MSTORE 32 B", Plain, "DUP1 PUSH 0x40 MSTORE"),
        LoopProgram::new("TLOAD", "TLOAD", Plain, "PUSH 1 TLOAD POP"),
        LoopProgram::new("TSTORE", "TSTORE", Plain, "DUP1 PUSH 1 TSTORE"),
    ];
    for (name, label, size) in [
        ("MCOPY_32B", "MCOPY 32 B", 32),
        ("MCOPY_1KiB", "MCOPY 1 KiB", 1024),
        ("MCOPY_32KiB", "MCOPY 32 KiB", 32768),
    ] {
        programs.push(LoopProgram::new(
            name,
            label,
            Plain,
            format!("PUSH {size} PUSH0 PUSH 0x8000 MCOPY"),
        ));
    }
    programs.extend([
        LoopProgram::new(
            "KECCAK256_32B",
            "KECCAK256 32 B",
            Plain,
            "PUSH 32 PUSH0 KECCAK256 POP",
        ),
        LoopProgram::new(
            "MULMOD_256bit",
            "MULMOD (256-bit operands)",
            Plain,
            mulmod_body(),
        ),
        LoopProgram::new("SLOAD_warm", "SLOAD warm", Plain, "PUSH0 SLOAD POP"),
        LoopProgram::new(
            "SSTORE_warm",
            "SSTORE warm (dirty slot)",
            Plain,
            "DUP1 PUSH0 SSTORE",
        ),
        LoopProgram::new(
            "SLOAD_cold",
            "SLOAD cold (EIP-2929, in-memory DB)",
            Plain,
            "DUP1 SLOAD POP",
        ),
        LoopProgram::new(
            "BALANCE_cold",
            "BALANCE cold (EIP-2929, in-memory DB)",
            Plain,
            "DUP1 PUSH 0x10000 ADD BALANCE POP",
        ),
    ]);
    for (name, label, size) in [
        ("SHARED_READ_32B", "SHARED_READ 32 B warm", 32),
        ("SHARED_READ_1KiB", "SHARED_READ 1 KiB warm", 1024),
        ("SHARED_READ_32KiB", "SHARED_READ 32 KiB warm", 32768),
    ] {
        programs.push(LoopProgram::new(
            name,
            label,
            Plain,
            format!("PUSH 0x8000 PUSH {size} PUSH0 DUP5 SHARED_READ POP"),
        ));
    }
    for (name, label, size) in [
        ("SHARED_WRITE_32B", "SHARED_WRITE 32 B warm", 32),
        ("SHARED_WRITE_1KiB", "SHARED_WRITE 1 KiB warm", 1024),
        ("SHARED_WRITE_32KiB", "SHARED_WRITE 32 KiB warm", 32768),
    ] {
        programs.push(LoopProgram::new(
            name,
            label,
            Plain,
            format!("PUSH0 PUSH {size} PUSH0 DUP5 SHARED_WRITE POP"),
        ));
    }
    programs.extend([
        LoopProgram::new(
            "SHARED_WRITE_32B_fresh_page",
            "SHARED_WRITE 32 B, a page not yet saved (journal_page)",
            Plain,
            "PUSH0 PUSH 32 DUP3 PUSH 12 SHL DUP6 SHARED_WRITE POP",
        ),
        LoopProgram::new(
            "SHARED_WRITE_4KiB_fresh_page",
            "SHARED_WRITE 4 KiB, a page not yet saved",
            Plain,
            "PUSH0 PUSH 4096 DUP3 PUSH 12 SHL DUP6 SHARED_WRITE POP",
        ),
        LoopProgram::new(
            "SHARED_MAP_warm",
            "SHARED_MAP warm",
            Plain,
            "PUSH0 DUP3 SHARED_MAP POP",
        ),
        LoopProgram::new(
            "SHARED_READ_32B_cold",
            "SHARED_READ 32 B cold (first touch)",
            Cold,
            "PUSH 0x8000 PUSH 32 PUSH0 DUP4 PUSH 5 SHL PUSH 0x20 ADD CALLDATALOAD SHARED_READ POP",
        ),
        LoopProgram::new(
            "SHARED_ALLOC_32B",
            "SHARED_ALLOC 32 B",
            Alloc,
            "PUSH0 PUSH 32 SHARED_ALLOC POP",
        ),
        LoopProgram::new(
            "SHARED_ALLOC_65B",
            "SHARED_ALLOC 65 B (takes a 4 KiB pool block)",
            Alloc,
            "PUSH0 PUSH 65 SHARED_ALLOC POP",
        ),
        LoopProgram::new(
            "SHARED_ALLOC_FREE_32B",
            "SHARED_ALLOC 32 B + SHARED_FREE",
            Alloc,
            "PUSH0 PUSH 32 SHARED_ALLOC SHARED_FREE POP",
        ),
    ]);
    programs
}
