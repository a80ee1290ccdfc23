//! Regions in a mapped namespace (`shm-mapped`), shared with other processes:
//! what they did is noticed when this process newly takes a region's lock or
//! meets a handle it does not know.

use std::collections::HashMap;
use std::io::ErrorKind::NotFound;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use shm_mapped::{
    default_root, process_alive, region_file_name, Access, MappedError, MappedRegion, Namespace,
    RegionHeader,
};
use shm_metrics::MetricsRecorder;
use shm_primitives::{RegionHandle, SecurityLevel};
use shm_region::{RegionError, RegionRegistry, RegionSpec};

use crate::{CrossLock, CrossProcessLock, SharedMemoryConfig, ShmError};

/// The longest wait for a region's lock when attaching (a writer in another
/// process may be finishing a transaction).
const ATTACH_WAIT: Duration = Duration::from_millis(200);

/// Dead entries of the mapping table are dropped once it holds this many
/// (and then at twice what is left): amortised O(1) per region made.
const MIN_PRUNE: usize = 64;

/// Every region file this process has mapped, by handle.
#[derive(Default)]
struct Mappings {
    /// Weak: the registry's block owns the mapping.
    by_handle: HashMap<RegionHandle, Weak<MappedRegion>>,
    /// Size at which the dead entries are dropped next.
    prune_at: usize,
}

/// The mapped side of one manager.
pub(crate) struct MappedBacking {
    pub(crate) ns: Namespace,
    registry: Arc<RegionRegistry>,
    /// Regions other processes made, freed or resized move its gauge too.
    metrics: Arc<MetricsRecorder>,
    /// Serialises [`refresh`](Self::refresh): threads meeting the same new
    /// handle must not race to attach it.
    refreshing: Mutex<()>,
    regions: Mutex<Mappings>,
    /// Serialises this process's creations (the namespace's `flock` does not
    /// exclude threads of one process).
    creating: Mutex<()>,
    checksummed: bool,
    max_region_size: u64,
    attach_wait: Duration,
}

impl From<MappedError> for ShmError {
    fn from(error: MappedError) -> Self {
        match error {
            MappedError::AlreadyExists(name) => ShmError::NameTaken(name),
            other => ShmError::Mapped(other.to_string()),
        }
    }
}

impl MappedBacking {
    /// Opens and claims `config`'s namespace, attaching its persistent regions.
    pub(crate) fn open(
        config: &SharedMemoryConfig,
        registry: Arc<RegionRegistry>,
        metrics: Arc<MetricsRecorder>,
    ) -> Result<Arc<Self>, ShmError> {
        let name = config.namespace.as_deref().unwrap_or_default();
        let root = config.namespace_root.clone().unwrap_or_else(default_root);
        let access = if config.namespace_group_access {
            Access::Group
        } else {
            Access::Private
        };
        let ns = Namespace::open_with(&root, name, access)?;
        ns.claim(config.enable_ipc)?;
        // A lost or damaged table would let an old handle name a new region.
        ns.check_generations()?;
        let backing = Arc::new(Self {
            ns,
            registry,
            metrics,
            refreshing: Mutex::new(()),
            regions: Mutex::new(Mappings::default()),
            creating: Mutex::new(()),
            checksummed: config.security_level == SecurityLevel::Paranoid,
            max_region_size: config.max_region_size,
            attach_wait: config.lock_wait.min(ATTACH_WAIT),
        });
        for path in backing.ns.region_paths()? {
            // Refused: the regions attached so far keep their files.
            backing
                .attach_file(&path)
                .inspect_err(|_| backing.detach())?;
        }
        Ok(backing)
    }

