//! The gateway's own HTTP/1.1 backend client through real sockets: response framing
//! (chunked, Content-Length, until close, HEAD, 1xx/204/304), connection reuse, invalid
//! backend answers, and request body framing. Every backend here is a scripted raw-TCP
//! server that writes exact bytes.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a client waits for the whole response (more than the gateway's 5 s timeout, so
/// a 504 would be seen as such).
const CLIENT_WAIT: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------------------
// the scripted backend
// ---------------------------------------------------------------------------------------

/// One action of a scripted answer.
#[derive(Debug, Clone)]
enum Step {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Sleep this many milliseconds.
    Sleep(u64),
    /// Close the connection (drop the socket).
    Close,
    /// Shut the write half down (FIN) and keep reading requests.
    HalfClose,
}

fn w(bytes: impl AsRef<[u8]>) -> Step {
    Step::Write(bytes.as_ref().to_vec())
}

/// A request as the backend read it.
#[derive(Debug, Clone)]
struct Seen {
    /// Index of the backend connection it came on (0 = first accepted).
    conn: usize,
    /// The request head, as received.
    head: String,
    /// The decoded body (`None`: the framing could not be decoded).
    body: Option<Vec<u8>>,
}

/// A raw-TCP backend answering each request (on whatever connection it arrives) with the
/// next scripted answer; a request without an answer left closes its connection.
struct Scripted {
    url: String,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The connection each request came on, in order.
    fn conns(&self) -> Vec<usize> {
        self.seen().iter().map(|s| s.conn).collect()
    }
}

async fn scripted(answers: Vec<Vec<Step>>) -> Scripted {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let queue = Arc::new(Mutex::new(VecDeque::from(answers)));
    let (count, record) = (accepted.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let conn = count.fetch_add(1, Ordering::SeqCst);
            let (queue, record) = (queue.clone(), record.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(req) = read_request(&mut s, &mut buf, conn).await {
                    record.lock().unwrap().push(req);
                    let next = queue.lock().unwrap().pop_front();
                    let Some(steps) = next else {
                        return;
                    };
                    for step in steps {
                        match step {
                            Step::Write(b) => {
                                if s.write_all(&b).await.is_err() {
                                    return;
                                }
                            }
                            Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                            Step::Close => return,
                            Step::HalfClose => {
                                let _ = s.shutdown().await;
                            }
                        }
                    }
                }
            });
        }
    });
    Scripted {
        url,
        accepted,
        seen,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads more bytes into `buf`; false at EOF or on an error.
async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 << 10];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Reads a message head (up to and including the empty line) off `buf`.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
        if !fill(s, buf).await {
            return None;
        }
    }
}

/// Reads exactly `n` bytes off `buf`.
async fn read_n(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    while buf.len() < n {
        if !fill(s, buf).await {
            return None;
        }
    }
    Some(buf.drain(..n).collect())
}

/// Reads a CRLF-terminated line off `buf` (without the CRLF).
async fn read_line(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = find(buf, b"\r\n") {
            let line: Vec<u8> = buf.drain(..end + 2).take(end).collect();
            return Some(line);
        }
        if !fill(s, buf).await {
            return None;
        }
    }
}

/// Reads and decodes a chunked body (trailers read and dropped).
async fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(s, buf).await?;
        let line = String::from_utf8(line).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            loop {
                if read_line(s, buf).await?.is_empty() {
                    return Some(body);
                }
            }
        }
        let data = read_n(s, buf, size + 2).await?;
        if &data[size..] != b"\r\n" {
            return None;
        }
        body.extend_from_slice(&data[..size]);
    }
}

/// The first value of header `name` in a raw head (case-insensitive name).
fn header_in(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// Reads one request (head, and the body its framing announces).
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>, conn: usize) -> Option<Seen> {
    let head = read_head(s, buf).await?;
    let body = if header_in(&head, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        read_chunked(s, buf).await
    } else if let Some(n) = header_in(&head, "content-length") {
        match n.parse::<usize>() {
            Ok(n) => read_n(s, buf, n).await,
            Err(_) => None,
        }
    } else {
        Some(Vec::new())
    };
    Some(Seen { conn, head, body })
}

// ---------------------------------------------------------------------------------------
// the client side
// ---------------------------------------------------------------------------------------

/// A gateway with API `/b/1.0.0` (GET, POST, HEAD on `/*`) in front of `url`.
async fn gateway_for(url: &str) -> Running {
    let mut a = api("b", "/b", http_ep(url));
    a.operations
        .push(serde_json::from_value(serde_json::json!({"verb": "HEAD", "target": "/*"})).unwrap());
    gateway(vec![a], test_config()).await
}

