//! The value types of a region: its metadata, grants, mappings, and what a
//! write did.

use std::collections::BTreeMap;

use shm_pool::PoolError;
use shm_primitives::{ContextId, MapOptions, Permissions, RegionHandle, RegionOptions};

/// Rights the host granted one context on a region (spec §7, Basic and up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Grant {
    /// What the context may do with the bytes.
    pub permissions: Permissions,
    /// Whether the context may free the region (honoured at Basic only; from
    /// Strict up only the owner frees).
    pub can_free: bool,
}

impl Grant {
    /// A grant of `permissions` without the right to free.
    pub const fn new(permissions: Permissions) -> Self {
        Self {
            permissions,
            can_free: false,
        }
    }

    /// The same grant, with the right to free.
    pub const fn with_free(self) -> Self {
        Self {
            can_free: true,
            ..self
        }
    }
}

/// Everything about a region except its bytes: what access checks read
/// (owner, base permissions, options, grants, mappings) and what stats show.
#[derive(Debug, Clone)]
pub struct RegionMeta {
    pub(crate) handle: RegionHandle,
    pub(crate) name: Option<String>,
    pub(crate) owner: ContextId,
    pub(crate) permissions: Permissions,
    pub(crate) options: RegionOptions,
    pub(crate) size: usize,
    pub(crate) max_size: usize,
    pub(crate) grants: BTreeMap<ContextId, Grant>,
    pub(crate) mappings: BTreeMap<ContextId, MapOptions>,
    pub(crate) host_refs: u32,
}

impl RegionMeta {
    /// The handle the region was created under.
    pub fn handle(&self) -> RegionHandle {
        self.handle
    }
    /// Its name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// The context that created it.
    pub fn owner(&self) -> ContextId {
        self.owner
    }
    /// Whether `context` is the owner.
    pub fn is_owner(&self, context: ContextId) -> bool {
        self.owner == context
    }
    /// The owner's rights.
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }
    /// Options fixed at creation.
    pub fn options(&self) -> &RegionOptions {
        &self.options
    }
    /// Logical size in bytes.
    pub fn size(&self) -> u64 {
        self.size as u64
    }
    /// The most it may grow to.
    pub fn max_size(&self) -> u64 {
        self.max_size as u64
    }
    /// The host's grant to `context`, if any.
    pub fn grant(&self, context: ContextId) -> Option<&Grant> {
        self.grants.get(&context)
    }
    /// Every grant, by context (ordered, so iteration is deterministic).
    pub fn grants(&self) -> &BTreeMap<ContextId, Grant> {
        &self.grants
    }
    /// The options of the mapping `context` made through the host API, if any
    /// (bytecode's mappings live in the transaction's journal). A mapping only
    /// narrows a context's access rights, never widens them.
    pub fn mapping(&self, context: ContextId) -> Option<MapOptions> {
        self.mappings.get(&context).copied()
    }
    /// Every host-made mapping's options, by context.
    pub fn mappings(&self) -> &BTreeMap<ContextId, MapOptions> {
        &self.mappings
    }
    /// References the host holds.
    pub fn host_refs(&self) -> u32 {
        self.host_refs
    }
    /// Reference count: the number of mappings plus the host's references.
    pub fn ref_count(&self) -> u64 {
        self.mappings.len() as u64 + u64::from(self.host_refs)
    }
}

/// What a write did: how many bytes landed and whether the region grew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Bytes written into the region (the rest did not fit).
    pub written: usize,
    /// Size before the write (what the revert journal restores).
    pub old_size: u64,
    /// Size after the write.
    pub new_size: u64,
    /// Why auto-growth was refused, when it was (the write then wrote what fit).
    pub growth_error: Option<PoolError>,
}

impl WriteOutcome {
    /// Whether the write grew the region.
    pub fn grew(&self) -> bool {
        self.new_size > self.old_size
    }
}

/// A snapshot of one region for stats and listings.
#[derive(Clone, Debug)]
pub struct RegionInfo {
    /// Metadata at the time of the snapshot.
    pub meta: RegionMeta,
    /// Bytes of the pool block behind it (≥ its size).
    pub capacity: usize,
}
