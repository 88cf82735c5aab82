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
        }))
    }
}
