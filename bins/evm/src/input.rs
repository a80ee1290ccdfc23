//! Parsing of command-line values: hex blobs, numbers, addresses, files.

use alloy_primitives::{Address, Bytes, U256};
use shm_statetest::{read_capped, read_text_capped, ReadError};
use std::path::Path;

/// The largest code, calldata or assembly file read (hex of the largest code any fork
/// allows is 96 KiB; this leaves room for generated programs).
pub(crate) const MAX_TEXT_FILE_BYTES: u64 = 64 << 20;

/// A bad command-line value: printed as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error("{what}: odd number of hex digits ({digits})")]
    OddHex { what: String, digits: usize },
    #[error("{what}: invalid hex character {ch:?} at position {pos}")]
    BadHexChar { what: String, ch: char, pos: usize },
    #[error("{what}: cannot read {path}: {source}")]
    Read {
        what: String,
        path: String,
        source: ReadError,
    },
    #[error("{what}: `{value}` is not a number (decimal, or hex with 0x)")]
    BadNumber { what: String, value: String },
    #[error("{what}: `{value}` is not an address (20 bytes of hex)")]
    BadAddress { what: String, value: String },
    #[error("{0}")]
    Other(String),
}

/// Decodes hex with an optional `0x` prefix; whitespace anywhere (line breaks in a
/// code file, a trailing newline) is ignored.
pub(crate) fn parse_hex(what: &str, text: &str) -> Result<Bytes, InputError> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .unwrap_or(&digits);
    if let Some((pos, ch)) = digits.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(InputError::BadHexChar {
            what: what.into(),
            ch,
            pos,
        });
    }
    if !digits.len().is_multiple_of(2) {
        return Err(InputError::OddHex {
            what: what.into(),
            digits: digits.len(),
        });
    }
    // Every character was checked above, so decoding cannot fail.
    alloy_primitives::hex::decode(digits)
        .map(Bytes::from)
        .map_err(|e| InputError::Other(format!("{what}: {e}")))
}

/// Reads a file (`-` is standard input) as text of at most [`MAX_TEXT_FILE_BYTES`];
/// devices such as `/dev/zero` are refused.
pub(crate) fn read_text(what: &str, path: &Path) -> Result<String, InputError> {
    let err = |source| InputError::Read {
        what: what.into(),
        path: path.display().to_string(),
        source,
    };
    if path.as_os_str() == "-" {
        read_capped(std::io::stdin().lock(), MAX_TEXT_FILE_BYTES).map_err(err)
    } else {
        read_text_capped(path, MAX_TEXT_FILE_BYTES).map_err(err)
    }
}

/// A u64 in decimal or `0x` hex (underscores allowed as separators).
pub(crate) fn parse_u64(what: &str, value: &str) -> Result<u64, InputError> {
    let bad = || InputError::BadNumber {
        what: what.into(),
        value: value.into(),
    };
    let clean = value.replace('_', "");
    match clean.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| bad()),
        None => clean.parse().map_err(|_| bad()),
    }
}

/// A u128 in decimal or `0x` hex (underscores allowed as separators).
pub(crate) fn parse_u128(what: &str, value: &str) -> Result<u128, InputError> {
    let bad = || InputError::BadNumber {
        what: what.into(),
        value: value.into(),
    };
    let clean = value.replace('_', "");
    match clean.strip_prefix("0x") {
        Some(hex) => u128::from_str_radix(hex, 16).map_err(|_| bad()),
        None => clean.parse().map_err(|_| bad()),
    }
}

/// A u256 in decimal or `0x` hex.
pub(crate) fn parse_u256(what: &str, value: &str) -> Result<U256, InputError> {
    let bad = || InputError::BadNumber {
        what: what.into(),
        value: value.into(),
    };
    let clean = value.replace('_', "");
    match clean.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() => U256::from_str_radix(hex, 16).map_err(|_| bad()),
        Some(_) => Err(bad()),
        None => U256::from_str_radix(&clean, 10).map_err(|_| bad()),
    }
}

/// A 20-byte address in hex.
pub(crate) fn parse_address(what: &str, value: &str) -> Result<Address, InputError> {
    value.parse().map_err(|_| InputError::BadAddress {
        what: what.into(),
        value: value.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        assert_eq!(
            parse_hex("code", "0x6001\n 60 02\n").unwrap().as_ref(),
            &[0x60, 1, 0x60, 2]
        );
        assert_eq!(parse_hex("code", "").unwrap().len(), 0);
        let e = parse_hex("code", "0x600").unwrap_err().to_string();
        assert_eq!(e, "code: odd number of hex digits (3)");
        let e = parse_hex("input", "60zz").unwrap_err().to_string();
        assert_eq!(e, "input: invalid hex character 'z' at position 2");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("gas", "10_000").unwrap(), 10_000);
        assert_eq!(parse_u64("gas", "0x10").unwrap(), 16);
        assert!(parse_u64("gas", "lots")
            .unwrap_err()
            .to_string()
            .contains("`lots` is not a number"));
        assert!(parse_u64("gas", "99999999999999999999999").is_err());
        assert_eq!(parse_u256("value", "0xff").unwrap(), U256::from(255));
        assert!(parse_u256("value", "0x").is_err());
        assert!(parse_address("sender", "0x12").is_err());
    }
}
