use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service};

use super::{AuthContext, KeyValidator, RequestMeta};
use crate::BoxResponseFuture;

/// Puts a [`KeyValidator`] in front of a service. On success the request carries an
/// `Arc<AuthContext>` extension; on failure the layer answers with the mapped error.
///
/// Resources that need no authentication (`authType: None` on the matched operation) pass with
/// [`AuthContext::anonymous`].
pub struct AuthLayer<V: ?Sized> {
    validator: Arc<V>,
}

impl<V: ?Sized> Clone for AuthLayer<V> {
    fn clone(&self) -> Self {
        AuthLayer {
            validator: self.validator.clone(),
        }
    }
}

impl<V: ?Sized> fmt::Debug for AuthLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer").finish_non_exhaustive()
    }
}

impl<V: KeyValidator + ?Sized> AuthLayer<V> {
    /// A layer using `validator`.
    pub fn new(validator: Arc<V>) -> Self {
        AuthLayer { validator }
    }
}

impl<S, V: ?Sized> Layer<S> for AuthLayer<V> {
    type Service = AuthService<S, V>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            validator: self.validator.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
pub struct AuthService<S, V: ?Sized> {
    inner: S,
    validator: Arc<V>,
}

impl<S: Clone, V: ?Sized> Clone for AuthService<S, V> {
    fn clone(&self) -> Self {
        AuthService {
            inner: self.inner.clone(),
            validator: self.validator.clone(),
        }
    }
}

impl<S: fmt::Debug, V: ?Sized> fmt::Debug for AuthService<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, V, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, V>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    V: KeyValidator + ?Sized,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // take the service that was driven to readiness, leave a fresh clone behind
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let validator = self.validator.clone();
        Box::pin(async move {
            let ctx = authenticate(&*validator, &RequestMeta::from_request(&req)).await;
            match ctx {
                Ok(ctx) => {
                    req.extensions_mut().insert(ctx);
                    inner.call(req).await
                }
                Err(e) => Ok(e.to_response()),
            }
        })
    }
}

/// Who calls: [`AuthContext::anonymous`] when the routed operation needs no authentication
/// (`authType: None`), else what `validator` says. The step [`AuthLayer`] runs, for callers
/// that compose the request flow themselves.
pub async fn authenticate<V: KeyValidator + ?Sized>(
    validator: &V,
    meta: &RequestMeta<'_>,
) -> Result<Arc<AuthContext>, crate::ApimError> {
    if meta.route.is_some_and(|r| !r.operation().requires_auth()) {
        Ok(Arc::new(AuthContext::anonymous()))
    } else if let Some(answer) = validator.validate_now(meta) {
        answer
    } else {
        validator.validate(meta).await
    }
}
