//! Strict two-phase locking of regions across concurrent transactions (spec §6).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use shm_primitives::RegionHandle;

/// A transaction's identity in the lock table: a monotonic `u64`, handed out by
/// [`SharedMemoryManager::begin_transaction`](crate::SharedMemoryManager::begin_transaction).
/// Ids with the top bit set belong to single host calls ([`TxId::is_host`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TxId(pub u64);

impl TxId {
    /// The bit that marks the ids of host calls.
    pub const HOST_BIT: u64 = 1 << 63;

    /// Whether this id was drawn for one host call rather than a transaction.
    pub const fn is_host(self) -> bool {
        self.0 & Self::HOST_BIT != 0
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "host#{}", self.0 & !Self::HOST_BIT)
        } else {
            write!(f, "tx#{}", self.0)
        }
    }
}

/// How a transaction holds a region: readers share, a writer (or freer) excludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum LockMode {
    /// Read only: any number of transactions may hold it together.
    Shared,
    /// Write or free: one transaction, nobody else.
    Exclusive,
}

/// A lock shared with other processes (a mapped namespace), held for a
/// region while any transaction of this process holds it, in either mode.
pub trait CrossProcessLock: Send + Sync {
    /// Takes the region's lock within `wait` when a transaction of this process
    /// newly holds it ([`CrossLock::Held`] at once if this process holds it).
    fn lock(&self, handle: RegionHandle, wait: Duration) -> CrossLock;
    /// Publishes what this process wrote and releases the region's lock, when
    /// no transaction of this process holds it any more. Runs outside the
    /// table's mutex; a later `lock` of the region waits until it returns.
    fn unlock(&self, handle: RegionHandle);
}

/// What [`CrossProcessLock::lock`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrossLock {
    /// This process holds the region's lock.
    Held,
    /// Another process kept it past the wait: the request fails as busy.
    Busy,
    /// Another process freed the region, now dropped from this registry:
    /// granted, and the caller's check after locking finds the handle freed.
    Gone,
}

/// A lock was not granted within the wait (spec §6, the "region busy" halt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("region {handle:?} busy: {tx} waited {waited:?} for a {mode:?} lock")]
pub struct RegionBusy {
    /// The region.
    pub handle: RegionHandle,
    /// The transaction that gave up.
    pub tx: TxId,
    /// The mode it asked for.
    pub mode: LockMode,
    /// How long it waited.
    pub waited: Duration,
}

/// Who holds one region.
#[derive(Debug)]
enum Holders {
    /// Readers: the first inline (no allocation for a single reader).
    Shared(TxId, Vec<TxId>),
    Exclusive(TxId),
}

impl Holders {
    fn holds(&self, tx: TxId) -> Option<LockMode> {
        match self {
            Holders::Exclusive(t) if *t == tx => Some(LockMode::Exclusive),
            Holders::Shared(first, rest) if *first == tx || rest.contains(&tx) => {
                Some(LockMode::Shared)
            }
            _ => None,
        }
    }

    /// Removes `tx`; returns whether nobody holds the lock now (`None`: `tx`
    /// did not hold it).
    fn remove(&mut self, tx: TxId) -> Option<bool> {
        match self {
            Holders::Exclusive(t) => (*t == tx).then_some(true),
            Holders::Shared(first, rest) => {
                if *first == tx {
                    let Some(other) = rest.pop() else {
                        return Some(true);
                    };
                    *first = other;
                } else {
                    let at = rest.iter().position(|t| *t == tx)?;
                    rest.swap_remove(at);
                }
                Some(false)
            }
        }
    }
}

/// A multiply-rotate hasher for handles (two `u32`s): the default SipHash
/// would cost more than the rest of an uncontended acquire, and handles are
/// not attacker-chosen keys of an unbounded map (at most `max_regions` live).
#[derive(Default, Clone, Copy)]
struct HandleHasher(u64);

impl Hasher for HandleHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[derive(Default)]
struct ShardState {
    held: HashMap<RegionHandle, Holders, BuildHasherDefault<HandleHasher>>,
    /// Threads waiting on this shard's condvar; releases notify only when > 0.
    waiters: usize,
    /// Regions whose cross-process unlock runs now, outside the mutex: nobody
    /// is granted them until it returns (usually empty).
    unlocking: Vec<RegionHandle>,
}

/// On cache lines of its own (128 bytes: x86 prefetches lines in pairs):
/// adjacent shards sharing a mutex's line ran at 0.38× of one thread.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    state: Mutex<ShardState>,
    released: Condvar,
}

