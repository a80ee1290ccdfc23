//! The checks a node makes on a block that alloy-evm's executor does not: header against
//! parent, uncles, body against header, and the header's results against execution.
//!
//! Written from the yellow paper and the EIPs (1559, 2, 100, 649, 1234, 2384, 3554, 4345,
//! 5133, 3675, 4399, 4895, 4844, 4788, 7685); the order of checks follows the order clients
//! check in, so that a block breaking two rules is rejected for the one the fixtures name.

use crate::{
    exception::{BlockException as B, Rejection},
    network::ForkSchedule,
};
use alloy_consensus::{constants::EMPTY_OMMER_ROOT_HASH, proofs, BlockBody, Header, TxEnvelope};
use alloy_eips::{
    eip1559::{BaseFeeParams, DEFAULT_ELASTICITY_MULTIPLIER, INITIAL_BASE_FEE},
    eip4844::DATA_GAS_PER_BLOB,
};
use alloy_hardforks::{EthereumHardfork, EthereumHardforks};
use alloy_primitives::{B256, U256};
use std::collections::{HashMap, HashSet};

/// Most extra data a header may carry.
pub const MAX_EXTRA_DATA: usize = 32;
/// Smallest gas limit a block may have.
pub const MIN_GAS_LIMIT: u64 = 5000;
/// A gas limit may move by less than `parent / GAS_LIMIT_BOUND_DIVISOR` per block.
pub const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;
/// Clients keep gas limits (and so gas counters) within a signed 64-bit integer.
pub const MAX_GAS_LIMIT: u64 = i64::MAX as u64;
/// The DAO fork blocks' extra data (`dao-hard-fork`), for ten blocks from the fork.
pub const DAO_EXTRA_DATA: &[u8] = b"dao-hard-fork";
/// How many blocks from the DAO fork must carry [`DAO_EXTRA_DATA`].
pub const DAO_EXTRA_DATA_RANGE: u64 = 10;
/// Most uncles a block may include.
pub const MAX_UNCLES: usize = 2;
/// How many generations back an uncle's parent may be.
pub const UNCLE_GENERATIONS: usize = 7;
/// The smallest proof-of-work difficulty.
pub const MIN_DIFFICULTY: u64 = 131_072;

