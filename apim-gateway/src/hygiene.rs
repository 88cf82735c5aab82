//! Request hygiene: refuse requests whose path or `Host` a backend could read differently from
//! the router (400 via [`ApimError::BadRequest`]), before any routing or authentication.
//!
//! Refused: dot segments (`/ctx/1.0/../admin`, `/./`), percent-encoded dots, slashes,
//! backslashes and NUL (`%2e`, `%2f`, `%5c`, `%00`), raw backslashes, and a missing, repeated or
//! malformed `Host` (HTTP/1.1; HTTP/2 carries the authority in the URI), and `Content-Length`
//! together with `Transfer-Encoding` (hyper itself refuses duplicate `Content-Length`).

use std::task::{Context, Poll};

use apim_core::ApimError;
use bytes::Bytes;
use futures_util::future::{Either, Ready};
use http::{header, Request, Response, Version};
use tower::{Layer, Service};

/// Checks a request path; `Err` says what is wrong.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err("path must start with '/'");
    }
    // one pass over the bytes: segment ends (for dot segments), backslashes, escapes
    let dot = |seg: &[u8]| seg == b"." || seg == b"..";
    let (mut seg, mut i) = (1, 1);
    while i < b.len() {
        match b[i] {
            b'/' => {
                if dot(&b[seg..i]) {
                    return Err(DOT_SEGMENT);
                }
                seg = i + 1;
            }
            b'\\' => return Err("backslash is not allowed in the path"),
            // a path parameter after a dot segment (`..;x`, `.;`): Tomcat, Jetty and Spring
            // drop the parameter and then see the dot segment
            b';' if dot(&b[seg..i]) => return Err(DOT_SEGMENT),
            b'%' => {
                let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2)) else {
                    return Err("truncated percent-encoding in the path");
                };
                match (h.to_ascii_lowercase(), l.to_ascii_lowercase()) {
                    (b'2', b'e') => return Err("encoded '.' is not allowed in the path"),
                    (b'2', b'f') => return Err("encoded '/' is not allowed in the path"),
                    (b'5', b'c') => return Err("encoded '\\' is not allowed in the path"),
                    (b'0', b'0') => return Err("encoded NUL is not allowed in the path"),
                    // `..%3b`: an encoded ';' after a dot segment, for a backend that decodes
                    (b'3', b'b') if dot(&b[seg..i]) => return Err(DOT_SEGMENT),
                    (h, l) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {}
                    _ => return Err("invalid percent-encoding in the path"),
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if dot(&b[seg..]) {
        return Err(DOT_SEGMENT);
    }
    Ok(())
}

const DOT_SEGMENT: &str = "dot segments are not allowed in the path";

/// Checks a `Host` value: `host[:port]` with a DNS name / IPv4 address (letters, digits, `-`,
/// `.`, `_`) or a bracketed IPv6 address, no user info, no path, a port up to 65535. Works on
/// the bytes, without allocating.
pub fn check_host(host: &[u8]) -> Result<(), &'static str> {
    if !host.is_ascii() {
        return Err("Host is not ASCII");
    }
    if host.is_empty() || host.contains(&b'@') {
        return Err("Host must be host[:port]");
    }
    let (name_ok, rest) = if host[0] == b'[' {
        let Some(end) = host.iter().position(|&c| c == b']') else {
            return Err("Host is not a valid authority");
        };
        let inner = std::str::from_utf8(&host[1..end]).unwrap_or("");
        (
            !inner.is_empty() && inner.parse::<std::net::Ipv6Addr>().is_ok(),
            &host[end + 1..],
        )
    } else {
        let end = host.iter().position(|&c| c == b':').unwrap_or(host.len());
        let name = &host[..end];
        (
            !name.is_empty()
                && name
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_'),
            &host[end..],
        )
    };
    let port_ok = match rest {
        [] => true,
        [b':', digits @ ..] => {
            !digits.is_empty()
                && digits
                    .iter()
                    .try_fold(0u32, |n, &d| {
                        let n = n * 10 + u32::from(d.wrapping_sub(b'0'));
                        (d.is_ascii_digit() && n <= 65535).then_some(n)
                    })
                    .is_some()
        }
        _ => false,
    };
    if !port_ok {
        return Err("Host has an invalid port");
    }
    if name_ok {
        Ok(())
    } else {
        Err("Host has invalid characters")
    }
}

/// Checks path, framing and host of a request.
pub fn check_request<B>(req: &Request<B>) -> Result<(), ApimError> {
    // hyper lets Transfer-Encoding win; refusing the pair outright closes the smuggling door
    if req.headers().contains_key(header::TRANSFER_ENCODING)
        && req.headers().contains_key(header::CONTENT_LENGTH)
    {
        return Err(ApimError::BadRequest(
            "Content-Length together with Transfer-Encoding".into(),
        ));
    }
    check_path(req.uri().path()).map_err(|m| ApimError::BadRequest(m.into()))?;
    // the absolute form's authority (and HTTP/2's `:authority`) is the request's host, which
    // routing and `X-Forwarded-Host` use (RFC 9112 §3.2.2): checked as `Host` is
    if let Some(a) = req.uri().authority() {
        check_host(a.as_str().as_bytes()).map_err(|m| ApimError::BadRequest(m.into()))?;
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(ApimError::BadRequest("repeated Host header".into())),
        (Some(h), None) => check_host(h.as_bytes()).map_err(|m| ApimError::BadRequest(m.into()))?,
        (None, _) => {
            if req.version() == Version::HTTP_11 && req.uri().authority().is_none() {
                return Err(ApimError::BadRequest("missing Host header".into()));
            }
        }
    }
    Ok(())
}

/// Layer that answers 400 to requests failing [`check_request`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HygieneLayer;

