//! Reading a text file with a size cap, refusing special files: a fixture, skip list
//! or input named `/dev/zero` must end in a clear error, not in reading forever.

use std::{
    fs::File,
    io::{self, Read},
    path::Path,
};

/// Why a capped read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The path is a device, a socket or a folder, not a file.
    #[error("not a regular file (a {0})")]
    NotAFile(&'static str),
    /// The file holds more than the cap.
    #[error("larger than the {limit}-byte limit")]
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The file is not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
}

/// Reads `path` as UTF-8 text of at most `limit` bytes. Regular files and pipes
/// (`<(…)`, FIFOs) are read; devices (`/dev/zero`), sockets and folders are refused
/// before anything is read.
///
/// ```
/// use shm_statetest::{read_text_capped, ReadError};
/// let error = read_text_capped("/dev/zero".as_ref(), 1 << 20).unwrap_err();
/// assert!(matches!(error, ReadError::NotAFile("character device")));
/// ```
pub fn read_text_capped(path: &Path, limit: u64) -> Result<String, ReadError> {
    let file = File::open(path)?;
    check_kind(&file.metadata()?)?;
    read_capped(file, limit)
}

/// Reads `path` as bytes, at most `limit` of them, refusing devices as
/// [`read_text_capped`] does.
pub fn read_bytes_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = File::open(path)?;
    check_kind(&file.metadata()?)?;
    read_bytes(file, limit)
}

/// Reads `reader` (standard input, say) as UTF-8 text of at most `limit` bytes.
pub fn read_capped(reader: impl Read, limit: u64) -> Result<String, ReadError> {
    String::from_utf8(read_bytes(reader, limit)?).map_err(|_| ReadError::NotText)
}

fn read_bytes(reader: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

/// Refuses what is neither a regular file nor a pipe.
pub fn check_kind(metadata: &std::fs::Metadata) -> Result<(), ReadError> {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    let refused = if kind.is_dir() {
        "folder"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        return Ok(());
    };
    Err(ReadError::NotAFile(refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_refusals() {
        assert!(matches!(
            read_capped(&b"12345"[..], 4),
            Err(ReadError::TooLarge { limit: 4 })
        ));
        assert_eq!(read_capped(&b"1234"[..], 4).unwrap(), "1234");
        assert!(matches!(
            read_capped(&[0xff, 0xfe][..], 4),
            Err(ReadError::NotText)
        ));
        assert!(matches!(
            read_text_capped(Path::new("/"), 10),
            Err(ReadError::NotAFile("folder"))
        ));
        assert!(matches!(
            read_text_capped(Path::new("/dev/null"), 10),
            Err(ReadError::NotAFile("character device"))
        ));
        let missing = read_text_capped(Path::new("/nonexistent/x"), 10).unwrap_err();
        assert!(missing.to_string().contains("No such file"), "{missing}");
    }
}
