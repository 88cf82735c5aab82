//! The native HTTP/1.1 server (`gateway.http1_server = "native"`, the default) against hyper
//! (`"hyper"`): the same raw bytes sent to two gateways, one with each server, get the same
//! bytes back (the `date` fields and generated request ids aside) — for requests the native
//! server serves, for requests it hands to hyper, and for connections that start native and
//! continue on hyper.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use apim_core::config::Http1Server;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn pair() -> (Backend, Running, Running) {
    let b = backend().await;
    let apis = || {
        let mut blocked = api("blocked", "/blocked", http_ep(&b.url()));
        blocked.life_cycle_status = apim_core::lifecycle::LifecycleState::Blocked;
        vec![api("pizza", "/pizza", http_ep(&b.url())), blocked]
    };
    let native = gateway(apis(), test_config()).await;
    let mut c = test_config();
    c.gateway.http1_server = Http1Server::Hyper;
    let hyper = gateway(apis(), c).await;
    (b, native, hyper)
}

/// Sends `bytes` (in `parts` pieces, with a pause between them) and reads until the server
/// closes or `wait` passes without it.
async fn exchange(addr: SocketAddr, parts: &[&[u8]], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    for p in parts {
        s.write_all(p).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    normalize(&String::from_utf8_lossy(&out))
}

/// Drops `date` fields and replaces generated request ids (`{16 hex}-{12 hex}`) by `ID`.
fn normalize(raw: &str) -> String {
    let mut out = String::new();
    for line in raw.split_inclusive("\r\n") {
        if line.to_ascii_lowercase().starts_with("date: ") {
            continue;
        }
        out.push_str(line);
    }
    let b = out.as_bytes();
    let mut res = String::new();
    let mut i = 0;
    while i < b.len() {
        let id = b.len() - i >= 29
            && b[i..i + 16].iter().all(u8::is_ascii_hexdigit)
            && b[i + 16] == b'-'
            && b[i + 17..i + 29].iter().all(u8::is_ascii_hexdigit);
        if id {
            res.push_str("ID");
            i += 29;
        } else {
            res.push(b[i] as char);
            i += 1;
        }
    }
    res
}

const GET: &str = "GET /pizza/1.0.0/menu?size=L HTTP/1.1\r\nHost: localhost\r\n\
                   Authorization: Bearer good\r\n";

#[tokio::test]
async fn native_and_hyper_answer_byte_for_byte_alike() {
    let (b, native, hyper) = pair().await;
    let close = format!("{GET}Connection: close\r\n\r\n");
    let keep = format!("{GET}\r\n");
    let post =
        "POST /pizza/1.0.0/order HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer good\r\n\
                Content-Length: 5\r\n\r\nhello";
    let chunked =
        "POST /pizza/1.0.0/order HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer good\r\n\
                   Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let big = format!("{GET}X-Big: {}\r\n\r\n", "x".repeat(20_000));
    // (what, the bytes, whether the native server hands the connection to hyper)
    let cases: Vec<(&str, Vec<String>, bool)> = vec![
        ("one request, close", vec![close.clone()], false),
        ("keep-alive, then close", vec![keep.clone(), close.clone()], false),
        ("pipelined", vec![format!("{keep}{keep}{close}")], false),
        ("a head in pieces", vec![GET[..20].into(), format!("{}\r\n", &GET[20..]), close.clone()], false),
        ("HEAD", vec![close.replacen("GET", "HEAD", 1)], false),
        ("no credential", vec!["GET /pizza/1.0.0/menu HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into()], false),
        ("bad credential, keep-alive", vec![keep.replace("good", "bad"), close.clone()], false),
        ("not subscribed", vec![close.replace("good", "unsub")], false),
        ("throttled", vec![close.replace("\r\n\r\n", "\r\nX-Throttle: yes\r\n\r\n")], false),
        ("unknown API", vec![close.replace("/pizza/", "/nope/")], false),
        ("blocked API", vec![close.replace("/pizza/", "/blocked/")], false),
        ("path traversal", vec![close.replace("/menu", "/../admin")], false),
        ("encoded traversal", vec![close.replace("/menu", "/%2e%2e/admin")], false),
        ("invalid host", vec![close.replace("Host: localhost", "Host: a b")], false),
        ("client request id", vec![close.replace("\r\n\r\n", "\r\nX-Request-ID: abc-1\r\n\r\n")], false),
        ("zero length", vec![close.replace("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n")], false),
        ("a body: hyper's from the start", vec![format!("{post}{close}")], true),
        ("native, then a body, then native again", vec![keep.clone(), post.into(), close.clone()], true),
        ("chunked body", vec![chunked.into()], true),
        ("HTTP/1.0", vec!["GET /pizza/1.0.0/menu HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer good\r\n\r\n".into()], true),
        ("malformed", vec!["GARBAGE\r\n\r\n".into()], true),
        ("bad field name after a good request", vec![keep.clone(), "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n".into()], true),
        ("target the http types refuse", vec!["GET /pizza/1.0.0/a<b> HTTP/1.1\r\nHost: localhost\r\n\r\n".into()], true),
        ("duplicate content-length", vec!["POST /pizza/1.0.0/o HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".into()], true),
        ("oversize head", vec![big], true),
        ("h2c preface", vec!["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".into()], true),
    ];
    let handovers = || native.gateway.metrics().handovers();
    for (what, parts, handed) in &cases {
        let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        let wait = Duration::from_millis(1500);
        let before = handovers();
        let n = exchange(native.addr, &parts, wait).await;
        assert_eq!(
            handovers() - before,
            u64::from(*handed),
            "{what}: handed to hyper?"
        );
        let h = exchange(hyper.addr, &parts, wait).await;
        assert_eq!(n, h, "{what}: native (left) and hyper (right) differ");
        assert!(!n.is_empty() || what.contains("h2c"), "{what}: no answer");
    }
    assert_eq!(
        hyper.gateway.metrics().handovers(),
        0,
        "hyper's connections are hyper's"
    );
    assert!(b.hits() > 20, "the backend answered the routed requests");
}

/// Reads one response with a `content-length` body off `s`.
async fn one_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
        let mut chunk = [0u8; 16 << 10];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "closed early: {text}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn native_connections_stay_open_and_answer_in_order() {
    let (_b, native, _hyper) = pair().await;
    let mut s = TcpStream::connect(native.addr).await.unwrap();
    let mut got = Vec::new();
    for i in 0..3 {
        s.write_all(format!("{GET}X-Request-ID: r{i}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        got.push(one_response(&mut s).await);
    }
    for (i, r) in got.iter().enumerate() {
        assert_eq!(status_of(r), 200, "{r}");
        assert!(r.contains(&format!("x-request-id: r{i}\r\n")), "{r}");
        assert!(!r.contains("connection: close"), "{r}");
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_finishes_the_request_in_flight() {
    for server in [Http1Server::Native, Http1Server::Hyper] {
        let b = backend().await;
        let mut c = test_config();
        c.gateway.http1_server = server;
        let gw = gateway(vec![api("pizza", "/pizza", http_ep(&b.url()))], c).await;
        let mut idle = TcpStream::connect(gw.addr).await.unwrap();
        idle.write_all(format!("{GET}\r\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(status_of(&one_response(&mut idle).await), 200);
        // the backend's /slow takes 3 s
        let mut busy = TcpStream::connect(gw.addr).await.unwrap();
        busy.write_all(
            b"GET /pizza/1.0.0/slow HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer good\r\n\r\n",
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = gw.stop.send(());
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), idle.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("{server:?}: the idle connection is closed at once"))
            .unwrap();
        assert!(rest.is_empty(), "{server:?}");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(6), busy.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{server:?}: the request in flight completes, then EOF"))
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), 200, "{server:?}: {answer}");
        assert!(
            answer.contains("\r\nconnection: close\r\n"),
            "{server:?}: {answer}"
        );
        tokio::time::timeout(Duration::from_secs(5), gw.done)
            .await
            .unwrap()
            .unwrap();
    }
}