/// A request to `/b/1.0.0{path}` with credentials and `Connection: close`; `extra` are
/// more header lines (each ending in CRLF).
fn request(method: &str, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} /b/1.0.0{path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer good\r\n\
         Connection: close\r\n{extra}\r\n"
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Reads until EOF, an error or [`CLIENT_WAIT`]; what arrived.
async fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(CLIENT_WAIT, async {
        let mut chunk = [0u8; 16 << 10];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    out
}

/// Sends `bytes` on a new connection to `addr`; everything that came back.
async fn send(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = tokio::time::timeout(CLIENT_WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .unwrap();
    s.write_all(bytes).await.unwrap();
    read_to_eof(&mut s).await
}

/// A response as the client received it.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    /// The body, decoded from its framing (the bytes after the head for HEAD/204/304).
    body: Vec<u8>,
    /// Whether the body's framing ended properly (all Content-Length bytes, the last chunk).
    complete: bool,
    /// Everything received, as text (for messages).
    raw: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        header_in(&self.head, name)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Decodes a chunked body from `data`: (body, whether the last chunk and trailers arrived).
fn decode_chunked(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(data, b"\r\n") else {
            return (body, false);
        };
        let line = String::from_utf8_lossy(&data[..eol]).into_owned();
        data = &data[eol + 2..];
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            return (body, false);
        };
        if size == 0 {
            // trailers until an empty line
            loop {
                let Some(eol) = find(data, b"\r\n") else {
                    return (body, false);
                };
                if eol == 0 {
                    return (body, true);
                }
                data = &data[eol + 2..];
            }
        }
        if data.len() < size + 2 {
            body.extend_from_slice(&data[..size.min(data.len())]);
            return (body, false);
        }
        body.extend_from_slice(&data[..size]);
        if &data[size..size + 2] != b"\r\n" {
            return (body, false);
        }
        data = &data[size + 2..];
    }
}

/// Parses what a client received for one request (`head_request`: it was HEAD).
fn parse(raw: &[u8], head_request: bool) -> Resp {
    let text = String::from_utf8_lossy(raw).into_owned();
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return Resp {
            status: 0,
            head: text.clone(),
            body: Vec::new(),
            complete: false,
            raw: text,
        };
    };
    let head = String::from_utf8_lossy(&raw[..end + 4]).into_owned();
    let rest = &raw[end + 4..];
    let status = status_of(&head);
    let (body, complete) = if head_request || status == 204 || status == 304 {
        (rest.to_vec(), rest.is_empty())
    } else if header_in(&head, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        decode_chunked(rest)
    } else if let Some(n) = header_in(&head, "content-length").and_then(|v| v.parse().ok()) {
        let n: usize = n;
        (rest[..n.min(rest.len())].to_vec(), rest.len() >= n)
    } else {
        (rest.to_vec(), true)
    };
    Resp {
        status,
        head,
        body,
        complete,
        raw: text,
    }
}

/// `method /b/1.0.0{path}` through the gateway, parsed.
async fn call(gw: &Running, method: &str, path: &str) -> Resp {
    let raw = send(gw.addr, &request(method, path, "", b"")).await;
    parse(&raw, method == "HEAD")
}

const OK2: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

// ---------------------------------------------------------------------------------------
// 1. chunked responses
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn chunked_response_with_extension_and_trailer_is_delivered_and_connection_reused() {
    let big = vec![b'z'; 100_000];
    let mut big_answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    big_answer.extend_from_slice(format!("{:X}\r\n", big.len()).as_bytes());
    big_answer.extend_from_slice(&big);
    big_answer.extend_from_slice(b"\r\n3\r\nend\r\n0\r\n\r\n");
    let b = scripted(vec![
        vec![
            w("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"),
            w("5;name=\"val\"\r\nhel"),
            Step::Sleep(30),
            w("lo\r\n1\r"),
            Step::Sleep(30),
            w("\n \r\n6\r\nworld!\r\n0\r\nx-checksum: abc\r\n"),
            Step::Sleep(30),
            w("x-other: 2\r\n\r\n"),
        ],
        vec![Step::Write(big_answer)],
        vec![w(OK2)],
    ])
    .await;
    let gw = gateway_for(&b.url).await;

    let r = call(&gw, "GET", "/chunked").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r.complete, "{}", r.raw);
    assert_eq!(r.text(), "hello world!", "{}", r.raw);
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert!(
        !r.raw.contains("x-checksum"),
        "trailers are not forwarded: {}",
        r.raw
    );

    let r = call(&gw, "GET", "/big").await;
    assert_eq!(r.status, 200, "{}", &r.raw[..300.min(r.raw.len())]);
    assert!(r.complete);
    assert_eq!(r.body.len(), big.len() + 3);
    assert!(r.body[..big.len()].iter().all(|c| *c == b'z'));
    assert!(r.body.ends_with(b"end"));

    let r = call(&gw, "GET", "/after").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", r.raw);
    assert_eq!(
        b.accepted(),
        1,
        "the chunked responses left the connection reusable"
    );
    let conns = b.conns();
    assert_eq!(conns, [0, 0, 0]);
}

