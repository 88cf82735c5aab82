//! OAuth keys (generate, list, regenerate secret, generate token) and API keys of an
//! application. Client registration goes straight to the store; tokens and API keys come from the
//! Key Manager through [`TokenIssuer`](crate::TokenIssuer) / [`ApiKeyIssuer`](crate::ApiKeyIssuer).

use std::collections::BTreeMap;

use apim_core::auth::key_limits;
use apim_core::crypto::{random_bytes, random_secret};
use apim_core::model::{KeyMapping, KeyType};
use apim_core::store::OAuthClient;
use apim_core::ApimError;
use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::applications::owned_app;
use crate::auth::Caller;
use crate::extract::{Json, Path};
use crate::issuer::{ApiKeyRequest, IssuedApiKey, IssuedToken};
use crate::paging::List;
use crate::Portal;

const GRANT_TYPES: [&str; 5] = [
    "client_credentials",
    "password",
    "refresh_token",
    "authorization_code",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
];

/// A number WSO2 clients send either as a number or as a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Seconds {
    /// `3600`
    Number(i64),
    /// `"3600"`
    Text(String),
}

impl Seconds {
    fn get(&self, field: &str) -> Result<Option<u64>, ApimError> {
        let n = match self {
            Seconds::Number(n) => *n,
            Seconds::Text(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| ApimError::validation(field, format!("'{s}' is not a number")))?,
        };
        match n {
            n if n < -1 => Err(ApimError::validation(
                field,
                "must be -1 (no expiry) or more",
            )),
            -1 | 0 => Ok(None),
            n if n > 10 * 365 * 24 * 3600 => {
                Err(ApimError::validation(field, "must be at most ten years"))
            }
            n => Ok(Some(n as u64)),
        }
    }
}

/// Body of generate-keys.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GenerateKeys {
    key_type: KeyType,
    #[serde(default = "default_grants")]
    grant_types_to_be_supported: Vec<String>,
    #[serde(default)]
    callback_url: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    validity_time: Option<Seconds>,
    #[serde(default)]
    key_manager: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    additional_properties: Option<serde_json::Value>,
}

fn default_grants() -> Vec<String> {
    vec!["client_credentials".into()]
}

/// An application's OAuth keys; the secret appears only when just generated.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationKey {
    key_mapping_id: String,
    key_manager: String,
    consumer_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_secret: Option<String>,
    supported_grant_types: Vec<String>,
    callback_url: Option<String>,
    key_state: &'static str,
    key_type: KeyType,
    mode: &'static str,
}

impl std::fmt::Debug for ApplicationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationKey")
            .field("consumer_key", &self.consumer_key)
            .field(
                "consumer_secret",
                &self.consumer_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn key_view(km: KeyMapping, client: Option<OAuthClient>, secret: Option<String>) -> ApplicationKey {
    let (grants, callback) = client
        .map(|c| (c.grant_types, c.redirect_uris.into_iter().next()))
        .unwrap_or_default();
    ApplicationKey {
        key_mapping_id: km.key_mapping_id,
        key_manager: km.key_manager,
        consumer_key: km.consumer_key,
        consumer_secret: secret,
        supported_grant_types: grants,
        callback_url: callback,
        key_state: "COMPLETED",
        key_type: km.key_type,
        mode: "CREATED",
    }
}

fn check_generate(body: &GenerateKeys) -> Result<(), ApimError> {
    if body.grant_types_to_be_supported.is_empty() {
        return Err(ApimError::validation(
            "grantTypesToBeSupported",
            "name at least one grant type",
        ));
    }
    for (i, g) in body.grant_types_to_be_supported.iter().enumerate() {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return Err(ApimError::validation(
                format!("grantTypesToBeSupported[{i}]"),
                format!("unknown grant type '{g}'; expected one of {GRANT_TYPES:?}"),
            ));
        }
    }
    if let Some(cb) = body.callback_url.as_deref().filter(|c| !c.is_empty()) {
        let ok = (cb.starts_with("http://") || cb.starts_with("https://"))
            && cb.len() <= 2000
            && cb.parse::<http::Uri>().is_ok();
        if !ok {
            return Err(ApimError::validation(
                "callbackUrl",
                "must be an http(s) URL",
            ));
        }
    } else if body
        .grant_types_to_be_supported
        .iter()
        .any(|g| g == "authorization_code")
    {
        return Err(ApimError::validation(
            "callbackUrl",
            "authorization_code needs a callback URL",
        ));
    }
    if body.scopes.len() > 100
        || body
            .scopes
            .iter()
            .any(|s| s.is_empty() || s.len() > 100 || s.contains(char::is_whitespace))
    {
        return Err(ApimError::validation(
            "scopes",
            "at most 100 scopes of 1-100 non-space characters",
        ));
    }
    if let Some(km) = &body.key_manager {
        if km != "Resident Key Manager" && km != "Default" {
            return Err(ApimError::validation(
                "keyManager",
                "only 'Resident Key Manager' is available",
            ));
        }
    }
    Ok(())
}

