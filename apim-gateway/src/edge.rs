//! The outermost layer: `X-Request-ID`, a tracing span, the whole-request timeout and the
//! request metrics.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apim_core::artifacts::RouteMatch;
use apim_core::ApimError;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::metrics::Metrics;
use crate::request_id::{RequestIds, X_REQUEST_ID};

/// Layer of [`Edge`].
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    ids: Arc<RequestIds>,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl EdgeLayer {
    /// A layer counting into `metrics` and bounding each request by `timeout` (to the response
    /// head; 504 101504 after it).
    pub fn new(metrics: Arc<Metrics>, timeout: Duration) -> Self {
        EdgeLayer {
            ids: Arc::new(RequestIds::new()),
            metrics,
            timeout,
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`EdgeLayer`].
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Edge<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let id = self.layer.ids.assign(req.headers_mut());
        let span = tracing::debug_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = ?id,
            status = tracing::field::Empty,
        );
        let fut = self.inner.call(req);
        let metrics = self.layer.metrics.clone();
        let timeout = self.layer.timeout;
        Box::pin(
            async move {
                let mut res = match tokio::time::timeout(timeout, fut).await {
                    Ok(r) => r?,
                    Err(_) => ApimError::BackendTimeout(format!(
                        "request not answered within {timeout:?}"
                    ))
                    .to_response(),
                };
                let status = res.status().as_u16();
                tracing::Span::current().record("status", status);
                let api = res.extensions().get::<RouteMatch>().map(|r| {
                    let a = &r.api.api;
                    (a.id.as_str(), a.context.as_str(), a.version.as_str())
                });
                metrics.request(api, status, start.elapsed());
                res.headers_mut().insert(X_REQUEST_ID.clone(), id);
                Ok(res)
            }
            .instrument(span),
        )
    }
}
