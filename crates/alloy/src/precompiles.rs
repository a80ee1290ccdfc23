//! alloy-evm's [`PrecompilesMap`] as the precompile provider of a context whose journal is a
//! [`HookedJournal`].
//!
//! alloy-evm implements `PrecompileProvider` for `PrecompilesMap` only over contexts whose
//! journal is revm's own `Journal`. [`HookedPrecompiles`] runs the same map over a hooked
//! context. A precompile reaches state through [`EvmInternals`], which has no checkpoint
//! calls, so handing it the wrapped revm journal is exactly what the stock path does: the
//! frame hook sees the same checkpoints either way.

use alloy_evm::{
    eth::EthEvmContext,
    precompiles::{Precompile, PrecompileInput, PrecompilesMap},
    EvmInternals,
};
use revm::{
    context_interface::ContextTr,
    database::EmptyDB,
    handler::{precompile_output_to_interpreter_result, PrecompileProvider},
    interpreter::{CallInputs, InterpreterResult},
    primitives::{hardfork::SpecId, Address, AddressSet},
    Database,
};
use shm_opcodes::{FrameHook, HookedContext};

/// A [`PrecompilesMap`] usable over a [`HookedContext`]; the map itself is what the
/// `alloy_evm::Evm` accessors (`precompiles`, `precompiles_mut`, `components`) hand out.
#[derive(Debug)]
pub struct HookedPrecompiles(pub PrecompilesMap);

impl<DB, H> PrecompileProvider<HookedContext<DB, H>> for HookedPrecompiles
where
    DB: Database + core::fmt::Debug,
    H: FrameHook + Default,
{
    type Output = InterpreterResult;

    fn set_spec(&mut self, _spec: SpecId) -> bool {
        // As `PrecompilesMap`: the set is fixed when the EVM is built.
        false
    }

    fn run(
        &mut self,
        context: &mut HookedContext<DB, H>,
        inputs: &CallInputs,
    ) -> Result<Option<InterpreterResult>, String> {
        let Some(precompile) = self.0.get(&inputs.bytecode_address) else {
            return Ok(None);
        };
        let (block, tx, cfg, journal, _, local) = context.all_mut();
        let data = inputs.input.as_bytes_local(local);
        let output = precompile
            .call(PrecompileInput {
                data: &data,
                gas: inputs.gas_limit,
                reservoir: inputs.reservoir,
                caller: inputs.caller,
                value: inputs.call_value(),
                is_static: inputs.is_static,
                internals: EvmInternals::new(journal.journal_mut(), block, cfg, tx),
                target_address: inputs.target_address,
                bytecode_address: inputs.bytecode_address,
            })
            .map_err(|error| error.to_string())?;
        Ok(Some(precompile_output_to_interpreter_result(
            output,
            inputs.gas_limit,
        )))
    }

    fn warm_addresses(&self) -> &AddressSet {
        // The set does not depend on the context: ask alloy-evm's own implementation, over
        // any context it supports.
        <PrecompilesMap as PrecompileProvider<EthEvmContext<EmptyDB>>>::warm_addresses(&self.0)
    }

    fn contains(&self, address: &Address) -> bool {
        self.0.get(address).is_some()
    }
}
