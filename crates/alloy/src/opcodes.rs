//! Opcode safety: shared memory must never be installed over an opcode the chosen fork
//! defines.
//!
//! revm 43 has one instruction table for every fork; an instruction of a later fork
//! checks the fork when it runs and halts with `NotActivated` before it. Whether a fork
//! *defines* a byte is therefore asked of revm itself: [`defined_opcodes`] runs the byte
//! once on stock revm for that fork and classifies the halt (`OpcodeNotFound` or
//! `NotActivated`: undefined; anything else: defined). The answer is computed once per
//! fork and cached.
//!
//! In revm 43.0.3 no fork defines 0xE0–0xE4; Amsterdam defines EIP-8024's DUPN, SWAPN and
//! EXCHANGE at 0xE6–0xE8 (the tests pin both facts).

use revm::{
    bytecode::{opcode::OpCode, Bytecode},
    context::{Context, TxEnv},
    context_interface::result::{ExecutionResult, HaltReason},
    database::InMemoryDB,
    primitives::{hardfork::SpecId, Address, TxKind},
    state::AccountInfo,
    ExecuteEvm, MainBuilder, MainContext,
};
use shm_opcodes::instructions::{SHARED_ALLOC, SHARED_FREE, SHARED_MAP, SHARED_READ, SHARED_WRITE};
use std::sync::OnceLock;

/// The bytes shared memory installs its instructions at.
pub const SHARED_MEMORY_OPCODES: [u8; 5] = [
    SHARED_ALLOC,
    SHARED_FREE,
    SHARED_MAP,
    SHARED_READ,
    SHARED_WRITE,
];

/// An opcode a fork defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DefinedOpcode {
    /// The byte.
    pub byte: u8,
    /// revm's mnemonic for it, when revm names it.
    pub name: Option<&'static str>,
}

impl std::fmt::Display for DefinedOpcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name {
            Some(name) => write!(f, "0x{:02X} {name}", self.byte),
            None => write!(f, "0x{:02X}", self.byte),
        }
    }
}

/// Shared memory was not installed: the fork defines opcodes at its bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("shared memory refused on {spec:?}: the fork defines {}", list(.defined))]
pub struct OpcodeConflict {
    /// The fork.
    pub spec: SpecId,
    /// What it defines at the bytes shared memory would take.
    pub defined: Vec<DefinedOpcode>,
}

fn list(defined: &[DefinedOpcode]) -> String {
    defined
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that `spec` leaves every byte of [`SHARED_MEMORY_OPCODES`] undefined.
///
/// ```
/// use revm::primitives::hardfork::SpecId;
/// assert!(shm_alloy_evm::check_shared_memory_opcodes(SpecId::OSAKA).is_ok());
/// ```
pub fn check_shared_memory_opcodes(spec: SpecId) -> Result<(), OpcodeConflict> {
    check_opcodes(spec, &SHARED_MEMORY_OPCODES)
}

/// Checks that `spec` leaves every byte of `bytes` undefined.
///
/// ```
/// use revm::primitives::hardfork::SpecId;
/// // EIP-8024's DUPN is defined from Amsterdam on.
/// assert!(shm_alloy_evm::check_opcodes(SpecId::OSAKA, &[0xE6]).is_ok());
/// let conflict = shm_alloy_evm::check_opcodes(SpecId::AMSTERDAM, &[0xE6]).unwrap_err();
/// assert_eq!(conflict.to_string(), "shared memory refused on AMSTERDAM: the fork defines 0xE6 DUPN");
/// ```
pub fn check_opcodes(spec: SpecId, bytes: &[u8]) -> Result<(), OpcodeConflict> {
    let table = defined_table(spec);
    let defined: Vec<DefinedOpcode> = bytes
        .iter()
        .filter(|&&byte| table[byte as usize])
        .map(|&byte| DefinedOpcode {
            byte,
            name: OpCode::new(byte).map(|op| op.as_str()),
        })
        .collect();
    if defined.is_empty() {
        Ok(())
    } else {
        Err(OpcodeConflict { spec, defined })
    }
}

/// Every opcode `spec` defines among `bytes`, as revm 43 executes it.
///
/// ```
/// use revm::primitives::hardfork::SpecId;
/// let defined = shm_alloy_evm::defined_opcodes(SpecId::AMSTERDAM, 0xE0..=0xEF);
/// let names: Vec<_> = defined.iter().map(|op| op.name.unwrap()).collect();
/// assert_eq!(names, ["DUPN", "SWAPN", "EXCHANGE"]);
/// ```
pub fn defined_opcodes(spec: SpecId, bytes: impl IntoIterator<Item = u8>) -> Vec<DefinedOpcode> {
    let table = defined_table(spec);
    bytes
        .into_iter()
        .filter(|&byte| table[byte as usize])
        .map(|byte| DefinedOpcode {
            byte,
            name: OpCode::new(byte).map(|op| op.as_str()),
        })
        .collect()
}

/// Which of the 256 bytes `spec` defines; probed once per fork.
fn defined_table(spec: SpecId) -> &'static [bool; 256] {
    const FORKS: usize = SpecId::AMSTERDAM as usize + 1;
    static TABLES: [OnceLock<[bool; 256]>; FORKS] = [const { OnceLock::new() }; FORKS];
    TABLES[spec as usize].get_or_init(|| {
        let mut table = [false; 256];
        for byte in 0..=u8::MAX {
            table[byte as usize] = probe(spec, byte);
        }
        table
    })
}