// ---------------------------------------------------------------------------------------
// 2. Content-Length over several writes; Connection: close
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn content_length_response_in_pieces_and_connection_close_is_not_reused() {
    let b = scripted(vec![
        vec![
            w("HTTP/1.1 200 OK\r\ncontent-"),
            Step::Sleep(40),
            w("length: 11\r\nx-a: 1\r\n\r\nhel"),
            Step::Sleep(40),
            w("lo wo"),
            Step::Sleep(40),
            w("rld"),
        ],
        // says close, but leaves the socket open: reusing it would be the gateway's doing
        vec![w(
            "HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 3\r\n\r\nbye",
        )],
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh")],
    ])
    .await;
    let gw = gateway_for(&b.url).await;

    let r = call(&gw, "GET", "/pieces").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r.complete, "{}", r.raw);
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("content-length").as_deref(), Some("11"));
    assert_eq!(r.header("x-a").as_deref(), Some("1"));

    let r = call(&gw, "GET", "/close").await;
    assert_eq!((r.status, r.text().as_str()), (200, "bye"), "{}", r.raw);
    assert_eq!(
        b.accepted(),
        1,
        "the second request reused the first connection"
    );

    let r = call(&gw, "GET", "/next").await;
    assert_eq!((r.status, r.text().as_str()), (200, "fresh"), "{}", r.raw);
    assert_eq!(
        b.accepted(),
        2,
        "a response with Connection: close leaves its connection unused"
    );
    let conns = b.conns();
    assert_eq!(conns, [0, 0, 1]);
}

// ---------------------------------------------------------------------------------------
// 3. body delimited by the backend closing; HTTP/1.0
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn body_until_close_is_delivered_whole() {
    let middle = "x".repeat(100_000);
    let b = scripted(vec![
        vec![
            w("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil "),
            Step::Sleep(40),
            w(&middle),
            Step::Sleep(40),
            w(" the end"),
            Step::Close,
        ],
        // HTTP/1.0 without keep-alive: not reused, even though the socket stays open
        vec![w("HTTP/1.0 200 OK\r\ncontent-length: 4\r\n\r\nold1")],
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnew1")],
    ])
    .await;
    let gw = gateway_for(&b.url).await;

    let r = call(&gw, "GET", "/eof").await;
    assert_eq!(r.status, 200, "{}", &r.raw[..300.min(r.raw.len())]);
    assert!(r.complete, "the client got a complete response");
    assert_eq!(r.body.len(), 6 + middle.len() + 8);
    assert_eq!(r.text(), format!("until {middle} the end"));

    let r = call(&gw, "GET", "/http10").await;
    assert_eq!((r.status, r.text().as_str()), (200, "old1"), "{}", r.raw);
    assert_eq!(
        b.accepted(),
        2,
        "a connection ended by the backend is not reused"
    );

    let r = call(&gw, "GET", "/next").await;
    assert_eq!((r.status, r.text().as_str()), (200, "new1"), "{}", r.raw);
    assert_eq!(
        b.accepted(),
        3,
        "an HTTP/1.0 response's connection is not reused"
    );
}

// ---------------------------------------------------------------------------------------
// 4. HEAD
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn head_response_has_no_body_and_connection_is_reused() {
    let b = scripted(vec![
        vec![w(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n",
        )],
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")],
    ])
    .await;
    let gw = gateway_for(&b.url).await;

    let r = call(&gw, "HEAD", "/thing").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        r.header("content-length").as_deref(),
        Some("5"),
        "{}",
        r.raw
    );
    assert!(
        r.body.is_empty(),
        "no body after a HEAD response: {}",
        r.raw
    );

    let r = call(&gw, "GET", "/thing").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r.complete, "{}", r.raw);
    assert_eq!(r.text(), "hello");
    assert_eq!(
        b.accepted(),
        1,
        "the HEAD response left the connection reusable"
    );
    let seen = b.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].head.starts_with("HEAD /thing "), "{}", seen[0].head);
    assert!(seen[1].head.starts_with("GET /thing "), "{}", seen[1].head);
    assert_eq!(seen[1].conn, 0);
}

// ---------------------------------------------------------------------------------------
// 5. 204, 304, interim 1xx
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn no_body_statuses_and_interim_responses() {
    let b = scripted(vec![
        vec![w("HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n")],
        // a 304 may carry the Content-Length of the representation; no body follows
        vec![w(
            "HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 10\r\n\r\n",
        )],
        vec![w(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
        )],
        vec![
            w("HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"),
            Step::Sleep(50),
            w("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nfinal2"),
        ],
    ])
    .await;
    let gw = gateway_for(&b.url).await;

    let r = call(&gw, "GET", "/204").await;
    assert_eq!(r.status, 204, "{}", r.raw);
    assert!(r.body.is_empty(), "{}", r.raw);
    assert_eq!(r.header("x-a").as_deref(), Some("1"));

    let r = call(&gw, "GET", "/304").await;
    assert_eq!(r.status, 304, "{}", r.raw);
    assert!(r.body.is_empty(), "{}", r.raw);
    assert_eq!(r.header("etag").as_deref(), Some("\"v1\""));

    let r = call(&gw, "GET", "/100").await;
    assert!(r.raw.starts_with("HTTP/1.1 200 "), "{}", r.raw);
    assert!(!r.raw.contains("100 Continue"), "{}", r.raw);
    assert!(r.complete);
    assert_eq!(r.text(), "final");

    let r = call(&gw, "GET", "/103").await;
    assert!(r.raw.starts_with("HTTP/1.1 200 "), "{}", r.raw);
    // (not just "103": the random request id may contain it)
    assert!(!r.raw.contains("103 Early Hints"), "{}", r.raw);
    assert!(!r.raw.to_ascii_lowercase().contains("link:"), "{}", r.raw);
    assert!(r.complete);
    assert_eq!(r.text(), "final2");

    assert_eq!(
        b.accepted(),
        1,
        "204, 304 and answers after interim responses leave the connection reusable"
    );
}

