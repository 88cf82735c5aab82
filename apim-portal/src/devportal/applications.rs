//! Applications of the caller (another user's id is a 404, never their data).

use apim_core::model::{scopes, Application};
use apim_core::ApimError;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;

use crate::auth::Caller;
use crate::extract::{Json, Path, Query};
use crate::paging::{List, Paging};
use crate::publisher::apis::created;
use crate::{Portal, DEVPORTAL_BASE};

/// The caller's application, or 404.
pub(crate) async fn owned_app(
    p: &Portal,
    caller: &Caller,
    id: &str,
) -> Result<Application, ApimError> {
    caller.require(scopes::SUBSCRIBE)?;
    match p.store().get_application(id).await {
        // bound to the account's immutable id: a later account with a deleted user's name
        // inherits nothing
        Ok(app)
            if app.owner == caller.name()
                && p.store().application_owned_by(id, &caller.user.id).await? =>
        {
            Ok(app)
        }
        Ok(_) | Err(ApimError::NotFound(_)) => {
            Err(ApimError::NotFound(format!("application {id}")))
        }
        Err(e) => Err(e),
    }
}

/// The caller's applications.
#[utoipa::path(get, path = "/applications", tag = "Applications", params(Paging),
    responses((status = 200, description = "Applications: {count, list, pagination}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
    Query(paging): Query<Paging>,
) -> Result<Json<List<Application>>, ApimError> {
    caller.require(scopes::SUBSCRIBE)?;
    let (limit, offset) = paging.get();
    let (apps, total) = match paging.query.as_deref() {
        None => {
            p.store()
                .list_user_applications(&caller.user.id, limit, offset)
                .await?
        }
        Some(q) => {
            let (all, _) = p
                .store()
                .list_user_applications(&caller.user.id, 1000, 0)
                .await?;
            let q = q.to_lowercase();
            let hits: Vec<_> = all
                .into_iter()
                .filter(|a| a.name.to_lowercase().contains(&q))
                .collect();
            let total = hits.len() as i64;
            (
                hits.into_iter()
                    .skip(offset as usize)
                    .take(limit as usize)
                    .collect(),
                total,
            )
        }
    };
    Ok(Json(List::page(apps, limit, offset, total)))
}

/// Create an application (name unique per owner).
#[utoipa::path(post, path = "/applications", tag = "Applications", request_body(content = Object, description = "WSO2 Application"),
    responses((status = 201, description = "Created"), (status = 409, description = "Duplicate name")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Json(app): Json<Application>,
) -> Result<Response, ApimError> {
    caller.require(scopes::SUBSCRIBE)?;
    let app = p.store().create_application(app, caller.name()).await?;
    Ok(created(
        format!("{DEVPORTAL_BASE}/applications/{}", app.application_id),
        app,
    ))
}

/// One of the caller's applications.
#[utoipa::path(get, path = "/applications/{applicationId}", params(("applicationId" = String, Path, description = "applicationId")), tag = "Applications",
    responses((status = 200, description = "The application"), (status = 404, description = "Unknown or not the caller's")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Application>, ApimError> {
    Ok(Json(owned_app(&p, &caller, &id).await?))
}

/// Replace an application.
#[utoipa::path(put, path = "/applications/{applicationId}", params(("applicationId" = String, Path, description = "applicationId")), tag = "Applications", request_body(content = Object, description = "WSO2 Application"),
    responses((status = 200, description = "Updated")))]
pub(crate) async fn update(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Json(app): Json<Application>,
) -> Result<Json<Application>, ApimError> {
    owned_app(&p, &caller, &id).await?;
    Ok(Json(p.store().update_application(&id, app).await?))
}

/// Delete an application with its subscriptions and keys.
#[utoipa::path(delete, path = "/applications/{applicationId}", params(("applicationId" = String, Path, description = "applicationId")), tag = "Applications",
    responses((status = 200, description = "Deleted")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApimError> {
    owned_app(&p, &caller, &id).await?;
    p.store().delete_application(&id).await?;
    Ok(StatusCode::OK)
}
