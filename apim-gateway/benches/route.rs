//! Route lookup cost with 10 vs 10,000 deployed APIs (issue 6: within 1.5×).
//!
//! Run with: `cargo bench -p apim-gateway --bench route`
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;

use apim_core::artifacts::{ArtifactStore, GatewayData, InMemoryArtifacts};
use apim_core::event::GatewayDeployment;
use apim_core::lifecycle::LifecycleState;
use apim_core::model::Api;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;

fn store(n: usize) -> InMemoryArtifacts {
    let deployments = (0..n)
        .map(|i| {
            let mut api: Api = serde_json::from_value(serde_json::json!({
                "name": format!("api{i}"), "context": format!("/svc{i}/team"), "version": "1.0.0",
                "isDefaultVersion": i % 2 == 0,
                "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:9"}},
                "operations": [
                    {"verb": "GET", "target": "/menu"},
                    {"verb": "GET", "target": "/order/{id}"},
                    {"verb": "POST", "target": "/order"},
                    {"verb": "GET", "target": "/files/*"}
                ]
            }))
            .expect("valid API");
            api.id = format!("id{i}");
            api.life_cycle_status = LifecycleState::Published;
            GatewayDeployment {
                api,
                revision_id: "r1".into(),
                gateway_labels: vec!["Default".into()],
                vhost: None,
            }
        })
        .collect();
    let s = InMemoryArtifacts::new(vec!["Default".into()]);
    s.load(GatewayData {
        deployments,
        ..Default::default()
    });
    s
}

fn route(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    for n in [10usize, 10_000] {
        let s = store(n);
        let paths: Vec<String> = (0..10)
            .map(|i| format!("/svc{}/team/1.0.0/order/{i}", (i * 7919) % n))
            .collect();
        g.bench_function(format!("resolve_{n}_apis"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % paths.len();
                black_box(
                    s.resolve(&Method::GET, Some("localhost"), black_box(&paths[i]))
                        .is_ok(),
                )
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = route
}
criterion_main!(benches);
