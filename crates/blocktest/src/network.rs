//! The fixtures' networks (`Cancun`, `FrontierToHomesteadAt5`, …) as fork schedules that
//! alloy-evm's executor and our header checks both read.

use alloy_eips::eip7840::BlobParams;
use alloy_evm::eth::spec::EthExecutorSpec;
use alloy_hardforks::{EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::{Address, U256};

/// The forks in activation order, as the fixtures' names count them (the DAO fork is not a
/// step of this order: only `HomesteadToDaoAt5` schedules it).
const ORDER: [EthereumHardfork; 18] = [
    EthereumHardfork::Frontier,
    EthereumHardfork::Homestead,
    EthereumHardfork::Tangerine,
    EthereumHardfork::SpuriousDragon,
    EthereumHardfork::Byzantium,
    EthereumHardfork::Constantinople,
    EthereumHardfork::Petersburg,
    EthereumHardfork::Istanbul,
    EthereumHardfork::MuirGlacier,
    EthereumHardfork::Berlin,
    EthereumHardfork::London,
    EthereumHardfork::ArrowGlacier,
    EthereumHardfork::GrayGlacier,
    EthereumHardfork::Paris,
    EthereumHardfork::Shanghai,
    EthereumHardfork::Cancun,
    EthereumHardfork::Prague,
    EthereumHardfork::Osaka,
];

/// Forks activated by timestamp rather than block number.
const BY_TIME: [EthereumHardfork; 4] = [
    EthereumHardfork::Shanghai,
    EthereumHardfork::Cancun,
    EthereumHardfork::Prague,
    EthereumHardfork::Osaka,
];

/// The chain id of every fixture.
pub const CHAIN_ID: u64 = 1;

/// Why a network name is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network `{0}`")]
pub struct UnknownNetwork(pub String);

/// A network's forks. Paris may be scheduled by total difficulty; [`Network::at`] resolves
/// that for one block (from its parent's total difficulty) into a [`ForkSchedule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    name: String,
    forks: Vec<(EthereumHardfork, ForkCondition)>,
    /// Paris by total difficulty (`…ToParisAtDiffC0000`); `Some(0)` when merged at genesis.
    terminal_total_difficulty: Option<U256>,
}

impl Network {
    /// Parses a fixture's `network`: a fork name (`Cancun`, `EIP150`, `ConstantinopleFix`, …)
    /// or `<From>To<To>At<N>`, `…AtTime<N>k` (thousands of seconds) or `…AtDiff<HEX>`.
    ///
    /// ```
    /// use alloy_hardforks::EthereumHardforks;
    /// use shm_blocktest::Network;
    /// let network = Network::parse("FrontierToHomesteadAt5").unwrap();
    /// let schedule = network.at(Default::default());
    /// assert!(!schedule.is_homestead_active_at_block(4));
    /// assert!(schedule.is_homestead_active_at_block(5));
    /// assert!(Network::parse("Cancoon").is_err());
    /// ```
    pub fn parse(name: &str) -> Result<Self, UnknownNetwork> {
        let unknown = || UnknownNetwork(name.to_string());
        let (from, transition) = match name.split_once("To") {
            None => (name, None),
            Some((from, rest)) => {
                let (to, at) = rest.split_once("At").ok_or_else(unknown)?;
                (from, Some((to, at)))
            }
        };
        let from = fork_index(from).ok_or_else(unknown)?;
        let mut network = Self {
            name: name.to_string(),
            forks: Vec::new(),
            terminal_total_difficulty: None,
        };
        for fork in &ORDER[..=from] {
            network.activate(*fork, ForkCondition::Block(0));
        }
        if let Some((to, at)) = transition {
            if to == "Dao" {
                let block = at.parse().map_err(|_| unknown())?;
                network
                    .forks
                    .push((EthereumHardfork::Dao, ForkCondition::Block(block)));
            } else {
                let to = fork_index(to).filter(|&to| to > from).ok_or_else(unknown)?;
                let condition = if let Some(time) = at.strip_prefix("Time") {
                    let thousands: u64 = time
                        .strip_suffix('k')
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(unknown)?;
                    ForkCondition::Timestamp(thousands * 1000)
                } else if let Some(difficulty) = at.strip_prefix("Diff") {
                    let ttd = U256::from_str_radix(difficulty, 16).map_err(|_| unknown())?;
                    network.terminal_total_difficulty = Some(ttd);
                    ForkCondition::TTD {
                        activation_block_number: 0,
                        fork_block: None,
                        total_difficulty: ttd,
                    }
                } else {
                    ForkCondition::Block(at.parse().map_err(|_| unknown())?)
                };
                for fork in &ORDER[from + 1..=to] {
                    // Forks between the two (only difficulty-bomb delays in practice) come
                    // with the later one, unless that one is the merge.
                    if *fork == ORDER[to] || !condition.is_ttd() {
                        network.activate(*fork, condition);
                    }
                }
            }
        }
        // Merged at genesis: Paris by a total difficulty of zero.
        if network.terminal_total_difficulty.is_none()
            && network.condition(EthereumHardfork::Paris) != ForkCondition::Never
        {
            network.terminal_total_difficulty = Some(U256::ZERO);
        }
        Ok(network)
    }

