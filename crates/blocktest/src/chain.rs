//! One blockchain test: a chain of imported blocks (side chains included), each executed
//! through alloy-evm's `EthBlockExecutor` with EVMs from an [`EvmFactory`]
//! ([`BlockExecutors`]).

use crate::{
    consensus::{validate_body_roots, validate_body_structure, validate_header, validate_uncles},
    exception::{execution_rejection, BlockException as B, Rejection, TransactionException},
    fixture::{BlockchainTest, FixtureAccount},
    network::{ForkSchedule, Network, CHAIN_ID},
    report::FailureKind,
};
use alloy_consensus::transaction::Recovered;
use alloy_consensus::{
    proofs::calculate_receipt_root, Block, Eip658Value, Header, ReceiptEnvelope, TxEnvelope,
    TxReceipt,
};
use alloy_evm::{
    block::{BlockExecutionResult, BlockExecutor, BlockExecutorFactory},
    eth::{
        receipt_builder::AlloyReceiptBuilder, EthBlockExecutionCtx, EthBlockExecutorFactory,
        EthEvmFactory,
    },
    Evm, EvmEnv, EvmFactory, FromRecoveredTx, FromTxWithEncoded,
};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{keccak256, Address, Bloom, Bytes, B256, U256};
use alloy_rlp::Decodable;
use revm::{
    bytecode::Bytecode,
    context::BlockEnv,
    database::{CacheState, PlainAccount, State},
    primitives::{hardfork::SpecId, BLOCK_HASH_HISTORY, KECCAK_EMPTY},
    state::AccountInfo,
};
use shm_alloy_evm::{ShmBlockExecutorFactory, ShmEvmFactory};
use shm_statetest::state_root;
use std::{borrow::Cow, collections::HashMap};

/// Where the runner gets alloy-evm block executors: a [`BlockExecutorFactory`] for each
/// block's fork schedule, over revm's mainnet environment and Ethereum transactions and
/// receipts, with `EthBlockExecutor`'s execution context.
///
/// Implemented for alloy-evm's own [`EthEvmFactory`] (through `EthBlockExecutorFactory`)
/// and for [`ShmEvmFactory`] (through [`ShmBlockExecutorFactory`], which publishes the
/// region effects of what it commits).
pub trait BlockExecutors: Sync {
    /// The executor factory for one fork schedule.
    type Factory: for<'a> BlockExecutorFactory<
        EvmFactory: EvmFactory<
            Spec = SpecId,
            BlockEnv = BlockEnv,
            Tx: FromRecoveredTx<TxEnvelope> + FromTxWithEncoded<TxEnvelope>,
        >,
        Transaction = TxEnvelope,
        Receipt = ReceiptEnvelope,
        ExecutionCtx<'a> = EthBlockExecutionCtx<'a>,
    >;

    /// Executors for blocks under `schedule`.
    fn executors(&self, schedule: ForkSchedule) -> Self::Factory;
}

impl BlockExecutors for EthEvmFactory {
    type Factory = EthBlockExecutorFactory<AlloyReceiptBuilder, ForkSchedule, EthEvmFactory>;

    fn executors(&self, schedule: ForkSchedule) -> Self::Factory {
        EthBlockExecutorFactory::new(AlloyReceiptBuilder::default(), schedule, *self)
    }
}

impl BlockExecutors for ShmEvmFactory {
    type Factory = ShmBlockExecutorFactory<AlloyReceiptBuilder, ForkSchedule>;

    fn executors(&self, schedule: ForkSchedule) -> Self::Factory {
        ShmBlockExecutorFactory::new(AlloyReceiptBuilder::default(), schedule, self.clone())
    }
}

/// Why a test failed: the check, the block (index into the fixture's `blocks`) and what
/// went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFailure {
    /// Which check failed.
    pub kind: FailureKind,
    /// The fixture block it concerns, if one.
    pub block: Option<usize>,
    /// One line.
    pub message: String,
}

impl TestFailure {
    fn new(kind: FailureKind, block: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            kind,
            block,
            message: message.into(),
        }
    }
}

