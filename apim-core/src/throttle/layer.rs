use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response};
use tower::{Layer, Service};

use super::{Decision, Outcome, ThrottleContext, ThrottleDecider};
use crate::artifacts::RouteMatch;
use crate::auth::{AuthContext, ClientAddr};
use crate::BoxResponseFuture;

/// Puts a [`ThrottleDecider`] in front of a service: 429 with `Retry-After` on deny, 403 900805
/// on a block condition, [`ThrottleDecider::record`] after the inner service answers.
pub struct ThrottleLayer<D: ?Sized> {
    decider: Arc<D>,
}

impl<D: ?Sized> Clone for ThrottleLayer<D> {
    fn clone(&self) -> Self {
        ThrottleLayer {
            decider: self.decider.clone(),
        }
    }
}

impl<D: ?Sized> fmt::Debug for ThrottleLayer<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleLayer").finish_non_exhaustive()
    }
}

impl<D: ThrottleDecider + ?Sized> ThrottleLayer<D> {
    /// A layer using `decider`.
    pub fn new(decider: Arc<D>) -> Self {
        ThrottleLayer { decider }
    }
}

impl<S, D: ?Sized> Layer<S> for ThrottleLayer<D> {
    type Service = ThrottleService<S, D>;
    fn layer(&self, inner: S) -> Self::Service {
        ThrottleService {
            inner,
            decider: self.decider.clone(),
        }
    }
}

/// The service of [`ThrottleLayer`].
pub struct ThrottleService<S, D: ?Sized> {
    inner: S,
    decider: Arc<D>,
}

impl<S: Clone, D: ?Sized> Clone for ThrottleService<S, D> {
    fn clone(&self) -> Self {
        ThrottleService {
            inner: self.inner.clone(),
            decider: self.decider.clone(),
        }
    }
}

impl<S: fmt::Debug, D: ?Sized> fmt::Debug for ThrottleService<S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// `Content-Length` as a number (0 when absent or invalid), as the throttle accounts bytes.
pub fn content_length(h: &http::HeaderMap) -> u64 {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl<S, D, ReqBody, ResBody> Service<Request<ReqBody>> for ThrottleService<S, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    D: ThrottleDecider + ?Sized,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let decider = self.decider.clone();
        Box::pin(async move {
            let route = req.extensions().get::<RouteMatch>().cloned();
            let auth = req.extensions().get::<Arc<AuthContext>>().cloned();
            let client_ip = req.extensions().get::<ClientAddr>().map(|c| c.0.ip());
            let request_bytes = content_length(req.headers());
            let decision = decide(
                &*decider,
                &ThrottleContext {
                    method: req.method(),
                    uri: req.uri(),
                    headers: req.headers(),
                    client_ip,
                    route: route.as_ref(),
                    auth: auth.as_deref(),
                    request_bytes,
                },
            )
            .await;
            if let Some(e) = decision.refusal() {
                return Ok(e.to_response());
            }
            let method = req.method().clone();
            let uri = req.uri().clone();
            let res = inner.call(req).await?;
            let outcome = Outcome {
                status: res.status().as_u16(),
                request_bytes,
                response_bytes: content_length(res.headers()),
            };
            let headers = http::HeaderMap::new();
            let ctx = ThrottleContext {
                method: &method,
                uri: &uri,
                headers: &headers,
                client_ip,
                route: route.as_ref(),
                auth: auth.as_deref(),
                request_bytes,
            };
            decider.record(&ctx, &outcome);
            Ok(res)
        })
    }
}

/// `decider`'s decision for `ctx`: [`ThrottleDecider::decide_now`] when it has one at once,
/// else [`ThrottleDecider::decide`] (what `ThrottleLayer` and the gateway's flow call).
pub async fn decide<D: ThrottleDecider + ?Sized>(
    decider: &D,
    ctx: &ThrottleContext<'_>,
) -> Decision {
    match decider.decide_now(ctx) {
        Some(d) => d,
        None => decider.decide(ctx).await,
    }
}
