//! `/.well-known/oauth-authorization-server` (RFC 8414, also served as
//! `/.well-known/openid-configuration`) and `/oauth2/jwks` (RFC 7517).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::jwks::JwkSet;
use crate::KeyManager;

impl KeyManager {
    /// The authorization server metadata document.
    pub fn metadata(&self) -> Value {
        let s = &self.inner.settings;
        let b = &s.base_url;
        let algs: Vec<&str> = {
            let mut v: Vec<&str> = self
                .jwks()
                .keys
                .iter()
                .filter_map(|k| k.alg.as_deref())
                .map(|a| crate::keys::Algorithm::parse(a).map_or("ES256", |a| a.as_str()))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        json!({
            "issuer": s.issuer,
            "authorization_endpoint": format!("{b}/oauth2/authorize"),
            "token_endpoint": format!("{b}/oauth2/token"),
            "jwks_uri": format!("{b}/oauth2/jwks"),
            "registration_endpoint": format!("{b}/oauth2/register"),
            "revocation_endpoint": format!("{b}/oauth2/revoke"),
            "introspection_endpoint": format!("{b}/oauth2/introspect"),
            "grant_types_supported": crate::grants::SUPPORTED,
            "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["default", "apim:api_create", "apim:api_publish", "apim:subscribe", "apim:admin"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
        })
    }
}

pub(crate) async fn metadata(State(km): State<KeyManager>) -> Json<Value> {
    Json(km.metadata())
}

pub(crate) async fn jwks(State(km): State<KeyManager>) -> Json<JwkSet> {
    Json(km.jwks())
}
