//! `POST /oauth2/register` (RFC 7591 dynamic client registration), also what the Developer
//! Portal's generate-keys calls in-process ([`KeyManager::register_client`]).
//!
//! Authentication: HTTP Basic with a user account (the user becomes the client's owner; binding
//! an `application_id` requires owning that application or the admin role), or
//! `Authorization: Bearer <initial access token>` when
//! [`crate::KeyManagerSettings::initial_access_token`] is set (the body's `owner` is honoured, default `admin`).

use apim_core::crypto::{ct_eq, random_secret};
use apim_core::model::{roles, KeyType};
use apim_core::store::OAuthClient;
use apim_core::ApimError;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::client_auth::basic_credentials;
use crate::error::{OAuthError, OAuthErrorKind};
use crate::form::MAX_FORM_BYTES;
use crate::grants::SUPPORTED;
use crate::token_endpoint::no_store;
use crate::KeyManager;

/// RFC 7591 client metadata, plus the apim extensions the Developer Portal uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClientRegistration {
    /// Human-readable name.
    pub client_name: Option<String>,
    /// Redirect URIs (authorization code flow); absolute `http`/`https`, no fragment.
    pub redirect_uris: Vec<String>,
    /// Grant types; default `client_credentials password refresh_token` (+ `authorization_code`
    /// when redirect URIs are given).
    pub grant_types: Vec<String>,
    /// Space-separated scopes the client may request (none = any).
    pub scope: Option<String>,
    /// apim: application the client belongs to.
    pub application_id: Option<String>,
    /// apim: `PRODUCTION` (default) or `SANDBOX`.
    pub key_type: Option<String>,
    /// apim: `JWT` (default) or `OAUTH` (opaque tokens).
    pub token_type: Option<String>,
    /// apim: access-token lifetime, seconds (0 = server default).
    pub access_token_lifetime: u64,
    /// apim: refresh-token lifetime, seconds (0 = server default).
    pub refresh_token_lifetime: u64,
    /// apim: owner, honoured only with the initial access token.
    pub owner: Option<String>,
}