/// Checks `header` against its `parent` (also used for uncles against theirs).
pub fn validate_header(
    header: &Header,
    parent: &Header,
    schedule: &ForkSchedule,
) -> Result<(), Rejection> {
    let merged = schedule.is_paris_active_at_block(header.number);
    if header.extra_data.len() > MAX_EXTRA_DATA {
        return Err(Rejection::block(
            B::EXTRA_DATA_TOO_BIG,
            format!("{} bytes of extra data", header.extra_data.len()),
        ));
    }
    if merged {
        if !header.difficulty.is_zero() {
            // After the first proof-of-stake block, any difficulty is wrong. On the terminal
            // proof-of-work block's child, a proof-of-work header is first checked as one
            // (its difficulty), then refused for coming after the merge.
            if parent.difficulty.is_zero() {
                return Err(Rejection::block(
                    B::IMPORT_IMPOSSIBLE_DIFFICULTY_OVER_PARIS,
                    format!("difficulty {} after the merge", header.difficulty),
                ));
            }
            check_difficulty(header, parent, schedule)?;
            return Err(Rejection::block(
                B::IMPORT_IMPOSSIBLE_PARIS_WRONG_POW,
                format!(
                    "a proof-of-work block (difficulty {}) after the merge",
                    header.difficulty
                ),
            ));
        }
        if !header.nonce.is_zero() {
            return Err(Rejection::block(
                B::INVALID_BLOCK_NONCE,
                "nonzero nonce after the merge",
            ));
        }
        if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
            return Err(Rejection::block(
                B::IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS,
                "uncles hash is not the empty list's after the merge",
            ));
        }
    }
    if header.timestamp <= parent.timestamp {
        return Err(Rejection::block(
            B::INVALID_BLOCK_TIMESTAMP_OLDER_THAN_PARENT,
            format!(
                "timestamp {} not after the parent's {}",
                header.timestamp, parent.timestamp
            ),
        ));
    }
    if !merged {
        if header.difficulty.is_zero() {
            return Err(Rejection::block(
                B::IMPORT_IMPOSSIBLE_PARIS_WRONG_POS,
                "difficulty 0 before the terminal total difficulty",
            ));
        }
        check_difficulty(header, parent, schedule)?;
    }
    if header.gas_limit > MAX_GAS_LIMIT {
        return Err(Rejection::block(
            B::GASLIMIT_TOO_BIG,
            format!("gas limit {} above 2^63-1", header.gas_limit),
        ));
    }
    validate_london_fields(header, parent, schedule)?;
    if header.gas_used > header.gas_limit {
        return Err(Rejection::block(
            B::GAS_USED_OVERFLOW,
            format!(
                "gas used {} above the gas limit {}",
                header.gas_used, header.gas_limit
            ),
        ));
    }
    if header.number != parent.number + 1 {
        return Err(Rejection::block(
            B::INVALID_BLOCK_NUMBER,
            format!("number {} after parent {}", header.number, parent.number),
        ));
    }
    let shanghai = schedule.is_shanghai_active_at_timestamp(header.timestamp);
    match (shanghai, header.withdrawals_root.is_some()) {
        (true, false) => {
            return Err(Rejection::block(
                B::IMPORT_IMPOSSIBLE_PARIS_OVER_SHANGHAI,
                "no withdrawals root after Shanghai",
            ))
        }
        (false, true) => {
            return Err(Rejection::block(
                B::IMPORT_IMPOSSIBLE_SHANGHAI,
                "a withdrawals root before Shanghai",
            ))
        }
        _ => {}
    }
    validate_cancun_fields(header, parent, schedule)?;
    let prague = schedule.is_prague_active_at_timestamp(header.timestamp);
    if prague != header.requests_hash.is_some() {
        return Err(Rejection::block(
            B::INVALID_REQUESTS,
            "requests hash present exactly when Prague is not active",
        ));
    }
    let dao = schedule.ethereum_fork_activation(EthereumHardfork::Dao);
    if let Some(fork) = dao.block_number() {
        if header.number >= fork
            && header.number < fork + DAO_EXTRA_DATA_RANGE
            && header.extra_data.as_ref() != DAO_EXTRA_DATA
        {
            return Err(Rejection::block(
                B::EXTRA_DATA_INVALID_DAO,
                "a DAO fork block without `dao-hard-fork` extra data",
            ));
        }
    }
    Ok(())
}

/// The proof-of-work difficulty rule.
fn check_difficulty(
    header: &Header,
    parent: &Header,
    schedule: &ForkSchedule,
) -> Result<(), Rejection> {
    let expected = expected_difficulty(schedule, parent, header.number, header.timestamp);
    if header.difficulty != expected {
        return Err(Rejection::block(
            B::INVALID_DIFFICULTY,
            format!("difficulty {} where {expected} is due", header.difficulty),
        ));
    }
    Ok(())
}

/// EIP-1559: gas limit within bounds (doubled at the fork block), base fee present exactly
/// from London on and as the parent's gas use sets it.
fn validate_london_fields(
    header: &Header,
    parent: &Header,
    schedule: &ForkSchedule,
) -> Result<(), Rejection> {
    let london = schedule.is_london_active_at_block(header.number);
    let london_parent = schedule.is_london_active_at_block(parent.number);
    let parent_gas_limit = if london && !london_parent {
        parent
            .gas_limit
            .saturating_mul(DEFAULT_ELASTICITY_MULTIPLIER)
    } else {
        parent.gas_limit
    };
    let bound = parent_gas_limit / GAS_LIMIT_BOUND_DIVISOR;
    if header.gas_limit.abs_diff(parent_gas_limit) >= bound || header.gas_limit < MIN_GAS_LIMIT {
        return Err(Rejection::block(
            B::INVALID_GASLIMIT,
            format!(
                "gas limit {} after {parent_gas_limit} (must move by less than {bound}, stay at least {MIN_GAS_LIMIT})",
                header.gas_limit
            ),
        ));
    }
    match (london, header.base_fee_per_gas) {
        (false, Some(_)) => {
            return Err(Rejection::block(
                B::IMPORT_IMPOSSIBLE_LONDON_WRONG_PARENT,
                "a base fee before London",
            ))
        }
        (true, None) => {
            let kind = if london_parent {
                B::IMPORT_IMPOSSIBLE_LEGACY_WRONG_PARENT
            } else {
                B::IMPORT_IMPOSSIBLE_LEGACY
            };
            return Err(Rejection::block(kind, "no base fee from London on"));
        }
        _ => {}
    }
    if let Some(base_fee) = header.base_fee_per_gas {
        let expected = if london_parent {
            parent
                .next_block_base_fee(BaseFeeParams::ethereum())
                .unwrap_or(INITIAL_BASE_FEE)
        } else {
            INITIAL_BASE_FEE
        };
        if base_fee != expected {
            return Err(Rejection::block(
                B::INVALID_BASEFEE_PER_GAS,
                format!("base fee {base_fee} where {expected} is due"),
            ));
        }
    }
    Ok(())
}

