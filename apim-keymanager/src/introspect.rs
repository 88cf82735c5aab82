//! `POST /oauth2/introspect` (RFC 7662). The caller authenticates as a registered client — which
//! learns about its own tokens only; another client's token answers `{"active": false}` — or as
//! a gateway of the deployment with the internal token ([`crate::internal`]), which sees all.
//! Inactive, unknown, expired and revoked tokens all answer `{"active": false}`.

use apim_core::time::now_secs;
use apim_core::ApimError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::error::{OAuthError, OAuthErrorKind};
use crate::form::OAuthForm;
use crate::jwt::{looks_like_jwt, Validation};
use crate::token_endpoint::no_store;
use crate::KeyManager;

impl KeyManager {
    /// RFC 7662 introspection of any token this Key Manager issued.
    pub async fn introspect(&self, token: &str) -> Result<Value, ApimError> {
        let inactive = json!({ "active": false });
        let store = &self.inner.store;
        if looks_like_jwt(token) {
            let v = Validation {
                issuer: Some(self.inner.settings.issuer.clone()),
                audience: None,
                leeway_secs: 0,
            };
            let Ok(c) = self.key_ring().verifier().verify(token, &v, now_secs()) else {
                return Ok(inactive);
            };
            if store.is_revoked(&c.jti).await? {
                return Ok(inactive);
            }
            let mut out = json!({
                "active": true,
                "token_type": if c.token_type.as_deref() == Some("apiKey") { "apiKey" } else { "Bearer" },
                "scope": c.scope.clone().unwrap_or_default(),
                "client_id": c.client_id,
                "username": c.sub,
                "sub": c.sub,
                "aud": c.aud,
                "iss": c.iss,
                "exp": c.exp,
                "iat": c.iat,
                "jti": c.jti,
            });
            if let Some(nbf) = c.nbf {
                out["nbf"] = nbf.into();
            }
            if let Some(app) = &c.application {
                out["application"] = serde_json::to_value(app)?;
            }
            if let Some(kt) = &c.keytype {
                out["keytype"] = kt.clone().into();
            }
            return Ok(out);
        }
        for (kind, token_type) in [("access", "Bearer"), ("refresh", "refresh_token")] {
            if let Some(t) = store.get_token(token, kind).await? {
                let mut out = json!({
                    "active": true,
                    "token_type": token_type,
                    "scope": t.scopes.join(" "),
                    "client_id": t.client_id,
                    "username": t.username,
                    "sub": t.username,
                    "exp": t.expires_at,
                    "iss": self.inner.settings.issuer,
                });
                for (k, v) in t.extra {
                    if k == "application" || k == "keytype" {
                        out[k] = v;
                    }
                }
                return Ok(out);
            }
        }
        Ok(inactive)
    }
}

pub(crate) async fn introspect(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    // a gateway with the internal token, else a registered client
    let internal = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
        });
    let caller = if internal {
        crate::internal::internal_caller(&km, &headers)
            .map_err(|e| OAuthError::new(OAuthErrorKind::InvalidClient, e.to_string()))?;
        None
    } else {
        Some(km.authenticate_client(&headers, &form).await?.client_id)
    };
    let token = form.require("token")?;
    let mut out = km.introspect(token).await?;
    // a client learns about its own tokens only (RFC 7662 §4: the endpoint must not become a
    // way to probe other clients' tokens); gateways see every token
    if let Some(client_id) = caller {
        if out["active"] == true && out["client_id"].as_str() != Some(client_id.as_str()) {
            out = json!({ "active": false });
        }
    }
    Ok(no_store(Json(out).into_response()))
}
