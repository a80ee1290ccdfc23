//! [`ShmEvmFactory`]: alloy-evm's [`EvmFactory`] with shared memory on or off.

use crate::{
    check_opcodes, HookedPrecompiles, OpcodeConflict, ShmEthEvm, ShmEvmContext,
    SHARED_MEMORY_OPCODES,
};
use alloy_evm::{precompiles::PrecompilesMap, Database, EvmEnv, EvmFactory};
use revm::{
    context::DBErrorMarker,
    context::{BlockEnv, TxEnv},
    context_interface::result::{EVMError, HaltReason},
    inspector::NoOpInspector,
    precompile::{PrecompileSpecId, Precompiles},
    primitives::hardfork::SpecId,
    Inspector, MainBuilder,
};
use shm_manager::SharedMemoryManager;
use shm_opcodes::{
    hooked_context, instructions::install, GasSchedule, ShmDb, ShmEvmBuilder, ShmSession,
};
use std::{fmt, sync::Arc};

/// Builds alloy-evm EVMs ([`ShmEthEvm`]) with shared memory on or off: the seam through
/// which a node (reth's `EthEvmConfig::new_with_evm_factory`, alloy-evm's
/// `EthBlockExecutorFactory`) gets shared memory.
///
/// * **Off** ([`ShmEvmFactory::off`], the default): every EVM is alloy-evm's `EthEvm`
///   in behaviour — same precompiles (a [`PrecompilesMap`] for the fork), same
///   instructions, same results and state.
/// * **On** ([`ShmEvmFactory::on`]): every EVM gets its own [`ShmSession`] over the one
///   shared [`SharedMemoryManager`], and 0xE0–0xE4 are the shared-memory instructions —
///   unless the fork defines an opcode there, in which case nothing is installed and
///   the EVM refuses every transaction with the [`OpcodeConflict`] (see
///   [`check_shared_memory_opcodes`]; no fork of revm 43 does).
///
/// ```
/// use alloy_evm::{Evm, EvmEnv, EvmFactory};
/// use revm::{context::TxEnv, database::InMemoryDB, primitives::{Address, TxKind}};
/// use shm_alloy_evm::ShmEvmFactory;
/// use shm_manager::{SharedMemoryConfig, SharedMemoryManager};
///
/// let manager = SharedMemoryManager::new(SharedMemoryConfig::testing())?;
/// let factory = ShmEvmFactory::on(manager.clone());
/// let mut db = InMemoryDB::default();
/// // PUSH1 0 PUSH1 64 SHARED_ALLOC PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
/// let code = revm::bytecode::Bytecode::new_raw(alloy_primitives::hex!("60006040e060005260206000f3").into());
/// let target = Address::repeat_byte(0x11);
/// db.insert_account_info(target, revm::state::AccountInfo::default().with_code(code));
///
/// let mut evm = factory.create_evm(db, EvmEnv::default());
/// let tx = TxEnv::builder().kind(TxKind::Call(target)).gas_price(0).build().unwrap();
/// let out = evm.transact(tx)?;
/// assert!(out.result.is_success());
/// assert_eq!(out.result.output().unwrap()[31], 1, "a handle: SHARED_ALLOC ran");
///
/// // Off, the same byte is an undefined opcode, as on mainnet.
/// let mut db = InMemoryDB::default();
/// let code = revm::bytecode::Bytecode::new_raw(alloy_primitives::hex!("60006040e060005260206000f3").into());
/// db.insert_account_info(target, revm::state::AccountInfo::default().with_code(code));
/// let mut evm = ShmEvmFactory::off().create_evm(db, EvmEnv::default());
/// let tx = TxEnv::builder().kind(TxKind::Call(target)).gas_price(0).build().unwrap();
/// assert!(!evm.transact(tx)?.result.is_success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct ShmEvmFactory {
    shared_memory: Option<SharedMemory>,
}

/// What an EVM with shared memory on is built with.
#[derive(Clone)]
struct SharedMemory {
    manager: Arc<SharedMemoryManager>,
    gas: GasSchedule,
    /// The bytes the instructions take ([`SHARED_MEMORY_OPCODES`]; others only in tests,
    /// to reach the refusal no fork of revm 43 triggers).
    opcodes: &'static [u8],
}

impl ShmEvmFactory {
    /// Shared memory off: alloy-evm's `EthEvm` behaviour.
    pub fn off() -> Self {
        Self::default()
    }

    /// Shared memory on, over `manager`, with the default gas schedule.
    pub fn on(manager: Arc<SharedMemoryManager>) -> Self {
        Self {
            shared_memory: Some(SharedMemory {
                manager,
                gas: GasSchedule::default(),
                opcodes: &SHARED_MEMORY_OPCODES,
            }),
        }
    }

    /// Shared memory on or off as `manager` is `Some` or `None`.
    pub fn new(manager: Option<Arc<SharedMemoryManager>>) -> Self {
        manager.map_or_else(Self::off, Self::on)
    }

    /// Uses `gas` for the shared-memory instructions (no effect when off).
    pub fn with_gas_schedule(mut self, gas: GasSchedule) -> Self {
        if let Some(shared_memory) = &mut self.shared_memory {
            shared_memory.gas = gas;
        }
        self
    }

    /// The manager, when shared memory is on.
    pub fn manager(&self) -> Option<&Arc<SharedMemoryManager>> {
        self.shared_memory.as_ref().map(|shm| &shm.manager)
    }

