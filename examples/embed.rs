//! Embedding shared memory in a node: the host makes a region, fills it and lets a
//! contract read it; the contract runs on revm with shared memory on; the host reads
//! what the contract wrote back, and looks at the statistics.
//!
//! ```sh
//! cargo run -p shm-evm --example embed
//! ```

use revm::{
    bytecode::Bytecode,
    context::TxEnv,
    database::{CacheDB, EmptyDB},
    primitives::{Address, Bytes, TxKind, U256},
    state::AccountInfo,
    ExecuteCommitEvm,
};
use shm_manager::{Grant, RegionRequest, SharedMemoryConfig, SharedMemoryManager};
use shm_opcodes::ShmEvmBuilder;
use shm_primitives::{MapOptions, Permissions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. One manager per node, shared by every EVM (and thread) that runs transactions.
    let manager = SharedMemoryManager::new(SharedMemoryConfig::production())?;

    // 2. The host makes a region and writes into it. Host calls are privileged and
    //    not journalled; the region belongs to the host context (the zero address).
    let prices = manager.create_region(RegionRequest::new(4096).named("prices"))?;
    manager.write_region(prices, 0, &U256::from(3141).to_be_bytes::<32>())?;

    // 3. A contract: reads word 0 of the region whose handle it gets in calldata,
    //    doubles it, writes the result to word 1 and returns it. Under Strict
    //    (production) it needs read-write rights and a mapping, which the host gives.
    let oracle = Address::repeat_byte(0x0a);
    let code = shm_evm::asm::assemble(
        "PUSH 0 PUSH 32 PUSH 0 PUSH 0 CALLDATALOAD SHARED_READ POP    ; mem[0..32] = region[0..32]
         PUSH 0 MLOAD PUSH 2 MUL PUSH 0 MSTORE
         PUSH 0 PUSH 32 PUSH 32 PUSH 0 CALLDATALOAD SHARED_WRITE POP  ; region[32..64] = 2 * price
         PUSH 32 PUSH 0 RETURN",
    )?;
    manager.grant(prices, oracle, Grant::new(Permissions::read_write()))?;
    manager.map_shared_region(prices, oracle, MapOptions::empty())?;

    let mut db = CacheDB::new(EmptyDB::default());
    db.insert_account_info(
        oracle,
        AccountInfo::default().with_code(Bytecode::new_raw(code)),
    );

    // 4. Build an EVM with shared memory on and run a transaction.
    let mut evm = ShmEvmBuilder::new(manager.clone()).build(&mut db);
    let tx = TxEnv::builder()
        .kind(TxKind::Call(oracle))
        .data(Bytes::from(prices.to_u256().to_be_bytes::<32>().to_vec()))
        .gas_limit(1_000_000)
        .build()
        .map_err(|e| format!("{e:?}"))?;
    let result = evm.transact_commit(tx)?;
    println!(
        "contract returned {} using {} gas",
        U256::from_be_slice(result.output().unwrap_or_default()),
        result.tx_gas_used()
    );

    // 5. The host sees what the contract wrote.
    let mut word = [0u8; 32];
    manager.read_region(prices, 32, &mut word)?;
    println!(
        "region word 1 as the host reads it: {}",
        U256::from_be_bytes(word)
    );

    // 6. Statistics, counters and Prometheus text for monitoring.
    let stats = manager.get_memory_stats()?;
    println!(
        "{} region(s), {} bytes",
        stats.active_regions, stats.total_bytes
    );
    print!(
        "{}",
        manager
            .prometheus()
            .lines()
            .filter(|l| l.starts_with("shm_reads") || l.starts_with("shm_writes"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    manager.free_region(prices)?;
    Ok(())
}
