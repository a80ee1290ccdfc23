//! Hostile bytecode with shared memory on, in nested frames, under every preset.
//!
//! One input is one short history over a fresh [`SharedMemoryManager`]: a preset
//! (production, development, testing; sometimes production in a mapped namespace in
//! a scratch directory), a few host regions granted and mapped to the contracts, two
//! fuzzed contracts and a caller that CALLs, DELEGATECALLs, STATICCALLs or CALLCODEs
//! them and reverts or returns, then one to three transactions through the public
//! [`ShmEvmBuilder`] and revm's `transact` / `transact_commit`, with host writes,
//! frees and collections between them. A fuzzed contract is either the input's raw
//! bytes or a program built from it that is biased toward 0xE0–0xE4 with plausible
//! operands (handles that exist, were freed or never were; sizes and offsets at page
//! and 2^64 edges; known and unknown flag bits), nested calls, logs and stores.
//!
//! After every transaction the session's journal must hold nothing
//! (`ShmSession::journal_footprint` and `journal_pages` are 0), and
//! [`check_invariants`] checks what the manager's public API shows: no locks or
//! pending frees left, no transaction-scoped region alive, mappings and
//! copy-on-write pages back to the host's, metrics and stats in agreement, pool
//! blocks in use equal to the live regions' blocks, and no address of a region
//! block anywhere in the output, the logs or the stored state.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, Bytes, U256};
use arbitrary::{Result, Unstructured};
use revm::{
    bytecode::Bytecode,
    context::{result::ExecutionResult, TxEnv},
    database::{CacheDB, EmptyDB},
    primitives::{hardfork::SpecId, TxKind},
    state::AccountInfo,
    DatabaseCommit, ExecuteCommitEvm, ExecuteEvm,
};
use shm_manager::{Grant, RegionRequest, SharedMemoryConfig, SharedMemoryManager, SizeClass};
use shm_opcodes::{GasSchedule, ShmEvmBuilder};
use shm_primitives::{MapOptions, Permissions, RegionHandle, RegionOptions};

/// The transaction's sender.
pub const SENDER: Address = Address::repeat_byte(0x5e);
/// The caller contract.
pub const CALLER: Address = Address::repeat_byte(0xc0);
/// The two fuzzed contracts.
pub const TARGETS: [Address; 2] = [Address::repeat_byte(0xf0), Address::repeat_byte(0xf1)];

/// Memory where fuzzed code keeps handles of its ALLOCs (8 slots) and results.
const SLOTS_AT: u64 = 0x400;
const RESULTS_AT: u64 = 0x500;
/// What a fuzzed frame returns or reverts with: its scratch, slots and results.
const OUTPUT_LEN: u64 = 0x600;

/// The three presets, in the order input byte 0 picks them.
const PRESETS: [&str; 3] = ["production", "development", "testing"];

