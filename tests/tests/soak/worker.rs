//! The threads of a soak: EVM workers (one EVM each, reused for every
//! transaction, as a node reuses them) and a host thread (host reads, writes
//! and garbage collections racing the transactions).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes, U256};
use revm::{
    bytecode::Bytecode,
    context::TxEnv,
    database::{CacheDB, EmptyDB},
    database_interface::{Database, DatabaseCommit},
    interpreter::{
        interpreter_types::{Jumps, LoopControl},
        Interpreter,
    },
    primitives::{AddressMap, StorageKey, StorageValue, TxKind, B256},
    state::{Account, AccountInfo},
    ExecuteCommitEvm, ExecuteEvm, InspectCommitEvm, InspectEvm, Inspector,
};
use shm_manager::{HaltCause, RegionRequest, SharedMemoryManager, ShmError};
use shm_opcodes::ShmEvmBuilder;
use shm_primitives::{RegionHandle, RegionOptions};
use shm_tests::{GAS_LIMIT, SENDER};

use crate::check::{writer_of, Replay};
use crate::ledger::{Ledger, Seen, Stamp, Writer};
use crate::program::{Decision, Mix, Plan, Rng, CONTRACT, REGION_SIZE, SLOTS};

/// Entries of the directory of shared regions.
pub(crate) const DIRECTORY_ENTRIES: usize = 8;
/// The directory region's name: 8 bytes per entry, the handle of the shared
/// region in that place (0: none).
pub(crate) const DIRECTORY: &str = "soak-directory";

/// Makes the directory and its shared regions (owned by the contract).
pub(crate) fn make_directory(manager: &SharedMemoryManager) -> RegionHandle {
    let persistent = RegionOptions {
        persistent: true,
        ..RegionOptions::default()
    };
    let dir = manager
        .create_region(
            RegionRequest::new(8 * DIRECTORY_ENTRIES as u64)
                .named(DIRECTORY)
                .options(persistent),
        )
        .expect("the directory");
    for i in 0..DIRECTORY_ENTRIES {
        let shared = RegionOptions {
            persistent: true,
            public_read: true,
            public_write: true,
            ..RegionOptions::default()
        };
        let h = manager
            .create_region(
                RegionRequest::new(REGION_SIZE)
                    .owner(CONTRACT)
                    .options(shared),
            )
            .expect("a shared region");
        // The creator's host reference is not needed: persistence keeps it.
        manager.release_region(h).expect("release");
        manager
            .write_region(dir, 8 * i as u64, &h.to_u64().to_be_bytes())
            .expect("directory entry");
    }
    dir
}

/// The directory's non-empty entries: (index, handle).
pub(crate) fn read_directory(
    manager: &SharedMemoryManager,
    dir: RegionHandle,
) -> Vec<(usize, u64)> {
    let mut buf = [0u8; 8 * DIRECTORY_ENTRIES];
    loop {
        match manager.read_region(dir, 0, &mut buf) {
            Ok(_) => break,
            Err(ShmError::RegionBusy { .. }) => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => panic!("reading the directory: {e}"),
        }
    }
    buf.chunks(8)
        .enumerate()
        .map(|(i, c)| (i, u64::from_be_bytes(c.try_into().expect("8 bytes"))))
        .filter(|(_, h)| *h != 0)
        .collect()
}

fn set_directory(manager: &SharedMemoryManager, dir: RegionHandle, index: usize, handle: u64) {
    loop {
        match manager.write_region(dir, 8 * index as u64, &handle.to_be_bytes()) {
            Ok(_) => return,
            Err(ShmError::RegionBusy { .. }) => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => panic!("updating the directory: {e}"),
        }
    }
}

/// Counters of one process's soak, shared by its threads.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) committed: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) reverted: AtomicU64,
    pub(crate) halted: AtomicU64,
    pub(crate) busy: AtomicU64,
    pub(crate) freed: AtomicU64,
    /// "Invalid handle" for a handle the directory gave. Must stay 0, heap
    /// or mapped (in a namespace it once came from threads meeting another
    /// process's new handle at once; `security.rs`
    /// `threads_meeting_a_new_handle_at_once_all_find_it`).
    pub(crate) invalid_handle: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) inspected: AtomicU64,
    pub(crate) recreated: AtomicU64,
    pub(crate) reads_checked: AtomicU64,
    pub(crate) host_reads: AtomicU64,
    pub(crate) host_writes: AtomicU64,
    pub(crate) host_busy: AtomicU64,
    pub(crate) gc_runs: AtomicU64,
    pub(crate) max_journal_footprint: AtomicU64,
}

