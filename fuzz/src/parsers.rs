//! Targets for every parser: command-line hex and numbers, prestate JSON, state-test
//! fixtures, the assembler, region-file headers, region files with their undo logs
//! (attached by a manager, as after a restart), and snapshots.
//!
//! Binary formats carry checksums, which random bytes never pass; where a target
//! would otherwise stop at the checksum, the first input byte can ask it to repair
//! them after mutating, so the fuzzer reaches the code behind them (a checksum is
//! no defence against someone who writes the file on purpose).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, Bytes, U256};
use arbitrary::Unstructured;
use revm::context::{result::ExecutionResult, TxEnv};
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};
use shm_evm::{asm::assemble, dump_state, prepare_db, Prestate, RunConfig};
use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
use shm_mapped::{MappedRegion, RegionHeader, Snapshot, SnapshotRegion, HEADER_LEN};
use shm_primitives::{Compression, Permissions, RegionHandle, RegionOptions};
use shm_statetest::{CaseEnv, CaseError, CaseState, FailureKind, Progress, RunnerOptions};

/// The `evm` command's value parsers (`bins/evm/src/input.rs`), compiled here from
/// the command's own source: the command is a binary crate with no library to call.
#[allow(dead_code)]
#[path = "../../bins/evm/src/input.rs"]
mod cli_input;

/// The one-line rule of the CLI: an error prints as one non-empty line.
fn assert_one_line(what: &str, message: &str) {
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{what}: error is not one line: {message:?}"
    );
}

// ----- text inputs -----

/// `evm run` code and input hex (`--code`, `--codefile`, `--input`), and the number
/// and address options: never a panic; errors are one line; a decoded blob
/// re-encodes to the same digits, with or without `0x` and whitespace.
pub fn hex(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match cli_input::parse_hex("code", &text) {
        Ok(bytes) => {
            let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let digits = digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
                .unwrap_or(&digits);
            assert_eq!(bytes.len() * 2, digits.len());
            assert!(alloy_primitives::hex::encode(&bytes).eq_ignore_ascii_case(digits));
        }
        Err(e) => assert_one_line("hex", &e.to_string()),
    }
    // The round trip from bytes: every blob survives `0x`, upper case and line breaks.
    let encoded = alloy_primitives::hex::encode(data);
    let wrapped: String = encoded
        .as_bytes()
        .chunks(7)
        .map(|c| {
            std::str::from_utf8(c)
                .expect("hex is ASCII")
                .to_ascii_uppercase()
        })
        .collect::<Vec<_>>()
        .join("\n ");
    for text in [encoded.clone(), format!("0x{wrapped}\n")] {
        let decoded = cli_input::parse_hex("input", &text).expect("valid hex");
        assert_eq!(decoded.as_ref(), data);
    }

    for line in text.lines().take(8) {
        match cli_input::parse_u64("gas", line) {
            Ok(n) => {
                assert_eq!(cli_input::parse_u64("gas", &n.to_string()).ok(), Some(n));
                assert_eq!(
                    cli_input::parse_u64("gas", &format!("{n:#x}")).ok(),
                    Some(n)
                );
            }
            Err(e) => assert_one_line("u64", &e.to_string()),
        }
        match cli_input::parse_u256("value", line) {
            Ok(v) => {
                assert_eq!(cli_input::parse_u256("value", &v.to_string()).ok(), Some(v));
                assert_eq!(
                    cli_input::parse_u256("value", &format!("{v:#x}")).ok(),
                    Some(v)
                );
            }
            Err(e) => assert_one_line("u256", &e.to_string()),
        }
        match cli_input::parse_address("sender", line) {
            Ok(a) => assert_eq!(
                cli_input::parse_address("sender", &a.to_string()).ok(),
                Some(a)
            ),
            Err(e) => assert_one_line("address", &e.to_string()),
        }
    }
}

