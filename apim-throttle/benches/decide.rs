//! ns per throttle decision: one key, 100,000 keys, and the full chain (block → API →
//! subscription with burst → application), with governor's keyed limiter in the same run.
//!
//! Run with: `cargo bench -p apim-throttle --bench decide`

#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "../tests/common/mod.rs"]
mod common;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use apim_throttle::{LocalThrottle, Quota, QuotaLimiter};
use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use serde_json::json;

const KEYS: usize = 100_000;

fn big_quota() -> Quota {
    // never denies within a run: the cost measured is the admit path
    Quota::requests(1 << 39, Duration::from_secs(3600))
}

fn governor_keyed() -> governor::DefaultKeyedRateLimiter<String> {
    governor::RateLimiter::keyed(governor::Quota::per_second(
        NonZeroU32::new(u32::MAX).unwrap_or(NonZeroU32::MIN),
    ))
}

fn single_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("single_key");
    let key = "app-1:/pizza:1.0".to_owned();
    let ours = QuotaLimiter::new(big_quota());
    g.bench_function("apim_window", |b| {
        b.iter(|| std::hint::black_box(ours.check(std::hint::black_box(&key))))
    });
    let gov = governor_keyed();
    g.bench_function("governor_keyed", |b| {
        b.iter(|| std::hint::black_box(gov.check_key(std::hint::black_box(&key))))
    });
    g.finish();
}

fn many_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("100k_keys");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("app-{i}:/pizza:1.0")).collect();
    let ours = QuotaLimiter::new(big_quota());
    let mut i = 0usize;
    g.bench_function("apim_window", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            std::hint::black_box(ours.check(&keys[i]))
        })
    });
    let gov = governor_keyed();
    let mut i = 0usize;
    g.bench_function("governor_keyed", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            std::hint::black_box(gov.check_key(&keys[i]))
        })
    });
    g.finish();
}

fn full_chain(c: &mut Criterion) {
    let big = |unit: &str| common::count_limit(1 << 30, unit);
    let a = common::artifacts(
        common::pizza_api(Some("apiP")),
        vec![
            common::advanced("apiP", big("min"), json!([])),
            common::subscription("Gold", big("min"), Some((1 << 30, "sec")), true),
            common::application("App", big("min")),
        ],
        vec![common::block(
            "b1",
            "IP",
            json!({"fixedIp": "203.0.113.9", "invert": false}),
        )],
    );
    let t = LocalThrottle::new(a.clone());
    let r = common::Req::new(&a, Method::GET, "/pizza/1.0/menu")
        .caller("app-1", "alice", "Gold", "App");
    assert_eq!(t.check(&r.ctx()), apim_core::throttle::Decision::Allow);
    let ctx = r.ctx();
    c.bench_function("full_chain/block_api_subscription_burst_application", |b| {
        b.iter(|| std::hint::black_box(t.check(std::hint::black_box(&ctx))))
    });
    // two threads deciding for the same caller at once (the gateway's worker threads): the
    // counters are shared, so exact counting moves their cache lines between the cores
    c.bench_function("full_chain/two_threads_same_caller", |b| {
        b.iter_custom(|iters| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    let r = common::Req::new(&a, Method::GET, "/pizza/1.0/menu")
                        .caller("app-1", "alice", "Gold", "App");
                    let ctx = r.ctx();
                    for _ in 0..iters {
                        std::hint::black_box(t.check(&ctx));
                    }
                });
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(t.check(&ctx));
                }
                start.elapsed()
            })
        })
    });
    let _ = Arc::strong_count(&a);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50);
    targets = single_key, many_keys, full_chain
}
criterion_main!(benches);
