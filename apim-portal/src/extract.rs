//! Extractors whose every rejection is an [`ApimError`] naming the offending field.
//!
//! axum's own `Json` / `Query` rejections are plain text without the field; these wrappers
//! deserialize through `serde_path_to_error`, so a bad body is a 400 whose description names the
//! field (`endpointConfig.production_endpoints.url`), and a body over the limit is a 413.

use apim_core::ApimError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest accepted request body (1 MiB; an OpenAPI document fits comfortably).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body; a rejection names the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// Turns a `serde_path_to_error` failure into a 400 naming the field.
pub(crate) fn field_error(path: &str, inner: &str) -> ApimError {
    let path = if path == "." { "" } else { path };
    // serde reports missing/unknown fields at the parent; append the field name
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| inner.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    let field = match named {
        Some(name) if !path.ends_with(name) => {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        }
        _ if path.is_empty() => "body".to_owned(),
        _ => path.to_owned(),
    };
    ApimError::validation(field, inner.to_owned())
}

/// Deserializes JSON bytes, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApimError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApimError::validation(
                    "body",
                    format!("invalid JSON: {inner}"),
                ));
            }
            Err(field_error(&e.path().to_string(), &inner.to_string()))
        }
    }
}

/// Reads the whole body, mapping a body over [`BODY_LIMIT`] to a 413.
pub(crate) async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Bytes, ApimError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
            ApimError::PayloadTooLarge(format!("the body is over {BODY_LIMIT} bytes"))
        } else {
            ApimError::BadRequest("the request body could not be read".into())
        }
    })
}

/// The media type of a request (`type/subtype`, lower case, without parameters); `""` when absent.
fn media_type(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `application/json` or any `type/x+json`.
pub fn is_json_media_type(mt: &str) -> bool {
    mt == "application/json" || (mt.contains('/') && mt.ends_with("+json"))
}

fn is_yaml_media_type(mt: &str) -> bool {
    matches!(
        mt,
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml"
    )
}

/// The 415 of a body sent as another type than the endpoint takes (`text/plain` from an HTML
/// form or a "simple" cross-site `fetch` among them: only types outside the CORS-safelisted
/// ones make a browser ask the server first).
fn unsupported(expected: &str, got: &str) -> ApimError {
    let got = if got.is_empty() { "none" } else { got };
    ApimError::UnsupportedMediaType(format!("expected Content-Type: {expected} (got {got})"))
}

/// Checks the request's media type for a JSON body (a rejection names `application/json`).
fn require_json(req: &Request) -> Result<(), ApimError> {
    let mt = media_type(req.headers());
    if is_json_media_type(&mt) {
        Ok(())
    } else {
        Err(unsupported("application/json", &mt))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = require_json(&req);
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(ApimError::validation("body", "a JSON body is required"));
        }
        json?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for Json<T> {
    type Rejection = ApimError;

    /// An empty body is `None`; a non-empty one must be `application/json` and parse.
    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let json = require_json(&req);
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        json?;
        parse_json(&bytes).map(|v| Some(Json(v)))
    }
}

/// A raw document body (an OpenAPI document or a policy, JSON or YAML); over the limit is a 413,
/// a non-empty body whose `Content-Type` is neither JSON nor YAML a 415.
#[derive(Debug, Clone, Default)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mt = media_type(req.headers());
        let bytes = body_bytes(req, state).await?;
        if !bytes.is_empty() && !is_json_media_type(&mt) && !is_yaml_media_type(&mt) {
            return Err(unsupported("application/json or application/yaml", &mt));
        }
        Ok(RawBody(bytes))
    }
}

