use alloy_primitives::Address;
use revm::statetest_types::AccountInfo;
use shm_statetest::ReadError;
use std::{collections::BTreeMap, path::Path};

/// The largest prestate file read.
pub const MAX_PRESTATE_BYTES: u64 = 256 << 20;

/// Accounts to install before the transaction runs, in the state-test `pre` format:
/// `{ "0xaddr": { "balance": "0x..", "nonce": "0x..", "code": "0x..", "storage": { "0x..": "0x.." } } }`.
///
/// ```
/// let pre = shm_evm::Prestate::from_json_str(r#"{
///   "0x1000000000000000000000000000000000000001":
///     { "balance": "0x10", "nonce": "0x1", "code": "0x00", "storage": { "0x01": "0x02" } }
/// }"#).unwrap();
/// assert_eq!(pre.accounts.len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Prestate {
    /// Accounts by address, in address order (so dumps and runs are deterministic).
    pub accounts: BTreeMap<Address, AccountInfo>,
}

/// Why a prestate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PrestateError {
    /// The file could not be read.
    #[error("cannot read prestate file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why: an I/O error, a device, a file above [`MAX_PRESTATE_BYTES`].
        source: ReadError,
    },
    /// The text is not a valid alloc.
    #[error("invalid prestate JSON{}: {}", .path.as_deref().map(|p| format!(" in {p}")).unwrap_or_default(), one_line(&source.to_string()))]
    Json {
        /// The file, when it came from one.
        path: Option<String>,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
}

/// `text` on one line: control characters (a JSON key may hold an escaped line
/// break, which serde_json names verbatim) are written as escapes, so every
/// error the command prints stays one line.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

impl Prestate {
    /// Parses an alloc from JSON text.
    pub fn from_json_str(text: &str) -> Result<Self, PrestateError> {
        let accounts = serde_json::from_str(text)
            .map_err(|source| PrestateError::Json { path: None, source })?;
        Ok(Self { accounts })
    }

    /// Reads and parses an alloc file (at most [`MAX_PRESTATE_BYTES`]; devices such as
    /// `/dev/zero` are refused).
    pub fn from_file(path: &Path) -> Result<Self, PrestateError> {
        let shown = path.display().to_string();
        let text = shm_statetest::read_text_capped(path, MAX_PRESTATE_BYTES).map_err(|source| {
            PrestateError::Read {
                path: shown.clone(),
                source,
            }
        })?;
        Self::from_json_str(&text).map_err(|e| match e {
            PrestateError::Json { source, .. } => PrestateError::Json {
                path: Some(shown),
                source,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_json_with_position() {
        let err = Prestate::from_json_str("{ \"0x01\": ").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = Prestate::from_json_str(
            r#"{"0xzz": {"balance":"0x0","nonce":"0x0","code":"0x","storage":{}}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid prestate JSON"),
            "{err}"
        );
    }

    #[test]
    fn devices_are_refused() {
        let err = Prestate::from_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read prestate file /dev/zero: not a regular file (a character device)"
        );
    }

    #[test]
    fn missing_file_names_path() {
        let err = Prestate::from_file(Path::new("/nonexistent/pre.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pre.json"), "{err}");
    }
}
