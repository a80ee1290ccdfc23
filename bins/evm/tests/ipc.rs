//! Shared memory between real processes: the built `evm` binary, run as
//! separate processes over one mapped namespace (issue 5).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use shm_mapped::Namespace;

const EVM: &str = env!("CARGO_BIN_EXE_evm");

/// A namespace root of its own (on tmpfs when there is one), removed at the end.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Self {
        let base = shm_mapped::default_root();
        Self {
            dir: tempfile::Builder::new()
                .prefix("evm-ipc-test")
                .tempdir_in(base)
                .unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes an assembly program into the root (outside any namespace).
    fn program(&self, name: &str, source: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, source).unwrap();
        path
    }

    /// `evm run --shm-namespace ns --shm-root ROOT --asm PROGRAM ARGS…`, not yet started.
    fn run_cmd(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(EVM);
        cmd.args(["run", "--shm-namespace", "ns", "--shm-root"])
            .arg(self.path())
            .arg("--asm")
            .arg(program)
            .args(args);
        cmd
    }

    fn run(&self, program: &Path, args: &[&str]) -> Output {
        self.run_cmd(program, args).output().unwrap()
    }

    fn shm(&self, args: &[&str]) -> Output {
        Command::new(EVM)
            .arg("shm")
            .args(args)
            .arg("--root")
            .arg(self.path())
            .output()
            .unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `output: 0x…` line of a run.
fn output_hex(out: &Output) -> String {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix("output: "))
        .unwrap_or_else(|| panic!("no output line in {}", stdout(out)))
        .to_string()
}

/// Allocates a persistent region of `size` bytes and returns its handle word.
const ALLOC: &str = "PUSH 1 PUSH 32 SHARED_ALLOC PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN";

/// Maps the region whose handle is the calldata and writes 32 bytes of `0x41`.
const WRITE_A: &str = "
PUSH 0 PUSH 0 CALLDATALOAD SHARED_MAP POP
PUSH32 0x4141414141414141414141414141414141414141414141414141414141414141
PUSH 0 MSTORE
PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_WRITE POP
STOP";

/// Maps the region whose handle is the calldata and returns its first 32 bytes.
const READ: &str = "
PUSH 0 PUSH 0 CALLDATALOAD SHARED_MAP POP
PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_READ POP
PUSH 32 PUSH 0 RETURN";

/// Adds 1 to the 32-byte counter at offset 0 of the region named by the calldata.
const INCREMENT: &str = "
PUSH 0 PUSH 0 CALLDATALOAD SHARED_MAP POP
PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_READ POP
PUSH 0 MLOAD PUSH 1 ADD PUSH 0 MSTORE
PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_WRITE POP
PUSH 32 PUSH 0 RETURN";

/// Writes 32 bytes of `0x42`, then spins (holding the region's lock) until killed.
const WRITE_B_AND_SPIN: &str = "
PUSH 0 PUSH 0 CALLDATALOAD SHARED_MAP POP
PUSH32 0x4242424242424242424242424242424242424242424242424242424242424242
PUSH 0 MSTORE
PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_WRITE POP
spin:
JUMPDEST
PUSH @spin JUMP";

/// The data byte at `offset` in a region file right now, committed or not.
fn raw_byte(path: &Path, offset: u64) -> u8 {
    use std::os::unix::fs::FileExt;
    let mut byte = [0u8; 1];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut byte, shm_mapped::HEADER_LEN as u64 + offset)
        .unwrap();
    byte[0]
}

fn word(byte: u8) -> String {
    format!("0x{}", format!("{byte:02x}").repeat(32))
}

