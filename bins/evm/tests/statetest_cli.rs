//! `evm statetest` as revme's and geth's users drive it: per-case outcome lines, index filters,
//! file names on standard input, traces (with the shared-memory opcodes named), the traced
//! re-run of the first failure, the slowest files.

use serde_json::Value;
use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

const EVM: &str = env!("CARGO_BIN_EXE_evm");

fn fixture(relative: &str) -> String {
    format!(
        "{}/../../../shared/ethereum-tests/GeneralStateTests/{relative}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// One of the statetest crate's synthetic fixtures that fail on purpose.
fn failing_fixture(name: &str) -> String {
    format!(
        "{}/../../crates/statetest/tests/data/revme-outcomes/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn evm(args: &[&str]) -> Output {
    Command::new(EVM)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn evm")
}

fn evm_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(EVM)
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

/// The JSON lines of stderr.
fn json_lines(o: &Output) -> Vec<Value> {
    stderr(o)
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

#[test]
fn json_outcome_prints_one_revme_line_per_case_on_stderr() {
    let file = fixture("stRevertTest/RevertOpcode.json");
    let o = evm(&["statetest", &file, "--json-outcome"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    for line in &lines {
        // The form goevmlab looks for: compact, stateRoot first.
        assert!(line.starts_with(r#"{"stateRoot":"0x"#), "{line}");
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["pass"], true);
        assert_eq!(v["fork"], "CANCUN");
        assert_eq!(v["test"], "RevertOpcode");
    }
    assert!(stdout(&o).contains("4 passed, 0 failed"), "{}", stdout(&o));
    // The short flag is revme's too.
    let short = evm(&["statetest", &file, "-o"]);
    assert_eq!(stderr(&short), stderr(&o));
}

#[test]
fn index_filters_in_revmes_and_geths_spelling() {
    let file = fixture("stRevertTest/RevertOpcode.json");
    let run = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["statetest", &file, "-o"];
        args.extend_from_slice(extra);
        let o = evm(&args);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        json_lines(&o)
    };
    let all = run(&[]);
    assert_eq!(all.len(), 4);
    let gas_one = run(&["-g", "1"]);
    assert!(!gas_one.is_empty() && gas_one.len() < 4);
    assert!(gas_one.iter().all(|v| v["g"] == 1));
    let value_one = run(&["--value", "1"]);
    assert!(value_one.iter().all(|v| v["v"] == 1), "{value_one:?}");
    let both = run(&["-d", "0", "-g", "1", "-v", "1"]);
    assert_eq!(both.len(), 1);
    assert_eq!(
        (
            both[0]["d"].clone(),
            both[0]["g"].clone(),
            both[0]["v"].clone()
        ),
        (0.into(), 1.into(), 1.into())
    );
    // geth: the case's position in its fork's list, and --statetest.fork.
    let third = run(&["--statetest.index", "2", "--statetest.fork", "Cancun"]);
    assert_eq!(third, vec![all[2].clone()]);
    // Nothing selected is no failure.
    let none = evm(&["statetest", &file, "-d", "9"]);
    assert!(none.status.success());
    assert!(
        stdout(&none).contains("0 passed, 0 failed"),
        "{}",
        stdout(&none)
    );
}

#[test]
fn batch_mode_runs_each_file_named_on_stdin() {
    let add11 = fixture("stExample/add11.json");
    let revert = fixture("stRevertTest/RevertOpcode.json");
    let input = format!("{add11}\n\n{revert}\n/nonexistent/x.json\n");
    let o = evm_stdin(&["statetest", "-o"], &input);
    // One name could not be run: a usage error, after the others ran.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("1 passed, 0 failed"), "{out}");
    assert!(out.contains("4 passed, 0 failed"), "{out}");
    assert_eq!(json_lines(&o).len(), 5);
    assert!(
        stderr(&o).contains("error: path does not exist: /nonexistent/x.json"),
        "{}",
        stderr(&o)
    );
    // All good: exit 0.
    let o = evm_stdin(&["statetest"], &format!("{add11}\n"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn the_first_failure_is_run_again_with_a_trace() {
    let file = failing_fixture("state-root-mismatch.json");
    let o = evm(&["statetest", &file, "--no-progress"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("1 passed, 1 failed"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("re-running the first failure with an EIP-3155 trace")
            && err.contains("stateRootMismatch [Cancun] d=1 g=0 v=0"),
        "{err}"
    );
    let steps = json_lines(&o);
    // PUSH1 PUSH1 ADD PUSH1 SSTORE STOP, at depth 1.
    let names: Vec<&str> = steps
        .iter()
        .map(|s| s["opName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["PUSH1", "PUSH1", "ADD", "PUSH1", "SSTORE", "STOP"]);
    // Not when the output is for a machine, or when asked not to.
    for flag in ["--json-outcome", "--no-rerun", "--json"] {
        let o = evm(&["statetest", &file, "--no-progress", flag]);
        assert!(!stderr(&o).contains("re-running"), "{flag}");
    }
}

#[test]
fn trace_of_one_case_then_its_outcome() {
    let file = fixture("stExample/add11.json");
    let o = evm(&["statetest", &file, "--trace", "-o"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines = json_lines(&o);
    let (outcome, steps) = lines.split_last().unwrap();
    assert_eq!(outcome["pass"], true);
    assert_eq!(steps.len(), 6);
    assert_eq!(steps[2]["opName"], "ADD");
    assert!(steps
        .iter()
        .all(|s| s.get("stack").is_some() && s.get("memory").is_none()));
    // The shape flags.
    let o = evm(&[
        "statetest",
        &file,
        "--trace.memory",
        "--trace.nostack",
        "--trace.returndata",
    ]);
    let steps = json_lines(&o);
    assert_eq!(steps.len(), 6);
    assert!(steps
        .iter()
        .all(|s| s.get("stack").is_none() && s.get("memory").is_some() && s["returnData"] == "0x"));
}

#[test]
fn traces_name_the_shared_memory_opcodes_when_it_is_on() {
    // This fixture's code runs 0xE0 first: invalid with shared memory off, SHARED_ALLOC on.
    let file = fixture("stBadOpcode/opcE0DiffPlaces.json");
    let trace = |shm: bool| -> Vec<Value> {
        let mut args = vec![
            "statetest",
            &file,
            "--trace",
            "-d",
            "0",
            "--no-skip-file",
            "--no-rerun",
        ];
        if shm {
            args.push("--shm");
        }
        json_lines(&evm(&args))
    };
    let off = trace(false);
    let on = trace(true);
    assert!(off
        .iter()
        .any(|s| s["op"] == 0xe0 && s.get("opName").is_none()));
    assert!(off.iter().all(|s| s["opName"] != "SHARED_ALLOC"));
    assert!(
        on.iter()
            .any(|s| s["op"] == 0xe0 && s["opName"] == "SHARED_ALLOC"),
        "{on:?}"
    );
}

#[test]
fn slowest_files_are_listed() {
    let o = evm(&[
        "statetest",
        &fixture("stExample"),
        "--no-progress",
        "--slowest",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let listed: Vec<&str> = out
        .lines()
        .skip_while(|line| *line != "slowest files:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect();
    assert_eq!(listed.len(), 2, "{out}");
    assert!(listed.iter().all(|line| line.contains("stExample/")));
}
