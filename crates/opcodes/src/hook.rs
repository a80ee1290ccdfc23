//! The frame hook: side state that checkpoints, commits and reverts with revm's
//! own journal checkpoints. [`HookedJournal`] sits inside revm's journal rather
//! than in a handler or an inspector, so it sees exactly what revm does on
//! every path (`transact*`, `inspect*` and system calls, which take and settle
//! the same checkpoints in the same places). Which revm code path makes which
//! hook call is listed in `docs/architecture.md` ("The frame hook"); an
//! inspector that answers `call` or `create` itself takes no checkpoint. Hook
//! calls come after the inner journal has done its part.

use revm::{
    bytecode::Bytecode,
    context::{BlockEnv, CfgEnv, Context, TxEnv},
    context_interface::{
        context::{SStoreResult, SelfDestructResult, StateLoad},
        journaled_state::{
            account::JournaledAccount, AccountInfoLoad, AccountLoad, JournalCheckpoint,
            JournalLoadError, JournalTr, TransferError,
        },
    },
    inspector::JournalExt,
    primitives::{
        hardfork::SpecId, Address, AddressMap, AddressSet, HashSet, Log, StorageKey, StorageValue,
        B256, U256,
    },
    state::{Account, EvmState},
    Database, Journal, JournalEntry, MainnetEvm,
};

/// Receives revm's journal checkpoints, in revm's own order: every
/// [`checkpoint`](Self::checkpoint) is later settled by exactly one
/// [`checkpoint_commit`](Self::checkpoint_commit) or
/// [`checkpoint_revert`](Self::checkpoint_revert), innermost first, and none
/// is open at [`transaction_end`](Self::transaction_end).
///
/// A hook used as a revm journal must also be [`Default`] (`Context::new`
/// builds the journal with `H::default()`): make the default do nothing.
pub trait FrameHook {
    /// revm opened a checkpoint: a call or create frame, or the pre-execution
    /// (runtime gas phase) checkpoint.
    fn checkpoint(&mut self);

    /// The innermost open checkpoint was committed: its changes merge into
    /// its parent (or, for the outermost one, stand for the transaction).
    fn checkpoint_commit(&mut self);

    /// The innermost open checkpoint was reverted: undo every change made
    /// since it was opened.
    fn checkpoint_revert(&mut self);

    /// The transaction ended; see [`TxOutcome`] for what each outcome asks of
    /// the hook. Called once per `commit_tx` / `discard_tx`; `discard_tx` may
    /// come without any checkpoint (a transaction that fails validation) and
    /// may be repeated, so a hook must treat an extra `Discarded` as harmless.
    fn transaction_end(&mut self, outcome: TxOutcome);

    /// revm handed the journal's state out (`finalize`): what the transactions
    /// since the last `finalize` did now belongs to the embedder, who will
    /// commit it to its database or drop it. The default does nothing.
    #[inline]
    fn finalized(&mut self) {}
}

/// How a transaction ended, as seen by the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxOutcome {
    /// `commit_tx`: the transaction was executed and its state stands. This
    /// includes transactions that reverted or halted at the top level: their
    /// frames' reverts were already reported through
    /// [`FrameHook::checkpoint_revert`].
    Committed,
    /// `discard_tx`: the transaction was invalid or execution hit an error
    /// (for example a database error). revm drops every change the
    /// transaction made, including changes of checkpoints that were already
    /// committed, so the hook must undo all of the transaction's effects too.
    Discarded,
}

/// The no-op hook: [`HookedJournal<DB, ()>`] behaves exactly like revm's
/// [`Journal`].
impl FrameHook for () {
    #[inline(always)]
    fn checkpoint(&mut self) {}
    #[inline(always)]
    fn checkpoint_commit(&mut self) {}
    #[inline(always)]
    fn checkpoint_revert(&mut self) {}
    #[inline(always)]
    fn transaction_end(&mut self, _outcome: TxOutcome) {}
}

/// revm's [`Journal`], unchanged, with a [`FrameHook`] told about every
/// checkpoint (see the [module docs](crate::hook)).
///
/// The pairing holds even when the journal is driven by hand: a commit or
/// revert with nothing open is forwarded to revm but not reported, and
/// checkpoints still open when the transaction ends are settled first.
///
/// ```
/// use revm::{context_interface::JournalTr, database::EmptyDB};
/// use shm_opcodes::HookedJournal;
///
/// let mut journal = HookedJournal::new_with_hook(EmptyDB::default(), ());
/// let checkpoint = journal.checkpoint();
/// assert_eq!(journal.open_checkpoints(), 1);
/// journal.checkpoint_revert(checkpoint);
/// assert_eq!(journal.open_checkpoints(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct HookedJournal<DB, H = ()> {
    inner: Journal<DB>,
    hook: H,
    /// Checkpoints reported to the hook and not yet settled.
    open_checkpoints: usize,
}

impl<DB, H> HookedJournal<DB, H> {
    /// A fresh journal over `database` with `hook`. Set the spec on it (or
    /// build the context with [`hooked_context`], which does) before executing.
    pub fn new_with_hook(database: DB, hook: H) -> Self {
        Self {
            inner: Journal::new_with_inner(database, Default::default()),
            hook,
            open_checkpoints: 0,
        }
    }

