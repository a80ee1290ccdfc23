//! Every knob of the manager, and the three presets of spec §9.

use core::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};
use shm_pool::PoolConfig;
use shm_primitives::SecurityLevel;
use shm_region::RegistryConfig;

const MIB: u64 = 1 << 20;

/// Configuration of a [`SharedMemoryManager`](crate::SharedMemoryManager).
///
/// Start from a preset ([`production`](Self::production),
/// [`development`](Self::development), [`testing`](Self::testing), or by name
/// with [`str::parse`]) and change fields as needed; the pool and registry
/// configurations are derived from it ([`pool_config`](Self::pool_config),
/// [`registry_config`](Self::registry_config)).
///
/// | preset | level | regions | max region | COW | mapping | IPC | GC | pools 64B/4K/64K/1M |
/// |--------|-------|---------|------------|-----|---------|-----|----|---------------------|
/// | `production` | Strict | 1024 | 64 MiB | on | on | on | every 5 s or > 512 MiB, eager | 1024/256/64/16 |
/// | `development` | Basic | 256 | 16 MiB | on | off | off | every 10 s or > 128 MiB | 256/64/16/4 |
/// | `testing` | None | 32 | 1 MiB | off | off | off | off | 64/16/4/1 |
///
/// ```
/// use shm_manager::SharedMemoryConfig;
/// use shm_primitives::SecurityLevel;
///
/// let config: SharedMemoryConfig = "production".parse()?;
/// assert_eq!(config.security_level, SecurityLevel::Strict);
/// assert_eq!(config.max_region_size, 64 << 20);
/// let json = serde_json::to_string(&config).unwrap();
/// assert!(json.contains(r#""security_level":"strict""#));
/// # Ok::<(), shm_manager::ParsePresetError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SharedMemoryConfig {
    /// Whether shared memory exists at all. When `false` every manager
    /// operation returns [`ShmError::SharedMemoryDisabled`](crate::ShmError::SharedMemoryDisabled)
    /// and no pool memory is reserved.
    pub enabled: bool,
    /// Most regions alive at once (all owners together).
    pub max_regions: usize,
    /// Most persistent regions alive at once. The other `max_regions −
    /// max_persistent_regions` slots are kept for transaction-scoped regions
    /// (spec §4), so a context that fills the persistent slots locks nobody
    /// out of ALLOC. The presets keep a quarter of the slots.
    pub max_persistent_regions: usize,
    /// Largest size of one region in bytes, growth included.
    pub max_region_size: u64,
    /// Copy-on-write mappings. When off, a mapping asked for with the
    /// copy-on-write option maps read-write instead (spec §9); the revert
    /// journal works either way.
    pub enable_cow: bool,
    /// File-backed regions. With a [`namespace`](Self::namespace) named, every
    /// region's bytes live in a memory-mapped file `<root>/<namespace>/rNNNNNNNN.shm`
    /// (`shm-mapped`: versioned header, undo log, commit generation) instead
    /// of the heap pool; persistent regions survive the process and are
    /// attached again by the next manager of the namespace, with their
    /// handles, names and bytes. Without a namespace the flag has no effect
    /// (regions live in the heap pool): a namespace is shared state and must
    /// be chosen, never defaulted. See `docs/ipc.md`.
    pub enable_memory_mapping: bool,
    /// Sharing a mapped namespace with other processes at the same time. On:
    /// several processes attach to the namespace; a region is locked across
    /// processes (a lock word in its file's header, taken with the
    /// transaction's lock and bounded by `lock_wait`) and its writes are published at the end of the
    /// transaction that made them. Off: the first manager claims the namespace
    /// for its process alone (another process gets a clear error). No effect
    /// without a mapped namespace.
    pub enable_ipc: bool,
    /// The namespace (a directory name: letters, digits, `-`, `_`, `.`) that
    /// mapped regions live in; `None`: regions live in the heap pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Where namespaces live; `None`: `/dev/shm` (or the temporary directory
    /// where there is no `/dev/shm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_root: Option<std::path::PathBuf>,
    /// Group access to mapped namespaces. Off (the default): a namespace
    /// made here is private to its owner (directory `0700`, files `0600`),
    /// and a namespace another user owns is refused. On: a namespace made
    /// here is for its directory's group (`2770`, files `0660`; `chgrp` the
    /// directory to choose the group), and a group namespace of another owner
    /// may be attached when this process is in its group. See `docs/ipc.md`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub namespace_group_access: bool,
    /// How strictly bytecode access is checked (spec §7).
    #[serde(serialize_with = "serialize_level")]
    pub security_level: SecurityLevel,
    /// Automatic garbage collection runs when this many milliseconds have
    /// passed since the last run (checked at transaction boundaries); 0 = off.
    pub gc_interval_ms: u64,
    /// Automatic garbage collection runs when region memory is above this many
    /// MiB (checked at transaction boundaries); 0 = off.
    pub gc_threshold_mb: u64,
    /// Free a region as soon as it becomes unreferenced (last unmap or host
    /// release), instead of waiting for the next garbage collection.
    pub eager_cleanup: bool,
    /// Pool blocks per size class: 64 B, 4 KiB, 64 KiB, 1 MiB.
    pub pool_blocks: [usize; 4],
    /// Total bytes that regions above 1 MiB (one allocation each, outside the
    /// classed pools) may hold at once. The presets use 4 × `max_region_size`.
    pub large_alloc_limit: u64,
    /// Longest a host call waits for a region's lock before giving up with
    /// "region busy", and the most a transaction waits for region locks *in
    /// all* (spec §6: waits are bounded; a transaction whose frames retry
    /// after a busy halt does not wait again).
    #[serde(rename = "lock_wait_ms", serialize_with = "serialize_millis")]
    pub lock_wait: Duration,
    /// One wait of a transaction is also bounded by the gas its waiting frame
    /// has left, at this many nanoseconds per gas (a busy halt then burns that
    /// gas): waiting can cost a node no more wall time per gas than the
    /// slowest mainnet opcode loop does (≈ 6.5 ns/gas, `docs/gas.md`).
    pub lock_wait_ns_per_gas: u64,
    /// Most bytes of host memory one transaction's revert journal may hold
    /// (saved pages and private copy-on-write pages, 4 KiB each); a write that
    /// needs more halts with "journal full". The page price already keeps a
    /// transaction under the EIP-7825 gas cap below 64 MiB; this bounds
    /// transactions with larger gas limits too (`evm run` lifts the cap).
    pub max_journal_bytes: u64,
}

