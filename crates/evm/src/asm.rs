//! A tiny EVM assembler for examples and tests: mnemonics, PUSH with automatic
//! width, labels and raw data.
//!
//! ```text
//! ; comments run from `;` to the end of the line
//! PUSH 64            ; smallest PUSHn that holds the value (PUSH0 for 0)
//! PUSH2 0x0040       ; explicit width
//! PUSH @loop         ; a label's address, always as PUSH2
//! loop:              ; defines `loop` here (write JUMPDEST yourself)
//! JUMPDEST
//! SHARED_ALLOC       ; the shared-memory opcodes by name (0xE0–0xE4)
//! DATA 0x6001        ; raw bytes
//! ```

use crate::names::{opcode_name, SHARED_OPCODES};
use alloy_primitives::{Bytes, U256};
use revm::bytecode::opcode::OpCode;
use std::collections::HashMap;

/// An assembly error, with its 1-based line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct AsmError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

enum Item {
    Op(u8),
    Push { width: usize, value: U256 },
    PushLabel(String),
    Data(Vec<u8>),
}

impl Item {
    fn len(&self) -> usize {
        match self {
            Item::Op(_) => 1,
            Item::Push { width, .. } => 1 + width,
            Item::PushLabel(_) => 3,
            Item::Data(bytes) => bytes.len(),
        }
    }
}

/// Assembles `source` into bytecode.
///
/// ```
/// let code = shm_evm::asm::assemble("PUSH 1 PUSH 2 ADD ; 1 + 2\nPUSH 0 MSTORE PUSH 32 PUSH 0 RETURN").unwrap();
/// assert_eq!(code.to_string(), "0x60016002015f5260205ff3");
/// ```
pub fn assemble(source: &str) -> Result<Bytes, AsmError> {
    let mut items: Vec<(usize, Item)> = Vec::new();
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut offset = 0usize;
    for (index, raw_line) in source.lines().enumerate() {
        let line = index + 1;
        let err = |message: String| AsmError { line, message };
        let code = raw_line.split(';').next().unwrap_or_default();
        let mut tokens = code.split_whitespace().peekable();
        while let Some(token) = tokens.next() {
            if let Some(name) = token.strip_suffix(':') {
                if name.is_empty() || labels.insert(name.to_string(), offset).is_some() {
                    return Err(err(format!("label `{name}` is empty or defined twice")));
                }
                continue;
            }
            let upper = token.to_ascii_uppercase();
            let item = if upper == "DATA" {
                let hex = tokens
                    .next()
                    .ok_or_else(|| err("DATA needs a hex operand".into()))?;
                Item::Data(
                    alloy_primitives::hex::decode(hex)
                        .map_err(|e| err(format!("DATA `{hex}`: {e}")))?,
                )
            } else if upper == "PUSH" || (upper.starts_with("PUSH") && upper != "PUSH0") {
                let operand = tokens
                    .next()
                    .ok_or_else(|| err(format!("{upper} needs an operand")))?;
                let explicit = if upper == "PUSH" {
                    None
                } else {
                    let n: usize = upper[4..]
                        .parse()
                        .map_err(|_| err(format!("unknown mnemonic `{token}`")))?;
                    if !(1..=32).contains(&n) {
                        return Err(err(format!("unknown mnemonic `{token}`")));
                    }
                    Some(n)
                };
                if let Some(label) = operand.strip_prefix('@') {
                    if explicit.is_some_and(|n| n != 2) {
                        return Err(err("a label is pushed with PUSH or PUSH2".into()));
                    }
                    Item::PushLabel(label.to_string())
                } else {
                    let value = parse_value(operand)
                        .ok_or_else(|| err(format!("`{operand}` is not a number")))?;
                    let needed = value.byte_len();
                    match explicit {
                        Some(n) if needed > n => {
                            return Err(err(format!("{operand} does not fit in {n} bytes")));
                        }
                        Some(n) => Item::Push { width: n, value },
                        None => Item::Push {
                            width: needed,
                            value,
                        },
                    }
                }
            } else if let Some((_, op)) = SHARED_OPCODES.iter().find(|(name, _)| *name == upper) {
                Item::Op(*op)
            } else {
                let op = OpCode::parse(&upper)
                    .ok_or_else(|| err(format!("unknown mnemonic `{token}`")))?;
                Item::Op(op.get())
            };
            offset += item.len();
            items.push((line, item));
        }
    }
    let mut code = Vec::with_capacity(offset);
    for (line, item) in items {
        match item {
            Item::Op(op) => code.push(op),
            Item::Push { width: 0, .. } => code.push(0x5f),
            Item::Push { width, value } => {
                code.push(0x5f + width as u8);
                code.extend_from_slice(&value.to_be_bytes::<32>()[32 - width..]);
            }
            Item::PushLabel(label) => {
                let at = *labels.get(&label).ok_or(AsmError {
                    line,
                    message: format!("unknown label `{label}`"),
                })?;
                let at = u16::try_from(at).map_err(|_| AsmError {
                    line,
                    message: "label beyond 64 KiB".into(),
                })?;
                code.push(0x61);
                code.extend_from_slice(&at.to_be_bytes());
            }
            Item::Data(bytes) => code.extend_from_slice(&bytes),
        }
    }
    Ok(code.into())
}