impl HygieneLayer {
    /// The layer.
    pub fn new() -> Self {
        HygieneLayer
    }
}

impl<S> Layer<S> for HygieneLayer {
    type Service = Hygiene<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Hygiene { inner }
    }
}

/// The service of [`HygieneLayer`].
#[derive(Debug, Clone)]
pub struct Hygiene<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Hygiene<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match check_request(&req) {
            Ok(()) => Either::Left(self.inner.call(req)),
            Err(e) => {
                let mut res: Response<ResBody> = e.to_response();
                // the connection's framing may be ambiguous: do not reuse it
                res.headers_mut()
                    .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
                Either::Right(futures_util::future::ready(Ok(res)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in [
            "/",
            "/pizza/1.0.0/menu",
            "/a%20b/x",
            "/a/b.c/..d",
            "/q%41",
            "/a;b/c",
            "/a/...;x",
            "/a/x..;y",
            "/a/%3b",
            "/m;v=1/x%3Bb",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/ctx/1.0/../admin",
            "/ctx/..",
            "/ctx/./x",
            "/ctx/%2e%2e/admin",
            "/ctx/%2E%2e/admin",
            "/ctx/.%2e/admin",
            "/ctx/a%2fb",
            "/ctx/a%2Fb",
            "/ctx/a%5cb",
            "/ctx/a\\b",
            "/ctx/%00",
            "/ctx/%zz",
            "/ctx/%4",
            "ctx",
            // issue 18 item 16: dot segments with path parameters
            "/ctx/..;/admin",
            "/ctx/..;jsessionid=1/admin",
            "/ctx/.;/x",
            "/ctx/..;",
            "/ctx/..%3b/admin",
            "/ctx/..%3B/admin",
            "/ctx/.%3bx/admin",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    /// `prefix` followed by every string of up to `max` bytes from `alphabet`.
    fn strings_over(alphabet: &[u8], prefix: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut frontier = vec![prefix.to_vec()];
        let mut all = frontier.clone();
        for _ in 0..max {
            frontier = frontier
                .iter()
                .flat_map(|p| {
                    alphabet.iter().map(move |&c| {
                        let mut v = p.clone();
                        v.push(c);
                        v
                    })
                })
                .collect();
            all.extend(frontier.iter().cloned());
        }
        all
    }

    /// The path check before it became one pass over the bytes.
    fn check_path_by_segments(path: &str) -> bool {
        let b = path.as_bytes();
        if b.first() != Some(&b'/') || path.split('/').any(|s| s == "." || s == "..") {
            return false;
        }
        if b.contains(&b'\\') {
            return false;
        }
        let mut i = 0;
        while let Some(off) = b[i..].iter().position(|&c| c == b'%') {
            let p = i + off;
            let (Some(&h), Some(&l)) = (b.get(p + 1), b.get(p + 2)) else {
                return false;
            };
            match (h.to_ascii_lowercase(), l.to_ascii_lowercase()) {
                (b'2', b'e' | b'f') | (b'5', b'c') | (b'0', b'0') => return false,
                (h, l) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {}
                _ => return false,
            }
            i = p + 3;
        }
        true
    }

    #[test]
    fn path_check_agrees_with_the_segment_check() {
        // every path of up to 5 bytes after the leading '/' over the interesting bytes
        let mut cases = strings_over(b"a./\\%2eEf0c5", b"/", 5);
        cases.extend([b"x/..".to_vec(), b"".to_vec(), b"/a/%2".to_vec()]);
        assert!(cases.len() > 200_000);
        for case in cases {
            let path = std::str::from_utf8(&case).unwrap();
            assert_eq!(
                check_path(path).is_ok(),
                check_path_by_segments(path),
                "{path:?}"
            );
        }
    }

    /// The check before it worked on bytes: parse as an `Authority`, then look at the parts.
    fn check_host_via_authority(host: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(host) else {
            return false;
        };
        let Ok(a) = s.parse::<http::uri::Authority>() else {
            return false;
        };
        if s.contains('@') || a.host().is_empty() {
            return false;
        }
        let rest = s.get(a.host().len()..).unwrap_or("");
        let port_ok = rest.is_empty()
            || rest.strip_prefix(':').is_some_and(|p| {
                !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok()
            });
        let h = a.host();
        port_ok
            && if h.starts_with('[') {
                h.len() > 2 && h[1..h.len() - 1].parse::<std::net::Ipv6Addr>().is_ok()
            } else {
                h.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
            }
    }

    #[test]
    fn host_check_agrees_with_authority_parsing() {
        // every string of up to 4 bytes over an alphabet of the interesting ones
        let mut cases = strings_over(b"a1.-_:[]@/ %9\xff", b"", 4);
        for extra in [
            "[::1]:8080",
            "[::1]x",
            "[::1]:",
            "[::1]:65536",
            "[fe80::1%25eth0]",
            "h:65535",
            "h:65536",
            "h:00080",
            "h:000080",
            "xn--bcher-kva.example:443",
            "a..b",
            "[1.2.3.4]",
        ] {
            cases.push(extra.as_bytes().to_vec());
        }
        for c in &cases {
            assert_eq!(
                check_host(c).is_ok(),
                check_host_via_authority(c),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "example.com",
            "example.com:8280",
            "127.0.0.1:1",
            "[::1]:80",
            "a_b.local",
            "host:65535",
            "[2001:db8::1]",
        ] {
            assert_eq!(check_host(ok.as_bytes()), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "user@host",
            "host:",
            "host:99999",
            "host/x",
            "[zz]",
            "a,b",
            "[::1",
            "[]:80",
            "host:80:80",
            "host:0080x",
            "host:123456",
            ":80",
            "h\u{e9}st",
        ] {
            assert!(check_host(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
