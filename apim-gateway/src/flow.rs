//! [`Flow`]: the gateway's request flow (DESIGN §3) as one future.
//!
//! The steps are those of the tower layers an embedder stacks (`HygieneLayer`, `CorsLayer`,
//! `RouteLayer`, `EventLayer`, `AuthLayer`, `ThrottleLayer`, [`Proxy`]), and the flow calls
//! the functions those layers call ([`check_request`], [`cors::preflight`], [`route`],
//! [`authenticate`], [`Decision::refusal`](apim_core::throttle::Decision::refusal)). What it
//! leaves out is the plumbing between layers: a boxed future and a service clone per layer, and
//! the route and the caller passed through request extensions. Here they are local variables,
//! the flow's state is boxed once, and the listener polls the flow's future in place (decision
//! 18 in docs/architecture.md, measured in docs/benchmarks.md).

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apim_core::artifacts::{route, ArtifactStore, RouteMatch};
use apim_core::auth::key_limits::IpRange;
use apim_core::auth::{authenticate, AuthContext, ClientAddr, KeyValidator, RequestMeta};
use apim_core::bus::{RequestRecord, RequestSink};
use apim_core::throttle::{content_length, Outcome, ThrottleContext, ThrottleDecider};
use apim_core::ApimError;
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Request, Response};
use tokio::time::Sleep;
use tower::Service;
use tracing::Instrument as _;

use crate::body::{GatewayBody, Metered};
use crate::cors;
use crate::hygiene::check_request;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, Transport};
use crate::request_id::{RequestIds, X_REQUEST_ID};

/// The connection a request came in on.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The client's address (IP block conditions, throttling by IP).
    pub peer: Option<SocketAddr>,
    /// TLS and the client IP as `X-Forwarded-For` value.
    pub transport: Transport,
}

impl Conn {
    /// A connection from `peer`, TLS or not.
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        Conn {
            peer: Some(peer),
            transport: Transport::new(tls, peer),
        }
    }
}

