//! Issue 18 (security hardening), the data plane: one test per finding, over real sockets,
//! each asserting what a client or the backend sees.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn with_action_duration(url: &str, ms: u64) -> serde_json::Value {
    let mut ep = http_ep(url);
    ep["production_endpoints"]["config"] = serde_json::json!({ "actionDuration": ms });
    ep
}

/// Reads a response head (and what came with it) from `s`.
async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("a response head in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Item 6: a client that stops sending its body gets 408 from the client-body timeout, and
/// the endpoint (whose `actionDuration` is shorter than the client's pause) is not
/// suspended: the next caller gets 200, not 503 101503.
#[tokio::test]
async fn slow_client_body_gets_408_and_does_not_suspend_the_endpoint() {
    let b = backend().await;
    let mut config = test_config();
    config.gateway.client_body_timeout_ms = 400;
    let gw = gateway(
        vec![api("up", "/up", with_action_duration(&b.url(), 300))],
        config,
    )
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /up/1.0.0/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nContent-Length: 10\r\n\r\nhello")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let r = read_head(&mut s).await;
    assert_eq!((status_of(&r), code_of(&r)), (408, Some(408)), "{r}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");
    let r = get(gw.addr, "/up/1.0.0/x", &[("authorization", "Bearer good")]).await;
    assert_eq!(status_of(&r), 200, "the endpoint stays up: {r}");
}

/// Item 6: a client uploading slowly (each piece within the client-body timeout, the whole
/// longer than the endpoint's `actionDuration`) is served: only the backend's own time
/// counts against its timeout.
#[tokio::test]
async fn slow_upload_is_not_the_backends_timeout() {
    let b = backend().await;
    let mut config = test_config();
    config.gateway.client_body_timeout_ms = 1_000;
    let gw = gateway(
        vec![api("up", "/up", with_action_duration(&b.url(), 300))],
        config,
    )
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /up/1.0.0/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nConnection: close\r\nContent-Length: 6\r\n\r\n")
        .await
        .unwrap();
    for piece in [b"ab", b"cd", b"ef"] {
        tokio::time::sleep(Duration::from_millis(250)).await;
        s.write_all(piece).await.unwrap();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let r = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(json_of(&r)["body"], "abcdef");
}

/// Item 14: what only the gateway may tell the backend is never taken from the client.
#[tokio::test]
async fn client_cannot_send_gateway_owned_headers() {
    let b = backend().await;
    let gw = gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        test_config(),
    )
    .await;
    let r = get(
        gw.addr,
        "/pizza/1.0.0/x",
        &[
            ("authorization", "Bearer good"),
            ("x-jwt-assertion", "forged"),
            ("X_JWT_Assertion", "forged"),
            ("Forwarded", "for=10.6.6.6;host=evil"),
            ("X-Real-IP", "10.6.6.6"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("X_Forwarded_For", "10.6.6.6"),
            ("X_Forwarded_Host", "evil"),
            ("x-keep", "kept"),
        ],
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    let h = &json_of(&r)["headers"];
    for gone in [
        "x-jwt-assertion",
        "x_jwt_assertion",
        "forwarded",
        "x-real-ip",
        "x-original-url",
        "x-rewrite-url",
        "x_forwarded_for",
        "x_forwarded_host",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the backend: {h}");
    }
    assert_eq!(h["x-keep"], "kept");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
}

/// Item 15: an API key in the query stays at the gateway; the rest of the query goes on
/// byte for byte.
#[tokio::test]
async fn api_key_query_parameter_is_not_forwarded() {
    let b = backend().await;
    let mut a = api("k", "/k", http_ep(&b.url()));
    a.security_scheme = vec!["oauth2".into(), "api_key".into()];
    let gw = gateway(vec![a], test_config()).await;
    for (query, forwarded) in [
        ("a=1&apikey=secret&b=%20&c", Some("a=1&b=%20&c")),
        ("apikey=secret", None),
        ("apikey=secret&apikey=again&x=apikey", Some("x=apikey")),
        ("apikeys=1&my_apikey=2", Some("apikeys=1&my_apikey=2")),
    ] {
        let r = get(
            gw.addr,
            &format!("/k/1.0.0/x?{query}"),
            &[("authorization", "Bearer good")],
        )
        .await;
        assert_eq!(status_of(&r), 200, "{r}");
        assert_eq!(json_of(&r)["query"].as_str(), forwarded, "{query}");
    }
}

/// Item 16: dot segments with path parameters (which Tomcat, Jetty and Spring normalise)
/// are refused like plain ones.
#[tokio::test]
async fn dot_segments_with_parameters_are_refused() {
    let b = backend().await;
    let gw = gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        test_config(),
    )
    .await;
    for path in [
        "/pizza/1.0.0/..;/admin",
        "/pizza/1.0.0/x/..;jsessionid=1/admin",
        "/pizza/1.0.0/.;/x",
        "/pizza/1.0.0/..%3b/admin",
        "/pizza/1.0.0/..%3B/admin",
    ] {
        let r = get(gw.addr, path, &[("authorization", "Bearer good")]).await;
        assert_eq!(status_of(&r), 400, "{path}: {r}");
    }
    assert_eq!(b.hits(), 0);
    let r = get(
        gw.addr,
        "/pizza/1.0.0/a;v=1/b",
        &[("authorization", "Bearer good")],
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
}

/// Item 20: an absolute-form request's authority is its host for everything: routing, the
/// `X-Forwarded-Host` the backend gets, and the same validation as `Host`.
#[tokio::test]
async fn absolute_form_authority_replaces_host() {
    let b = backend().await;
    let gw = gateway(
        vec![api("pizza", "/pizza", http_ep(&b.url()))],
        test_config(),
    )
    .await;
    let r = raw(
        gw.addr,
        b"GET http://api.example.com/pizza/1.0.0/x HTTP/1.1\r\nHost: other.example\r\nAuthorization: Bearer good\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(
        json_of(&r)["headers"]["x-forwarded-host"],
        "api.example.com"
    );
    let r = raw(
        gw.addr,
        b"GET http://user@api.example.com/pizza/1.0.0/x HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer good\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&r), 400, "{r}");
    assert_eq!(b.hits(), 1);
}

/// A backend answering every request with 101 (with the right `Sec-WebSocket-Accept`, or a
/// wrong one) and then echoing bytes; it reports each request head it got.
async fn ws_backend(right_accept: bool) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
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
                let _ = tx.send(text.clone());
                let key = text
                    .lines()
                    .find_map(|l| l.strip_prefix("sec-websocket-key:"))
                    .map(str::trim)
                    .unwrap_or("");
                // the key was lower-cased with the head: take it from the raw bytes
                let raw = String::from_utf8_lossy(&head).into_owned();
                let key = raw
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:"))
                    .map(|l| l["sec-websocket-key:".len()..].trim().to_owned())
                    .unwrap_or_else(|| key.to_owned());
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
                ctx.update(key.as_bytes());
                ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
                let accept = if right_accept {
                    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
                } else {
                    "bm90IHRoZSBhY2NlcHQgdmFsdWU=".into()
                };
                let answer = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), rx)
}

const WS_HANDSHAKE: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// Item 19: an `Upgrade` is passed on only as a WebSocket handshake to a WS API, and the
/// backend's 101 must accept the handshake; `h2c`, or `websocket` to an HTTP API, goes to
/// the backend as a plain request without `Upgrade`.
#[tokio::test]
async fn only_websocket_upgrades_to_ws_apis() {
    let echo = backend().await;
    let (good, mut heads) = ws_backend(true).await;
    let (bad, _) = ws_backend(false).await;
    let mut ws = api("ws", "/ws", http_ep(&good));
    ws.api_type = "WS".into();
    let mut wrong = api("wrong", "/wrong", http_ep(&bad));
    wrong.api_type = "WS".into();
    let gw = gateway(
        vec![api("h", "/h", http_ep(&echo.url())), ws, wrong],
        test_config(),
    )
    .await;
    // h2c and websocket to an HTTP API: a plain request, no Upgrade at the backend
    for upgrade in [
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n",
        WS_HANDSHAKE,
    ] {
        let req = format!("GET /h/1.0.0/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n{upgrade}\r\n");
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        let r = String::from_utf8_lossy(&out);
        assert_eq!(status_of(&r), 200, "{r}");
        let body = &r[r.find("\r\n\r\n").unwrap() + 4..];
        let seen: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_else(|_| {
            // a chunked body: the JSON is between the chunk-size lines
            serde_json::from_str(body.lines().nth(1).unwrap_or("")).unwrap()
        });
        assert!(seen["headers"].get("upgrade").is_none(), "{seen}");
    }
    // a WebSocket handshake to a WS API whose backend accepts it: spliced
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let req = format!(
        "GET /ws/1.0.0/chat HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n{WS_HANDSHAKE}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let r = read_head(&mut s).await;
    assert_eq!(status_of(&r), 101, "{r}");
    assert!(heads.recv().await.unwrap().contains("upgrade: websocket"));
    s.write_all(b"ping-frame").await.unwrap();
    let mut got = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"ping-frame");
    // a 101 with the wrong Sec-WebSocket-Accept is no WebSocket: 503
    let req = format!(
        "GET /wrong/1.0.0/chat HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nConnection: close\r\n{WS_HANDSHAKE}\r\n"
    );
    let r = raw(gw.addr, req.as_bytes()).await;
    assert_eq!((status_of(&r), code_of(&r)), (503, Some(101503)), "{r}");
}

/// Item 23 (part): with `*` and credentials allowed, an origin the configuration does not
/// name gets `*` without credentials (what the Fetch standard allows), never its own origin
/// reflected with credentials; a named origin still gets itself with credentials.
#[tokio::test]
async fn cors_star_with_credentials_does_not_reflect_any_origin() {
    let b = backend().await;
    let mut a = api("c", "/cors", http_ep(&b.url()));
    a.cors_configuration = serde_json::from_value(serde_json::json!({
        "corsConfigurationEnabled": true,
        "accessControlAllowOrigins": ["*", "https://app.example.com"],
        "accessControlAllowMethods": ["GET"],
        "accessControlAllowCredentials": true
    }))
    .unwrap();
    let gw = gateway(vec![a], test_config()).await;
    for preflight in [true, false] {
        let r = if preflight {
            raw(gw.addr, b"OPTIONS /cors/1.0.0/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: GET\r\n\r\n").await
        } else {
            get(
                gw.addr,
                "/cors/1.0.0/x",
                &[
                    ("authorization", "Bearer good"),
                    ("origin", "https://evil.example"),
                ],
            )
            .await
        };
        let l = r.to_ascii_lowercase();
        assert!(l.contains("access-control-allow-origin: *"), "{r}");
        assert!(
            !l.contains("access-control-allow-origin: https://evil"),
            "{r}"
        );
        assert!(!l.contains("access-control-allow-credentials"), "{r}");
    }
    let r = get(
        gw.addr,
        "/cors/1.0.0/x",
        &[
            ("authorization", "Bearer good"),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    let l = r.to_ascii_lowercase();
    assert!(
        l.contains("access-control-allow-origin: https://app.example.com"),
        "{r}"
    );
    assert!(l.contains("access-control-allow-credentials: true"), "{r}");
}

/// A backend answering every request with `len` bytes (Content-Length framed).
async fn big_backend(len: usize) -> String {
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
                let h = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                if s.write_all(h.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'z'; 64 << 10];
                let mut left = len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Item 23 (part): a client that stops reading a response loses its connection after the
/// send timeout, instead of holding it (and the backend's) open for as long as it likes.
#[tokio::test]
async fn client_that_stops_reading_is_closed_after_the_send_timeout() {
    const LEN: usize = 256 << 20;
    let url = big_backend(LEN).await;
    for server in [
        apim_core::config::Http1Server::Native,
        apim_core::config::Http1Server::Hyper,
    ] {
        let mut config = test_config();
        config.gateway.send_timeout_ms = 300;
        config.gateway.request_timeout_ms = 60_000;
        config.gateway.http1_server = server;
        let gw = gateway(vec![api("big", "/big", http_ep(&url))], config).await;
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /big/1.0.0/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n\r\n")
            .await
            .unwrap();
        // not reading: the gateway's writes block
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let read_all = async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read_all)
            .await
            .expect("the connection was closed");
        assert!(total < LEN, "{server:?}: the whole response came: {total}");
    }
}

/// Admits everything and keeps what `record` was told.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<apim_core::throttle::Outcome>>);

#[async_trait::async_trait]
impl apim_core::throttle::ThrottleDecider for Recorder {
    async fn decide(
        &self,
        _ctx: &apim_core::throttle::ThrottleContext<'_>,
    ) -> apim_core::throttle::Decision {
        apim_core::throttle::Decision::Allow
    }
    fn record(
        &self,
        _ctx: &apim_core::throttle::ThrottleContext<'_>,
        outcome: &apim_core::throttle::Outcome,
    ) {
        self.0.lock().unwrap().push(*outcome);
    }
}

/// A backend answering every request with a chunked body of `len` bytes (no length).
async fn chunked_backend(len: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                let mut got = Vec::new();
                // the head, then the request's chunked body up to its last chunk
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got);
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    if !text[..end].to_ascii_lowercase().contains("chunked")
                        || text.ends_with("0\r\n\r\n")
                    {
                        break;
                    }
                }
                let mut out =
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        .to_vec();
                let mut left = len;
                while left > 0 {
                    let n = left.min(1000);
                    out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    out.extend(std::iter::repeat_n(b'c', n));
                    out.extend_from_slice(b"\r\n");
                    left -= n;
                }
                out.extend_from_slice(b"0\r\n\r\n");
                let _ = s.write_all(&out).await;
            });
        }
    });
    format!("http://{addr}")
}

