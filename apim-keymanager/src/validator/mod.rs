//! [`KeyValidator`](apim_core::auth::KeyValidator) implementations for the gateway:
//!
//! | validator | credential | checked by |
//! |---|---|---|
//! | [`JwtValidator`] | `Authorization: Bearer <JWT>` | signature (cached JWKS), exp/nbf, iss, aud, revoked jti |
//! | [`IntrospectionValidator`] | `Authorization: Bearer <opaque>` | the Key Manager (in-process or RFC 7662 over HTTP) |
//! | [`ApiKeyValidator`] | `apikey` header (or query) | signature, `permittedIP`, `permittedReferer`, revoked jti |
//! | [`BasicAuthValidator`] | `Authorization: Basic` | a [`UserVerifier`]: the user store, the in-process Key Manager, or one over HTTP ([`HttpUserVerifier`]) |
//! | [`CredentialValidator`] | any of the above | dispatches on the credential's shape |
//!
//! A validated credential is cached by its SHA-256 until its expiry; a revoked one (the
//! ArtifactStore snapshot's revoked set, fed by TOKEN_REVOCATION events) is rejected even on a
//! cache hit. Routed requests are then authorised: subscription (403 900908, blocked 401 900907)
//! and scopes (403 900910).

mod api_key;
mod basic;
mod composite;
mod http_users;
mod introspection;
mod jwt;
mod thread_answers;

use std::sync::Arc;

use apim_core::artifacts::{ArtifactSnapshot, RouteMatch};
use apim_core::auth::AuthContext;
use apim_core::model::SubscriptionStatus;
use apim_core::ApimError;
use http::HeaderMap;

pub use api_key::ApiKeyValidator;
pub use api_key::API_KEY_HEADER;
pub use basic::{BasicAuthValidator, UserVerifier};
pub use composite::CredentialValidator;
pub use http_users::HttpUserVerifier;
pub use introspection::{HttpIntrospector, IntrospectionValidator, TokenIntrospector};
pub use jwt::JwtValidator;

/// SHA-256 of a credential: the cache key (the credential itself is never kept).
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The bytes of the bearer token of `Authorization: Bearer ...`, if any, without the
/// character check of [`bearer`]: for lookups of tokens verified before, which only a
/// well-formed token can match (the same bytes [`bearer`] returns for a well-formed value).
pub(crate) fn bearer_bytes(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let at = v.iter().position(|&b| b == b' ')?;
    let tok = v[at + 1..].trim_ascii();
    (v[..at].eq_ignore_ascii_case(b"bearer") && !tok.is_empty()).then_some(tok)
}

/// The bearer token of `Authorization: Bearer ...`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, tok) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| tok.trim())
        .filter(|t| !t.is_empty())
}

/// Subscription and scope checks for a routed request; sets the subscription tier.
pub(crate) fn authorize(
    ctx: Arc<AuthContext>,
    route: Option<&RouteMatch>,
    snap: &ArtifactSnapshot,
) -> Result<Arc<AuthContext>, ApimError> {
    let Some(route) = route else {
        return Ok(ctx);
    };
    let out = subscribe(&ctx, route, snap)?;
    check_scopes(&out, route)?;
    Ok(out)
}

/// The caller's context for the routed API: subscription checked, tiers filled in.
fn subscribe(
    ctx: &AuthContext,
    route: &RouteMatch,
    snap: &ArtifactSnapshot,
) -> Result<Arc<AuthContext>, ApimError> {
    let api = &route.api.api;
    let sub = snap
        .subscription(&ctx.application_id, &api.id)
        .ok_or_else(|| {
            ApimError::ResourceForbidden(format!(
                "the application is not subscribed to {} {}",
                api.name, api.version
            ))
        })?;
    if !sub.status.allows(ctx.key_type) {
        return Err(match sub.status {
            SubscriptionStatus::Blocked | SubscriptionStatus::ProdOnlyBlocked => {
                ApimError::SubscriptionBlocked("the subscription is blocked".into())
            }
            _ => ApimError::ResourceForbidden("the subscription is not active".into()),
        });
    }
    let mut out = ctx.clone();
    out.subscription_tier = Some(sub.throttling_policy.clone());
    if let Some(app) = snap.application(&out.application_id) {
        out.application_tier = app.throttling_policy.clone();
    }
    Ok(Arc::new(out))
}

/// The operation's scopes (any one of them) against the token's.
fn check_scopes(ctx: &AuthContext, route: &RouteMatch) -> Result<(), ApimError> {
    let op = route.operation();
    if !op.scopes.is_empty() && !op.scopes.iter().any(|s| ctx.scopes.contains(s)) {
        return Err(ApimError::ScopeNotAllowed(format!(
            "the resource needs one of the scopes: {}",
            op.scopes.join(", ")
        )));
    }
    Ok(())
}

/// The last authorisation of a cached credential: for which snapshot and API, and the result.
/// A repeated call for the same API on the same snapshot reuses it instead of rebuilding the
/// context (a dozen string copies per request otherwise). Any artifact change makes a new
/// snapshot, so subscription, application and policy changes are never missed; the `Weak`
/// keeps the old snapshot's address from being reused while it is remembered.
#[derive(Debug, Default)]
pub(crate) struct AuthMemo(std::sync::Mutex<Option<Memo>>);

#[derive(Debug)]
struct Memo {
    snap: std::sync::Weak<ArtifactSnapshot>,
    api: usize,
    ctx: Arc<AuthContext>,
}

impl AuthMemo {
    /// [`authorize`], remembering the subscribed context per (snapshot, API).
    pub(crate) fn authorize(
        &self,
        ctx: &Arc<AuthContext>,
        route: Option<&RouteMatch>,
        snap: &Arc<ArtifactSnapshot>,
    ) -> Result<Arc<AuthContext>, ApimError> {
        let Some(route) = route else {
            return Ok(ctx.clone());
        };
        let api = Arc::as_ptr(&route.api) as usize;
        let hit = {
            let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
            m.as_ref()
                .filter(|m| m.api == api && std::ptr::eq(m.snap.as_ptr(), Arc::as_ptr(snap)))
                .map(|m| m.ctx.clone())
        };
        let out = match hit {
            Some(c) => c,
            None => {
                let c = subscribe(ctx, route, snap)?;
                *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Memo {
                    snap: Arc::downgrade(snap),
                    api,
                    ctx: c.clone(),
                });
                c
            }
        };
        check_scopes(&out, route)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_bytes(value).unwrap(),
        );
        h
    }

    #[test]
    fn bearer_bytes_are_the_bearer_token_of_well_formed_values() {
        for (value, token) in [
            (&b"Bearer abc.def.ghi"[..], Some(&b"abc.def.ghi"[..])),
            (b"bearer  abc \t", Some(b"abc")),
            (b"BEARER a b", Some(b"a b")),
            (b"Basic abc", None),
            (b"Bearer", None),
            (b"Bearer   ", None),
            (b"Bearerabc", None),
            (b" Bearer abc", None),
        ] {
            let h = with(value);
            assert_eq!(bearer(&h).map(str::as_bytes), token, "{value:?}");
            assert_eq!(bearer_bytes(&h), token, "{value:?}");
        }
        // not visible ASCII: no token to validate, and bytes no verified token can equal
        let h = with(b"Bearer abc\xff");
        assert_eq!(bearer(&h), None);
        assert_eq!(bearer_bytes(&h), Some(&b"abc\xff"[..]));
        assert!(bearer_bytes(&HeaderMap::new()).is_none());
    }
}
