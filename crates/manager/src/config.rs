//! Every knob of the manager, and the three presets of spec §9.

use core::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};
use shm_pool::PoolConfig;
use shm_primitives::SecurityLevel;
use shm_region::RegistryConfig;

const MIB: u64 = 1 << 20;

/// Configuration of a [`SharedMemoryManager`](crate::SharedMemoryManager):
/// start from a preset (also by name with [`str::parse`]) and change fields.
///
/// | preset | level | regions | max region | COW | mapping | IPC | GC | pools 64B/4K/64K/1M |
/// |--------|-------|---------|------------|-----|---------|-----|----|---------------------|
/// | `production` | Strict | 1024 | 64 MiB | on | on | on | every 5 s or > 512 MiB, eager | 1024/256/64/16 |
/// | `development` | Basic | 256 | 16 MiB | on | off | off | every 10 s or > 128 MiB | 256/64/16/4 |
/// | `testing` | None | 32 | 1 MiB | off | off | off | off | 64/16/4/1 |
///
/// All three wait 50 ms for a lock (6 ns per gas) and bound a journal at 256 MiB.
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
    /// When `false` every manager operation returns
    /// [`ShmError::SharedMemoryDisabled`](crate::ShmError::SharedMemoryDisabled).
    pub enabled: bool,
    /// Most regions alive at once (all owners together).
    pub max_regions: usize,
    /// Most persistent regions alive at once; the other slots are kept for
    /// transaction-scoped regions (spec §4).
    pub max_persistent_regions: usize,
    /// Largest size of one region in bytes, growth included.
    pub max_region_size: u64,
    /// Copy-on-write mappings; when off they map read-write instead (spec §9).
    pub enable_cow: bool,
    /// File-backed regions: with a [`namespace`](Self::namespace) named (never
    /// defaulted: it is shared state), every region lives in a memory-mapped
    /// file under it and persistent regions survive the process (`docs/ipc.md`).
    pub enable_memory_mapping: bool,
    /// Sharing a mapped namespace with other processes (regions are then
    /// locked across processes); off: the first manager claims it alone.
    pub enable_ipc: bool,
    /// The namespace (a directory name: letters, digits, `-`, `_`, `.`) of
    /// mapped regions; `None`: the heap pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Where namespaces live; `None`: `/dev/shm` (else the temporary directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_root: Option<std::path::PathBuf>,
    /// Group access to mapped namespaces (`2770`, files `0660`) instead of
    /// owner-only (`0700`, `0600`). See `docs/ipc.md`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub namespace_group_access: bool,
    /// How strictly bytecode access is checked (spec §7).
    #[serde(serialize_with = "serialize_level")]
    pub security_level: SecurityLevel,
    /// Automatic GC after this many milliseconds since the last run; 0 = off.
    pub gc_interval_ms: u64,
    /// Automatic GC when region memory is above this many MiB; 0 = off.
    pub gc_threshold_mb: u64,
    /// Free a region as soon as a host unmap or release leaves it unreferenced.
    pub eager_cleanup: bool,
    /// Pool blocks per size class: 64 B, 4 KiB, 64 KiB, 1 MiB.
    pub pool_blocks: [usize; 4],
    /// Total bytes that regions above 1 MiB (one allocation each) may hold.
    pub large_alloc_limit: u64,
    /// Longest a host call waits for a region's lock, and the most a
    /// transaction waits for region locks *in all* (spec §6).
    #[serde(rename = "lock_wait_ms", serialize_with = "serialize_millis")]
    pub lock_wait: Duration,
    /// One wait is also bounded by the waiting frame's gas, at this many
    /// nanoseconds per gas (the slowest mainnet opcode loop: ≈ 6.5, `docs/gas.md`).
    pub lock_wait_ns_per_gas: u64,
    /// Most bytes one transaction's revert journal may hold (saved and
    /// copy-on-write pages); a write that needs more halts with "journal full".
    /// The page price alone bounds it only under the EIP-7825 gas cap.
    pub max_journal_bytes: u64,
}

fn serialize_level<S: Serializer>(level: &SecurityLevel, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{level:?}").to_lowercase())
}

fn serialize_millis<S: Serializer>(wait: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(wait.as_secs_f64() * 1e3)
}

impl SharedMemoryConfig {
    /// The `production` preset (see the type's table).
    pub fn production() -> Self {
        Self {
            max_regions: 1024,
            max_persistent_regions: 768,
            max_region_size: 64 * MIB,
            enable_memory_mapping: true,
            enable_ipc: true,
            security_level: SecurityLevel::Strict,
            gc_interval_ms: 5_000,
            gc_threshold_mb: 512,
            eager_cleanup: true,
            pool_blocks: [1024, 256, 64, 16],
            large_alloc_limit: 4 * 64 * MIB,
            ..Self::development()
        }
    }

