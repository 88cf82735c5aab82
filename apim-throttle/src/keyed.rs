//! Per-key state in a sharded concurrent map, with expiry of idle keys.
//!
//! A lookup of an existing key takes one shard's read lock (an uncontended atomic add) and then
//! works on the key's atomics; only the first hit of a new key takes a shard write lock. Keys
//! whose state no longer matters (their window passed, their GCRA time is behind the clock) are
//! removed by [`KeyedStates::sweep`], which the deciders run at most every [`SWEEP_EVERY`], so
//! memory is bounded by the keys active within one window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use crate::clock::Nanos;
use crate::gcra::Gcra;
use crate::window::WindowCounter;

/// How often idle keys are swept (at most).
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// State that can tell whether it is still needed.
pub trait Expiring: Default + Send + Sync + 'static {
    /// Whether a fresh state would behave the same at `now`.
    fn is_idle(&self, now: Nanos) -> bool;
}

impl Expiring for WindowCounter {
    fn is_idle(&self, now: Nanos) -> bool {
        WindowCounter::is_idle(self, now)
    }
}

impl Expiring for Gcra {
    fn is_idle(&self, now: Nanos) -> bool {
        Gcra::is_idle(self, now)
    }
}

/// A map from throttle key to state.
#[derive(Debug)]
pub struct KeyedStates<S> {
    map: DashMap<Box<str>, S>,
}

impl<S: Expiring> Default for KeyedStates<S> {
    fn default() -> Self {
        KeyedStates {
            map: DashMap::new(),
        }
    }
}

impl<S: Expiring> KeyedStates<S> {
    /// Runs `f` on the state of `key`, creating it on first use.
    #[inline]
    pub fn with<R>(&self, key: &str, f: impl FnOnce(&S) -> R) -> R {
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
        self.map.retain(|_, s| !s.is_idle(now));
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
}