/// Refuses cross-site state changes: a request with an unsafe method (anything but GET, HEAD,
/// OPTIONS, TRACE) whose `Origin` is neither the request's own (its `Host`) nor one of the
/// configured allowed origins, or which carries no `Origin` but `Sec-Fetch-Site: cross-site`,
/// is a 403 before any handler runs. Browsers send Basic credentials they have cached with any
/// request to the site, so without this an HTML form or a `fetch` on any web page could act as
/// a signed-in user. Clients that are not browsers send neither header and are not affected.
#[derive(Debug, Clone, Default)]
pub struct SameOriginGuard {
    /// Allowed origins, normalised (`scheme://host[:port]`, lower case, default port dropped).
    allowed: std::sync::Arc<[String]>,
    /// Paths the guard leaves alone (exact matches).
    exempt: std::sync::Arc<[&'static str]>,
}

/// `scheme://host[:port]` with the default port dropped, lower case; `None` if `s` is not an
/// http(s) origin (`null`, a path, a query, no host).
pub fn normalize_origin(s: &str) -> Option<String> {
    let uri: http::Uri = s.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let auth = uri.authority()?;
    if auth.as_str().contains('@') || !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return None;
    }
    let host = auth.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(match auth.port_u16() {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

impl SameOriginGuard {
    /// A guard that accepts the request's own origin and `allowed_origins`
    /// (`scheme://host[:port]`; entries that are not origins are ignored — config validation
    /// refuses them at start, naming `server.allowed_origins`).
    pub fn new(allowed_origins: &[String]) -> Self {
        SameOriginGuard {
            allowed: allowed_origins
                .iter()
                .filter_map(|o| normalize_origin(o))
                .collect(),
            exempt: std::sync::Arc::new([]),
        }
    }

    /// Leaves these paths alone (e.g. the OAuth token endpoint, where browser-based clients of
    /// other origins legitimately post forms and no user credential is ambient).
    pub fn exempt(mut self, paths: &[&'static str]) -> Self {
        self.exempt = paths.iter().copied().collect();
        self
    }

    /// Checks one request; `Err` is the 403 to answer.
    pub fn check(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Result<(), ApimError> {
        use http::Method;
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) || self.exempt.contains(&uri.path())
        {
            return Ok(());
        }
        let origin = headers.get(http::header::ORIGIN);
        let Some(origin) = origin else {
            let cross = headers
                .get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
            return if cross {
                Err(ApimError::Forbidden(
                    "cross-site request refused (Sec-Fetch-Site: cross-site)".into(),
                ))
            } else {
                Ok(())
            };
        };
        let raw = origin.to_str().unwrap_or("");
        let normalized = normalize_origin(raw);
        if let Some(o) = &normalized {
            if self.allowed.iter().any(|a| a == o) || same_as_host(o, uri, headers) {
                return Ok(());
            }
        }
        Err(ApimError::Forbidden(format!(
            "cross-site request refused: Origin '{}' is neither this server's origin nor one of server.allowed_origins",
            raw.chars().take(200).collect::<String>()
        )))
    }

    /// Applies the guard to every route of `router`.
    pub fn apply<S: Clone + Send + Sync + 'static>(
        self,
        router: axum::Router<S>,
    ) -> axum::Router<S> {
        router.layer(axum::middleware::from_fn(
            move |req: Request, next: axum::middleware::Next| {
                let verdict = self.check(req.method(), req.uri(), req.headers());
                async move {
                    match verdict {
                        Ok(()) => next.run(req).await,
                        Err(e) => e.into_response(),
                    }
                }
            },
        ))
    }
}

/// Whether the normalised origin `o` names the host the request was sent to (`Host`, or the
/// HTTP/2 authority), any port the origin's scheme implies included.
fn same_as_host(o: &str, uri: &http::Uri, headers: &http::HeaderMap) -> bool {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let Some(host) = host else { return false };
    let Ok(auth) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    let default = if scheme == "https" { 443 } else { 80 };
    let (o_host, o_port) = match rest.rsplit_once(':') {
        Some((h, p)) if !rest.ends_with(']') => (h, p.parse().unwrap_or(0)),
        _ => (rest, default),
    };
    auth.host().eq_ignore_ascii_case(o_host) && auth.port_u16().unwrap_or(default) == o_port
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query parameters; a rejection names the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApimError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_de(q);
        match de {
            Ok(v) => Ok(Query(v)),
            Err((path, msg)) => Err(field_error(&path, &msg)),
        }
    }
}

fn serde_urlencoded_de<T: DeserializeOwned>(q: &str) -> Result<T, (String, String)> {
    // axum re-exports no urlencoded deserializer; go through a JSON map of strings
    let mut map = serde_json::Map::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k).map_err(|m| ("query".to_owned(), m))?;
        let v = decode(v).map_err(|m| (k.clone(), m))?;
        map.insert(k, serde_json::Value::String(v));
    }
    let value = serde_json::Value::Object(map);
    serde_path_to_error::deserialize::<_, T>(value)
        .map_err(|e| (e.path().to_string(), e.inner().to_string()))
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "invalid percent-encoding".to_owned())?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "not valid UTF-8".to_owned())
}