/// `--prestate` JSON: never a panic; errors are one line; an accepted alloc installs
/// into the run's state and `--dump` gives it back (empty accounts and zero slots
/// left out, as EIP-161 and the dump format say), and the dump parses again.
pub fn prestate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pre = match Prestate::from_json_str(&text) {
        Ok(pre) => pre,
        Err(e) => {
            let mut message = e.to_string();
            if crate::findings::PRESTATE_MULTILINE_ERROR_OPEN && crate::findings::stepping_around()
            {
                message = message.replace('\n', "\\n").replace('\r', "\\r");
            }
            return assert_one_line("prestate", &message);
        }
    };
    let mut config = RunConfig::new(Bytes::new());
    // The receiver's code is the run's code: keep the prestate's, so the dump
    // must equal the prestate there too.
    if let Some(account) = pre.accounts.get(&config.receiver) {
        config.code = account.code.clone();
    }
    let sender = config.sender;
    let receiver = config.receiver;
    config.prestate = pre.clone();
    let dump = dump_state(&prepare_db(&config));
    for (address, account) in &pre.accounts {
        let storage: Vec<(U256, U256)> = {
            let mut s: Vec<_> = account
                .storage
                .iter()
                .filter(|(_, v)| !v.is_zero())
                .map(|(k, v)| (*k, *v))
                .collect();
            s.sort();
            s
        };
        let empty = account.balance.is_zero()
            && account.nonce == 0
            && account.code.is_empty()
            && storage.is_empty();
        match dump.get(address) {
            None => assert!(empty, "{address}: a non-empty account vanished"),
            Some(d) => {
                assert_eq!(d.balance, account.balance, "{address}: balance");
                assert_eq!(d.nonce, account.nonce, "{address}: nonce");
                assert_eq!(d.code, account.code, "{address}: code");
                let got: Vec<_> = d.storage.iter().map(|(k, v)| (*k, *v)).collect();
                assert_eq!(got, storage, "{address}: storage");
            }
        }
    }
    for address in dump.keys() {
        assert!(
            pre.accounts.contains_key(address) || *address == sender || *address == receiver,
            "{address}: in the dump but not in the prestate"
        );
    }
    let json = serde_json::to_string(&dump).expect("a dump serialises");
    let again = Prestate::from_json_str(&json).expect("a dump parses as a prestate");
    assert_eq!(again.accounts.len(), dump.len());
}

/// Gas a fuzzed state-test case may use: fixtures name any gas limit, and a fuzzer
/// that writes a loop would otherwise stall on one input.
const STATETEST_GAS_CAP: u64 = 2_000_000;

/// Stock revm with each transaction's gas limit capped at [`STATETEST_GAS_CAP`].
fn capped_executor(env: &CaseEnv<'_>, state: &mut CaseState) -> Result<ExecutionResult, CaseError> {
    let tx = TxEnv {
        gas_limit: env.tx.gas_limit.min(STATETEST_GAS_CAP),
        ..env.tx.clone()
    };
    let mut evm = Context::mainnet()
        .with_cfg(env.cfg.clone())
        .with_block(env.block.clone())
        .with_tx(tx.clone())
        .with_db(state)
        .build_mainnet();
    evm.transact_commit(tx)
}

/// A state-test fixture file through `evm statetest`'s runner (one thread, gas
/// capped): the run returns a report, never a panic. A panic inside revm's fixture
/// types is caught by the runner and reported as a failed case by design; those
/// are counted as [`FailureKind::Panic`] and allowed (docs/reliability.md lists
/// them), any other panic is a finding.
pub fn statetest(data: &[u8]) {
    #[cfg(fuzzing)]
    quiet_caught_panics();
    let dir = crate::scratch::dir();
    let file = dir.path().join("case.json");
    std::fs::write(&file, data).expect("scratch file");
    let mut options = RunnerOptions::new([&file]);
    options.threads = Some(1);
    options.progress = Progress::Off;
    let report = shm_statetest::run(&options, &capped_executor).expect("the file exists");
    assert_eq!(report.files, 1);
    assert_eq!(report.failed, report.failures.len());
    for failure in &report.failures {
        let line = failure.to_string();
        assert!(!line.is_empty());
        if failure.kind == FailureKind::Panic {
            assert!(line.contains("panicked"), "{line}");
        }
    }
}

