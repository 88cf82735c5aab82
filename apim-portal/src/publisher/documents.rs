//! API documents: inline/markdown content or a URL.

use apim_core::crypto::new_id;
use apim_core::ApimError;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::apis::{created, owned};
use crate::auth::Caller;
use crate::extract::{Json, Path};
use crate::paging::List;
use crate::{repo, Portal, PUBLISHER_BASE};

/// WSO2 document types.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DocumentType {
    /// How-to.
    Howto,
    /// Samples.
    Samples,
    /// Public forum link.
    PublicForum,
    /// Support forum link.
    SupportForum,
    /// Message formats.
    ApiMessageFormat,
    /// Swagger / OpenAPI documentation.
    SwaggerDoc,
    /// Anything else.
    Other,
}

/// Where a document's content is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceType {
    /// Inline text.
    Inline,
    /// Inline markdown.
    Markdown,
    /// A URL.
    Url,
}

/// A document of an API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document {
    /// Server-assigned id.
    #[serde(default)]
    pub document_id: String,
    /// Name, unique per API.
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub doc_type: DocumentType,
    /// Short summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// INLINE, MARKDOWN or URL.
    pub source_type: SourceType,
    /// Required for URL documents.
    #[serde(default)]
    pub source_url: Option<String>,
    /// Content of INLINE / MARKDOWN documents.
    #[serde(default)]
    pub inline_content: Option<String>,
    /// `API_LEVEL` (default), `OWNER_ONLY`, `PRIVATE`.
    #[serde(default = "api_level")]
    pub visibility: String,
}

fn api_level() -> String {
    "API_LEVEL".into()
}

impl Document {
    fn validate(&self) -> Result<(), ApimError> {
        let name = self.name.trim();
        if name.is_empty() || name != self.name || self.name.chars().count() > 100 {
            return Err(ApimError::validation(
                "name",
                "must be 1-100 characters without surrounding whitespace",
            ));
        }
        if self
            .summary
            .as_ref()
            .is_some_and(|s| s.chars().count() > 1000)
        {
            return Err(ApimError::validation(
                "summary",
                "must be at most 1000 characters",
            ));
        }
        if self
            .inline_content
            .as_ref()
            .is_some_and(|s| s.len() > 200_000)
        {
            return Err(ApimError::validation(
                "inlineContent",
                "must be at most 200000 bytes",
            ));
        }
        if !matches!(
            self.visibility.as_str(),
            "API_LEVEL" | "OWNER_ONLY" | "PRIVATE"
        ) {
            return Err(ApimError::validation(
                "visibility",
                "must be API_LEVEL, OWNER_ONLY or PRIVATE",
            ));
        }
        match self.source_type {
            SourceType::Url => {
                let url = self.source_url.as_deref().unwrap_or("");
                let ok = (url.starts_with("http://") || url.starts_with("https://"))
                    && url.len() <= 2000
                    && url.parse::<http::Uri>().is_ok();
                if !ok {
                    return Err(ApimError::validation(
                        "sourceUrl",
                        "a URL document needs an http(s) sourceUrl",
                    ));
                }
            }
            SourceType::Inline | SourceType::Markdown => {}
        }
        Ok(())
    }
}

/// Documents of an API.
#[utoipa::path(get, path = "/apis/{apiId}/documents", params(("apiId" = String, Path, description = "apiId")), tag = "Documents",
    responses((status = 200, description = "Documents: {count, list}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<List<Document>>, ApimError> {
    caller.require_publisher_portal()?;
    p.store().get_api(&id).await?;
    Ok(Json(List::all(repo::documents(p.store(), &id).await?)))
}

/// Add a document.
#[utoipa::path(post, path = "/apis/{apiId}/documents", params(("apiId" = String, Path, description = "apiId")), tag = "Documents", request_body(content = Object, description = "WSO2 Document"),
    responses((status = 201, description = "Created"), (status = 409, description = "Duplicate name")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Json(mut doc): Json<Document>,
) -> Result<Response, ApimError> {
    owned(&p, &caller, &id).await?;
    doc.validate()?;
    doc.document_id = new_id();
    repo::insert_document(p.store(), &id, &doc.document_id, &doc.name, &doc).await?;
    Ok(created(
        format!("{PUBLISHER_BASE}/apis/{id}/documents/{}", doc.document_id),
        doc,
    ))
}

/// Finds one document of an API.
pub(crate) async fn find(p: &Portal, api_id: &str, doc_id: &str) -> Result<Document, ApimError> {
    repo::documents::<Document>(p.store(), api_id)
        .await?
        .into_iter()
        .find(|d| d.document_id == doc_id)
        .ok_or_else(|| ApimError::NotFound(format!("document {doc_id}")))
}

/// One document.
#[utoipa::path(get, path = "/apis/{apiId}/documents/{documentId}", params(("apiId" = String, Path, description = "apiId"), ("documentId" = String, Path, description = "documentId")), tag = "Documents",
    responses((status = 200, description = "The document"), (status = 404, description = "Unknown document")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, doc)): Path<(String, String)>,
) -> Result<Json<Document>, ApimError> {
    caller.require_publisher_portal()?;
    Ok(Json(find(&p, &id, &doc).await?))
}

/// Delete a document.
#[utoipa::path(delete, path = "/apis/{apiId}/documents/{documentId}", params(("apiId" = String, Path, description = "apiId"), ("documentId" = String, Path, description = "documentId")), tag = "Documents",
    responses((status = 200, description = "Deleted")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path((id, doc)): Path<(String, String)>,
) -> Result<StatusCode, ApimError> {
    owned(&p, &caller, &id).await?;
    repo::delete_document(p.store(), &id, &doc).await?;
    Ok(StatusCode::OK)
}