/// Item 12: bandwidth counts the bytes that went through, both ways: a chunked request
/// body (no `Content-Length`) and a chunked response are reported with their real sizes.
#[tokio::test]
async fn bandwidth_counts_streamed_bytes_both_ways() {
    let url = chunked_backend(7_500).await;
    let recorder = std::sync::Arc::new(Recorder::default());
    let gw = serve(build_gateway_with(
        vec![api("bw", "/bw", http_ep(&url))],
        test_config(),
        recorder.clone(),
    ))
    .await;
    let body = "q".repeat(20_000);
    let req = format!(
        "POST /bw/1.0.0/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len(),
        body.len()
    );
    let r = raw(gw.addr, req.as_bytes()).await;
    assert_eq!(status_of(&r), 200, "{}", &r[..r.len().min(300)]);
    let mut outcomes = Vec::new();
    for _ in 0..50 {
        outcomes = recorder.0.lock().unwrap().clone();
        if !outcomes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].request_bytes, 40_000);
    assert_eq!(outcomes[0].response_bytes, 7_500);
    // a GET answered with a length: reported at once, as before
    let gw2 = serve(build_gateway_with(
        vec![api("bw", "/bw", http_ep(&backend().await.url()))],
        test_config(),
        recorder.clone(),
    ))
    .await;
    let r = get(gw2.addr, "/bw/1.0.0/x", &[("authorization", "Bearer good")]).await;
    assert_eq!(status_of(&r), 200);
    let last = *recorder.0.lock().unwrap().last().unwrap();
    assert_eq!(last.request_bytes, 0);
    assert_eq!(
        last.response_bytes as usize,
        r.split("\r\n\r\n").nth(1).unwrap().len()
    );
}

