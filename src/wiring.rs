//! Adapters that connect components which do not depend on each other: the Developer Portal's
//! token, API-key and introspection hooks, implemented over the in-process Key Manager.

use apim_core::ApimError;
use apim_keymanager::jwt::SubscribedApi;
use apim_keymanager::KeyManager;
use apim_portal::{
    ApiKeyIssuer, ApiKeyRequest, IssuedApiKey, IssuedToken, Principal, TokenIntrospector,
    TokenIssuer,
};

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

    async fn revoke_api_key(&self, _application_id: &str, apikey: &str) -> Result<(), ApimError> {
        if self.0.revoke(apikey, None).await? {
            Ok(())
        } else {
            Err(ApimError::validation(
                "apikey",
                "is not an API key issued by this Key Manager",
            ))
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
        }))
    }
}
