//! Per-key state in a sharded concurrent map, with expiry of idle keys.
//!
//! A lookup of an existing key takes one shard's read lock (an atomic add) and then works on the
//! key's atomics; only the first hit of a new key takes a shard write lock. Keys whose state no
//! longer matters (their window passed, their GCRA time is behind the clock) are removed by
//! [`KeyedStates::sweep`], which the deciders run at most every [`SWEEP_EVERY`], so memory is
//! bounded by the keys active within one window.
//!
//! Quota counters are also reached through a small per-thread cache of handles
//! ([`KeyedStates::try_acquire_cached`]): a thread that counts the same key again (one caller's
//! requests) touches only the counter, not the shard's lock, which with several threads moves
//! between their cores on every lookup, nor SipHash. The sweep retires a counter before it
//! removes it, in the same atomic step as its idleness check, so a handle never counts into a
//! forgotten counter: it finds it retired and looks the key up again.

use std::cell::RefCell;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::clock::Nanos;
use crate::gcra::Gcra;
use crate::window::{Quota, WindowCounter};

/// How often idle keys are swept (at most).
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// State that can tell whether it is still needed.
pub trait Expiring: Default + Send + Sync + 'static {
    /// Whether a fresh state would behave the same at `now`.
    fn is_idle(&self, now: Nanos) -> bool;

    /// Whether the sweep may remove it: idle, and (for state held outside the map) marked so
    /// that holders notice.
    fn retire_if_idle(&self, now: Nanos) -> bool {
        self.is_idle(now)
    }
}

impl Expiring for WindowCounter {
    fn is_idle(&self, now: Nanos) -> bool {
        WindowCounter::is_idle(self, now)
    }

    fn retire_if_idle(&self, now: Nanos) -> bool {
        WindowCounter::retire_if_idle(self, now)
    }
}

impl Expiring for Gcra {
    fn is_idle(&self, now: Nanos) -> bool {
        Gcra::is_idle(self, now)
    }
}

/// The maps of throttle keys: foldhash with a random seed per map instead of the standard
/// SipHash, as hashbrown does by default — a key is hashed on every request (twice: decide
/// and record), and SipHash of a 40-byte key costs about 160 instructions.
pub(crate) type KeyMap<K, V> = DashMap<K, V, foldhash::fast::RandomState>;

/// A map from throttle key to state.
#[derive(Debug)]
pub struct KeyedStates<S> {
    map: KeyMap<Box<str>, Arc<S>>,
    /// Tells this map's counters apart from other maps' in the per-thread handle cache.
    id: u64,
}