/// What became of a block handed to [`Chain::import`].
#[derive(Debug)]
enum ImportError {
    /// The block is invalid.
    Rejected(Rejection),
    /// Execution failed for a reason that is no verdict on the block (the database, the EVM).
    Internal(String),
}

impl From<Rejection> for ImportError {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(rejection)
    }
}

/// A block the chain holds: its header and uncles (for uncle checks and fork choice), its
/// total difficulty and the state after it.
struct StoredBlock {
    header: Header,
    ommers: Vec<Header>,
    total_difficulty: U256,
    state: CacheState,
}

/// The chain of one test: every valid block by hash, and the head.
struct Chain<'x, X: ?Sized> {
    executors: &'x X,
    network: Network,
    blocks: HashMap<B256, StoredBlock>,
    head: B256,
}

/// Runs one blockchain test with block executors from `executors`: imports every block in order, checks
/// each against its expectation (valid, or rejected with the expected exception), then the
/// head against `lastblockhash` and its state against `postState` (or `postStateHash`).
pub fn run_test<X: BlockExecutors + ?Sized>(
    executors: &X,
    test: &BlockchainTest,
) -> Result<(), TestFailure> {
    let invalid = |message: String| TestFailure::new(FailureKind::InvalidFixture, None, message);
    let network = Network::parse(&test.network).map_err(|error| invalid(error.to_string()))?;
    let genesis = decode_block(&test.genesis_rlp)
        .map_err(|error| invalid(format!("genesis RLP: {error}")))?;
    let genesis_hash = genesis.header.hash_slow();
    if genesis_hash != test.genesis_block_header.hash {
        return Err(invalid(format!(
            "genesis RLP hashes to {genesis_hash}, the fixture says {}",
            test.genesis_block_header.hash
        )));
    }
    let state = genesis_state(&test.pre);
    let root = state_root(state.trie_account());
    if root != genesis.header.state_root {
        return Err(invalid(format!(
            "pre state root {root} differs from the genesis header's {}",
            genesis.header.state_root
        )));
    }
    let mut chain = Chain {
        executors,
        network,
        blocks: HashMap::new(),
        head: genesis_hash,
    };
    chain.blocks.insert(
        genesis_hash,
        StoredBlock {
            total_difficulty: genesis.header.difficulty,
            header: genesis.header,
            ommers: genesis.body.ommers,
            state,
        },
    );

    for (index, block) in test.blocks.iter().enumerate() {
        let fail = |kind, message: String| Err(TestFailure::new(kind, Some(index), message));
        match (chain.import(&block.rlp), &block.expect_exception) {
            (Ok(hash), None) => {
                if let Some(header) = &block.block_header {
                    if header.hash != hash {
                        return fail(
                            FailureKind::InvalidFixture,
                            format!(
                                "block RLP hashes to {hash}, the fixture says {}",
                                header.hash
                            ),
                        );
                    }
                }
            }
            (Ok(hash), Some(expected)) => {
                return fail(
                    FailureKind::UnexpectedAcceptance,
                    format!("block {hash} was accepted; expected {expected}"),
                )
            }
            (Err(ImportError::Rejected(rejection)), None) => {
                return fail(
                    FailureKind::UnexpectedRejection,
                    format!("valid block rejected: {rejection}"),
                )
            }
            (Err(ImportError::Rejected(rejection)), Some(expected)) => {
                if !rejection.matches(expected) {
                    return fail(
                        FailureKind::WrongException,
                        format!("rejected with {rejection}; expected {expected}"),
                    );
                }
            }
            (Err(ImportError::Internal(message)), _) => {
                return fail(FailureKind::Internal, message)
            }
        }
    }

    if chain.head != test.lastblockhash {
        return Err(TestFailure::new(
            FailureKind::LastBlockHash,
            None,
            format!("head is {}, expected {}", chain.head, test.lastblockhash),
        ));
    }
    let head_state = &chain.blocks[&chain.head].state;
    if let Some(expected) = &test.post_state {
        if let Some(divergence) = first_divergence(head_state, expected) {
            return Err(TestFailure::new(FailureKind::PostState, None, divergence));
        }
    } else if let Some(expected) = test.post_state_hash {
        let root = state_root(head_state.trie_account());
        if root != expected {
            return Err(TestFailure::new(
                FailureKind::PostState,
                None,
                format!("post state root {root}, expected {expected}"),
            ));
        }
    } else {
        return Err(invalid("neither postState nor postStateHash".to_string()));
    }
    Ok(())
}