/// Also found: an API deployed on the Default environment's default vhost (`localhost`)
/// answers a request for `127.0.0.1:8280` or a load balancer's name (hosts no vhost
/// claims); one deployed on a named vhost keeps its host.
#[tokio::test]
async fn default_vhost_serves_hosts_no_vhost_claims() {
    use apim_core::artifacts::{ArtifactStore, GatewayData, InMemoryArtifacts};
    let b = backend().await;
    let env: apim_core::model::Environment = serde_json::from_value(serde_json::json!({
        "name": "Default",
        "vhosts": [{"host": "localhost"}, {"host": "api.example.com"}]
    }))
    .unwrap();
    let mut on_default = deployment(api("d", "/d", http_ep(&b.url())));
    on_default.vhost = Some("localhost".into());
    let mut on_named = deployment(api("n", "/n", http_ep(&b.url())));
    on_named.vhost = Some("api.example.com".into());
    let artifacts = std::sync::Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    artifacts.load(GatewayData {
        deployments: vec![on_default, on_named],
        environments: vec![env],
        ..Default::default()
    });
    let gw = serve(std::sync::Arc::new(
        apim_gateway::Gateway::builder()
            .config(test_config())
            .artifacts(artifacts)
            .validator(std::sync::Arc::new(TestValidator))
            .build()
            .unwrap(),
    ))
    .await;
    let call = |host: &'static str, path: &'static str| {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer good\r\nConnection: close\r\n\r\n");
        async move { status_of(&raw(gw.addr, req.as_bytes()).await) }
    };
    for host in ["localhost:8280", "127.0.0.1:8280", "lb.example.org"] {
        assert_eq!(call(host, "/d/1.0.0/x").await, 200, "{host}");
    }
    assert_eq!(call("api.example.com", "/d/1.0.0/x").await, 404);
    assert_eq!(call("api.example.com:8243", "/n/1.0.0/x").await, 200);
    for host in ["localhost", "127.0.0.1:8280"] {
        assert_eq!(call(host, "/n/1.0.0/x").await, 404, "{host}");
    }
}

