//! The collection gate: creations pass it side by side, a collection closes it.

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use shm_primitives::{default_shard_count, thread_shard, CachePadded};

/// Creations hold the gate open (shared) between making a region and taking
/// their first reference or lock on it; a collection closes it (exclusive), so
/// it never sees a region in that window.
///
/// Sharded per thread, so creating threads never write a common lock word. A
/// collection takes every shard, in index order.
pub(crate) struct GcGate {
    shards: Box<[CachePadded<RwLock<()>>]>,
}

/// The gate closed by one collection: every shard, exclusively.
pub(crate) struct ClosedGate<'a> {
    _shards: Vec<RwLockWriteGuard<'a, ()>>,
}

impl GcGate {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..default_shard_count())
                .map(|_| CachePadded(RwLock::new(())))
                .collect(),
        }
    }

    /// Holds the gate open for a creation on this thread.
    #[inline]
    pub(crate) fn open(&self) -> RwLockReadGuard<'_, ()> {
        self.shards[thread_shard(self.shards.len())].read()
    }

    /// Closes the gate, waiting for every creation in it to pass.
    pub(crate) fn close(&self) -> ClosedGate<'_> {
        ClosedGate {
            _shards: self.shards.iter().map(|shard| shard.write()).collect(),
        }
    }

    /// Closes the gate if no creation is in it now; `None` otherwise.
    pub(crate) fn try_close(&self) -> Option<ClosedGate<'_>> {
        let shards = self.shards.iter().map(|shard| shard.try_write());
        let _shards = shards.collect::<Option<_>>()?;
        Some(ClosedGate { _shards })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_creation_on_any_thread_keeps_the_gate_from_closing() {
        let gate = GcGate::new();
        // Threads are dealt shards round-robin: among four, each shard of a
        // gate with fewer shards is used by one of them.
        for _ in 0..4 {
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    let _open = gate.open();
                    assert!(gate.try_close().is_none());
                });
            });
        }
        let _closed = gate.try_close().expect("no creation holds the gate open");
        // While closed, no creation gets through on any shard.
        assert!(gate.shards.iter().all(|shard| shard.try_read().is_none()));
    }
}