/// Runs `byte` (followed by zeroes, for any immediate) on stock revm under `spec`.
fn probe(spec: SpecId, byte: u8) -> bool {
    let target = Address::repeat_byte(0xC0);
    let mut code = vec![0u8; 34];
    code[0] = byte;
    let mut db = InMemoryDB::default();
    db.insert_account_info(
        target,
        AccountInfo::default().with_code(Bytecode::new_raw(code.into())),
    );
    let mut evm = Context::mainnet()
        .modify_cfg_chained(|cfg| cfg.set_spec_and_mainnet_gas_params(spec))
        .with_db(db)
        .build_mainnet();
    let tx = TxEnv::builder()
        .kind(TxKind::Call(target))
        .gas_limit(1_000_000)
        .gas_price(0)
        .build()
        .unwrap_or_default();
    match evm.transact(tx).map(|out| out.result) {
        Ok(ExecutionResult::Halt {
            reason: HaltReason::OpcodeNotFound | HaltReason::NotActivated,
            ..
        }) => false,
        // Ran (success, revert or another halt): the byte means something on this fork.
        Ok(_) => true,
        // The probe transaction is valid on every fork; should revm refuse it, claim the
        // byte rather than install over something unknown.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORKS: [SpecId; 15] = [
        SpecId::FRONTIER,
        SpecId::HOMESTEAD,
        SpecId::TANGERINE,
        SpecId::SPURIOUS_DRAGON,
        SpecId::BYZANTIUM,
        SpecId::PETERSBURG,
        SpecId::ISTANBUL,
        SpecId::BERLIN,
        SpecId::LONDON,
        SpecId::MERGE,
        SpecId::SHANGHAI,
        SpecId::CANCUN,
        SpecId::PRAGUE,
        SpecId::OSAKA,
        SpecId::AMSTERDAM,
    ];

    #[test]
    fn no_fork_of_revm_43_defines_the_shared_memory_bytes() {
        assert_eq!(FORKS.len(), SpecId::AMSTERDAM as usize + 1);
        for spec in FORKS {
            assert_eq!(check_shared_memory_opcodes(spec), Ok(()), "{spec:?}");
        }
    }

    #[test]
    fn the_probe_sees_forks_add_opcodes() {
        // Known arrivals: PUSH0 (0x5F) in Shanghai, MCOPY (0x5E) in Cancun, CLZ (0x1E) in
        // Osaka, DUPN/SWAPN/EXCHANGE (0xE6-0xE8) in Amsterdam; ADD (0x01) always; 0xEF never.
        let defined = |spec, byte| !defined_opcodes(spec, [byte]).is_empty();
        assert!(!defined(SpecId::MERGE, 0x5F) && defined(SpecId::SHANGHAI, 0x5F));
        assert!(!defined(SpecId::SHANGHAI, 0x5E) && defined(SpecId::CANCUN, 0x5E));
        assert!(!defined(SpecId::PRAGUE, 0x1E) && defined(SpecId::OSAKA, 0x1E));
        for byte in 0xE6..=0xE8 {
            assert!(!defined(SpecId::OSAKA, byte) && defined(SpecId::AMSTERDAM, byte));
        }
        for spec in FORKS {
            assert!(defined(spec, 0x01));
            assert!(!defined(spec, 0xEF));
        }
    }

    #[test]
    fn which_forks_define_anything_in_0xe0_to_0xef() {
        // The table docs/opcodes.md cites: only Amsterdam, only 0xE6-0xE8.
        let mut lines = Vec::new();
        for spec in FORKS {
            let defined = defined_opcodes(spec, 0xE0..=0xEF);
            if !defined.is_empty() {
                lines.push(format!("{spec:?}: {}", list(&defined)));
            }
        }
        assert_eq!(lines, ["AMSTERDAM: 0xE6 DUPN, 0xE7 SWAPN, 0xE8 EXCHANGE"]);
    }

    #[test]
    fn a_conflict_names_the_fork_and_the_opcodes() {
        let conflict = check_opcodes(SpecId::AMSTERDAM, &[0xE4, 0xE6, 0xE7]).unwrap_err();
        assert_eq!(conflict.defined.len(), 2);
        assert_eq!(
            conflict.to_string(),
            "shared memory refused on AMSTERDAM: the fork defines 0xE6 DUPN, 0xE7 SWAPN"
        );
    }
}
