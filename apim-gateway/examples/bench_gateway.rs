//! Run with: `cargo run --release -p apim-gateway --example bench_gateway -- 18280 http://127.0.0.1:18080 /tmp/token`
//!
//! The gateway as `bench/load.sh` measures it: one API (`/bench/1.0.0/*`) in front of the given
//! backend, real ES256 JWT validation (apim-keymanager), the subscription check and
//! subscription-tier throttling (apim-throttle, a quota far above the load so nothing is
//! denied). Writes a valid access token to the given file, then serves on 127.0.0.1:<port>.

use std::sync::Arc;

use apim_core::artifacts::{ArtifactStore, GatewayData, InMemoryArtifacts};
use apim_core::auth::KeyValidator;
use apim_core::config::Config;
use apim_core::event::{GatewayDeployment, Policy, SubscriptionChange};
use apim_core::throttle::ThrottleDecider;
use apim_core::ApimError;
use apim_gateway::Gateway;
use apim_keymanager::jwks::{JwkSet, JwksSource};
use apim_keymanager::jwt::{encode, ApplicationClaim, Claims};
use apim_keymanager::keys::SigningKey;
use apim_keymanager::JwtValidator;
use apim_throttle::LocalThrottle;
use serde_json::json;

fn data(backend: &str) -> Result<GatewayData, ApimError> {
    let mut api: apim_core::model::Api = serde_json::from_value(json!({
        "name": "Bench", "context": "/bench", "version": "1.0.0", "policies": ["Bench"],
        "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": backend}},
        "operations": [{"verb": "GET", "target": "/*"}]
    }))?;
    api.id = "bench-api".into();
    api.life_cycle_status = apim_core::lifecycle::LifecycleState::Published;
    Ok(GatewayData {
        seq: apim_core::event::Seq(1),
        deployments: vec![GatewayDeployment {
            api,
            revision_id: "r1".into(),
            gateway_labels: vec!["Default".into()],
            vhost: None,
        }],
        applications: vec![serde_json::from_value(json!({
            "applicationId": "bench-app", "name": "bench", "throttlingPolicy": "Unlimited",
            "owner": "bench", "status": "APPROVED"
        }))?],
        subscriptions: vec![SubscriptionChange {
            subscription: serde_json::from_value(json!({
                "subscriptionId": "s1", "applicationId": "bench-app", "apiId": "bench-api",
                "throttlingPolicy": "Bench"
            }))?,
            api_context: "/bench".into(),
            api_version: "1.0.0".into(),
        }],
        policies: vec![serde_json::from_value::<Policy>(json!({
            "policyType": "SUBSCRIPTION",
            "policy": {"policyName": "Bench", "defaultLimit": {"type": "REQUESTCOUNTLIMIT",
                "requestCount": {"timeUnit": "min", "unitTime": 1, "requestCount": 1000000000u64}}}
        }))?],
        ..Default::default()
    })
}

/// Runtime layout: `BENCH_RUNTIME=multi` is one multi-threaded tokio runtime with one listener
/// (`TOKIO_WORKER_THREADS` workers); the default, `per-core`, is one current-thread runtime
/// per core (`BENCH_THREADS`, default the available parallelism), each with its own
/// `SO_REUSEPORT` listener and its own gateway service stack (so a request, its backend
/// connection and the pooled client stay on one thread, like nginx's worker processes). The
/// validator (with its token cache), the throttle counters and the artifacts are shared.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().unwrap_or_else(|| "18280".into()).parse()?;
    let backend = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18080".into());
    let token_out = args
        .next()
        .unwrap_or_else(|| "/tmp/apim-bench-token".into());

    let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    artifacts.load(data(&backend)?);
    let artifacts: Arc<dyn ArtifactStore> = artifacts;
    let (key, _pkcs8) = SigningKey::generate_es256("bench")?;
    let jwks = JwkSet {
        keys: vec![key.jwk()],
    };
    let now = apim_core::time::now_secs();
    let token = encode(
        &key,
        &Claims {
            iss: "bench".into(),
            sub: "bench".into(),
            client_id: Some("bench-client".into()),
            exp: now + 86_400,
            iat: now,
            jti: "bench-token".into(),
            keytype: Some("PRODUCTION".into()),
            application: Some(ApplicationClaim {
                id: "bench-app".into(),
                uuid: "bench-app".into(),
                name: "bench".into(),
                tier: "Unlimited".into(),
                owner: "bench".into(),
            }),
            ..Default::default()
        },
    )?;
    std::fs::write(&token_out, &token)?;

    let validator: Arc<dyn KeyValidator> = Arc::new(JwtValidator::new(
        JwksSource::fixed(&jwks),
        artifacts.clone(),
    ));
    let decider: Arc<dyn ThrottleDecider> = Arc::new(LocalThrottle::new(artifacts.clone()));
    let gateway = move || -> Result<Gateway, ApimError> {
        let mut cfg = Config::default();
        cfg.gateway.max_connections = 4096;
        let gw = Gateway::builder()
            .config(cfg)
            .artifacts(artifacts.clone())
            .validator(validator.clone())
            .decider(decider.clone())
            .build()?;
        gw.readiness().set(true);
        Ok(gw)
    };

    if std::env::var("BENCH_RUNTIME").as_deref() == Ok("multi") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return rt.block_on(async move {
            let gw = gateway()?;
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            println!("bench gateway (multi-thread runtime) on http://127.0.0.1:{port}/bench/1.0.0/ -> {backend}");
            gw.serve_on(l, None, apim_gateway::listener::shutdown_signal())
                .await;
            Ok(())
        });
    }

    let threads = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut handles = Vec::new();
    for i in 0..threads {
        // bind all listeners before any serves, so a failure shows up at start
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        let gw = gateway()?;
        handles.push(
            std::thread::Builder::new()
                .name(format!("gateway-{i}"))
                .spawn(move || -> std::io::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        let l = socket.listen(1024)?;
                        gw.serve_on(l, None, apim_gateway::listener::shutdown_signal())
                            .await;
                        Ok(())
                    })
                })?,
        );
    }
    println!("bench gateway ({threads} current-thread runtimes, SO_REUSEPORT) on http://127.0.0.1:{port}/bench/1.0.0/ -> {backend}");
    for h in handles {
        h.join().map_err(|_| "a gateway thread panicked")??;
    }
    Ok(())
}
