//! Lists of fixture paths with a note each: the files the runner does not run, with
//! the reason why ([`SkipList`]), and the files it starts first because they are
//! slow, with their measured time ([`PathList::heavy_first`]).

use std::path::{Component, Path, PathBuf};

/// The fixtures that expect 0xE0–0xE4 to be undefined opcodes: with shared memory on, those bytes
/// are the shared-memory instructions, so these files are expected to fail and are skipped.
pub const SHARED_MEMORY_OPCODE_CONFLICTS: [&str; 6] = [
    "stBadOpcode/opcE0DiffPlaces.json",
    "stBadOpcode/opcE1DiffPlaces.json",
    "stBadOpcode/opcE2DiffPlaces.json",
    "stBadOpcode/opcE3DiffPlaces.json",
    "stBadOpcode/opcE4DiffPlaces.json",
    "stBadOpcode/undefinedOpcodeFirstByte.json",
];

/// The fixtures that take longest (measured with `evm statetest --slowest`), heaviest
/// first: the runner starts them before the rest so that the slowest case overlaps
/// everything else instead of running alone at the end.
const HEAVY_FIRST: &str = include_str!("../heavy-first.txt");

/// The largest list file read (a list is a few kilobytes).
const MAX_LIST_BYTES: u64 = 16 << 20;

/// Why a skip list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SkipListError {
    /// The file could not be read.
    #[error("cannot read skip file {path}: {source}")]
    Io {
        /// The skip file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line names no path, or a path that is not relative.
    #[error("{origin}:{line}: {message}")]
    BadEntry {
        /// Where the text came from (a file path, or `<text>`).
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// One listed path: a fixture file or a folder, relative to `GeneralStateTests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipEntry {
    /// The path's components (`stBadOpcode`, `opcE0DiffPlaces.json`).
    components: Vec<String>,
    /// The note: why it is skipped, or what it costs.
    pub reason: String,
}

impl SkipEntry {
    /// An entry for `path` (relative, `/`-separated; the `.json` extension may be left out).
    pub fn new(path: &str, reason: impl Into<String>) -> Result<Self, String> {
        let path = Path::new(path.trim());
        let mut components = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => components.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => return Err(format!("`{}` is not a plain relative path", path.display())),
            }
        }
        if components.is_empty() {
            return Err("empty path".to_string());
        }
        Ok(Self {
            components,
            reason: reason.into(),
        })
    }

    /// The entry's path, `/`-separated.
    pub fn path(&self) -> String {
        self.components.join("/")
    }

    /// Whether `file` is this entry or lies under it. The entry's components must appear, in
    /// order and adjacent, among the file's; its last one may omit the `.json` extension.
    fn matches(&self, file_components: &[&str]) -> bool {
        let n = self.components.len();
        if file_components.len() < n {
            return false;
        }
        let Some((entry_last, entry_leading)) = self.components.split_last() else {
            return false;
        };
        file_components
            .windows(n)
            .any(|window| match window.split_last() {
                Some((last, leading)) => {
                    leading.iter().zip(entry_leading).all(|(a, b)| a == b)
                        && (last == entry_last || last.strip_suffix(".json") == Some(entry_last))
                }
                None => false,
            })
    }
}

/// A list of fixture paths (files or folders), each with a note: the reason to skip
/// it in a skip list, the measured time in the heavy-first list.
///
/// The text form has one entry per line: `<path relative to GeneralStateTests>  # note`;
/// lines that are blank or start with `#` are ignored.
///
/// ```
/// use shm_statetest::SkipList;
/// let list = SkipList::parse(
///     "# known-bad fixtures\nstExample/add11.json  # example reason\n",
///     "<text>",
/// )
/// .unwrap();
/// assert_eq!(list.len(), 1);
/// let file = std::path::Path::new("/x/GeneralStateTests/stExample/add11.json");
/// assert_eq!(list.reason_for(file), Some("example reason"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathList {
    entries: Vec<SkipEntry>,
}

/// The files a run does not run, with the reason why.
pub type SkipList = PathList;

impl PathList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a skip file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SkipListError> {
        let path = path.as_ref();
        let text = crate::read_text_capped(path, MAX_LIST_BYTES).map_err(|error| {
            let source = match error {
                crate::ReadError::Io(source) => source,
                other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
            };
            SkipListError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses the text form; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SkipListError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (path, reason) = match line.split_once('#') {
                Some((path, reason)) => (path.trim(), reason.trim()),
                None => (line, ""),
            };
            let bad_entry = |message: String| SkipListError::BadEntry {
                origin: origin.to_string(),
                line: index + 1,
                message,
            };
            if path.split_whitespace().count() != 1 {
                return Err(bad_entry(format!(
                    "expected one path before `#`, found `{path}`"
                )));
            }
            let reason = if reason.is_empty() {
                "listed in the skip file".to_string()
            } else {
                reason.to_string()
            };
            entries.push(SkipEntry::new(path, reason).map_err(bad_entry)?);
        }
        Ok(Self { entries })
    }

    /// The list of [`SHARED_MEMORY_OPCODE_CONFLICTS`], to add when shared memory is on.
    pub fn shared_memory_opcode_conflicts() -> Self {
        let reason = "expects 0xE0-0xE4 to be undefined; they are the shared-memory opcodes";
        Self {
            entries: SHARED_MEMORY_OPCODE_CONFLICTS
                .iter()
                .map(|path| SkipEntry::new(path, reason).expect("constant relative paths"))
                .collect(),
        }
    }

    /// Adds one entry.
    pub fn push(&mut self, entry: SkipEntry) {
        self.entries.push(entry);
    }

    /// Adds every entry of `other` (a second skip set given in code).
    pub fn extend(&mut self, other: SkipList) {
        self.entries.extend(other.entries);
    }

    /// The entries, in the order given.
    pub fn entries(&self) -> &[SkipEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The built-in heavy-first list: the slowest fixtures of
    /// `ethereum/tests`' GeneralStateTests, heaviest first.
    ///
    /// ```
    /// let heavy = shm_statetest::PathList::heavy_first();
    /// let blake = std::path::Path::new("GeneralStateTests/stTimeConsuming/CALLBlake2f_MaxRounds.json");
    /// assert_eq!(heavy.position(blake), Some(0));
    /// ```
    pub fn heavy_first() -> Self {
        Self::parse(HEAVY_FIRST, "heavy-first.txt").expect("the built-in list parses")
    }

    /// The note of the first entry that matches `file` (for a skip list: the reason it
    /// is skipped).
    pub fn reason_for(&self, file: &Path) -> Option<&str> {
        self.position(file)
            .map(|index| self.entries[index].reason.as_str())
    }

    /// The index of the first entry that matches `file`.
    pub fn position(&self, file: &Path) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let owned: Vec<String> = file
            .components()
            .filter_map(|c| match c {
                Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let components: Vec<&str> = owned.iter().map(String::as_str).collect();
        self.entries
            .iter()
            .position(|entry| entry.matches(&components))
    }
}
