//! The skip file's text form, its matching rules, and loading it.

mod common;

use common::{fixtures, TempDir};
use shm_statetest::{SkipList, SkipListError, SHARED_MEMORY_OPCODE_CONFLICTS};
use std::path::Path;

#[test]
fn parses_entries_comments_and_reasons() {
    let text = "\
# header comment

stCreate2/create2collisionStorageParis.json  # EIP-7610: storage-only account
  stBadOpcode/opcE0DiffPlaces   #   no extension, padded reason  
Pyspecs/paris
   # indented comment
";
    let list = SkipList::parse(text, "<text>").unwrap();
    let entries: Vec<(String, &str)> = list
        .entries()
        .iter()
        .map(|e| (e.path(), e.reason.as_str()))
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                "stCreate2/create2collisionStorageParis.json".to_string(),
                "EIP-7610: storage-only account"
            ),
            (
                "stBadOpcode/opcE0DiffPlaces".to_string(),
                "no extension, padded reason"
            ),
            ("Pyspecs/paris".to_string(), "listed in the skip file"),
        ]
    );
}

#[test]
fn matches_files_by_trailing_components_with_or_without_extension() {
    let list = SkipList::parse(
        "stBadOpcode/opcE0DiffPlaces # a\nstCreate2/create2collisionStorageParis.json # b\nPyspecs/paris # c\n",
        "<text>",
    )
    .unwrap();
    let root = Path::new("/any/where/GeneralStateTests");
    assert_eq!(
        list.reason_for(&root.join("stBadOpcode/opcE0DiffPlaces.json")),
        Some("a")
    );
    assert_eq!(
        list.reason_for(&root.join("stCreate2/create2collisionStorageParis.json")),
        Some("b")
    );
    // A folder entry covers everything under it.
    assert_eq!(
        list.reason_for(&root.join("Pyspecs/paris/x/y.json")),
        Some("c")
    );
    // Relative paths match as well as absolute ones.
    assert_eq!(
        list.reason_for(Path::new("stBadOpcode/opcE0DiffPlaces.json")),
        Some("a")
    );

    // Near misses do not.
    assert_eq!(
        list.reason_for(&root.join("stBadOpcode/opcE0DiffPlacesX.json")),
        None
    );
    assert_eq!(
        list.reason_for(&root.join("other/opcE0DiffPlaces.json")),
        None
    );
    assert_eq!(
        list.reason_for(&root.join("stCreate2/create2collisionStorage.json")),
        None
    );
    assert_eq!(list.reason_for(&root.join("Pyspecs/parisian/y.json")), None);
    assert_eq!(list.reason_for(Path::new("opcE0DiffPlaces.json")), None);
}

#[test]
fn rejects_bad_entries_with_their_line_number() {
    for (text, line) in [
        (
            "ok/file.json # fine\nfirst.json second.json # two paths\n",
            2,
        ),
        ("# c\n\n/absolute/path.json # absolute\n", 3),
        ("../outside.json # escapes the folder\n", 1),
        (
            "   # only a comment\n# reason without path\n  #\n./ # nothing\n",
            4,
        ),
    ] {
        match SkipList::parse(text, "skip.txt") {
            Err(SkipListError::BadEntry {
                origin,
                line: got_line,
                ..
            }) => {
                assert_eq!(origin, "skip.txt");
                assert_eq!(got_line, line, "for {text:?}");
            }
            other => panic!("expected a bad entry for {text:?}, got {other:?}"),
        }
    }
}

#[test]
fn loads_a_file_and_reports_a_missing_one() {
    let dir = TempDir::new("skip-load");
    let path = dir.write("skip.txt", "a/b.json # why\n");
    let list = SkipList::load(&path).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list.reason_for(Path::new("x/a/b.json")), Some("why"));

    match SkipList::load(dir.path().join("missing.txt")) {
        Err(SkipListError::Io { path, .. }) => assert!(path.ends_with("missing.txt")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn extend_adds_a_second_set_given_in_code() {
    let mut list = SkipList::parse("a/b.json # from the file\n", "<text>").unwrap();
    list.extend(SkipList::shared_memory_opcode_conflicts());
    assert_eq!(list.len(), 1 + SHARED_MEMORY_OPCODE_CONFLICTS.len());
    assert_eq!(
        list.reason_for(Path::new("a/b.json")),
        Some("from the file")
    );
    let reason = list
        .reason_for(Path::new(
            "GeneralStateTests/stBadOpcode/undefinedOpcodeFirstByte.json",
        ))
        .unwrap();
    assert!(reason.contains("shared-memory"), "{reason}");
}

#[test]
fn shared_memory_conflicts_name_existing_fixtures() {
    for relative in SHARED_MEMORY_OPCODE_CONFLICTS {
        let path = fixtures().join(relative);
        assert!(path.is_file(), "{} is missing", path.display());
    }
}