/// A registered client and its secret, shown once. `Debug` redacts the secret.
#[derive(Clone, Serialize)]
pub struct RegisteredClient {
    /// The client as stored.
    #[serde(flatten)]
    pub client: OAuthClient,
    /// The secret (only its hash is kept).
    pub client_secret: String,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client", &self.client)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

fn check_redirect(uri: &str) -> Result<(), ApimError> {
    let parsed: Result<http::Uri, _> = uri.parse();
    let ok = matches!(&parsed, Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        && !uri.contains('#');
    if ok {
        Ok(())
    } else {
        Err(ApimError::validation(
            "redirect_uris",
            "must be absolute http(s) URIs without a fragment",
        ))
    }
}

impl KeyManager {
    /// Registers a client for `owner` and returns it with its secret (256 random bits; only the
    /// SHA-256 hash is stored). Errors are [`ApimError::Validation`] naming the field.
    pub async fn register_client(
        &self,
        reg: ClientRegistration,
        owner: &str,
    ) -> Result<RegisteredClient, ApimError> {
        for u in &reg.redirect_uris {
            check_redirect(u)?;
        }
        let mut grant_types = reg.grant_types;
        if grant_types.is_empty() {
            grant_types = vec![
                "client_credentials".into(),
                "password".into(),
                "refresh_token".into(),
            ];
            if !reg.redirect_uris.is_empty() {
                grant_types.push("authorization_code".into());
            }
        }
        if let Some(g) = grant_types
            .iter()
            .find(|g| !SUPPORTED.contains(&g.as_str()))
        {
            return Err(ApimError::validation(
                "grant_types",
                format!("unsupported grant type '{g}'"),
            ));
        }
        if grant_types.iter().any(|g| g == "authorization_code") && reg.redirect_uris.is_empty() {
            return Err(ApimError::validation(
                "redirect_uris",
                "required for the authorization_code grant",
            ));
        }
        let settings = &self.inner.settings;
        for (field, asked, max) in [
            (
                "access_token_lifetime",
                reg.access_token_lifetime,
                settings.max_access_token_lifetime,
            ),
            (
                "refresh_token_lifetime",
                reg.refresh_token_lifetime,
                settings.max_refresh_token_lifetime,
            ),
        ] {
            if asked > max.as_secs() {
                return Err(ApimError::validation(
                    field,
                    format!(
                        "must be at most {} seconds (key_manager.max_{field}_secs)",
                        max.as_secs()
                    ),
                ));
            }
        }
        let name = reg.client_name.unwrap_or_else(|| "client".into());
        if name.len() > 200 {
            return Err(ApimError::validation(
                "client_name",
                "at most 200 characters",
            ));
        }
        let key_type = reg.key_type.as_deref().map(KeyType::parse).transpose()?;
        let token_type = match reg
            .token_type
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("JWT") => "JWT",
            Some("OAUTH") => "OAUTH",
            Some(_) => return Err(ApimError::validation("token_type", "must be JWT or OAUTH")),
        };
        let client = OAuthClient {
            client_id: random_secret()?.chars().take(32).collect::<String>(),
            client_name: name,
            owner: owner.to_owned(),
            application_id: reg.application_id,
            key_type: Some(key_type.unwrap_or_default().as_str().to_owned()),
            redirect_uris: reg.redirect_uris,
            grant_types,
            scopes: reg
                .scope
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            token_type: token_type.into(),
            access_token_lifetime: reg.access_token_lifetime,
            refresh_token_lifetime: reg.refresh_token_lifetime,
            created_time: 0,
            first_party: false,
        };
        let secret = random_secret()?;
        let client = self
            .inner
            .store
            .create_oauth_client(client, &secret)
            .await?;
        tracing::info!(client_id = %client.client_id, owner, "client registered");
        Ok(RegisteredClient {
            client,
            client_secret: secret,
        })
    }

    /// Replaces a client's secret and returns the new one (Developer Portal "regenerate secret").
    pub async fn regenerate_client_secret(&self, client_id: &str) -> Result<String, ApimError> {
        let secret = random_secret()?;
        self.inner
            .store
            .set_client_secret(client_id, &secret)
            .await?;
        Ok(secret)
    }

    /// Issues a client-credentials token for a client without its secret — for trusted
    /// in-process callers (the Developer Portal's "generate access token"). `scopes` narrows as
    /// on the token endpoint; `validity_secs` (if set) overrides the lifetime.
    pub async fn issue_client_credentials_token(
        &self,
        client_id: &str,
        scopes: &[String],
        validity_secs: Option<u64>,
    ) -> Result<crate::TokenResponse, ApimError> {
        let mut client = self
            .inner
            .store
            .get_oauth_client(client_id)
            .await?
            .ok_or_else(|| ApimError::NotFound(format!("client {client_id}")))?;
        // the grant this is must be one the client was registered for
        if !client.grant_types.iter().any(|g| g == "client_credentials") {
            return Err(ApimError::validation(
                "grantType",
                "the keys do not allow the client_credentials grant",
            ));
        }
        if let Some(v) = validity_secs.filter(|v| *v > 0) {
            let max = self.inner.settings.max_access_token_lifetime.as_secs();
            if v > max {
                return Err(ApimError::validation(
                    "validityPeriod",
                    format!(
                        "must be at most {max} seconds (key_manager.max_access_token_lifetime_secs)"
                    ),
                ));
            }
            client.access_token_lifetime = v;
        }
        let owner = crate::scopes::acting_user(self, &client).await?;
        let requested = scopes.join(" ");
        let scopes = crate::scopes::resolve(self, &client, owner.as_ref(), Some(&requested))
            .await
            .map_err(|e| ApimError::validation("scopes", e.description))?;
        self.issue(
            &client,
            crate::issue::Grant {
                username: client.owner.clone(),
                scopes,
                refresh: false,
                refresh_expires_at: None,
            },
        )
        .await
    }

    /// Who may register: a Basic user, or the initial access token.
    async fn registrar(&self, headers: &HeaderMap) -> Result<Registrar, OAuthError> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(tok) = auth.strip_prefix("Bearer ") {
            return match &self.inner.settings.initial_access_token {
                Some(iat) if ct_eq(iat.as_bytes(), tok.trim().as_bytes()) => Ok(Registrar::Trusted),
                _ => Err(OAuthError::new(
                    OAuthErrorKind::InvalidToken,
                    "invalid initial access token",
                )),
            };
        }
        let denied = || {
            OAuthError::new(
                OAuthErrorKind::InvalidToken,
                "registration needs a user (Basic) or an initial access token",
            )
        };
        let (user, pw) = basic_credentials(headers, false)
            .map_err(|_| denied())?
            .ok_or_else(denied)?;
        let user = self.verify_user(&user, &pw).await?.ok_or_else(denied)?;
        Ok(Registrar::User(user))
    }
}