/// EIP-4844 and EIP-4788: the blob-gas fields and the beacon root present exactly from
/// Cancun on; excess blob gas as the parent sets it; blob gas used within the block limit.
fn validate_cancun_fields(
    header: &Header,
    parent: &Header,
    schedule: &ForkSchedule,
) -> Result<(), Rejection> {
    let Some(params) = schedule.blob_params(header.timestamp) else {
        if header.blob_gas_used.is_some()
            || header.excess_blob_gas.is_some()
            || header.parent_beacon_block_root.is_some()
        {
            return Err(Rejection::block(
                B::IMPORT_IMPOSSIBLE_CANCUN_FIELDS,
                "blob gas or beacon root fields before Cancun",
            ));
        }
        return Ok(());
    };
    let (Some(blob_gas_used), Some(excess_blob_gas), Some(_)) = (
        header.blob_gas_used,
        header.excess_blob_gas,
        header.parent_beacon_block_root,
    ) else {
        return Err(Rejection::block(
            B::IMPORT_IMPOSSIBLE_CANCUN_FIELDS,
            "blob gas or beacon root fields missing from Cancun on",
        ));
    };
    let parent_params = schedule.blob_params(parent.timestamp);
    let expected_excess = match parent_params {
        // The parent's own schedule sets the target it is measured against.
        Some(parent_params) => parent
            .next_block_excess_blob_gas(parent_params)
            .unwrap_or(0),
        None => 0,
    };
    if excess_blob_gas != expected_excess {
        return Err(Rejection::block(
            B::INCORRECT_EXCESS_BLOB_GAS,
            format!("excess blob gas {excess_blob_gas} where {expected_excess} is due"),
        ));
    }
    if blob_gas_used > params.max_blob_gas_per_block() {
        return Err(Rejection::block(
            B::BLOB_GAS_USED_ABOVE_LIMIT,
            format!(
                "blob gas used {blob_gas_used} above {}",
                params.max_blob_gas_per_block()
            ),
        ));
    }
    if blob_gas_used % DATA_GAS_PER_BLOB != 0 {
        return Err(Rejection::block(
            B::INCORRECT_BLOB_GAS_USED,
            format!("blob gas used {blob_gas_used} is not a whole number of blobs"),
        ));
    }
    Ok(())
}

/// The proof-of-work difficulty due for a block at `number` and `timestamp` over `parent`:
/// Frontier's rule, Homestead's (EIP-2), Byzantium's (EIP-100, uncles count) with the
/// difficulty bomb delayed by EIP-649, 1234, 2384, 3554, 4345 and 5133.
pub fn expected_difficulty(
    schedule: &ForkSchedule,
    parent: &Header,
    number: u64,
    timestamp: u64,
) -> U256 {
    let parent_difficulty = parent.difficulty;
    let step = parent_difficulty / U256::from(2048);
    let elapsed = timestamp.saturating_sub(parent.timestamp);
    let (sigma, bomb_delay): (i64, u64) = if schedule.is_byzantium_active_at_block(number) {
        let uncles: i64 = if parent.ommers_hash == EMPTY_OMMER_ROOT_HASH {
            1
        } else {
            2
        };
        let sigma = uncles
            .saturating_sub((elapsed / 9).min(i64::MAX as u64) as i64)
            .max(-99);
        let active = |fork| schedule.is_ethereum_fork_active_at_block(fork, number);
        let delay = if active(EthereumHardfork::GrayGlacier) {
            11_400_000
        } else if active(EthereumHardfork::ArrowGlacier) {
            10_700_000
        } else if active(EthereumHardfork::London) {
            9_700_000
        } else if active(EthereumHardfork::MuirGlacier) {
            9_000_000
        } else if active(EthereumHardfork::Constantinople) {
            5_000_000
        } else {
            3_000_000
        };
        (sigma, delay)
    } else if schedule.is_homestead_active_at_block(number) {
        (
            1i64.saturating_sub((elapsed / 10).min(i64::MAX as u64) as i64)
                .max(-99),
            0,
        )
    } else {
        (if elapsed < 13 { 1 } else { -1 }, 0)
    };
    let adjustment = step * U256::from(sigma.unsigned_abs());
    let mut difficulty = if sigma >= 0 {
        parent_difficulty.saturating_add(adjustment)
    } else {
        parent_difficulty.saturating_sub(adjustment)
    };
    difficulty = difficulty.max(U256::from(MIN_DIFFICULTY));
    let period = number.saturating_sub(bomb_delay) / 100_000;
    if period > 1 {
        difficulty = difficulty.saturating_add(U256::from(1) << (period - 2) as usize);
    }
    difficulty
}

