//! [`ShmBlockExecutorFactory`]: alloy-evm's Ethereum block executor over [`ShmEvmFactory`]
//! EVMs, publishing a transaction's region effects when the executor commits it.
//!
//! alloy-evm commits a transaction's state in `EthBlockExecutor::commit_transaction` by
//! `evm.db_mut().commit(state)`, on the embedder's database: the EVM never hears of it.
//! This executor delegates everything to `EthBlockExecutor` and, after each commit, tells
//! the EVM's session to publish. A transaction executed without commit
//! (`execute_transaction_without_commit`, `CommitChanges::No`) is never published: its
//! effects are abandoned when the next transaction starts or the EVM is dropped.

use crate::{ShmEthEvm, ShmEvmContext, ShmEvmFactory};
use alloy_consensus::{Transaction, TransactionEnvelope, TxReceipt};
use alloy_eips::Encodable2718;
use alloy_evm::{
    block::{
        BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory,
        ExecutableTx, GasOutput, StateDB,
    },
    eth::{
        receipt_builder::{AlloyReceiptBuilder, ReceiptBuilder},
        spec::{EthExecutorSpec, EthSpec},
        EthBlockExecutionCtx, EthBlockExecutor, EthBlockExecutorFactory, EthTxResult,
    },
    Database, EvmFactory, FromRecoveredTx, FromTxWithEncoded,
};
use alloy_primitives::Log;
use revm::{context::TxEnv, context_interface::result::HaltReason, Inspector};

/// An EVM whose transactions' region effects wait for the embedder's commit.
pub trait PublishRegions {
    /// The embedder kept the state of the transactions run since the last decision:
    /// make their region effects final. Returns whether there was anything to publish.
    fn publish_regions(&mut self) -> bool;
}

impl<DB: Database, I> PublishRegions for ShmEthEvm<DB, I> {
    fn publish_regions(&mut self) -> bool {
        self.publish()
    }
}

/// alloy-evm's [`EthBlockExecutorFactory`] over [`ShmEvmFactory`], whose executors publish
/// each committed transaction's region effects (see the [module docs](self)).
///
/// It plugs in where `EthBlockExecutorFactory` does — reth's `ConfigureEvm` returns its
/// block-executor factory from `block_executor_factory()`.
///
/// ```
/// use alloy_evm::{block::{BlockExecutor, BlockExecutorFactory}, eth::{EthBlockExecutionCtx,
///     receipt_builder::AlloyReceiptBuilder, spec::EthSpec}, EvmEnv, EvmFactory};
/// use revm::database::{InMemoryDB, State};
/// use shm_alloy_evm::{ShmBlockExecutorFactory, ShmEvmFactory};
/// use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
///
/// let manager = SharedMemoryManager::new(SharedMemoryConfig::testing())?;
/// let executors = ShmBlockExecutorFactory::new(
///     AlloyReceiptBuilder::default(), EthSpec::mainnet(), ShmEvmFactory::on(manager));
/// let mut state = State::builder().with_database(InMemoryDB::default()).build();
/// let evm = executors.evm_factory().create_evm(&mut state, EvmEnv::default());
/// let ctx = EthBlockExecutionCtx {
///     parent_hash: Default::default(), parent_beacon_block_root: None, ommers: &[],
///     withdrawals: None, extra_data: Default::default(), tx_count_hint: None, slot_number: None,
/// };
/// let executor = executors.create_executor(evm, ctx);
/// let txs: Vec<alloy_consensus::transaction::Recovered<alloy_consensus::TxEnvelope>> = Vec::new();
/// assert_eq!(executor.execute_block(txs)?.gas_used, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ShmBlockExecutorFactory<R = AlloyReceiptBuilder, Spec = EthSpec> {
    inner: EthBlockExecutorFactory<R, Spec, ShmEvmFactory>,
}

impl<R, Spec> ShmBlockExecutorFactory<R, Spec> {
    /// Executors building receipts with `receipt_builder`, for the chain `spec`, with EVMs
    /// from `evm_factory`.
    pub const fn new(receipt_builder: R, spec: Spec, evm_factory: ShmEvmFactory) -> Self {
        Self {
            inner: EthBlockExecutorFactory::new(receipt_builder, spec, evm_factory),
        }
    }