impl Counters {
    pub(crate) fn add(&self, counter: &AtomicU64, n: u64) {
        let _ = self;
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The worker's database: the thread's state, and the moment the embedder
/// commits (just before the regions are published), told to the ledger.
pub(crate) struct SoakDb {
    inner: CacheDB<EmptyDB>,
    ledger: Arc<Ledger>,
    current: Writer,
}

impl Database for SoakDb {
    type Error = <CacheDB<EmptyDB> as Database>::Error;
    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        self.inner.basic(address)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        self.inner.code_by_hash(code_hash)
    }
    fn storage(
        &mut self,
        address: Address,
        index: StorageKey,
    ) -> Result<StorageValue, Self::Error> {
        self.inner.storage(address, index)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.inner.block_hash(number)
    }
}

impl DatabaseCommit for SoakDb {
    fn commit(&mut self, changes: AddressMap<Account>) {
        // `ShmDb` publishes the region effects right after this returns.
        self.ledger.committing(self.current);
        self.inner.commit(changes);
    }
}

/// Checks every SHARED_READ the moment it completes: a stamp of a
/// transaction of this process that has not reached its commit is a dirty
/// read; two different foreign halves are a torn read.
pub(crate) struct DirtyReadInspector {
    ledger: Arc<Ledger>,
    me: Writer,
    reading: bool,
}

impl<CTX> Inspector<CTX> for DirtyReadInspector {
    fn step(&mut self, interp: &mut Interpreter, _: &mut CTX) {
        self.reading = interp.bytecode.opcode() == 0xE3;
    }

    fn step_end(&mut self, interp: &mut Interpreter, _: &mut CTX) {
        if !std::mem::take(&mut self.reading) || interp.bytecode.is_end() {
            return;
        }
        // Every READ of the soak's programs copies 64 bytes to 0x400.
        let bytes = interp.memory.slice_len(0x400, 64).to_vec();
        let a: [u8; 32] = bytes[..32].try_into().expect("32 bytes");
        let b: [u8; 32] = bytes[32..].try_into().expect("32 bytes");
        let (wa, wb) = (writer_of(&a), writer_of(&b));
        for w in [wa, wb].into_iter().flatten() {
            if w != self.me
                && w.process == self.ledger.process()
                && !self.ledger.has_reached_commit(w)
            {
                self.ledger.violation(format!(
                    "dirty read: {:?} read {w:?}'s bytes before that transaction reached its commit",
                    self.me
                ));
            }
        }
        let foreign = |w: Option<Writer>| w.is_some_and(|w| w != self.me);
        if foreign(wa) && foreign(wb) && a != b {
            self.ledger.violation(format!(
                "torn read by {:?}: {} / {}",
                self.me,
                crate::ledger::hex(&a),
                crate::ledger::hex(&b)
            ));
        }
    }
}

/// One worker's settings.
pub(crate) struct Worker {
    pub(crate) manager: Arc<SharedMemoryManager>,
    pub(crate) directory: RegionHandle,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) thread: u8,
    pub(crate) seed: u64,
    pub(crate) until: Instant,
}