    /// Attaches one persistent region file under its handle (returned), or
    /// removes a transaction-scoped file of a dead process.
    fn attach_file(&self, path: &Path) -> Result<Option<RegionHandle>, ShmError> {
        let region = match MappedRegion::open(path) {
            // Freed by another process since the directory was listed.
            Err(MappedError::Io { source, .. }) if source.kind() == NotFound => return Ok(None),
            opened => opened?,
        };
        let header = region.header().clone();
        if !header.options.persistent {
            // A transaction-scoped file of a live process is left alone.
            if header.creator_pid == std::process::id() || !process_alive(header.creator_pid) {
                region.set_keep(false);
            }
            return Ok(None);
        }
        if self.registry.slot_use(header.handle.index()).0 {
            return Ok(None);
        }
        // Marked in use: `evm shm rm` leaves it alone while this process
        // lives. Taking the lock rolls back a transaction whose writer died; a
        // live holder is no obstacle: the size word only changes at commit,
        // and whoever takes the lock next recovers and checks.
        region.mark_in_use()?;
        let size = match region.lock(self.attach_wait) {
            Ok(_) => {
                let verify = self.checksummed || header.checksummed;
                let checked = verify.then(|| region.verify_checksum());
                let size = region.size();
                region.unlock(None)?;
                checked.unwrap_or(Ok(()))?;
                size
            }
            Err(MappedError::LockTimeout { .. }) => region.size(),
            // Freed by its last holder while we looked: nothing to attach.
            Err(MappedError::Freed { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let spec = RegionSpec {
            name: header.name.clone(),
            size: size.max(1),
            owner: header.owner,
            permissions: header.permissions,
            options: header.options,
            max_size: Some(header.max_size),
        };
        self.registry
            .create_at(header.handle, spec, region.clone().block())?;
        self.metrics
            .record_region_created(header.handle, size.max(1));
        region.set_keep(false);
        self.remember(header.handle, &region);
        Ok(Some(header.handle))
    }

    /// Learns what other processes did at the index of `handle`, unknown here
    /// (a stale mapping of this process there is dropped first): `Ok` once a
    /// region they made is attached, or an issued handle whose region is gone
    /// is marked freed (so it halts as freed everywhere); [`ShmError::RegionBusy`]
    /// while an older region this process cannot let go of yet holds the slot;
    /// invalid when the namespace never issued it.
    pub(crate) fn refresh(&self, handle: RegionHandle) -> Result<(), ShmError> {
        let unknown = || Err(ShmError::InvalidRegionHandle(handle));
        let _one_at_a_time = self.refreshing.lock();
        // Another thread met the same handle first.
        if let Ok(()) | Err(RegionError::RegionFreed(_)) = self.registry.check(handle) {
            return Ok(());
        }
        let (occupied, issued) = self.registry.slot_use(handle.index());
        // The namespace issued it after anything this process saw at its index.
        let issued_since = || handle.generation() > issued && self.ns.was_issued(handle);
        if occupied {
            // What this process maps at that index may be stale.
            let same_index = |h: &RegionHandle| h.index() == handle.index();
            if let Some(old) = self.registry.handles().into_iter().find(same_index) {
                if let Some(region) = self.region(old).filter(|r| r.freed()) {
                    self.forget(old, &region);
                }
            }
            if self.registry.slot_use(handle.index()).0 {
                // An older region still holds the slot here while the
                // namespace issued a newer one: not invalid, only not ready.
                return if issued_since() {
                    Err(ShmError::RegionBusy { handle })
                } else {
                    unknown()
                };
            }
        }
        let path = self.ns.dir().join(region_file_name(handle.index()));
        let file = MappedRegion::open(&path).ok();
        if let Some(file) = file.filter(|r| r.header().handle == handle) {
            if matches!(self.attach_file(&path), Ok(Some(h)) if h == handle) {
                return Ok(());
            }
            if !file.freed() {
                // Another live process's transaction-scoped region, or a file
                // that could not be attached: not this process's to use.
                return unknown();
            }
        }
        // Issued here once, and its file is gone, another region's, or
        // marked freed by its last holder: it was freed.
        if issued_since() && self.mark_freed(handle) {
            return Ok(());
        }
        unknown()
    }

    /// Remembers `region`'s mapping under `handle`, every so often dropping
    /// dead entries (each dead `Weak` keeps an allocation alive).
    fn remember(&self, handle: RegionHandle, region: &Arc<MappedRegion>) {
        let mut regions = self.regions.lock();
        regions.by_handle.insert(handle, Arc::downgrade(region));
        if regions.by_handle.len() >= regions.prune_at.max(MIN_PRUNE) {
            regions.by_handle.retain(|_, weak| weak.strong_count() > 0);
            regions.prune_at = regions.by_handle.len() * 2;
        }
    }

    /// Drops a region another process freed from this registry, not its files.
    fn forget(&self, handle: RegionHandle, region: &MappedRegion) {
        region.set_keep(true);
        self.regions.lock().by_handle.remove(&handle);
        let size = self.registry.info(handle).map(|info| info.meta.size());
        if let (Ok(size), Ok(())) = (size, self.registry.free(handle)) {
            self.metrics.record_region_destroyed(handle, size);
        }
    }

    /// Marks `handle` freed in the registry (a placeholder made and freed).
    fn mark_freed(&self, handle: RegionHandle) -> bool {
        let placeholder = RegionSpec::new(1, shm_primitives::Address::ZERO)
            .permissions(shm_primitives::Permissions::empty())
            .max_size(1);
        let block = self.registry.pool().allocate(1);
        block.is_ok_and(|block| self.registry.create_at(handle, placeholder, block).is_ok())
            && self.registry.free(handle).is_ok()
    }

    /// Creates `spec`'s region as a file, under a namespace-wide fresh handle.
    pub(crate) fn create(&self, spec: RegionSpec) -> Result<RegionHandle, ShmError> {
        if spec.size == 0 {
            return Err(ShmError::ZeroSize);
        }
        let max_size = self.max_region_size.min(spec.max_size.unwrap_or(u64::MAX));
        if spec.size > max_size {
            return Err(ShmError::RegionTooLarge {
                requested: spec.size,
                max: max_size,
            });
        }
        let _one_at_a_time = self.creating.lock();
        let make = |handle| {
            if let Some(name) = spec.name.as_deref() {
                if self.ns.find(name).is_ok() {
                    return Err(MappedError::AlreadyExists(name.to_string()));
                }
            }
            // Auto-growing regions get room to grow in place; the file is
            // sparse, so untouched pages cost nothing.
            let capacity = if spec.options.auto_grow {
                max_size
            } else {
                spec.size
            };
            let mut header = RegionHeader::new(handle, capacity, spec.owner);
            header.max_size = capacity;
            header.permissions = spec.permissions;
            header.options = spec.options;
            header.checksummed = self.checksummed;
            match spec.name.clone() {
                Some(name) => header.named(name),
                None => Ok(header),
            }
        };
        let region =
            self.ns
                .create_region(|index| self.registry.slot_use(index), make, spec.size)?;
        region.set_keep(false);
        region.mark_in_use()?;
        let handle = region.header().handle;
        let spec = spec.max_size(region.header().max_size);
        // On refusal the region is dropped here, and its file with it.
        self.registry
            .create_at(handle, spec, region.clone().block())?;
        self.remember(handle, &region);
        Ok(handle)
    }

    /// The mapped file behind `handle`, if this process maps it.
    pub(crate) fn region(&self, handle: RegionHandle) -> Option<Arc<MappedRegion>> {
        let regions = self.regions.lock();
        regions.by_handle.get(&handle).and_then(Weak::upgrade)
    }

    /// The manager is dropped: persistent regions keep their files.
    pub(crate) fn detach(&self) {
        let mut regions = self.regions.lock();
        for region in regions.by_handle.values().filter_map(Weak::upgrade) {
            if region.header().options.persistent {
                region.set_keep(true);
            }
        }
        regions.by_handle.clear();
    }
}

impl CrossProcessLock for MappedBacking {
    fn lock(&self, handle: RegionHandle, wait: Duration) -> CrossLock {
        let Some(region) = self.region(handle) else {
            return CrossLock::Held; // not a file of ours (already freed): nothing to share
        };
        let fresh = !region.is_locked();
        if let Err(e) = region.lock(wait) {
            // Another process freed it: so does this one.
            if matches!(e, MappedError::Freed { .. }) {
                self.forget(handle, &region);
                return CrossLock::Gone;
            }
            tracing::warn!(target: "shm::mapped", %e, "cross-process lock not taken");
            return CrossLock::Busy;
        }
        if fresh {
            // Another process may have resized the region since.
            let committed = region.size();
            if let Ok(Some(mut guard)) = self.registry.try_lock_write_for(handle, wait) {
                let old = guard.size();
                if old != committed && committed > 0 && guard.set_size(committed).is_ok() {
                    self.metrics.record_region_resized(handle, old, committed);
                }
            }
        }
        CrossLock::Held
    }

    fn unlock(&self, handle: RegionHandle) {
        let Some(region) = self.region(handle) else {
            return;
        };
        if let Err(RegionError::RegionFreed(_)) = self.registry.check(handle) {
            // Freed by this process while locked: others must find it freed
            // once the lock is free.
            region.mark_freed();
        }
        let guard = self.registry.try_lock_read_for(handle, Duration::ZERO);
        let size = guard.ok().flatten().map(|guard| guard.size());
        if let Err(e) = region.unlock(size) {
            tracing::warn!(target: "shm::mapped", %e, "commit failed: the next lock holder rolls back");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_table_does_not_grow_with_regions_made() {
        let root = tempfile::tempdir().unwrap();
        let config = SharedMemoryConfig {
            namespace_root: Some(root.path().to_path_buf()),
            ..SharedMemoryConfig::testing().with_namespace("prune")
        };
        let manager = crate::SharedMemoryManager::new(config).unwrap();
        for _ in 0..1_000 {
            let handle = manager
                .create_region(crate::RegionRequest::new(64))
                .unwrap();
            manager.free_region(handle).unwrap();
        }
        let backing = manager.mapped.as_ref().unwrap();
        let kept = backing.regions.lock().by_handle.len();
        assert!(kept < 2 * MIN_PRUNE, "{kept} entries for no live region");
    }
}
