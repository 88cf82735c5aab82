//! Revisions (immutable snapshots, at most [`MAX_REVISIONS`](apim_core::store::MAX_REVISIONS)
//! per API), restore, deploy and undeploy to gateway environments.

use apim_core::model::{scopes, Api, ApiRevision, Deployment};
use apim_core::ApimError;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use super::apis::{created, owned};
use crate::auth::Caller;
use crate::extract::{Json, Path, Query};
use crate::paging::List;
use crate::{Portal, PUBLISHER_BASE};

/// Body of POST /revisions.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewRevision {
    #[serde(default)]
    description: Option<String>,
}

/// `?revisionId=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RevisionQuery {
    /// The revision.
    revision_id: String,
}

/// One deployment target in deploy/undeploy bodies.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DeploymentTarget {
    name: String,
    #[serde(default)]
    vhost: Option<String>,
    #[serde(default = "yes")]
    display_on_devportal: bool,
}

fn yes() -> bool {
    true
}

/// Revisions of an API.
#[utoipa::path(get, path = "/apis/{apiId}/revisions", params(("apiId" = String, Path, description = "apiId")), tag = "Revisions",
    responses((status = 200, description = "Revisions: {count, list}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<List<ApiRevision>>, ApimError> {
    caller.require_publisher_portal()?;
    Ok(Json(List::all(p.store().list_revisions(&id).await?)))
}

/// Snapshot the API as a new revision.
#[utoipa::path(post, path = "/apis/{apiId}/revisions", params(("apiId" = String, Path, description = "apiId")), tag = "Revisions", request_body(content = Object, description = "{description}"),
    responses((status = 201, description = "Created"), (status = 409, description = "Maximum number of revisions reached")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<NewRevision>>,
) -> Result<Response, ApimError> {
    owned(&p, &caller, &id).await?;
    let description = body.and_then(|Json(b)| b.description);
    if let Some(d) = &description {
        if d.chars().count() > 255 {
            return Err(ApimError::validation(
                "description",
                "must be at most 255 characters",
            ));
        }
    }
    let rev = p.store().create_revision(&id, description).await?;
    Ok(created(
        format!("{PUBLISHER_BASE}/apis/{id}/revisions/{}", rev.id),
        rev,
    ))
}

/// One revision.
#[utoipa::path(get, path = "/apis/{apiId}/revisions/{revisionId}", params(("apiId" = String, Path, description = "apiId"), ("revisionId" = String, Path, description = "revisionId")), tag = "Revisions",
    responses((status = 200, description = "The revision"), (status = 404, description = "Unknown revision")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, rev)): Path<(String, String)>,
) -> Result<Json<ApiRevision>, ApimError> {
    caller.require_publisher_portal()?;
    Ok(Json(p.store().get_revision(&id, &rev).await?))
}

/// Delete a revision that is not deployed.
#[utoipa::path(delete, path = "/apis/{apiId}/revisions/{revisionId}", params(("apiId" = String, Path, description = "apiId"), ("revisionId" = String, Path, description = "revisionId")), tag = "Revisions",
    responses((status = 200, description = "Deleted"), (status = 409, description = "Deployed")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, rev)): Path<(String, String)>,
) -> Result<StatusCode, ApimError> {
    owned(&p, &caller, &id).await?;
    p.store().delete_revision(&id, &rev).await?;
    Ok(StatusCode::OK)
}

/// Restore the working copy from a revision.
#[utoipa::path(post, path = "/apis/{apiId}/restore-revision", tag = "Revisions", params(("apiId" = String, Path, description = "apiId"), RevisionQuery),
    responses((status = 201, description = "The restored API")))]
pub(crate) async fn restore(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<RevisionQuery>,
) -> Result<(StatusCode, Json<Api>), ApimError> {
    owned(&p, &caller, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(p.store().restore_revision(&id, &q.revision_id).await?),
    ))
}

/// Deploy a revision to gateway environments (needs `apim:api_publish`).
#[utoipa::path(post, path = "/apis/{apiId}/deploy-revision", tag = "Revisions", params(("apiId" = String, Path, description = "apiId"), RevisionQuery),
    request_body(content = Object, description = "[{name, vhost, displayOnDevportal}]"),
    responses((status = 201, description = "Deployments"), (status = 400, description = "Unknown environment")))]
pub(crate) async fn deploy(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<RevisionQuery>,
    Json(targets): Json<Vec<DeploymentTarget>>,
) -> Result<(StatusCode, Json<Vec<Deployment>>), ApimError> {
    caller.require(scopes::API_PUBLISH)?;
    let targets: Vec<Deployment> = targets
        .into_iter()
        .map(|t| Deployment {
            revision_uuid: q.revision_id.clone(),
            name: t.name,
            vhost: t.vhost,
            display_on_devportal: t.display_on_devportal,
            deployed_time: 0,
        })
        .collect();
    let out = p
        .store()
        .deploy_revision(&id, &q.revision_id, &targets)
        .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Undeploy a revision from gateway environments (all of them with an empty body).
#[utoipa::path(post, path = "/apis/{apiId}/undeploy-revision", tag = "Revisions", params(("apiId" = String, Path, description = "apiId"), RevisionQuery),
    request_body(content = Object, description = "[{name, vhost}]"),
    responses((status = 201, description = "Undeployed")))]
pub(crate) async fn undeploy(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<RevisionQuery>,
    body: Option<Json<Vec<DeploymentTarget>>>,
) -> Result<StatusCode, ApimError> {
    caller.require(scopes::API_PUBLISH)?;
    let envs: Vec<String> = match body {
        Some(Json(t)) if !t.is_empty() => t.into_iter().map(|t| t.name).collect(),
        _ => p
            .store()
            .deployments(&id)
            .await?
            .into_iter()
            .filter(|d| d.revision_uuid == q.revision_id)
            .map(|d| d.name)
            .collect(),
    };
    p.store()
        .undeploy_revision(&id, &q.revision_id, &envs)
        .await?;
    Ok(StatusCode::CREATED)
}

/// Where an API is deployed.
#[utoipa::path(get, path = "/apis/{apiId}/deployments", params(("apiId" = String, Path, description = "apiId")), tag = "Revisions",
    responses((status = 200, description = "Deployments")))]
pub(crate) async fn deployments(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<List<Deployment>>, ApimError> {
    caller.require_publisher_portal()?;
    p.store().get_api(&id).await?;
    Ok(Json(List::all(p.store().deployments(&id).await?)))
}
