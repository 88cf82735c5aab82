//! Fixed-window quota counters: one `AtomicU64` per key, updated by compare-and-swap.
//!
//! Windows are aligned to the Unix epoch (`[k·W, (k+1)·W)`), so gateways and Traffic Managers
//! agree on window boundaries without talking. The state packs the low 24 bits of the window
//! index with a 40-bit count (up to ~1.1·10¹² requests or bytes per window); a hit in a new
//! window starts the count again.
//!
//! **Error bound** (see `docs/throttling.md`): within one aligned window a key never admits more
//! than the limit (exactly). Over an arbitrary span of length `W` that straddles a boundary it
//! may admit up to `2·limit` (the end of one window plus the start of the next). Burst control
//! (GCRA, [`crate::gcra`]) is what smooths that for subscription tiers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Nanos;

const COUNT_BITS: u32 = 40;
/// Largest count (one below all ones, so that no count packs to [`RETIRED`]).
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 2;
/// The count bits of a packed state.
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << 24) - 1;
/// The state of a counter the sweep removed from its map: a holder of a handle to it
/// (the per-thread handle cache of [`crate::keyed`]) must look the key up again.
pub(crate) const RETIRED: u64 = u64::MAX;

/// How a quota counts: requests (admit while `used + n ≤ limit`) or bytes (admit while
/// `used < limit`, then count what the request carries: its size is known only afterwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Requests.
    Requests,
    /// Bytes.
    Bandwidth,
}

/// A quota: an amount per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests or bytes.
    pub kind: QuotaKind,
    /// Amount per window.
    pub limit: u64,
    /// Window length in nanoseconds (≥ 1).
    pub window: Nanos,
}

impl Quota {
    /// A request-count quota.
    pub fn requests(limit: u64, window: Duration) -> Self {
        Quota {
            kind: QuotaKind::Requests,
            limit,
            window: (window.as_nanos() as u64).max(1),
        }
    }

    /// The quota of a policy limit; `None` when it is unlimited.
    pub fn of(limit: &apim_core::model::ThrottleLimit) -> Option<Self> {
        if limit.is_unlimited() {
            return None;
        }
        Some(Quota {
            kind: if limit.is_bandwidth() {
                QuotaKind::Bandwidth
            } else {
                QuotaKind::Requests
            },
            limit: limit.amount().min(COUNT_MAX),
            window: (limit.window().as_nanos() as u64).max(1),
        })
    }

    /// Index of the window containing `now`.
    pub fn index(&self, now: Nanos) -> u64 {
        now / self.window
    }

    /// Time from `now` until the window containing it ends.
    pub fn until_window_end(&self, now: Nanos) -> Duration {
        Duration::from_nanos(self.window - now % self.window)
    }

    /// Whether a key that has used `used` may take `n` more.
    pub fn admits(&self, used: u64, n: u64) -> bool {
        match self.kind {
            QuotaKind::Requests => used.saturating_add(n) <= self.limit,
            QuotaKind::Bandwidth => used < self.limit,
        }
    }
}

/// Packs a window tag and a count.
pub(crate) fn pack(index: u64, count: u64) -> u64 {
    ((index & TAG_MASK) << COUNT_BITS) | count.min(COUNT_MAX)
}

/// The count of a packed value if it belongs to window `index`, else 0.
pub(crate) fn count_in(packed: u64, index: u64) -> u64 {
    if packed >> COUNT_BITS == index & TAG_MASK {
        packed & COUNT_MASK
    } else {
        0
    }
}

/// The window index (≤ `current`) whose tag a packed value carries.
pub(crate) fn index_of(packed: u64, current: u64) -> u64 {
    let tag = packed >> COUNT_BITS;
    current - (current.wrapping_sub(tag) & TAG_MASK)
}

/// One key's count in the current window.
#[derive(Debug, Default)]
pub struct WindowCounter {
    state: AtomicU64,
    /// Window length last used, for expiry.
    window: AtomicU64,
}

impl WindowCounter {
    /// Takes `n` if the quota admits it; otherwise says how long until the window ends.
    pub fn try_acquire(&self, q: &Quota, n: u64, now: Nanos) -> Result<u64, Duration> {
        // a counter reached through its map is never retired: the sweep retires and removes
        // under the map's write lock, the lookup holds its read lock
        self.try_acquire_live(q, n, now).unwrap_or(Ok(0))
    }

