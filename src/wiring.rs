//! Adapters that connect components which do not depend on each other: the Developer Portal's
//! token, API-key and introspection hooks, implemented over the in-process Key Manager, and the
//! Key Manager's endpoints behind the portal's same-origin guard.

use apim_core::model::KeyType;
use apim_core::ApimError;
use apim_keymanager::jwt::SubscribedApi;
use apim_keymanager::KeyManager;
use apim_portal::{
    ApiKeyIssuer, ApiKeyRequest, IssuedApiKey, IssuedToken, Principal, TokenIntrospector,
    TokenIssuer,
};

/// The Key Manager's endpoints behind the portal's same-origin guard
/// ([`apim_portal::extract::SameOriginGuard`]): a cross-site POST to `/oauth2/authorize` (the
/// consent form) or `/oauth2/register` (DCR with a user's Basic credentials) is a 403. The
/// client-authenticated `/oauth2/token`, `/oauth2/revoke` and `/oauth2/introspect` stay open to
/// browser-based clients of other origins: no user credential is ambient there.
pub fn key_manager_router(
    km: &KeyManager,
    allowed_origins: &[String],
) -> apim_portal::axum::Router {
    apim_portal::extract::SameOriginGuard::new(allowed_origins)
        .exempt(&["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"])
        .apply(km.router())
}

/// The in-process Key Manager as the portal's [`TokenIssuer`], [`ApiKeyIssuer`] and
/// [`TokenIntrospector`].
#[derive(Clone, Debug)]
pub struct KeyManagerHooks(pub KeyManager);

#[async_trait::async_trait]
impl TokenIssuer for KeyManagerHooks {
    async fn client_credentials_token(
        &self,
        consumer_key: &str,
        scopes: &[String],
        validity_secs: Option<u64>,
    ) -> Result<IssuedToken, ApimError> {
        let t = self
            .0
            .issue_client_credentials_token(consumer_key, scopes, validity_secs)
            .await?;
        Ok(IssuedToken {
            access_token: t.access_token,
            token_scopes: t.scope.split_whitespace().map(str::to_owned).collect(),
            validity_time: t.expires_in,
        })
    }
}

#[async_trait::async_trait]
impl ApiKeyIssuer for KeyManagerHooks {
    async fn issue_api_key(&self, r: ApiKeyRequest) -> Result<IssuedApiKey, ApimError> {
        let validity = r
            .validity_secs
            .map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let subscribed_apis = r
            .subscribed_apis
            .into_iter()
            .map(|(name, context, version)| SubscribedApi {
                name,
                context,
                version,
                ..Default::default()
            })
            .collect();
        let apikey = self.0.issue_api_key(apim_keymanager::ApiKeyRequest {
            application: r.application,
            key_type: r.key_type,
            validity_secs: validity,
            permitted_ip: r.permitted_ip,
            permitted_referer: r.permitted_referer,
            subscribed_apis,
            subject: None,
        })?;
        Ok(IssuedApiKey {
            apikey,
            validity_time: if validity > 0 { validity } else { -1 },
        })
    }

    async fn revoke_api_key(
        &self,
        application_id: &str,
        key_type: KeyType,
        apikey: &str,
    ) -> Result<(), ApimError> {
        if self
            .0
            .revoke_api_key(apikey, application_id, key_type)
            .await?
        {
            Ok(())
        } else {
            // not a key of this application and key type: never revoke it (nor an access
            // token) through this endpoint
            Err(ApimError::NotFound(format!(
                "{} API key of application {application_id}",
                key_type.as_str()
            )))
        }
    }
}

#[async_trait::async_trait]
impl TokenIntrospector for KeyManagerHooks {
    async fn introspect(&self, token: &str) -> Result<Option<Principal>, ApimError> {
        let v = self.0.introspect(token).await?;
        if v.get("active").and_then(|a| a.as_bool()) != Some(true) {
            return Ok(None);
        }
        // only access tokens: a refresh token or an API key is no credential for these APIs
        if v.get("token_type").and_then(|t| t.as_str()) != Some("Bearer") {
            return Ok(None);
        }
        let username = v
            .get("username")
            .or_else(|| v.get("sub"))
            .and_then(|u| u.as_str())
            .unwrap_or_default();
        if username.is_empty() {
            return Ok(None);
        }
        let scopes = v
            .get("scope")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Ok(Some(Principal {
            username: username.to_owned(),
            scopes,
            issued_at: v.get("iat").and_then(|i| i.as_i64()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use apim_keymanager::{ClientRegistration, KeyManagerSettings};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    const PW: &str = "admin-pass-123";

    async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let res = router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Issue 18 item 17: a refresh token or an API key presented as a Bearer token on the
    /// management APIs is refused (401); the access token of the same grant is accepted.
    #[tokio::test]
    async fn management_apis_take_access_tokens_only() {
        let (store, _dir) = apim_core::test_util::sqlite_store().await;
        store.seed_defaults(Some(PW)).await.expect("seed");
        let km = KeyManager::new(store.clone(), KeyManagerSettings::new("http://km.test"))
            .await
            .expect("key manager");
        let c = km
            .register_client(
                ClientRegistration {
                    grant_types: vec!["password".into(), "refresh_token".into()],
                    ..Default::default()
                },
                "admin",
            )
            .await
            .expect("client");
        let (status, token) = call(
            &km.router(),
            Request::post("/oauth2/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "grant_type=password&username=admin&password={PW}&scope=apim:api_create\
                     &client_id={}&client_secret={}",
                    c.client.client_id, c.client_secret
                )))
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{token}");
        let app: apim_core::model::Application = serde_json::from_value(serde_json::json!({
            "applicationId": "app-1", "name": "Shop", "throttlingPolicy": "Unlimited", "owner": "admin"
        }))
        .expect("application");
        let api_key = km
            .issue_api_key(apim_keymanager::ApiKeyRequest {
                application: app,
                key_type: apim_core::model::KeyType::Production,
                validity_secs: 3600,
                permitted_ip: None,
                permitted_referer: None,
                subscribed_apis: Vec::new(),
                subject: None,
            })
            .expect("api key");
        let portal = apim_portal::Portal::new(store)
            .with_introspector(Arc::new(KeyManagerHooks(km)))
            .router();
        let get = |bearer: &str| {
            Request::get("/api/am/publisher/v4/apis")
                .header("authorization", format!("Bearer {bearer}"))
                .body(Body::empty())
                .expect("request")
        };
        let access = token["access_token"].as_str().expect("access token");
        let refresh = token["refresh_token"].as_str().expect("refresh token");
        assert_eq!(call(&portal, get(access)).await.0, StatusCode::OK);
        assert_eq!(
            call(&portal, get(refresh)).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&portal, get(&api_key)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}
