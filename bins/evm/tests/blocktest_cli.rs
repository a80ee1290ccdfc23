//! `evm blocktest` as a user runs it: summary, JSON, `--run`, `--shm`, exit codes, and bad
//! input as one line.

use std::process::{Command, Output, Stdio};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/ethereum-tests/BlockchainTests"
);

fn evm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evm"))
        .args(args)
        .output()
        .expect("spawn evm")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_folder_passes_and_prints_the_summary() {
    let folder = format!("{FIXTURES}/ValidBlocks/bcExample");
    for extra in [
        &[][..],
        &["--shm"][..],
        &["--shm", "testing"][..],
        &["--eth-evm-factory"][..],
    ] {
        let mut args = vec!["blocktest", &folder, "--no-progress"];
        args.extend_from_slice(extra);
        let o = evm(&args);
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.ends_with("4 passed, 0 failed, 0 skipped\n"),
            "{extra:?}: {out}"
        );
    }
}

#[test]
fn json_run_filter_and_skips() {
    let folder = format!("{FIXTURES}/TransitionTests");
    let o = evm(&[
        "blocktest",
        &folder,
        "--no-progress",
        "--json",
        "--run",
        "Dao",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // Four DAO tests: three skipped (tests/blocktest-skip.txt), one run.
    assert_eq!(report["passed"], 1);
    assert_eq!(report["skipped"], 3);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["skips"].as_array().unwrap().len(), 3);
    assert_eq!(stderr(&o).trim(), "1 passed, 0 failed, 3 skipped");

    // Without the skip file they run, and fail: exit code 1, one FAIL line each.
    let o = evm(&[
        "blocktest",
        &folder,
        "--no-progress",
        "--run",
        "Dao",
        "--no-skip-file",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("FAIL ")).count(),
        3,
        "{out}"
    );
    assert!(out.ends_with("1 passed, 3 failed, 0 skipped\n"), "{out}");
}

#[test]
fn a_wrong_fixture_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(format!(
        "{FIXTURES}/ValidBlocks/bcExample/basefeeExample.json"
    ))
    .unwrap();
    let mut fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let test = fixture
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    test["lastblockhash"] = serde_json::json!(format!("0x{}", "11".repeat(32)));
    let path = dir.path().join("wrong.json");
    std::fs::write(&path, fixture.to_string()).unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"x\": [").unwrap();
    let o = evm(&["blocktest", dir.path().to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("broken.json: not a blockchain-test fixture"),
        "{out}"
    );
    assert!(
        out.contains("wrong.json :: basefeeExample") && out.contains("head is 0x"),
        "{out}"
    );
    assert!(out.ends_with("0 passed, 2 failed, 0 skipped\n"), "{out}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let cases: [&[&str]; 5] = [
        &["blocktest", "/nonexistent/fixtures"],
        &["blocktest", FIXTURES, "--run", "("],
        &["blocktest", FIXTURES, "--shm", "bogus"],
        &[
            "blocktest",
            FIXTURES,
            "--skip-file",
            "/nonexistent/skip.txt",
        ],
        &["blocktest", FIXTURES, "-j", "0"],
    ];
    for args in cases {
        let o = evm(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}

#[test]
fn a_full_disk_is_one_line_not_a_panic() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // no /dev/full on this system
    };
    let o = Command::new(env!("CARGO_BIN_EXE_evm"))
        .args([
            "blocktest",
            &format!("{FIXTURES}/ValidBlocks/bcExample"),
            "--no-progress",
        ])
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.starts_with("error: cannot write the report"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