enum Registrar {
    Trusted,
    User(apim_core::model::User),
}

fn metadata_error(e: ApimError) -> OAuthError {
    match e {
        ApimError::Validation { field, message } => {
            let kind = if field == "redirect_uris" {
                OAuthErrorKind::InvalidRedirectUri
            } else {
                OAuthErrorKind::InvalidClientMetadata
            };
            OAuthError::new(kind, format!("{field}: {message}"))
        }
        other => other.into(),
    }
}

pub(crate) async fn register(
    State(km): State<KeyManager>,
    req: Request,
) -> Result<Response, OAuthError> {
    let registrar = km.registrar(req.headers()).await?;
    // client metadata is JSON (RFC 7591 §3.1); refusing other types keeps a browser from sending
    // it cross-site without asking first (text/plain and form bodies need no CORS preflight)
    let mime = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !(mime.contains('/') && mime.ends_with("+json")) {
        return Err(OAuthError::unsupported_media_type("application/json"));
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
        .await
        .map_err(|_| OAuthError::too_large(MAX_FORM_BYTES))?;
    let reg: ClientRegistration = serde_json::from_slice(&body).map_err(|e| {
        OAuthError::new(
            OAuthErrorKind::InvalidClientMetadata,
            format!("body is not valid client metadata: {e}"),
        )
    })?;
    let owner = match &registrar {
        Registrar::Trusted => reg.owner.clone().unwrap_or_else(|| "admin".into()),
        Registrar::User(u)
            if !u.has_role(roles::ADMIN) && !km.inner.settings.allow_user_client_registration =>
        {
            return Err(OAuthError::new(
                OAuthErrorKind::AccessDenied,
                "client registration is open to admins only \
                 (key_manager.allow_user_client_registration)",
            ));
        }
        Registrar::User(u) => {
            if let Some(app_id) = &reg.application_id {
                let app = km
                    .store()
                    .get_application(app_id)
                    .await
                    .map_err(metadata_error)?;
                if app.owner != u.username && !u.has_role(roles::ADMIN) {
                    return Err(OAuthError::new(
                        OAuthErrorKind::InvalidClientMetadata,
                        "application_id: not an application of the caller",
                    ));
                }
            }
            u.username.clone()
        }
    };
    let mut reg = km
        .register_client(reg, &owner)
        .await
        .map_err(metadata_error)?;
    if matches!(registrar, Registrar::Trusted) {
        // the deployment's own console: may ask for management scopes
        reg.client.first_party = true;
        km.store()
            .update_oauth_client(&reg.client)
            .await
            .map_err(OAuthError::from)?;
    }
    let mut body = serde_json::to_value(&reg).map_err(ApimError::from)?;
    body["client_id_issued_at"] = (reg.client.created_time / 1000).into();
    body["client_secret_expires_at"] = 0.into();
    body["scope"] = reg.client.scopes.join(" ").into();
    body["token_endpoint_auth_method"] = "client_secret_basic".into();
    if let Some(o) = body.as_object_mut() {
        o.remove("scopes");
    }
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}