/// The longest wait [`RegionLockTable::acquire`] honours.
const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Number of shards; a power of two, so a handle picks its shard with a mask.
const SHARDS: usize = 16;

/// Per-region locks held by transactions until they end (strict two-phase
/// locking, spec §6), sharded by region index.
///
/// Locks are re-entrant per transaction, and a shared lock is upgraded to
/// exclusive when its transaction is the only holder. A request waits at most
/// the given duration and then fails with [`RegionBusy`], so transactions
/// waiting for each other end in a busy halt, never a deadlock. There is no
/// fairness: a stream of readers can keep a writer waiting until its bound.
///
/// ```
/// use std::time::Duration;
/// use shm_manager::{LockMode, RegionLockTable, TxId};
/// use shm_primitives::RegionHandle;
///
/// let locks = RegionLockTable::new();
/// let region = RegionHandle::new(1, 1).unwrap();
/// let (t1, t2) = (TxId(1), TxId(2));
/// let wait = Duration::from_millis(5);
/// locks.acquire(region, t1, LockMode::Shared, wait)?;
/// locks.acquire(region, t2, LockMode::Shared, wait)?;              // readers share
/// assert!(locks.acquire(region, t1, LockMode::Exclusive, wait).is_err()); // t2 reads too
/// locks.release_all(t2, [region]);
/// locks.acquire(region, t1, LockMode::Exclusive, wait)?;           // upgrade: t1 is alone
/// assert_eq!(locks.mode_held(region, t1), Some(LockMode::Exclusive));
/// # Ok::<(), shm_manager::RegionBusy>(())
/// ```
#[derive(Default)]
pub struct RegionLockTable {
    shards: [Shard; SHARDS],
    /// Taken after the local lock, released when the last local holder goes.
    cross_process: Option<Arc<dyn CrossProcessLock>>,
}

impl RegionLockTable {
    /// A table where nothing is locked.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table that also holds `lock` for every region a transaction of this
    /// process holds (a mapped namespace shared with other processes).
    pub fn with_cross_process(lock: Arc<dyn CrossProcessLock>) -> Self {
        Self {
            cross_process: Some(lock),
            ..Self::new()
        }
    }

    fn shard(&self, handle: RegionHandle) -> &Shard {
        &self.shards[handle.index() as usize & (SHARDS - 1)]
    }

    /// Locks `handle` for `tx` in `mode`, waiting at most `wait` (capped at a
    /// day) for other holders to release it.
    ///
    /// # Errors
    /// [`RegionBusy`] when the lock was not granted within `wait`.
    pub fn acquire(
        &self,
        handle: RegionHandle,
        tx: TxId,
        mode: LockMode,
        wait: Duration,
    ) -> Result<(), RegionBusy> {
        let Some(cross) = &self.cross_process else {
            return self.acquire_local(handle, tx, mode, wait);
        };
        let held_before = self.mode_held(handle, tx).is_some();
        let start = Instant::now();
        self.acquire_local(handle, tx, mode, wait)?;
        // A local holder already holds the cross-process lock for this process.
        if held_before
            || cross.lock(handle, wait.saturating_sub(start.elapsed())) != CrossLock::Busy
        {
            return Ok(());
        }
        self.release_all(tx, [handle]);
        Err(RegionBusy {
            handle,
            tx,
            mode,
            waited: start.elapsed(),
        })
    }

    fn acquire_local(
        &self,
        handle: RegionHandle,
        tx: TxId,
        mode: LockMode,
        wait: Duration,
    ) -> Result<(), RegionBusy> {
        let shard = self.shard(handle);
        let mut state = shard.state.lock();
        if try_grant(&mut state, handle, tx, mode) {
            return Ok(());
        }
        // Contended: only now read the clock.
        let start = Instant::now();
        let deadline = start + wait.min(MAX_WAIT);
        loop {
            if Instant::now() >= deadline {
                return Err(RegionBusy {
                    handle,
                    tx,
                    mode,
                    waited: start.elapsed(),
                });
            }
            state.waiters += 1;
            // A spurious or unrelated wake-up only makes us re-check.
            let _ = shard.released.wait_until(&mut state, deadline);
            state.waiters -= 1;
            if try_grant(&mut state, handle, tx, mode) {
                return Ok(());
            }
        }
    }

    /// The mode in which `tx` holds `handle`, if it does.
    pub fn mode_held(&self, handle: RegionHandle, tx: TxId) -> Option<LockMode> {
        let state = self.shard(handle).state.lock();
        state.held.get(&handle).and_then(|h| h.holds(tx))
    }