/// The uncles a block includes, against the chain: at most two, none seen within seven
/// generations, none an ancestor, each a child of an ancestor other than the parent, each
/// a valid header. `ancestors` yields the parent first, then each older block, with the
/// uncles it included.
pub fn validate_uncles<'a>(
    header: &Header,
    hash: B256,
    uncles: &[Header],
    mut ancestors: impl Iterator<Item = (B256, &'a Header, &'a [Header])>,
    schedule: &ForkSchedule,
) -> Result<(), Rejection> {
    if uncles.is_empty() {
        return Ok(());
    }
    if uncles.len() > MAX_UNCLES {
        return Err(Rejection::block(
            B::TOO_MANY_UNCLES,
            format!("{} uncles", uncles.len()),
        ));
    }
    let mut recent: HashMap<B256, &Header> = HashMap::new();
    let mut seen: HashSet<B256> = HashSet::new();
    for _ in 0..UNCLE_GENERATIONS {
        let Some((ancestor_hash, ancestor, its_uncles)) = ancestors.next() else {
            break;
        };
        recent.insert(ancestor_hash, ancestor);
        seen.extend(its_uncles.iter().map(Header::hash_slow));
    }
    seen.insert(hash);
    for uncle in uncles {
        let uncle_hash = uncle.hash_slow();
        if !seen.insert(uncle_hash) {
            return Err(Rejection::block(
                B::DUPLICATE_UNCLE,
                format!("uncle {uncle_hash} included twice"),
            ));
        }
        if recent.contains_key(&uncle_hash) {
            return Err(Rejection::block(
                B::UNCLE_IS_ANCESTOR,
                format!("uncle {uncle_hash} is an ancestor"),
            ));
        }
        let parent = match recent.get(&uncle.parent_hash) {
            Some(parent) if uncle.parent_hash != header.parent_hash => *parent,
            _ => {
                return Err(Rejection::block(
                    B::UNCLE_PARENT_INCORRECT,
                    format!(
                        "uncle {uncle_hash}'s parent {} is not a recent ancestor",
                        uncle.parent_hash
                    ),
                ))
            }
        };
        validate_header(uncle, parent, schedule)?;
    }
    Ok(())
}

/// The body's structure against the header, before execution: no uncles after the merge,
/// the uncles hash, and a withdrawals list exactly when the header commits to one.
pub fn validate_body_structure(
    header: &Header,
    body: &BlockBody<TxEnvelope>,
    schedule: &ForkSchedule,
) -> Result<(), Rejection> {
    if schedule.is_paris_active_at_block(header.number) && !body.ommers.is_empty() {
        return Err(Rejection::block(
            B::IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS,
            format!("{} uncles after the merge", body.ommers.len()),
        ));
    }
    let ommers_root = proofs::calculate_ommers_root(&body.ommers);
    if ommers_root != header.ommers_hash {
        return Err(Rejection::block(
            B::INVALID_UNCLES_HASH,
            format!(
                "uncles hash {} where the uncles give {ommers_root}",
                header.ommers_hash
            ),
        ));
    }
    match (&body.withdrawals, header.withdrawals_root) {
        (Some(_), Some(_)) | (None, None) => Ok(()),
        (Some(_), None) => Err(Rejection::block(
            B::IMPORT_IMPOSSIBLE_SHANGHAI,
            "withdrawals in a block whose header has no withdrawals root",
        )),
        // The header commits to withdrawals the block's RLP does not carry.
        (None, Some(_)) => Err(Rejection::block(
            B::RLP_STRUCTURES_ENCODING,
            "a withdrawals root but no withdrawals list in the block",
        )),
    }
}