impl Worker {
    /// Runs transactions until the deadline.
    pub(crate) fn run(self) {
        let Worker {
            manager,
            directory,
            ledger,
            counters: c,
            thread,
            seed,
            until,
        } = self;
        let cow = manager.config().enable_cow;
        let mut state = CacheDB::new(EmptyDB::default());
        state.insert_account_info(
            SENDER,
            AccountInfo::default().with_balance(U256::from(10u128.pow(30))),
        );
        let db = SoakDb {
            inner: state,
            ledger: ledger.clone(),
            current: Writer {
                process: ledger.process(),
                thread,
                seq: 0,
            },
        };
        let mut ctx = ShmEvmBuilder::new(manager.clone()).context(db);
        ctx.cfg.disable_nonce_check = true;
        ctx.cfg.tx_gas_limit_cap = Some(u64::MAX);
        let inspector = DirtyReadInspector {
            ledger: ledger.clone(),
            me: db_writer(ledger.process(), thread, 0),
            reading: false,
        };
        let mut evm = ShmEvmBuilder::build_from_with_inspector(ctx, inspector);
        let mut rng = Rng::new(seed);
        let mut seq = 0u64;
        while Instant::now() < until {
            let regions = read_directory(&manager, directory);
            if regions.is_empty() {
                break;
            }
            let writer = db_writer(ledger.process(), thread, seq);
            let plan = Plan::random(&mut rng, Mix::SOAK, writer, &regions);
            let code = shm_evm::asm::assemble(&plan.assembly())
                .unwrap_or_else(|e| panic!("assembly of {plan:?}: {e}"));
            {
                let db = &mut evm.ctx.journaled_state.journal_mut().database;
                db.current = writer;
                // Each transaction has code of its own: the last one's goes
                // (or the test's own state would grow with every transaction).
                if let Some(old) = db.inner.cache.accounts.get(&CONTRACT) {
                    let old = old.info.code_hash;
                    db.inner.cache.contracts.remove(&old);
                }
                db.inner.insert_account_info(
                    CONTRACT,
                    AccountInfo::default().with_code(Bytecode::new_raw(code)),
                );
            }
            evm.inspector.me = writer;
            evm.ctx.journaled_state.hook_mut().clear_last_halt();
            let tx = TxEnv::builder()
                .caller(SENDER)
                .kind(TxKind::Call(CONTRACT))
                .data(Bytes::from(plan.calldata()))
                .gas_limit(GAS_LIMIT)
                .gas_price(0)
                .build()
                .expect("a valid transaction");
            let result = match (plan.decision, plan.inspect) {
                (Decision::Commit, false) => evm.transact_commit(tx),
                (Decision::Commit, true) => evm.inspect_tx_commit(tx),
                (_, false) => evm.transact(tx).map(|r| r.result),
                (_, true) => evm.inspect_tx(tx).map(|r| r.result),
            }
            .unwrap_or_else(|e| panic!("{writer:?}: the transaction was refused: {e:?}"));
            let session = evm.ctx.journaled_state.hook_mut();
            match plan.decision {
                Decision::Commit => c.add(&c.committed, 1),
                Decision::Abandon => {
                    session.abandon();
                    c.add(&c.abandoned, 1);
                }
                // Left undecided: the next transaction abandons it.
                Decision::Forget => c.add(&c.abandoned, 1),
            }
            match session.last_halt() {
                Some(HaltCause::RegionBusy) => c.add(&c.busy, 1),
                Some(HaltCause::FreedRegion) => c.add(&c.freed, 1),
                Some(HaltCause::InvalidHandle) => c.add(&c.invalid_handle, 1),
                _ => {}
            }
            if session.journal_pages() != 0 {
                ledger.violation(format!(
                    "{writer:?}: {} journal pages held after the transaction",
                    session.journal_pages()
                ));
            }
            c.max_journal_footprint
                .fetch_max(session.journal_footprint() as u64, Ordering::Relaxed);
            c.add(&c.transactions, 1);
            c.add(&c.inspected, u64::from(plan.inspect));
            if result.is_success() {
                c.add(&c.succeeded, 1);
            } else if result.is_halt() {
                c.add(&c.halted, 1);
            } else {
                c.add(&c.reverted, 1);
            }
            let (replayed, errors) = Replay::run(&plan, &result, cow);
            for e in errors {
                ledger.violation(e);
            }
            ledger.decided(writer, replayed.mask);
            c.add(&c.reads_checked, replayed.reads);
            for seen in replayed.seen {
                ledger.observe(seen);
            }
            for (index, handle) in replayed.recreated {
                c.add(&c.recreated, 1);
                set_directory(&manager, directory, index, handle);
            }
            seq += 1;
        }
    }
}

fn db_writer(process: u8, thread: u8, seq: u64) -> Writer {
    Writer {
        process,
        thread,
        seq,
    }
}

