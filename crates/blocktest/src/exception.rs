//! Why a block is rejected, named as the fixtures name it (`BlockException.*`,
//! `TransactionException.*`).

use alloy_evm::{block::BlockExecutionError, block::BlockValidationError};
use revm::context_interface::result::InvalidTransaction;
use std::fmt;

/// Why a block was rejected. [`Rejection::name`] is the fixtures' exception name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A header, body or state check failed.
    Block(BlockException, String),
    /// A transaction was invalid.
    Transaction(TransactionException, String),
}

impl Rejection {
    /// A block-level rejection with a detail message.
    pub fn block(kind: BlockException, detail: impl Into<String>) -> Self {
        Self::Block(kind, detail.into())
    }

    /// The fixtures' name, e.g. `BlockException.INVALID_GASLIMIT`.
    pub fn name(&self) -> String {
        match self {
            Self::Block(kind, _) => format!("BlockException.{kind:?}"),
            Self::Transaction(kind, _) => format!("TransactionException.{kind:?}"),
        }
    }

    /// Whether this is one of the `|`-separated names of a fixture's `expectException`.
    pub fn matches(&self, expected: &str) -> bool {
        let name = self.name();
        expected.split('|').any(|one| one.trim() == name)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = match self {
            Self::Block(_, detail) | Self::Transaction(_, detail) => detail,
        };
        write!(f, "{} ({detail})", self.name())
    }
}

/// Block-level exceptions, with the fixtures' names.
#[allow(non_camel_case_types, missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockException {
    RLP_STRUCTURES_ENCODING,
    UNKNOWN_PARENT,
    UNKNOWN_PARENT_ZERO,
    EXTRA_DATA_TOO_BIG,
    EXTRA_DATA_INVALID_DAO,
    INVALID_BLOCK_NUMBER,
    INVALID_BLOCK_TIMESTAMP_OLDER_THAN_PARENT,
    INVALID_DIFFICULTY,
    INVALID_GASLIMIT,
    GASLIMIT_TOO_BIG,
    GAS_USED_OVERFLOW,
    INVALID_BASEFEE_PER_GAS,
    INVALID_BLOCK_NONCE,
    IMPORT_IMPOSSIBLE_LEGACY,
    IMPORT_IMPOSSIBLE_LEGACY_WRONG_PARENT,
    IMPORT_IMPOSSIBLE_LONDON_WRONG_PARENT,
    IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS,
    IMPORT_IMPOSSIBLE_DIFFICULTY_OVER_PARIS,
    IMPORT_IMPOSSIBLE_PARIS_WRONG_POW,
    IMPORT_IMPOSSIBLE_PARIS_WRONG_POS,
    IMPORT_IMPOSSIBLE_SHANGHAI,
    IMPORT_IMPOSSIBLE_PARIS_OVER_SHANGHAI,
    IMPORT_IMPOSSIBLE_CANCUN_FIELDS,
    INCORRECT_EXCESS_BLOB_GAS,
    INCORRECT_BLOB_GAS_USED,
    BLOB_GAS_USED_ABOVE_LIMIT,
    INVALID_TRANSACTIONS_ROOT,
    INVALID_UNCLES_HASH,
    INVALID_WITHDRAWALS_ROOT,
    TOO_MANY_UNCLES,
    DUPLICATE_UNCLE,
    UNCLE_IN_CHAIN,
    UNCLE_IS_ANCESTOR,
    UNCLE_PARENT_INCORRECT,
    INVALID_GAS_USED,
    INVALID_RECEIPTS_ROOT,
    INVALID_LOG_BLOOM,
    INVALID_STATE_ROOT,
    INVALID_REQUESTS,
    SYSTEM_CONTRACT_CALL_FAILED,
}

/// Transaction-level exceptions, with the fixtures' names.
#[allow(non_camel_case_types, missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionException {
    INVALID_SIGNATURE_VRS,
    INTRINSIC_GAS_TOO_LOW,
    INSUFFICIENT_ACCOUNT_FUNDS,
    INSUFFICIENT_MAX_FEE_PER_GAS,
    INSUFFICIENT_MAX_FEE_PER_BLOB_GAS,
    PRIORITY_GREATER_THAN_MAX_FEE_PER_GAS,
    NONCE_MISMATCH_TOO_LOW,
    NONCE_MISMATCH_TOO_HIGH,
    NONCE_IS_MAX,
    SENDER_NOT_EOA,
    TYPE_NOT_SUPPORTED,
    GAS_ALLOWANCE_EXCEEDED,
    GAS_LIMIT_EXCEEDS_MAXIMUM,
    INITCODE_SIZE_EXCEEDED,
    INVALID_CHAINID,
    TYPE_3_TX_ZERO_BLOBS,
    TYPE_3_TX_CONTRACT_CREATION,
    TYPE_3_TX_MAX_BLOB_GAS_ALLOWANCE_EXCEEDED,
    TYPE_3_TX_INVALID_BLOB_VERSIONED_HASH,
    TYPE_4_EMPTY_AUTHORIZATION_LIST,
    TYPE_4_TX_CONTRACT_CREATION,
    /// An invalid transaction revm reports that has no fixture name here.
    OTHER,
}

