//! `GET/POST /oauth2/authorize`: the authorization code flow's front channel (RFC 6749 §4.1,
//! PKCE `S256` required). A minimal login + consent page; on approval the user is redirected
//! back with a single-use code (5 minutes).

use apim_core::crypto::{new_id, random_secret};
use apim_core::store::{OAuthClient, StoredToken};
use apim_core::time::now_secs;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{header, HeaderValue, StatusCode};
use std::collections::HashMap;

use crate::error::OAuthError;
use crate::form::OAuthForm;
use crate::{scopes, KeyManager};

const CODE_LIFETIME_SECS: i64 = 300;

/// The validated authorization request.
struct AuthzRequest {
    client: OAuthClient,
    redirect_uri: String,
    scope: Option<String>,
    state: Option<String>,
    challenge: String,
}

fn get<'a>(p: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    p.get(k).map(String::as_str).filter(|v| !v.is_empty())
}

async fn validate(
    km: &KeyManager,
    p: &HashMap<String, String>,
) -> Result<AuthzRequest, OAuthError> {
    let client_id =
        get(p, "client_id").ok_or_else(|| OAuthError::invalid_request("missing client_id"))?;
    let client = km
        .store()
        .get_oauth_client(client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("unknown client_id"))?;
    // errors before the redirect URI is known good are shown here, never redirected (§4.1.2.1)
    let redirect_uri = match get(p, "redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|u| u == r) => r.to_owned(),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        _ => {
            return Err(OAuthError::invalid_request(
                "redirect_uri is not registered for the client",
            ))
        }
    };
    if get(p, "response_type") != Some("code") {
        return Err(OAuthError::invalid_request("response_type must be 'code'"));
    }
    crate::grants::ensure_allowed(&client, "authorization_code")?;
    let challenge = get(p, "code_challenge")
        .ok_or_else(|| OAuthError::invalid_request("PKCE code_challenge required"))?;
    if get(p, "code_challenge_method") != Some("S256") {
        return Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        ));
    }
    if challenge.len() != 43 {
        return Err(OAuthError::invalid_request("malformed code_challenge"));
    }
    Ok(AuthzRequest {
        challenge: challenge.to_owned(),
        scope: get(p, "scope").map(str::to_owned),
        state: get(p, "state").map(str::to_owned),
        redirect_uri,
        client,
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page_html(p: &HashMap<String, String>, client_name: &str, message: &str) -> Response {
    let hidden: String = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .filter_map(|k| {
        p.get(*k)
            .map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v)))
    })
    .collect();
    let scope = p
        .get("scope")
        .map(|s| esc(s))
        .unwrap_or_else(|| "default".into());
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title></head><body>\
         <h1>Sign in</h1><p>{msg}</p><p><b>{name}</b> asks for access with scopes: <code>{scope}</code></p>\
         <form method=\"post\" action=\"/oauth2/authorize\">{hidden}\
         <label>User name <input name=\"username\" autocomplete=\"username\"></label><br>\
         <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\"></label><br>\
         <button name=\"consent\" value=\"approve\">Sign in and allow</button>\
         <button name=\"consent\" value=\"deny\">Deny</button></form></body></html>",
        msg = esc(message),
        name = esc(client_name),
    );
    let mut res = Html(html).into_response();
    let h = res.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    res
}

fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{uri}{sep}{}", q.finish())).into_response()
}

pub(crate) async fn page(
    State(km): State<KeyManager>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Response, OAuthError> {
    let req = validate(&km, &p).await?;
    Ok(page_html(
        &p,
        &req.client.client_name,
        "Sign in to continue.",
    ))
}

pub(crate) async fn submit(
    State(km): State<KeyManager>,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let p = &form.0;
    let req = validate(&km, p).await?;
    let state = req.state.as_deref();
    let with_state = |mut v: Vec<(&'static str, String)>| {
        if let Some(s) = state {
            v.push(("state", s.to_owned()));
        }
        v
    };
    if form.get("consent") != Some("approve") {
        let v = with_state(vec![("error", "access_denied".into())]);
        let refs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return Ok(redirect_with(&req.redirect_uri, &refs));
    }
    let (Some(user), Some(pw)) = (form.get("username"), form.get("password")) else {
        let mut res = page_html(
            p,
            &req.client.client_name,
            "Enter your user name and password.",
        );
        *res.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(res);
    };
    let Some(user) = km.verify_user(user, pw).await? else {
        let mut res = page_html(p, &req.client.client_name, "Wrong user name or password.");
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(res);
    };
    let granted = match scopes::resolve(&km, &req.client, Some(&user), req.scope.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            let v = with_state(vec![
                ("error", "invalid_scope".into()),
                ("error_description", e.description),
            ]);
            let refs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
            return Ok(redirect_with(&req.redirect_uri, &refs));
        }
    };
    let code = random_secret()?;
    let mut extra = serde_json::Map::new();
    extra.insert("redirect_uri".into(), req.redirect_uri.clone().into());
    extra.insert("code_challenge".into(), req.challenge.clone().into());
    let stored = StoredToken {
        kind: "code".into(),
        client_id: req.client.client_id.clone(),
        jti: new_id(),
        username: user.username,
        scopes: granted,
        expires_at: now_secs() + CODE_LIFETIME_SECS,
        extra,
    };
    km.store().put_token(&code, &stored).await?;
    let v = with_state(vec![("code", code)]);
    let refs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(redirect_with(&req.redirect_uri, &refs))
}
