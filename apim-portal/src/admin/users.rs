//! Users and roles. A password change or an account deletion revokes the user's refresh tokens
//! and codes; a deletion also removes the user's applications and OAuth clients.

use apim_core::model::{scopes, User};
use apim_core::ApimError;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;

use crate::auth::Caller;
use crate::extract::{Json, Path};
use crate::paging::List;
use crate::Portal;

/// Body of a new user.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    email: Option<String>,
}

/// All users.
#[utoipa::path(get, path = "/users", tag = "Users",
    responses((status = 200, description = "Users: {count, list}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
) -> Result<Json<List<User>>, ApimError> {
    caller.require(scopes::ADMIN)?;
    Ok(Json(List::all(p.store().list_users().await?)))
}

/// Add a user.
#[utoipa::path(post, path = "/users", tag = "Users", request_body(content = Object, description = "{username, password, roles, email}"),
    responses((status = 201, description = "Created"), (status = 409, description = "Exists")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Json(u): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApimError> {
    caller.require(scopes::ADMIN)?;
    if u.email
        .as_ref()
        .is_some_and(|e| e.len() > 254 || !e.contains('@'))
    {
        return Err(ApimError::validation("email", "is not an e-mail address"));
    }
    let user = p
        .store()
        .create_user(&u.username, &u.password, &u.roles, u.email)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user.
#[utoipa::path(get, path = "/users/{username}", params(("username" = String, Path, description = "username")), tag = "Users",
    responses((status = 200, description = "The user")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<User>, ApimError> {
    caller.require(scopes::ADMIN)?;
    p.store()
        .get_user(&name)
        .await?
        .map(Json)
        .ok_or_else(|| ApimError::NotFound(format!("user {name}")))
}

/// Delete a user.
#[utoipa::path(delete, path = "/users/{username}", params(("username" = String, Path, description = "username")), tag = "Users",
    responses((status = 200, description = "Deleted")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApimError> {
    caller.require(scopes::ADMIN)?;
    if name == caller.name() {
        return Err(ApimError::Conflict(
            "you cannot delete your own account".into(),
        ));
    }
    p.store().delete_user(&name).await?;
    Ok(StatusCode::OK)
}

/// Body of a role change.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RolesBody {
    roles: Vec<String>,
}

/// Replace a user's roles.
#[utoipa::path(put, path = "/users/{username}/roles", params(("username" = String, Path, description = "username")), tag = "Users", request_body(content = Object, description = "{roles}"),
    responses((status = 200, description = "The user")))]
pub(crate) async fn set_roles(
    State(p): State<Portal>,
    caller: Caller,
    Path(name): Path<String>,
    Json(b): Json<RolesBody>,
) -> Result<Json<User>, ApimError> {
    caller.require(scopes::ADMIN)?;
    let user = p.store().set_roles(&name, &b.roles).await?;
    Ok(Json(user))
}

/// Body of a password change.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PasswordBody {
    password: String,
}

/// Set a user's password.
#[utoipa::path(put, path = "/users/{username}/password", params(("username" = String, Path, description = "username")), tag = "Users", request_body(content = Object, description = "{password}"),
    responses((status = 200, description = "Changed")))]
pub(crate) async fn set_password(
    State(p): State<Portal>,
    caller: Caller,
    Path(name): Path<String>,
    Json(b): Json<PasswordBody>,
) -> Result<StatusCode, ApimError> {
    caller.require(scopes::ADMIN)?;
    p.store().set_password(&name, &b.password).await?;
    Ok(StatusCode::OK)
}

/// Body of a new role.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RoleBody {
    name: String,
}

/// All roles.
#[utoipa::path(get, path = "/roles", tag = "Users",
    responses((status = 200, description = "Role names: {count, list}")))]
pub(crate) async fn roles(
    State(p): State<Portal>,
    caller: Caller,
) -> Result<Json<List<String>>, ApimError> {
    caller.require(scopes::ADMIN)?;
    Ok(Json(List::all(p.store().list_roles().await?)))
}

/// Add a role.
#[utoipa::path(post, path = "/roles", tag = "Users", request_body(content = Object, description = "{name}"),
    responses((status = 201, description = "Created")))]
pub(crate) async fn create_role(
    State(p): State<Portal>,
    caller: Caller,
    Json(b): Json<RoleBody>,
) -> Result<StatusCode, ApimError> {
    caller.require(scopes::ADMIN)?;
    if p.store().list_roles().await?.contains(&b.name) {
        return Err(ApimError::Conflict(format!("role '{}' exists", b.name)));
    }
    p.store().create_role(&b.name).await?;
    Ok(StatusCode::CREATED)
}
