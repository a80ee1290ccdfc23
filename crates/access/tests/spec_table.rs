//! Spec §7 as a table: level × role × mapping × operation → allowed, or why not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use shm_access::{check_access, check_map, AccessDenied};
use shm_pool::{BlockPool, PoolConfig};
use shm_primitives::{
    AccessKind, Address, ContextId, MapOptions, Permissions, RegionOptions, SecurityLevel,
};
use shm_region::{Grant, RegionMeta, RegionRegistry, RegionSpec, RegistryConfig};

const OWNER: ContextId = Address::repeat_byte(0x0a);
const STRANGER: ContextId = Address::repeat_byte(0x5e);

/// Who asks, and on what kind of region.
#[derive(Clone, Copy, Debug)]
enum Role {
    /// The region's owner (base permissions read-write).
    Owner,
    /// Another context, no grant, private region.
    Other,
    /// Another context granted read-write and the right to free.
    Granted,
    /// Another context granted read only.
    GrantedRead,
    /// Another context, region public-read.
    PublicRead,
    /// Another context, region public-write (implies public read).
    PublicWrite,
}

/// The asking context's mapping.
#[derive(Clone, Copy, Debug)]
enum Mapping {
    Unmapped,
    ReadWrite,
    ReadOnly,
}

/// Expected outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Allowed.
    OK,
    /// `NoReadPermission`.
    NoRead,
    /// `NoWritePermission`.
    NoWrite,
    /// `MappingNotFound`.
    NoMap,
    /// `ReadOnlyMapping`.
    ReadOnly,
    /// `NotAllowedToFree`.
    NoFree,
    /// `NotOwner`.
    NotOwner,
}
use Expect::*;

/// Outcomes of `[read, write, free, map]`.
type Ops = [Expect; 4];

struct Row {
    levels: &'static [SecurityLevel],
    role: Role,
    unmapped: Ops,
    mapped_read_write: Ops,
    mapped_read_only: Ops,
}

const fn row(
    levels: &'static [SecurityLevel],
    role: Role,
    unmapped: Ops,
    mapped_read_write: Ops,
    mapped_read_only: Ops,
) -> Row {
    Row {
        levels,
        role,
        unmapped,
        mapped_read_write,
        mapped_read_only,
    }
}

use Role::*;
const NONE: &[SecurityLevel] = &[SecurityLevel::None];
const BASIC: &[SecurityLevel] = &[SecurityLevel::Basic];
// Paranoid checks exactly what Strict checks (and logs every refusal).
const STRICT: &[SecurityLevel] = &[SecurityLevel::Strict, SecurityLevel::Paranoid];

