//! The proxy path through real sockets: headers, endpoints, key types, CORS, backend JWT,
//! HTTP/2, TLS, WebSocket, metrics/health and graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn forwards_with_rewritten_headers() {
    let b = backend().await;
    let gw = gateway(
        vec![api(
            "pizza",
            "/pizza",
            http_ep(&format!("{}/base/", b.url())),
        )],
        test_config(),
    )
    .await;
    let r = get(
        gw.addr,
        "/pizza/1.0.0/menu/7?size=l&x=%20",
        &[
            ("authorization", "Bearer good"),
            ("apikey", "secret"),
            ("x-request-id", "req-42"),
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("x-keep", "kept"),
        ],
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(
        r.to_ascii_lowercase().contains("x-request-id: req-42"),
        "{r}"
    );
    let seen = json_of(&r);
    assert_eq!(seen["path"], "/base/menu/7");
    assert_eq!(seen["query"], "size=l&x=%20");
    let h = &seen["headers"];
    assert!(h.get("authorization").is_none(), "{h}");
    assert!(h.get("apikey").is_none(), "{h}");
    assert!(h.get("x-hop").is_none(), "{h}");
    assert_eq!(h["x-keep"], "kept");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "localhost");
    assert_eq!(h["x-request-id"], "req-42");
    assert_eq!(h["host"], b.addr.to_string());
    assert!(h.get("x-jwt-assertion").is_none());

    // generated request id when none is sent; open resource needs no credential
    let r = get(gw.addr, "/pizza/1.0.0/open", &[]).await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(r.to_ascii_lowercase().contains("x-request-id: "), "{r}");
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn streams_request_bodies() {
    let b = backend().await;
    let gw = gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        test_config(),
    )
    .await;
    let body = "y".repeat(300_000);
    let req = format!(
        "POST /pizza/1.0.0/order HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let r = raw(gw.addr, req.as_bytes()).await;
    assert_eq!(status_of(&r), 200, "{}", &r[..200.min(r.len())]);
    assert_eq!(json_of(&r)["body"].as_str().map(str::len), Some(300_000));
}

#[tokio::test]
async fn sandbox_keys_use_sandbox_endpoints() {
    let prod = backend().await;
    let sand = backend().await;
    let both = api(
        "both",
        "/both",
        serde_json::json!({"endpoint_type": "http",
            "production_endpoints": {"url": prod.url()}, "sandbox_endpoints": {"url": sand.url()}}),
    );
    let gw = gateway(
        vec![both, api("prodonly", "/prodonly", http_ep(&prod.url()))],
        test_config(),
    )
    .await;
    assert_eq!(
        status_of(
            &get(
                gw.addr,
                "/both/1.0.0/x",
                &[("authorization", "Bearer sandbox")]
            )
            .await
        ),
        200
    );
    assert_eq!((prod.hits(), sand.hits()), (0, 1));
    assert_eq!(
        status_of(
            &get(
                gw.addr,
                "/both/1.0.0/x",
                &[("authorization", "Bearer good")]
            )
            .await
        ),
        200
    );
    assert_eq!((prod.hits(), sand.hits()), (1, 1));
    let r = get(
        gw.addr,
        "/prodonly/1.0.0/x",
        &[("authorization", "Bearer sandbox")],
    )
    .await;
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(
        json_of(&r)["description"]
            .as_str()
            .unwrap_or("")
            .contains("no sandbox endpoint"),
        "{r}"
    );
    assert_eq!(prod.hits(), 1);
}