/// Register an OAuth client for a key type; the secret is shown only in this response.
#[utoipa::path(post, path = "/applications/{applicationId}/generate-keys", params(("applicationId" = String, Path, description = "applicationId")), tag = "Application Keys",
    request_body(content = Object, description = "{keyType, grantTypesToBeSupported, callbackUrl, scopes, validityTime}"),
    responses((status = 200, description = "Keys with the consumer secret"), (status = 409, description = "Keys of this type exist")))]
pub(crate) async fn generate_keys(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<GenerateKeys>,
) -> Result<Json<ApplicationKey>, ApimError> {
    let app = owned_app(&p, &caller, &id).await?;
    check_generate(&body)?;
    let lifetime = match &body.validity_time {
        Some(v) => v.get("validityTime")?.unwrap_or(0),
        None => 0,
    };
    if p.store()
        .key_mappings(&id)
        .await?
        .iter()
        .any(|k| k.key_type == body.key_type)
    {
        return Err(ApimError::Conflict(format!(
            "the application already has {} keys",
            body.key_type.as_str()
        )));
    }
    let consumer_key = URL_SAFE_NO_PAD.encode(random_bytes(20)?);
    let secret = random_secret()?;
    let client = OAuthClient {
        client_id: consumer_key.clone(),
        client_name: format!("{}_{}", app.name, body.key_type.as_str()),
        owner: caller.name().to_owned(),
        application_id: Some(id.clone()),
        key_type: Some(body.key_type.as_str().to_owned()),
        redirect_uris: body
            .callback_url
            .clone()
            .filter(|c| !c.is_empty())
            .into_iter()
            .collect(),
        grant_types: body.grant_types_to_be_supported.clone(),
        scopes: body.scopes.clone(),
        token_type: match app.token_type {
            apim_core::model::TokenType::Jwt => "JWT".into(),
            apim_core::model::TokenType::Oauth => "OAUTH".into(),
        },
        access_token_lifetime: lifetime,
        refresh_token_lifetime: 0,
        created_time: 0,
        first_party: false,
    };
    let client = p.store().create_oauth_client(client, &secret).await?;
    let km = match p
        .store()
        .add_key_mapping(&id, body.key_type, &consumer_key)
        .await
    {
        Ok(km) => km,
        Err(e) => {
            // e.g. a concurrent generate-keys won the race: leave no orphan client behind
            if let Err(cleanup) = p.store().delete_oauth_client(&consumer_key).await {
                tracing::warn!(error = %cleanup, "could not remove the unused OAuth client");
            }
            return Err(e);
        }
    };
    Ok(Json(key_view(km, Some(client), Some(secret))))
}

async fn mapping(p: &Portal, app_id: &str, km_id: &str) -> Result<KeyMapping, ApimError> {
    p.store()
        .key_mappings(app_id)
        .await?
        .into_iter()
        .find(|k| k.key_mapping_id == km_id)
        .ok_or_else(|| ApimError::NotFound(format!("key mapping {km_id}")))
}

/// The application's OAuth keys (without secrets).
#[utoipa::path(get, path = "/applications/{applicationId}/oauth-keys", params(("applicationId" = String, Path, description = "applicationId")), tag = "Application Keys",
    responses((status = 200, description = "Keys: {count, list}")))]
pub(crate) async fn list_keys(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<List<ApplicationKey>>, ApimError> {
    owned_app(&p, &caller, &id).await?;
    let mut out = Vec::new();
    for km in p.store().key_mappings(&id).await? {
        let client = p.store().get_oauth_client(&km.consumer_key).await?;
        out.push(key_view(km, client, None));
    }
    Ok(Json(List::all(out)))
}

/// One key mapping (without the secret).
#[utoipa::path(get, path = "/applications/{applicationId}/oauth-keys/{keyMappingId}", params(("applicationId" = String, Path, description = "applicationId"), ("keyMappingId" = String, Path, description = "keyMappingId")), tag = "Application Keys",
    responses((status = 200, description = "The keys")))]