#[tokio::test]
async fn stray_bytes_after_a_response_make_its_connection_unusable() {
    let b = scripted(vec![
        // a body after a HEAD response, in the same write
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")],
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nfresh1")],
        // a body after a HEAD response, arriving while the connection is idle
        vec![
            w("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            Step::Sleep(50),
            w("hello"),
        ],
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nfresh2")],
        // more bytes than Content-Length says
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA")],
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nfresh3")],
    ])
    .await;
    let gw = gateway_for(&b.url).await;

    let r = call(&gw, "HEAD", "/h1").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r.body.is_empty(), "{}", r.raw);
    let r = call(&gw, "GET", "/g1").await;
    assert_eq!((r.status, r.text().as_str()), (200, "fresh1"), "{}", r.raw);
    assert_eq!(b.accepted(), 2);

    let r = call(&gw, "HEAD", "/h2").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r.body.is_empty(), "{}", r.raw);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = call(&gw, "GET", "/g2").await;
    assert_eq!((r.status, r.text().as_str()), (200, "fresh2"), "{}", r.raw);
    assert_eq!(b.accepted(), 3);

    let r = call(&gw, "GET", "/extra").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", r.raw);
    let r = call(&gw, "GET", "/g3").await;
    assert_eq!((r.status, r.text().as_str()), (200, "fresh3"), "{}", r.raw);
    assert_eq!(b.accepted(), 4);
    let conns = b.conns();
    assert_eq!(conns, [0, 1, 1, 2, 2, 3]);
}

// ---------------------------------------------------------------------------------------
// 6. invalid backend answers
// ---------------------------------------------------------------------------------------