    /// Releases the locks `tx` holds on `handles` (handles it does not hold are
    /// ignored) and wakes waiters; returns how many locks were released.
    pub fn release_all(&self, tx: TxId, handles: impl IntoIterator<Item = RegionHandle>) -> usize {
        let mut released = 0;
        for handle in handles {
            let shard = self.shard(handle);
            let mut state = shard.state.lock();
            let Some(now_free) = state.held.get_mut(&handle).and_then(|h| h.remove(tx)) else {
                continue;
            };
            if now_free {
                state.held.remove(&handle);
            }
            released += 1;
            // No new local holder is granted the region until its
            // cross-process unlock, run outside the mutex, returns.
            if let (Some(cross), true) = (&self.cross_process, now_free) {
                state.unlocking.push(handle);
                drop(state);
                cross.unlock(handle);
                state = shard.state.lock();
                if let Some(at) = state.unlocking.iter().position(|h| *h == handle) {
                    state.unlocking.swap_remove(at);
                }
            }
            if state.waiters > 0 {
                shard.released.notify_all();
            }
        }
        released
    }

    /// Releases every lock `tx` holds (a scan of the locked regions, which
    /// are only those of running transactions); returns how many.
    pub fn release_transaction(&self, tx: TxId) -> usize {
        self.release_all(tx, self.regions(|holders| holders.holds(tx).is_some()))
    }

    /// Regions locked by anyone, in no particular order (diagnostics).
    pub fn locked_regions(&self) -> Vec<RegionHandle> {
        self.regions(|_| true)
    }

    fn regions(&self, filter: impl Fn(&Holders) -> bool) -> Vec<RegionHandle> {
        let shard_regions = |shard: &Shard| {
            let state = shard.state.lock();
            let held = state.held.iter().filter(|(_, holders)| filter(holders));
            held.map(|(&handle, _)| handle).collect::<Vec<_>>()
        };
        self.shards.iter().flat_map(shard_regions).collect()
    }
}

impl fmt::Debug for RegionLockTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionLockTable")
            .field("locked_regions", &self.locked_regions().len())
            .finish()
    }
}

