//! The worst programs we could find for each shared-memory opcode and for
//! mapped namespaces (issue "sound gas"), next to the slowest mainnet loops,
//! all as transactions that loop until their gas runs out (or until their
//! resource is exhausted). `benches/benches/adversarial.rs` times them
//! (ns/gas) and measures their peak memory; `tests/tests/adversarial.rs`
//! runs them under the EIP-7825 cap and asserts the bounds of spec §8 by
//! counting bytes.
//!
//! ```
//! use shm_benches::adversarial::{hostile_programs, Side};
//! let programs = hostile_programs();
//! assert!(programs.iter().any(|p| p.side == Side::Mainnet && p.name == "KECCAK256_32B"));
//! let cow = programs.iter().find(|p| p.name == "cow_remap").unwrap();
//! let mut run = cow.prepare(2_000_000);
//! let outcome = run.execute();
//! assert_eq!(outcome.gas_used, 2_000_000, "it loops until its gas runs out");
//! ```

use alloy_primitives::{Address, Bytes, U256};
use revm::{
    bytecode::Bytecode,
    context::{result::ExecutionResult, TxEnv},
    database::{CacheDB, EmptyDB},
    primitives::TxKind,
    state::AccountInfo,
    ExecuteCommitEvm,
};
use shm_evm::asm::assemble;
use shm_manager::{RegionRequest, SharedMemoryConfig, SharedMemoryManager};
use shm_primitives::{RegionHandle, RegionOptions};
use std::sync::Arc;

/// Where the hostile contract lives (it calls itself there).
pub const TARGET: Address = Address::repeat_byte(0xaa);
/// Who sends the transactions.
pub const CALLER: Address = Address::repeat_byte(0x5e);
/// EIP-7825's per-transaction gas cap.
pub const TX_GAS_CAP: u64 = 16_777_216;

/// Whether a program uses shared memory or is a mainnet reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Uses 0xE0–0xE4; runs with shared memory on.
    Shared,
    /// A mainnet opcode loop; runs on stock revm (shared memory off).
    Mainnet,
}

/// Host regions a program needs before it runs: (size, options), in order
/// (their handles go into calldata words 0, 1, … in that order).
type Regions = &'static [(u64, RegionOptions)];

const PUBLIC: RegionOptions = RegionOptions {
    copy_on_write: true,
    auto_grow: false,
    persistent: false,
    public_read: true,
    public_write: true,
    compression: shm_primitives::Compression::None,
};

const GROWING: RegionOptions = RegionOptions {
    auto_grow: true,
    ..PUBLIC
};

/// One hostile (or reference) program.
#[derive(Clone, Debug)]
pub struct Hostile {
    /// Short name (table row).
    pub name: &'static str,
    /// What it does, and which rule it attacks.
    pub what: &'static str,
    /// Shared memory on or off.
    pub side: Side,
    /// The manager's preset (shared programs).
    pub preset: &'static str,
    /// Whether regions live in a mapped namespace, and on what file system.
    pub mapped: Option<Backing>,
    /// Host regions made before the run.
    pub regions: Regions,
    /// Calldata words after the region handles.
    pub args: &'static [u64],
    /// The contract, in the project's assembly.
    pub source: String,
}

/// Where a mapped program's namespace lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Under the default root (`/dev/shm`, tmpfs): what a node uses.
    Memory,
    /// In the checkout (a disk file system, as `/tmp` often is): file work
    /// costs far more there, and ALLOC is priced for it.
    Disk,
}

/// ALLOC until it pushes 0 (or the gas runs out).
const NAMESPACE_ALLOC: &str =
    "loop: JUMPDEST PUSH 0 PUSH 32 SHARED_ALLOC ISZERO PUSH @done JUMPI PUSH @loop JUMP done: JUMPDEST STOP";

/// A program set up to run once: its manager (shared programs), state and
/// transaction. Keeps the namespace directory (mapped programs) alive.
#[derive(Debug)]
pub struct Prepared {
    /// The manager, for shared programs.
    pub manager: Option<Arc<SharedMemoryManager>>,
    db: CacheDB<EmptyDB>,
    tx: TxEnv,
    _namespace: Option<tempfile::TempDir>,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Gas the transaction used.
    pub gas_used: u64,
    /// revm's result.
    pub result: ExecutionResult,
}