    /// The gas schedule, when shared memory is on.
    pub fn gas_schedule(&self) -> Option<GasSchedule> {
        self.shared_memory.as_ref().map(|shm| shm.gas)
    }

    /// Whether EVMs for `spec` get shared memory: `Ok` when it is off, or on and the fork
    /// leaves 0xE0–0xE4 undefined. Call it at start-up for every fork the chain runs to
    /// fail early rather than at the first transaction.
    pub fn check_spec(&self, spec: SpecId) -> Result<(), OpcodeConflict> {
        match &self.shared_memory {
            Some(shm) => check_opcodes(spec, shm.opcodes),
            None => Ok(()),
        }
    }

    fn build<DB: Database, I: Inspector<ShmEvmContext<DB>>>(
        &self,
        db: DB,
        env: EvmEnv,
        inspector: I,
        inspect: bool,
    ) -> ShmEthEvm<DB, I> {
        let EvmEnv { cfg_env, block_env } = env;
        let spec = cfg_env.spec;
        // As alloy-evm's `EthEvmBuilder`: the fork's precompiles, as a map.
        let precompiles =
            PrecompilesMap::from_static(Precompiles::new(PrecompileSpecId::from_spec_id(spec)));
        let (shared_memory, refused) = match &self.shared_memory {
            None => (None, None),
            Some(shm) => match check_opcodes(spec, shm.opcodes) {
                Ok(()) => (Some(shm), None),
                Err(conflict) => (None, Some(conflict)),
            },
        };
        let ctx = match shared_memory {
            // A session over the manager, and the database wrapped so that revm's own
            // commit paths publish too.
            Some(shm) => ShmEvmBuilder::new(shm.manager.clone())
                .gas_schedule(shm.gas)
                .spec(spec)
                .context(db),
            None => hooked_context(ShmDb::detached(db), spec, ShmSession::default()),
        }
        .with_cfg(cfg_env)
        .with_block(block_env);
        let mut inner = ctx
            .build_mainnet_with_inspector(inspector)
            .with_precompiles(HookedPrecompiles(precompiles));
        if shared_memory.is_some() {
            install(&mut inner.instruction);
        }
        let evm = ShmEthEvm::new(inner, inspect);
        match refused {
            Some(conflict) => evm.refusing(conflict),
            None => evm,
        }
    }
}

impl fmt::Debug for ShmEvmFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shared_memory {
            None => f.write_str("ShmEvmFactory(off)"),
            Some(shm) => f
                .debug_struct("ShmEvmFactory")
                .field("gas", &shm.gas)
                .finish_non_exhaustive(),
        }
    }
}

impl EvmFactory for ShmEvmFactory {
    type Evm<DB: Database, I: Inspector<ShmEvmContext<DB>>> = ShmEthEvm<DB, I>;
    type Context<DB: Database> = ShmEvmContext<DB>;
    type Tx = TxEnv;
    type Error<DBError: DBErrorMarker> = EVMError<DBError>;
    type HaltReason = HaltReason;
    type Spec = SpecId;
    type BlockEnv = BlockEnv;
    type Precompiles = PrecompilesMap;

    fn create_evm<DB: Database>(&self, db: DB, env: EvmEnv) -> ShmEthEvm<DB, NoOpInspector> {
        self.build(db, env, NoOpInspector {}, false)
    }

    fn create_evm_with_inspector<DB: Database, I: Inspector<ShmEvmContext<DB>>>(
        &self,
        db: DB,
        env: EvmEnv,
        inspector: I,
    ) -> ShmEthEvm<DB, I> {
        self.build(db, env, inspector, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_evm::Evm;
    use revm::{context::TxEnv, database::InMemoryDB};
    use shm_manager::SharedMemoryConfig;

    #[test]
    fn a_fork_defining_an_opcode_there_refuses_every_transaction() {
        let manager = SharedMemoryManager::new(SharedMemoryConfig::testing()).unwrap();
        let mut factory = ShmEvmFactory::on(manager);
        // As if the instructions sat at 0xE6, where Amsterdam defines DUPN.
        if let Some(shm) = &mut factory.shared_memory {
            shm.opcodes = &[0xE6];
        }
        let mut env = EvmEnv::default();
        assert!(factory.check_spec(SpecId::OSAKA).is_ok());
        env.cfg_env.spec = SpecId::AMSTERDAM;
        let conflict = factory.check_spec(SpecId::AMSTERDAM).unwrap_err();
        assert_eq!(conflict.defined[0].name, Some("DUPN"));

        let mut evm = factory.create_evm(InMemoryDB::default(), env.clone());
        assert_eq!(evm.refusal(), Some(&conflict));
        assert!(!evm.shared_memory_on(), "nothing installed");
        let tx = TxEnv::builder().gas_price(0).build().unwrap();
        let error = evm.transact(tx).unwrap_err();
        assert_eq!(
            error.to_string(),
            "shared memory refused on AMSTERDAM: the fork defines 0xE6 DUPN"
        );
        let error = evm
            .transact_system_call(Default::default(), Default::default(), Default::default())
            .unwrap_err();
        assert!(error.to_string().contains("refused"));

        // Off, the same fork is fine: nothing is installed anyway.
        let mut evm = ShmEvmFactory::off().create_evm(InMemoryDB::default(), env);
        assert!(evm.refusal().is_none());
        assert!(evm
            .transact(TxEnv::builder().gas_price(0).build().unwrap())
            .is_ok());
    }
}