/// Decodes a whole block; trailing bytes are an error.
fn decode_block(rlp: &Bytes) -> alloy_rlp::Result<Block<TxEnvelope>> {
    let mut buf = rlp.as_ref();
    let block = Block::<TxEnvelope>::decode(&mut buf)?;
    if !buf.is_empty() {
        return Err(alloy_rlp::Error::Custom("trailing bytes after the block"));
    }
    Ok(block)
}

/// The genesis state as a revm cache.
fn genesis_state(pre: &std::collections::BTreeMap<Address, FixtureAccount>) -> CacheState {
    let mut cache = CacheState::new();
    for (address, account) in pre {
        let (code_hash, code) = if account.code.is_empty() {
            (KECCAK_EMPTY, None)
        } else {
            (
                keccak256(&account.code),
                Some(Bytecode::new_raw(account.code.clone())),
            )
        };
        let info = AccountInfo {
            balance: account.balance,
            nonce: account.nonce.saturating_to(),
            code_hash,
            code,
            ..Default::default()
        };
        let storage = account.storage.iter().map(|(k, v)| (*k, *v)).collect();
        cache.insert_account_with_storage(*address, info, storage);
    }
    cache
}

impl<X: BlockExecutors + ?Sized> Chain<'_, X> {
    /// Imports one block: decode, find the parent, check the header, body and uncles,
    /// execute, check the results; store it and move the head on success.
    fn import(&mut self, rlp: &Bytes) -> Result<B256, ImportError> {
        let block = decode_block(rlp)
            .map_err(|error| Rejection::block(B::RLP_STRUCTURES_ENCODING, error.to_string()))?;
        let header = &block.header;
        let hash = header.hash_slow();
        let Some(parent) = self.blocks.get(&header.parent_hash) else {
            let kind = if header.parent_hash.is_zero() {
                B::UNKNOWN_PARENT_ZERO
            } else {
                B::UNKNOWN_PARENT
            };
            return Err(
                Rejection::block(kind, format!("parent {} unknown", header.parent_hash)).into(),
            );
        };
        let schedule = self.network.at(parent.total_difficulty);
        validate_header(header, &parent.header, &schedule)?;
        validate_body_structure(header, &block.body, &schedule)?;
        validate_uncles(
            header,
            hash,
            &block.body.ommers,
            self.ancestors(header.parent_hash),
            &schedule,
        )?;
        let senders = recover_senders(&block, &schedule)?;
        let executed = self.execute(&block, &senders, &schedule)?;
        validate_body_roots(header, &block.body)?;
        check_results(header, &executed, &schedule)?;

        let total_difficulty = parent.total_difficulty + header.difficulty;
        let merged = schedule.is_paris_active_at_block(header.number);
        // Proof of stake: the newest valid block is the head (the tests' fork choice);
        // proof of work: the heaviest chain, the first seen on a tie.
        if merged || total_difficulty > self.blocks[&self.head].total_difficulty {
            self.head = hash;
        }
        self.blocks.insert(
            hash,
            StoredBlock {
                header: block.header,
                ommers: block.body.ommers,
                total_difficulty,
                state: executed.state,
            },
        );
        Ok(hash)
    }

    /// The chain from `hash` back to genesis: hash, header and included uncles.
    fn ancestors(&self, hash: B256) -> impl Iterator<Item = (B256, &Header, &[Header])> {
        let mut next = Some(hash);
        std::iter::from_fn(move || {
            let hash = next?;
            let stored = self.blocks.get(&hash)?;
            next = (stored.header.number > 0).then_some(stored.header.parent_hash);
            Some((hash, &stored.header, stored.ommers.as_slice()))
        })
    }

    /// Executes the block over its parent's state with alloy-evm's block executor and an
    /// EVM from the factory.
    fn execute(
        &self,
        block: &Block<TxEnvelope>,
        senders: &[Address],
        schedule: &ForkSchedule,
    ) -> Result<Executed, ImportError> {
        let header = &block.header;
        let parent = &self.blocks[&header.parent_hash];
        let mut state = State::builder()
            .with_cached_prestate(parent.state.clone())
            .build();
        // BLOCKHASH sees this block's own ancestry (side chains differ).
        for (hash, ancestor, _) in self
            .ancestors(header.parent_hash)
            .take(BLOCK_HASH_HISTORY as usize)
        {
            state.block_hashes.insert(ancestor.number, hash);
        }
        let env = EvmEnv::for_eth_block(
            header,
            schedule,
            CHAIN_ID,
            schedule.blob_params(header.timestamp),
        );
        let executors = self.executors.executors(schedule.clone());
        let ctx = EthBlockExecutionCtx {
            parent_hash: header.parent_hash,
            parent_beacon_block_root: header.parent_beacon_block_root,
            ommers: &block.body.ommers,
            withdrawals: block
                .body
                .withdrawals
                .as_ref()
                .map(|withdrawals| Cow::Borrowed(withdrawals.as_slice())),
            extra_data: header.extra_data.clone(),
            tx_count_hint: Some(block.body.transactions.len()),
            slot_number: None,
        };
        let byzantium = schedule.is_byzantium_active_at_block(header.number);
        let classify =
            |error: alloy_evm::block::BlockExecutionError| match execution_rejection(&error) {
                Some(rejection) => ImportError::Rejected(rejection),
                None => ImportError::Internal(error.to_string()),
            };

        let mut intermediate_roots = Vec::new();
        let result = {
            let evm = executors.evm_factory().create_evm(&mut state, env);
            let mut executor = executors.create_executor(evm, ctx);
            executor.apply_pre_execution_changes().map_err(classify)?;
            for (tx, sender) in block.body.transactions.iter().zip(senders) {
                executor
                    .execute_transaction(Recovered::new_unchecked(tx, *sender))
                    .map_err(classify)?;
                if !byzantium {
                    // Before Byzantium a receipt carries the state root after its transaction.
                    intermediate_roots.push(state_root(executor.evm().db().cache.trie_account()));
                }
            }
            let (_evm, result) = executor.finish().map_err(classify)?;
            result
        };
        let mut result = result;
        for (receipt, root) in result.receipts.iter_mut().zip(intermediate_roots) {
            if let Some(with_bloom) = receipt.as_receipt_with_bloom_mut() {
                with_bloom.receipt.status = Eip658Value::PostState(root);
            }
        }
        Ok(Executed {
            state: state.cache,
            result,
        })
    }
}

