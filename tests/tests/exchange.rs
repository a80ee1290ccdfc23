//! The exchange programs of `shm_benches::exchange` (issue 9), run without
//! timing: every scenario and medium at the small sizes (32 B, 1 KiB) under
//! EIP-7825's cap, each reader's memory checked by the inspector against the
//! payload, and the gas of each pinned — the figures `docs/performance.md`
//! publishes (a change of the gas schedule shows here first). The large sizes
//! run in `benches/benches/exchange.rs`, which checks them the same way.

use shm_benches::exchange::{
    all_exchanges, payload, Exchange, ExchangeError, Medium, Scenario, TX_GAS_CAP,
};

/// `tx_gas_used` of every exchange at 32 B and 1 KiB.
const GAS: &[(Scenario, Medium, u64, u64)] = {
    use Medium::*;
    use Scenario::*;
    &[
        (Handoff, Calldata, 32, 21_282),
        (Handoff, Transient, 32, 21_502),
        (Handoff, Storage, 32, 43_502),
        (Handoff, Region, 32, 22_082),
        (Handoff, Calldata, 1024, 23_363),
        (Handoff, Transient, 1024, 30_680),
        (Handoff, Storage, 1024, 734_680),
        (Handoff, Region, 1024, 24_539),
        (Sparse, Calldata, 32, 21_279),
        (Sparse, Transient, 32, 21_463),
        (Sparse, Storage, 32, 43_463),
        (Sparse, Region, 32, 22_082),
        (Sparse, Calldata, 1024, 23_639),
        (Sparse, Transient, 1024, 29_556),
        (Sparse, Storage, 1024, 733_556),
        (Sparse, Region, 1024, 28_073),
        (FanOut, Calldata, 32, 24_192),
        (FanOut, Transient, 32, 26_392),
        (FanOut, Storage, 32, 48_392),
        (FanOut, Region, 32, 28_202),
        (FanOut, Calldata, 1024, 29_093),
        (FanOut, Transient, 1024, 103_955),
        (FanOut, Storage, 1024, 807_955),
        (FanOut, Region, 1024, 33_479),
        (Outside, CalldataWords, 32, 22_280),
        (Outside, Calldata, 32, 22_280),
        (Outside, Storage, 32, 23_110),
        (Outside, Region, 32, 23_775),
        (Outside, Empty, 32, 21_380),
        (Outside, CalldataWords, 1024, 61_900),
        (Outside, Calldata, 1024, 61_900),
        (Outside, Storage, 1024, 88_584),
        (Outside, Region, 1024, 27_497),
        (Outside, Empty, 1024, 21_380),
    ]
};

#[test]
fn every_small_exchange_delivers_its_bytes_for_the_pinned_gas() {
    let small: Vec<Exchange> = all_exchanges()
        .into_iter()
        .filter(|e| e.size <= 1024)
        .collect();
    assert_eq!(small.len(), GAS.len(), "a pinned figure for each program");
    let mut wrong = Vec::new();
    for exchange in small {
        let run = exchange
            .prepare()
            .and_then(|p| p.run_checked(TX_GAS_CAP))
            .unwrap_or_else(|e| panic!("{e}"));
        let pinned = GAS
            .iter()
            .find(|(s, m, size, _)| {
                (*s, *m, *size) == (exchange.scenario, exchange.medium, exchange.size)
            })
            .map(|g| g.3);
        if pinned != Some(run.gas_used) {
            wrong.push(format!(
                "{exchange}: {} gas, pinned {pinned:?}",
                run.gas_used
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_reader_holding_other_bytes_is_caught() {
    let mut prepared = Exchange::new(Scenario::FanOut, Medium::Region, 1024)
        .prepare()
        .unwrap();
    prepared.expected[7][1000] ^= 1;
    match prepared.run_checked(TX_GAS_CAP) {
        Err(ExchangeError::Mismatch { reader, at, .. }) => assert_eq!((reader, at), (7, 1000)),
        other => panic!("{other:?}"),
    }
    // Each callee of a fan-out must stop once: sixteen readers, not fifteen.
    prepared.expected[7][1000] ^= 1;
    prepared.expected.pop();
    assert!(matches!(
        prepared.run_checked(TX_GAS_CAP),
        Err(ExchangeError::Readers {
            got: 16,
            want: 15,
            ..
        })
    ));
}

#[test]
fn a_freed_published_region_fails_the_check() {
    let prepared = Exchange::new(Scenario::Outside, Medium::Region, 1024)
        .prepare()
        .unwrap();
    let handle = shm_primitives::RegionHandle::from_u256(alloy_primitives::U256::from_be_slice(
        &prepared.data,
    ))
    .unwrap();
    prepared.manager.free_region(handle).unwrap();
    assert!(matches!(
        prepared.run_checked(TX_GAS_CAP),
        Err(ExchangeError::Failed { .. })
    ));
}

#[test]
fn storage_does_not_fit_at_32_kib() {
    // 1,024 fresh slots at 22,100 gas each: over the cap, refused by the
    // check as the bench reports it.
    let prepared = Exchange::new(Scenario::Handoff, Medium::Storage, 32 << 10)
        .prepare()
        .unwrap();
    assert!(matches!(
        prepared.run_checked(TX_GAS_CAP),
        Err(ExchangeError::Failed { .. })
    ));
}

#[test]
fn the_published_region_holds_the_payload() {
    let prepared = Exchange::new(Scenario::Outside, Medium::Region, 1024)
        .prepare()
        .unwrap();
    let handle = shm_primitives::RegionHandle::from_u256(alloy_primitives::U256::from_be_slice(
        &prepared.data,
    ))
    .unwrap();
    let mut bytes = vec![0; 1024];
    prepared.manager.read_region(handle, 0, &mut bytes).unwrap();
    assert_eq!(bytes, payload(1024));
}
