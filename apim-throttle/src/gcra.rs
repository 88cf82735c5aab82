//! GCRA (generic cell rate algorithm) for burst control: one `AtomicU64` "theoretical arrival
//! time" per key, updated by compare-and-swap. `rate` requests per `period` with a burst of
//! `rate`: the first `rate` requests pass back to back, then one every `period / rate`.
//! A denial carries the exact time until the next request conforms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Nanos;

/// Burst parameters: emission interval `t` and tolerance `tau`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraParams {
    t: Nanos,
    tau: Nanos,
}

impl GcraParams {
    /// `rate` requests per `period` (rounded so that never more than `rate` pass in a burst);
    /// `None` when `rate` is 0 (no burst control).
    pub fn new(rate: u64, period: Duration) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let period = period.as_nanos() as u64;
        let t = period.div_ceil(rate).max(1);
        Some(GcraParams {
            t,
            tau: t.saturating_mul(rate - 1),
        })
    }
}

/// One key's GCRA state.
#[derive(Debug, Default)]
pub struct Gcra {
    tat: AtomicU64,
}

impl Gcra {
    /// Admits one request or says how long until one would conform.
    pub fn try_acquire(&self, p: &GcraParams, now: Nanos) -> Result<(), Duration> {
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            if base - now > p.tau {
                return Err(Duration::from_nanos(base - p.tau - now));
            }
            match self.tat.compare_exchange_weak(
                tat,
                base + p.t,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Gives back one admission (a later level denied the request).
    pub fn refund(&self, p: &GcraParams, now: Nanos) {
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                (tat > now).then(|| tat.saturating_sub(p.t).max(now))
            });
    }

    /// Whether the state no longer matters (a fresh key would behave the same).
    pub fn is_idle(&self, now: Nanos) -> bool {
        self.tat.load(Ordering::Acquire) <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_steady_rate_with_exact_retry() {
        let p = GcraParams::new(5, Duration::from_secs(1)).unwrap();
        let g = Gcra::default();
        let t0 = 10_000 * MS;
        for _ in 0..5 {
            assert_eq!(g.try_acquire(&p, t0), Ok(()));
        }
        assert_eq!(g.try_acquire(&p, t0), Err(Duration::from_millis(200)));
        assert_eq!(
            g.try_acquire(&p, t0 + 150 * MS),
            Err(Duration::from_millis(50))
        );
        assert_eq!(g.try_acquire(&p, t0 + 200 * MS), Ok(()));
        assert!(g.try_acquire(&p, t0 + 200 * MS).is_err());
        g.refund(&p, t0 + 200 * MS);
        assert_eq!(g.try_acquire(&p, t0 + 200 * MS), Ok(()));
        assert!(!g.is_idle(t0 + 200 * MS));
        assert!(g.is_idle(t0 + 2000 * MS));
    }

    #[test]
    fn per_minute_rate() {
        let p = GcraParams::new(2, Duration::from_secs(60)).unwrap();
        let g = Gcra::default();
        assert!(g.try_acquire(&p, 0).is_ok());
        assert!(g.try_acquire(&p, 0).is_ok());
        assert_eq!(g.try_acquire(&p, 0), Err(Duration::from_secs(30)));
        assert!(GcraParams::new(0, Duration::from_secs(1)).is_none());
    }
}
