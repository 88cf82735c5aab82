//! Stand-alone keyed limiters for embedders (and the benchmark): a fixed-window
//! [`QuotaLimiter`] and a GCRA [`BurstLimiter`], each over any key string.

use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::gcra::{Gcra, GcraParams};
use crate::keyed::{KeyedStates, SweepSchedule};
use crate::window::{Quota, WindowCounter};

/// `limit` requests per window, per key.
///
/// ```
/// use std::time::Duration;
/// use apim_throttle::{ManualClock, QuotaLimiter, Quota};
///
/// let clock = ManualClock::at_day_start();
/// let limiter = QuotaLimiter::with_clock(Quota::requests(2, Duration::from_secs(60)), clock.clone());
/// assert!(limiter.check("alice").is_ok());
/// assert!(limiter.check("alice").is_ok());
/// assert_eq!(limiter.check("alice"), Err(Duration::from_secs(60)));
/// clock.advance(Duration::from_secs(60));
/// assert!(limiter.check("alice").is_ok());
/// ```
#[derive(Debug)]
pub struct QuotaLimiter<C = SystemClock> {
    quota: Quota,
    states: KeyedStates<WindowCounter>,
    sweep: SweepSchedule,
    clock: C,
}

impl QuotaLimiter<SystemClock> {
    /// A limiter on the system clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, SystemClock)
    }
}

impl<C: Clock> QuotaLimiter<C> {
    /// A limiter on the given clock.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        QuotaLimiter {
            quota,
            states: KeyedStates::default(),
            sweep: SweepSchedule::default(),
            clock,
        }
    }

    /// Counts one request for `key`; on refusal, the time until the window ends.
    #[inline]
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        if self.sweep.due(now) {
            self.states.sweep(now);
        }
        self.states
            .with(key, |c| c.try_acquire(&self.quota, 1, now))
            .map(|_| ())
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// `rate` requests per `period` with a burst of `rate`, per key (GCRA).
#[derive(Debug)]
pub struct BurstLimiter<C = SystemClock> {
    params: GcraParams,
    states: KeyedStates<Gcra>,
    sweep: SweepSchedule,
    clock: C,
}

impl<C: Clock> BurstLimiter<C> {
    /// A limiter; `None` if `rate` is 0.
    pub fn with_clock(rate: u64, period: Duration, clock: C) -> Option<Self> {
        Some(BurstLimiter {
            params: GcraParams::new(rate, period)?,
            states: KeyedStates::default(),
            sweep: SweepSchedule::default(),
            clock,
        })
    }

    /// Admits one request for `key`, or says when one would conform.
    #[inline]
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        if self.sweep.due(now) {
            self.states.sweep(now);
        }
        self.states.with(key, |g| g.try_acquire(&self.params, now))
    }
}
