//! APIs: list/search, create, read, replace, delete; the OpenAPI definition; import.

use apim_core::model::{scopes, Api};
use apim_core::ApimError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::Value;

use super::openapi_import::{generate, parse_openapi_blocking, OpenApiDefinition};
use crate::auth::Caller;
use crate::extract::{field_error, parse_json, Json, Path, Query, RawBody};
use crate::paging::{List, Paging};
use crate::{repo, Portal, PUBLISHER_BASE};

pub(crate) fn created(location: String, body: impl serde::Serialize) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// List or search APIs.
#[utoipa::path(get, path = "/apis", tag = "APIs", params(Paging),
    responses((status = 200, description = "APIs: {count, list, pagination}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
    Query(paging): Query<Paging>,
) -> Result<Json<List<Api>>, ApimError> {
    caller.require_publisher_portal()?;
    let (limit, offset) = paging.get();
    let (apis, total) = p
        .store()
        .list_apis(paging.query.as_deref(), limit, offset)
        .await?;
    Ok(Json(List::page(apis, limit, offset, total)))
}

/// Create an API (state CREATED, provider = caller).
#[utoipa::path(post, path = "/apis", tag = "APIs", request_body(content = Object, description = "WSO2 API definition"),
    responses((status = 201, description = "Created"), (status = 400, description = "Invalid field"), (status = 409, description = "Duplicate context and version")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Json(api): Json<Api>,
) -> Result<Response, ApimError> {
    caller.require(scopes::API_CREATE)?;
    let api = p.store().create_api(api, caller.name()).await?;
    Ok(created(format!("{PUBLISHER_BASE}/apis/{}", api.id), api))
}

/// One API.
#[utoipa::path(get, path = "/apis/{apiId}", params(("apiId" = String, Path, description = "apiId")), tag = "APIs",
    responses((status = 200, description = "The API"), (status = 404, description = "Unknown API")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Api>, ApimError> {
    caller.require_publisher_portal()?;
    Ok(Json(p.store().get_api(&id).await?))
}

/// Loads an API the caller may change.
pub(crate) async fn owned(p: &Portal, caller: &Caller, id: &str) -> Result<Api, ApimError> {
    caller.require(scopes::API_CREATE)?;
    let api = p.store().get_api(id).await?;
    caller.require_owner(&api.provider)?;
    Ok(api)
}

/// Adds to `api.scopes` the scopes its resources require that it does not list: a shared scope
/// of that name as shared, else as the API's own scope with the roles of WSO2's
/// `x-scopes-bindings` (`{"scope": "role1,role2"}` in a security scheme) — none: anyone.
async fn define_document_scopes(
    p: &Portal,
    api: &mut Api,
    document: &Value,
) -> Result<(), ApimError> {
    let bindings = |name: &str| -> Vec<String> {
        document
            .pointer("/components/securitySchemes")
            .or_else(|| document.get("securityDefinitions"))
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|schemes| schemes.values())
            .filter_map(|s| s.get("x-scopes-bindings")?.get(name)?.as_str())
            .flat_map(|roles| roles.split(','))
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let needed: Vec<String> = api
        .scopes_needing_shared()
        .into_iter()
        .map(|(_, n)| n.to_owned())
        .collect();
    for name in needed {
        if api.scopes.iter().any(|s| s.scope.name == name) {
            continue;
        }
        let shared = p.store().is_shared_scope(&name).await?;
        api.scopes.push(apim_core::model::ApiScope {
            scope: apim_core::model::Scope {
                id: String::new(),
                bindings: if shared { Vec::new() } else { bindings(&name) },
                name,
                display_name: None,
                description: None,
                usage_count: None,
            },
            shared,
        });
    }
    Ok(())
}

/// Replace an API's definition (context, version, provider and state are kept).
#[utoipa::path(put, path = "/apis/{apiId}", params(("apiId" = String, Path, description = "apiId")), tag = "APIs", request_body(content = Object, description = "WSO2 API definition"),
    responses((status = 200, description = "Updated"), (status = 403, description = "Not the provider"), (status = 404, description = "Unknown API")))]
pub(crate) async fn update(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Json(api): Json<Api>,
) -> Result<Json<Api>, ApimError> {
    owned(&p, &caller, &id).await?;
    Ok(Json(p.store().update_api(&id, api).await?))
}