    /// The `development` preset (see the type's table).
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

    /// The `testing` preset (see the type's table).
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
            lock_wait: Duration::from_millis(50),
            lock_wait_ns_per_gas: 6,
            max_journal_bytes: 256 * MIB,
            namespace: None,
            namespace_root: None,
            namespace_group_access: false,
        }
    }

    /// Shared memory switched off: the `testing` preset with empty pools.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            pool_blocks: [0; 4],
            ..Self::testing()
        }
    }

    /// The same config with its regions in the mapped namespace `name` (mapping and IPC on).
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

    /// The pool configuration this config implies (zeroing on return at
    /// Paranoid, spec §7; no blocks when disabled).
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

    /// How long one wait of a frame with `gas` left may last, within `remaining`.
    pub fn wait_for_gas(&self, gas: u64, remaining: Duration) -> Duration {
        Duration::from_nanos(gas.saturating_mul(self.lock_wait_ns_per_gas)).min(remaining)
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
    /// A description of the first contradiction.
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
    use serde_json::json;

    #[test]
    fn presets_match_spec_table_serialize_every_knob_and_imply_the_rest() {
        let common = json!({"enabled": true, "lock_wait_ms": 50.0, "lock_wait_ns_per_gas": 6,
            "max_journal_bytes": 256 << 20});
        let table = [
            json!({"name": "production", "security_level": "strict", "max_regions": 1024,
                "max_region_size": 64 << 20, "enable_cow": true, "enable_memory_mapping": true,
                "enable_ipc": true, "eager_cleanup": true, "gc_interval_ms": 5_000,
                "gc_threshold_mb": 512, "pool_blocks": [1024, 256, 64, 16]}),
            json!({"name": "development", "security_level": "basic", "max_regions": 256,
                "max_region_size": 16 << 20, "enable_cow": true, "enable_memory_mapping": false,
                "enable_ipc": false, "eager_cleanup": false, "gc_interval_ms": 10_000,
                "gc_threshold_mb": 128, "pool_blocks": [256, 64, 16, 4],
                "max_persistent_regions": 192}),
            json!({"name": "testing", "security_level": "none", "max_regions": 32,
                "max_region_size": 1 << 20, "enable_cow": false, "enable_memory_mapping": false,
                "enable_ipc": false, "eager_cleanup": false, "gc_interval_ms": 0,
                "gc_threshold_mb": 0, "pool_blocks": [64, 16, 4, 1]}),
        ];
        for expected in table {
            let name = expected["name"].as_str().unwrap();
            // By name, ASCII case ignored.
            let config: SharedMemoryConfig = name.to_uppercase().parse().unwrap();
            assert_eq!(config.validate(), Ok(()), "{name}");
            let json = serde_json::to_value(&config).unwrap();
            assert_eq!(json.as_object().unwrap().len(), 16, "{name}");
            let pairs = [&expected, &common].map(|o| o.as_object().unwrap());
            for (key, value) in pairs.into_iter().flatten().filter(|(k, _)| *k != "name") {
                assert_eq!(&json[key], value, "{name}.{key}");
            }
        }
        let t = SharedMemoryConfig::testing();
        assert_eq!((t.gc_interval(), t.gc_threshold_bytes()), (None, None));
        let err = "mainnet".parse::<SharedMemoryConfig>().unwrap_err();
        assert!(err.to_string().contains("`mainnet`"));

        // What the production preset implies for the pool and the registry.
        let mut c = SharedMemoryConfig::production();
        assert_eq!("Production".parse(), Ok(c.clone()));
        let pool = c.pool_config();
        assert_eq!(pool.blocks_per_class, [1024, 256, 64, 16]);
        assert!(!pool.zero_on_return);
        assert_eq!(pool.large_alloc_limit, 256 << 20);
        c.security_level = SecurityLevel::Paranoid;
        assert!(c.pool_config().zero_on_return);
        assert_eq!(c.registry_config().max_regions, 1024);
        assert_eq!(c.gc_threshold_bytes(), Some(512 << 20));
        let disabled = SharedMemoryConfig::disabled().pool_config();
        assert_eq!(disabled.blocks_per_class, [0; 4]);
        c.large_alloc_limit = 1 << 20;
        assert!(c.validate().is_err());
    }
}
