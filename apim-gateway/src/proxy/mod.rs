//! The proxy: the innermost service of the gateway. It picks the backend endpoint of the
//! routed API for the caller's key type, rewrites the request for it and streams both bodies
//! through a pooled hyper client.
//!
//! Failures map to WSO2 codes through [`ApimError`]: connection failure 503 101503, response
//! timeout (`actionDuration`, else the gateway request timeout) 504 101504, connect timeout 504
//! 101508. A failing endpoint is suspended (see [`crate::endpoints`]); for load_balance and
//! failover the next endpoint is tried when the request can be replayed (no body, or a body of
//! known length up to 64 KiB, which is then buffered).

pub mod backend_body;
mod backend_jwt;
pub mod client;
pub mod framing;
pub mod headers;
pub mod pool;
pub mod response_head;
mod upgrade;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apim_core::artifacts::RouteMatch;
use apim_core::auth::{AuthContext, ClientAddr};
use apim_core::model::KeyType;
use apim_core::ApimError;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::Service;

pub use backend_jwt::BackendJwt;

use crate::body::{is_body_too_large, is_client_body_timeout, ClientWait, GatewayBody};
use crate::endpoints::EndpointRegistry;
use crate::metrics::{Metrics, UpstreamError};

/// Bodies up to this size are buffered when another endpoint may have to be tried.
const REPLAY_LIMIT: u64 = 64 << 10;

/// `x-jwt-assertion`.
pub static X_JWT_ASSERTION: http::HeaderName = http::HeaderName::from_static("x-jwt-assertion");

/// The client connection a request came in on; the listener puts it into request extensions
/// (made once per connection, cloned per request without allocating).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// The connection is TLS.
    pub tls: bool,
    /// The client's IP address as a header value (for `X-Forwarded-For`).
    pub client_ip: Option<HeaderValue>,
}

impl Transport {
    /// The transport of a connection from `peer`.
    pub fn new(tls: bool, peer: std::net::SocketAddr) -> Self {
        Transport {
            tls,
            client_ip: HeaderValue::try_from(peer.ip().to_string()).ok(),
        }
    }

    /// The transport a request carries in its extensions (the listener puts it there), taken
    /// out; for a request that did not come through the listener (embedded use), a plain one
    /// from its [`ClientAddr`], if any.
    pub fn take_from(ext: &mut http::Extensions) -> Self {
        ext.remove::<Transport>().unwrap_or_else(|| Transport {
            tls: false,
            client_ip: ext
                .get::<ClientAddr>()
                .and_then(|c| HeaderValue::try_from(c.0.ip().to_string()).ok()),
        })
    }
}

pub use client::SendError;
pub use pool::BackendPool;

use client::{Answer, Outbound};

/// Settings of the proxy.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Response timeout for endpoints without `actionDuration`.
    pub timeout: Duration,
    /// Largest request body when the API sets none.
    pub max_body_bytes: u64,
    /// Longest wait for the next bytes of a client's request body (then 408); the time spent
    /// waiting for the client does not count against the endpoint's timeout.
    pub client_body_timeout: Duration,
}

struct Shared {
    pool: BackendPool,
    endpoints: Arc<EndpointRegistry>,
    metrics: Arc<Metrics>,
    jwt: Option<Arc<BackendJwt>>,
    settings: ProxySettings,
}

/// The proxy service (cheap to clone).
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy over `pool`.
    pub fn new(
        pool: BackendPool,
        endpoints: Arc<EndpointRegistry>,
        metrics: Arc<Metrics>,
        jwt: Option<BackendJwt>,
        settings: ProxySettings,
    ) -> Self {
        Proxy {
            shared: Arc::new(Shared {
                pool,
                endpoints,
                metrics,
                jwt: jwt.map(Arc::new),
                settings,
            }),
        }
    }

    /// A proxy for another worker thread: the same settings, metrics and backend JWT key, its
    /// own endpoint registry, so its backend connections (and the passive health it learns)
    /// stay with that thread.
    pub fn for_worker(&self) -> Self {
        let s = &self.shared;
        Proxy {
            shared: Arc::new(Shared {
                pool: s.pool.clone(),
                endpoints: Arc::new(EndpointRegistry::new(s.endpoints.default_suspend())),
                metrics: s.metrics.clone(),
                jwt: s.jwt.clone(),
                settings: s.settings.clone(),
            }),
        }
    }
}