/// Disassembles `code`, one instruction per line, in the form [`assemble`] reads back
/// (`assemble(disassemble(code))` is `code`): the mnemonic with its immediate, and the
/// offset as a comment. With `shared_memory`, 0xE0–0xE4 are `SHARED_ALLOC` …
/// `SHARED_WRITE`; undefined opcodes, and a PUSH cut short by the end of the code, are
/// written as `DATA`.
///
/// ```
/// let text = shm_evm::asm::disassemble(&[0x60, 0x01, 0xe4, 0x61, 0xff], true);
/// assert_eq!(
///     text,
///     "PUSH1 0x01           ; 0\nSHARED_WRITE         ; 2\nDATA 0x61ff          ; 3: PUSH2 cut short\n"
/// );
/// ```
pub fn disassemble(code: &[u8], shared_memory: bool) -> String {
    let mut text = String::new();
    let mut pc = 0;
    while pc < code.len() {
        let op = code[pc];
        let immediate = if (0x60..=0x7f).contains(&op) {
            usize::from(op - 0x5f)
        } else {
            0
        };
        let end = pc + 1 + immediate;
        let (instruction, note) = match opcode_name(op, shared_memory) {
            Some(name) if end <= code.len() && immediate > 0 => (
                format!(
                    "{name} {}",
                    alloy_primitives::hex::encode_prefixed(&code[pc + 1..end])
                ),
                String::new(),
            ),
            Some(name) if end <= code.len() => (name.to_string(), String::new()),
            Some(name) => (
                format!(
                    "DATA {}",
                    alloy_primitives::hex::encode_prefixed(&code[pc..])
                ),
                format!(": {name} cut short"),
            ),
            None => (format!("DATA {op:#04x}"), ": undefined".to_string()),
        };
        text.push_str(&format!("{instruction:<20} ; {pc}{note}\n"));
        pc = end.min(code.len()).max(pc + 1);
    }
    text
}

fn parse_value(text: &str) -> Option<U256> {
    match text.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16).ok(),
        None => U256::from_str_radix(text, 10).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_pushes_labels_and_shared_opcodes() {
        let code = assemble(
            "start:\nJUMPDEST\nPUSH 0 PUSH 255 PUSH 256 PUSH2 1 PUSH @start JUMP\nshared_alloc SHARED_WRITE\nDATA 0xabcd",
        )
        .unwrap();
        assert_eq!(
            code.to_string(),
            "0x5b5f60ff610100610001610000_56_e0e4abcd".replace('_', "")
        );
    }

    #[test]
    fn disassembly_reads_back_to_the_same_code() {
        let programs: [&[u8]; 4] = [
            &[0x60, 0x01, 0x60, 0x02, 0x01, 0x5f, 0x52, 0x00],
            &[0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xef, 0x7f],
            &[0x7f; 40],
            &[],
        ];
        for code in programs {
            for shared_memory in [false, true] {
                let text = disassemble(code, shared_memory);
                assert_eq!(assemble(&text).unwrap().as_ref(), code, "{text}");
            }
        }
        let off = disassemble(&[0xe4], false);
        assert_eq!(off, "DATA 0xe4            ; 0: undefined\n");
    }

    #[test]
    fn reports_line_of_errors() {
        assert_eq!(
            assemble("ADD\nFOO").unwrap_err(),
            AsmError {
                line: 2,
                message: "unknown mnemonic `FOO`".into()
            }
        );
        assert_eq!(assemble("PUSH1 256").unwrap_err().line, 1);
        assert!(assemble("PUSH @nowhere")
            .unwrap_err()
            .message
            .contains("unknown label"));
        assert!(assemble("PUSH")
            .unwrap_err()
            .message
            .contains("needs an operand"));
        assert!(assemble("PUSH33 1")
            .unwrap_err()
            .message
            .contains("unknown mnemonic"));
        assert!(assemble("DATA 0xzz").is_err());
    }
}
