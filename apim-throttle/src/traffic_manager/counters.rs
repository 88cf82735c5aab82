//! Where a Traffic Manager keeps global counts: the [`CounterStore`] trait and the in-memory
//! [`MemoryCounters`] (one Traffic Manager). [`super::RedisCounters`] shares them between
//! several.

use std::sync::atomic::{AtomicU64, Ordering};

use apim_core::ApimError;
use dashmap::DashMap;

use super::wire::{CountEntry, CountReply, ThrottledKey, MAX_THROTTLED};

/// How long a window's counter outlives the window (late reports still land in it).
pub const GRACE_MS: u64 = 60_000;

/// Global counters per key per window.
#[async_trait::async_trait]
pub trait CounterStore: Send + Sync + 'static {
    /// Adds a batch atomically per entry; returns the totals and the keys over quota.
    /// `now_ms` (the Traffic Manager's clock) only drives expiry.
    async fn add(&self, counts: &[CountEntry], now_ms: u64) -> Result<CountReply, ApimError>;
}

#[derive(Debug)]
struct Counter {
    count: AtomicU64,
    expires_ms: AtomicU64,
}

/// Counters in this process.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    counters: DashMap<(String, u64), Counter>,
    throttled: DashMap<ThrottledKey, u64>,
    next_sweep_ms: AtomicU64,
}

impl MemoryCounters {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    fn sweep(&self, now_ms: u64) {
        let next = self.next_sweep_ms.load(Ordering::Relaxed);
        if now_ms < next
            || self
                .next_sweep_ms
                .compare_exchange(next, now_ms + 10_000, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.counters
            .retain(|_, c| c.expires_ms.load(Ordering::Relaxed) > now_ms);
        self.throttled.retain(|_, until| *until > now_ms);
    }
}

#[async_trait::async_trait]
impl CounterStore for MemoryCounters {
    async fn add(&self, counts: &[CountEntry], now_ms: u64) -> Result<CountReply, ApimError> {
        self.sweep(now_ms);
        let mut totals = Vec::with_capacity(counts.len());
        for e in counts {
            let expires = now_ms + e.window_ms + GRACE_MS;
            let total = {
                let c = self
                    .counters
                    .entry((e.key.clone(), e.window_start_ms))
                    .or_insert_with(|| Counter {
                        count: AtomicU64::new(0),
                        expires_ms: AtomicU64::new(expires),
                    });
                c.expires_ms.store(expires, Ordering::Relaxed);
                c.count.fetch_add(e.count, Ordering::AcqRel) + e.count
            };
            if total >= e.limit {
                self.throttled.insert(
                    ThrottledKey {
                        key: e.key.clone(),
                        window_start_ms: e.window_start_ms,
                        window_ms: e.window_ms,
                        limit: e.limit,
                    },
                    e.window_start_ms + e.window_ms,
                );
            }
            totals.push(total);
        }
        let throttled = self
            .throttled
            .iter()
            .filter(|t| *t.value() > now_ms)
            .take(MAX_THROTTLED)
            .map(|t| t.key().clone())
            .collect();
        Ok(CountReply { totals, throttled })
    }
}
