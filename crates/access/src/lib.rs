//! Permission checks of EVM shared memory: who may read, write, map and free a
//! region at each [`SecurityLevel`] (spec §7).
//!
//! The checks are pure functions of a region's metadata
//! ([`RegionMeta`], from `shm-region`), the acting context and the kind of
//! access; they hold no state. Handle and bounds checks are not done here:
//! `shm-region` does them at every level.
//!
//! | level | read / write | free |
//! |-------|--------------|------|
//! | None | anyone | anyone |
//! | Basic | the rights of the context (below); a read-only mapping forbids writes | owner, or a context granted the right to free |
//! | Strict | Basic, and a mapping is required first | owner only |
//! | Paranoid | Strict, and every refusal is logged (`tracing::warn!`) | owner only |
//!
//! A context's *rights* are the union of: the owner's base permissions (for the
//! owner), read for everyone on a public-read region, read and write for
//! everyone on a public-write region, and the host's grant to the context. A
//! mapping never adds rights: it only narrows them (read-only). Mapping a
//! region needs read rights ([`check_map`]).
//!
//! ```
//! use shm_access::{check_access, check_map, AccessDenied};
//! use shm_pool::{BlockPool, PoolConfig};
//! use shm_primitives::{AccessKind, Address, MapOptions, SecurityLevel};
//! use shm_region::{RegionRegistry, RegionSpec, RegistryConfig};
//!
//! let registry = RegionRegistry::new(BlockPool::new(PoolConfig::default()), RegistryConfig::default());
//! let (owner, stranger) = (Address::repeat_byte(1), Address::repeat_byte(2));
//! let handle = registry.create(RegionSpec::new(64, owner))?;
//! let mut guard = registry.lock_write(handle)?;
//!
//! // Strict: the owner must map before reading; a stranger may not even map.
//! let strict = SecurityLevel::Strict;
//! assert!(matches!(check_access(strict, guard.meta(), owner, AccessKind::Read),
//!     Err(AccessDenied::MappingNotFound { .. })));
//! assert!(check_map(strict, guard.meta(), owner).is_ok());
//! guard.map(owner, MapOptions::empty());
//! assert!(check_access(strict, guard.meta(), owner, AccessKind::Read).is_ok());
//! assert!(matches!(check_map(strict, guard.meta(), stranger),
//!     Err(AccessDenied::NoReadPermission { .. })));
//! # Ok::<(), shm_region::RegionError>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use shm_primitives::{AccessKind, ContextId, MapOptions, Permissions, RegionHandle, SecurityLevel};
use shm_region::RegionMeta;

/// Why an access was refused. Every variant names the context that was refused
/// and the region it asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AccessDenied {
    /// The context may not read the region (nor map it).
    #[error("context {context} may not read region {handle:?}")]
    NoReadPermission {
        /// The refused context.
        context: ContextId,
        /// The region.
        handle: RegionHandle,
    },
    /// The context may not write the region.
    #[error("context {context} may not write region {handle:?}")]
    NoWritePermission {
        /// The refused context.
        context: ContextId,
        /// The region.
        handle: RegionHandle,
    },
    /// Strict and up: the context must map the region before reading or writing.
    #[error("context {context} has not mapped region {handle:?}")]
    MappingNotFound {
        /// The refused context.
        context: ContextId,
        /// The region.
        handle: RegionHandle,
    },
    /// The context's mapping is read-only and it tried to write.
    #[error("context {context} mapped region {handle:?} read-only")]
    ReadOnlyMapping {
        /// The refused context.
        context: ContextId,
        /// The region.
        handle: RegionHandle,
    },
    /// Basic: the context is neither the owner nor granted the right to free.
    #[error("context {context} may not free region {handle:?}")]
    NotAllowedToFree {
        /// The refused context.
        context: ContextId,
        /// The region.
        handle: RegionHandle,
    },
    /// Strict and up: only the owner frees, grants notwithstanding.
    #[error("context {context} does not own region {handle:?}")]
    NotOwner {
        /// The refused context.
        context: ContextId,
        /// The region.
        handle: RegionHandle,
    },
}

impl AccessDenied {
    /// The context that was refused.
    pub fn context(&self) -> ContextId {
        match *self {
            Self::NoReadPermission { context, .. }
            | Self::NoWritePermission { context, .. }
            | Self::MappingNotFound { context, .. }
            | Self::ReadOnlyMapping { context, .. }
            | Self::NotAllowedToFree { context, .. }
            | Self::NotOwner { context, .. } => context,
        }
    }

    /// The region the context asked for.
    pub fn handle(&self) -> RegionHandle {
        match *self {
            Self::NoReadPermission { handle, .. }
            | Self::NoWritePermission { handle, .. }
            | Self::MappingNotFound { handle, .. }
            | Self::ReadOnlyMapping { handle, .. }
            | Self::NotAllowedToFree { handle, .. }
            | Self::NotOwner { handle, .. } => handle,
        }
    }
}