    fn activate(&mut self, fork: EthereumHardfork, condition: ForkCondition) {
        let condition = match condition {
            ForkCondition::Block(0) if BY_TIME.contains(&fork) => ForkCondition::Timestamp(0),
            other => other,
        };
        self.forks.retain(|(known, _)| *known != fork);
        self.forks.push((fork, condition));
    }

    fn condition(&self, fork: EthereumHardfork) -> ForkCondition {
        self.forks
            .iter()
            .find(|(known, _)| *known == fork)
            .map_or(ForkCondition::Never, |(_, condition)| *condition)
    }

    /// The name it was parsed from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The total difficulty at which the chain merges, if it does.
    pub const fn terminal_total_difficulty(&self) -> Option<U256> {
        self.terminal_total_difficulty
    }

    /// The schedule for a block whose parent has total difficulty `parent_td`: Paris is
    /// active for it (from block 0) when the parent reached the terminal total difficulty.
    pub fn at(&self, parent_td: U256) -> ForkSchedule {
        let merged = self
            .terminal_total_difficulty
            .is_some_and(|ttd| parent_td >= ttd);
        let mut forks = self.forks.clone();
        for (fork, condition) in &mut forks {
            if *fork == EthereumHardfork::Paris {
                *condition = if merged {
                    ForkCondition::Block(0)
                } else {
                    ForkCondition::Never
                };
            }
        }
        ForkSchedule { forks }
    }
}

/// The position of a fixture fork name in [`ORDER`].
fn fork_index(name: &str) -> Option<usize> {
    let fork = match name {
        "Frontier" => EthereumHardfork::Frontier,
        "Homestead" => EthereumHardfork::Homestead,
        "EIP150" | "TangerineWhistle" => EthereumHardfork::Tangerine,
        "EIP158" | "SpuriousDragon" => EthereumHardfork::SpuriousDragon,
        "Byzantium" => EthereumHardfork::Byzantium,
        "Constantinople" => EthereumHardfork::Constantinople,
        "ConstantinopleFix" | "Petersburg" => EthereumHardfork::Petersburg,
        "Istanbul" => EthereumHardfork::Istanbul,
        "MuirGlacier" => EthereumHardfork::MuirGlacier,
        "Berlin" => EthereumHardfork::Berlin,
        "London" => EthereumHardfork::London,
        "ArrowGlacier" => EthereumHardfork::ArrowGlacier,
        "GrayGlacier" => EthereumHardfork::GrayGlacier,
        "Paris" | "Merge" => EthereumHardfork::Paris,
        "Shanghai" => EthereumHardfork::Shanghai,
        "Cancun" => EthereumHardfork::Cancun,
        "Prague" => EthereumHardfork::Prague,
        "Osaka" => EthereumHardfork::Osaka,
        _ => return None,
    };
    ORDER.iter().position(|known| *known == fork)
}

/// The forks active for one block: what alloy-evm's executor reads
/// ([`EthereumHardforks`], [`EthExecutorSpec`]) and what the header checks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkSchedule {
    forks: Vec<(EthereumHardfork, ForkCondition)>,
}

