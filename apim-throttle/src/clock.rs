//! Time, injected: [`Clock`] with the real [`SystemClock`] and a [`ManualClock`] for tests.
//!
//! Quota windows are aligned to the Unix epoch so that every gateway and Traffic Manager agrees
//! on which window a hit belongs to; a clock therefore reports nanoseconds since the epoch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub type Nanos = u64;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in nanoseconds since the Unix epoch.
    fn now(&self) -> Nanos;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

/// The wall clock (`CLOCK_REALTIME`, a vDSO call on Linux).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }
}

/// A clock that moves only when told to. Cloning shares the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `since_epoch`.
    pub fn new(since_epoch: Duration) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(since_epoch.as_nanos() as u64)),
        }
    }

    /// A clock at a fixed, realistic instant: the start of a day (so every window of a second,
    /// minute, hour or day starts exactly there).
    pub fn at_day_start() -> Self {
        // 2024-01-01T00:00:00Z
        Self::new(Duration::from_secs(1_704_067_200))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Sets the clock (may move it back, to test clock steps).
    pub fn set(&self, since_epoch: Duration) {
        self.now
            .store(since_epoch.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_day_start();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.clone().advance(Duration::from_millis(1500));
        assert_eq!(c.now() - t0, 1_500_000_000);
        let real = SystemClock.now();
        assert!(real > 1_704_067_200 * 1_000_000_000);
    }
}