/// The body's commitments in the header: transactions root and withdrawals root.
///
/// Checked after the transactions ran: the fixtures build an invalid transaction's block
/// with the header of the block without it, and name the transaction's fault, not the root
/// that disagrees as a result.
pub fn validate_body_roots(header: &Header, body: &BlockBody<TxEnvelope>) -> Result<(), Rejection> {
    let transactions_root = proofs::calculate_transaction_root(&body.transactions);
    if transactions_root != header.transactions_root {
        return Err(Rejection::block(
            B::INVALID_TRANSACTIONS_ROOT,
            format!(
                "transactions root {} where the transactions give {transactions_root}",
                header.transactions_root
            ),
        ));
    }
    if let (Some(withdrawals), Some(root)) = (&body.withdrawals, header.withdrawals_root) {
        let computed = proofs::calculate_withdrawals_root(withdrawals);
        if computed != root {
            return Err(Rejection::block(
                B::INVALID_WITHDRAWALS_ROOT,
                format!("withdrawals root {root} where the withdrawals give {computed}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Network;

    fn header(number: u64, timestamp: u64, difficulty: u64) -> Header {
        Header {
            number,
            timestamp,
            difficulty: U256::from(difficulty),
            gas_limit: 3_141_592,
            ..Default::default()
        }
    }

    #[test]
    fn difficulty_rules() {
        let frontier = Network::parse("Frontier").unwrap().at(U256::ZERO);
        let parent = header(1, 1000, 0x20000);
        // Frontier: +1/2048 under 13 s, -1/2048 (but not below the minimum) at 13 s and more.
        assert_eq!(
            expected_difficulty(&frontier, &parent, 2, 1012),
            U256::from(0x20040)
        );
        assert_eq!(
            expected_difficulty(&frontier, &parent, 2, 1013),
            U256::from(MIN_DIFFICULTY)
        );
        let homestead = Network::parse("Homestead").unwrap().at(U256::ZERO);
        let big = header(1, 1000, 0x100000);
        // Homestead: 1 - elapsed/10, at least -99.
        assert_eq!(
            expected_difficulty(&homestead, &big, 2, 1009),
            U256::from(0x100000 + 0x200)
        );
        assert_eq!(
            expected_difficulty(&homestead, &big, 2, 1010),
            U256::from(0x100000)
        );
        assert_eq!(
            expected_difficulty(&homestead, &big, 2, 1030),
            U256::from(0x100000 - 2 * 0x200)
        );
        // At most 99 steps down.
        assert_eq!(
            expected_difficulty(&homestead, &big, 2, 1_000_000),
            U256::from(0x100000 - 99 * 0x200)
        );
        // Byzantium: a parent with uncles adds one step.
        let byzantium = Network::parse("Byzantium").unwrap().at(U256::ZERO);
        let mut uncled = big.clone();
        uncled.ommers_hash = B256::repeat_byte(1);
        assert_eq!(
            expected_difficulty(&byzantium, &big, 2, 1001),
            U256::from(0x100000 + 0x200)
        );
        assert_eq!(
            expected_difficulty(&byzantium, &uncled, 2, 1001),
            U256::from(0x100000 + 0x400)
        );
        // The bomb: 2^(period - 2) once the (delayed) period passes 1.
        let at = |n| expected_difficulty(&homestead, &big, n, 1010);
        assert_eq!(at(199_999), U256::from(0x100000));
        assert_eq!(at(200_000), U256::from(0x100000 + 1));
        assert_eq!(at(300_000), U256::from(0x100000 + 2));
        assert_eq!(
            expected_difficulty(&byzantium, &big, 3_200_000, 1009),
            U256::from(0x100000 + 1)
        );
    }

    #[test]
    fn london_gas_limit_doubles_at_the_fork() {
        let network = Network::parse("BerlinToLondonAt5").unwrap().at(U256::ZERO);
        let mut parent = header(4, 1000, 0x20000);
        parent.difficulty = U256::from(0x20000);
        let mut child = header(5, 1010, 0);
        child.difficulty = expected_difficulty(&network, &parent, 5, 1010);
        child.base_fee_per_gas = Some(INITIAL_BASE_FEE);
        child.gas_limit = parent.gas_limit * 2;
        assert_eq!(validate_header(&child, &parent, &network), Ok(()));
        child.gas_limit = parent.gas_limit;
        assert!(matches!(
            validate_header(&child, &parent, &network),
            Err(Rejection::Block(B::INVALID_GASLIMIT, _))
        ));
    }
}