fn serialize_level<S: Serializer>(level: &SecurityLevel, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match level {
        SecurityLevel::None => "none",
        SecurityLevel::Basic => "basic",
        SecurityLevel::Strict => "strict",
        SecurityLevel::Paranoid => "paranoid",
    })
}

fn serialize_millis<S: Serializer>(wait: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(wait.as_secs_f64() * 1e3)
}

/// The default bounded wait for a region lock.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_millis(50);

/// The default wall time one gas pays for while waiting for a lock.
pub const DEFAULT_WAIT_NS_PER_GAS: u64 = 6;

/// The default most bytes one transaction's journal may hold: 256 MiB.
pub const DEFAULT_MAX_JOURNAL_BYTES: u64 = 256 * MIB;

impl SharedMemoryConfig {
    /// The `production` preset: Strict, 1024 regions of up to 64 MiB, COW,
    /// mapping and IPC on, GC every 5 s or above 512 MiB with eager cleanup,
    /// pools 1024/256/64/16.
    pub fn production() -> Self {
        Self {
            max_regions: 1024,
            max_persistent_regions: 768,
            max_region_size: 64 * MIB,
            enable_cow: true,
            enable_memory_mapping: true,
            enable_ipc: true,
            security_level: SecurityLevel::Strict,
            gc_interval_ms: 5_000,
            gc_threshold_mb: 512,
            eager_cleanup: true,
            pool_blocks: [1024, 256, 64, 16],
            large_alloc_limit: 4 * 64 * MIB,
            ..Self::testing()
        }
    }

    /// The `development` preset: Basic, 256 regions of up to 16 MiB, COW on,
    /// no mapping or IPC, GC every 10 s or above 128 MiB, pools 256/64/16/4.
    pub fn development() -> Self {
        Self {
            max_regions: 256,
            max_persistent_regions: 192,
            max_region_size: 16 * MIB,
            enable_cow: true,
            security_level: SecurityLevel::Basic,
            gc_interval_ms: 10_000,
            gc_threshold_mb: 128,
            pool_blocks: [256, 64, 16, 4],
            large_alloc_limit: 4 * 16 * MIB,
            ..Self::testing()
        }
    }