/// The outcome of executing a block.
struct Executed {
    state: CacheState,
    result: BlockExecutionResult<ReceiptEnvelope>,
}

/// Every transaction's sender (EIP-2's low-s rule from Homestead on).
fn recover_senders(
    block: &Block<TxEnvelope>,
    schedule: &ForkSchedule,
) -> Result<Vec<Address>, Rejection> {
    let homestead = schedule.is_homestead_active_at_block(block.header.number);
    block
        .body
        .transactions
        .iter()
        .map(|tx| {
            recover_sender(tx, homestead).ok_or_else(|| {
                Rejection::Transaction(
                    TransactionException::INVALID_SIGNATURE_VRS,
                    format!("transaction {}: no sender can be recovered", tx.tx_hash()),
                )
            })
        })
        .collect()
}

/// Half the secp256k1 group order: from Homestead on, `s` must not exceed it (EIP-2).
const SECP256K1N_HALF: U256 = U256::from_be_bytes(alloy_primitives::hex!(
    "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"
));

/// A transaction's sender, through revm's `ecrecover` (libsecp256k1, the one the ECRECOVER
/// precompile runs; alloy-consensus's own recovery is pure-Rust k256, about half as fast and
/// most of a run's CPU time).
fn recover_sender(tx: &TxEnvelope, homestead: bool) -> Option<Address> {
    let signature = tx.signature();
    if homestead && signature.s() > SECP256K1N_HALF {
        return None;
    }
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&signature.r().to_be_bytes::<32>());
    compact[32..].copy_from_slice(&signature.s().to_be_bytes::<32>());
    let hash = revm::precompile::secp256k1::ecrecover(
        &compact.into(),
        u8::from(signature.v()),
        &tx.signature_hash(),
    )
    .ok()?;
    Some(Address::from_slice(&hash[12..]))
}

