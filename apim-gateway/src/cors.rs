//! CORS per API `corsConfiguration`. Preflight requests (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) are answered here, before routing: an API needs no
//! `OPTIONS` resource to be callable from a browser, and the backend never sees the preflight.
//! Other requests with an `Origin` get the `Access-Control-Allow-*` headers on their response
//! (in a layer stack, the route comes from the response's [`RouteMatch`] extension; the
//! gateway's [`crate::flow`] calls [`preflight`] and [`decorate_response`] directly).

use std::sync::Arc;
use std::task::{Context, Poll};

use apim_core::artifacts::{ArtifactStore, RouteMatch};
use apim_core::model::CorsConfiguration;
use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tower::{Layer, Service};

/// Layer answering CORS preflights per API and decorating responses.
pub struct CorsLayer<A: ?Sized> {
    artifacts: Arc<A>,
}

impl<A: ?Sized> Clone for CorsLayer<A> {
    fn clone(&self) -> Self {
        CorsLayer {
            artifacts: self.artifacts.clone(),
        }
    }
}

impl<A: ?Sized> std::fmt::Debug for CorsLayer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorsLayer").finish_non_exhaustive()
    }
}

impl<A: ArtifactStore + ?Sized> CorsLayer<A> {
    /// A layer looking APIs up in `artifacts`.
    pub fn new(artifacts: Arc<A>) -> Self {
        CorsLayer { artifacts }
    }
}

impl<S, A: ?Sized> Layer<S> for CorsLayer<A> {
    type Service = Cors<S, A>;
    fn layer(&self, inner: S) -> Self::Service {
        Cors {
            inner,
            artifacts: self.artifacts.clone(),
        }
    }
}

/// The service of [`CorsLayer`].
pub struct Cors<S, A: ?Sized> {
    inner: S,
    artifacts: Arc<A>,
}

impl<S: Clone, A: ?Sized> Clone for Cors<S, A> {
    fn clone(&self) -> Self {
        Cors {
            inner: self.inner.clone(),
            artifacts: self.artifacts.clone(),
        }
    }
}

impl<S, A: ?Sized> std::fmt::Debug for Cors<S, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cors").finish_non_exhaustive()
    }
}

/// How an allowed origin is answered: `*` (any origin, no credentials), or the origin itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Any,
    This,
}

/// Whether `origin` may call, and how to say so. An origin the configuration names is
/// answered with itself (and credentials, when allowed). An origin allowed only through `*`
/// is answered with `*` and never with credentials, also when `accessControlAllowCredentials`
/// is on: the Fetch standard refuses `*` for a credentialed request, so `*` cannot mean "any
/// site, with the user's cookies", and reflecting the origin instead would grant exactly
/// that to every site.
fn origin_allowed(cfg: &CorsConfiguration, origin: &HeaderValue) -> Option<Allowed> {
    let o = origin.to_str().ok()?;
    let origins = &cfg.access_control_allow_origins;
    let named = origins.iter().any(|a| a == o);
    let any = origins.iter().any(|a| a == "*");
    match (named, any) {
        (true, true) if !cfg.access_control_allow_credentials => Some(Allowed::Any),
        (true, _) => Some(Allowed::This),
        (false, true) => Some(Allowed::Any),
        (false, false) => None,
    }
}

fn join(list: &[String]) -> Option<HeaderValue> {
    if list.is_empty() {
        return None;
    }
    HeaderValue::try_from(list.join(", ")).ok()
}

/// Adds the CORS response headers for an allowed origin.
fn decorate(h: &mut HeaderMap, cfg: &CorsConfiguration, origin: &HeaderValue, preflight: bool) {
    let Some(allowed) = origin_allowed(cfg, origin) else {
        return;
    };
    if allowed == Allowed::Any {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if cfg.access_control_allow_credentials && allowed == Allowed::This {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if preflight {
        if let Some(m) = join(&cfg.access_control_allow_methods) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m);
        }
        if let Some(v) = join(&cfg.access_control_allow_headers) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("3600"),
        );
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for Cors<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    A: ArtifactStore + ?Sized,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
            return Either::Left(self.inner.call(req));
        };
        if let Some(res) = preflight(&*self.artifacts, &req, &origin) {
            return Either::Right(Box::pin(futures_util::future::ready(Ok(res))));
        }
        let fut = self.inner.call(req);
        Either::Right(Box::pin(async move {
            let mut res = fut.await?;
            if let Some(m) = res.extensions().get::<RouteMatch>().cloned() {
                decorate_response(res.headers_mut(), &m, &origin);
            }
            Ok(res)
        }))
    }
}

/// The answer to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) from
/// `origin` for an API with CORS enabled: 204 with the `Access-Control-Allow-*` headers.
/// `None` when `req` is no preflight or its API is unknown or has CORS off (the request then
/// takes the normal path).
pub fn preflight<A, B, R>(
    artifacts: &A,
    req: &Request<B>,
    origin: &HeaderValue,
) -> Option<Response<R>>
where
    A: ArtifactStore + ?Sized,
    R: From<Bytes>,
{
    if req.method() != Method::OPTIONS {
        return None;
    }
    let method = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())?;
    let host = apim_core::artifacts::request_host(req);
    let m = artifacts.resolve(&method, host, req.uri().path()).ok()?;
    let cfg = &m.api.api.cors_configuration;
    if !cfg.cors_configuration_enabled {
        return None;
    }
    let mut res = Response::new(R::from(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    decorate(res.headers_mut(), cfg, origin, true);
    Some(res)
}

/// Adds the CORS headers of the routed API (when it has CORS enabled and allows `origin`) to
/// the response of a request from `origin`.
pub fn decorate_response(headers: &mut HeaderMap, route: &RouteMatch, origin: &HeaderValue) {
    let cfg = &route.api.api.cors_configuration;
    if cfg.cors_configuration_enabled {
        decorate(headers, cfg, origin, false);
    }
}