/// The raw answer to a GET of a backend answering with `steps`.
async fn answer_to_get(steps: Vec<Step>) -> String {
    let b = scripted(vec![steps]).await;
    let gw = gateway_for(&b.url).await;
    let raw = send(gw.addr, &request("GET", "/bad", "", b"")).await;
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn invalid_backend_answers_are_503() {
    let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..10 {
        huge.extend_from_slice(format!("x-pad-{i}: {}\r\n", "a".repeat(7000)).as_bytes());
    }
    let unterminated = huge.clone();
    huge.extend_from_slice(b"content-length: 2\r\n\r\nok");
    let mut many_fields = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..101 {
        many_fields.extend_from_slice(format!("x-f-{i}: {i}\r\n").as_bytes());
    }
    many_fields.extend_from_slice(b"content-length: 2\r\n\r\nok");
    let cases: Vec<(&str, Vec<Step>)> = vec![
        ("garbage status line", vec![w("garbage\r\n\r\n")]),
        ("non-numeric status", vec![w("HTTP/1.1 2OO OK\r\ncontent-length: 2\r\n\r\nok")]),
        (
            "Transfer-Encoding and Content-Length",
            vec![w(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            )],
        ),
        (
            "two Content-Length values",
            vec![w(
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
            )],
        ),
        (
            "a Content-Length list with different values",
            vec![w("HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello!")],
        ),
        ("a head larger than 64 KiB", vec![Step::Write(huge)]),
        (
            "an unterminated head larger than 64 KiB",
            vec![Step::Write(unterminated), Step::Sleep(10_000)],
        ),
        (
            "unsolicited 101",
            vec![w(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
            )],
        ),
        ("closed within the head", vec![w("HTTP/1.1 200 OK\r\ncontent-le"), Step::Close]),
        ("closed without answering", vec![Step::Close]),
        ("more than 100 header fields", vec![Step::Write(many_fields)]),
    ];
    for (what, steps) in cases {
        let r = answer_to_get(steps).await;
        assert_ne!(status_of(&r), 500, "{what}: {r}");
        assert_eq!(
            (status_of(&r), code_of(&r)),
            (503, Some(101503)),
            "{what}: {r}"
        );
    }
}

#[tokio::test]
async fn backend_closing_mid_body_aborts_the_client_response() {
    // Content-Length framing: 10 of 100 bytes, then the backend closes
    let raw = answer_to_get(vec![
        w("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789"),
        Step::Sleep(300),
        Step::Close,
    ])
    .await;
    let r = parse(raw.as_bytes(), false);
    assert_ne!(r.status, 500, "{raw}");
    assert_eq!(
        r.status, 200,
        "the head went out before the body failed: {raw}"
    );
    assert_eq!(r.header("content-length").as_deref(), Some("100"), "{raw}");
    assert!(
        !r.complete,
        "the client must not get a complete response: {raw}"
    );
    assert!(r.body.len() < 100, "{raw}");
    assert!(r.body.starts_with(b"0123456789"), "{raw}");

    // chunked framing: one chunk, then the backend closes without the last chunk
    let raw = answer_to_get(vec![
        w("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        Step::Sleep(300),
        Step::Close,
    ])
    .await;
    let r = parse(raw.as_bytes(), false);
    assert_ne!(r.status, 500, "{raw}");
    assert_eq!(r.status, 200, "{raw}");
    assert!(
        !r.complete,
        "the client must not get a complete response: {raw}"
    );
    assert_eq!(r.text(), "hello", "{raw}");

    // a malformed chunk after the head
    let raw = answer_to_get(vec![
        w("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        Step::Sleep(300),
        w("zz\r\nnope\r\n0\r\n\r\n"),
        Step::Sleep(1_000),
    ])
    .await;
    let r = parse(raw.as_bytes(), false);
    assert_ne!(r.status, 500, "{raw}");
    assert!(!r.complete, "a malformed chunk aborts the response: {raw}");
    assert!(!raw.contains("nope"), "{raw}");
}

#[tokio::test]
async fn unknown_transfer_coding_is_refused_or_kept() {
    for te in ["gzip, chunked", "chunked, gzip"] {
        let raw = answer_to_get(vec![
            w(format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            )),
            Step::Close,
        ])
        .await;
        let r = parse(raw.as_bytes(), false);
        assert_ne!(r.status, 500, "{te}: {raw}");
        let refused = (r.status, code_of(&raw)) == (503, Some(101503));
        let coding_named = r
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("gzip"))
            || r.header("content-encoding")
                .is_some_and(|v| v.contains("gzip"));
        assert!(
            refused || coding_named,
            "{te}: the client got a body still in the gzip transfer coding, with no header \
             naming the coding: {raw}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 7. request bodies
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn request_bodies_keep_their_framing() {
    let b = scripted(vec![vec![w(OK2)], vec![w(OK2)], vec![w(OK2)]]).await;
    let gw = gateway_for(&b.url).await;

    // chunked from the client, in pieces: chunked to the backend, same bytes
    let big = "q".repeat(70_000);
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(&request(
        "POST",
        "/chunked",
        "Transfer-Encoding: chunked\r\n",
        b"5\r\nhello\r\n",
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b"1;ext=1\r\n \r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len()).as_bytes())
        .await
        .unwrap();
    let r = parse(&read_to_eof(&mut s).await, false);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", r.raw);
    let seen = b.seen();
    let got = &seen[0];
    assert!(got.head.starts_with("POST /chunked "), "{}", got.head);
    assert_eq!(
        header_in(&got.head, "transfer-encoding").as_deref(),
        Some("chunked"),
        "{}",
        got.head
    );
    assert_eq!(header_in(&got.head, "content-length"), None, "{}", got.head);
    assert_eq!(
        got.body.as_deref(),
        Some(format!("hello {big}").as_bytes()),
        "the backend decodes the same bytes"
    );

    // Content-Length from the client: the same length and bytes
    let r = parse(
        &send(
            gw.addr,
            &request("POST", "/length", "Content-Length: 11\r\n", b"hello world"),
        )
        .await,
        false,
    );
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", r.raw);
    let got = &b.seen()[1];
    assert_eq!(
        header_in(&got.head, "content-length").as_deref(),
        Some("11"),
        "{}",
        got.head
    );
    assert_eq!(
        header_in(&got.head, "transfer-encoding"),
        None,
        "{}",
        got.head
    );
    assert_eq!(got.body.as_deref(), Some(&b"hello world"[..]));

    // Expect: 100-continue: the gateway answers it, the backend never sees it
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(&request(
        "POST",
        "/expect",
        "Expect: 100-continue\r\nContent-Length: 5\r\n",
        b"",
    ))
    .await
    .unwrap();
    let mut interim = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), async {
        while find(&interim, b"\r\n\r\n").is_none() {
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before 100 Continue");
            interim.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("100 Continue within 3 s");
    let interim = String::from_utf8_lossy(&interim).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100 "), "{interim}");
    s.write_all(b"hello").await.unwrap();
    let r = parse(&read_to_eof(&mut s).await, false);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", r.raw);
    let got = &b.seen()[2];
    assert_eq!(header_in(&got.head, "expect"), None, "{}", got.head);
    assert_eq!(
        header_in(&got.head, "content-length").as_deref(),
        Some("5"),
        "{}",
        got.head
    );
    assert_eq!(got.body.as_deref(), Some(&b"hello"[..]));
}

// ---------------------------------------------------------------------------------------
// 8. idle connections the backend closed
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn idle_connection_closed_by_the_backend_is_not_used() {
    let b = scripted(vec![
        vec![w(OK2), Step::Close],
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain")],
    ])
    .await;
    let gw = gateway_for(&b.url).await;
    let r = call(&gw, "GET", "/one").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", r.raw);
    // the backend's FIN arrives while the connection is idle in the pool
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = call(&gw, "GET", "/two").await;
    assert_eq!((r.status, r.text().as_str()), (200, "again"), "{}", r.raw);
    assert_eq!(b.accepted(), 2);
}

#[tokio::test]
async fn half_closed_idle_connection_gets_no_request() {
    // the backend sends FIN but keeps reading: a request on the stale connection would
    // be seen (and left unanswered)
    let b = scripted(vec![
        vec![w(OK2), Step::HalfClose],
        vec![w("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain")],
    ])
    .await;
    let gw = gateway_for(&b.url).await;
    let r = call(&gw, "GET", "/one").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", r.raw);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = call(&gw, "GET", "/two").await;
    assert_eq!((r.status, r.text().as_str()), (200, "again"), "{}", r.raw);
    assert_eq!(b.accepted(), 2);
    let conns = b.conns();
    assert_eq!(
        conns,
        [0, 1],
        "the second GET went only to a new connection"
    );
}

#[tokio::test]
async fn early_response_while_the_request_body_is_sent() {
    // answers 413 after the request head, without reading the body, and closes
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_head(&mut s, &mut buf).await.is_some() {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\
                              connection: close\r\n\r\nbig",
                        )
                        .await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    });
    let gw = gateway_for(&url).await;
    let body = vec![b'a'; 8 << 20];
    let mut req = request(
        "POST",
        "/upload",
        &format!("Content-Length: {}\r\n", body.len()),
        b"",
    );
    req.extend_from_slice(&body);
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let mut out = Vec::new();
    tokio::join!(
        async {
            let _ = wr.write_all(&req).await;
        },
        async {
            let _ = tokio::time::timeout(CLIENT_WAIT, rd.read_to_end(&mut out)).await;
        }
    );
    let r = parse(&out, false);
    assert_eq!(
        (r.status, r.text().as_str()),
        (413, "big"),
        "the backend's early answer reaches the client: {}",
        &r.raw[..r.raw.len().min(400)]
    );
}

#[tokio::test]
async fn stalled_response_body_is_aborted_after_the_endpoint_timeout() {
    // the head and 3 of 10 body bytes, then nothing (the connection stays open)
    let b = scripted(vec![vec![
        w("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"),
        Step::Sleep(30_000),
    ]])
    .await;
    let mut ep = http_ep(&b.url);
    ep["production_endpoints"]["config"] = serde_json::json!({"actionDuration": 300});
    let gw = gateway(vec![api("b", "/b", ep)], test_config()).await;
    let started = std::time::Instant::now();
    let raw = send(gw.addr, &request("GET", "/slow", "", b"")).await;
    let waited = started.elapsed();
    let r = parse(&raw, false);
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(!r.complete, "the body is cut off, not completed: {}", r.raw);
    assert_eq!(r.text(), "abc");
    assert!(
        waited < Duration::from_secs(3),
        "aborted after the 300 ms endpoint timeout, not held open: {waited:?}"
    );
}

// ---------------------------------------------------------------------------------------
// https backends
// ---------------------------------------------------------------------------------------

/// An https backend with a self-signed certificate for 127.0.0.1 (hyper serving "tls"); its
/// port, its certificate file and how many connections it accepted.
async fn tls_backend(dir: &std::path::Path) -> (u16, std::path::PathBuf, Arc<AtomicUsize>) {
    let (cert, key) = apim_gateway::tls::ensure_dev_cert(dir, "localhost").unwrap();
    let acceptor = apim_gateway::tls::acceptor_from_pem(
        &std::fs::read(&cert).unwrap(),
        &std::fs::read(&key).unwrap(),
    )
    .unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"tls")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, cert, accepted)
}

#[tokio::test]
async fn https_backend_trusted_through_backend_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (port, cert, accepted) = tls_backend(dir.path()).await;
    let url = format!("https://127.0.0.1:{port}");

    let mut config = test_config();
    config.gateway.backend_ca_file = Some(cert.clone());
    let gw = gateway(vec![api("b", "/b", http_ep(&url))], config).await;
    for i in 0..3 {
        let raw = send(gw.addr, &request("GET", "/x", "", b"")).await;
        let r = parse(&raw, false);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "tls"),
            "request {i}: {}",
            r.raw
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the TLS connection was pooled and reused"
    );

    // without the CA the backend's certificate is not trusted: 503, nothing served
    let gw = gateway(vec![api("b", "/b", http_ep(&url))], test_config()).await;
    let raw =
        String::from_utf8_lossy(&send(gw.addr, &request("GET", "/x", "", b"")).await).into_owned();
    assert_eq!(status_of(&raw), 503, "{raw}");
    assert_eq!(code_of(&raw), Some(101503), "{raw}");
    assert!(!raw.ends_with("tls"), "{raw}");
}

#[test]
fn backend_ca_file_that_is_not_a_certificate_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    for path in [bad, dir.path().join("missing.pem")] {
        let mut config = test_config();
        config.gateway.backend_ca_file = Some(path.clone());
        let err = apim_gateway::Gateway::builder()
            .config(config)
            .validator(Arc::new(TestValidator))
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("gateway.backend_ca_file"),
            "{}: {err}",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// many exchanges at once
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_round_trip_their_bodies() {
    use http_body_util::BodyExt as _;
    // an echo backend (hyper): the request body streams back as the response body
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(req.into_body()))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let mut a = api("b", "/b", http_ep(&url));
    a.operations
        .push(serde_json::from_value(serde_json::json!({"verb": "POST", "target": "/*"})).unwrap());
    let gw = gateway(vec![a], test_config()).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>>(
    );

    const TASKS: usize = 16;
    const EACH: usize = 12;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (client, uri) = (client.clone(), gw.url("/b/1.0.0/echo"));
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                // sizes from empty to 300 KB; bytes that depend on the task and request
                let len = (t * 7919 + i * 104_729) % 300_000 * usize::from(i % 5 != 0);
                let body: Vec<u8> = (0..len).map(|j| (j * 31 + t + i) as u8).collect();
                let sent = bytes::Bytes::from(body);
                // every other request streams its body in pieces (chunked, no length)
                let req_body = if i % 2 == 0 {
                    http_body_util::Full::new(sent.clone()).boxed()
                } else {
                    let pieces: Vec<Result<_, std::convert::Infallible>> = sent
                        .chunks(40_000)
                        .map(|c| Ok(http_body::Frame::data(bytes::Bytes::copy_from_slice(c))))
                        .collect();
                    http_body_util::StreamBody::new(futures_util::stream::iter(pieces)).boxed()
                };
                let req = http::Request::post(&uri)
                    .header("authorization", "Bearer good")
                    .body(req_body)
                    .unwrap();
                let res = tokio::time::timeout(CLIENT_WAIT, client.request(req))
                    .await
                    .expect("answered in time")
                    .unwrap();
                assert_eq!(res.status(), 200, "task {t} request {i}");
                let got = res.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(got.len(), sent.len(), "task {t} request {i}");
                assert!(got == sent, "task {t} request {i}: body differs");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = accepted.load(Ordering::SeqCst);
    assert!(
        n <= TASKS * 2,
        "{n} backend connections for {} requests: pooled connections are reused",
        TASKS * EACH
    );
}

#[tokio::test]
async fn a_slowly_streamed_body_outlives_the_idle_timeout() {
    // the head at once, then the body in four pieces 400 ms apart (1.6 s in all)
    let b = scripted(vec![vec![
        w("HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nab"),
        Step::Sleep(400),
        w("cd"),
        Step::Sleep(400),
        w("ef"),
        Step::Sleep(400),
        w("g"),
        Step::Sleep(400),
        w("h"),
    ]])
    .await;
    let mut config = test_config();
    config.gateway.idle_timeout_ms = 300;
    let gw = gateway(vec![api("b", "/b", http_ep(&b.url))], config).await;
    let r = parse(
        &send(gw.addr, &request("GET", "/trickle", "", b"")).await,
        false,
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "abcdefgh"),
        "{}",
        r.raw
    );
    assert!(r.complete);
}