/// The rights `context` has on a region, ignoring mappings and the security
/// level: the owner's base permissions, the public flags (public write implies
/// public read) and the host's grant, united.
///
/// ```
/// # use shm_pool::{BlockPool, PoolConfig};
/// # use shm_primitives::{Address, Permissions, RegionOptions};
/// # use shm_region::{RegionRegistry, RegionSpec, RegistryConfig};
/// # let registry = RegionRegistry::new(BlockPool::new(PoolConfig::default()), RegistryConfig::default());
/// let public_write = RegionOptions { public_write: true, ..RegionOptions::default() };
/// let h = registry.create(RegionSpec::new(64, Address::ZERO).options(public_write))?;
/// let guard = registry.lock_read(h)?;
/// assert_eq!(shm_access::rights(guard.meta(), Address::repeat_byte(9)), Permissions::read_write());
/// # Ok::<(), shm_region::RegionError>(())
/// ```
pub fn rights(meta: &RegionMeta, context: ContextId) -> Permissions {
    let mut rights = Permissions::empty();
    if meta.is_owner(context) {
        rights |= meta.permissions();
    }
    let options = meta.options();
    if options.public_read || options.public_write {
        rights |= Permissions::READ;
    }
    if options.public_write {
        rights |= Permissions::WRITE;
    }
    if let Some(grant) = meta.grant(context) {
        rights |= grant.permissions;
    }
    rights
}

/// Whether `context` may do `kind` to the region at `level` (spec §7).
///
/// Checks run in the order the spec reports causes: mapping (Strict and up),
/// then rights, then a read-only mapping. At Paranoid every refusal is logged
/// with `tracing::warn!`.
///
/// A write through a copy-on-write mapping changes only the context's private
/// pages, never the region, so read rights suffice for it (spec §5): callers
/// check such a write as [`AccessKind::Read`].
///
/// # Errors
/// The [`AccessDenied`] reason of the first check that failed.
pub fn check_access(
    level: SecurityLevel,
    meta: &RegionMeta,
    context: ContextId,
    kind: AccessKind,
) -> Result<(), AccessDenied> {
    check_access_with_mapping(level, meta, context, kind, meta.mapping(context))
}

/// As [`check_access`], with the context's mapping given by the caller instead of
/// read from the region: the EVM keeps mappings made by bytecode in the
/// transaction (they end with it), so concurrent transactions never see each
/// other's mappings; the region holds only host-made ones.
///
/// # Errors
/// The [`AccessDenied`] reason of the first check that failed.
pub fn check_access_with_mapping(
    level: SecurityLevel,
    meta: &RegionMeta,
    context: ContextId,
    kind: AccessKind,
    mapping: Option<MapOptions>,
) -> Result<(), AccessDenied> {
    let result = decide(level, meta, context, kind, mapping);
    if let Err(denied) = &result {
        log_refusal(level, denied, kind_name(kind));
    }
    result
}

/// Whether `context` may map the region at `level`: mapping needs read rights
/// (Basic and up); at None anyone maps. The mapping's options never widen
/// rights, so they play no part here.
///
/// # Errors
/// [`AccessDenied::NoReadPermission`].
pub fn check_map(
    level: SecurityLevel,
    meta: &RegionMeta,
    context: ContextId,
) -> Result<(), AccessDenied> {
    let handle = meta.handle();
    let result =
        if level == SecurityLevel::None || rights(meta, context).contains(Permissions::READ) {
            Ok(())
        } else {
            Err(AccessDenied::NoReadPermission { context, handle })
        };
    if let Err(denied) = &result {
        log_refusal(level, denied, "map");
    }
    result
}

fn decide(
    level: SecurityLevel,
    meta: &RegionMeta,
    context: ContextId,
    kind: AccessKind,
    mapping: Option<MapOptions>,
) -> Result<(), AccessDenied> {
    let handle = meta.handle();
    if level == SecurityLevel::None {
        return Ok(());
    }
    let strict = level >= SecurityLevel::Strict;
    match kind {
        AccessKind::Read | AccessKind::Write => {
            if strict && mapping.is_none() {
                return Err(AccessDenied::MappingNotFound { context, handle });
            }
            let rights = rights(meta, context);
            if kind == AccessKind::Read {
                if !rights.contains(Permissions::READ) {
                    return Err(AccessDenied::NoReadPermission { context, handle });
                }
            } else {
                if !rights.contains(Permissions::WRITE) {
                    return Err(AccessDenied::NoWritePermission { context, handle });
                }
                if mapping.is_some_and(|m| m.read_only()) {
                    return Err(AccessDenied::ReadOnlyMapping { context, handle });
                }
            }
            Ok(())
        }
        AccessKind::Free => {
            if meta.is_owner(context) {
                Ok(())
            } else if strict {
                Err(AccessDenied::NotOwner { context, handle })
            } else if meta.grant(context).is_some_and(|g| g.can_free) {
                Ok(())
            } else {
                Err(AccessDenied::NotAllowedToFree { context, handle })
            }
        }
    }
}

fn kind_name(kind: AccessKind) -> &'static str {
    match kind {
        AccessKind::Read => "read",
        AccessKind::Write => "write",
        AccessKind::Free => "free",
    }
}

fn log_refusal(level: SecurityLevel, denied: &AccessDenied, operation: &'static str) {
    if level == SecurityLevel::Paranoid {
        tracing::warn!(
            target: "shm::access",
            context = %denied.context(),
            region = %denied.handle(),
            operation,
            reason = %denied,
            "shared-memory access refused"
        );
    }
}