pub(crate) async fn get_key(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, km_id)): Path<(String, String)>,
) -> Result<Json<ApplicationKey>, ApimError> {
    owned_app(&p, &caller, &id).await?;
    let km = mapping(&p, &id, &km_id).await?;
    let client = p.store().get_oauth_client(&km.consumer_key).await?;
    Ok(Json(key_view(km, client, None)))
}

/// Remove a key mapping and its OAuth client.
#[utoipa::path(post, path = "/applications/{applicationId}/oauth-keys/{keyMappingId}/clean-up", params(("applicationId" = String, Path, description = "applicationId"), ("keyMappingId" = String, Path, description = "keyMappingId")), tag = "Application Keys",
    responses((status = 200, description = "Removed")))]
pub(crate) async fn clean_up(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, km_id)): Path<(String, String)>,
) -> Result<StatusCode, ApimError> {
    owned_app(&p, &caller, &id).await?;
    let km = mapping(&p, &id, &km_id).await?;
    p.store().remove_key_mapping(&id, km.key_type).await?;
    Ok(StatusCode::OK)
}

/// A new consumer secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewSecret {
    consumer_key: String,
    consumer_secret: String,
}

/// Replace the consumer secret; the new one is shown only in this response.
#[utoipa::path(post, path = "/applications/{applicationId}/oauth-keys/{keyMappingId}/regenerate-secret", params(("applicationId" = String, Path, description = "applicationId"), ("keyMappingId" = String, Path, description = "keyMappingId")), tag = "Application Keys",
    responses((status = 200, description = "{consumerKey, consumerSecret}")))]
pub(crate) async fn regenerate_secret(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, km_id)): Path<(String, String)>,
) -> Result<Json<NewSecret>, ApimError> {
    owned_app(&p, &caller, &id).await?;
    let km = mapping(&p, &id, &km_id).await?;
    let secret = random_secret()?;
    p.store()
        .set_client_secret(&km.consumer_key, &secret)
        .await?;
    Ok(Json(NewSecret {
        consumer_key: km.consumer_key,
        consumer_secret: secret,
    }))
}

/// Body of generate-token.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GenerateToken {
    consumer_secret: String,
    #[serde(default)]
    validity_period: Option<Seconds>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    revoke_token: Option<String>,
    #[serde(default)]
    grant_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    additional_properties: Option<serde_json::Value>,
}

/// A client-credentials token for the key mapping (needs the consumer secret).
#[utoipa::path(post, path = "/applications/{applicationId}/oauth-keys/{keyMappingId}/generate-token", params(("applicationId" = String, Path, description = "applicationId"), ("keyMappingId" = String, Path, description = "keyMappingId")), tag = "Application Keys",
    request_body(content = Object, description = "{consumerSecret, validityPeriod, scopes}"),
    responses((status = 200, description = "{accessToken, tokenScopes, validityTime}"), (status = 400, description = "Wrong consumer secret")))]
pub(crate) async fn generate_token(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, km_id)): Path<(String, String)>,
    Json(body): Json<GenerateToken>,
) -> Result<Json<IssuedToken>, ApimError> {
    owned_app(&p, &caller, &id).await?;
    let km = mapping(&p, &id, &km_id).await?;
    if body
        .grant_type
        .as_deref()
        .is_some_and(|g| g != "client_credentials")
    {
        return Err(ApimError::validation(
            "grantType",
            "only client_credentials is supported here",
        ));
    }
    let validity = match &body.validity_period {
        Some(v) => v.get("validityPeriod")?,
        None => None,
    };
    if body.scopes.len() > 100 || body.scopes.iter().any(|s| s.len() > 100) {
        return Err(ApimError::validation(
            "scopes",
            "at most 100 scopes of up to 100 characters",
        ));
    }
    let client = p
        .store()
        .authenticate_client(&km.consumer_key, &body.consumer_secret)
        .await?
        .ok_or_else(|| {
            ApimError::validation("consumerSecret", "does not match the consumer key")
        })?;
    // the token is a client_credentials grant: only for keys that allow it
    if !client.grant_types.iter().any(|g| g == "client_credentials") {
        return Err(ApimError::validation(
            "grantType",
            "the keys do not allow the client_credentials grant",
        ));
    }
    let issuer = p.token_issuer().ok_or_else(|| {
        ApimError::BackendUnavailable("no Key Manager is wired to this Developer Portal".into())
    })?;
    Ok(Json(
        issuer
            .client_credentials_token(&km.consumer_key, &body.scopes, validity)
            .await?,
    ))
}