/// The request flow: request id and timeout, hygiene, CORS, routing, authentication,
/// throttling, proxying, metrics and analytics.
pub struct Flow {
    pub(crate) ids: RequestIds,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) timeout: Duration,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
    pub(crate) validator: Arc<dyn KeyValidator>,
    pub(crate) decider: Arc<dyn ThrottleDecider>,
    pub(crate) sink: Option<Arc<dyn RequestSink>>,
    pub(crate) proxy: Proxy,
    /// `gateway.trusted_proxies`: load balancers whose `X-Forwarded-For` names the client
    /// (for IP conditions, API-key `permittedIP` and the password lock-out).
    pub(crate) trusted_proxies: Arc<[IpRange]>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Flow {
    /// The flow for another worker thread: shared artifacts, validator, decider, metrics and
    /// analytics; its own request-id sequence and backend connections
    /// ([`Proxy::for_worker`]).
    pub fn for_worker(&self) -> Self {
        Flow {
            ids: RequestIds::new(),
            metrics: self.metrics.clone(),
            timeout: self.timeout,
            artifacts: self.artifacts.clone(),
            validator: self.validator.clone(),
            decider: self.decider.clone(),
            sink: self.sink.clone(),
            proxy: self.proxy.for_worker(),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }

    /// Answers `req`, which came in on `conn`. Never fails: every refusal is a response
    /// rendered by `ApimError::to_response`.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<GatewayBody>,
        conn: Conn,
    ) -> Response<GatewayBody> {
        let timer = std::pin::pin!(tokio::time::sleep(self.timeout));
        let (mut res, id) = self.handle_within(req, conn, timer, false).await;
        res.headers_mut().insert(X_REQUEST_ID.clone(), id);
        res
    }

    /// [`Flow::handle`], timed by `timer`: a connection's own, reused from request to
    /// request (moving a registered timer to a later deadline is one atomic operation;
    /// registering a new one takes the timer wheel's lock, and its removal again). With
    /// `keep_fields` the caller writes the response to an HTTP/1.1 client and the backend's
    /// fields may stay as they arrived ([`GatewayBody::backend_fields`]), not in the header
    /// map. The request's id comes back beside the response: the caller sets it as the
    /// response's `X-Request-ID` (in the map, or as the native writer writes the head).
    pub(crate) async fn handle_within(
        self: Arc<Self>,
        mut req: Request<GatewayBody>,
        conn: Conn,
        mut timer: Pin<&mut Sleep>,
        keep_fields: bool,
    ) -> (Response<GatewayBody>, HeaderValue) {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        timer.as_mut().reset(deadline);
        let id = self.ids.assign(req.headers_mut());
        let span = tracing::debug_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = ?id,
            status = tracing::field::Empty,
        );
        // the flow's state (3.7 KB) is pinned in place in the caller's future — the
        // connection's task, allocated once per connection — not boxed per request: since the
        // flow's futures keep the request once (see `run`), the box's allocation and the copy
        // into it cost more (564 instructions per request) than the bigger connection task
        let mut run = std::pin::pin!(self.run(req, conn, deadline, keep_fields));
        // outside the task's budget, as in `tokio::time::timeout`: a flow that spends the
        // whole budget on each poll (a body streaming in) must still see its deadline
        let mut timer = std::pin::pin!(tokio::task::coop::unconstrained(timer));
        let mut timed = poll_fn(|cx| {
            if let Poll::Ready(done) = run.as_mut().poll(cx) {
                return Poll::Ready(Some(done));
            }
            timer.as_mut().poll(cx).map(|()| None)
        });
        // a disabled span (the usual case: it is at debug level) is not entered per poll
        let outcome = if span.is_disabled() {
            timed.await
        } else {
            (&mut timed).instrument(span.clone()).await
        };
        let (res, route) = outcome.unwrap_or_else(|| {
            let e = ApimError::BackendTimeout(format!(
                "request not answered within {:?}",
                self.timeout
            ));
            (e.to_response(), None)
        });
        let status = res.status().as_u16();
        if !span.is_disabled() {
            span.record("status", status);
        }
        let api = route.as_ref().map(|r| {
            let a = &r.api.api;
            (a.id.as_str(), a.context.as_str(), a.version.as_str())
        });
        self.metrics.request(api, status, start.elapsed());
        (res, id)
    }

    /// The flow up to the response head; with the route when the request was routed.
    ///
    /// A function returning an `async move` block, as `admit_and_forward` and
    /// `Proxy::forward` are: an `async fn` keeps each argument twice in its future (the
    /// argument and the body's copy, rust-lang/rust#62958), and the request is 384 bytes.
    #[allow(clippy::manual_async_fn)] // an async fn keeps each argument twice (rust-lang/rust#62958)
    fn run(
        &self,
        req: Request<GatewayBody>,
        conn: Conn,
        deadline: tokio::time::Instant,
        keep_fields: bool,
    ) -> impl Future<Output = (Response<GatewayBody>, Option<RouteMatch>)> + '_ {
        async move {
            if let Err(e) = check_request(&req) {
                let mut res = e.to_response();
                // the connection's framing may be ambiguous: do not reuse it
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return (res, None);
            }
            let origin = req.headers().get(header::ORIGIN).cloned();
            if let Some(o) = &origin {
                if let Some(res) = cors::preflight(&*self.artifacts, &req, o) {
                    return (res, None);
                }
            }
            let route = match route(&*self.artifacts, &req) {
                Ok(r) => r,
                Err(e) => return (e.to_response(), None),
            };
            let analytics = self.sink.as_ref().map(|sink| {
                (
                    sink,
                    Instant::now(),
                    req.method().to_string(),
                    req.uri().path().to_owned(),
                )
            });
            // CORS reads and sets the response's fields: they must be in its header map then
            let keep_fields = keep_fields && origin.is_none();
            let (mut res, auth) = self
                .admit_and_forward(req, &route, conn, deadline, keep_fields)
                .await;
            if let Some(o) = &origin {
                cors::decorate_response(res.headers_mut(), &route, o);
            }
            if let Some((sink, start, method, path)) = analytics {
                let api = &route.api.api;
                sink.emit(RequestRecord {
                    time: apim_core::time::now_ms(),
                    method,
                    path,
                    api_id: Some(api.id.clone()),
                    api_context: Some(api.context.clone()),
                    application_id: auth.map(|a| a.application_id.clone()),
                    status: res.status().as_u16(),
                    latency: start.elapsed(),
                });
            }
            (res, Some(route))
        }
    }

    /// Authentication, throttling and the backend call of a routed request; with the caller
    /// when it was authenticated.
    #[allow(clippy::manual_async_fn)] // an async fn keeps each argument twice (rust-lang/rust#62958)
    fn admit_and_forward<'a>(
        &'a self,
        req: Request<GatewayBody>,
        route: &'a RouteMatch,
        conn: Conn,
        deadline: tokio::time::Instant,
        keep_fields: bool,
    ) -> impl Future<Output = (Response<GatewayBody>, Option<Arc<AuthContext>>)> + 'a {
        async move {
            let client_ip = conn.peer.map(|p| {
                crate::client_address::client_ip(req.headers(), p.ip(), &self.trusted_proxies)
            });
            let meta = RequestMeta {
                method: req.method(),
                uri: req.uri(),
                headers: req.headers(),
                client_ip,
                route: Some(route),
            };
            let auth = match authenticate(&*self.validator, &meta).await {
                Ok(a) => a,
                Err(e) => return (e.to_response(), None),
            };
            let request_bytes = content_length(req.headers());
            let decision = apim_core::throttle::decide(
                &*self.decider,
                &ThrottleContext {
                    method: req.method(),
                    uri: req.uri(),
                    headers: req.headers(),
                    client_ip,
                    route: Some(route),
                    auth: Some(&auth),
                    request_bytes,
                },
            )
            .await;
            if let Some(e) = decision.refusal() {
                return (e.to_response(), Some(auth));
            }
            let method = req.method().clone();
            let uri = req.uri().clone();
            let mut request_meter = None;
            let mut res = match self
                .proxy
                .forward(
                    req,
                    route,
                    Some(&auth),
                    conn.transport,
                    Some(deadline),
                    keep_fields,
                    &mut request_meter,
                )
                .await
            {
                Ok(res) => res,
                Err(e) => {
                    let mut res = e.to_response();
                    if matches!(e, ApimError::ClientTimeout(_)) {
                        // the rest of the body may still come: the connection is done
                        res.headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    res
                }
            };
            // bandwidth: the bytes that actually went through, both ways. Known now for a
            // response of known length after a request read to its end (the usual case, no
            // cost); else counted as the response body streams and reported at its end
            let response_len = http_body::Body::size_hint(res.body()).exact();
            let request_done = request_meter.as_ref().is_none_or(|m| m.done());
            match response_len {
                Some(response_bytes) if request_done => {
                    let headers = http::HeaderMap::new();
                    self.decider.record(
                        &ThrottleContext {
                            method: &method,
                            uri: &uri,
                            headers: &headers,
                            client_ip,
                            route: Some(route),
                            auth: Some(&auth),
                            request_bytes,
                        },
                        &Outcome {
                            status: res.status().as_u16(),
                            request_bytes: request_meter
                                .as_ref()
                                .map_or(request_bytes, |m| m.bytes()),
                            response_bytes,
                        },
                    );
                }
                _ => {
                    let status = res.status().as_u16();
                    res.body_mut().metered(Box::new(Metered {
                        decider: self.decider.clone(),
                        method,
                        uri,
                        client_ip,
                        route: route.clone(),
                        auth: auth.clone(),
                        declared: request_bytes,
                        request: request_meter,
                        status,
                        response_bytes: 0,
                    }));
                }
            }
            (res, Some(auth))
        }
    }
}

/// [`Flow`] as a tower service (what `Gateway::service` returns), for embedding and tests.
/// The client's address comes from a [`ClientAddr`] request extension and TLS from a
/// [`Transport`] extension, when present.
#[derive(Debug, Clone)]
pub struct FlowService(pub(crate) Arc<Flow>);

impl Service<Request<GatewayBody>> for FlowService {
    type Response = Response<GatewayBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Response<GatewayBody>, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<GatewayBody>) -> Self::Future {
        let peer = req.extensions().get::<ClientAddr>().map(|c| c.0);
        let transport = Transport::take_from(req.extensions_mut());
        let flow = self.0.clone();
        Box::pin(async move { Ok(flow.handle(req, Conn { peer, transport }).await) })
    }
}
