//! The fuzz targets as ordinary tests: every checked-in corpus input
//! (`fuzz/corpus/<target>/`), every regression input (`fuzz/regressions/<target>/`,
//! one per finding), then a fixed count of inputs from a seeded generator, through
//! the same functions the libFuzzer binaries call. This is the short run CI makes:
//! it needs no instrumented build (docs/reliability.md says why and how long).

use std::path::{Path, PathBuf};

/// Inputs of a target in a folder (none when the folder does not exist), by name.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

/// xorshift64*: the same inputs on every run and machine.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Bytes of a random length up to `max`, sometimes drawn from `alphabet`
    /// (text formats get mostly text).
    fn input(&mut self, max: usize, alphabet: Option<&[u8]>) -> Vec<u8> {
        let len = (self.next() % (max as u64 + 1)) as usize;
        (0..len)
            .map(|_| {
                let r = self.next();
                match alphabet {
                    Some(a) if !r.is_multiple_of(8) => a[(r >> 8) as usize % a.len()],
                    _ => (r >> 24) as u8,
                }
            })
            .collect()
    }
}

/// Runs the corpus, the regressions and `generated` seeded inputs through `target`;
/// fails listing every input that panicked.
fn replay(name: &str, generated: usize, max_len: usize, alphabet: Option<&[u8]>) {
    let target = shm_fuzz::targets::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target")
        .1;
    let corpus = inputs("corpus", name);
    let regressions = inputs("regressions", name);
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("readable input");
        if let Err(message) = shm_fuzz::parsers::catch(|| target(&data)) {
            failures.push(format!("{}: {message}", path.display()));
        }
    }
    let mut generator = Generator(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    for i in 0..generated {
        let data = generator.input(max_len, alphabet);
        if let Err(message) = shm_fuzz::parsers::catch(|| target(&data)) {
            failures.push(format!(
                "generated input {i} ({}): {message}",
                alloy_primitives::hex::encode(&data)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} inputs failed:\n{}",
        failures.len(),
        corpus.len() + regressions.len() + generated,
        failures.join("\n")
    );
}

const HEX_TEXT: &[u8] = b"0123456789abcdefABCDEFxX \n\t_";
const JSON_TEXT: &[u8] = b"{}[]:,\"0x123456789abcdef balancenoncecodestorage \n";
const ASM_TEXT: &[u8] = b"PUSH 1 2 0x@:; DATA ADD JUMPDEST SHARED_ALLOC lbl\nPUSH32 MSTORE";

#[test]
fn hex() {
    replay("hex", 3000, 200, Some(HEX_TEXT));
}

#[test]
fn prestate() {
    replay("prestate", 2000, 300, Some(JSON_TEXT));
}

#[test]
fn statetest() {
    replay("statetest", 150, 400, Some(JSON_TEXT));
}

#[test]
fn asm() {
    replay("asm", 3000, 300, Some(ASM_TEXT));
}

#[test]
fn header() {
    replay("header", 2000, 4200, None);
}

#[test]
fn snapshot() {
    replay("snapshot", 400, 3000, None);
}

#[test]
fn region_file() {
    replay("region_file", 150, 9000, None);
}

#[test]
fn host_model() {
    replay("host_model", 1000, 600, None);
}

#[test]
fn bytecode() {
    replay("bytecode", 150, 4000, None);
}

/// The reproducers of findings still open in code this crate does not own
/// (`fuzz/open/<target>/`, described in `shm_fuzz::findings` and
/// docs/reliability.md). Each one fails until its fix lands; then its input moves
/// to `fuzz/regressions/` and runs above with the rest.
#[test]
#[ignore = "open findings: each reproducer fails (F1 aborts the process) until its fix lands"]
fn open_findings() {
    shm_fuzz::findings::step_around(false);
    let mut fixed = Vec::new();
    for (name, target) in shm_fuzz::targets::ALL {
        for path in inputs("open", name) {
            let data = std::fs::read(&path).expect("readable input");
            // Said as it goes: F1's reproducer aborts the process.
            eprintln!(
                "{}: running (an abort here is this finding)",
                path.display()
            );
            match shm_fuzz::parsers::catch(|| target(&data)) {
                Ok(()) => fixed.push(path.display().to_string()),
                Err(message) => eprintln!("{}: still fails: {message}", path.display()),
            }
        }
    }
    assert!(
        fixed.is_empty(),
        "these now pass; move them to fuzz/regressions/: {fixed:?}"
    );
}