/// Grants the lock if it is compatible with the current holders.
fn try_grant(state: &mut ShardState, handle: RegionHandle, tx: TxId, mode: LockMode) -> bool {
    if !state.unlocking.is_empty() && state.unlocking.contains(&handle) {
        return false;
    }
    let Some(holders) = state.held.get_mut(&handle) else {
        let holders = match mode {
            LockMode::Shared => Holders::Shared(tx, Vec::new()),
            LockMode::Exclusive => Holders::Exclusive(tx),
        };
        state.held.insert(handle, holders);
        return true;
    };
    let held = holders.holds(tx);
    if held.is_some_and(|held| held >= mode) {
        return true;
    }
    let Holders::Shared(_, rest) = holders else {
        return false;
    };
    match held {
        // Upgrade only when this transaction is the only reader.
        Some(_) if rest.is_empty() => *holders = Holders::Exclusive(tx),
        None if mode == LockMode::Shared => rest.push(tx),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use LockMode::{Exclusive, Shared};

    fn h(i: u32) -> RegionHandle {
        RegionHandle::new(i, 1).unwrap()
    }

    /// `tx` asks for region `i` in `mode`, without waiting.
    fn take(locks: &RegionLockTable, i: u32, tx: u64, mode: LockMode) -> Result<(), RegionBusy> {
        locks.acquire(h(i), TxId(tx), mode, Duration::ZERO)
    }

    fn is_locked(locks: &RegionLockTable, i: u32) -> bool {
        locks.locked_regions().contains(&h(i))
    }

    #[test]
    fn modes_reentrance_and_release() {
        let locks = RegionLockTable::new();
        take(&locks, 1, 1, Exclusive).unwrap();
        // Re-entrant in both modes once exclusive.
        take(&locks, 1, 1, Exclusive).unwrap();
        take(&locks, 1, 1, Shared).unwrap();
        assert_eq!(locks.mode_held(h(1), TxId(1)), Some(Exclusive));
        let busy = take(&locks, 1, 2, Shared).unwrap_err();
        assert_eq!((busy.handle, busy.tx, busy.mode), (h(1), TxId(2), Shared));
        // Another region in the same shard is independent.
        take(&locks, 17, 2, Exclusive).unwrap();
        assert_eq!(locks.release_all(TxId(1), [h(1), h(17)]), 1);
        assert!(!is_locked(&locks, 1));
        assert!(is_locked(&locks, 17));
        assert_eq!(locks.release_transaction(TxId(2)), 1);
        assert!(locks.locked_regions().is_empty());

        // Readers release one by one before an upgrade is granted.
        for tx in 1..=3 {
            take(&locks, 5, tx, Shared).unwrap();
        }
        assert!(take(&locks, 5, 3, Exclusive).is_err());
        locks.release_all(TxId(1), [h(5)]);
        assert!(take(&locks, 5, 3, Exclusive).is_err());
        locks.release_all(TxId(2), [h(5)]);
        take(&locks, 5, 3, Exclusive).unwrap();
        assert!(take(&locks, 5, 4, Shared).is_err());
        // Releasing a lock one does not hold changes nothing.
        assert_eq!(locks.release_all(TxId(9), [h(5), h(6)]), 0);
        assert!(is_locked(&locks, 5));
    }

    #[test]
    fn huge_wait_does_not_overflow() {
        let locks = RegionLockTable::new();
        let take_forever = |tx| locks.acquire(h(1), TxId(tx), Exclusive, Duration::MAX);
        take_forever(1).unwrap();
        std::thread::scope(|s| {
            let releaser = s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                locks.release_transaction(TxId(1))
            });
            take_forever(2).unwrap();
            assert_eq!(releaser.join().unwrap(), 1);
        });
    }

    #[test]
    fn tx_id_display() {
        assert_eq!(TxId(7).to_string(), "tx#7");
        assert_eq!(TxId(TxId::HOST_BIT | 3).to_string(), "host#3");
        assert!(TxId(TxId::HOST_BIT).is_host() && !TxId(1).is_host());
    }

    /// Records the cross-process calls (refusing `lock` for region 9) and, as a
    /// slow unlock (a commit in another process's file) would, whether the
    /// region is still locked and whether another transaction gets it then.
    #[derive(Default)]
    struct Probe {
        table: std::sync::OnceLock<std::sync::Weak<RegionLockTable>>,
        calls: Mutex<Vec<String>>,
    }

    impl CrossProcessLock for Probe {
        fn lock(&self, handle: RegionHandle, _wait: Duration) -> CrossLock {
            self.calls.lock().push(format!("lock {}", handle.index()));
            if handle.index() == 9 {
                CrossLock::Busy
            } else {
                CrossLock::Held
            }
        }
        fn unlock(&self, handle: RegionHandle) {
            let table = self.table.get().unwrap().upgrade().unwrap();
            // Both would deadlock if the shard mutex were still held.
            let locked = table.locked_regions().contains(&handle);
            let granted = take(&table, handle.index(), 99, Exclusive).is_ok();
            let call = format!("unlock {} {locked}/{granted}", handle.index());
            self.calls.lock().push(call);
        }
    }

    #[test]
    fn cross_process_lock_follows_the_first_and_last_local_holder() {
        let probe = Arc::new(Probe::default());
        let table = Arc::new(RegionLockTable::with_cross_process(probe.clone()));
        probe.table.set(Arc::downgrade(&table)).unwrap();
        let (locks, (sent, done)) = (Arc::clone(&table), std::sync::mpsc::channel());
        // On a thread of its own, so that an unlock under the mutex fails the test.
        std::thread::spawn(move || {
            take(&locks, 1, 1, Shared).unwrap();
            take(&locks, 1, 1, Exclusive).unwrap(); // upgrade: held already
            take(&locks, 2, 1, Shared).unwrap();
            take(&locks, 2, 2, Shared).unwrap(); // the second reader locks too (re-entrant below)
            assert_eq!(locks.release_all(TxId(1), [h(2)]), 1); // tx 2 still reads region 2
            assert_eq!(locks.release_transaction(TxId(1)), 1);
            assert_eq!(locks.release_transaction(TxId(2)), 1);
            sent.send(take(&locks, 9, 3, Exclusive)).unwrap();
        });
        let refused = done.recv_timeout(Duration::from_secs(10));
        let busy = refused
            .expect("unlock deadlocked under the shard mutex")
            .unwrap_err();
        // A refusal leaves nothing held and reports busy.
        assert_eq!((busy.handle, busy.tx), (h(9), TxId(3)));
        assert!(!is_locked(&table, 9));
        // Every unlock ran after the region left the table and before anyone
        // else was granted it.
        let calls = "lock 1, lock 2, lock 2, unlock 1 false/false, unlock 2 false/false, \
            lock 9, unlock 9 false/false";
        assert_eq!(probe.calls.lock().join(", "), calls);
        take(&table, 1, 99, Exclusive).unwrap();
    }
}