impl Service<Request<GatewayBody>> for Proxy {
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<GatewayBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<GatewayBody>) -> Self::Future {
        let proxy = self.clone();
        Box::pin(async move {
            let ext = req.extensions_mut();
            let Some(route) = ext.remove::<RouteMatch>() else {
                return Ok(ApimError::Internal("proxy called without a route".into()).to_response());
            };
            let auth = ext.remove::<Arc<AuthContext>>();
            let transport = Transport::take_from(ext);
            let res = proxy
                .forward(
                    req,
                    &route,
                    auth.as_deref(),
                    transport,
                    None,
                    false,
                    &mut None,
                )
                .await;
            Ok(match res {
                Ok(mut res) => {
                    if let Some(auth) = auth {
                        // for layers outside (analytics): who called
                        res.extensions_mut().insert(auth);
                    }
                    res
                }
                Err(e) => e.to_response(),
            })
        })
    }
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The query parameter that may carry an API key (`?apikey=`), as the validator reads it.
const API_KEY_PARAM: &str = "apikey";

/// `query` without its `name` parameters (exact name, as the validator matches it), the rest
/// byte for byte; `None` when it has none.
pub(crate) fn remove_query_param(query: &str, name: &str) -> Option<String> {
    let is_it = |part: &str| part.split_once('=').map_or(part, |(k, _)| k) == name;
    if !query.split('&').any(is_it) {
        return None;
    }
    let mut out = String::with_capacity(query.len());
    let mut first = true;
    for part in query.split('&').filter(|p| !is_it(p)) {
        if !first {
            out.push('&');
        }
        out.push_str(part);
        first = false;
    }
    Some(out)
}

/// The answer to a request whose body could not be read from the client: 413 over the
/// limit, 408 when the client stopped sending, else 400.
fn body_error(e: &(dyn std::error::Error + 'static), limit: u64) -> ApimError {
    if is_body_too_large(e) {
        ApimError::PayloadTooLarge(format!("the request body exceeds {limit} bytes"))
    } else if is_client_body_timeout(e) {
        ApimError::ClientTimeout(e.to_string())
    } else {
        ApimError::BadRequest(format!("the request body could not be read: {e}"))
    }
}

/// Runs a backend exchange under the endpoint's `timeout`, counting only the backend's time:
/// the time spent waiting for the client's body (`wait`) moves the deadline out. `Err` when
/// the backend used up the timeout.
async fn backend_time<F: Future>(
    send: F,
    start: Instant,
    timeout: Duration,
    wait: &ClientWait,
) -> Result<F::Output, ()> {
    let send = std::pin::pin!(send);
    let timer = std::pin::pin!(tokio::time::sleep_until(start + timeout));
    let (mut send, mut timer) = (send, timer);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = send.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        while timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let backend = now
                .saturating_duration_since(start)
                .saturating_sub(wait.waited(now));
            if backend >= timeout {
                return Poll::Ready(Err(()));
            }
            timer.as_mut().reset(now + (timeout - backend));
        }
        Poll::Pending
    })
    .await
}

fn classify(e: &SendError) -> (ApimError, UpstreamError) {
    if pool::io_error_kind(e) == Some(std::io::ErrorKind::TimedOut) {
        return (
            ApimError::BackendConnectTimeout(e.to_string()),
            UpstreamError::ConnectTimeout,
        );
    }
    (
        ApimError::BackendUnavailable(e.to_string()),
        UpstreamError::Connect,
    )
}