    /// The `testing` preset: security None, 32 regions of up to 1 MiB, COW,
    /// mapping and IPC off, no automatic GC, pools 64/16/4/1.
    pub fn testing() -> Self {
        Self {
            enabled: true,
            max_regions: 32,
            max_persistent_regions: 24,
            max_region_size: MIB,
            enable_cow: false,
            enable_memory_mapping: false,
            enable_ipc: false,
            security_level: SecurityLevel::None,
            gc_interval_ms: 0,
            gc_threshold_mb: 0,
            eager_cleanup: false,
            pool_blocks: [64, 16, 4, 1],
            large_alloc_limit: 4 * MIB,
            lock_wait: DEFAULT_LOCK_WAIT,
            lock_wait_ns_per_gas: DEFAULT_WAIT_NS_PER_GAS,
            max_journal_bytes: DEFAULT_MAX_JOURNAL_BYTES,
            namespace: None,
            namespace_root: None,
            namespace_group_access: false,
        }
    }

    /// Shared memory switched off: the `testing` preset with `enabled = false`
    /// and empty pools (so nothing is reserved).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            pool_blocks: [0; 4],
            ..Self::testing()
        }
    }

    /// The same config with its regions in the mapped namespace `name`,
    /// shared with other processes (mapping and IPC on).
    ///
    /// ```
    /// use shm_manager::SharedMemoryConfig;
    /// let config = SharedMemoryConfig::production().with_namespace("prices");
    /// assert!(config.is_mapped() && config.enable_ipc);
    /// assert!(!SharedMemoryConfig::production().is_mapped()); // no namespace, no files
    /// ```
    pub fn with_namespace(mut self, name: impl Into<String>) -> Self {
        self.namespace = Some(name.into());
        self.enable_memory_mapping = true;
        self.enable_ipc = true;
        self
    }

    /// Whether regions live in mapped files: enabled, mapping on and a namespace named.
    pub fn is_mapped(&self) -> bool {
        self.enabled && self.enable_memory_mapping && self.namespace.is_some()
    }

    /// The pool configuration this config implies: its block counts, the large
    /// limit, and eager zeroing on return at Paranoid (spec §7: memory is zeroed
    /// when a free becomes final). A disabled config reserves no blocks.
    pub fn pool_config(&self) -> PoolConfig {
        let blocks = if self.enabled {
            self.pool_blocks
        } else {
            [0; 4]
        };
        PoolConfig {
            zero_on_return: self.security_level == SecurityLevel::Paranoid,
            large_alloc_limit: usize::try_from(self.large_alloc_limit).unwrap_or(usize::MAX),
            ..PoolConfig::with_blocks(blocks)
        }
    }

    /// The registry limits this config implies.
    pub fn registry_config(&self) -> RegistryConfig {
        RegistryConfig {
            max_regions: self.max_regions,
            max_region_size: self.max_region_size,
            max_persistent_regions: self.max_persistent_regions,
        }
    }

    /// How long one wait of a frame with `gas` left may last, within the
    /// transaction's `remaining` budget.
    pub fn wait_for_gas(&self, gas: u64, remaining: Duration) -> Duration {
        let paid = Duration::from_nanos(gas.saturating_mul(self.lock_wait_ns_per_gas));
        paid.min(remaining)
    }

    /// The automatic-GC interval, if any.
    pub fn gc_interval(&self) -> Option<Duration> {
        (self.gc_interval_ms > 0).then(|| Duration::from_millis(self.gc_interval_ms))
    }

    /// The automatic-GC memory threshold in bytes, if any.
    pub fn gc_threshold_bytes(&self) -> Option<u64> {
        (self.gc_threshold_mb > 0).then(|| self.gc_threshold_mb.saturating_mul(MIB))
    }

    /// Checks that the limits can be met together.
    ///
    /// # Errors
    /// A description of the first contradiction: a maximum region size above
    /// 1 MiB (served by one large allocation) that exceeds `large_alloc_limit`,
    /// or a maximum region size that does not fit in this machine's address space.
    pub fn validate(&self) -> Result<(), &'static str> {
        if usize::try_from(self.max_region_size).is_err() {
            return Err("max_region_size does not fit in the address space");
        }
        if self.max_region_size > MIB
            && self.max_region_size > self.large_alloc_limit
            && !self.is_mapped()
        {
            return Err("max_region_size exceeds large_alloc_limit: the largest region could never be allocated");
        }
        if self.max_persistent_regions > self.max_regions {
            return Err("max_persistent_regions exceeds max_regions");
        }
        if self.namespace.is_some() && !self.enable_memory_mapping {
            return Err("a namespace needs enable_memory_mapping");
        }
        Ok(())
    }
}