/// Body of api-keys generate.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GenerateApiKey {
    #[serde(default)]
    validity_period: Option<Seconds>,
    #[serde(default)]
    additional_properties: BTreeMap<String, String>,
}

fn key_type_param(s: &str) -> Result<KeyType, ApimError> {
    KeyType::parse(s)
}

/// Issue an API key for the application's subscriptions.
#[utoipa::path(post, path = "/applications/{applicationId}/api-keys/{keyType}/generate", params(("applicationId" = String, Path, description = "applicationId"), ("keyType" = String, Path, description = "keyType")), tag = "API Keys",
    request_body(content = Object, description = "{validityPeriod, additionalProperties: {permittedIP, permittedReferer}}"),
    responses((status = 200, description = "{apikey, validityTime}")))]
pub(crate) async fn generate_api_key(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, key_type)): Path<(String, String)>,
    body: Option<Json<GenerateApiKey>>,
) -> Result<Json<IssuedApiKey>, ApimError> {
    let app = owned_app(&p, &caller, &id).await?;
    let key_type = key_type_param(&key_type)?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let validity = match &body.validity_period {
        Some(v) => v.get("validityPeriod")?,
        None => None,
    };
    for (k, v) in &body.additional_properties {
        let field = format!("additionalProperties.{k}");
        match k.as_str() {
            // the Key Manager's own checks, refused before anything is issued
            "permittedIP" => key_limits::validate_permitted_ip(&field, v)?,
            "permittedReferer" => key_limits::validate_permitted_referer(&field, v)?,
            _ => {
                return Err(ApimError::validation(
                    field,
                    "only permittedIP and permittedReferer are accepted",
                ))
            }
        }
    }
    let mut subscribed = Vec::new();
    for s in p.store().list_subscriptions(Some(&id), None).await? {
        let api = p.store().get_api(&s.api_id).await?;
        subscribed.push((api.name, api.context, api.version));
    }
    let issuer = p.api_key_issuer().ok_or_else(|| {
        ApimError::BackendUnavailable("no Key Manager is wired to this Developer Portal".into())
    })?;
    let mut props = body.additional_properties;
    Ok(Json(
        issuer
            .issue_api_key(ApiKeyRequest {
                application: app,
                key_type,
                subscribed_apis: subscribed,
                validity_secs: validity,
                permitted_ip: props.remove("permittedIP").filter(|s| !s.is_empty()),
                permitted_referer: props.remove("permittedReferer").filter(|s| !s.is_empty()),
            })
            .await?,
    ))
}

/// Body of api-keys revoke.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RevokeApiKey {
    apikey: String,
}

/// Revoke an API key of the application.
#[utoipa::path(post, path = "/applications/{applicationId}/api-keys/{keyType}/revoke", params(("applicationId" = String, Path, description = "applicationId"), ("keyType" = String, Path, description = "keyType")), tag = "API Keys",
    request_body(content = Object, description = "{apikey}"),
    responses((status = 200, description = "Revoked"), (status = 404, description = "Not an API key of this application and key type")))]
pub(crate) async fn revoke_api_key(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, key_type)): Path<(String, String)>,
    Json(body): Json<RevokeApiKey>,
) -> Result<StatusCode, ApimError> {
    owned_app(&p, &caller, &id).await?;
    let key_type = key_type_param(&key_type)?;
    if body.apikey.is_empty() || body.apikey.len() > 16_384 {
        return Err(ApimError::validation(
            "apikey",
            "must be 1-16384 characters",
        ));
    }
    let issuer = p.api_key_issuer().ok_or_else(|| {
        ApimError::BackendUnavailable("no Key Manager is wired to this Developer Portal".into())
    })?;
    issuer.revoke_api_key(&id, key_type, &body.apikey).await?;
    Ok(StatusCode::OK)
}