    /// [`try_acquire`](Self::try_acquire) on a counter held outside its map: `None` when the
    /// sweep retired it (nothing was counted; look the key up again).
    pub(crate) fn try_acquire_live(
        &self,
        q: &Quota,
        n: u64,
        now: Nanos,
    ) -> Option<Result<u64, Duration>> {
        let index = q.index(now);
        if self.window.load(Ordering::Relaxed) != q.window {
            self.window.store(q.window, Ordering::Relaxed);
        }
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur == RETIRED {
                return None;
            }
            let used = count_in(cur, index);
            if !q.admits(used, n) {
                return Some(Err(q.until_window_end(now)));
            }
            let next = pack(index, used.saturating_add(n));
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Ok(used + n)),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Adds `n` without a check (bytes of a response already sent).
    pub fn add(&self, q: &Quota, n: u64, now: Nanos) {
        let index = q.index(now);
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(pack(index, count_in(cur, index).saturating_add(n)))
            });
    }

    /// Gives back `n` taken in the current window (a later level denied the request).
    pub fn refund(&self, q: &Quota, n: u64, now: Nanos) {
        let index = q.index(now);
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let used = count_in(cur, index);
                (used > 0).then(|| pack(index, used.saturating_sub(n)))
            });
    }

    /// Used amount in the window containing `now`.
    pub fn used(&self, q: &Quota, now: Nanos) -> u64 {
        count_in(self.state.load(Ordering::Acquire), q.index(now))
    }

    /// Whether the count belongs to a past window (the key can be forgotten).
    pub fn is_idle(&self, now: Nanos) -> bool {
        let w = self.window.load(Ordering::Relaxed).max(1);
        count_in(self.state.load(Ordering::Acquire), now / w) == 0
    }

    /// Marks an idle counter retired, atomically with the check: a count that lands first
    /// keeps it (`false`), and a handle that comes after finds it retired.
    pub(crate) fn retire_if_idle(&self, now: Nanos) -> bool {
        let w = self.window.load(Ordering::Relaxed).max(1);
        let cur = self.state.load(Ordering::Acquire);
        cur == RETIRED
            || (count_in(cur, now / w) == 0
                && self
                    .state
                    .compare_exchange(cur, RETIRED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn admits_limit_per_window_then_says_until_end() {
        let q = Quota::requests(3, Duration::from_secs(60));
        let c = WindowCounter::default();
        let t0 = 1_000 * 60 * S + 10 * S; // 10 s into a window
        for i in 1..=3 {
            assert_eq!(c.try_acquire(&q, 1, t0), Ok(i));
        }
        assert_eq!(c.try_acquire(&q, 1, t0), Err(Duration::from_secs(50)));
        assert_eq!(
            c.try_acquire(&q, 1, t0 + 49 * S + 999_999_999),
            Err(Duration::from_nanos(1))
        );
        assert_eq!(c.try_acquire(&q, 1, t0 + 50 * S), Ok(1));
    }

    #[test]
    fn refund_and_bandwidth() {
        let q = Quota {
            kind: QuotaKind::Bandwidth,
            limit: 1000,
            window: S,
        };
        let c = WindowCounter::default();
        assert_eq!(c.try_acquire(&q, 900, 0), Ok(900));
        // under the limit: a big request still passes, and is counted
        assert_eq!(c.try_acquire(&q, 500, 0), Ok(1400));
        assert!(c.try_acquire(&q, 1, 0).is_err());
        c.refund(&q, 500, 0);
        assert_eq!(c.used(&q, 0), 900);
        c.add(&q, 50, 0);
        assert_eq!(c.used(&q, 0), 950);
        assert!(!c.is_idle(0));
        assert!(c.is_idle(S));
    }

    #[test]
    fn a_retired_counter_counts_nothing() {
        let q = Quota::requests(10, Duration::from_secs(1));
        let c = WindowCounter::default();
        assert_eq!(c.try_acquire_live(&q, 1, 0), Some(Ok(1)));
        assert!(
            !c.retire_if_idle(500_000_000),
            "counted in this window: kept"
        );
        assert_eq!(c.try_acquire_live(&q, 1, 500_000_000), Some(Ok(2)));
        assert!(c.retire_if_idle(S), "window passed: retired");
        assert_eq!(c.try_acquire_live(&q, 1, S), None);
        assert!(c.retire_if_idle(S), "stays retired");
        // the largest count never packs to the retired state
        assert_ne!(pack(TAG_MASK, u64::MAX), RETIRED);
    }

    #[test]
    fn tags_round_trip() {
        let p = pack(0x1_000_005, 7);
        assert_eq!(count_in(p, 0x1_000_005), 7);
        assert_eq!(count_in(p, 0x1_000_006), 0);
        assert_eq!(index_of(p, 0x1_000_007), 0x1_000_005);
    }
}