#[test]
fn a_writes_b_reads_in_another_process_and_after_a_restart() {
    let root = Root::new();
    let alloc = root.program("alloc.easm", ALLOC);
    let handle = output_hex(&root.run(&alloc, &[]));
    assert_eq!(handle, format!("0x{:064x}", 1u64 << 32 | 1));
    let write = root.program("write.easm", WRITE_A);
    let read = root.program("read.easm", READ);
    output_hex(&root.run(&write, &["--input", &handle]));
    // A new process (the writer has exited): same handle, same bytes.
    assert_eq!(
        output_hex(&root.run(&read, &["--input", &handle])),
        word(0x41)
    );

    // The shell sees it too.
    let ls = root.shm(&["ls", "ns"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    let line = stdout(&ls).lines().nth(1).unwrap().to_string();
    assert!(line.starts_with("0x100000001"), "{line}");
    assert!(
        line.contains(" 32 ") && line.contains("persistent"),
        "{line}"
    );
    assert!(
        line.contains("0x0000000000000000000000007265636569766572"),
        "{line}"
    );
    let show = root.shm(&["show", "ns", "0x100000001", "--len", "20"]);
    assert_eq!(
        stdout(&show),
        "00000000  41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41\n00000010  41 41 41 41\n"
    );

    // Removed, the handle names nothing: READ's MAP halts.
    assert!(root.shm(&["rm", "ns", "#1"]).status.success());
    let gone = root.run(&read, &["--input", &handle]);
    assert_eq!(gone.status.code(), Some(4), "{}", stdout(&gone));
    // Exactly as in one process after a FREE: the handle names a freed region.
    assert!(
        stdout(&gone).contains("region was freed"),
        "{}",
        stdout(&gone)
    );
}

#[test]
fn transaction_scoped_regions_never_survive_the_process() {
    let root = Root::new();
    // Flags 0: transaction-scoped. The run returns its handle.
    let alloc = root.program(
        "alloc.easm",
        "PUSH 0 PUSH 32 SHARED_ALLOC PUSH 0 MSTORE PUSH 32 PUSH 0 RETURN",
    );
    let handle = output_hex(&root.run(&alloc, &[]));
    let ns = Namespace::open(root.path(), "ns").unwrap();
    assert!(ns.region_paths().unwrap().is_empty());
    let read = root.program("read.easm", READ);
    let out = root.run(&read, &["--input", &handle]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
}

#[test]
fn two_processes_increment_one_counter_exactly() {
    const RUNS: u64 = 10_000;
    let root = Root::new();
    let alloc = root.program("alloc.easm", ALLOC);
    let handle = output_hex(&root.run(&alloc, &[]));
    let increment = root.program("increment.easm", INCREMENT);
    let runs = RUNS.to_string();
    let spawn = || {
        root.run_cmd(
            &increment,
            &[
                "--input",
                &handle,
                "--repeat",
                &runs,
                "--shm-lock-wait-ms",
                "30000",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
        assert!(
            stdout(out).contains(&format!("runs: {RUNS}, unsuccessful: 0")),
            "{}",
            stdout(out)
        );
    }
    let read = root.program("read.easm", READ);
    let total = output_hex(&root.run(&read, &["--input", &handle]));
    assert_eq!(total, format!("0x{:064x}", 2 * RUNS));
}

#[test]
fn a_process_killed_holding_the_lock_is_rolled_back_by_the_next() {
    let root = Root::new();
    let alloc = root.program("alloc.easm", ALLOC);
    let handle = output_hex(&root.run(&alloc, &[]));
    let write = root.program("write.easm", WRITE_A);
    output_hex(&root.run(&write, &["--input", &handle]));
    let ns = Namespace::open(root.path(), "ns").unwrap();
    let region = ns.open_region("#1").unwrap();
    let committed = region.commit_generation();

    let spin = root.program("spin.easm", WRITE_B_AND_SPIN);
    let mut a = root
        .run_cmd(&spin, &["--input", &handle])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until A holds the lock with its write in place (and in the undo log).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = region.status();
        if status.lock_pid == a.id() && status.undo_pending && raw_byte(region.path(), 0) == 0x42 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never held the lock: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // While A holds it, B gives up after its wait with "region busy".
    let read = root.program("read.easm", READ);
    let busy = root.run(&read, &["--input", &handle, "--shm-lock-wait-ms", "50"]);
    assert!(!busy.status.success());
    assert!(
        format!("{}{}", stdout(&busy), stderr(&busy)).contains("busy"),
        "{}{}",
        stdout(&busy),
        stderr(&busy)
    );

    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    // B attaches, takes the lock the kernel released, rolls A's write back.
    assert_eq!(
        output_hex(&root.run(&read, &["--input", &handle])),
        word(0x41)
    );
    assert_eq!(region.commit_generation(), committed);
    assert!(!region.status().undo_pending);
}

#[test]
fn dump_and_load_round_trip_through_the_cli() {
    let root = Root::new();
    let alloc = root.program("alloc.easm", ALLOC);
    let handle = output_hex(&root.run(&alloc, &[]));
    let write = root.program("write.easm", WRITE_A);
    output_hex(&root.run(&write, &["--input", &handle]));
    let read = root.program("read.easm", READ);
    for compression in ["none", "lz4", "zstd"] {
        let file = root.path().join(format!("snap-{compression}"));
        let file = file.to_str().unwrap();
        let dump = root.shm(&["dump", "ns", file, "--compression", compression]);
        assert!(dump.status.success(), "{}", stderr(&dump));
        assert!(
            stdout(&dump).contains("dumped 1 regions, 32 bytes"),
            "{}",
            stdout(&dump)
        );
        let target = format!("copy-{compression}");
        let load = root.shm(&["load", file, &target]);
        assert!(load.status.success(), "{}", stderr(&load));
        // The loaded namespace serves the same handle and bytes to bytecode.
        let out = Command::new(EVM)
            .args(["run", "--shm-namespace", &target, "--shm-root"])
            .arg(root.path())
            .arg("--asm")
            .arg(&read)
            .args(["--input", &handle])
            .output()
            .unwrap();
        assert_eq!(output_hex(&out), word(0x41));
    }
    // A corrupt snapshot: one line on stderr, usage exit code, nothing loaded.
    let good = std::fs::read(root.path().join("snap-lz4")).unwrap();
    let bad = root.path().join("bad");
    std::fs::write(&bad, &good[..good.len() - 3]).unwrap();
    let load = root.shm(&["load", bad.to_str().unwrap(), "never"]);
    assert_eq!(load.status.code(), Some(2));
    assert_eq!(stderr(&load).lines().count(), 1, "{}", stderr(&load));
    assert!(
        stderr(&load).contains("nothing was loaded"),
        "{}",
        stderr(&load)
    );
    assert!(Namespace::open(root.path(), "never")
        .unwrap()
        .region_paths()
        .unwrap()
        .is_empty());
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    let root = Root::new();
    let alloc = root.program("alloc.easm", ALLOC);
    for (args, expect) in [
        (vec!["ls", "missing"], "no namespace"),
        (vec!["show", "missing", "x"], "no namespace"),
        (vec!["dump", "missing", "/nonexistent/x"], "no namespace"),
        (vec!["load", "/nonexistent/snap", "ns"], "No such file"),
    ] {
        let out = root.shm(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
    output_hex(&root.run(&alloc, &[]));
    let out = root.shm(&["show", "ns", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no region nope"), "{}", stderr(&out));

    // An unwritable namespace root.
    let out = Command::new(EVM)
        .args([
            "run",
            "--shm-namespace",
            "ns",
            "--shm-root",
            "/proc",
            "--asm",
        ])
        .arg(&alloc)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("not writable"), "{}", stderr(&out));

    // A region file with a corrupted header is refused by name.
    let file = root.path().join("ns").join("r00000001.shm");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[50] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let out = root.run(&alloc, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("r00000001.shm: corrupt header"),
        "{}",
        stderr(&out)
    );
}