#[tokio::test]
async fn load_balance_round_robin_and_passive_health() {
    let a = backend().await;
    let b = backend().await;
    let lb = api(
        "lb",
        "/lb",
        serde_json::json!({"endpoint_type": "load_balance",
            "production_endpoints": [{"url": a.url()}, {"url": b.url()}]}),
    );
    let dead = dead_url().await;
    let half = api(
        "half",
        "/half",
        serde_json::json!({"endpoint_type": "load_balance",
            "production_endpoints": [{"url": dead}, {"url": a.url()}]}),
    );
    let fo = api(
        "fo",
        "/fo",
        serde_json::json!({"endpoint_type": "failover",
            "production_endpoints": {"url": dead_url().await},
            "production_failovers": [{"url": b.url()}]}),
    );
    let gw = gateway(vec![lb, half, fo], test_config()).await;
    let auth = [("authorization", "Bearer good")];
    for _ in 0..4 {
        assert_eq!(status_of(&get(gw.addr, "/lb/1.0.0/x", &auth).await), 200);
    }
    assert_eq!((a.hits(), b.hits()), (2, 2));
    // a dead member: every call still succeeds (retried on the next), and it is suspended
    for _ in 0..4 {
        assert_eq!(status_of(&get(gw.addr, "/half/1.0.0/x", &auth).await), 200);
    }
    assert_eq!(a.hits(), 6);
    let metrics = gw.gateway.metrics().render(0, 0);
    assert!(
        metrics.contains("apim_gateway_upstream_errors_total{kind=\"connect\"} 1"),
        "{metrics}"
    );
    // failover
    assert_eq!(status_of(&get(gw.addr, "/fo/1.0.0/x", &auth).await), 200);
    assert_eq!(b.hits(), 3);
}