/// Source of [`KeyedStates::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl<S: Expiring> Default for KeyedStates<S> {
    fn default() -> Self {
        KeyedStates {
            map: KeyMap::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl<S: Expiring> KeyedStates<S> {
    /// Runs `f` on the state of `key`, creating it on first use.
    #[inline]
    pub fn with<R>(&self, key: &str, f: impl FnOnce(&S) -> R) -> R {
        self.with_arc(key, |s| f(s))
    }

    /// [`with`](Self::with), on the shared state itself (while the shard's lock is held, so
    /// the sweep cannot retire it meanwhile).
    fn with_arc<R>(&self, key: &str, f: impl FnOnce(&Arc<S>) -> R) -> R {
        if let Some(s) = self.map.get(key) {
            return f(&s);
        }
        let s = self.map.entry(key.into()).or_default();
        f(&s)
    }

    /// Runs `f` on the state of `key` if it exists.
    pub fn with_existing<R>(&self, key: &str, f: impl FnOnce(&S) -> R) -> Option<R> {
        self.map.get(key).map(|s| f(&s))
    }

    /// Removes idle keys.
    pub fn sweep(&self, now: Nanos) {
        self.map.retain(|_, s| !s.retire_if_idle(now));
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Slots of the per-thread handle cache (direct-mapped: a key has one slot, a colliding key
/// takes it over, so no key can make a lookup longer than one compare).
const HANDLE_SLOTS: usize = 256;
/// Longest key cached (longer ones always go through the map).
const HANDLE_KEY_MAX: usize = 128;

/// A counter this thread reached before: which map, which key, and the counter.
struct Handle {
    map: u64,
    key: Box<str>,
    counter: Arc<WindowCounter>,
}

thread_local! {
    static HANDLES: RefCell<Vec<Option<Handle>>> = const { RefCell::new(Vec::new()) };
}

/// The slot of `key` of map `map`.
fn slot_of(map: u64, key: &str) -> usize {
    (foldhash::fast::FixedState::with_seed(map).hash_one(key) as usize) & (HANDLE_SLOTS - 1)
}

impl KeyedStates<WindowCounter> {
    /// [`WindowCounter::try_acquire`] on the counter of `key`, through this thread's handle to
    /// it when there is one (see the module's documentation).
    pub(crate) fn try_acquire_cached(
        &self,
        key: &str,
        q: &Quota,
        n: u64,
        now: Nanos,
    ) -> Result<u64, Duration> {
        // through the map, where no counter is retired (see `WindowCounter::try_acquire`)
        let locked = |c: &WindowCounter| c.try_acquire(q, n, now);
        if key.len() > HANDLE_KEY_MAX {
            return self.with(key, locked);
        }
        HANDLES.with(|handles| {
            let Ok(mut handles) = handles.try_borrow_mut() else {
                return self.with(key, locked);
            };
            if handles.is_empty() {
                handles.resize_with(HANDLE_SLOTS, || None);
            }
            let slot = &mut handles[slot_of(self.id, key)];
            if let Some(h) = slot.as_ref().filter(|h| h.map == self.id && &*h.key == key) {
                if let Some(answer) = h.counter.try_acquire_live(q, n, now) {
                    return answer;
                }
            }
            // not held, or retired since: through the map, keeping a handle for next time
            let (answer, counter) = self.with_arc(key, |c| (locked(c), c.clone()));
            *slot = Some(Handle {
                map: self.id,
                key: key.into(),
                counter,
            });
            answer
        })
    }
}

/// Decides when the next sweep is due; one caller wins each period.
#[derive(Debug, Default)]
pub(crate) struct SweepSchedule {
    next: AtomicU64,
}

impl SweepSchedule {
    /// True for exactly one caller once `now` passes the scheduled time.
    #[inline]
    pub(crate) fn due(&self, now: Nanos) -> bool {
        let next = self.next.load(Ordering::Relaxed);
        now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now + SWEEP_EVERY.as_nanos() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Quota;

    #[test]
    fn idle_keys_are_swept() {
        let states: KeyedStates<WindowCounter> = KeyedStates::default();
        let q = Quota::requests(10, Duration::from_secs(1));
        for i in 0..100 {
            states.with(&format!("k{i}"), |c| c.try_acquire(&q, 1, 0).unwrap());
        }
        assert_eq!(states.len(), 100);
        states.sweep(500_000_000);
        assert_eq!(states.len(), 100, "same window: kept");
        states.sweep(1_000_000_000);
        assert!(states.is_empty(), "window passed: forgotten");
        let s = SweepSchedule::default();
        assert!(s.due(5));
        assert!(!s.due(6));
        assert!(s.due(5 + SWEEP_EVERY.as_nanos() as u64));
    }

    #[test]
    fn handles_count_into_the_live_counter_across_sweeps() {
        const W: u64 = 1_000_000_000;
        let states: KeyedStates<WindowCounter> = KeyedStates::default();
        let other: KeyedStates<WindowCounter> = KeyedStates::default();
        let q = Quota::requests(3, Duration::from_secs(1));
        // the handle and the map see one count
        assert_eq!(states.try_acquire_cached("k", &q, 1, 0), Ok(1));
        assert_eq!(states.try_acquire_cached("k", &q, 1, 0), Ok(2));
        assert_eq!(states.with("k", |c| c.used(&q, 0)), 2);
        // another map's key of the same name is another counter
        assert_eq!(other.try_acquire_cached("k", &q, 1, 0), Ok(1));
        assert_eq!(states.try_acquire_cached("k", &q, 1, 0), Ok(3));
        assert!(states.try_acquire_cached("k", &q, 1, 0).is_err());
        // the window passes, the sweep forgets the key; the handle this thread holds is to
        // the retired counter, and the next count goes to the map's new one
        states.sweep(W);
        assert!(states.is_empty());
        assert_eq!(states.try_acquire_cached("k", &q, 1, W), Ok(1));
        assert_eq!(states.with("k", |c| c.used(&q, W)), 1);
        assert_eq!(states.len(), 1);
        // a key too long for the cache still counts
        let long = "x".repeat(HANDLE_KEY_MAX + 1);
        assert_eq!(states.try_acquire_cached(&long, &q, 1, W), Ok(1));
        assert_eq!(states.with(&long, |c| c.used(&q, W)), 1);
    }

    #[test]
    fn handles_on_two_threads_count_exactly() {
        let states: Arc<KeyedStates<WindowCounter>> = Arc::new(KeyedStates::default());
        let q = Quota::requests(10_000, Duration::from_secs(3600));
        let admitted: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let states = states.clone();
                    s.spawn(move || {
                        (0..8_000)
                            .filter(|_| states.try_acquire_cached("caller", &q, 1, 0).is_ok())
                            .count()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(admitted, 10_000, "exactly the limit, from both threads");
    }
}