impl Proxy {
    /// Forwards `req` (routed to `route`, by the caller `auth`, over `transport`) to the
    /// API's endpoint and streams the response back: what the service does, for a flow that
    /// keeps the route and the caller at hand instead of in request extensions. `deadline`:
    /// when the caller gives up on the request anyway (an endpoint timeout that would end
    /// later needs no timer of its own). `keep_fields`: the caller writes the response to an
    /// HTTP/1.1 client and reads none of its fields, so they may stay as they arrived
    /// ([`GatewayBody::backend_fields`]) instead of in the header map. `request_meter`: set
    /// to the count of the request body's bytes when there is a body.
    // a function returning an `async move` block, not an `async fn`: an async fn's future
    // keeps each argument twice (the argument and the body's copy of it, rust-lang/rust#62958),
    // and the request alone is 384 bytes; here only its parts are kept, once
    #[allow(clippy::too_many_arguments)] // the flow's locals, passed as they are (no struct to fill per request)
    pub(crate) fn forward<'a>(
        &'a self,
        req: Request<GatewayBody>,
        route: &'a RouteMatch,
        auth: Option<&'a AuthContext>,
        transport: Transport,
        deadline: Option<Instant>,
        keep_fields: bool,
        request_meter: &'a mut Option<Arc<ClientWait>>,
    ) -> impl Future<Output = Result<Response<GatewayBody>, ApimError>> + 'a {
        let (mut parts, body) = req.into_parts();
        async move {
            let shared = &*self.shared;
            let api = &route.api.api;

            let limit = match api.max_request_body_bytes {
                0 => shared.settings.max_body_bytes,
                n => n.min(shared.settings.max_body_bytes),
            };
            let declared = content_length(&parts.headers);
            if declared.is_some_and(|n| n > limit) {
                return Err(ApimError::PayloadTooLarge(format!(
                    "the request body exceeds {limit} bytes"
                )));
            }

            let eps = shared.endpoints.get(&route.api);
            let key_type = auth.map_or(KeyType::Production, |a| a.key_type);
            let group = eps.group(key_type)?;

            // only a WebSocket handshake to a WS API is an upgrade; any other `Upgrade`
            // (h2c, or websocket to an HTTP API) is left behind and the request goes as is
            let upgrade =
                api.api_type == "WS" && upgrade::is_websocket(&parts.method, &parts.headers);
            let tls = transport.tls;
            let client_ip = transport.client_ip;
            // the host the request was routed by: the absolute form's authority replaces
            // `Host` (RFC 9112 §3.2.2), as HTTP/2's does
            let original_host = match parts.uri.authority() {
                Some(a) => HeaderValue::try_from(a.as_str()).ok(),
                None => parts.headers.get(header::HOST).cloned(),
            };
            let jwt = match (&shared.jwt, auth) {
                (Some(jwt), Some(auth)) => Some(jwt.sign(auth, api)?),
                _ => None,
            };
            // what the backend gets instead of the client's head as it is, applied as it is written
            let fields = headers::ToBackend::new(
                &parts.headers,
                client_ip,
                if tls { "https" } else { "http" },
                original_host,
                upgrade,
                jwt,
            );
            let mut client_upgrade = if upgrade {
                parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
            } else {
                None
            };

            let resource = &parts.uri.path()[route.resource_start.min(parts.uri.path().len())..];
            // an API key in the query is a credential: it stays here, as the header does
            let without_key = parts
                .uri
                .query()
                .filter(|q| {
                    q.contains(API_KEY_PARAM) && api.security_scheme.iter().any(|s| s == "api_key")
                })
                .and_then(|q| remove_query_param(q, API_KEY_PARAM));
            let query = match &without_key {
                Some(q) if q.is_empty() => None,
                Some(q) => Some(q.as_str()),
                None => parts.uri.query(),
            };

            // a body we may replay on the next endpoint, or the stream for a single attempt
            let replayable = group.len() > 1
                && (body.is_end_stream() || declared.is_some_and(|n| n <= REPLAY_LIMIT));
            let mut stream = None;
            let mut buffered = Bytes::new();
            // the time spent waiting for the client's body, which the endpoint timer leaves out
            let mut client_wait = None;
            let body_timeout = shared.settings.client_body_timeout;
            if replayable && !body.is_end_stream() {
                let (body, wait) = body.client_timed(body_timeout);
                *request_meter = Some(wait);
                buffered = body
                    .limited(limit)
                    .collect()
                    .await
                    .map_err(|e| body_error(e.as_ref(), limit))?
                    .to_bytes();
            } else if !replayable {
                stream = Some(if body.is_end_stream() {
                    body
                } else {
                    let (body, wait) = body.client_timed(body_timeout);
                    *request_meter = Some(wait.clone());
                    client_wait = Some(wait);
                    body.limited(limit)
                });
            }

            let mut last_err = None;
            for target in group.candidates() {
                let timeout = target.timeout.unwrap_or(shared.settings.timeout);
                // made in a block of its own, and the sending future awaited where it is made: a
                // future keeps every local in scope across an await, moved-from or not, and these
                // would double its size (the sending future alone is over a kilobyte)
                let out = {
                    let body = match stream.take() {
                        Some(s) => s,
                        None if replayable => GatewayBody::from(buffered.clone()),
                        None => break,
                    };
                    Outbound::new(
                        &parts.method,
                        target,
                        resource,
                        query,
                        &parts.headers,
                        &fields,
                        body,
                        upgrade,
                        timeout,
                    )
                    .keep_fields(keep_fields)
                };
                let start = Instant::now();
                let ends = start + timeout;
                let answer = if deadline.is_some_and(|d| d <= ends) {
                    // the caller's deadline comes first: one timer per request, not two
                    Ok(shared.pool.send(target, out).await)
                } else if let Some(wait) = &client_wait {
                    backend_time(shared.pool.send(target, out), start, timeout, wait).await
                } else {
                    tokio::time::timeout_at(ends, shared.pool.send(target, out))
                        .await
                        .map_err(|_| ())
                };
                match answer {
                    Err(()) => {
                        target.mark_failure();
                        shared.metrics.upstream_error(UpstreamError::Timeout);
                        return Err(ApimError::BackendTimeout(format!(
                            "{} did not answer within {timeout:?}",
                            target.url
                        )));
                    }
                    Ok(Ok(Answer::Response(rp, body))) => {
                        target.mark_success();
                        return Ok(Response::from_parts(rp, GatewayBody::from(body)));
                    }
                    Ok(Ok(Answer::Upgrade(rp, conn))) => {
                        // a 101 that does not complete this handshake (RFC 6455 §4.1: the
                        // accept value of the client's key) is no WebSocket
                        if !upgrade::accepts(&parts.headers, &rp.headers) {
                            return Err(ApimError::BackendUnavailable(
                                "the backend's 101 does not accept the WebSocket handshake".into(),
                            ));
                        }
                        target.mark_success();
                        match client_upgrade.take() {
                        Some(client) => upgrade::splice(client, conn),
                        None => return Err(ApimError::BackendUnavailable(
                            "the backend switched protocols for a request that cannot be upgraded"
                                .into(),
                        )),
                    }
                        return Ok(Response::from_parts(rp, GatewayBody::empty()));
                    }
                    Ok(Err(SendError::Body(e))) => {
                        // the client's side: no fault of the endpoint
                        return Err(body_error(e.as_ref(), limit));
                    }
                    Ok(Err(e)) => {
                        let (err, kind) = classify(&e);
                        shared.metrics.upstream_error(kind);
                        if matches!(e, SendError::Connect(_)) {
                            target.mark_failure();
                            last_err = Some(err);
                            continue;
                        }
                        return Err(err);
                    }
                }
            }
            Err(last_err.unwrap_or_else(|| {
                ApimError::BackendUnavailable(format!(
                    "no available endpoint for {}:{} (all suspended)",
                    api.context, api.version
                ))
            }))
        }
    }
}
