use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{Either, Ready};
use http::{header, Request, Response};
use tower::{Layer, Service};

use super::{ArtifactStore, RouteMatch};
use crate::ApimError;

/// Routes requests over an [`ArtifactStore`]: on a match the request carries a
/// [`super::RouteMatch`] extension; otherwise the layer answers 404 900906 (or 503 700700 for a
/// BLOCKED API). Synchronous: no allocation or boxing on the way through.
pub struct RouteLayer<A: ?Sized> {
    artifacts: Arc<A>,
}

impl<A: ?Sized> Clone for RouteLayer<A> {
    fn clone(&self) -> Self {
        RouteLayer {
            artifacts: self.artifacts.clone(),
        }
    }
}

impl<A: ?Sized> fmt::Debug for RouteLayer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteLayer").finish_non_exhaustive()
    }
}

impl<A: ArtifactStore + ?Sized> RouteLayer<A> {
    /// A layer routing over `artifacts`.
    pub fn new(artifacts: Arc<A>) -> Self {
        RouteLayer { artifacts }
    }
}

impl<S, A: ?Sized> Layer<S> for RouteLayer<A> {
    type Service = RouteService<S, A>;
    fn layer(&self, inner: S) -> Self::Service {
        RouteService {
            inner,
            artifacts: self.artifacts.clone(),
        }
    }
}

/// The service of [`RouteLayer`].
pub struct RouteService<S, A: ?Sized> {
    inner: S,
    artifacts: Arc<A>,
}

impl<S: Clone, A: ?Sized> Clone for RouteService<S, A> {
    fn clone(&self) -> Self {
        RouteService {
            inner: self.inner.clone(),
            artifacts: self.artifacts.clone(),
        }
    }
}

impl<S: fmt::Debug, A: ?Sized> fmt::Debug for RouteService<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for RouteService<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    A: ArtifactStore + ?Sized,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match route(&*self.artifacts, &req) {
            Ok(m) => {
                req.extensions_mut().insert(m);
                Either::Left(self.inner.call(req))
            }
            Err(e) => Either::Right(futures_util::future::ready(Ok(e.to_response()))),
        }
    }
}

/// Routes `req` in `artifacts` (the host from the URI's authority, as in HTTP/2 and the
/// absolute form, else from `Host`): the step [`RouteLayer`] runs, for callers that compose
/// the request flow themselves.
pub fn route<A, B>(artifacts: &A, req: &Request<B>) -> Result<RouteMatch, ApimError>
where
    A: ArtifactStore + ?Sized,
{
    artifacts.resolve(req.method(), request_host(req), req.uri().path())
}

/// The host a request is for, as routing sees it: the URI's authority when there is one
/// (HTTP/2, and the absolute form, where RFC 9112 §3.2.2 says `Host` is ignored), else `Host`.
pub fn request_host<B>(req: &Request<B>) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_host_prefers_the_uri_authority_over_host() {
        let req = Request::builder()
            .uri("http://api.example.com/shop/1.0/items")
            .header(header::HOST, "other.example.com")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Some("api.example.com"));
        let req = Request::builder()
            .uri("/shop/1.0/items")
            .header(header::HOST, "other.example.com:8280")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Some("other.example.com:8280"));
        let req = Request::builder().uri("/x").body(()).unwrap();
        assert_eq!(request_host(&req), None);
    }
}
