//! [`LocalThrottle`]: every decision in this process, on atomics.

use std::sync::Arc;
use std::time::Duration;

use apim_core::artifacts::ArtifactStore;
use apim_core::throttle::{Decision, Outcome, ThrottleContext, ThrottleDecider};

use crate::chain::{Chain, QuotaBackend, QuotaLevel};
use crate::clock::{Clock, Nanos, SystemClock};
use crate::keyed::KeyedStates;
use crate::window::{Quota, WindowCounter};

/// Quota counters held in this process only.
#[derive(Debug, Default)]
pub(crate) struct LocalQuotas {
    levels: [KeyedStates<WindowCounter>; 5],
}

impl QuotaBackend for LocalQuotas {
    #[inline]
    fn acquire(
        &self,
        level: QuotaLevel,
        key: &str,
        q: &Quota,
        n: u64,
        now: Nanos,
    ) -> Result<(), Duration> {
        self.levels[level as usize]
            .try_acquire_cached(key, q, n, now)
            .map(|_| ())
    }

    fn add(&self, level: QuotaLevel, key: &str, q: &Quota, n: u64, now: Nanos) {
        self.levels[level as usize].with(key, |c| c.add(q, n, now));
    }

    fn refund(&self, level: QuotaLevel, key: &str, q: &Quota, n: u64, now: Nanos) {
        self.levels[level as usize].with_existing(key, |c| c.refund(q, n, now));
    }

    fn sweep(&self, now: Nanos) {
        for l in &self.levels {
            l.sweep(now);
        }
    }

    fn len(&self) -> usize {
        self.levels.iter().map(KeyedStates::len).sum()
    }
}

/// A [`ThrottleDecider`] for one process: policies and block conditions come from an
/// [`ArtifactStore`], counts live in atomics.
///
/// Check order: block conditions ([`Decision::Blocked`]) → API / resource advanced policy →
/// subscription (burst, then quota; `stopOnQuotaReach = false` lets traffic through) →
/// application → custom policies. A deny names its level and carries the exact time until the
/// quota's window ends (or, for burst, until the next request conforms).
///
/// ```
/// use std::sync::Arc;
/// use apim_core::artifacts::InMemoryArtifacts;
/// use apim_core::throttle::ThrottleLayer;
/// use apim_throttle::LocalThrottle;
///
/// let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
/// let layer = ThrottleLayer::new(Arc::new(LocalThrottle::new(artifacts)));
/// # let _ = layer;
/// ```
pub struct LocalThrottle {
    chain: Chain<LocalQuotas>,
}

impl std::fmt::Debug for LocalThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalThrottle")
            .field("keys", &self.chain.tracked_keys())
            .finish_non_exhaustive()
    }
}

impl LocalThrottle {
    /// A decider on the system clock.
    pub fn new(artifacts: Arc<dyn ArtifactStore>) -> Self {
        Self::with_clock(artifacts, Arc::new(SystemClock))
    }

    /// A decider on the given clock (tests use [`crate::ManualClock`]).
    pub fn with_clock(artifacts: Arc<dyn ArtifactStore>, clock: Arc<dyn Clock>) -> Self {
        LocalThrottle {
            chain: Chain::new(artifacts, clock, LocalQuotas::default()),
        }
    }

    /// The decision, synchronously (what [`ThrottleDecider::decide`] returns).
    pub fn check(&self, ctx: &ThrottleContext<'_>) -> Decision {
        self.chain.decide(ctx)
    }

    /// Requests admitted over a subscription quota because their tier does not stop on quota
    /// reach.
    pub fn over_quota_admitted(&self) -> u64 {
        self.chain.over_quota_admitted()
    }

    /// Keys with live state (bounded: idle keys are swept).
    pub fn tracked_keys(&self) -> usize {
        self.chain.tracked_keys()
    }
}

#[async_trait::async_trait]
impl ThrottleDecider for LocalThrottle {
    async fn decide(&self, ctx: &ThrottleContext<'_>) -> Decision {
        self.chain.decide(ctx)
    }

    fn decide_now(&self, ctx: &ThrottleContext<'_>) -> Option<Decision> {
        Some(self.chain.decide(ctx))
    }

    fn record(&self, ctx: &ThrottleContext<'_>, outcome: &Outcome) {
        self.chain.record(ctx, outcome)
    }
}
