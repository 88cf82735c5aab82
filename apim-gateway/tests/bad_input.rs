//! Bad input (issue 6): each case asserts the status, the WSO2 code where there is one, and
//! that the backend saw no request.

mod common;

use common::*;

async fn setup() -> (Backend, Running) {
    let b = backend().await;
    let mut blocked = api("blocked", "/blocked", http_ep(&b.url()));
    blocked.life_cycle_status = apim_core::lifecycle::LifecycleState::Blocked;
    let down = api("down", "/down", http_ep(&dead_url().await));
    let mut slow_ep = http_ep(&b.url());
    slow_ep["production_endpoints"]["config"] = serde_json::json!({"actionDuration": 300});
    let slow = api("slow", "/slow", slow_ep);
    let gw = gateway(
        vec![
            api("pizza", "/pizza", http_ep(&b.url())),
            blocked,
            down,
            slow,
        ],
        test_config(),
    )
    .await;
    (b, gw)
}

#[tokio::test]
async fn malformed_request_line() {
    let (b, gw) = setup().await;
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /pizza/1.0.0/x HTTP/9.9\r\nHost: a\r\n\r\n",
        b"GET  HTTP/1.1\r\nHost: a\r\n\r\n",
        b"G\x00T /pizza/1.0.0/x HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let r = raw(gw.addr, bad).await;
        assert!(matches!(status_of(&r), 400 | 505), "{bad:?}: {r}");
    }
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn oversize_headers_431() {
    let (b, gw) = setup().await;
    let big = "x".repeat(20_000);
    let r = get(
        gw.addr,
        "/pizza/1.0.0/x",
        &[("authorization", "Bearer good"), ("x-big", &big)],
    )
    .await;
    assert_eq!(status_of(&r), 431, "{r}");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn path_traversal_400() {
    let (b, gw) = setup().await;
    for p in [
        "/pizza/1.0.0/../admin",
        "/pizza/1.0.0/%2e%2e/admin",
        "/pizza/1.0.0/%2E%2E/admin",
        "/pizza/1.0.0/.%2e/admin",
        "/pizza/1.0.0/a%2fb",
        "/pizza/1.0.0/a%2Fb",
        "/pizza/1.0.0/./x",
    ] {
        let r = get(gw.addr, p, &[("authorization", "Bearer good")]).await;
        assert_eq!(status_of(&r), 400, "{p}: {r}");
        assert_eq!(code_of(&r), Some(400), "{p}");
    }
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn duplicate_content_length_400() {
    let (b, gw) = setup().await;
    let r = raw(
        gw.addr,
        b"POST /pizza/1.0.0/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    )
    .await;
    assert_eq!(status_of(&r), 400, "{r}");
    assert_eq!(b.hits(), 0);
}

/// hyper does not answer 400 to Content-Length + Transfer-Encoding: it applies RFC 9112 §6.3
/// (Transfer-Encoding wins, Content-Length is dropped, the connection is closed after the
/// response). What matters is that nothing can be smuggled: a request hidden behind the
/// conflicting framing never reaches the backend, and the one that does is re-framed.
#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle() {
    let (b, gw) = setup().await;
    let r = raw(
        gw.addr,
        b"POST /pizza/1.0.0/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /pizza/1.0.0/smuggled HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n\r\n",
    )
    .await;
    assert!(!r.contains("smuggled"), "{r}");
    assert_eq!(
        r.matches("HTTP/1.1 ").count(),
        1,
        "one response, then close: {r}"
    );
    let seen = json_of(&r);
    assert_eq!(seen["path"], "/x");
    assert!(
        seen["headers"]
            .get("content-length")
            .is_none_or(|v| v == "0"),
        "{seen}"
    );
    assert_eq!(
        b.hits(),
        1,
        "only the well-framed request reached the backend"
    );
}

#[tokio::test]
async fn invalid_host_400() {
    let (b, gw) = setup().await;
    for req in [
        &b"GET /pizza/1.0.0/x HTTP/1.1\r\nHost: bad host\r\nAuthorization: Bearer good\r\n\r\n"[..],
        b"GET /pizza/1.0.0/x HTTP/1.1\r\nHost: user@evil\r\nAuthorization: Bearer good\r\n\r\n",
        b"GET /pizza/1.0.0/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: Bearer good\r\n\r\n",
        b"GET /pizza/1.0.0/x HTTP/1.1\r\nAuthorization: Bearer good\r\n\r\n",
    ] {
        let r = raw(gw.addr, req).await;
        assert_eq!(status_of(&r), 400, "{r}");
    }
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn unknown_api_404_900906() {
    let (b, gw) = setup().await;
    let r = get(
        gw.addr,
        "/nope/1.0.0/x",
        &[("authorization", "Bearer good")],
    )
    .await;
    assert_eq!((status_of(&r), code_of(&r)), (404, Some(900906)), "{r}");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn credentials_401_403() {
    let (b, gw) = setup().await;
    let r = get(gw.addr, "/pizza/1.0.0/x", &[]).await;
    assert_eq!((status_of(&r), code_of(&r)), (401, Some(900902)), "{r}");
    let r = get(
        gw.addr,
        "/pizza/1.0.0/x",
        &[("authorization", "Bearer forged")],
    )
    .await;
    assert_eq!((status_of(&r), code_of(&r)), (401, Some(900901)), "{r}");
    let r = get(
        gw.addr,
        "/pizza/1.0.0/x",
        &[("authorization", "Bearer unsub")],
    )
    .await;
    assert_eq!((status_of(&r), code_of(&r)), (403, Some(900908)), "{r}");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn throttled_429_with_retry_after() {
    let (b, gw) = setup().await;
    let r = get(
        gw.addr,
        "/pizza/1.0.0/x",
        &[("authorization", "Bearer good"), ("x-throttle", "yes")],
    )
    .await;
    assert_eq!((status_of(&r), code_of(&r)), (429, Some(900804)), "{r}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 2"), "{r}");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn blocked_api_503_700700() {
    let (b, gw) = setup().await;
    let r = get(
        gw.addr,
        "/blocked/1.0.0/x",
        &[("authorization", "Bearer good")],
    )
    .await;
    assert_eq!((status_of(&r), code_of(&r)), (503, Some(700700)), "{r}");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn backend_down_503_101503() {
    let (_b, gw) = setup().await;
    let r = get(
        gw.addr,
        "/down/1.0.0/x",
        &[("authorization", "Bearer good")],
    )
    .await;
    assert_eq!((status_of(&r), code_of(&r)), (503, Some(101503)), "{r}");
    assert!(!r.contains("127.0.0.1"), "no internal detail in 5xx: {r}");
}

#[tokio::test]
async fn slow_backend_504_101504() {
    let (b, gw) = setup().await;
    let r = get(
        gw.addr,
        "/slow/1.0.0/slow",
        &[("authorization", "Bearer good")],
    )
    .await;
    assert_eq!((status_of(&r), code_of(&r)), (504, Some(101504)), "{r}");
    assert_eq!(b.hits(), 1, "the backend got the call, but too slow");
}

#[tokio::test]
async fn body_over_limit_413() {
    let b = backend().await;
    let mut a = api("small", "/small", http_ep(&b.url()));
    a.max_request_body_bytes = 10;
    let gw = gateway(vec![a], test_config()).await;
    let r = raw(
        gw.addr,
        b"POST /small/1.0.0/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello world",
    )
    .await;
    assert_eq!(status_of(&r), 413, "{r}");
    assert_eq!(b.hits(), 0);
}