/// Path parameters; a rejection is a 400 naming the parameter.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rej) => Err(ApimError::validation("path", rej.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        url: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
        count: Option<u32>,
    }

    fn field(body: &str) -> String {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApimError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_the_field() {
        assert_eq!(field("{"), "body");
        assert_eq!(field(r#"{"inner":{"url":"x"}}"#), "name");
        assert_eq!(field(r#"{"name":"a","inner":{}}"#), "inner.url");
        assert_eq!(
            field(r#"{"name":"a","inner":{"url":"x"},"bogus":1}"#),
            "bogus"
        );
        assert_eq!(
            field(r#"{"name":"a","inner":{"url":"x","z":1}}"#),
            "inner.z"
        );
        assert_eq!(field(r#"{"name":5,"inner":{"url":"x"}}"#), "name");
        assert_eq!(
            field(r#"{"name":"a","inner":{"url":"x"},"count":"x"}"#),
            "count"
        );
    }

    #[test]
    fn origins() {
        assert_eq!(
            normalize_origin("HTTPS://Portal.Example.COM:443").as_deref(),
            Some("https://portal.example.com")
        );
        assert_eq!(
            normalize_origin("http://localhost:9763/").as_deref(),
            Some("http://localhost:9763")
        );
        for bad in [
            "null",
            "",
            "*",
            "localhost",
            "ftp://x",
            "https://x/path",
            "https://u@x",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
        let guard = SameOriginGuard::new(&["https://ui.example.org".to_owned()]);
        let check = |origin: Option<&str>, host: &str, site: Option<&str>| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::HOST, host.parse().unwrap());
            if let Some(o) = origin {
                h.insert(http::header::ORIGIN, o.parse().unwrap());
            }
            if let Some(s) = site {
                h.insert("sec-fetch-site", s.parse().unwrap());
            }
            let uri: http::Uri = "/api/am/admin/v4/users".parse().unwrap();
            guard.check(&http::Method::POST, &uri, &h).is_ok()
        };
        assert!(check(Some("http://localhost:9763"), "localhost:9763", None));
        assert!(check(Some("https://example.com"), "example.com", None));
        assert!(check(Some("https://example.com"), "Example.com:443", None));
        assert!(check(Some("http://[::1]:9763"), "[::1]:9763", None));
        assert!(check(
            Some("https://ui.example.org"),
            "api.example.com",
            Some("cross-site")
        ));
        assert!(check(None, "localhost:9763", None));
        assert!(check(None, "localhost:9763", Some("same-origin")));
        assert!(!check(
            Some("http://localhost:9763"),
            "localhost:9443",
            None
        ));
        assert!(!check(Some("https://localhost:9763"), "localhost", None));
        assert!(!check(Some("http://evil.example"), "localhost:9763", None));
        assert!(!check(Some("null"), "localhost:9763", None));
        assert!(!check(None, "localhost:9763", Some("cross-site")));
        let get: http::Uri = "/x".parse().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert(http::header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(guard.check(&http::Method::GET, &get, &h).is_ok());
        let exempt = SameOriginGuard::new(&[]).exempt(&["/oauth2/token"]);
        let token: http::Uri = "/oauth2/token".parse().unwrap();
        assert!(exempt.check(&http::Method::POST, &token, &h).is_ok());
    }

    #[test]
    fn query_decoding() {
        #[derive(serde::Deserialize)]
        struct Q {
            action: String,
        }
        let q: Q = serde_urlencoded_de("action=Deploy+as+a%20Prototype").unwrap();
        assert_eq!(q.action, "Deploy as a Prototype");
        assert!(serde_urlencoded_de::<Q>("x=1").is_err());
    }
}
