//! Key Manager benchmarks: tokens issued through the HTTP handler (ES256, client_credentials,
//! `tower::ServiceExt::oneshot` on the router over SQLite), JWT verification without cache,
//! and `JwtValidator` on a cache hit.
//!
//! Run with: `cargo bench -p apim-keymanager -- --measurement-time 3`

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::sync::Arc;

use apim_core::artifacts::InMemoryArtifacts;
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
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