/// Decides like the test decider but refuses calls from 203.0.113.9, as an IP block condition
/// would: what the throttle step takes for the client's address.
struct BlocksOneAddress;

#[async_trait::async_trait]
impl apim_core::throttle::ThrottleDecider for BlocksOneAddress {
    async fn decide(
        &self,
        ctx: &apim_core::throttle::ThrottleContext<'_>,
    ) -> apim_core::throttle::Decision {
        if ctx.client_ip == Some("203.0.113.9".parse().unwrap()) {
            apim_core::throttle::Decision::Blocked
        } else {
            apim_core::throttle::Decision::Allow
        }
    }
}

/// Behind a trusted load balancer (`gateway.trusted_proxies`) the client's address — for IP
/// conditions, `permittedIP` and the password lock-out — is the one the balancer put in
/// `X-Forwarded-For`; from any other peer that field is the client's own claim and ignored.
#[tokio::test]
async fn client_address_comes_from_trusted_proxies_only() {
    let b = backend().await;
    for (trusted, blocked) in [(vec![], false), (vec!["127.0.0.0/8".to_owned()], true)] {
        let mut config = test_config();
        config.gateway.trusted_proxies = trusted.clone();
        let gw = serve(build_gateway_with(
            vec![api("tp", "/tp", http_ep(&b.url()))],
            config,
            std::sync::Arc::new(BlocksOneAddress),
        ))
        .await;
        let forwarded = get(
            gw.addr,
            "/tp/1.0.0/x",
            &[
                ("authorization", "Bearer good"),
                ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
            ],
        )
        .await;
        assert_eq!(
            status_of(&forwarded),
            if blocked { 403 } else { 200 },
            "{trusted:?}: {forwarded}"
        );
        // a forged entry left of the balancer's own is never the client
        let forged = get(
            gw.addr,
            "/tp/1.0.0/x",
            &[
                ("authorization", "Bearer good"),
                ("x-forwarded-for", "203.0.113.9, 198.51.100.1"),
            ],
        )
        .await;
        assert_eq!(status_of(&forged), 200, "{trusted:?}: {forged}");
    }
}