/// The fixtures' name for revm's reason a transaction is invalid.
pub(crate) fn transaction_exception(error: &InvalidTransaction) -> TransactionException {
    use InvalidTransaction as E;
    use TransactionException as T;
    match error {
        E::PriorityFeeGreaterThanMaxFee => T::PRIORITY_GREATER_THAN_MAX_FEE_PER_GAS,
        E::GasPriceLessThanBasefee => T::INSUFFICIENT_MAX_FEE_PER_GAS,
        E::CallerGasLimitMoreThanBlock => T::GAS_ALLOWANCE_EXCEEDED,
        E::TxGasLimitGreaterThanCap { .. } => T::GAS_LIMIT_EXCEEDS_MAXIMUM,
        E::CallGasCostMoreThanGasLimit { .. } | E::GasFloorMoreThanGasLimit { .. } => {
            T::INTRINSIC_GAS_TOO_LOW
        }
        E::RejectCallerWithCode => T::SENDER_NOT_EOA,
        E::LackOfFundForMaxFee { .. } | E::OverflowPaymentInTransaction => {
            T::INSUFFICIENT_ACCOUNT_FUNDS
        }
        E::NonceOverflowInTransaction => T::NONCE_IS_MAX,
        E::NonceTooHigh { .. } => T::NONCE_MISMATCH_TOO_HIGH,
        E::NonceTooLow { .. } => T::NONCE_MISMATCH_TOO_LOW,
        E::CreateInitCodeSizeLimit => T::INITCODE_SIZE_EXCEEDED,
        E::InvalidChainId | E::MissingChainId => T::INVALID_CHAINID,
        E::BlobGasPriceGreaterThanMax { .. } => T::INSUFFICIENT_MAX_FEE_PER_BLOB_GAS,
        E::EmptyBlobs => T::TYPE_3_TX_ZERO_BLOBS,
        E::BlobCreateTransaction => T::TYPE_3_TX_CONTRACT_CREATION,
        E::TooManyBlobs { .. } => T::TYPE_3_TX_MAX_BLOB_GAS_ALLOWANCE_EXCEEDED,
        E::BlobVersionNotSupported => T::TYPE_3_TX_INVALID_BLOB_VERSIONED_HASH,
        E::EmptyAuthorizationList => T::TYPE_4_EMPTY_AUTHORIZATION_LIST,
        E::AccessListNotSupported
        | E::MaxFeePerBlobGasNotSupported
        | E::BlobVersionedHashesNotSupported
        | E::AuthorizationListNotSupported
        | E::Eip2930NotSupported
        | E::Eip1559NotSupported
        | E::Eip4844NotSupported
        | E::Eip7702NotSupported
        | E::Eip7873NotSupported => T::TYPE_NOT_SUPPORTED,
        _ => T::OTHER,
    }
}

/// The rejection for an error of alloy-evm's block executor, when it is one (an invalid
/// transaction, a gas limit above what the block has left, a failed system call). `None`
/// for internal errors (the database, the EVM itself), which are not a verdict on the block.
pub(crate) fn execution_rejection(error: &BlockExecutionError) -> Option<Rejection> {
    let BlockExecutionError::Validation(validation) = error else {
        return None;
    };
    let detail = error.to_string();
    Some(match validation {
        BlockValidationError::InvalidTx { error: invalid, .. } => {
            let kind = invalid
                .as_invalid_tx_err()
                .map_or(TransactionException::OTHER, transaction_exception);
            Rejection::Transaction(kind, detail)
        }
        BlockValidationError::TransactionGasLimitMoreThanAvailableBlockGas { .. } => {
            Rejection::Transaction(TransactionException::GAS_ALLOWANCE_EXCEEDED, detail)
        }
        BlockValidationError::BlockGasExceeded => {
            Rejection::block(BlockException::GAS_USED_OVERFLOW, detail)
        }
        BlockValidationError::DepositRequestDecode(_) => {
            Rejection::block(BlockException::INVALID_REQUESTS, detail)
        }
        _ => Rejection::block(BlockException::SYSTEM_CONTRACT_CALL_FAILED, detail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_alternatives() {
        let rejection = Rejection::block(BlockException::INVALID_GASLIMIT, "x");
        assert_eq!(rejection.name(), "BlockException.INVALID_GASLIMIT");
        assert!(rejection.matches("BlockException.INVALID_GASLIMIT"));
        assert!(rejection.matches("TransactionException.X|BlockException.INVALID_GASLIMIT"));
        assert!(!rejection.matches("BlockException.INVALID_GASLIMIT_X"));
        let tx = Rejection::Transaction(TransactionException::INTRINSIC_GAS_TOO_LOW, "y".into());
        assert!(tx.matches(
            "TransactionException.INSUFFICIENT_ACCOUNT_FUNDS|TransactionException.INTRINSIC_GAS_TOO_LOW"
        ));
    }
}
