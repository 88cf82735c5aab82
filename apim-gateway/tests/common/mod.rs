//! Fixtures: a counting backend, test validator and decider, APIs, a running gateway, and a
//! raw-TCP client.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apim_core::artifacts::{ArtifactStore, GatewayData, InMemoryArtifacts};
use apim_core::auth::{AuthContext, KeyValidator, RequestMeta};
use apim_core::config::Config;
use apim_core::event::GatewayDeployment;
use apim_core::lifecycle::LifecycleState;
use apim_core::model::{Api, KeyType};
use apim_core::throttle::{Decision, ThrottleContext, ThrottleDecider};
use apim_core::{ApimError, ThrottleLevel};
use apim_gateway::Gateway;
use axum::body::Body;
use axum::extract::Request;
use axum::response::IntoResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that counts calls and echoes what it got as JSON.
#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Backend {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn echo(hits: Arc<AtomicUsize>, req: Request) -> axum::response::Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    if parts.uri.path().ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
        .collect();
    axum::Json(serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}

/// Starts the echo backend on 127.0.0.1:0.
pub async fn backend() -> Backend {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move |req: Request<Body>| echo(h.clone(), req));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    Backend { addr, hits }
}

/// A closed port (bound, then dropped).
pub async fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    format!("http://{a}")
}

/// `Bearer good` → app1 (production), `Bearer sandbox` → app1 (sandbox), `Bearer unsub` →
/// not subscribed, other → invalid, none → missing.
pub struct TestValidator;

#[async_trait::async_trait]
impl KeyValidator for TestValidator {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        let Some(v) = req.headers.get("authorization") else {
            return Err(ApimError::MissingCredentials(
                "no Authorization header".into(),
            ));
        };
        match v.to_str().unwrap_or("") {
            "Bearer good" => Ok(Arc::new(AuthContext::for_application("app1", "alice"))),
            "Bearer sandbox" => {
                let mut c = AuthContext::for_application("app1", "alice");
                c.key_type = KeyType::Sandbox;
                Ok(Arc::new(c))
            }
            "Bearer unsub" => Err(ApimError::ResourceForbidden(
                "application app2 is not subscribed to the API".into(),
            )),
            _ => Err(ApimError::InvalidCredentials("unknown token".into())),
        }
    }
}

/// Denies requests with `x-throttle: yes`.
pub struct TestDecider;

#[async_trait::async_trait]
impl ThrottleDecider for TestDecider {
    async fn decide(&self, ctx: &ThrottleContext<'_>) -> Decision {
        if ctx.headers.contains_key("x-throttle") {
            Decision::Deny {
                level: ThrottleLevel::Subscription,
                retry_after: Duration::from_secs(2),
            }
        } else {
            Decision::Allow
        }
    }
}

/// An API at `context`/`version` with `GET|POST /*` and the given endpoint config.
pub fn api(id: &str, context: &str, ec: serde_json::Value) -> Api {
    let mut a: Api = serde_json::from_value(serde_json::json!({
        "name": id, "context": context, "version": "1.0.0",
        "endpointConfig": ec,
        "operations": [
            {"verb": "GET", "target": "/*"},
            {"verb": "POST", "target": "/*"},
            {"verb": "GET", "target": "/open", "authType": "None"}
        ]
    }))
    .unwrap();
    a.id = id.into();
    a.life_cycle_status = LifecycleState::Published;
    a
}

pub fn http_ep(url: &str) -> serde_json::Value {
    serde_json::json!({"endpoint_type": "http", "production_endpoints": {"url": url}})
}

pub fn deployment(api: Api) -> GatewayDeployment {
    GatewayDeployment {
        api,
        revision_id: "r1".into(),
        gateway_labels: vec!["Default".into()],
        vhost: None,
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub done: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub fn test_config() -> Config {
    let mut c = Config::default();
    c.gateway.request_timeout_ms = 5_000;
    c.gateway.connect_timeout_ms = 1_000;
    c.gateway.max_header_bytes = 8192;
    c
}

/// A gateway serving `apis` with the test validator and decider (not listening yet).
pub fn build_gateway(apis: Vec<Api>, config: Config) -> Arc<Gateway> {
    build_gateway_with(apis, config, Arc::new(TestDecider))
}

/// A gateway serving `apis` with the test validator and `decider` (not listening yet).
pub fn build_gateway_with(
    apis: Vec<Api>,
    config: Config,
    decider: Arc<dyn ThrottleDecider>,
) -> Arc<Gateway> {
    let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    artifacts.load(GatewayData {
        deployments: apis.into_iter().map(deployment).collect(),
        ..Default::default()
    });
    Arc::new(
        Gateway::builder()
            .config(config)
            .artifacts(artifacts)
            .validator(Arc::new(TestValidator))
            .decider(decider)
            .endpoint_suspension(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
}

/// A gateway started with `Gateway::bind` on ephemeral ports (all four traffic ports, data dir
/// `data` for the development certificate), as the profiles start it.
pub struct Bound {
    pub addrs: apim_gateway::Addresses,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub done: tokio::task::JoinHandle<()>,
}

/// Binds a gateway serving `apis` with `config` on ephemeral ports under `data`.
pub async fn bind_gateway(apis: Vec<Api>, mut config: Config, data: &std::path::Path) -> Bound {
    config.data_dir = data.to_path_buf();
    config.bind_address = "127.0.0.1".into();
    config.port_offset = 0;
    config.gateway.http_port = 0;
    config.gateway.https_port = 0;
    config.gateway.ws_port = 0;
    config.gateway.wss_port = 0;
    let gw = build_gateway(apis, config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addrs, serve) = gw
        .bind(None, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    Bound {
        addrs,
        stop,
        done: tokio::spawn(serve),
    }
}

/// Starts a gateway on 127.0.0.1:0 serving `apis`.
pub async fn gateway(apis: Vec<Api>, config: Config) -> Running {
    serve(build_gateway(apis, config)).await
}

/// Starts `gw` on 127.0.0.1:0.
pub async fn serve(gw: Arc<Gateway>) -> Running {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let g = gw.clone();
    let done = tokio::spawn(async move {
        g.serve_on(l, None, async {
            let _ = rx.await;
        })
        .await
    });
    Running {
        addr,
        gateway: gw,
        stop,
        done,
    }
}

/// Sends raw bytes and returns what came back until the server closed or 6 s passed.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Status code of a raw response.
pub fn status_of(raw: &str) -> u16 {
    raw.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// WSO2 error code in a raw response's JSON body.
pub fn code_of(raw: &str) -> Option<u64> {
    let body = raw.split("\r\n\r\n").nth(1)?;
    serde_json::from_str::<serde_json::Value>(body).ok()?["code"].as_u64()
}

/// A simple HTTP/1.1 client request over raw TCP with `Connection: close`.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes()).await
}

/// The JSON body of a raw response.
pub fn json_of(raw: &str) -> serde_json::Value {
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}
