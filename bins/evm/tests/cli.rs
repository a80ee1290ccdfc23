//! The `evm` binary as a user runs it: outputs, exit codes and error messages.

use std::process::{Command, Output, Stdio};

fn evm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evm"))
        .args(args)
        .output()
        .expect("spawn evm")
}

fn evm_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_evm"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const ADD: &str = "0x600160020160005260206000f3"; // 1 + 2, returned as one word

#[test]
fn run_positional_and_code_flag_agree() {
    for args in [&["run", ADD][..], &["run", "--code", ADD][..]] {
        let o = evm(args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains(
                "output: 0x0000000000000000000000000000000000000000000000000000000000000003"
            ),
            "{out}"
        );
        assert!(out.contains("gas used: 21024"), "{out}");
        assert!(out.contains("status: success"), "{out}");
    }
}

#[test]
fn run_json_is_one_object() {
    let o = evm(&["run", ADD, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["status"], "success");
    assert_eq!(v["gas_used"], 21024);
    assert_eq!(v["output"].as_str().unwrap().len(), 66);
}

#[test]
fn run_trace_is_eip3155_on_stderr() {
    let o = evm(&["run", ADD, "--trace", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each trace line is JSON"))
        .collect();
    // PUSH1 PUSH1 ADD PUSH1 MSTORE PUSH1 PUSH1 RETURN, then the summary line.
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[0]["opName"], "PUSH1");
    assert_eq!(lines[2]["opName"], "ADD");
    assert_eq!(lines[7]["opName"], "RETURN");
    assert_eq!(lines[8]["gasUsed"], "0x5220");
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .expect("result still one JSON object on stdout");
}

#[test]
fn codefile_from_stdin_with_whitespace_and_dump() {
    let o = evm_stdin(
        &["run", "--codefile", "-", "--dump", "--json"],
        "60 01\n60 00\n55\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let receiver = &v["post_state"]["0x0000000000000000000000007265636569766572"];
    assert_eq!(receiver["storage"]["0x0"], "0x1");
}

#[test]
fn calldata_value_and_prestate() {
    let dir = std::env::temp_dir().join(format!("evm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pre = dir.join("pre.json");
    // Account 0xaa..aa holds 7 in slot 0; the code returns SLOAD(0) of itself plus CALLVALUE.
    std::fs::write(
        &pre,
        r#"{"0x0000000000000000000000007265636569766572":{"balance":"0x0","nonce":"0x0","code":"0x","storage":{"0x00":"0x07"}}}"#,
    )
    .unwrap();
    // PUSH1 0 SLOAD CALLVALUE ADD PUSH1 0 CALLDATALOAD ADD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
    let code = "0x60005434016000350160005260206000f3";
    let input = format!("0x{:064x}", 100);
    let o = evm(&[
        "run",
        code,
        "--input",
        &input,
        "--value",
        "5",
        "--prestate",
        pre.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["output"], format!("0x{:064x}", 112));
}

#[test]
fn revert_and_halt_exit_codes() {
    let o = evm(&["run", "0x60006000fd"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("status: revert"));
    let o = evm(&["run", "0xfe"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stdout(&o).contains("status: halt (InvalidFEOpcode)"));
    let o = evm(&["run", "0x5b600056", "--gas", "30000"]); // JUMPDEST PUSH1 0 JUMP: loops until out of gas
    assert_eq!(o.status.code(), Some(4));
    assert!(stdout(&o).contains("OutOfGas"), "{}", stdout(&o));
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "0x600"], "code: odd number of hex digits (3)"),
        (
            &["run", "0x60zz"],
            "code: invalid hex character 'z' at position 2",
        ),
        (
            &["run", "--codefile", "/nonexistent/code.hex"],
            "codefile: cannot read /nonexistent/code.hex",
        ),
        (
            &["run", "00", "--gas", "lots"],
            "gas: `lots` is not a number",
        ),
        (&["run", "00", "--fork", "Foo"], "fork: unknown fork `Foo`"),
        (
            &["run", "00", "--input", "0x1"],
            "input: odd number of hex digits",
        ),
        (
            &["run", "00", "--sender", "0x12"],
            "sender: `0x12` is not an address",
        ),
        (
            &["run", "00", "--prestate", "/nonexistent/pre.json"],
            "cannot read prestate file /nonexistent/pre.json",
        ),
        (&["run"], "no code given"),
    ];
    for (args, want) in cases {
        let o = evm(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn invalid_prestate_json_names_file_and_position() {
    let dir = std::env::temp_dir().join(format!("evm-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pre = dir.join("bad.json");
    std::fs::write(&pre, "{\"0x01\": [}").unwrap();
    let o = evm(&["run", "00", "--prestate", pre.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("invalid prestate JSON in") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn rejected_transaction_exit_3() {
    // The prestate gives the sender no balance, so it cannot pay the value.
    let dir = std::env::temp_dir().join(format!("evm-cli-poor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pre = dir.join("pre.json");
    std::fs::write(&pre, r#"{"0x000000000000000000000000000073656e646572":{"balance":"0x0","nonce":"0x0","code":"0x","storage":{}}}"#)
        .unwrap();
    let o = evm(&[
        "run",
        "00",
        "--value",
        "1",
        "--prestate",
        pre.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: transaction rejected"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bench_reports_identical_runs() {
    let o = evm(&["run", ADD, "--bench", "--bench-runs", "3", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["runs"], 3);
    assert_eq!(v["result"]["gas_used"], 21024);
    assert!(v["median_ns"].as_u64().unwrap() > 0);
    assert!(v["allocations_per_run"].is_u64());
}

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/ethereum-tests/GeneralStateTests"
);

#[test]
fn statetest_passes_a_fixture_and_prints_the_summary() {
    let file = format!("{FIXTURES}/stExample/add11.json");
    let o = evm(&["statetest", &file, "--no-progress"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let last = out.lines().last().unwrap_or_default();
    assert!(last.ends_with(" passed, 0 failed"), "{out}");
    // The same with shared memory on, and as JSON.
    let o = evm(&["statetest", &file, "--no-progress", "--shm", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["failed"], 0);
    assert!(report["passed"].as_u64().unwrap() > 0);
}

#[test]
fn statetest_with_shm_skips_the_opcode_conflicts_and_they_fail_unskipped() {
    let file = format!("{FIXTURES}/stBadOpcode/opcE0DiffPlaces.json");
    let o = evm(&["statetest", &file, "--no-progress", "--shm"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o)
            .lines()
            .last()
            .unwrap()
            .ends_with("0 passed, 0 failed, 35 skipped"),
        "{}",
        stdout(&o)
    );
    let o = evm(&[
        "statetest",
        &file,
        "--no-progress",
        "--shm",
        "--no-skip-file",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let o = evm(&["statetest", &file, "--no-progress"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "passes with shared memory off: {}",
        stdout(&o)
    );
}

#[test]
fn statetest_bad_input() {
    let dir = std::env::temp_dir().join(format!("evm-cli-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{ not json").unwrap();
    let o = evm(&["statetest", broken.to_str().unwrap(), "--no-progress"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a fixture that does not parse is a failure: {}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("broken.json"), "{}", stdout(&o));
    for (args, want) in [
        (
            vec!["statetest", "/nonexistent/fixtures"],
            "/nonexistent/fixtures",
        ),
        (vec!["statetest", FIXTURES, "--fork", "Nope"], "Nope"),
        (vec!["statetest", FIXTURES, "--run", "("], "regex"),
        (vec!["statetest", FIXTURES, "--shm", "bogus"], "bogus"),
    ] {
        let o = evm(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("error: ") && err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn bench_with_shared_memory_gives_the_same_handle_every_run() {
    // PUSH1 0 PUSH1 64 SHARED_ALLOC PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
    let o = evm(&[
        "run",
        "0x60006040e060005260206000f3",
        "--shm",
        "testing",
        "--bench",
        "--bench-runs",
        "3",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["result"]["output"],
        format!("0x{:064x}", (1u64 << 32) | 1)
    );
}