impl Hostile {
    fn new(
        name: &'static str,
        what: &'static str,
        side: Side,
        regions: Regions,
        args: &'static [u64],
        source: impl Into<String>,
    ) -> Self {
        Self {
            name,
            what,
            side,
            preset: "production",
            mapped: None,
            regions,
            args,
            source: source.into(),
        }
    }

    fn preset(mut self, preset: &'static str) -> Self {
        self.preset = preset;
        self
    }

    fn mapped(mut self, backing: Backing) -> Self {
        self.mapped = Some(backing);
        self
    }

    /// The manager's configuration for this program.
    pub fn config(&self) -> SharedMemoryConfig {
        let mut config: SharedMemoryConfig = self.preset.parse().expect("a preset name");
        // Room for the largest host region and growth the programs ask for.
        config.large_alloc_limit = config.large_alloc_limit.max(256 << 20);
        config
    }

    /// A fresh manager, state and transaction with `gas_limit`.
    ///
    /// # Panics
    /// If the assembly, a preset or the namespace directory is refused (the
    /// programs are constants).
    pub fn prepare(&self, gas_limit: u64) -> Prepared {
        let code = assemble(&self.source).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            CALLER,
            AccountInfo::default().with_balance(U256::from(10u128.pow(30))),
        );
        db.insert_account_info(
            TARGET,
            AccountInfo::default().with_code(Bytecode::new_raw(code)),
        );
        let mut calldata = Vec::new();
        let (manager, namespace) = match self.side {
            Side::Mainnet => (None, None),
            Side::Shared => {
                let mut config = self.config();
                let namespace = self.mapped.map(|backing| {
                    let dir = match backing {
                        Backing::Memory => tempfile::tempdir_in(shm_mapped::default_root()),
                        Backing::Disk => tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")),
                    }
                    .expect("a temp dir");
                    config = SharedMemoryConfig {
                        namespace_root: Some(dir.path().to_path_buf()),
                        ..config.clone().with_namespace("hostile")
                    };
                    dir
                });
                let manager = SharedMemoryManager::new(config).expect("a valid config");
                for &(size, options) in self.regions {
                    let handle = manager
                        .create_region(RegionRequest::new(size).options(options))
                        .expect("a host region");
                    calldata.extend_from_slice(&handle.to_u256().to_be_bytes::<32>());
                }
                (Some(manager), namespace)
            }
        };
        for &arg in self.args {
            calldata.extend_from_slice(&U256::from(arg).to_be_bytes::<32>());
        }
        let tx = TxEnv::builder()
            .caller(CALLER)
            .kind(TxKind::Call(TARGET))
            .data(Bytes::from(calldata))
            .gas_limit(gas_limit)
            .gas_price(0)
            .build()
            .expect("a valid transaction");
        Prepared {
            manager,
            db,
            tx,
            _namespace: namespace,
        }
    }
}

impl Prepared {
    /// Runs the transaction once and commits it (the state and the region
    /// effects), as a node executing a block would.
    ///
    /// # Panics
    /// If revm rejects the transaction (the set-up is constant).
    pub fn execute(&mut self) -> Ran {
        let db = self.db.clone();
        let result = match &self.manager {
            None => {
                let mut evm = crate::stock_evm(db);
                evm.transact_commit(self.tx.clone())
            }
            Some(manager) => {
                let mut evm = crate::shm_evm(manager, db);
                evm.transact_commit(self.tx.clone())
            }
        }
        .expect("the transaction is valid");
        Ran {
            gas_used: result.tx_gas_used(),
            result,
        }
    }

    /// The handle of host region `i` (for checks after a run).
    pub fn region(&self, i: usize) -> Option<RegionHandle> {
        let word = self.tx.data.get(i * 32..(i + 1) * 32)?;
        RegionHandle::from_u256(U256::from_be_slice(word))
    }
}

/// MAP of `h` read-write (Strict needs a mapping before READ and WRITE; a
/// repeat with the same options is free of journal work).
fn map_first(h: &str) -> String {
    format!("PUSH 0 {h} SHARED_MAP POP")
}

/// Calldata word `i`.
fn arg(i: u64) -> String {
    format!("PUSH {} CALLDATALOAD", i * 32)
}

