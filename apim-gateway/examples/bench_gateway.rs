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

/// Runtime layout: by default the gateway's `worker_threads` mode with one worker per core
/// (`BENCH_THREADS` to choose): single-threaded runtimes with `SO_REUSEPORT` listeners and
/// their own backend connections, as `gateway.worker_threads` configures it in the gateway
/// profile. `BENCH_RUNTIME=multi` serves on one multi-threaded tokio runtime instead
/// (`TOKIO_WORKER_THREADS` workers), as with `worker_threads = 0`. Worker threads run under
/// the default `gateway.worker_scheduling` (`SCHED_BATCH`); `BENCH_SCHED=normal` leaves them
/// under the normal policy. HTTP/1.1 requests are read by the native server
/// (`gateway.http1_server` default); `BENCH_HTTP1=hyper` has hyper read them. The validator
/// (with its token cache), the throttle counters and the artifacts are shared in both.
/// The allocator a deployed gateway binary uses (decision 28 in docs/architecture.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let multi = std::env::var("BENCH_RUNTIME").as_deref() == Ok("multi");
    let workers = if multi {
        0
    } else {
        std::env::var("BENCH_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    };
    let data_dir = std::env::temp_dir().join(format!("apim-bench-{}", std::process::id()));
    let mut cfg = Config {
        data_dir: data_dir.clone(),
        bind_address: "127.0.0.1".into(),
        ..Config::default()
    };
    cfg.gateway.http_port = port;
    cfg.gateway.https_port = 0;
    cfg.gateway.ws_port = 0;
    cfg.gateway.wss_port = 0;
    cfg.gateway.max_connections = 4096;
    cfg.gateway.worker_threads = workers;
    if std::env::var("BENCH_SCHED").as_deref() == Ok("normal") {
        cfg.gateway.worker_scheduling = apim_core::config::WorkerScheduling::Normal;
    }
    if std::env::var("BENCH_HTTP1").as_deref() == Ok("hyper") {
        cfg.gateway.http1_server = apim_core::config::Http1Server::Hyper;
    }
    let gw = Arc::new(
        Gateway::builder()
            .config(cfg)
            .artifacts(artifacts)
            .validator(validator)
            .decider(decider)
            .build()?,
    );
    gw.readiness().set(true);

    let rt = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    } else {
        // the traffic runs on the workers; this runtime only waits for the signal
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    // BENCH_ADMIN=host:port serves /health and /metrics there (the gateway's own latency
    // histogram, to set beside wrk's)
    let admin = std::env::var("BENCH_ADMIN")
        .ok()
        .map(|a| a.parse::<std::net::SocketAddr>())
        .transpose()?;
    let served: Result<(), ApimError> = rt.block_on(async move {
        let (addrs, serve) = gw
            .bind(admin, apim_gateway::listener::shutdown_signal())
            .await?;
        let layout = if multi {
            "one multi-threaded runtime".to_owned()
        } else {
            format!("{workers} worker threads")
        };
        println!(
            "bench gateway ({layout}) on http://{}/bench/1.0.0/ -> {backend}",
            addrs.http[0]
        );
        serve.await;
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&data_dir);
    served?;
    Ok(())
}
