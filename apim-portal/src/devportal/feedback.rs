//! Ratings and comments on APIs.

use apim_core::model::scopes;
use apim_core::ApimError;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::apis::visible_api;
use crate::auth::Caller;
use crate::extract::{Json, Path};
use crate::paging::List;
use crate::{repo, Portal};

/// Body of user-rating.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RatingBody {
    rating: i64,
}

/// One rating.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rating {
    rated_by: String,
    rating: i64,
}

/// Ratings with the average and the caller's.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ratings {
    count: usize,
    list: Vec<Rating>,
    avg_rating: String,
    user_rating: i64,
}

async fn ratings_of(p: &Portal, api_id: &str, me: Option<&str>) -> Result<Ratings, ApimError> {
    let all = repo::ratings(p.store(), api_id).await?;
    let sum: i64 = all.iter().map(|r| r.1).sum();
    let avg = if all.is_empty() {
        0.0
    } else {
        sum as f64 / all.len() as f64
    };
    let user_rating = all
        .iter()
        .find(|r| Some(r.0.as_str()) == me)
        .map_or(0, |r| r.1);
    Ok(Ratings {
        count: all.len(),
        list: all
            .into_iter()
            .map(|(rated_by, rating)| Rating { rated_by, rating })
            .collect(),
        avg_rating: format!("{avg:.1}"),
        user_rating,
    })
}

/// Ratings of an API.
#[utoipa::path(get, path = "/apis/{apiId}/ratings", params(("apiId" = String, Path, description = "apiId")), tag = "Ratings",
    responses((status = 200, description = "{count, list, avgRating, userRating}")))]
pub(crate) async fn ratings(
    State(p): State<Portal>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Ratings>, ApimError> {
    visible_api(&p, caller.as_ref(), &id).await?;
    Ok(Json(
        ratings_of(&p, &id, caller.as_ref().map(Caller::name)).await?,
    ))
}

/// Rate an API 1-5 (replaces the caller's earlier rating).
#[utoipa::path(put, path = "/apis/{apiId}/user-rating", params(("apiId" = String, Path, description = "apiId")), tag = "Ratings", request_body(content = Object, description = "{rating}"),
    responses((status = 200, description = "Ratings after the change")))]
pub(crate) async fn rate(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<RatingBody>,
) -> Result<Json<Ratings>, ApimError> {
    caller.require(scopes::SUBSCRIBE)?;
    visible_api(&p, Some(&caller), &id).await?;
    if !(1..=5).contains(&body.rating) {
        return Err(ApimError::validation("rating", "must be 1 to 5"));
    }
    repo::rate(p.store(), &id, caller.name(), body.rating).await?;
    Ok(Json(ratings_of(&p, &id, Some(caller.name())).await?))
}

/// Body of a new comment.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewComment {
    content: String,
    #[serde(default)]
    #[allow(dead_code)]
    category: Option<String>,
}

/// A comment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Comment {
    id: String,
    content: String,
    created_by: String,
    created_time: i64,
    category: &'static str,
}

fn comment(r: repo::CommentRow) -> Comment {
    Comment {
        id: r.id,
        content: r.content,
        created_by: r.username,
        created_time: r.created_at,
        category: "general",
    }
}

/// Comments on an API.
#[utoipa::path(get, path = "/apis/{apiId}/comments", params(("apiId" = String, Path, description = "apiId")), tag = "Comments",
    responses((status = 200, description = "Comments: {count, list}")))]
pub(crate) async fn comments(
    State(p): State<Portal>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<Json<List<Comment>>, ApimError> {
    visible_api(&p, caller.as_ref(), &id).await?;
    let list = repo::comments(p.store(), &id)
        .await?
        .into_iter()
        .map(comment)
        .collect();
    Ok(Json(List::all(list)))
}

/// Comment on an API.
#[utoipa::path(post, path = "/apis/{apiId}/comments", params(("apiId" = String, Path, description = "apiId")), tag = "Comments", request_body(content = Object, description = "{content}"),
    responses((status = 201, description = "Created")))]
pub(crate) async fn add_comment(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<NewComment>,
) -> Result<(StatusCode, Json<Comment>), ApimError> {
    caller.require(scopes::SUBSCRIBE)?;
    visible_api(&p, Some(&caller), &id).await?;
    let n = body.content.chars().count();
    if body.content.trim().is_empty() || n > 2000 {
        return Err(ApimError::validation(
            "content",
            "must be 1-2000 characters",
        ));
    }
    let row = repo::add_comment(p.store(), &id, caller.name(), &body.content).await?;
    Ok((StatusCode::CREATED, Json(comment(row))))
}

/// Delete one's own comment (admins any).
#[utoipa::path(delete, path = "/apis/{apiId}/comments/{commentId}", params(("apiId" = String, Path, description = "apiId"), ("commentId" = String, Path, description = "commentId")), tag = "Comments",
    responses((status = 200, description = "Deleted")))]
pub(crate) async fn delete_comment(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, comment_id)): Path<(String, String)>,
) -> Result<StatusCode, ApimError> {
    caller.require(scopes::SUBSCRIBE)?;
    visible_api(&p, Some(&caller), &id).await?;
    let author = (!caller.is_admin()).then(|| caller.name());
    repo::delete_comment(p.store(), &id, &comment_id, author).await?;
    Ok(StatusCode::OK)
}
