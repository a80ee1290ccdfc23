//! A disassembler into the project's assembly (`shm_evm::asm`), for the round trip
//! `assemble(disassemble(code)) == code` of the `asm` target.
//!
//! ```
//! let code = [0x60, 0x01, 0xe0, 0x5f, 0xfe, 0x0c, 0x61, 0x02];
//! let source = shm_fuzz::disasm::disassemble(&code);
//! assert_eq!(source, "PUSH1 0x01\nSHARED_ALLOC\nPUSH0\nINVALID\nDATA 0x0c\nDATA 0x6102\n");
//! assert_eq!(shm_evm::asm::assemble(&source).unwrap().as_ref(), code);
//! ```

use revm::bytecode::opcode::OpCode;
use std::fmt::Write as _;

/// The names the assembler gives 0xE0–0xE4 (revm's table has none).
const SHARED: [&str; 5] = [
    "SHARED_ALLOC",
    "SHARED_FREE",
    "SHARED_MAP",
    "SHARED_READ",
    "SHARED_WRITE",
];

/// One line per instruction: `PUSHn 0x…` with the immediate as written, the
/// shared-memory opcodes by their names, revm's mnemonics (an immediate of another
/// opcode follows as `DATA`), and `DATA 0x…` for bytes that are no opcode and for a
/// truncated immediate at the end.
pub fn disassemble(code: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < code.len() {
        let op = code[i];
        let imm = match OpCode::new(op) {
            Some(opcode) if (0x60..=0x7f).contains(&op) => {
                let n = usize::from(opcode.info().immediate_size());
                if i + 1 + n <= code.len() {
                    let _ = writeln!(
                        out,
                        "PUSH{n} 0x{}",
                        alloy_primitives::hex::encode(&code[i + 1..i + 1 + n])
                    );
                    i += 1 + n;
                    continue;
                }
                let _ = writeln!(out, "DATA 0x{}", alloy_primitives::hex::encode(&code[i..]));
                return out;
            }
            Some(opcode) => {
                let _ = writeln!(out, "{}", opcode.as_str());
                usize::from(opcode.info().immediate_size())
            }
            None if (0xe0..=0xe4).contains(&op) => {
                let _ = writeln!(out, "{}", SHARED[usize::from(op - 0xe0)]);
                0
            }
            None => {
                let _ = writeln!(out, "DATA 0x{op:02x}");
                0
            }
        };
        i += 1;
        if imm > 0 && i < code.len() {
            let end = (i + imm).min(code.len());
            let _ = writeln!(
                out,
                "DATA 0x{}",
                alloy_primitives::hex::encode(&code[i..end])
            );
            i = end;
        }
    }
    out
}