/// Under libFuzzer every panic aborts, even one the runner catches on purpose;
/// let caught ones through and abort only on those that escape.
#[cfg(fuzzing)]
fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let escaped = std::thread::current()
                .name()
                .is_none_or(|n| !n.starts_with("statetest-"));
            if escaped {
                eprintln!("{info}");
            }
        }));
    });
}

/// The assembler: never a panic; an error names a line of the source; and two round
/// trips: any bytes as `DATA` assemble to themselves, and the disassembly of any
/// bytecode ([`crate::disasm`]) assembles back to the same bytes.
pub fn asm(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match assemble(&text) {
        Ok(code) => {
            let again =
                assemble(&crate::disasm::disassemble(&code)).expect("disassembly assembles");
            assert_eq!(again, code, "disassemble → assemble changed the code");
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.lines().count().max(1), "{e}");
            assert_one_line("asm", &e.to_string());
        }
    }
    let as_data = format!("DATA 0x{}", alloy_primitives::hex::encode(data));
    let code = if data.is_empty() {
        assemble("").expect("empty source")
    } else {
        assemble(&as_data).expect("DATA of any bytes")
    };
    assert_eq!(code.as_ref(), data);
    let source = crate::disasm::disassemble(data);
    assert_eq!(
        assemble(&source).expect("disassembly assembles").as_ref(),
        data,
        "{source}"
    );
}

// ----- binary formats -----

/// CRC-32 of the fixed part of a header page, where the decoder looks for it.
const HEADER_FIXED_LEN: usize = 336;