/// Delete an API (refused while it has subscriptions).
#[utoipa::path(delete, path = "/apis/{apiId}", params(("apiId" = String, Path, description = "apiId")), tag = "APIs",
    responses((status = 200, description = "Deleted"), (status = 409, description = "Has subscriptions")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApimError> {
    owned(&p, &caller, &id).await?;
    p.store().delete_api(&id).await?;
    Ok(StatusCode::OK)
}

/// The API's OpenAPI definition (the stored one, or one generated from its operations).
#[utoipa::path(get, path = "/apis/{apiId}/swagger", params(("apiId" = String, Path, description = "apiId")), tag = "APIs",
    responses((status = 200, description = "OpenAPI document")))]
pub(crate) async fn get_swagger(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApimError> {
    caller.require_publisher_portal()?;
    swagger_of(&p, &id).await
}

/// The stored or generated definition of an API, as JSON.
pub(crate) async fn swagger_of(p: &Portal, id: &str) -> Result<Response, ApimError> {
    let api = p.store().get_api(id).await?;
    let doc = match repo::definition(p.store(), id).await? {
        Some(text) => serde_json::from_str::<Value>(&text).unwrap_or_else(|_| generate(&api)),
        None => generate(&api),
    };
    Ok(Json(doc).into_response())
}

/// Replace the API's OpenAPI definition (JSON or YAML body); its operations follow the paths.
#[utoipa::path(put, path = "/apis/{apiId}/swagger", params(("apiId" = String, Path, description = "apiId")), tag = "APIs", request_body(content = String, description = "OpenAPI 3.0/3.1, JSON or YAML"),
    responses((status = 200, description = "The stored definition"), (status = 400, description = "Invalid definition, with a pointer")))]
pub(crate) async fn put_swagger(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApimError> {
    let mut api = owned(&p, &caller, &id).await?;
    let def = parse_openapi_blocking(body).await?;
    api.operations = def.operations;
    define_document_scopes(&p, &mut api, &def.document).await?;
    p.store().update_api(&id, api).await?;
    repo::put_definition(p.store(), &id, &def.document.to_string()).await?;
    Ok(Json(def.document).into_response())
}

/// Import body: the definition plus API properties the document does not carry.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ImportRequest {
    /// The OpenAPI document, as an object or as JSON/YAML text.
    definition: Value,
    /// API fields (`context`, `endpointConfig`, `policies`, ...) overriding the derived ones.
    #[serde(default)]
    additional_properties: serde_json::Map<String, Value>,
}

/// Builds the API from a definition and the additional properties.
pub(crate) fn api_from_definition(
    def: &OpenApiDefinition,
    extra: serde_json::Map<String, Value>,
) -> Result<Api, ApimError> {
    let slug: String = def
        .title
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>()
        .to_ascii_lowercase();
    let mut v = serde_json::json!({
        "name": def.title,
        "context": format!("/{slug}"),
        "version": def.version,
        "operations": serde_json::to_value(&def.operations)?,
    });
    if let Some(d) = &def.description {
        v["description"] = Value::String(d.clone());
    }
    if let Some(url) = &def.server_url {
        v["endpointConfig"] =
            serde_json::json!({"endpoint_type": "http", "production_endpoints": {"url": url}});
    }
    if let Value::Object(m) = &mut v {
        for (k, val) in extra {
            m.insert(k, val);
        }
    }
    let bytes = serde_json::to_vec(&v)?;
    parse_json::<Api>(&bytes).map_err(|e| match e {
        ApimError::Validation { field, message } => {
            field_error(&format!("additionalProperties.{field}"), &message)
        }
        other => other,
    })
}

/// Create an API from an OpenAPI 3.0/3.1 document (JSON body `{definition, additionalProperties}`,
/// or the raw JSON/YAML document with `Content-Type: application/yaml`).
#[utoipa::path(post, path = "/apis/import-openapi", tag = "APIs", request_body(content = Object, description = "{definition, additionalProperties}"),
    responses((status = 201, description = "Created"), (status = 400, description = "Invalid definition, with a pointer")))]
pub(crate) async fn import(
    State(p): State<Portal>,
    caller: Caller,
    headers: http::HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApimError> {
    caller.require(scopes::API_CREATE)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.contains("json"));
    let (def, extra) = if is_json {
        let req: ImportRequest = parse_json(&body)?;
        let def = match req.definition {
            Value::String(text) => parse_openapi_blocking(text.into()).await?,
            doc => super::openapi_import::read_definition(doc)?,
        };
        (def, req.additional_properties)
    } else {
        (parse_openapi_blocking(body).await?, serde_json::Map::new())
    };
    let mut api = api_from_definition(&def, extra)?;
    define_document_scopes(&p, &mut api, &def.document).await?;
    let api = p.store().create_api(api, caller.name()).await?;
    repo::put_definition(p.store(), &api.id, &def.document.to_string()).await?;
    Ok(created(format!("{PUBLISHER_BASE}/apis/{}", api.id), api))
}
