//! No input makes `evm` panic or hang: closed pipes and full disks on its output, devices and
//! endless streams as its input, zero bench runs, failed snapshot loads. Every case ends with
//! one line on stderr and a non-zero exit code, within a deadline.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const EVM: &str = env!("CARGO_BIN_EXE_evm");
const ADD: &str = "0x600160020160005260206000f3";
const EXIT_USAGE: i32 = 2;
const EXIT_OUTPUT: i32 = 6;

/// Longest a case may take: any of them hanging fails the test instead of CI.
const DEADLINE: Duration = Duration::from_secs(60);

fn fixture(relative: &str) -> String {
    format!(
        "{}/../../../shared/ethereum-tests/GeneralStateTests/{relative}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs `cmd` to the end, or kills it and fails at the deadline.
fn finish(mut cmd: Command) -> Output {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn evm");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{cmd:?} still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn evm(args: &[&str]) -> Command {
    let mut cmd = Command::new(EVM);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
    cmd
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One line on stderr, starting `error:` and containing `needle`.
fn assert_one_error_line(o: &Output, needle: &str, what: &str) {
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: {err}");
    assert!(lines[0].starts_with("error: "), "{what}: {err}");
    assert!(lines[0].contains(needle), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Commands that print to stdout, one of each kind.
fn printing_commands(dir: &TempDir) -> Vec<Vec<String>> {
    let asm = dir.file(
        "add.easm",
        "PUSH 1 PUSH 2 ADD PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN\n",
    );
    let add11 = fixture("stExample/add11.json");
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        owned(&["run", ADD]),
        owned(&["run", ADD, "--json", "--dump"]),
        owned(&["run", ADD, "--bench", "--bench-runs", "1"]),
        owned(&["asm", asm.to_str().unwrap()]),
        owned(&["disasm", ADD]),
        owned(&["statetest", &add11, "--no-progress"]),
        owned(&["statetest", &add11, "--no-progress", "--json"]),
    ]
}

#[test]
fn a_closed_pipe_on_stdout_is_one_line_and_exit_6() {
    let dir = TempDir::new();
    for args in printing_commands(&dir) {
        let (reader, writer) = std::io::pipe().unwrap();
        // The reading end is gone before evm starts: its first write fails.
        drop(reader);
        let mut cmd = Command::new(EVM);
        cmd.args(&args).stdin(Stdio::null()).stdout(writer);
        let o = finish(cmd);
        assert_eq!(
            o.status.code(),
            Some(EXIT_OUTPUT),
            "{args:?}: {}",
            stderr(&o)
        );
        // `statetest --json` prints its summary on stderr first: look at the last line.
        let err = stderr(&o);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: cannot write to standard output: Broken pipe"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_full_disk_on_stdout_is_one_line_and_exit_6() {
    let dir = TempDir::new();
    for args in printing_commands(&dir) {
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut cmd = Command::new(EVM);
        cmd.args(&args).stdin(Stdio::null()).stdout(full);
        let o = finish(cmd);
        assert_eq!(
            o.status.code(),
            Some(EXIT_OUTPUT),
            "{args:?}: {}",
            stderr(&o)
        );
        let err = stderr(&o);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: cannot write to standard output: No space left on device"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn shm_ls_to_a_full_disk_is_exit_6() {
    let root = TempDir::new();
    // An empty namespace: `ls` still prints its header line.
    std::fs::create_dir_all(root.path().join("ns")).unwrap();
    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut cmd = Command::new(EVM);
    cmd.args(["shm", "ls", "ns", "--root", root.path().to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(full);
    let o = finish(cmd);
    assert_eq!(o.status.code(), Some(EXIT_OUTPUT), "{}", stderr(&o));
    assert_one_error_line(&o, "No space left on device", "shm ls > /dev/full");
}

#[test]
fn a_trace_to_a_full_disk_is_exit_6_and_the_result_is_still_printed() {
    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut cmd = evm(&["run", ADD, "--trace"]);
    cmd.stderr(full);
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(EXIT_OUTPUT));
    assert!(String::from_utf8_lossy(&o.stdout).contains("gas used: 21024"));
}

#[test]
fn devices_as_input_files_are_refused_at_once() {
    let root = TempDir::new();
    let ns_root = root.path().to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--codefile", "/dev/zero"],
            "codefile: cannot read /dev/zero",
        ),
        (
            vec!["run", "--asm", "/dev/zero"],
            "asm: cannot read /dev/zero",
        ),
        (
            vec!["run", "00", "--inputfile", "/dev/zero"],
            "inputfile: cannot read /dev/zero",
        ),
        (
            vec!["run", "00", "--prestate", "/dev/zero"],
            "cannot read prestate file /dev/zero",
        ),
        (vec!["asm", "/dev/zero"], "asm: cannot read /dev/zero"),
        (
            vec!["disasm", "--codefile", "/dev/zero"],
            "codefile: cannot read /dev/zero",
        ),
        (
            vec!["statetest", "/dev/zero", "--no-progress"],
            "no .json fixture files under /dev/zero",
        ),
        (
            vec!["statetest", "x.json", "--skip-file", "/dev/zero"],
            "cannot read skip file /dev/zero",
        ),
        (
            vec!["shm", "load", "/dev/zero", "ns", "--root", ns_root],
            "cannot read /dev/zero",
        ),
    ];
    for (args, needle) in cases {
        let o = finish(evm(&args));
        assert_eq!(
            o.status.code(),
            Some(EXIT_USAGE),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_one_error_line(&o, needle, &format!("{args:?}"));
        let refused = stderr(&o).contains("not a regular file (a character device)")
            || stderr(&o).contains("no .json fixture files");
        assert!(refused, "{args:?}: {}", stderr(&o));
    }
    assert!(
        !root.path().join("ns").exists(),
        "a refused load created its namespace"
    );
}

#[test]
fn an_endless_stdin_ends_at_the_size_cap() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--codefile", "-"],
            "larger than the 67108864-byte limit",
        ),
        (
            vec!["run", "00", "--inputfile", "-"],
            "larger than the 67108864-byte limit",
        ),
        (vec!["asm", "-"], "larger than the 67108864-byte limit"),
        (
            vec!["statetest", "--no-progress"],
            "a line longer than 4096 bytes",
        ),
    ];
    for (args, needle) in cases {
        let mut cmd = evm(&args);
        cmd.stdin(File::open("/dev/zero").unwrap());
        let o = finish(cmd);
        assert_eq!(
            o.status.code(),
            Some(EXIT_USAGE),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_one_error_line(&o, needle, &format!("{args:?}"));
    }
}

#[test]
fn zero_or_endless_runs_are_refused() {
    let o = finish(evm(&["run", ADD, "--bench", "--bench-runs", "0"]));
    assert_eq!(o.status.code(), Some(EXIT_USAGE));
    assert_one_error_line(
        &o,
        "--bench-runs: at least one timed run is needed",
        "bench 0",
    );
    for args in [
        &[
            "run",
            ADD,
            "--bench",
            "--bench-runs",
            "18446744073709551615",
        ][..],
        &[
            "run",
            ADD,
            "--shm",
            "testing",
            "--repeat",
            "18446744073709551615",
        ][..],
    ] {
        let o = finish(evm(args));
        assert_eq!(o.status.code(), Some(EXIT_USAGE), "{args:?}");
        assert_one_error_line(&o, "at most 1000000 runs", &format!("{args:?}"));
    }
}

#[test]
fn a_failed_load_leaves_no_namespace_behind_and_keeps_an_existing_one() {
    let root = TempDir::new();
    let garbage = root.file("garbage.snap", "this is not a snapshot");
    let root_arg = root.path().to_str().unwrap();
    let o = finish(evm(&[
        "shm",
        "load",
        garbage.to_str().unwrap(),
        "fresh",
        "--root",
        root_arg,
    ]));
    assert_eq!(o.status.code(), Some(EXIT_USAGE), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!root.path().join("fresh").exists(), "namespace left behind");

    // An existing namespace is not removed by a failed load into it.
    std::fs::create_dir(root.path().join("kept")).unwrap();
    let marker = root.path().join("kept").join("marker");
    File::create(&marker).unwrap().write_all(b"x").unwrap();
    let o = finish(evm(&[
        "shm",
        "load",
        garbage.to_str().unwrap(),
        "kept",
        "--root",
        root_arg,
    ]));
    assert_eq!(o.status.code(), Some(EXIT_USAGE));
    assert!(marker.exists());
}