fn repair_header_crc(page: &mut [u8]) {
    if page.len() >= HEADER_FIXED_LEN + 4 {
        let crc = crc32(&page[..HEADER_FIXED_LEN]);
        page[HEADER_FIXED_LEN..HEADER_FIXED_LEN + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// CRC-32 (IEEE), as the formats use; written here so the fuzz crate checks the
/// format independently of the crate it tests.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A region file's header page. Input byte 0, bit 0: repair the checksum of the
/// fixed part after the rest is taken as the page. A decoded header re-encodes to a
/// page that decodes to the same header.
pub fn header(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut page = rest.to_vec();
    if mode & 1 != 0 {
        page.resize(page.len().max(HEADER_LEN), 0);
        repair_header_crc(&mut page);
    }
    let path = Path::new("fuzz-header");
    match RegionHeader::decode(&page, path) {
        Ok(header) => {
            assert!(header.capacity > 0 && header.capacity.is_multiple_of(4096));
            assert!(header.max_size <= header.capacity);
            assert!(header.name.as_ref().is_none_or(|n| n.len() <= 256));
            let encoded = header.encode();
            assert_eq!(encoded.len(), HEADER_LEN);
            assert_eq!(
                RegionHeader::decode(&encoded, path).expect("re-decodes"),
                header
            );
            // Every field re-encodes to the bytes it came from (the reserved bytes
            // and the padding after the name are not read, so not compared).
            let name_end = 80 + header.name.as_ref().map_or(0, String::len);
            for range in [0..63, 64..70, 72..name_end] {
                assert_eq!(
                    encoded[range.clone()],
                    page[range.clone()],
                    "bytes {range:?}"
                );
            }
        }
        Err(e) => assert_one_line("header", &e.to_string()),
    }
}

/// Any of the compressions.
fn compression(u: &mut Unstructured<'_>) -> arbitrary::Result<Compression> {
    Ok(*u.choose(&[Compression::None, Compression::Lz4, Compression::Zstd])?)
}

/// A header the encoder accepts: real handles, whole-page capacities, short names.
fn arbitrary_header(u: &mut Unstructured<'_>) -> arbitrary::Result<RegionHeader> {
    let index = u.int_in_range(1..=u32::MAX)?;
    let generation = u.int_in_range(1..=u32::MAX)?;
    let handle = RegionHandle::new(index, generation).expect("non-zero");
    let capacity = u64::from(u.int_in_range(1u32..=64)?) * 4096;
    let mut header = RegionHeader::new(handle, capacity, Address::new(u.arbitrary()?));
    header.max_size = u.int_in_range(1..=capacity)?;
    header.permissions = Permissions::from_bits_truncate(u.arbitrary()?);
    header.options = RegionOptions {
        persistent: u.arbitrary()?,
        auto_grow: u.arbitrary()?,
        public_read: u.arbitrary()?,
        public_write: u.arbitrary()?,
        copy_on_write: u.arbitrary()?,
        compression: compression(u)?,
    };
    header.checksummed = u.arbitrary()?;
    header.creator_pid = u.arbitrary()?;
    header.created_ms = u.arbitrary()?;
    if u.arbitrary()? {
        // Not empty: an empty name encodes as "anonymous" (see docs/reliability.md).
        let len = u.int_in_range(1..=40)?;
        let name: String = (0..len)
            .map(|_| Ok(char::from(u.int_in_range(b'a'..=b'z')?)))
            .collect::<arbitrary::Result<_>>()?;
        header = header.named(name).expect("short name");
    }
    Ok(header)
}

/// Snapshots. Input byte 0 picks the mode: 0, the rest is a snapshot file as is;
/// otherwise the rest builds a snapshot (regions, data, compression), which must
/// decode to itself, and then flips bytes of its encoding and repairs the file
/// checksum (bit 1: also each header's), so the decoder meets corrupt lengths,
/// sizes, codecs and headers behind a valid trailer. Whatever decodes is loaded
/// into a fresh namespace, and captured again unchanged.
pub fn snapshot(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let path = Path::new("fuzz-snapshot");
    let bytes = if mode == 0 {
        rest.to_vec()
    } else {
        let mut u = Unstructured::new(rest);
        let Ok((original, how)) = arbitrary_snapshot(&mut u) else {
            return;
        };
        let mut bytes = original.encode(how).expect("encodes");
        assert_eq!(
            Snapshot::decode(&bytes, path).expect("own encoding decodes"),
            original
        );
        let flips: Vec<(u32, u8)> = u.arbitrary().unwrap_or_default();
        if flips.is_empty() {
            check_restore(&original);
            return;
        }
        let body = bytes.len() - 12;
        for (at, xor) in flips {
            let at = at as usize % body;
            bytes[at] ^= xor.max(1);
        }
        if mode & 2 != 0 {
            // Repair each header page where an unmutated walk would find it.
            let mut at = 16;
            for region in &original.regions {
                if at + HEADER_LEN > body {
                    break;
                }
                repair_header_crc(&mut bytes[at..at + HEADER_LEN]);
                let stored = region.data.len(); // upper bound; only a hint for the walk
                at += HEADER_LEN + 32 + stored.min(body);
            }
        }
        let crc = crc32(&bytes[..body]);
        bytes[body + 8..].copy_from_slice(&crc.to_le_bytes());
        bytes
    };
    match Snapshot::decode(&bytes, path) {
        Ok(snapshot) => {
            for region in &snapshot.regions {
                assert!(region.data.len() as u64 <= region.header.max_size);
            }
            assert_eq!(
                Snapshot::decode(&snapshot.encode(None).expect("encodes"), path)
                    .expect("re-decodes"),
                snapshot
            );
            check_restore(&snapshot);
        }
        Err(e) => assert_one_line("snapshot", &e.to_string()),
    }
}

fn arbitrary_snapshot(
    u: &mut Unstructured<'_>,
) -> arbitrary::Result<(Snapshot, Option<Compression>)> {
    let count = u.int_in_range(0..=3)?;
    let mut regions = Vec::new();
    for _ in 0..count {
        let header = arbitrary_header(u)?;
        let len = u.int_in_range(0..=header.max_size.min(9000))? as usize;
        let fill: u8 = u.arbitrary()?;
        let mut data = vec![fill; len];
        let noise: &[u8] = u.arbitrary()?;
        for (d, n) in data.iter_mut().zip(noise) {
            *d = *n;
        }
        regions.push(SnapshotRegion {
            header,
            commit_generation: u.arbitrary()?,
            data,
        });
    }
    let how = if u.arbitrary()? {
        Some(compression(u)?)
    } else {
        None
    };
    Ok((Snapshot { regions }, how))
}

/// Loads `snapshot` into a fresh namespace; if it loads, a capture gives the same
/// regions back (handles, names, bytes).
fn check_restore(snapshot: &Snapshot) {
    if crate::findings::SNAPSHOT_HUGE_INDEX_OPEN
        && crate::findings::stepping_around()
        && snapshot
            .regions
            .iter()
            .any(|r| r.header.handle.index() > crate::findings::SNAPSHOT_INDEX_LIMIT)
    {
        return;
    }
    let dir = crate::scratch::dir();
    let ns = shm_mapped::Namespace::open(dir.path(), "fuzz").expect("namespace");
    match snapshot.restore(&ns) {
        Ok(report) => {
            assert_eq!(report.regions, snapshot.regions.len());
            let captured = Snapshot::capture(&ns).expect("captures what it loaded");
            let summary = |s: &Snapshot| {
                let mut v: Vec<_> = s
                    .regions
                    .iter()
                    .map(|r| (r.header.handle, r.header.name.clone(), r.data.clone()))
                    .collect();
                v.sort_by_key(|(h, _, _)| h.index());
                v
            };
            assert_eq!(summary(&captured), summary(snapshot));
        }
        Err(e) => assert_one_line("restore", &e.to_string()),
    }
}

/// Bytes of one undo-log record head (kind, page, length, generation, CRC).
const UNDO_HEAD_LEN: usize = 28;

/// A region file in a namespace directory, and its undo log, as a crashed or
/// hostile process may leave them. Input: byte 0 is the mode (bit 0: repair the
/// header checksum; bit 1: add an undo log; bit 2: make its records current and
/// well-formed; bit 3: name the file after the header's index), then the file's
/// bytes and the undo records. The file is opened, locked (which rolls the log
/// back) and checked; then a manager attaches the namespace, as a node restarting
/// on it would, and every region it took must be readable and counted.
pub fn region_file(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let file_len = u.int_in_range(0..=3 * 4096 + 64).unwrap_or(0);
    let mut file = u.bytes(file_len.min(u.len())).unwrap_or_default().to_vec();
    if mode & 1 != 0 {
        file.resize(file.len().max(HEADER_LEN), 0);
        file[..8].copy_from_slice(b"EVMSHMRG");
        file[8..12].copy_from_slice(&shm_mapped::FORMAT_VERSION.to_le_bytes());
        file[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        // Keep the capacity within the file more often than not.
        let pages = (file.len() as u64).saturating_sub(HEADER_LEN as u64) / 4096;
        if pages > 0 && file[24] & 1 == 0 {
            file[24..32].copy_from_slice(&(pages * 4096).to_le_bytes());
            let max =
                u64::from_le_bytes(file[32..40].try_into().expect("8 bytes")) % (pages * 4096 + 1);
            file[32..40].copy_from_slice(&max.to_le_bytes());
            let size = u64::from_le_bytes(file[512..520].try_into().expect("8 bytes")) % (max + 1);
            file[512..520].copy_from_slice(&size.to_le_bytes());
        }
        repair_header_crc(&mut file);
    }
    let mut undo = Vec::new();
    if mode & 2 != 0 {
        let generation = file
            .get(520..528)
            .map_or(0, |w| u64::from_le_bytes(w.try_into().expect("8 bytes")));
        if file.len() >= 560 {
            file[552..560].copy_from_slice(&1u64.to_le_bytes()); // a transaction was in flight
        }
        let records: Vec<(bool, u16, Vec<u8>)> = u.arbitrary().unwrap_or_default();
        for (header_words, page, payload) in records.into_iter().take(6) {
            let (kind, payload) = if header_words && mode & 4 != 0 {
                (2u32, {
                    let mut p = payload;
                    p.resize(24, 0);
                    p
                })
            } else {
                (1u32, payload)
            };
            let start = undo.len();
            undo.extend_from_slice(&kind.to_le_bytes());
            undo.extend_from_slice(&u64::from(page % 8).to_le_bytes());
            undo.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            undo.extend_from_slice(&generation.to_le_bytes());
            let crc = crc32(&[&undo[start..], &payload[..]].concat());
            let crc = if mode & 4 != 0 {
                crc
            } else {
                crc ^ u32::from(page & 1)
            };
            undo.extend_from_slice(&crc.to_le_bytes());
            undo.extend_from_slice(&payload);
            debug_assert_eq!(undo.len() - start, UNDO_HEAD_LEN + payload.len());
        }
        let tail: &[u8] = u.arbitrary().unwrap_or_default();
        undo.extend_from_slice(tail);
    }

    let dir = crate::scratch::dir();
    let ns_dir = dir.path().join("fuzz");
    std::fs::create_dir_all(&ns_dir).expect("namespace directory");
    let index = if mode & 8 != 0 && file.len() >= 20 {
        u32::from_le_bytes(file[16..20].try_into().expect("4 bytes"))
    } else {
        1
    };
    let path = ns_dir.join(shm_mapped::region_file_name(index));
    std::fs::write(&path, &file).expect("region file");
    if !undo.is_empty() {
        std::fs::write(path.with_extension("undo"), &undo).expect("undo log");
    }

    // The file on its own, as `evm shm show` reads it.
    match MappedRegion::open(&path) {
        Ok(region) => {
            let header = region.header().clone();
            assert!(
                region.size() <= header.max_size,
                "open accepted a size above the maximum"
            );
            match region.lock(Duration::from_millis(50)) {
                Ok(_) => {
                    // After a rollback the size must still be within the region.
                    let unchecked = crate::findings::ROLLBACK_SIZE_UNCHECKED_OPEN
                        && crate::findings::stepping_around();
                    assert!(
                        unchecked || region.size() <= header.max_size,
                        "rollback restored size {} above the maximum {}",
                        region.size(),
                        header.max_size
                    );
                    let _ = region.verify_checksum();
                    let _ = region.unlock(None);
                }
                Err(e) => assert_one_line("lock", &e.to_string()),
            }
            drop(region);
        }
        Err(e) => assert_one_line("open", &e.to_string()),
    }

    // A node restarting on the namespace. Its regions are files, so the heap pool
    // is kept small: reserving the preset's 21 MiB takes 84 ms, most of an input.
    let config = SharedMemoryConfig {
        namespace_root: Some(dir.path().to_path_buf()),
        lock_wait: Duration::from_millis(20),
        pool_blocks: [16, 16, 4, 1],
        ..SharedMemoryConfig::production().with_namespace("fuzz")
    };
    let manager = match SharedMemoryManager::new(config) {
        Ok(manager) => manager,
        Err(e) => return assert_one_line("attach", &e.to_string()),
    };
    check_attached(&manager);
}

fn check_attached(manager: &Arc<SharedMemoryManager>) {
    let infos = manager.list_regions().expect("enabled");
    let stats = manager.get_memory_stats().expect("enabled");
    assert_eq!(stats.active_regions, infos.len());
    assert_eq!(
        manager.metrics_snapshot().active_regions as usize,
        infos.len()
    );
    for info in &infos {
        let handle = info.meta.handle();
        let size = info.meta.size();
        assert!(
            size <= info.meta.max_size(),
            "attached size above the maximum"
        );
        let mut buf = vec![0u8; usize::try_from(size).unwrap_or(0).min(1 << 20) + 1];
        let read = manager
            .read_region(handle, 0, &mut buf)
            .expect("an attached region reads");
        assert_eq!(read as u64, size.min(buf.len() as u64));
        assert_eq!(buf[read..].iter().filter(|&&b| b != 0).count(), 0);
        if let Some(name) = info.meta.name() {
            assert_eq!(manager.find_region(name).ok(), Some(handle));
        }
    }
}

/// Runs `f`, turning a panic into `Err(message)` (for the replay tests' reports).
pub fn catch(f: impl FnOnce()) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-text panic".into())
    })
}