#[rustfmt::skip]
const SPEC_7: &[Row] = &[
    //   level   role          no mapping                     read-write mapping             read-only mapping
    //                         read    write   free    map    read    write   free    map    read    write     free    map
    // None: handles, bounds and the static rule only; any context may read, write and free.
    row(NONE,   Owner,       [OK,    OK,     OK,     OK], [OK,    OK,     OK,     OK], [OK,    OK,       OK,     OK]),
    row(NONE,   Other,       [OK,    OK,     OK,     OK], [OK,    OK,     OK,     OK], [OK,    OK,       OK,     OK]),
    row(NONE,   Granted,     [OK,    OK,     OK,     OK], [OK,    OK,     OK,     OK], [OK,    OK,       OK,     OK]),
    row(NONE,   GrantedRead, [OK,    OK,     OK,     OK], [OK,    OK,     OK,     OK], [OK,    OK,       OK,     OK]),
    row(NONE,   PublicRead,  [OK,    OK,     OK,     OK], [OK,    OK,     OK,     OK], [OK,    OK,       OK,     OK]),
    row(NONE,   PublicWrite, [OK,    OK,     OK,     OK], [OK,    OK,     OK,     OK], [OK,    OK,       OK,     OK]),
    // Basic: + owner, public read/write flags and host grants; the owner, or a
    // context granted the right to free, frees. A read-only mapping forbids writes.
    row(BASIC,  Owner,       [OK,    OK,     OK,     OK], [OK,    OK,     OK,     OK], [OK,    ReadOnly, OK,     OK]),
    row(BASIC,  Other,       [NoRead,NoWrite,NoFree, NoRead], [NoRead,NoWrite,NoFree,NoRead], [NoRead,NoWrite,NoFree,NoRead]),
    row(BASIC,  Granted,     [OK,    OK,     OK,     OK], [OK,    OK,     OK,     OK], [OK,    ReadOnly, OK,     OK]),
    row(BASIC,  GrantedRead, [OK,    NoWrite,NoFree, OK], [OK,    NoWrite,NoFree, OK], [OK,    NoWrite,  NoFree, OK]),
    row(BASIC,  PublicRead,  [OK,    NoWrite,NoFree, OK], [OK,    NoWrite,NoFree, OK], [OK,    NoWrite,  NoFree, OK]),
    row(BASIC,  PublicWrite, [OK,    OK,     NoFree, OK], [OK,    OK,     NoFree, OK], [OK,    ReadOnly, NoFree, OK]),
    // Strict (and Paranoid): + a mapping is required before READ/WRITE; only the owner frees.
    row(STRICT, Owner,       [NoMap, NoMap,  OK,     OK], [OK,    OK,     OK,     OK], [OK,    ReadOnly, OK,     OK]),
    row(STRICT, Other,       [NoMap, NoMap,  NotOwner,NoRead], [NoRead,NoWrite,NotOwner,NoRead], [NoRead,NoWrite,NotOwner,NoRead]),
    row(STRICT, Granted,     [NoMap, NoMap,  NotOwner,OK], [OK,   OK,     NotOwner,OK], [OK,   ReadOnly, NotOwner,OK]),
    row(STRICT, GrantedRead, [NoMap, NoMap,  NotOwner,OK], [OK,   NoWrite,NotOwner,OK], [OK,   NoWrite,  NotOwner,OK]),
    row(STRICT, PublicRead,  [NoMap, NoMap,  NotOwner,OK], [OK,   NoWrite,NotOwner,OK], [OK,   NoWrite,  NotOwner,OK]),
    row(STRICT, PublicWrite, [NoMap, NoMap,  NotOwner,OK], [OK,   OK,     NotOwner,OK], [OK,   ReadOnly, NotOwner,OK]),
];

fn registry() -> RegionRegistry {
    RegionRegistry::new(
        BlockPool::new(PoolConfig::with_blocks([64, 4, 1, 1])),
        RegistryConfig::default(),
    )
}

/// Builds the region for `role`, maps the asker as `mapping`, and hands its
/// metadata and the asking context to `f`.
fn with_scenario<T>(
    role: Role,
    mapping: Mapping,
    f: impl FnOnce(&RegionMeta, ContextId) -> T,
) -> T {
    let registry = registry();
    let options = RegionOptions {
        public_read: matches!(role, PublicRead),
        public_write: matches!(role, PublicWrite),
        ..RegionOptions::default()
    };
    let handle = registry
        .create(
            RegionSpec::new(64, OWNER)
                .permissions(Permissions::read_write())
                .options(options),
        )
        .expect("create");
    let asker = if matches!(role, Owner) {
        OWNER
    } else {
        STRANGER
    };
    match role {
        Granted => {
            registry
                .lock_write(handle)
                .expect("lock")
                .grant(asker, Grant::new(Permissions::read_write()).with_free());
        }
        GrantedRead => {
            registry
                .lock_write(handle)
                .expect("lock")
                .grant(asker, Grant::new(Permissions::read_only()));
        }
        _ => {}
    }
    match mapping {
        Mapping::Unmapped => {}
        Mapping::ReadWrite => {
            registry
                .lock_write(handle)
                .expect("lock")
                .map(asker, MapOptions::empty());
        }
        Mapping::ReadOnly => {
            registry
                .lock_write(handle)
                .expect("lock")
                .map(asker, MapOptions::READ_ONLY);
        }
    }
    let guard = registry.lock_read(handle).expect("lock");
    f(guard.meta(), asker)
}

fn outcome(result: Result<(), AccessDenied>, asker: ContextId) -> Expect {
    match result {
        Ok(()) => OK,
        Err(denied) => {
            assert_eq!(
                denied.context(),
                asker,
                "the refusal names the asking context"
            );
            match denied {
                AccessDenied::NoReadPermission { .. } => NoRead,
                AccessDenied::NoWritePermission { .. } => NoWrite,
                AccessDenied::MappingNotFound { .. } => NoMap,
                AccessDenied::ReadOnlyMapping { .. } => ReadOnly,
                AccessDenied::NotAllowedToFree { .. } => NoFree,
                AccessDenied::NotOwner { .. } => NotOwner,
            }
        }
    }
}

