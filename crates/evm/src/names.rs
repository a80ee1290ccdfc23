//! Opcode names, with the shared-memory opcodes (which revm's table does not know).

use revm::bytecode::opcode::OpCode;
use shm_opcodes::instructions::{SHARED_ALLOC, SHARED_FREE, SHARED_MAP, SHARED_READ, SHARED_WRITE};

/// The shared-memory opcodes by name, in opcode order.
pub const SHARED_OPCODES: [(&str, u8); 5] = [
    ("SHARED_ALLOC", SHARED_ALLOC),
    ("SHARED_FREE", SHARED_FREE),
    ("SHARED_MAP", SHARED_MAP),
    ("SHARED_READ", SHARED_READ),
    ("SHARED_WRITE", SHARED_WRITE),
];

/// The name of `op`: revm's mnemonic, or with `shared_memory` on the shared-memory
/// name of 0xE0–0xE4; `None` for an undefined opcode.
///
/// ```
/// use shm_evm::opcode_name;
/// assert_eq!(opcode_name(0x01, false), Some("ADD"));
/// assert_eq!(opcode_name(0xe4, false), None);
/// assert_eq!(opcode_name(0xe4, true), Some("SHARED_WRITE"));
/// ```
pub fn opcode_name(op: u8, shared_memory: bool) -> Option<&'static str> {
    if shared_memory {
        if let Some((name, _)) = SHARED_OPCODES.iter().find(|(_, code)| *code == op) {
            return Some(name);
        }
    }
    OpCode::new(op).map(|code| code.as_str())
}
