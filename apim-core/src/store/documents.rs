//! API documents, ratings and comments (Publisher / Developer Portal).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{from_row, to_json, Store};
use crate::crypto::new_id;
use crate::model::validate::{check_len, check_name};
use crate::time::now_ms;
use crate::ApimError;

/// A document of an API: inline markdown or a link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiDocument {
    /// Server-assigned id.
    #[serde(default)]
    pub document_id: String,
    /// Unique per API.
    pub name: String,
    /// `HOWTO`, `SAMPLES`, `PUBLIC_FORUM`, `SUPPORT_FORUM`, `API_MESSAGE_FORMAT`, `OTHER`.
    #[serde(default = "howto")]
    pub r#type: String,
    /// Short summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// `INLINE`, `MARKDOWN` or `URL`.
    pub source_type: String,
    /// For URL documents.
    #[serde(default)]
    pub source_url: Option<String>,
    /// For INLINE / MARKDOWN documents.
    #[serde(default)]
    pub inline_content: Option<String>,
    /// `API_LEVEL`.
    #[serde(default = "api_level")]
    pub visibility: String,
}

fn howto() -> String {
    "HOWTO".into()
}
fn api_level() -> String {
    "API_LEVEL".into()
}

impl ApiDocument {
    /// Validation with field names.
    pub fn validate(&self) -> Result<(), ApimError> {
        check_name("name", &self.name)?;
        if !matches!(
            self.r#type.as_str(),
            "HOWTO" | "SAMPLES" | "PUBLIC_FORUM" | "SUPPORT_FORUM" | "API_MESSAGE_FORMAT" | "OTHER"
        ) {
            return Err(ApimError::validation(
                "type",
                format!("unknown document type '{}'", self.r#type),
            ));
        }
        if let Some(s) = &self.summary {
            check_len("summary", s, 1000)?;
        }
        match self.source_type.as_str() {
            "INLINE" | "MARKDOWN" => {
                let c = self.inline_content.as_deref().ok_or_else(|| {
                    ApimError::validation(
                        "inlineContent",
                        "is required for INLINE/MARKDOWN documents",
                    )
                })?;
                check_len("inlineContent", c, 200_000)?;
            }
            "URL" => {
                let u = self.source_url.as_deref().ok_or_else(|| {
                    ApimError::validation("sourceUrl", "is required for URL documents")
                })?;
                crate::model::validate::check_url("sourceUrl", u)?;
            }
            other => {
                return Err(ApimError::validation(
                    "sourceType",
                    format!("'{other}' is not INLINE, MARKDOWN or URL"),
                ))
            }
        }
        Ok(())
    }
}

/// A comment on an API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiComment {
    /// Id.
    pub id: String,
    /// Author.
    pub created_by: String,
    /// Text.
    pub content: String,
    /// Ms since the Unix epoch.
    pub created_time: i64,
}

impl Store {
    /// Adds a document (name unique per API).
    pub async fn create_document(
        &self,
        api_id: &str,
        mut doc: ApiDocument,
    ) -> Result<ApiDocument, ApimError> {
        doc.validate()?;
        self.get_api(api_id).await?;
        doc.document_id = new_id();
        let mut tx = self.begin().await?;
        if sqlx::query("SELECT 1 FROM api_documents WHERE api_id = $1 AND name = $2")
            .bind(api_id)
            .bind(&doc.name)
            .fetch_optional(tx.conn())
            .await?
            .is_some()
        {
            return Err(ApimError::Conflict(format!(
                "a document named '{}' already exists",
                doc.name
            )));
        }
        sqlx::query("INSERT INTO api_documents (id, api_id, name, body, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&doc.document_id)
            .bind(api_id)
            .bind(&doc.name)
            .bind(to_json(&doc)?)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// Documents of an API.
    pub async fn list_documents(&self, api_id: &str) -> Result<Vec<ApiDocument>, ApimError> {
        let rows = sqlx::query("SELECT body FROM api_documents WHERE api_id = $1 ORDER BY name")
            .bind(api_id)
            .fetch_all(self.am())
            .await?;
        rows.iter().map(|r| from_row(r, "body")).collect()
    }

    /// Deletes a document.
    pub async fn delete_document(&self, api_id: &str, document_id: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM api_documents WHERE api_id = $1 AND id = $2")
            .bind(api_id)
            .bind(document_id)
            .execute(tx.conn())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(ApimError::NotFound(format!("document {document_id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets a user's rating (1–5) of an API; returns the new average and count.
    pub async fn rate_api(
        &self,
        api_id: &str,
        user: &str,
        rating: i64,
    ) -> Result<(f64, i64), ApimError> {
        if !(1..=5).contains(&rating) {
            return Err(ApimError::validation("rating", "must be between 1 and 5"));
        }
        self.get_api(api_id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM api_ratings WHERE api_id = $1 AND username = $2")
            .bind(api_id)
            .bind(user)
            .execute(tx.conn())
            .await?;
        sqlx::query("INSERT INTO api_ratings (api_id, username, rating) VALUES ($1, $2, $3)")
            .bind(api_id)
            .bind(user)
            .bind(rating)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        self.api_rating(api_id).await
    }

    /// Average rating and number of ratings of an API.
    pub async fn api_rating(&self, api_id: &str) -> Result<(f64, i64), ApimError> {
        let rows = sqlx::query("SELECT rating FROM api_ratings WHERE api_id = $1")
            .bind(api_id)
            .fetch_all(self.am())
            .await?;
        let n = rows.len() as i64;
        let sum: i64 = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .sum::<Result<i64, _>>()?;
        Ok((if n == 0 { 0.0 } else { sum as f64 / n as f64 }, n))
    }

    /// Adds a comment (1–5000 characters).
    pub async fn add_comment(
        &self,
        api_id: &str,
        user: &str,
        content: &str,
    ) -> Result<ApiComment, ApimError> {
        if content.trim().is_empty() {
            return Err(ApimError::validation("content", "must not be empty"));
        }
        check_len("content", content, 5000)?;
        self.get_api(api_id).await?;
        let c = ApiComment {
            id: new_id(),
            created_by: user.to_owned(),
            content: content.to_owned(),
            created_time: now_ms(),
        };
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO api_comments (id, api_id, username, content, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&c.id)
            .bind(api_id)
            .bind(user)
            .bind(content)
            .bind(c.created_time)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Comments of an API, oldest first.
    pub async fn list_comments(&self, api_id: &str) -> Result<Vec<ApiComment>, ApimError> {
        let rows = sqlx::query("SELECT id, username, content, created_at FROM api_comments WHERE api_id = $1 ORDER BY created_at, id")
            .bind(api_id)
            .fetch_all(self.am())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiComment {
                    id: r.try_get(0)?,
                    created_by: r.try_get(1)?,
                    content: r.try_get(2)?,
                    created_time: r.try_get(3)?,
                })
            })
            .collect()
    }
}
