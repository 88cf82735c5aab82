//! `POST /oauth2/token` (RFC 6749 §3.2): authenticate the client, run the grant, issue.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderMap, HeaderValue};

use crate::error::{OAuthError, OAuthErrorKind};
use crate::form::OAuthForm;
use crate::grants::{self, ensure_allowed};
use crate::KeyManager;

pub(crate) async fn token(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let grant_type = form.require("grant_type")?.to_owned();
    if !grants::SUPPORTED.contains(&grant_type.as_str()) {
        return Err(OAuthError::new(
            OAuthErrorKind::UnsupportedGrantType,
            format!(
                "grant type '{}' is not supported",
                grant_type.chars().take(64).collect::<String>()
            ),
        ));
    }
    let client = km.authenticate_client(&headers, &form).await?;
    ensure_allowed(&client, &grant_type)?;
    let grant = match grant_type.as_str() {
        "client_credentials" => grants::client_credentials::grant(&km, &client, &form).await?,
        "password" => grants::password::grant(&km, &client, &form).await?,
        "refresh_token" => grants::refresh_token::grant(&km, &client, &form).await?,
        _ => grants::authorization_code::grant(&km, &client, &form).await?,
    };
    let res = km.issue(&client, grant).await?;
    tracing::debug!(client_id = %client.client_id, grant_type, "token issued");
    Ok(no_store(Json(res).into_response()))
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}