fn actual(level: SecurityLevel, role: Role, mapping: Mapping) -> Ops {
    with_scenario(role, mapping, |meta, asker| {
        [
            outcome(check_access(level, meta, asker, AccessKind::Read), asker),
            outcome(check_access(level, meta, asker, AccessKind::Write), asker),
            outcome(check_access(level, meta, asker, AccessKind::Free), asker),
            outcome(check_map(level, meta, asker), asker),
        ]
    })
}

#[test]
fn spec_section_7_table() {
    let mut cells = 0;
    for row in SPEC_7 {
        for &level in row.levels {
            for (mapping, expected) in [
                (Mapping::Unmapped, row.unmapped),
                (Mapping::ReadWrite, row.mapped_read_write),
                (Mapping::ReadOnly, row.mapped_read_only),
            ] {
                let got = actual(level, row.role, mapping);
                assert_eq!(
                    got, expected,
                    "{level:?} {:?} {mapping:?}: [read, write, free, map]",
                    row.role
                );
                cells += 4;
            }
        }
    }
    // 4 levels × 6 roles × 3 mappings × 4 operations.
    assert_eq!(cells, 4 * 6 * 3 * 4);
}

#[test]
fn owner_rights_come_from_its_base_permissions() {
    let registry = registry();
    let handle = registry
        .create(RegionSpec::new(64, OWNER).permissions(Permissions::read_only()))
        .expect("create");
    registry
        .lock_write(handle)
        .expect("lock")
        .map(OWNER, MapOptions::empty());
    let guard = registry.lock_read(handle).expect("lock");
    for level in [SecurityLevel::Basic, SecurityLevel::Strict] {
        assert_eq!(
            check_access(level, guard.meta(), OWNER, AccessKind::Read),
            Ok(())
        );
        assert_eq!(
            check_access(level, guard.meta(), OWNER, AccessKind::Write),
            Err(AccessDenied::NoWritePermission {
                context: OWNER,
                handle
            })
        );
        assert_eq!(
            check_access(level, guard.meta(), OWNER, AccessKind::Free),
            Ok(())
        );
    }
}

#[test]
fn revoking_a_grant_takes_the_rights_away() {
    let registry = registry();
    let handle = registry.create(RegionSpec::new(64, OWNER)).expect("create");
    registry
        .lock_write(handle)
        .expect("lock")
        .grant(STRANGER, Grant::new(Permissions::read_write()));
    let check = |kind| {
        let guard = registry.lock_read(handle).expect("lock");
        check_access(SecurityLevel::Basic, guard.meta(), STRANGER, kind)
    };
    assert_eq!(check(AccessKind::Write), Ok(()));
    registry.lock_write(handle).expect("lock").revoke(STRANGER);
    assert_eq!(
        check(AccessKind::Write),
        Err(AccessDenied::NoWritePermission {
            context: STRANGER,
            handle
        })
    );
    assert_eq!(
        check(AccessKind::Read),
        Err(AccessDenied::NoReadPermission {
            context: STRANGER,
            handle
        })
    );
}

/// Counts `WARN` events; enough of a subscriber to see what Paranoid logs.
struct WarnCounter(Arc<AtomicUsize>);

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Runs the whole table at `level` under a counting subscriber; returns
/// (refusals seen, warnings logged).
fn refusals_and_warnings(level: SecurityLevel) -> (usize, usize) {
    let warnings = Arc::new(AtomicUsize::new(0));
    let refusals = tracing::subscriber::with_default(WarnCounter(Arc::clone(&warnings)), || {
        let mut refusals = 0;
        for role in [Owner, Other, Granted, GrantedRead, PublicRead, PublicWrite] {
            for mapping in [Mapping::Unmapped, Mapping::ReadWrite, Mapping::ReadOnly] {
                refusals += actual(level, role, mapping)
                    .iter()
                    .filter(|&&e| e != OK)
                    .count();
            }
        }
        refusals
    });
    (refusals, warnings.load(Ordering::SeqCst))
}

#[test]
fn paranoid_logs_every_refusal_and_strict_logs_none() {
    let (refusals, warnings) = refusals_and_warnings(SecurityLevel::Paranoid);
    assert!(refusals > 0);
    assert_eq!(warnings, refusals);
    let (refusals, warnings) = refusals_and_warnings(SecurityLevel::Strict);
    assert!(refusals > 0);
    assert_eq!(warnings, 0);
}