    /// The hook, for reading its state (an instruction reaches it through
    /// `ctx.host.journaled_state.hook()`).
    #[inline]
    pub const fn hook(&self) -> &H {
        &self.hook
    }

    /// The hook, for changing its state.
    #[inline]
    pub const fn hook_mut(&mut self) -> &mut H {
        &mut self.hook
    }

    /// The wrapped revm journal.
    #[inline]
    pub const fn journal(&self) -> &Journal<DB> {
        &self.inner
    }

    /// The wrapped revm journal, mutably. Checkpoints taken or settled
    /// directly on it bypass the hook.
    #[inline]
    pub const fn journal_mut(&mut self) -> &mut Journal<DB> {
        &mut self.inner
    }

    /// How many checkpoints the hook has seen opened and not yet settled.
    #[inline]
    pub const fn open_checkpoints(&self) -> usize {
        self.open_checkpoints
    }

    /// Splits the journal into revm's journal and the hook.
    pub fn into_parts(self) -> (Journal<DB>, H) {
        (self.inner, self.hook)
    }
}

impl<DB, H: FrameHook> HookedJournal<DB, H> {
    #[inline]
    fn opened(&mut self) {
        self.open_checkpoints += 1;
        self.hook.checkpoint();
    }

    /// Reports the innermost open checkpoint settled, if one is open.
    #[inline]
    fn settled(&mut self, commit: bool) {
        if self.open_checkpoints > 0 {
            self.open_checkpoints -= 1;
            if commit {
                self.hook.checkpoint_commit();
            } else {
                self.hook.checkpoint_revert();
            }
        }
    }

    /// Settles every checkpoint still open, innermost first, then ends the
    /// transaction.
    #[inline]
    fn end_transaction(&mut self, outcome: TxOutcome) {
        while self.open_checkpoints > 0 {
            self.settled(outcome == TxOutcome::Committed);
        }
        self.hook.transaction_end(outcome);
    }
}

/// The error type of the wrapped database.
type DbError<DB> = <DB as Database>::Error;
/// A load from the wrapped database.
type Loaded<T, DB> = Result<StateLoad<T>, DbError<DB>>;
/// A load that may skip a cold account.
type MaybeLoaded<T, DB> = Result<StateLoad<T>, JournalLoadError<DbError<DB>>>;

impl<DB: Database, H: FrameHook + Default> JournalTr for HookedJournal<DB, H> {
    type Database = DB;
    type State = EvmState;
    type JournaledAccount<'a>
        = JournaledAccount<'a, DB, JournalEntry>
    where
        DB: 'a,
        H: 'a;

    fn new(database: DB) -> Self {
        Self::new_with_hook(database, H::default())
    }

    forward! { inner;
        fn db_and_state(&self) -> (&DB, &EvmState);
        fn db_and_state_mut(&mut self) -> (&mut DB, &mut EvmState);
        fn sload(&mut self, address: Address, key: StorageKey) -> Loaded<StorageValue, DB>;
        fn sload_skip_cold_load(
            &mut self,
            address: Address,
            key: StorageKey,
            skip_cold_load: bool,
        ) -> MaybeLoaded<StorageValue, DB>;
        fn sstore(
            &mut self,
            address: Address,
            key: StorageKey,
            value: StorageValue,
        ) -> Loaded<SStoreResult, DB>;
        fn sstore_skip_cold_load(
            &mut self,
            address: Address,
            key: StorageKey,
            value: StorageValue,
            skip_cold_load: bool,
        ) -> MaybeLoaded<SStoreResult, DB>;
        fn tload(&mut self, address: Address, key: StorageKey) -> StorageValue;
        fn tstore(&mut self, address: Address, key: StorageKey, value: StorageValue);
        fn log(&mut self, log: Log);
        fn take_logs(&mut self) -> Vec<Log>;
        fn logs(&self) -> &[Log];
        fn selfdestruct(
            &mut self,
            address: Address,
            target: Address,
            skip_cold_load: bool,
        ) -> MaybeLoaded<SelfDestructResult, DB>;
        fn warm_access_list(&mut self, access_list: AddressMap<HashSet<StorageKey>>);
        fn warm_coinbase_account(&mut self, address: Address);
        fn warm_precompiles(&mut self, addresses: &AddressSet);
        fn precompile_addresses(&self) -> &AddressSet;
        fn set_spec_id(&mut self, spec_id: SpecId);
        fn set_eip7708_config(&mut self, disabled: bool, eip8246_delayed_clear_disabled: bool);
        fn touch_account(&mut self, address: Address);
        fn transfer(
            &mut self,
            from: Address,
            to: Address,
            balance: U256,
        ) -> Result<Option<TransferError>, DbError<DB>>;
        fn transfer_loaded(
            &mut self,
            from: Address,
            to: Address,
            balance: U256,
        ) -> Option<TransferError>;
        #[allow(deprecated)]
        fn caller_accounting_journal_entry(
            &mut self,
            address: Address,
            old_balance: U256,
            bump_nonce: bool,
        );
        fn balance_incr(&mut self, address: Address, balance: U256) -> Result<(), DbError<DB>>;
        #[allow(deprecated)]
        fn nonce_bump_journal_entry(&mut self, address: Address);
        fn load_account(&mut self, address: Address) -> Loaded<&Account, DB>;
        fn load_account_with_code(&mut self, address: Address) -> Loaded<&Account, DB>;
        fn load_account_delegated(&mut self, address: Address) -> Loaded<AccountLoad, DB>;
        fn load_account_mut_skip_cold_load(
            &mut self,
            address: Address,
            skip_cold_load: bool,
        ) -> MaybeLoaded<Self::JournaledAccount<'_>, DB>;
        fn load_account_mut_optional_code(
            &mut self,
            address: Address,
            load_code: bool,
        ) -> Loaded<Self::JournaledAccount<'_>, DB>;
        fn set_code_with_hash(&mut self, address: Address, code: Bytecode, hash: B256);
        fn depth(&self) -> usize;
        fn load_account_info_skip_cold_load(
            &mut self,
            address: Address,
            load_code: bool,
            skip_cold_load: bool,
        ) -> Result<AccountInfoLoad<'_>, JournalLoadError<DbError<DB>>>;
    }

