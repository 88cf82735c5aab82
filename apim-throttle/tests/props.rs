//! Property tests: whatever the arrival pattern, one key never admits more than the limit in
//! an aligned window, nor more than twice the limit in any span of one window length (the
//! documented fixed-window bound); GCRA never admits more than `1 + (d + τ)/T` in a span `d`.

use std::time::Duration;

use apim_throttle::{BurstLimiter, Clock, ManualClock, Quota, QuotaLimiter};
use proptest::prelude::*;

fn steps() -> impl Strategy<Value = Vec<(u64, u8)>> {
    // (advance in ms, requests at that instant)
    proptest::collection::vec((0u64..1500, 0u8..8), 1..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn window_quota_never_exceeds_its_bound(limit in 1u64..20, window_s in 1u64..3, steps in steps()) {
        let clock = ManualClock::at_day_start();
        let w = Duration::from_secs(window_s).as_nanos() as u64;
        let l = QuotaLimiter::with_clock(Quota::requests(limit, Duration::from_secs(window_s)), clock.clone());
        let mut admitted = Vec::new();
        for (adv, n) in steps {
            clock.advance(Duration::from_millis(adv));
            for _ in 0..n {
                match l.check("k") {
                    Ok(()) => admitted.push(clock.now()),
                    Err(retry) => prop_assert!(retry <= Duration::from_nanos(w) && !retry.is_zero()),
                }
            }
        }
        for (i, t) in admitted.iter().enumerate() {
            let same_window = admitted.iter().filter(|x| *x / w == t / w).count() as u64;
            prop_assert!(same_window <= limit, "aligned window holds {same_window} > {limit}");
            let span = admitted[i..].iter().take_while(|x| **x < t + w).count() as u64;
            prop_assert!(span <= 2 * limit, "a span of one window holds {span} > 2·{limit}");
        }
    }

    #[test]
    fn gcra_never_exceeds_its_bound(rate in 1u64..10, steps in steps()) {
        let clock = ManualClock::at_day_start();
        let period = Duration::from_secs(1);
        let l = BurstLimiter::with_clock(rate, period, clock.clone()).unwrap();
        let t = (period.as_nanos() as u64).div_ceil(rate);
        let tau = t * (rate - 1);
        let mut admitted = Vec::new();
        for (adv, n) in steps {
            clock.advance(Duration::from_millis(adv));
            for _ in 0..n {
                if l.check("k").is_ok() {
                    admitted.push(clock.now());
                }
            }
        }
        let d = period.as_nanos() as u64;
        for (i, start) in admitted.iter().enumerate() {
            let span = admitted[i..].iter().take_while(|x| **x < start + d).count() as u64;
            prop_assert!(span <= 1 + (d + tau) / t, "{span} in one period at rate {rate}");
        }
        // and never more than `rate` at one instant
        for x in &admitted {
            prop_assert!(admitted.iter().filter(|y| *y == x).count() as u64 <= rate);
        }
    }
}