/// The host thread: reads and writes slots of the shared regions through the
/// host API (one-call transactions), and collects garbage now and then.
///
/// A *saboteur* host thread (the checker's own test) writes stamps it then
/// declares never committed, and half slots: what a broken isolation would
/// show the transactions.
pub(crate) struct HostThread {
    pub(crate) sabotage: bool,
    pub(crate) manager: Arc<SharedMemoryManager>,
    pub(crate) directory: RegionHandle,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) thread: u8,
    pub(crate) seed: u64,
    pub(crate) until: Instant,
}

impl HostThread {
    pub(crate) fn run(self) {
        let HostThread {
            sabotage,
            manager,
            directory,
            ledger,
            counters: c,
            thread,
            seed,
            until,
        } = self;
        let mut rng = Rng::new(seed);
        let mut seq = 0u64;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_micros(300));
            let regions = read_directory(&manager, directory);
            if regions.is_empty() {
                break;
            }
            let (_, raw) = regions[rng.below(regions.len() as u64) as usize];
            let handle = RegionHandle::from_u64(raw).expect("a handle");
            let slot = rng.below(u64::from(SLOTS)) as u16;
            if rng.chance(1) {
                manager.garbage_collect().expect("gc");
                c.add(&c.gc_runs, 1);
            }
            if rng.chance(50) {
                let mut buf = [0u8; 64];
                match manager.read_region(handle, u64::from(slot) * 64, &mut buf) {
                    Ok(_) => {
                        c.add(&c.host_reads, 1);
                        let a: [u8; 32] = buf[..32].try_into().expect("32");
                        let b: [u8; 32] = buf[32..].try_into().expect("32");
                        host_observe(&ledger, raw, slot, &a, &b);
                    }
                    Err(ShmError::RegionBusy { .. }) => c.add(&c.host_busy, 1),
                    Err(ShmError::RegionFreed(_)) => {}
                    Err(ShmError::InvalidRegionHandle(_)) => c.add(&c.invalid_handle, 1),
                    Err(e) => ledger.violation(format!("host read: {e}")),
                }
                continue;
            }
            let writer = db_writer(ledger.process(), thread, seq);
            seq += 1;
            let stamp = Stamp {
                writer,
                write: 0,
                handle: raw,
                slot,
            }
            .encode();
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&stamp);
            pair[32..].copy_from_slice(&stamp);
            // A host write is visible the moment it lands.
            if !sabotage {
                ledger.committing(writer);
            }
            let bytes = if sabotage && seq.is_multiple_of(2) {
                &pair[..32]
            } else {
                &pair[..]
            };
            let landed = match manager.write_region(handle, u64::from(slot) * 64, bytes) {
                Ok(_) => {
                    c.add(&c.host_writes, 1);
                    true
                }
                Err(ShmError::RegionBusy { .. }) => {
                    c.add(&c.host_busy, 1);
                    false
                }
                Err(ShmError::RegionFreed(_)) => false,
                Err(ShmError::InvalidRegionHandle(_)) => {
                    c.add(&c.invalid_handle, 1);
                    false
                }
                Err(e) => {
                    ledger.violation(format!("host write: {e}"));
                    false
                }
            };
            ledger.decided(writer, u32::from(landed && !sabotage));
        }
    }
}

fn host_observe(ledger: &Ledger, handle: u64, slot: u16, a: &[u8; 32], b: &[u8; 32]) {
    if a != b {
        ledger.violation(format!(
            "the host read slot {slot} of {handle:#x} torn: {} / {}",
            crate::ledger::hex(a),
            crate::ledger::hex(b)
        ));
    }
    for word in [a, b] {
        match Stamp::decode(word) {
            Err(e) => ledger.violation(format!("host read of slot {slot} of {handle:#x}: {e}")),
            Ok(None) => {}
            Ok(Some(s)) if s.handle != handle || s.slot != slot => ledger.violation(format!(
                "slot {slot} of {handle:#x} holds a stamp written to slot {} of {:#x}",
                s.slot, s.handle
            )),
            Ok(Some(s)) => ledger.observe(Seen {
                writer: s.writer,
                write: s.write,
            }),
        }
    }
}
