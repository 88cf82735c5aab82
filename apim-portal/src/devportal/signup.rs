//! Self-signup: a new user with the subscriber role (can be turned off).

use apim_core::model::{roles, User};
use apim_core::ApimError;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;

use crate::extract::Json;
use crate::Portal;

/// Body of self-signup.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Signup {
    username: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

/// Create an account with the subscriber role.
#[utoipa::path(post, path = "/self-signup", tag = "Users", request_body(content = Object, description = "{username, password, email}"),
    responses((status = 201, description = "Created"), (status = 403, description = "Self-signup is off"), (status = 409, description = "User exists")))]
pub(crate) async fn signup(
    State(p): State<Portal>,
    Json(body): Json<Signup>,
) -> Result<(StatusCode, Json<User>), ApimError> {
    if !p.self_signup() {
        return Err(ApimError::Forbidden("self-signup is disabled".into()));
    }
    if let Some(e) = &body.email {
        if e.len() > 254
            || !e.contains('@')
            || e.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ApimError::validation("email", "is not an e-mail address"));
        }
    }
    for (field, v) in [
        ("firstName", &body.first_name),
        ("lastName", &body.last_name),
    ] {
        if v.as_ref().is_some_and(|v| v.chars().count() > 100) {
            return Err(ApimError::validation(
                field,
                "must be at most 100 characters",
            ));
        }
    }
    let user = p
        .store()
        .create_user(
            &body.username,
            &body.password,
            &[roles::SUBSCRIBER.to_owned()],
            body.email,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}