    /// The wrapped alloy-evm factory.
    pub const fn inner(&self) -> &EthBlockExecutorFactory<R, Spec, ShmEvmFactory> {
        &self.inner
    }
}

impl<R, Spec> BlockExecutorFactory for ShmBlockExecutorFactory<R, Spec>
where
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718, Receipt: TxReceipt<Log = Log>>,
    Spec: EthExecutorSpec,
    TxEnv: FromRecoveredTx<R::Transaction> + FromTxWithEncoded<R::Transaction>,
    <R::Transaction as TransactionEnvelope>::TxType: Send + 'static,
    Self: 'static,
{
    type EvmFactory = ShmEvmFactory;
    type ExecutionCtx<'a> = EthBlockExecutionCtx<'a>;
    type Transaction = R::Transaction;
    type Receipt = R::Receipt;
    type TxExecutionResult =
        EthTxResult<HaltReason, <R::Transaction as TransactionEnvelope>::TxType>;
    type Executor<'a, DB: StateDB, I: Inspector<ShmEvmContext<DB>>> =
        ShmBlockExecutor<EthBlockExecutor<'a, ShmEthEvm<DB, I>, &'a Spec, &'a R>>;

    fn evm_factory(&self) -> &ShmEvmFactory {
        self.inner.evm_factory()
    }

    fn create_executor<'a, DB, I>(
        &'a self,
        evm: <ShmEvmFactory as EvmFactory>::Evm<DB, I>,
        ctx: EthBlockExecutionCtx<'a>,
    ) -> Self::Executor<'a, DB, I>
    where
        DB: StateDB,
        I: Inspector<ShmEvmContext<DB>>,
    {
        ShmBlockExecutor {
            inner: self.inner.create_executor(evm, ctx),
        }
    }
}

/// A block executor that publishes region effects where `inner` commits state: after
/// each committed transaction, and after the pre- and post-block system calls (which
/// alloy-evm always commits).
///
/// Two system calls made by one alloy-evm step (EIP-2935 then EIP-4788 before the
/// transactions; EIP-7002 then EIP-7251 after them) are decided once, after both: the
/// second one's start abandons the first one's region effects. System contracts run
/// fixed bytecode without 0xE0–0xE4, so there are none to lose.
#[derive(Debug)]
pub struct ShmBlockExecutor<E> {
    inner: E,
}

impl<E> ShmBlockExecutor<E> {
    /// The wrapped executor.
    pub const fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E> BlockExecutor for ShmBlockExecutor<E>
where
    E: BlockExecutor<Evm: PublishRegions>,
{
    type Transaction = E::Transaction;
    type Receipt = E::Receipt;
    type Evm = E::Evm;
    type Result = E::Result;

    fn apply_pre_execution_changes(&mut self) -> Result<(), BlockExecutionError> {
        self.inner.apply_pre_execution_changes()?;
        self.inner.evm_mut().publish_regions();
        Ok(())
    }

    fn execute_transaction_without_commit(
        &mut self,
        tx: impl ExecutableTx<Self>,
    ) -> Result<Self::Result, BlockExecutionError> {
        self.inner.execute_transaction_without_commit(tx)
    }

    fn commit_transaction(&mut self, output: Self::Result) -> GasOutput {
        let gas = self.inner.commit_transaction(output);
        self.inner.evm_mut().publish_regions();
        gas
    }

    fn finish(
        self,
    ) -> Result<(Self::Evm, BlockExecutionResult<Self::Receipt>), BlockExecutionError> {
        let (mut evm, result) = self.inner.finish()?;
        evm.publish_regions();
        Ok((evm, result))
    }

    fn evm_mut(&mut self) -> &mut Self::Evm {
        self.inner.evm_mut()
    }

    fn evm(&self) -> &Self::Evm {
        self.inner.evm()
    }

    fn receipts(&self) -> &[Self::Receipt] {
        self.inner.receipts()
    }
}