impl ForkSchedule {
    /// Whether `fork` is active for a block with this number and timestamp.
    pub fn active(&self, fork: EthereumHardfork, number: u64, timestamp: u64) -> bool {
        self.ethereum_fork_activation(fork)
            .active_at_timestamp_or_number(timestamp, number)
    }

    /// Whether `fork` is active at this block and not at its parent.
    pub fn activates(
        &self,
        fork: EthereumHardfork,
        number: u64,
        timestamp: u64,
        parent_timestamp: u64,
    ) -> bool {
        self.active(fork, number, timestamp)
            && !self.active(fork, number.saturating_sub(1), parent_timestamp)
    }

    /// The blob parameters of the newest blob fork active at `timestamp`.
    pub fn blob_params(&self, timestamp: u64) -> Option<BlobParams> {
        if self.is_osaka_active_at_timestamp(timestamp) {
            Some(BlobParams::osaka())
        } else if self.is_prague_active_at_timestamp(timestamp) {
            Some(BlobParams::prague())
        } else if self.is_cancun_active_at_timestamp(timestamp) {
            Some(BlobParams::cancun())
        } else {
            None
        }
    }
}

impl EthereumHardforks for ForkSchedule {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        self.forks
            .iter()
            .find(|(known, _)| *known == fork)
            .map_or(ForkCondition::Never, |(_, condition)| *condition)
    }
}

impl EthExecutorSpec for ForkSchedule {
    fn deposit_contract_address(&self) -> Option<Address> {
        // The fixtures' chains have no deposit contract (Prague's EIP-6110 requests stay empty).
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancun_is_everything_from_genesis() {
        let network = Network::parse("Cancun").unwrap();
        assert_eq!(network.terminal_total_difficulty(), Some(U256::ZERO));
        let schedule = network.at(U256::ZERO);
        assert!(schedule.is_cancun_active_at_timestamp(0));
        assert!(schedule.is_paris_active_at_block(1));
        assert!(schedule.is_london_active_at_block(0));
        assert!(!schedule.is_prague_active_at_timestamp(u64::MAX));
        assert_eq!(
            schedule.ethereum_fork_activation(EthereumHardfork::Dao),
            ForkCondition::Never
        );
    }

    #[test]
    fn transitions() {
        let dao = Network::parse("HomesteadToDaoAt5").unwrap().at(U256::ZERO);
        assert!(dao
            .ethereum_fork_activation(EthereumHardfork::Dao)
            .transitions_at_block(5));
        assert!(!dao.is_tangerine_whistle_active_at_block(100));

        let shanghai = Network::parse("ParisToShanghaiAtTime15k")
            .unwrap()
            .at(U256::ZERO);
        assert!(!shanghai.is_shanghai_active_at_timestamp(14_999));
        assert!(shanghai.is_shanghai_active_at_timestamp(15_000));

        let fix = Network::parse("ByzantiumToConstantinopleFixAt5")
            .unwrap()
            .at(U256::ZERO);
        assert!(!fix.is_constantinople_active_at_block(4));
        assert!(fix.is_constantinople_active_at_block(5) && fix.is_petersburg_active_at_block(5));

        let merge = Network::parse("ArrowGlacierToParisAtDiffC0000").unwrap();
        assert_eq!(merge.terminal_total_difficulty(), Some(U256::from(0xC0000)));
        assert!(!merge.at(U256::from(0xBFFFF)).is_paris_active_at_block(6));
        assert!(merge.at(U256::from(0xC0000)).is_paris_active_at_block(6));
        assert!(merge.at(U256::ZERO).is_london_active_at_block(0));
        assert!(!merge
            .at(U256::ZERO)
            .is_ethereum_fork_active_at_block(EthereumHardfork::GrayGlacier, 1));
    }

    #[test]
    fn unknown_names_are_refused() {
        for name in [
            "",
            "Cancoon",
            "CancunToPrague",
            "HomesteadToFrontierAt5",
            "BerlinToLondonAtX",
        ] {
            assert!(Network::parse(name).is_err(), "{name}");
        }
    }
}