/// The header's results against execution, in the order clients check them: gas used,
/// blob gas used, logs bloom, receipts root, requests, state root.
fn check_results(
    header: &Header,
    executed: &Executed,
    schedule: &ForkSchedule,
) -> Result<(), Rejection> {
    let result = &executed.result;
    if result.gas_used != header.gas_used {
        return Err(Rejection::block(
            B::INVALID_GAS_USED,
            format!(
                "header says {} gas used, execution used {}",
                header.gas_used, result.gas_used
            ),
        ));
    }
    if let Some(blob_gas_used) = header.blob_gas_used {
        if blob_gas_used != result.blob_gas_used {
            return Err(Rejection::block(
                B::INCORRECT_BLOB_GAS_USED,
                format!(
                    "header says {blob_gas_used} blob gas used, execution used {}",
                    result.blob_gas_used
                ),
            ));
        }
    }
    let bloom = result
        .receipts
        .iter()
        .fold(Bloom::ZERO, |bloom, receipt| bloom | receipt.bloom());
    if bloom != header.logs_bloom {
        return Err(Rejection::block(
            B::INVALID_LOG_BLOOM,
            "logs bloom differs from the receipts'",
        ));
    }
    let receipts_root = calculate_receipt_root(&result.receipts);
    if receipts_root != header.receipts_root {
        return Err(Rejection::block(
            B::INVALID_RECEIPTS_ROOT,
            format!(
                "receipts root {} where the receipts give {receipts_root}",
                header.receipts_root
            ),
        ));
    }
    if schedule.is_prague_active_at_timestamp(header.timestamp) {
        let requests_hash = result.requests.requests_hash();
        if header.requests_hash != Some(requests_hash) {
            return Err(Rejection::block(
                B::INVALID_REQUESTS,
                format!(
                    "requests hash {:?} where the requests give {requests_hash}",
                    header.requests_hash
                ),
            ));
        }
    }
    let root = state_root(executed.state.trie_account());
    if root != header.state_root {
        return Err(Rejection::block(
            B::INVALID_STATE_ROOT,
            format!(
                "state root {} where execution gives {root}",
                header.state_root
            ),
        ));
    }
    Ok(())
}

/// The first difference between a state and a fixture's `postState`, as one line.
fn first_divergence(
    state: &CacheState,
    expected: &std::collections::BTreeMap<Address, FixtureAccount>,
) -> Option<String> {
    let actual: HashMap<Address, &PlainAccount> = state.trie_account().into_iter().collect();
    for (address, want) in expected {
        let Some(have) = actual.get(address) else {
            return Some(format!("account {address} missing"));
        };
        if have.info.balance != want.balance {
            return Some(format!(
                "account {address}: balance {}, expected {}",
                have.info.balance, want.balance
            ));
        }
        if U256::from(have.info.nonce) != want.nonce {
            return Some(format!(
                "account {address}: nonce {}, expected {}",
                have.info.nonce, want.nonce
            ));
        }
        let want_code_hash = if want.code.is_empty() {
            KECCAK_EMPTY
        } else {
            keccak256(&want.code)
        };
        if have.info.code_hash != want_code_hash {
            return Some(format!(
                "account {address}: code hash {}, expected {want_code_hash}",
                have.info.code_hash
            ));
        }
        for (slot, value) in &want.storage {
            let got = have.storage.get(slot).copied().unwrap_or_default();
            if got != *value {
                return Some(format!(
                    "account {address}: storage[{slot}] = {got}, expected {value}"
                ));
            }
        }
        for (slot, value) in &have.storage {
            if !value.is_zero() && !want.storage.contains_key(slot) {
                return Some(format!(
                    "account {address}: storage[{slot}] = {value}, expected 0"
                ));
            }
        }
    }
    actual
        .keys()
        .find(|address| !expected.contains_key(*address))
        .map(|address| format!("account {address} exists, expected absent"))
}