impl Default for SharedMemoryConfig {
    /// The `development` preset (as the lower crates' defaults).
    fn default() -> Self {
        Self::development()
    }
}

/// An unknown preset name given to [`SharedMemoryConfig::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown shared-memory preset `{0}` (expected one of: production, development, testing)")]
pub struct ParsePresetError(pub String);

impl FromStr for SharedMemoryConfig {
    type Err = ParsePresetError;

    /// `"production"`, `"development"` or `"testing"` (ASCII case ignored).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "production" => Ok(Self::production()),
            "development" => Ok(Self::development()),
            "testing" => Ok(Self::testing()),
            _ => Err(ParsePresetError(name.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_spec_table() {
        let p = SharedMemoryConfig::production();
        assert_eq!(
            (p.security_level, p.max_regions, p.max_region_size),
            (SecurityLevel::Strict, 1024, 64 << 20)
        );
        assert!(p.enable_cow && p.enable_memory_mapping && p.enable_ipc && p.eager_cleanup);
        assert_eq!((p.gc_interval_ms, p.gc_threshold_mb), (5_000, 512));
        assert_eq!(p.pool_blocks, [1024, 256, 64, 16]);

        let d = SharedMemoryConfig::development();
        assert_eq!(
            (d.security_level, d.max_regions, d.max_region_size),
            (SecurityLevel::Basic, 256, 16 << 20)
        );
        assert!(d.enable_cow && !d.enable_memory_mapping && !d.enable_ipc && !d.eager_cleanup);
        assert_eq!((d.gc_interval_ms, d.gc_threshold_mb), (10_000, 128));
        assert_eq!(d.pool_blocks, [256, 64, 16, 4]);

        let t = SharedMemoryConfig::testing();
        assert_eq!(
            (t.security_level, t.max_regions, t.max_region_size),
            (SecurityLevel::None, 32, 1 << 20)
        );
        assert!(!t.enable_cow && !t.enable_memory_mapping && !t.enable_ipc && !t.eager_cleanup);
        assert_eq!((t.gc_interval(), t.gc_threshold_bytes()), (None, None));
        assert_eq!(t.pool_blocks, [64, 16, 4, 1]);

        for preset in [p, d, t] {
            assert!(preset.enabled);
            assert_eq!(preset.lock_wait, Duration::from_millis(50));
            assert_eq!(preset.validate(), Ok(()));
        }
    }

    #[test]
    fn parses_names_and_rejects_others() {
        assert_eq!(
            "Production".parse::<SharedMemoryConfig>(),
            Ok(SharedMemoryConfig::production())
        );
        assert_eq!(
            "testing".parse::<SharedMemoryConfig>(),
            Ok(SharedMemoryConfig::testing())
        );
        let err = "mainnet".parse::<SharedMemoryConfig>().unwrap_err();
        assert!(err.to_string().contains("`mainnet`"));
    }

    #[test]
    fn derived_configs() {
        let mut c = SharedMemoryConfig::production();
        let pool = c.pool_config();
        assert_eq!(pool.blocks_per_class, [1024, 256, 64, 16]);
        assert!(!pool.zero_on_return);
        assert_eq!(pool.large_alloc_limit, 256 << 20);
        c.security_level = SecurityLevel::Paranoid;
        assert!(c.pool_config().zero_on_return);
        assert_eq!(c.registry_config().max_regions, 1024);
        assert_eq!(c.gc_threshold_bytes(), Some(512 << 20));
        assert_eq!(
            SharedMemoryConfig::disabled()
                .pool_config()
                .blocks_per_class,
            [0; 4]
        );
        c.large_alloc_limit = 1 << 20;
        assert!(c.validate().is_err());
    }

    #[test]
    fn serializes_every_knob() {
        let json = serde_json::to_value(SharedMemoryConfig::development()).unwrap();
        assert_eq!(json["security_level"], "basic");
        assert_eq!(json["lock_wait_ms"], 50.0);
        assert_eq!(json["pool_blocks"], serde_json::json!([256, 64, 16, 4]));
        assert_eq!(json["max_persistent_regions"], 192);
        assert_eq!(json["lock_wait_ns_per_gas"], 6);
        assert_eq!(json["max_journal_bytes"], 256 << 20);
        assert_eq!(json.as_object().unwrap().len(), 16);
    }
}
