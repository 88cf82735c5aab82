//! Counting a request (`Metrics::request`) on one thread, and on two threads at once as the
//! gateway's two worker threads do: with per-thread shards the two should cost what one
//! does (no cache line moves between the cores).
//!
//! Run with: `cargo bench -p apim-gateway --bench metrics`
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apim_gateway::metrics::Metrics;
use criterion::{criterion_group, criterion_main, Criterion};

const API: Option<(&str, &str, &str)> = Some(("id1", "/pizza", "1.0.0"));

fn count(m: &Metrics) {
    m.request(black_box(API), 200, Duration::from_micros(300));
}

fn metrics(c: &mut Criterion) {
    let m = Arc::new(Metrics::new());
    c.bench_function("request counted, one thread", |b| b.iter(|| count(&m)));
    c.bench_function("request counted, two threads at once", |b| {
        b.iter_custom(|iters| {
            let other = {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..iters {
                        count(&m);
                    }
                })
            };
            let start = Instant::now();
            for _ in 0..iters {
                count(&m);
            }
            let took = start.elapsed();
            other.join().expect("counting thread");
            took
        })
    });
}

criterion_group!(benches, metrics);
criterion_main!(benches);
