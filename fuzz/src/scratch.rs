//! Scratch directories for targets that go through real files.

use std::path::Path;

/// A fresh directory, on tmpfs when there is one (region files are mapped; a
/// tmpfs keeps the fuzzer off the disk), removed when dropped.
pub(crate) fn dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("shm-fuzz-");
        b
    };
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return dir;
        }
    }
    builder.tempdir().expect("a temporary directory")
}