/// One input: see the module docs.
pub fn bytecode(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

/// What the host did to the manager, which the invariants are measured against.
#[derive(Default)]
struct Host {
    /// Live host-made regions and the contexts the host mapped each to.
    regions: BTreeMap<RegionHandle, BTreeSet<Address>>,
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let preset = *u.choose(&PRESETS)?;
    let mapped = preset == "production" && u.ratio(1, 6)?;
    let scratch = mapped.then(crate::scratch::dir);
    let mut config: SharedMemoryConfig = preset.parse().expect("a preset");
    if let Some(dir) = &scratch {
        config = SharedMemoryConfig {
            namespace_root: Some(dir.path().to_path_buf()),
            ..config.with_namespace("fuzz")
        };
    }
    // A busy region halts after this wait; nothing runs concurrently here, so only
    // a lock leaked by an earlier transaction would make anything wait.
    config.lock_wait = Duration::from_millis(5);
    // The presets reserve their pools up front (production: 21 MiB, 84 ms); smaller
    // pools keep an input to milliseconds and make ALLOC's pool-exhausted path (it
    // pushes 0) and growth refusals reachable. Every other setting is the preset's.
    config.pool_blocks = [64, 16, 4, 2];
    let manager = SharedMemoryManager::new(config).expect("a valid preset");

    let mut host = Host::default();
    let mut db = CacheDB::new(EmptyDB::default());
    db.insert_account_info(
        SENDER,
        AccountInfo::default().with_balance(U256::from(10u128.pow(30))),
    );
    for _ in 0..u.int_in_range(0..=2)? {
        host_region(u, &manager, &mut host)?;
    }
    let handles: Vec<RegionHandle> = host.regions.keys().copied().collect();

    let raw = u.ratio(1, 4)?;
    for target in TARGETS {
        let code = if raw {
            let len = u.int_in_range(0..=400)?;
            u.bytes(len.min(u.len()))?.to_vec()
        } else {
            biased_program(u, &handles)?
        };
        deploy(&mut db, target, code);
    }
    deploy(&mut db, CALLER, caller_program(u)?);

    check_invariants(&manager, &host, &db, None);
    for _ in 0..u.int_in_range(1..=3)? {
        let to = if u.ratio(2, 3)? {
            CALLER
        } else {
            *u.choose(&TARGETS)?
        };
        let mut input = Vec::new();
        for h in &handles {
            input.extend_from_slice(&h.to_u256().to_be_bytes::<32>());
        }
        let extra: [u8; 32] = u.arbitrary()?;
        input.extend_from_slice(&extra);
        let gas_limit = *u.choose(&[60_000, 300_000, 1_000_000, 3_000_000])?;
        let tx = TxEnv::builder()
            .caller(SENDER)
            .kind(TxKind::Call(to))
            .data(Bytes::from(input))
            .gas_limit(gas_limit)
            .gas_price(0)
            .build()
            .expect("a valid transaction");
        let builder = ShmEvmBuilder::new(manager.clone()).spec(SpecId::OSAKA);
        let mut ctx = builder.context(&mut db);
        ctx.cfg.disable_nonce_check = true;
        ctx.cfg.tx_gas_limit_cap = Some(u64::MAX);
        let mut evm = ShmEvmBuilder::build_from(ctx);
        let journal_is_empty = |session: &shm_opcodes::ShmSession| {
            if !CHECK_JOURNAL_EMPTY {
                return;
            }
            assert!(
                session.is_idle(),
                "journal state left after the transaction"
            );
            assert_eq!(
                session.journal_pages(),
                0,
                "journal pages left after the transaction"
            );
        };
        let result = if u.arbitrary()? {
            let result = evm.transact_commit(tx).expect("a valid transaction");
            let session = evm.ctx.journaled_state.hook();
            journal_is_empty(session);
            check_sound_gas(session, &result, &manager);
            result
        } else {
            // `transact` leaves the region effects undecided until the embedder
            // says what it did with the state: commit it and publish, or drop it
            // and abandon.
            let out = evm.transact(tx).expect("a valid transaction");
            let session = evm.ctx.journaled_state.hook_mut();
            check_sound_gas(session, &out.result, &manager);
            if u.arbitrary()? {
                session.publish();
                journal_is_empty(session);
                drop(evm);
                db.commit(out.state);
            } else {
                session.abandon();
                journal_is_empty(session);
            }
            out.result
        };
        check_invariants(&manager, &host, &db, Some(&result));

        // The host between transactions.
        match u.int_in_range(0..=5)? {
            0 if !host.regions.is_empty() => {
                let h = *u.choose(&host.regions.keys().copied().collect::<Vec<_>>())?;
                let bytes: [u8; 16] = u.arbitrary()?;
                let offset = u.int_in_range(0..=5000)?;
                manager
                    .write_region(h, offset, &bytes)
                    .expect("no transaction holds the region now");
            }
            1 if !host.regions.is_empty() => {
                let h = *u.choose(&host.regions.keys().copied().collect::<Vec<_>>())?;
                manager
                    .free_region(h)
                    .expect("no transaction holds the region now");
                host.regions.remove(&h);
            }
            2 => {
                manager.garbage_collect().expect("enabled");
            }
            3 => host_region(u, &manager, &mut host)?,
            _ => {}
        }
        check_invariants(&manager, &host, &db, None);
    }
    Ok(())
}

fn deploy(db: &mut CacheDB<EmptyDB>, address: Address, code: Vec<u8>) {
    let info = AccountInfo::default()
        .with_nonce(1)
        .with_code(Bytecode::new_raw(code.into()));
    db.insert_account_info(address, info);
}

/// A host region granted to and (sometimes) mapped for the contracts.
fn host_region(
    u: &mut Unstructured<'_>,
    manager: &Arc<SharedMemoryManager>,
    host: &mut Host,
) -> Result<()> {
    let size = *u.choose(&[1u64, 32, 100, 4096, 5000, 70_000])?;
    let options = RegionOptions {
        persistent: u.arbitrary()?,
        auto_grow: u.arbitrary()?,
        public_read: u.arbitrary()?,
        public_write: u.arbitrary()?,
        ..RegionOptions::default()
    };
    let Ok(handle) = manager.create_region(RegionRequest::new(size).options(options)) else {
        return Ok(());
    };
    let mut mapped = BTreeSet::new();
    for context in [CALLER, TARGETS[0], TARGETS[1]] {
        if u.arbitrary()? {
            let rights = *u.choose(&[
                Permissions::read_only(),
                Permissions::read_write(),
                Permissions::full_access(),
            ])?;
            manager
                .grant(handle, context, Grant::new(rights))
                .expect("a live region");
        }
        if u.arbitrary()? {
            let options = MapOptions::from_bits_truncate(u.int_in_range(0..=3)?);
            manager
                .map_shared_region(handle, context, options)
                .expect("a live region");
            mapped.insert(context);
        }
    }
    host.regions.insert(handle, mapped);
    Ok(())
}

// ----- programs -----

/// A word pushed with the smallest PUSH.
fn push(code: &mut Vec<u8>, value: U256) {
    let bytes = value.to_be_bytes_trimmed_vec();
    if bytes.is_empty() {
        code.push(0x5f);
    } else {
        code.push(0x5f + bytes.len() as u8);
        code.extend_from_slice(&bytes);
    }
}

fn push_u64(code: &mut Vec<u8>, value: u64) {
    push(code, U256::from(value));
}

/// Pushes a handle: a host region's (from calldata), one an earlier ALLOC of this
/// frame kept in a slot, a plausible constant (index 1–6, generation 1–3), or junk.
fn push_handle(
    u: &mut Unstructured<'_>,
    code: &mut Vec<u8>,
    host: usize,
    last_alloc: Option<u64>,
) -> Result<()> {
    match u.int_in_range(0..=11)? {
        0..=2 if host > 0 => {
            push_u64(code, 32 * u.int_in_range(0..=host as u64 - 1)?);
            code.push(0x35); // CALLDATALOAD
        }
        0..=6 => {
            let slot = match last_alloc {
                Some(slot) if u.ratio(3, 4)? => slot,
                _ => u.int_in_range(0..=7)?,
            };
            push_u64(code, SLOTS_AT + 32 * slot);
            code.push(0x51); // MLOAD
        }
        7..=9 => {
            let index = u.int_in_range(1u64..=6)?;
            let generation = u.int_in_range(1u64..=3)?;
            push_u64(code, generation << 32 | index);
        }
        10 => push(code, U256::from_be_bytes(u.arbitrary::<[u8; 32]>()?)),
        _ => push_u64(code, u.arbitrary()?),
    }
    Ok(())
}

/// Sizes and offsets: mostly ones that work, a third around the edges the spec
/// names (page bounds, the maximum region size, 2^64, words that are no `u64`).
fn edge(u: &mut Unstructured<'_>) -> Result<U256> {
    Ok(match u.int_in_range(0..=17)? {
        0..=5 => U256::from(u.int_in_range(0u64..=300)?),
        6 | 7 => U256::from(32),
        8 | 9 => U256::from(u.int_in_range(0u64..=8192)?),
        10 => U256::ZERO,
        11 => U256::from(4095 + u64::from(u.int_in_range(0u8..=2)?)),
        12 => U256::from(u.int_in_range(0u64..=70_000)?),
        13 => U256::from(u64::MAX - u64::from(u.int_in_range(0u8..=40)?)),
        14 => U256::from(1u128 << 64) + U256::from(u.int_in_range(0u8..=3)?),
        15 => U256::MAX,
        16 => U256::from((1u64 << 20) + 1),
        _ => U256::from(64u64 << 20),
    })
}

/// Flag or option words: mostly known bits, sometimes unknown ones.
fn bits(u: &mut Unstructured<'_>) -> Result<U256> {
    Ok(match u.int_in_range(0..=13)? {
        0..=10 => U256::from(u.int_in_range(0u8..=15)?),
        11 => U256::from(u.arbitrary::<u8>()?),
        12 => U256::from(1) << 255,
        _ => U256::from(1u64 << 32),
    })
}

/// A memory offset for READ/WRITE: mostly the scratch area, sometimes far.
fn mem_offset(u: &mut Unstructured<'_>) -> Result<U256> {
    Ok(match u.int_in_range(0..=11)? {
        0..=9 => U256::from(u.int_in_range(0u64..=0x3ff)?),
        10 => U256::from(u.int_in_range(0u64..=200_000)?),
        _ => edge(u)?,
    })
}

/// A program biased toward the shared-memory opcodes; `handles` are the host
/// regions the transaction passes in calldata.
fn biased_program(u: &mut Unstructured<'_>, handles: &[RegionHandle]) -> Result<Vec<u8>> {
    let host = handles.len();
    let mut code = Vec::new();
    // Scratch memory with a pattern, so WRITEs carry non-zero bytes.
    push(&mut code, U256::from_be_bytes([0xa5; 32]));
    push_u64(&mut code, 0);
    code.push(0x52); // MSTORE
    let mut result_slot = 0u64;
    let mut last_alloc = None;
    let steps = u.int_in_range(1..=24)?;
    for _ in 0..steps {
        let keep_result = |code: &mut Vec<u8>, slot: &mut u64| {
            push_u64(code, RESULTS_AT + 32 * (*slot % 8));
            code.push(0x52); // MSTORE
            *slot += 1;
        };
        match u.int_in_range(0..=19)? {
            // SHARED_ALLOC size flags → handle kept in a slot
            0..=3 => {
                push(&mut code, bits(u)?);
                push(&mut code, edge(u)?);
                code.push(0xe0);
                code.push(0x80); // DUP1
                let slot = u.int_in_range(0..=7)?;
                last_alloc = Some(slot);
                push_u64(&mut code, SLOTS_AT + 32 * slot);
                code.push(0x52);
                keep_result(&mut code, &mut result_slot);
            }
            // SHARED_FREE handle
            4 => {
                push_handle(u, &mut code, host, last_alloc)?;
                code.push(0xe1);
                keep_result(&mut code, &mut result_slot);
            }
            // SHARED_MAP handle options
            5 | 6 => {
                push(&mut code, bits(u)?);
                push_handle(u, &mut code, host, last_alloc)?;
                code.push(0xe2);
                keep_result(&mut code, &mut result_slot);
            }
            // SHARED_READ / SHARED_WRITE handle region_offset size mem_offset
            7..=12 => {
                push(&mut code, mem_offset(u)?);
                push(&mut code, edge(u)?);
                push(&mut code, edge(u)?);
                push_handle(u, &mut code, host, last_alloc)?;
                code.push(if u.arbitrary()? { 0xe3 } else { 0xe4 });
                keep_result(&mut code, &mut result_slot);
            }
            // A nested call of a fuzzed contract or of itself, passing the calldata on.
            13 | 14 => {
                let callee = *u.choose(&[TARGETS[0], TARGETS[1], CALLER])?;
                emit_call(u, &mut code, callee)?;
                keep_result(&mut code, &mut result_slot);
            }
            // A log and a store of what the frame has seen.
            15 => {
                // LOG0 pops offset, then size.
                push_u64(&mut code, 0x100);
                push_u64(&mut code, RESULTS_AT);
                code.push(0xa0);
            }
            16 => {
                push_u64(&mut code, RESULTS_AT + 32 * u.int_in_range(0..=7)?);
                code.push(0x51); // MLOAD
                push_u64(&mut code, u.int_in_range(0..=3)?);
                code.push(0x55); // SSTORE
            }
            // Any opcode with a plausible operand in front.
            17 => {
                push(&mut code, edge(u)?);
                code.push(u.arbitrary()?);
            }
            _ => {
                let len = u.int_in_range(1..=4)?;
                code.extend_from_slice(u.bytes(len.min(u.len()))?);
            }
        }
    }
    // End: return or revert the frame's memory, stop, or halt.
    match u.int_in_range(0..=5)? {
        0..=2 => emit_end(&mut code, 0xf3),
        3 => emit_end(&mut code, 0xfd),
        4 => code.push(0x00),
        _ => code.push(0xfe),
    }
    Ok(code)
}

/// RETURN or REVERT of the frame's first [`OUTPUT_LEN`] bytes.
fn emit_end(code: &mut Vec<u8>, op: u8) {
    push_u64(code, OUTPUT_LEN);
    push_u64(code, 0);
    code.push(op);
}

/// A call of `callee` passing this frame's calldata; leaves the success flag.
fn emit_call(u: &mut Unstructured<'_>, code: &mut Vec<u8>, callee: Address) -> Result<()> {
    // CALLDATACOPY(0x600, 0, CALLDATASIZE)
    code.push(0x36); // CALLDATASIZE
    push_u64(code, 0);
    push_u64(code, OUTPUT_LEN);
    code.push(0x37);
    let kind = *u.choose(&[0xf1u8, 0xf4, 0xfa, 0xf2])?; // CALL DELEGATECALL STATICCALL CALLCODE
                                                        // retSize retOffset argsSize argsOffset [value] address gas
    push_u64(code, 0x40);
    push_u64(code, 0x7c0);
    code.push(0x36); // argsSize = CALLDATASIZE
    push_u64(code, OUTPUT_LEN);
    if matches!(kind, 0xf1 | 0xf2) {
        push_u64(code, 0);
    }
    push(code, U256::from_be_slice(callee.as_slice()));
    if u.arbitrary()? {
        code.push(0x5a); // GAS: all that the 63/64 rule lets through
    } else {
        push_u64(code, u.int_in_range(0..=200_000)?);
    }
    code.push(kind);
    Ok(())
}

/// The caller: optionally an ALLOC whose handle it appends to the calldata it
/// passes on, one to four calls of the fuzzed contracts (or itself) of any kind,
/// then RETURN or REVERT of what it saw.
fn caller_program(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut code = Vec::new();
    if u.arbitrary()? {
        push(&mut code, bits(u)?);
        push(&mut code, edge(u)?);
        code.push(0xe0);
        push_u64(&mut code, SLOTS_AT);
        code.push(0x52);
    }
    for i in 0..u.int_in_range(1..=4)? {
        let callee = *u.choose(&[TARGETS[0], TARGETS[0], TARGETS[1], CALLER])?;
        emit_call(u, &mut code, callee)?;
        push_u64(&mut code, RESULTS_AT + 32 * i);
        code.push(0x52);
    }
    emit_end(&mut code, if u.ratio(1, 3)? { 0xfd } else { 0xf3 });
    Ok(code)
}

// ----- invariants -----

/// Checks, after a transaction (`result`) or a host step (`None`), everything the
/// public API lets us see; panics with the broken invariant.
fn check_invariants(
    manager: &Arc<SharedMemoryManager>,
    host: &Host,
    db: &CacheDB<EmptyDB>,
    result: Option<&ExecutionResult>,
) {
    let stats = manager.get_memory_stats().expect("enabled");
    let metrics = manager.metrics_snapshot();
    let infos = manager.list_regions().expect("enabled");

    // Nothing of a transaction outlives it.
    assert!(
        manager.locked_regions().is_empty(),
        "region locks held after the transaction: {:?}",
        manager.locked_regions()
    );
    assert_eq!(stats.pending_frees, 0, "frees still pending");
    assert_eq!(stats.cow_pages, 0, "copy-on-write pages still held");
    for info in &infos {
        let handle = info.meta.handle();
        let persistent = info.meta.options().persistent;
        assert!(
            persistent || host.regions.contains_key(&handle),
            "transaction-scoped region {handle:?} outlived its transaction"
        );
        let mapped: BTreeSet<Address> = info.meta.mappings().keys().copied().collect();
        let expected = host.regions.get(&handle).cloned().unwrap_or_default();
        assert_eq!(
            mapped, expected,
            "{handle:?}: mappings other than the host's"
        );
    }
    for handle in host.regions.keys() {
        assert!(
            infos.iter().any(|i| i.meta.handle() == *handle),
            "host region {handle:?} vanished"
        );
    }

    // Metrics and stats agree.
    assert_eq!(stats.active_regions, infos.len());
    assert_eq!(
        metrics.regions_created,
        metrics.regions_destroyed + infos.len() as u64,
        "regions created − destroyed ≠ live regions"
    );
    let total: u64 = infos.iter().map(|i| i.meta.size()).sum();
    assert_eq!(stats.total_bytes, total);
    if CHECK_MEMORY_GAUGE {
        assert_eq!(
            metrics.memory_bytes, total,
            "memory gauge ≠ bytes of live regions"
        );
    }

    // Pool blocks in use are exactly the live regions' blocks.
    if manager.namespace_dir().is_none() {
        let mut per_class = [0usize; 4];
        let mut large = 0usize;
        for info in &infos {
            match SizeClass::ALL.iter().find(|c| c.bytes() == info.capacity) {
                Some(class) => per_class[class.index()] += 1,
                None => large += info.capacity,
            }
        }
        for class in SizeClass::ALL {
            assert_eq!(
                stats.class(class).allocated,
                per_class[class.index()],
                "{class} blocks in use ≠ live regions in that class"
            );
        }
        assert_eq!(
            stats.large_bytes, large,
            "large allocations ≠ live large regions"
        );
    }

    // No host address leaves the EVM.
    let ranges = block_ranges(manager);
    let mut seen: Vec<&[u8]> = Vec::new();
    if let Some(result) = result {
        if let Some(out) = result.output() {
            seen.push(out);
        }
        for log in result.logs() {
            seen.push(log.data.data.as_ref());
            for topic in log.topics() {
                seen.push(topic.as_slice());
            }
        }
    }
    let words: Vec<[u8; 32]> = db
        .cache
        .accounts
        .values()
        .flat_map(|a| a.storage.values().map(|v| v.to_be_bytes::<32>()))
        .collect();
    seen.extend(words.iter().map(|w| &w[..]));
    for bytes in seen {
        if let Some(at) = find_address(bytes, &ranges) {
            panic!("a host address ({at:#x}) is visible to the EVM");
        }
    }
}

/// Spec §8 and issue "Sound gas": the host memory a transaction made the host hold
/// is bounded by the gas it spent. Region memory it allocated costs `f(W)` and the
/// journal's page buffers `g(P)`; both counts go back on revert while the gas
/// spent does not, so at their peaks `f(W) ≤ spent` and `g(P) ≤ spent`, and the
/// page buffers never pass `max_journal_bytes`.
fn check_sound_gas(
    session: &shm_opcodes::ShmSession,
    result: &ExecutionResult,
    manager: &SharedMemoryManager,
) {
    let spent = result.gas().total_gas_spent();
    let peak = session.last_transaction_peak();
    let gas = GasSchedule::default();
    let region_cost = gas.memory_cost(peak.region_words);
    assert!(
        region_cost <= spent,
        "{} words of region memory held, priced {region_cost}, by a transaction that spent {spent} gas",
        peak.region_words
    );
    let page_cost = gas.page_cost(peak.page_buffers);
    assert!(
        page_cost <= spent,
        "{} page buffers held, priced {page_cost}, by a transaction that spent {spent} gas",
        peak.page_buffers
    );
    let page_bytes = peak
        .page_buffers
        .saturating_mul(shm_primitives::PAGE_SIZE as u64);
    assert!(
        page_bytes <= manager.config().max_journal_bytes,
        "{page_bytes} bytes of page buffers held, above the journal's cap"
    );
}

/// Whether the session's journal must hold nothing after a transaction ended (and
/// was published or abandoned), by `ShmSession::is_idle` (the journal keeps its
/// buffers' capacity for the next transaction by design, so `journal_footprint`
/// is not 0 then).
pub const CHECK_JOURNAL_EMPTY: bool = true;

/// Whether the memory gauge is checked against the live regions' bytes (issue
/// 13's drifting gauge, fixed: EVM growth and its revert move it).
pub const CHECK_MEMORY_GAUGE: bool = true;

/// Address ranges the pool hands region blocks out from: one free block of each
/// class, taken and given back (the blocks of live regions are no longer reachable
/// through the public API; see docs/reliability.md).
fn block_ranges(manager: &Arc<SharedMemoryManager>) -> Vec<Range<u64>> {
    let mut ranges = Vec::new();
    for class in SizeClass::ALL {
        if let Ok(block) = manager.allocate_from_pool(class.bytes()) {
            let start = block.addr() as u64;
            ranges.push(start..start + block.len() as u64);
            let _ = manager.deallocate_to_pool(block);
        }
    }
    ranges
}

/// The first 8-byte window of `bytes` (big- or little-endian, at any offset) that
/// points into one of `ranges`.
fn find_address(bytes: &[u8], ranges: &[Range<u64>]) -> Option<u64> {
    bytes.windows(8).find_map(|w| {
        let w: [u8; 8] = w.try_into().expect("8 bytes");
        [u64::from_be_bytes(w), u64::from_le_bytes(w)]
            .into_iter()
            .find(|v| ranges.iter().any(|r| r.contains(v)))
    })
}
