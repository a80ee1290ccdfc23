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

#[test]
fn create_runs_initcode_and_prints_the_deployed_code_and_address() {
    // Initcode: CODECOPY the 10 bytes after it (a runtime returning 42) and RETURN them.
    let runtime = "602a60005260206000f3";
    let initcode = format!("0x600a600c600039600a6000f3{runtime}");
    let o = evm(&["run", &initcode, "--create", "--json", "--dump"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["output"], format!("0x{runtime}"));
    let sender: alloy_primitives::Address = "0x000000000000000000000000000073656e646572"
        .parse()
        .unwrap();
    let created = sender.create(0);
    assert_eq!(v["created_address"], created.to_string().to_lowercase());
    // The new account holds the runtime code; the receiver got none.
    let post = &v["post_state"];
    assert_eq!(
        post[created.to_string().to_lowercase()]["code"],
        format!("0x{runtime}")
    );
    assert!(post
        .get("0x0000000000000000000000007265636569766572")
        .is_none());
    // Text form.
    let o = evm(&["run", &initcode, "--create"]);
    assert!(
        stdout(&o).contains(&format!("created: {created}")),
        "{}",
        stdout(&o)
    );
    // --create and --receiver do not go together.
    let o = evm(&[
        "run",
        &initcode,
        "--create",
        "--receiver",
        "0x00000000000000000000000000000000000000aa",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn price_makes_the_sender_pay_for_gas() {
    let dir = std::env::temp_dir().join(format!("evm-cli-price-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pre = |balance: u64| {
        let path = dir.join(format!("pre-{balance}.json"));
        std::fs::write(
            &path,
            format!(r#"{{"0x000000000000000000000000000073656e646572":{{"balance":"{balance:#x}","nonce":"0x0","code":"0x","storage":{{}}}}}}"#),
        )
        .unwrap();
        path
    };
    // STOP costs the intrinsic 21,000 gas; at 10 wei a gas, 210,000 wei up front.
    let enough = pre(210_000);
    let o = evm(&[
        "run",
        "0x00",
        "--gas",
        "21000",
        "--price",
        "10",
        "--prestate",
        enough.to_str().unwrap(),
        "--json",
        "--dump",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The sender paid it all to the block's beneficiary (the zero address).
    let post = &v["post_state"];
    assert_eq!(
        post["0x000000000000000000000000000073656e646572"]["balance"], "0x0",
        "{v}"
    );
    assert_eq!(
        post["0x0000000000000000000000000000000000000000"]["balance"], "0x33450",
        "{v}"
    );
    let short = pre(209_999);
    let o = evm(&[
        "run",
        "0x00",
        "--gas",
        "21000",
        "--price",
        "10",
        "--prestate",
        short.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // Without a price the poorer sender is fine.
    let o = evm(&[
        "run",
        "0x00",
        "--gas",
        "21000",
        "--prestate",
        short.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = evm(&["run", "0x00", "--price", "ten"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("price: `ten` is not a number"),
        "{}",
        stderr(&o)
    );
}

/// The step lines of a `--trace` run's stderr (the summary line left out).
fn trace_steps(o: &Output) -> Vec<serde_json::Value> {
    stderr(o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each trace line is JSON"))
        .filter(|v| v.get("pc").is_some())
        .collect()
}

#[test]
fn trace_memory_nostack_and_returndata() {
    let o = evm(&["run", ADD, "--trace.memory"]);
    assert_eq!(o.status.code(), Some(0));
    let steps = trace_steps(&o);
    assert_eq!(steps.len(), 8);
    // After MSTORE (step 5) memory holds the word 3.
    assert_eq!(steps[5]["memory"], format!("0x{:064x}", 3));
    assert!(steps.iter().all(|s| s.get("stack").is_some()));
    let o = evm(&["run", ADD, "--trace.nostack"]);
    assert!(trace_steps(&o)
        .iter()
        .all(|s| s.get("stack").is_none() && s.get("memory").is_none()));
    // The identity precompile returns the word 42, then RETURNDATASIZE: the return data
    // shows with the flag. PUSH1 42 PUSH1 0 MSTORE, PUSH1 32 PUSH1 0 PUSH1 32 PUSH1 0
    // PUSH1 4 GAS STATICCALL, RETURNDATASIZE STOP.
    let code = "0x602a600052 6020600060206000 6004 5afa 3d00".replace(' ', "");
    let with = trace_steps(&evm(&["run", &code, "--trace.returndata"]));
    let without = trace_steps(&evm(&["run", &code, "--trace"]));
    let rds =
        |steps: &[serde_json::Value]| steps.iter().find(|s| s["op"] == 0x3d).cloned().unwrap();
    assert_eq!(rds(&without)["returnData"], "0x");
    assert_eq!(rds(&with)["returnData"], format!("0x{:064x}", 42));
}

#[test]
fn traces_and_halts_name_the_shared_memory_opcodes() {
    // PUSH1 0 PUSH1 64 SHARED_ALLOC STOP
    let code = "0x60006040e000";
    let off = evm(&["run", code, "--trace", "--json"]);
    assert_eq!(off.status.code(), Some(4));
    let steps = trace_steps(&off);
    assert_eq!(steps[2]["op"], 0xe0);
    assert!(steps[2].get("opName").is_none());
    let v: serde_json::Value = serde_json::from_slice(&off.stdout).unwrap();
    assert_eq!(v["halt_reason"], "OpcodeNotFound");
    assert_eq!(v["halt_site"]["op"], 0xe0);
    assert_eq!(v["halt_site"]["pc"], 4);
    assert!(v["halt_site"].get("op_name").is_none());

    let on = evm(&["run", code, "--shm", "testing", "--trace"]);
    assert_eq!(on.status.code(), Some(0), "{}", stderr(&on));
    assert_eq!(trace_steps(&on)[2]["opName"], "SHARED_ALLOC");

    // SHARED_WRITE under STATICCALL halts the inner frame; the report names it.
    let o = evm(&[
        "run",
        "--shm",
        "development",
        "--asm",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/static.easm"),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["halt_site"]["op_name"], "SHARED_WRITE", "{v}");
    assert_eq!(v["halt_site"]["depth"], 2);
    let o = evm(&[
        "run",
        "--shm",
        "development",
        "--asm",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/static.easm"),
    ]);
    assert!(
        stdout(&o).contains("last halt: SHARED_WRITE at pc"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn disasm_names_the_shared_memory_opcodes_and_reads_back() {
    let o = evm(&["disasm", "0x6001e4fe"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "PUSH1 0x01           ; 0\nDATA 0xe4            ; 2: undefined\nINVALID              ; 3\n"
    );
    let o = evm(&["disasm", "0x6001e4fe", "--shm"]);
    assert!(
        stdout(&o).contains("SHARED_WRITE         ; 2\n"),
        "{}",
        stdout(&o)
    );
    // What disasm prints, asm reads back.
    let o = evm_stdin(&["asm", "-"], &stdout(&o));
    assert_eq!(stdout(&o).trim(), "0x6001e4fe");
    let o = evm(&["disasm"]);
    assert_eq!(o.status.code(), Some(2));
}
