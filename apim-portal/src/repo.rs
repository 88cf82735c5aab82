//! Documents, ratings, comments and stored OpenAPI definitions: tables the core migrations
//! create but the core store has no methods for yet. Statements run through the store's public
//! transaction handle ([`Store::begin`]), so they share its pools and the SQLite writer gate.
//! These are candidates to move into apim-core.

use apim_core::crypto::new_id;
use apim_core::store::Store;
use apim_core::time::now_ms;
use apim_core::ApimError;
use serde::{de::DeserializeOwned, Serialize};
use sqlx::Row;

/// Name under which an API's OpenAPI definition is kept in `api_documents` (hidden from the
/// document list).
const DEFINITION: &str = "__openapi_definition__";

fn corrupt(e: serde_json::Error) -> ApimError {
    ApimError::Storage(format!("corrupt document row: {e}"))
}

/// Adds a document; `name` must be unique per API (409).
pub(crate) async fn insert_document<T: Serialize>(
    store: &Store,
    api_id: &str,
    id: &str,
    name: &str,
    doc: &T,
) -> Result<(), ApimError> {
    let mut tx = store.begin().await?;
    let dup = sqlx::query("SELECT 1 FROM api_documents WHERE api_id = $1 AND name = $2")
        .bind(api_id)
        .bind(name)
        .fetch_optional(tx.conn())
        .await?;
    if dup.is_some() {
        return Err(ApimError::Conflict(format!(
            "the API already has a document named '{name}'"
        )));
    }
    sqlx::query(
        "INSERT INTO api_documents (id, api_id, name, body, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(api_id)
    .bind(name)
    .bind(serde_json::to_string(doc)?)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Documents of an API, oldest first.
pub(crate) async fn documents<T: DeserializeOwned>(
    store: &Store,
    api_id: &str,
) -> Result<Vec<T>, ApimError> {
    let mut tx = store.begin().await?;
    let rows = sqlx::query(
        "SELECT body FROM api_documents WHERE api_id = $1 AND name <> $2 ORDER BY created_at, id",
    )
    .bind(api_id)
    .bind(DEFINITION)
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|r| serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(corrupt))
        .collect()
}

/// Deletes a document; 404 when absent.
pub(crate) async fn delete_document(
    store: &Store,
    api_id: &str,
    id: &str,
) -> Result<(), ApimError> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("DELETE FROM api_documents WHERE api_id = $1 AND id = $2 AND name <> $3")
        .bind(api_id)
        .bind(id)
        .bind(DEFINITION)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApimError::NotFound(format!("document {id}")));
    }
    tx.commit().await?;
    Ok(())
}

/// The stored OpenAPI definition of an API, if one was imported or put.
pub(crate) async fn definition(store: &Store, api_id: &str) -> Result<Option<String>, ApimError> {
    let mut tx = store.begin().await?;
    let row = sqlx::query("SELECT body FROM api_documents WHERE api_id = $1 AND name = $2")
        .bind(api_id)
        .bind(DEFINITION)
        .fetch_optional(tx.conn())
        .await?;
    row.map(|r| r.try_get::<String, _>(0).map_err(ApimError::from))
        .transpose()
}

/// Stores (replaces) an API's OpenAPI definition.
pub(crate) async fn put_definition(
    store: &Store,
    api_id: &str,
    text: &str,
) -> Result<(), ApimError> {
    let mut tx = store.begin().await?;
    sqlx::query("DELETE FROM api_documents WHERE api_id = $1 AND name = $2")
        .bind(api_id)
        .bind(DEFINITION)
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO api_documents (id, api_id, name, body, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id())
    .bind(api_id)
    .bind(DEFINITION)
    .bind(text)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets `username`'s rating of an API.
pub(crate) async fn rate(
    store: &Store,
    api_id: &str,
    username: &str,
    rating: i64,
) -> Result<(), ApimError> {
    let mut tx = store.begin().await?;
    sqlx::query("DELETE FROM api_ratings WHERE api_id = $1 AND username = $2")
        .bind(api_id)
        .bind(username)
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO api_ratings (api_id, username, rating) VALUES ($1, $2, $3)")
        .bind(api_id)
        .bind(username)
        .bind(rating)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Ratings of an API as `(username, rating)`.
pub(crate) async fn ratings(store: &Store, api_id: &str) -> Result<Vec<(String, i64)>, ApimError> {
    let mut tx = store.begin().await?;
    let rows =
        sqlx::query("SELECT username, rating FROM api_ratings WHERE api_id = $1 ORDER BY username")
            .bind(api_id)
            .fetch_all(tx.conn())
            .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// One comment row.
#[derive(Debug, Clone)]
pub(crate) struct CommentRow {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) content: String,
    pub(crate) created_at: i64,
}

/// Adds a comment.
pub(crate) async fn add_comment(
    store: &Store,
    api_id: &str,
    username: &str,
    content: &str,
) -> Result<CommentRow, ApimError> {
    let row = CommentRow {
        id: new_id(),
        username: username.to_owned(),
        content: content.to_owned(),
        created_at: now_ms(),
    };
    let mut tx = store.begin().await?;
    sqlx::query("INSERT INTO api_comments (id, api_id, username, content, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&row.id)
        .bind(api_id)
        .bind(username)
        .bind(content)
        .bind(row.created_at)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// Comments of an API, oldest first.
pub(crate) async fn comments(store: &Store, api_id: &str) -> Result<Vec<CommentRow>, ApimError> {
    let mut tx = store.begin().await?;
    let rows = sqlx::query("SELECT id, username, content, created_at FROM api_comments WHERE api_id = $1 ORDER BY created_at, id")
        .bind(api_id)
        .fetch_all(tx.conn())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(CommentRow {
                id: r.try_get(0)?,
                username: r.try_get(1)?,
                content: r.try_get(2)?,
                created_at: r.try_get(3)?,
            })
        })
        .collect()
}

/// Deletes a comment by its author (or anyone when `author` is `None`); 404 otherwise.
pub(crate) async fn delete_comment(
    store: &Store,
    api_id: &str,
    id: &str,
    author: Option<&str>,
) -> Result<(), ApimError> {
    let mut tx = store.begin().await?;
    let n = sqlx::query(
        "DELETE FROM api_comments WHERE api_id = $1 AND id = $2 AND ($3 = '' OR username = $3)",
    )
    .bind(api_id)
    .bind(id)
    .bind(author.unwrap_or(""))
    .execute(tx.conn())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApimError::NotFound(format!("comment {id}")));
    }
    tx.commit().await?;
    Ok(())
}
