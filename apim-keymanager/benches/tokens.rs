//! Key Manager benchmarks: tokens issued through the HTTP handler (ES256, client_credentials,
//! `tower::ServiceExt::oneshot` on the router over SQLite), JWT verification without cache,
//! and `JwtValidator` on a cache hit.
//!
//! Run with: `cargo bench -p apim-keymanager -- --measurement-time 3`

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::sync::Arc;

use apim_core::artifacts::{
    ArtifactStore, DeployedApi, GatewayData, InMemoryArtifacts, RouteMatch,
};
use apim_core::event::{Seq, SubscriptionChange};
use apim_core::model::{Api, Application, KeyMapping, KeyType, Subscription};
use apim_core::store::Store;
use apim_core::time::now_secs;
use apim_keymanager::jwt::Validation;
use apim_keymanager::{ClientRegistration, JwtValidator, KeyManager, KeyManagerSettings};
use axum::body::Body;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tower::ServiceExt;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("apim.db").display());
    let (km, id, secret) = rt.block_on(async {
        let store = Store::connect_url(&url, None, 5).await.expect("store");
        let km = KeyManager::new(store, KeyManagerSettings::new("http://km.bench"))
            .await
            .expect("km");
        let c = km
            .register_client(ClientRegistration::default(), "admin")
            .await
            .expect("client");
        (km, c.client.client_id, c.client_secret)
    });
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    );
    let router = km.router();

    let mut g = c.benchmark_group("keymanager");
    g.throughput(Throughput::Elements(1));
    g.bench_function("token_client_credentials_http", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = http::Request::post("/oauth2/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("authorization", &auth)
                    .body(Body::from("grant_type=client_credentials"))
                    .expect("request");
                let res = router.clone().oneshot(req).await.expect("response");
                assert_eq!(res.status(), 200);
            })
        })
    });

    let token = rt
        .block_on(km.issue_client_credentials_token(&id, &[], None))
        .expect("token")
        .access_token;
    let verifier = km.key_ring().verifier();
    let v = Validation::default();
    g.bench_function("jwt_verify_es256_uncached", |b| {
        b.iter(|| verifier.verify(&token, &v, now_secs()).expect("valid"))
    });

    let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    let validator = JwtValidator::new(km.jwks_source(), artifacts);
    rt.block_on(validator.validate_token(&token, None))
        .expect("valid");
    g.bench_function("jwt_validate_cache_hit", |b| {
        b.iter(|| {
            rt.block_on(validator.validate_token(&token, None))
                .expect("valid")
        })
    });
    // the gateway's worker threads ask the same validator at once, for a routed request of a
    // subscribed application: what a cached answer costs on one thread, and per call with two
    // threads asking for the same token
    let (artifacts, route) = subscribed(&id);
    let validator = Arc::new(JwtValidator::new(km.jwks_source(), artifacts));
    rt.block_on(validator.validate_token(&token, Some(&route)))
        .expect("valid");
    let route = Arc::new(route);
    let ask = |v: &JwtValidator, t: &str, r: &RouteMatch| {
        v.validate_cached(t, Some(r))
            .expect("cached")
            .expect("valid")
    };
    g.bench_function("jwt_cached_answer_one_thread", |b| {
        b.iter(|| ask(&validator, &token, &route))
    });
    g.bench_function("jwt_cached_answer_two_threads", |b| {
        b.iter_custom(|iters| {
            let other = {
                let (v, t, r) = (validator.clone(), token.clone(), route.clone());
                std::thread::spawn(move || {
                    for _ in 0..iters {
                        ask(&v, &t, &r);
                    }
                })
            };
            let start = std::time::Instant::now();
            for _ in 0..iters {
                ask(&validator, &token, &route);
            }
            let took = start.elapsed();
            other.join().expect("validating thread");
            took
        })
    });
    g.finish();
}

/// Artifacts where the application of `client_id` is subscribed to one API, and a route to it.
fn subscribed(client_id: &str) -> (Arc<InMemoryArtifacts>, RouteMatch) {
    let app: Application = serde_json::from_value(serde_json::json!({
        "applicationId": "app-1", "name": "Shop", "throttlingPolicy": "Unlimited", "owner": "admin"
    }))
    .expect("application");
    let mut api: Api = serde_json::from_value(serde_json::json!({
        "name": "Pizza", "context": "/pizza", "version": "1.0.0",
        "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:1"}},
        "operations": [{"target": "/menu", "verb": "GET"}]
    }))
    .expect("api");
    api.id = "api-1".into();
    let sub: Subscription = serde_json::from_value(serde_json::json!({
        "subscriptionId": "s1", "applicationId": "app-1", "apiId": "api-1",
        "throttlingPolicy": "Gold", "status": "UNBLOCKED"
    }))
    .expect("subscription");
    let a = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    a.load(GatewayData {
        seq: Seq(1),
        applications: vec![app],
        key_mappings: vec![KeyMapping {
            key_mapping_id: "m1".into(),
            application_id: "app-1".into(),
            key_type: KeyType::Production,
            consumer_key: client_id.into(),
            key_manager: "Resident Key Manager".into(),
        }],
        subscriptions: vec![SubscriptionChange {
            subscription: sub,
            api_context: "/pizza".into(),
            api_version: "1.0.0".into(),
        }],
        ..GatewayData::default()
    });
    let route = RouteMatch {
        api: Arc::new(DeployedApi::new(
            api,
            "r1".into(),
            None,
            vec!["Default".into()],
        )),
        operation: 0,
        resource_start: 0,
    };
    (a, route)
}

criterion_group!(benches, bench);
criterion_main!(benches);