#[tokio::test]
async fn cors_preflight_without_options_resource() {
    let b = backend().await;
    let mut a = api("c", "/cors", http_ep(&b.url()));
    a.cors_configuration = serde_json::from_value(serde_json::json!({
        "corsConfigurationEnabled": true,
        "accessControlAllowOrigins": ["https://app.example.com"],
        "accessControlAllowHeaders": ["authorization", "content-type"],
        "accessControlAllowMethods": ["GET", "POST"],
        "accessControlAllowCredentials": true
    }))
    .unwrap();
    let gw = gateway(vec![a], test_config()).await;
    let r = raw(
        gw.addr,
        b"OPTIONS /cors/1.0.0/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: POST\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&r), 204, "{r}");
    let l = r.to_ascii_lowercase();
    assert!(
        l.contains("access-control-allow-origin: https://app.example.com"),
        "{r}"
    );
    assert!(l.contains("access-control-allow-methods: get, post"), "{r}");
    assert!(l.contains("access-control-allow-credentials: true"), "{r}");
    let r = get(
        gw.addr,
        "/cors/1.0.0/x",
        &[
            ("authorization", "Bearer good"),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    assert!(
        r.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://app.example.com"),
        "{r}"
    );
    let r = get(
        gw.addr,
        "/cors/1.0.0/x",
        &[
            ("authorization", "Bearer good"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert!(
        !r.to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{r}"
    );
    assert_eq!(b.hits(), 2, "the preflight never reached the backend");
}

#[tokio::test]
async fn backend_jwt_when_enabled() {
    let b = backend().await;
    let mut cfg = test_config();
    cfg.gateway.backend_jwt = true;
    let gw = gateway(vec![api("pizza", "/pizza", http_ep(&b.url()))], cfg).await;
    let r = get(
        gw.addr,
        "/pizza/1.0.0/x",
        &[("authorization", "Bearer good")],
    )
    .await;
    let jwt = json_of(&r)["headers"]["x-jwt-assertion"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(jwt.split('.').count(), 3, "{r}");
}

#[tokio::test]
async fn http2_prior_knowledge() {
    let b = backend().await;
    let gw = gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        test_config(),
    )
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = http::Request::get(gw.url("/pizza/1.0.0/h2"))
        .header("authorization", "Bearer good")
        .body(http_body_util::Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn tls_listener_with_dev_certificate() {
    let b = backend().await;
    let gw = gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        test_config(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = apim_gateway::tls::ensure_dev_cert(dir.path(), "localhost").unwrap();
    let acceptor = apim_gateway::tls::acceptor_from_pem(
        &std::fs::read(&cert).unwrap(),
        &std::fs::read(&key).unwrap(),
    )
    .unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let g = gw.gateway.clone();
    tokio::spawn(async move { g.serve_on(l, Some(acceptor), std::future::pending()).await });

    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = conn
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(b"GET /pizza/1.0.0/secure HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer good\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut out)).await;
    let r = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(json_of(&r)["headers"]["x-forwarded-proto"], "https");
}

/// A backend that answers any request with 101 and then echoes bytes.
async fn upgrade_backend() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                assert!(
                    !text.contains("authorization"),
                    "credential forwarded: {text}"
                );
                // the handshake's answer (RFC 6455 §4.2.2): the gateway checks it
                let raw = String::from_utf8_lossy(&head).into_owned();
                let key = raw
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:"))
                    .map(|l| l["sec-websocket-key:".len()..].trim().to_owned())
                    .unwrap_or_default();
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
                ctx.update(key.as_bytes());
                ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
                use base64::Engine as _;
                let accept = base64::engine::general_purpose::STANDARD.encode(ctx.finish());
                s.write_all(format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn websocket_upgrade_passthrough() {
    let url = upgrade_backend().await;
    // a WS API: only those take upgrades (issue 18 item 19)
    let mut ws = api("ws", "/ws", http_ep(&url));
    ws.api_type = "WS".into();
    let gw = gateway(vec![ws], test_config()).await;
    // no credential: the handshake is refused like any call
    let r = get(
        gw.addr,
        "/ws/1.0.0/chat",
        &[("connection", "upgrade"), ("upgrade", "websocket")],
    )
    .await;
    assert_eq!((status_of(&r), code_of(&r)), (401, Some(900902)), "{r}");

    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /ws/1.0.0/chat HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        head.extend_from_slice(&buf[..n]);
    }
    assert_eq!(status_of(&String::from_utf8_lossy(&head)), 101);
    s.write_all(b"ping-frame").await.unwrap();
    let mut got = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"ping-frame");
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let b = backend().await;
    let gw = gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        test_config(),
    )
    .await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = l.local_addr().unwrap();
    let router = gw.gateway.admin_router();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    assert_eq!(status_of(&get(admin, "/health", &[]).await), 200);
    assert_eq!(status_of(&get(admin, "/health/ready", &[]).await), 503);
    gw.gateway.readiness().set(true);
    assert_eq!(status_of(&get(admin, "/health/ready", &[]).await), 200);
    get(
        gw.addr,
        "/pizza/1.0.0/x",
        &[("authorization", "Bearer good")],
    )
    .await;
    get(gw.addr, "/pizza/1.0.0/x", &[]).await;
    get(
        gw.addr,
        "/pizza/1.0.0/x",
        &[("authorization", "Bearer good"), ("x-throttle", "1")],
    )
    .await;
    let m = get(admin, "/metrics", &[]).await;
    for line in [
        "apim_gateway_requests_total{api=\"/pizza:1.0.0\",status=\"200\"} 1",
        "apim_gateway_requests_total{api=\"/pizza:1.0.0\",status=\"401\"} 1",
        "apim_gateway_requests_total{api=\"/pizza:1.0.0\",status=\"429\"} 1",
        "apim_gateway_throttled_total 1",
        "apim_gateway_request_duration_seconds_count 3",
        "apim_gateway_apis 1",
    ] {
        assert!(m.contains(line), "{line} missing in\n{m}");
    }
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight() {
    let b = backend().await;
    let gw = gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        test_config(),
    )
    .await;
    let addr = gw.addr;
    // the backend's /slow takes 3 s
    let inflight = tokio::spawn(async move {
        get(
            addr,
            "/pizza/1.0.0/slow",
            &[("authorization", "Bearer good")],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = gw.stop.send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
    let r = inflight.await.unwrap();
    assert_eq!(status_of(&r), 200, "in-flight request completed: {r}");
    tokio::time::timeout(Duration::from_secs(5), gw.done)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let b = backend().await;
    let mut cfg = test_config();
    cfg.gateway.idle_timeout_ms = 300;
    let gw = gateway(vec![api("pizza", "/pizza", http_ep(&b.url()))], cfg).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /pizza/1.0.0/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    // the response, then the server closes the idle connection by itself
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out))
        .await
        .expect("idle connection closed within 3 s")
        .unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&out)), 200);
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let b = backend().await;
    let mut cfg = test_config();
    cfg.gateway.idle_timeout_ms = 300;
    let gw = gateway(vec![api("pizza", "/pizza", http_ep(&b.url()))], cfg).await;
    // a head that never ends (slowloris): a byte now and then, no blank line
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /pizza/1.0.0/x HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let drip = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if s.write_all(b"X").await.is_err() {
                return;
            }
        }
    };
    let closed = tokio::time::timeout(Duration::from_secs(3), drip).await;
    assert!(
        closed.is_ok(),
        "the connection was closed while the head dripped in"
    );
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn requests_in_flight_outlive_the_idle_timeout() {
    let b = backend().await;
    let mut cfg = test_config();
    cfg.gateway.idle_timeout_ms = 300;
    let gw = gateway(vec![api("pizza", "/pizza", http_ep(&b.url()))], cfg).await;
    // the backend's /slow takes 3 s, ten idle timeouts
    let r = get(
        gw.addr,
        "/pizza/1.0.0/slow",
        &[("authorization", "Bearer good")],
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
}

#[tokio::test]
async fn analytics_records_without_blocking() {
    use apim_core::bus::ChannelSink;
    let b = backend().await;
    let artifacts = Arc::new(apim_core::artifacts::InMemoryArtifacts::new(vec![
        "Default".into(),
    ]));
    apim_core::artifacts::ArtifactStore::load(
        &*artifacts,
        apim_core::artifacts::GatewayData {
            deployments: vec![deployment(api("pizza", "/pizza", http_ep(&b.url())))],
            ..Default::default()
        },
    );
    let (sink, mut rx) = ChannelSink::new(16);
    let gw = apim_gateway::Gateway::builder()
        .config(test_config())
        .artifacts(artifacts)
        .validator(Arc::new(TestValidator))
        .analytics(Arc::new(sink))
        .build()
        .unwrap();
    let req = http::Request::get("http://localhost/pizza/1.0.0/x")
        .header("host", "localhost")
        .header("authorization", "Bearer good")
        .body(apim_gateway::GatewayBody::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(gw.service(), req).await.unwrap();
    assert_eq!(res.status(), 200);
    let rec = rx.recv().await.unwrap();
    assert_eq!(
        (
            rec.status,
            rec.api_id.as_deref(),
            rec.application_id.as_deref()
        ),
        (200, Some("pizza"), Some("app1"))
    );
}

/// The fields of the `request` spans a [`SpanLog`] saw, one map per span.
type SpanFields = Arc<std::sync::Mutex<Vec<std::collections::BTreeMap<String, String>>>>;

/// A subscriber at debug level that keeps the fields of `request` spans.
struct SpanLog(SpanFields);

struct Fields<'a>(&'a mut std::collections::BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for SpanLog {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.is_span() && m.name() == "request"
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut spans = self.0.lock().unwrap();
        let mut fields = std::collections::BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        spans.push(fields);
        tracing::span::Id::from_u64(spans.len() as u64)
    }
    fn record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut spans = self.0.lock().unwrap();
        values.record(&mut Fields(&mut spans[id.into_u64() as usize - 1]));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn each_request_has_a_span_with_its_id_and_status() {
    let b = backend().await;
    let gw = build_gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        test_config(),
    );
    let spans = SpanFields::default();
    let _guard = tracing::subscriber::set_default(SpanLog(spans.clone()));
    for (auth, status) in [("Bearer good", 200), ("Bearer bad", 401)] {
        let req = http::Request::get("http://localhost/pizza/1.0.0/x?q=1")
            .header("host", "localhost")
            .header("authorization", auth)
            .body(apim_gateway::GatewayBody::empty())
            .unwrap();
        let res = tower::ServiceExt::oneshot(gw.service(), req).await.unwrap();
        assert_eq!(res.status(), status);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let span = spans.lock().unwrap().last().cloned().unwrap();
        assert_eq!(span["method"], "GET");
        assert_eq!(span["path"], "/pizza/1.0.0/x");
        assert_eq!(span["request_id"], format!("{id:?}"));
        assert_eq!(span["status"], status.to_string());
    }
    assert_eq!(spans.lock().unwrap().len(), 2);
}

/// Sends `GET path` on `s` and reads one response (Content-Length framed): its status and how
/// long it took.
async fn exchange_on(s: &mut TcpStream, path: &str) -> (u16, Duration) {
    let start = std::time::Instant::now();
    let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            if buf.len() >= end + 4 + length {
                return (status_of(&text), start.elapsed());
            }
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed after {:?}: {text}",
            start.elapsed()
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Each request on a kept-alive connection gets the whole request timeout (the native server
/// reuses one timer per connection, moved to each request's deadline), also after the
/// connection idled past the timeout, and the connection outlives the timer firing.
#[tokio::test]
async fn request_timeout_applies_per_request_on_a_kept_alive_connection() {
    let b = backend().await;
    let mut cfg = test_config();
    cfg.gateway.request_timeout_ms = 1_000;
    let gw = gateway(vec![api("pizza", "/pizza", http_ep(&b.url()))], cfg).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let in_time = |d: Duration| d >= Duration::from_millis(950) && d < Duration::from_millis(2_500);

    assert_eq!(exchange_on(&mut s, "/pizza/1.0.0/fast").await.0, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // had the first request's deadline stayed, this would end after ~400 ms
    let (status, took) = exchange_on(&mut s, "/pizza/1.0.0/slow").await;
    assert_eq!(status, 504);
    assert!(in_time(took), "timed out after {took:?}");

    assert_eq!(exchange_on(&mut s, "/pizza/1.0.0/fast").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(exchange_on(&mut s, "/pizza/1.0.0/fast").await.0, 200);
    let (status, took) = exchange_on(&mut s, "/pizza/1.0.0/slow").await;
    assert_eq!(status, 504);
    assert!(in_time(took), "timed out after {took:?}");
    assert_eq!(b.hits(), 5);
}

/// A keep-alive HTTP/1.1 backend that counts the connections it accepts; with `close_after`
/// set it closes each connection (without saying so) after that many responses, like a
/// backend whose keep-alive timeout expired.
async fn counting_backend(
    close_after: Option<usize>,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let accepted = Arc::new(AtomicUsize::new(0));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut served = 0;
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                        served += 1;
                        if close_after.is_some_and(|n| served >= n) {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn backend_connections_are_reused_and_closed_ones_replaced() {
    use std::sync::atomic::Ordering;
    let (url, accepted) = counting_backend(None).await;
    let gw = gateway(vec![api("keep", "/keep", http_ep(&url))], test_config()).await;
    for i in 0..10 {
        let r = get(
            gw.addr,
            "/keep/1.0.0/x",
            &[("authorization", "Bearer good")],
        )
        .await;
        assert_eq!(status_of(&r), 200, "request {i}: {r}");
        assert!(r.ends_with("ok"), "{r}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "ten sequential requests share one backend connection"
    );

    // a backend that drops every connection after one response: each pooled connection is
    // found closed and replaced, no request fails
    let (url, accepted) = counting_backend(Some(1)).await;
    let gw = gateway(vec![api("drop", "/drop", http_ep(&url))], test_config()).await;
    for i in 0..5 {
        let r = get(
            gw.addr,
            "/drop/1.0.0/x",
            &[("authorization", "Bearer good")],
        )
        .await;
        assert_eq!(status_of(&r), 200, "request {i}: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

/// A backend that answers the first request on each connection and then, like a backend whose
/// keep-alive timeout fires just as the next request arrives, reads the next request and
/// closes without answering. Returns its URL, the connections it accepted and the request
/// heads it read.
async fn closing_backend() -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let accepted = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(AtomicUsize::new(0));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (a, h) = (accepted.clone(), heads.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut served = 0;
                loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        h.fetch_add(1, Ordering::SeqCst);
                        if served == 1 {
                            return; // closes without an answer
                        }
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                        served += 1;
                        continue;
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (url, accepted, heads)
}

#[tokio::test]
async fn idempotent_request_is_resent_when_a_stale_pooled_connection_closes_unanswered() {
    use std::sync::atomic::Ordering;
    let (url, accepted, heads) = closing_backend().await;
    let mut a = api("stale", "/stale", http_ep(&url));
    a.operations
        .push(serde_json::from_value(serde_json::json!({"verb": "POST", "target": "/*"})).unwrap());
    let gw = gateway(vec![a], test_config()).await;
    let auth = [("authorization", "Bearer good")];

    let r = get(gw.addr, "/stale/1.0.0/x", &auth).await;
    assert_eq!(status_of(&r), 200, "{r}");
    // the pooled connection goes stale; the backend closes it as the next GET arrives
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = get(gw.addr, "/stale/1.0.0/x", &auth).await;
    assert_eq!(
        status_of(&r),
        200,
        "the GET is sent again on a new connection: {r}"
    );
    assert!(r.ends_with("ok"), "{r}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(
        heads.load(Ordering::SeqCst),
        3,
        "GET, GET (unanswered), GET again"
    );

    // a POST with a body is not sent twice: 503 101503
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = raw(
        gw.addr,
        b"POST /stale/1.0.0/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
          Authorization: Bearer good\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(status_of(&r), 503, "{r}");
    assert_eq!(code_of(&r), Some(101503), "{r}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "no new connection for the POST"
    );
    assert_eq!(heads.load(Ordering::SeqCst), 4);
}

/// Waits up to 2 s for the number of threads named `prefix…` to become `n`; the count.
async fn threads_become(prefix: &str, n: usize) -> usize {
    let mut count = threads_named(prefix);
    for _ in 0..40 {
        if count == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        count = threads_named(prefix);
    }
    count
}

/// Scheduling policies (0 normal, 3 batch) of this process's threads named `prefix`…
fn thread_policies(prefix: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
    {
        let named =
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix));
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // field 41 (policy), counted after the command name's closing parenthesis
        let policy = stat
            .rsplit_once(')')
            .and_then(|(_, f)| f.split_whitespace().nth(38)?.parse().ok());
        if let (true, Some(p)) = (named, policy) {
            out.push(p);
        }
    }
    out
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with(prefix))
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn worker_threads_serve_the_traffic_ports_and_drain_on_shutdown() {
    let b = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.gateway.worker_threads = 2;
    let Bound { addrs, stop, done } = bind_gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        cfg,
        dir.path(),
    )
    .await;
    assert_eq!(
        threads_become("apim-gateway-", 2).await,
        2,
        "two worker threads"
    );
    // a worker is named when it starts and sets its policy right after: wait for both
    let mut policies = thread_policies("apim-gateway-");
    for _ in 0..100 {
        if policies == [3, 3] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        policies = thread_policies("apim-gateway-");
    }
    assert_eq!(
        policies,
        [3, 3],
        "workers run under SCHED_BATCH (gateway.worker_scheduling default)"
    );

    // many connections on both plain ports: the kernel spreads them over the workers
    let auth = [("authorization", "Bearer good")];
    let mut calls = Vec::new();
    for i in 0..40 {
        let addr = addrs.http[i % 2];
        calls.push(tokio::spawn(async move {
            get(addr, "/pizza/1.0.0/menu", &auth).await
        }));
    }
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(status_of(&r), 200, "{r}");
    }
    assert_eq!(b.hits(), 40);
    let r = get(addrs.http[0], "/pizza/1.0.0/menu", &[]).await;
    assert_eq!(
        code_of(&r),
        Some(900902),
        "the flow runs on the workers: {r}"
    );
    assert!(TcpStream::connect(addrs.https[0]).await.is_ok());

    // a slow request in flight, then shutdown: it completes, new connections are refused,
    // the workers end
    let addr = addrs.http[0];
    let inflight = tokio::spawn(async move { get(addr, "/pizza/1.0.0/slow", &auth).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(TcpStream::connect(addr).await.is_err(), "listeners closed");
    let r = inflight.await.unwrap();
    assert_eq!(status_of(&r), 200, "in-flight request completed: {r}");
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .expect("drained within 5 s")
        .unwrap();
    assert_eq!(
        threads_become("apim-gateway-", 0).await,
        0,
        "worker threads ended"
    );
}

/// Sends a keep-alive GET on `s` and reads one response (Content-Length framed).
async fn keep_alive_get(s: &mut TcpStream, path: &str) -> String {
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed early");
        out.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn max_connections_is_one_limit_for_all_traffic_ports() {
    let b = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.gateway.max_connections = 2;
    let Bound { addrs, stop, done } = bind_gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        cfg,
        dir.path(),
    )
    .await;

    // two open keep-alive connections, one on the HTTP port and one on the WS port
    let mut first = TcpStream::connect(addrs.http[0]).await.unwrap();
    assert_eq!(
        status_of(&keep_alive_get(&mut first, "/pizza/1.0.0/menu").await),
        200
    );
    let mut second = TcpStream::connect(addrs.http[1]).await.unwrap();
    assert_eq!(
        status_of(&keep_alive_get(&mut second, "/pizza/1.0.0/menu").await),
        200
    );

    // a third waits in the kernel backlog: no answer while both are open
    let mut third = TcpStream::connect(addrs.http[0]).await.unwrap();
    let waiting = tokio::spawn(async move {
        let r = keep_alive_get(&mut third, "/pizza/1.0.0/menu").await;
        (r, third)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection is not served");
    assert_eq!(b.hits(), 2);

    // one closes: the third is accepted and answered
    drop(second);
    let (r, _third) = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(b.hits(), 3);
    drop(first);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
}
