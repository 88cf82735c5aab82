//! Which scopes a token gets: only those its client may request and its user may have.
//!
//! - A client registered with a scope list may request only those (else `invalid_scope`);
//!   without a list it may request any.
//! - Management scopes (`apim:*`) are granted only to first-party clients (registered with the
//!   initial access token, or owned by an admin) and only when the user's roles grant them.
//! - Any other scope must be defined — by an API or as a shared scope — and is granted only when
//!   the user has one of the roles bound to it (a scope without bindings: anyone). Scopes that
//!   are not defined, or not allowed, are dropped silently, as WSO2 does.
//! - For `client_credentials` the user is the application's owner (the client's owner for a
//!   client without an application).
//! - A refresh checks the roles again: a scope the user no longer may have is dropped.
//! - Nothing left (or nothing requested) gives the `default` scope.

use apim_core::model::{roles, User};
use apim_core::store::OAuthClient;
use apim_core::ApimError;

use crate::error::OAuthError;
use crate::KeyManager;

/// The scope every token has when nothing else is granted.
pub const DEFAULT_SCOPE: &str = "default";

/// Resolves the granted scopes of a new grant.
pub(crate) async fn resolve(
    km: &KeyManager,
    client: &OAuthClient,
    user: Option<&User>,
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let requested: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if requested.iter().any(|s| {
        !s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        return Err(OAuthError::invalid_scope("malformed scope"));
    }
    if requested.len() > 100 {
        return Err(OAuthError::invalid_scope("at most 100 scopes"));
    }
    let asked: Vec<&str> = if requested.is_empty() {
        client.scopes.iter().map(String::as_str).collect()
    } else {
        if let Some(s) = requested
            .iter()
            .find(|s| !client.scopes.is_empty() && !client.scopes.iter().any(|c| c == *s))
        {
            return Err(OAuthError::invalid_scope(format!(
                "scope '{s}' is not allowed for this client"
            )));
        }
        requested
    };
    Ok(allowed(km, client, user, &asked).await?)
}

/// Re-checks scopes granted before (refresh): those the user may no longer have are dropped.
pub(crate) async fn recheck(
    km: &KeyManager,
    client: &OAuthClient,
    username: &str,
    granted: Vec<String>,
) -> Result<Vec<String>, OAuthError> {
    let user = km.inner.store.get_user(username).await?;
    let asked: Vec<&str> = granted
        .iter()
        .map(String::as_str)
        .filter(|s| *s != DEFAULT_SCOPE)
        .collect();
    Ok(allowed(km, client, user.as_ref(), &asked).await?)
}

/// The user whose roles decide the scopes of a `client_credentials` token: the application's
/// owner, or the client's owner for a client without an application.
pub(crate) async fn acting_user(
    km: &KeyManager,
    client: &OAuthClient,
) -> Result<Option<User>, ApimError> {
    let store = &km.inner.store;
    let owner = match &client.application_id {
        Some(id) => match store.get_application(id).await {
            Ok(app) => app.owner,
            Err(ApimError::NotFound(_)) => client.owner.clone(),
            Err(e) => return Err(e),
        },
        None => client.owner.clone(),
    };
    store.get_user(&owner).await
}

/// Whether `client` is first-party: registered with the initial access token, or owned by an
/// admin.
async fn first_party(km: &KeyManager, client: &OAuthClient) -> Result<bool, ApimError> {
    if client.first_party {
        return Ok(true);
    }
    Ok(km
        .inner
        .store
        .get_user(&client.owner)
        .await?
        .is_some_and(|u| u.roles.iter().any(|r| r == roles::ADMIN)))
}

/// The subset of `asked` the client and user may have, in order, without duplicates; `default`
/// when nothing is left.
async fn allowed(
    km: &KeyManager,
    client: &OAuthClient,
    user: Option<&User>,
    asked: &[&str],
) -> Result<Vec<String>, ApimError> {
    let mut out: Vec<String> = Vec::new();
    let management: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|s| s.starts_with("apim:"))
        .collect();
    if !management.is_empty() && first_party(km, client).await? {
        let user_scopes = user.map(|u| u.granted_scopes()).unwrap_or_default();
        for s in management {
            if user_scopes.contains(&s) && !out.iter().any(|o| o == s) {
                out.push(s.to_owned());
            }
        }
    }
    let mut api_scopes: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|s| !s.starts_with("apim:") && *s != DEFAULT_SCOPE)
        .collect();
    api_scopes.sort_unstable();
    api_scopes.dedup();
    let defs = km.inner.store.scope_definitions(&api_scopes).await?;
    for s in asked {
        // every definition must allow it (a name two versions of one API define twice)
        let ok = defs
            .get(*s)
            .is_some_and(|d| d.iter().all(|def| def.allows(user)));
        if ok && !out.iter().any(|o| o == s) {
            out.push((*s).to_owned());
        }
    }
    if out.is_empty() {
        out.push(DEFAULT_SCOPE.into());
    }
    Ok(out)
}

/// Narrows a previously granted set (refresh): the request may only shrink it.
pub(crate) fn narrow(
    granted: &[String],
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let Some(req) = requested.filter(|r| !r.trim().is_empty()) else {
        return Ok(granted.to_vec());
    };
    let mut out = Vec::new();
    for s in req.split_whitespace() {
        if !granted.iter().any(|g| g == s) {
            return Err(OAuthError::invalid_scope(format!(
                "scope '{s}' was not granted originally"
            )));
        }
        out.push(s.to_owned());
    }
    Ok(out)
}