// ---------------------------------------------------------------------------------------
// the backend's fields as they arrived (native server) and as parsed (hyper)
// ---------------------------------------------------------------------------------------

/// What a client's answer says, in a form two servers can be compared in: the status line,
/// the fields sorted with their names in lower case (`date` left out, request ids replaced),
/// the decoded body and whether it ended properly.
fn comparable(raw: &[u8], head_request: bool) -> (String, Vec<String>, Vec<u8>, bool) {
    let r = parse(raw, head_request);
    let mut lines = r.head.split("\r\n").filter(|l| !l.is_empty());
    let status = lines.next().unwrap_or("").to_owned();
    let mut fields: Vec<String> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.to_ascii_lowercase();
            match k.as_str() {
                "date" => None,
                "x-request-id" => Some("x-request-id: ID".to_owned()),
                _ => Some(format!("{k}:{v}")),
            }
        })
        .collect();
    fields.sort();
    (status, fields, r.body, r.complete)
}

/// The native server writes a backend's fields as they arrived when nothing in the flow
/// reads them; hyper's server gets them parsed into a header map. For every kind of answer —
/// the usual ones, hop-by-hop fields between others, more runs of fields than are kept as
/// they are, fields that `Connection` names, lengths given twice, unusual spacing and line
/// ends, bodyless statuses, HEAD — a client sees the same status, fields (names aside from
/// their case), body and framing from both.
#[tokio::test]
async fn backend_fields_reach_the_client_alike_as_they_arrived_or_parsed() {
    let answers: Vec<(&str, &str, Vec<u8>)> = vec![
        ("nginx's answer", "GET", b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 11:00:00 GMT\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\n{\"ok\":true}".to_vec()),
        ("no date", "GET", b"HTTP/1.1 201 Created\r\nLocation: /b/1\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("hop-by-hop between others", "GET", b"HTTP/1.1 200 OK\r\nX-A: 1\r\nKeep-Alive: timeout=5\r\nX-B: 2\r\nProxy-Authenticate: Basic\r\nX-C: 3\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("five runs", "GET", b"HTTP/1.1 200 OK\r\nX-1: a\r\nTrailer: t\r\nX-2: b\r\nUpgrade: h2c\r\nX-3: c\r\nKeep-Alive: 5\r\nX-4: d\r\nProxy-Authenticate: B\r\nX-5: e\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("a name twice, apart", "GET", b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-B: 2\r\nSet-Cookie: c=3\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("chunked", "GET", b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nX-B: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec()),
        ("until close", "GET", b"HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\nuntil close".to_vec()),
        ("length twice", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("length listed twice", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok".to_vec()),
        ("zero length", "GET", b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n".to_vec()),
        ("a field Connection names", "GET", b"HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: secret\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("no space after the colon", "GET", b"HTTP/1.1 200 OK\r\nX-A:1\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("spaces around the value", "GET", b"HTTP/1.1 200 OK\r\nX-A:   1  \r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("bare line feeds", "GET", b"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n\nok".to_vec()),
        ("an empty value", "GET", b"HTTP/1.1 200 OK\r\nX-Empty: \r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("bytes beyond ASCII", "GET", b"HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("the backend's own request id", "GET", b"HTTP/1.1 200 OK\r\nX-Request-ID: from-the-backend\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("HTTP/1.0", "GET", b"HTTP/1.0 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("204", "GET", b"HTTP/1.1 204 No Content\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n".to_vec()),
        ("304", "GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 7\r\n\r\n".to_vec()),
        ("404 from the backend", "GET", b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nnope".to_vec()),
        ("HEAD", "HEAD", b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 7\r\n\r\n".to_vec()),
    ];
    let script = || {
        answers
            .iter()
            .map(|(_, _, a)| {
                let mut steps = vec![w(a)];
                if a.ends_with(b"until close") {
                    steps.push(Step::Close);
                }
                steps
            })
            .collect::<Vec<_>>()
    };
    let (b1, b2) = (scripted(script()).await, scripted(script()).await);
    let native = gateway_for(&b1.url).await;
    let mut a = api("b", "/b", http_ep(&b2.url));
    a.operations
        .push(serde_json::from_value(serde_json::json!({"verb": "HEAD", "target": "/*"})).unwrap());
    let mut config = test_config();
    config.gateway.http1_server = apim_core::config::Http1Server::Hyper;
    let hyper = gateway(vec![a], config).await;
    for (what, method, _) in &answers {
        let head_request = *method == "HEAD";
        let req = request(method, "/x", "", b"");
        let n = send(native.addr, &req).await;
        let h = send(hyper.addr, &req).await;
        let (n, h) = (comparable(&n, head_request), comparable(&h, head_request));
        assert_eq!(n, h, "{what}: native (left) and hyper (right) differ");
        assert!(n.0.starts_with("HTTP/1.1 "), "{what}: {n:?}");
        if !head_request && !what.starts_with("20") && !what.starts_with("30") {
            assert!(n.3, "{what}: the body ended properly");
        }
    }
    // the usual answer went out as it arrived: the backend's spelling of the names
    let b3 = scripted(vec![vec![w(&answers[0].2)]]).await;
    let native = gateway_for(&b3.url).await;
    let raw = String::from_utf8_lossy(&send(native.addr, &request("GET", "/x", "", b"")).await)
        .into_owned();
    assert!(
        raw.contains("\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 11:00:00 GMT\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"),
        "{raw}"
    );
    assert!(!raw.to_ascii_lowercase().contains("keep-alive"), "{raw}");
    assert_eq!(
        raw.matches("ontent-").count(),
        2,
        "one Content-Type, one Content-Length: {raw}"
    );
}

/// A decider that admits everything and keeps the response byte counts it is told of.
#[derive(Default)]
struct CountingBytes(Mutex<Vec<u64>>);

#[async_trait::async_trait]
impl apim_core::throttle::ThrottleDecider for CountingBytes {
    async fn decide(
        &self,
        _: &apim_core::throttle::ThrottleContext<'_>,
    ) -> apim_core::throttle::Decision {
        apim_core::throttle::Decision::Allow
    }

    fn record(
        &self,
        _: &apim_core::throttle::ThrottleContext<'_>,
        outcome: &apim_core::throttle::Outcome,
    ) {
        self.0.lock().unwrap().push(outcome.response_bytes);
    }
}

/// Bandwidth quotas count a response's bytes (from its `Content-Length` when it has one, else
/// as they stream): the same whether the
/// backend's fields passed through as they arrived (the field keeps the backend's spelling)
/// or were parsed into the map (a request with `Origin`: CORS reads the fields).
#[tokio::test]
async fn response_bytes_are_counted_alike_with_fields_passed_through_or_parsed() {
    let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let b = scripted(vec![vec![w(ok)], vec![w(ok)], vec![w(chunked)]]).await;
    let decider = Arc::new(CountingBytes::default());
    let gw = serve(build_gateway_with(
        vec![api("b", "/b", http_ep(&b.url))],
        test_config(),
        decider.clone(),
    ))
    .await;
    let passed =
        String::from_utf8_lossy(&send(gw.addr, &request("GET", "/x", "", b"")).await).into_owned();
    assert!(passed.contains("\r\nContent-Length: 11\r\n"), "{passed}");
    let parsed = send(
        gw.addr,
        &request("GET", "/x", "Origin: https://app.example.com\r\n", b""),
    )
    .await;
    let parsed = String::from_utf8_lossy(&parsed).into_owned();
    assert!(parsed.contains("\r\ncontent-length: 11\r\n"), "{parsed}");
    let chunked = call(&gw, "GET", "/x").await;
    assert_eq!(chunked.text(), "ok");
    // a chunked answer counts the bytes that went through (issue 18 item 12; it was 0)
    assert_eq!(*decider.0.lock().unwrap(), [11, 11, 2]);
}