    // The methods not listed keep their defaults, as revm's `Journal` does:
    // they reach it through the ones here (`clear` through `finalize`).

    #[inline]
    fn checkpoint(&mut self) -> JournalCheckpoint {
        let checkpoint = self.inner.checkpoint();
        self.opened();
        checkpoint
    }

    #[inline]
    fn checkpoint_commit(&mut self) {
        self.inner.checkpoint_commit();
        self.settled(true);
    }

    #[inline]
    fn checkpoint_revert(&mut self, checkpoint: JournalCheckpoint) {
        self.inner.checkpoint_revert(checkpoint);
        self.settled(false);
    }

    #[inline]
    fn create_account_checkpoint(
        &mut self,
        caller: Address,
        address: Address,
        balance: U256,
        spec_id: SpecId,
    ) -> Result<JournalCheckpoint, TransferError> {
        // On error revm has already reverted the checkpoint it took inside,
        // so the hook hears of it only when it stays open.
        let checkpoint = self
            .inner
            .create_account_checkpoint(caller, address, balance, spec_id)?;
        self.opened();
        Ok(checkpoint)
    }

    #[inline]
    fn commit_tx(&mut self) {
        self.inner.commit_tx();
        self.end_transaction(TxOutcome::Committed);
    }

    #[inline]
    fn discard_tx(&mut self) {
        self.inner.discard_tx();
        self.end_transaction(TxOutcome::Discarded);
    }

    #[inline]
    fn finalize(&mut self) -> EvmState {
        let state = self.inner.finalize();
        // revm's own paths finalize only after `commit_tx` / `discard_tx`.
        // Checkpoints still open here mean the journal was driven by hand;
        // `finalize` keeps their changes, so they count as committed.
        if self.open_checkpoints > 0 {
            self.end_transaction(TxOutcome::Committed);
        }
        self.hook.finalized();
        state
    }
}

/// Needed by `inspect_*`: the journal entries since the last checkpoint.
impl<DB: Database, H: FrameHook + Default> JournalExt for HookedJournal<DB, H> {
    #[inline]
    fn journal(&self) -> &[JournalEntry] {
        self.inner.journal()
    }
}

/// A mainnet [`Context`] whose journal is a [`HookedJournal`].
pub type HookedContext<DB, H> = Context<BlockEnv, TxEnv, CfgEnv, DB, HookedJournal<DB, H>, ()>;

/// A mainnet EVM ([`MainnetEvm`]) over a [`HookedContext`], built with
/// `MainBuilder::build_mainnet` or `build_mainnet_with_inspector`.
pub type HookedEvm<DB, H, INSP = ()> = MainnetEvm<HookedContext<DB, H>, INSP>;

/// A mainnet context like `Context::mainnet().with_db(db)` for `spec`, whose
/// journal reports its checkpoints to `hook`.
///
/// ```
/// use revm::{
///     database::InMemoryDB, inspector::inspectors::TracerEip3155,
///     primitives::hardfork::SpecId, InspectEvm, MainBuilder,
/// };
/// use shm_opcodes::hooked_context;
///
/// let ctx = hooked_context(InMemoryDB::default(), SpecId::OSAKA, ());
/// let mut evm = ctx.build_mainnet_with_inspector(TracerEip3155::new(Box::new(std::io::sink())));
/// let result = evm.inspect_tx(Default::default()).unwrap();
/// assert!(result.result.is_success());
/// ```
pub fn hooked_context<DB, H>(db: DB, spec: SpecId, hook: H) -> HookedContext<DB, H>
where
    DB: Database,
    H: FrameHook + Default,
{
    // `Context::new` builds the journal through `JournalTr::new` and syncs the
    // config into it; only the default hook needs replacing.
    let mut ctx = HookedContext::<DB, H>::new(db, spec);
    ctx.journaled_state.hook = hook;
    ctx
}