/// `SHARED_WRITE` of 1 byte at `offset` (an expression) of handle `h`, result popped.
fn write1(h: &str, offset: &str) -> String {
    format!("PUSH 0 PUSH 1 {offset} {h} SHARED_WRITE POP")
}

/// Writes one byte into each of the `pages` first pages of `h`.
fn touch_pages(h: &str, pages: u64, label: &str) -> String {
    format!(
        "PUSH 0
         {label}: JUMPDEST
         PUSH 0 PUSH 1 DUP3 PUSH 4096 MUL {h} SHARED_WRITE POP
         PUSH 1 ADD DUP1 PUSH {pages} GT PUSH @{label} JUMPI
         POP"
    )
}

/// A self-`CALL` with all gas passing calldata (h, depth − 1); the success
/// flag is popped.
fn call_self_deeper() -> String {
    format!(
        "{h} PUSH 0 MSTORE
         PUSH 1 {depth} SUB PUSH 32 MSTORE
         PUSH 0 PUSH 0 PUSH 64 PUSH 0 PUSH 0 ADDRESS GAS CALL POP",
        h = arg(0),
        depth = arg(1),
    )
}

/// Every program of the suite: the shared-memory worst cases, then the
/// mainnet references.
pub fn hostile_programs() -> Vec<Hostile> {
    use Side::*;
    const MIB: u64 = 1 << 20;
    vec![
        Hostile::new(
            "cow_remap",
            "MAP a 1 MiB region copy-on-write again and again, one byte into each of its 256 pages after each remap (issue 8 #1)",
            Shared,
            &[(MIB, PUBLIC)],
            &[],
            format!(
                "loop: JUMPDEST PUSH 1 {h} SHARED_MAP POP {touch} PUSH @loop JUMP",
                h = arg(0),
                touch = touch_pages(&arg(0), 256, "page")
            ),
        ),
        Hostile::new(
            "deep_commit",
            "dives of self-CALLs to depth 300 that write one byte into each of 256 pages at the bottom, committed all the way up (issue 8 #2)",
            Shared,
            &[(MIB, PUBLIC)],
            &[300],
            format!(
                "{map}
                 {depth} ISZERO PUSH @bottom JUMPI
                 {depth} PUSH 300 EQ PUSH @top JUMPI
                 {deeper} STOP
                 top: JUMPDEST {deeper} PUSH @top JUMP
                 bottom: JUMPDEST {touch} STOP",
                map = map_first(&arg(0)),
                depth = arg(1),
                deeper = call_self_deeper(),
                touch = touch_pages(&arg(0), 256, "page")
            ),
        ),
        Hostile::new(
            "namespace_alloc",
            "transaction-scoped ALLOC in a mapped namespace on tmpfs until the regions or the gas run out: one region file each (issue 8 #3)",
            Shared,
            &[],
            &[],
            NAMESPACE_ALLOC,
        )
        .mapped(Backing::Memory),
        Hostile::new(
            "namespace_alloc_disk",
            "the same with the namespace on a disk file system (the checkout's): each file also costs the file system's journal",
            Shared,
            &[],
            &[],
            NAMESPACE_ALLOC,
        )
        .mapped(Backing::Disk),
        Hostile::new(
            "frames_save_again",
            "a dive where every frame writes the same 256 pages (1 MiB) before calling deeper: each frame saves them again (issue 8 #5)",
            Shared,
            &[(MIB, PUBLIC)],
            &[1024],
            format!(
                "{map} {touch} {depth} ISZERO PUSH @end JUMPI {deeper} end: JUMPDEST STOP",
                map = map_first(&arg(0)),
                touch = touch_pages(&arg(0), 256, "page"),
                depth = arg(1),
                deeper = call_self_deeper()
            ),
        ),
        Hostile::new(
            "cow_every_page",
            "MAP a 64 MiB region copy-on-write once and fault every page, one byte each",
            Shared,
            &[(64 * MIB, PUBLIC)],
            &[],
            format!(
                "PUSH 1 {h} SHARED_MAP POP {touch} STOP",
                h = arg(0),
                touch = touch_pages(&arg(0), 16_384, "page")
            ),
        ),
        Hostile::new(
            "revert_churn",
            "a child writes one byte into each of 256 pages and reverts, again and again",
            Shared,
            &[(MIB, PUBLIC)],
            &[],
            format!(
                "CALLER ADDRESS EQ PUSH @child JUMPI
                 {map} {h} PUSH 0 MSTORE
                 loop: JUMPDEST PUSH 0 PUSH 0 PUSH 32 PUSH 0 PUSH 0 ADDRESS GAS CALL POP PUSH @loop JUMP
                 child: JUMPDEST {touch} PUSH 0 PUSH 0 REVERT",
                map = map_first(&arg(0)),
                h = arg(0),
                touch = touch_pages(&arg(0), 256, "page")
            ),
        ),
        Hostile::new(
            "revert_1024",
            "a dive to the bottom of the call stack writing a page per level, reverted at every level",
            Shared,
            &[(MIB, PUBLIC)],
            &[1023],
            format!(
                "{map} {write} {depth} ISZERO PUSH @end JUMPI {deeper} end: JUMPDEST PUSH 0 PUSH 0 REVERT",
                map = map_first(&arg(0)),
                write = write1(&arg(0), &format!("{} PUSH 255 AND PUSH 4096 MUL", arg(1))),
                depth = arg(1),
                deeper = call_self_deeper()
            ),
        ),
        Hostile::new(
            "alloc_free_churn",
            "ALLOC 32 B and FREE it until the regions run out (frees stay pending to the end)",
            Shared,
            &[],
            &[],
            "loop: JUMPDEST PUSH 0 PUSH 32 SHARED_ALLOC DUP1 ISZERO PUSH @done JUMPI SHARED_FREE POP PUSH @loop JUMP done: JUMPDEST STOP",
        ),
        Hostile::new(
            "growth_churn",
            "a child grows a region by 1 MiB with a one-byte WRITE past its end and reverts, again and again",
            Shared,
            &[(32, GROWING)],
            &[],
            format!(
                "CALLER ADDRESS EQ PUSH @child JUMPI
                 {map} {h} PUSH 0 MSTORE
                 loop: JUMPDEST PUSH 0 PUSH 0 PUSH 32 PUSH 0 PUSH 0 ADDRESS GAS CALL POP PUSH @loop JUMP
                 child: JUMPDEST {write} PUSH 0 PUSH 0 REVERT",
                map = map_first(&arg(0)),
                h = arg(0),
                write = write1(&arg(0), "PUSH 1048575")
            ),
        ),
        Hostile::new(
            "map_churn",
            "MAP the same region with alternating options: a journal entry per MAP",
            Shared,
            &[(4096, PUBLIC)],
            &[],
            format!(
                "loop: JUMPDEST PUSH 1 {h} SHARED_MAP POP PUSH 0 {h} SHARED_MAP POP PUSH @loop JUMP",
                h = arg(0)
            ),
        ),
        Hostile::new(
            "read_1MiB",
            "READ 1 MiB into memory again and again (a huge copy)",
            Shared,
            &[(MIB, PUBLIC)],
            &[],
            format!(
                "{map} loop: JUMPDEST PUSH 0 PUSH {MIB} PUSH 0 {h} SHARED_READ POP PUSH @loop JUMP",
                map = map_first(&arg(0)),
                h = arg(0)
            ),
        ),
        Hostile::new(
            "write_1MiB",
            "WRITE 1 MiB of memory into a region again and again",
            Shared,
            &[(MIB, PUBLIC)],
            &[],
            format!(
                "{map} loop: JUMPDEST PUSH 0 PUSH {MIB} PUSH 0 {h} SHARED_WRITE POP PUSH @loop JUMP",
                map = map_first(&arg(0)),
                h = arg(0)
            ),
        ),
        Hostile::new(
            "write_32B_warm",
            "WRITE 32 B to the same place again and again (the warm path)",
            Shared,
            &[(4096, PUBLIC)],
            &[],
            format!(
                "{map} loop: JUMPDEST PUSH 0 PUSH 32 PUSH 0 {h} SHARED_WRITE POP PUSH @loop JUMP",
                map = map_first(&arg(0)),
                h = arg(0)
            ),
        ),
        Hostile::new(
            "map_warm",
            "MAP the same region with the same options again and again (the warm path)",
            Shared,
            &[(4096, PUBLIC)],
            &[],
            format!(
                "loop: JUMPDEST PUSH 0 {h} SHARED_MAP POP PUSH @loop JUMP",
                h = arg(0)
            ),
        ),
        Hostile::new(
            "read_32B_warm",
            "READ 32 B again and again (the warm path)",
            Shared,
            &[(4096, PUBLIC)],
            &[],
            format!(
                "{map} loop: JUMPDEST PUSH 0 PUSH 32 PUSH 0 {h} SHARED_READ POP PUSH @loop JUMP",
                map = map_first(&arg(0)),
                h = arg(0)
            ),
        ),
        Hostile::new(
            "busy_free",
            "FREE a region and then touch it again and again: every touch halts in a child, cheaply",
            Shared,
            &[(64, PUBLIC)],
            &[],
            format!(
                "CALLER ADDRESS EQ PUSH @child JUMPI
                 {h} SHARED_FREE POP {h} PUSH 0 MSTORE
                 loop: JUMPDEST PUSH 0 PUSH 0 PUSH 32 PUSH 0 PUSH 0 ADDRESS PUSH 3000 CALL POP PUSH @loop JUMP
                 child: JUMPDEST PUSH 0 PUSH 32 PUSH 0 PUSH 0 MLOAD SHARED_READ STOP",
                h = arg(0)
            ),
        )
        .preset("testing"),
        // ----- mainnet references -----
        Hostile::new(
            "KECCAK256_32B",
            "KECCAK256 of 32 bytes",
            Mainnet,
            &[],
            &[],
            "loop: JUMPDEST PUSH 32 PUSH 0 KECCAK256 POP PUSH @loop JUMP",
        ),
        Hostile::new(
            "MULMOD",
            "MULMOD of 256-bit operands",
            Mainnet,
            &[],
            &[],
            format!(
                "loop: JUMPDEST PUSH32 {m} PUSH32 {a} PUSH32 {b} MULMOD POP PUSH @loop JUMP",
                m = "0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd",
                a = "0xfedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
                b = "0xf0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
            ),
        ),
        Hostile::new(
            "CALL_dive_revert",
            "self-CALLs to the bottom of the call stack, every level reverting (revm's own cost per frame)",
            Mainnet,
            &[],
            &[],
            "PUSH 0 PUSH 0 PUSH 0 PUSH 0 PUSH 0 ADDRESS GAS CALL POP PUSH 0 PUSH 0 REVERT",
        ),
        Hostile::new(
            "MODEXP",
            "the MODEXP precompile: 64-byte base and modulus, 32-byte exponent of ones",
            Mainnet,
            &[],
            &[],
            // mem: [base_len=64][exp_len=32][mod_len=64][base][exp][mod]
            "PUSH 64 PUSH 0 MSTORE PUSH 32 PUSH 32 MSTORE PUSH 64 PUSH 64 MSTORE
             PUSH32 0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef PUSH 96 MSTORE
             PUSH32 0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef PUSH 128 MSTORE
             PUSH32 0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff PUSH 160 MSTORE
             PUSH32 0xfedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210 PUSH 192 MSTORE
             PUSH32 0xfedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543211 PUSH 224 MSTORE
             loop: JUMPDEST PUSH 64 PUSH 256 PUSH 256 PUSH 0 PUSH 0 PUSH 5 GAS CALL POP PUSH @loop JUMP",
        ),
        Hostile::new(
            "BALANCE_cold",
            "BALANCE of a different (cold, absent) account each time",
            Mainnet,
            &[],
            &[],
            "PUSH 0x1000 loop: JUMPDEST DUP1 BALANCE POP PUSH 1 ADD PUSH @loop JUMP",
        ),
        Hostile::new(
            "SLOAD_cold",
            "SLOAD of a different (cold, empty) slot each time",
            Mainnet,
            &[],
            &[],
            "PUSH 0 loop: JUMPDEST DUP1 SLOAD POP PUSH 1 ADD PUSH @loop JUMP",
        ),
        Hostile::new(
            "memory_expansion",
            "MSTORE one word further each time (EVM memory expansion)",
            Mainnet,
            &[],
            &[],
            "PUSH 0 loop: JUMPDEST DUP1 DUP1 MSTORE PUSH 32 ADD PUSH @loop JUMP",
        ),
    ]
}
