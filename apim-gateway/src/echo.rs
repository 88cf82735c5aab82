//! Copies the request's [`RouteMatch`] into the response's extensions, so layers outside the
//! router (metrics, CORS, analytics) know the API even for rejections (401, 403, 429).

use std::task::{Context, Poll};

use apim_core::artifacts::RouteMatch;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};

/// Layer of [`RouteEcho`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteEchoLayer;

impl<S> Layer<S> for RouteEchoLayer {
    type Service = RouteEcho<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RouteEcho { inner }
    }
}

/// Echoes the [`RouteMatch`] onto the response.
#[derive(Debug, Clone)]
pub struct RouteEcho<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RouteEcho<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let route = req.extensions().get::<RouteMatch>().cloned();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            if let Some(r) = route {
                res.extensions_mut().insert(r);
            }
            Ok(res)
        })
    }
}
