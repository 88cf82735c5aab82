//! API discovery: only PUBLISHED or PROTOTYPED APIs the caller may see.

use apim_core::lifecycle::LifecycleState;
use apim_core::model::{roles, Api, Visibility};
use apim_core::ApimError;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use crate::auth::Caller;
use crate::extract::{Json, Path, Query};
use crate::paging::{List, Paging};
use crate::publisher::documents::Document;
use crate::{repo, Portal};

/// Whether `caller` (anonymous when `None`) may see `api` in the Developer Portal.
pub(crate) fn visible(api: &Api, caller: Option<&Caller>) -> bool {
    if !matches!(
        api.life_cycle_status,
        LifecycleState::Published | LifecycleState::Prototyped
    ) {
        return false;
    }
    match api.visibility {
        Visibility::Public => true,
        Visibility::Private => caller.is_some(),
        Visibility::Restricted => caller.is_some_and(|c| {
            c.user.has_role(roles::ADMIN)
                || c.name() == api.provider
                || api.visible_roles.iter().any(|r| c.user.roles.contains(r))
        }),
    }
}

/// An API the caller may see, or 404 (never telling invisible from absent).
pub(crate) async fn visible_api(
    p: &Portal,
    caller: Option<&Caller>,
    id: &str,
) -> Result<Api, ApimError> {
    match p.store().get_api(id).await {
        Ok(api) if visible(&api, caller) => Ok(api),
        Ok(_) | Err(ApimError::NotFound(_)) => Err(ApimError::NotFound(format!("API {id}"))),
        Err(e) => Err(e),
    }
}

/// A subscription tier as the Developer Portal lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tier {
    tier_name: String,
}

/// Gateway URLs of an environment the API is deployed to.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointUrl {
    environment_name: String,
    #[serde(rename = "URLs")]
    urls: Urls,
}

/// http/https URLs.
#[derive(Debug, Serialize)]
pub(crate) struct Urls {
    http: String,
    https: String,
}

/// The Developer Portal's view of an API.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PortalApi {
    id: String,
    name: String,
    description: Option<String>,
    context: String,
    version: String,
    provider: String,
    #[serde(rename = "type")]
    api_type: String,
    life_cycle_status: LifecycleState,
    tags: Vec<String>,
    tiers: Vec<Tier>,
    security_scheme: Vec<String>,
    is_default_version: bool,
    operations: Vec<apim_core::model::Operation>,
    #[serde(rename = "endpointURLs")]
    endpoint_urls: Vec<EndpointUrl>,
}

async fn view(p: &Portal, api: Api, with_urls: bool) -> Result<PortalApi, ApimError> {
    let mut endpoint_urls = Vec::new();
    if with_urls {
        let envs = p.store().list_environments().await?;
        for d in p.store().deployments(&api.id).await? {
            if !d.display_on_devportal {
                continue;
            }
            let Some(env) = envs.iter().find(|e| e.name == d.name) else {
                continue;
            };
            let vhost = env
                .vhosts
                .iter()
                .find(|v| d.vhost.as_deref().is_none_or(|h| h == v.host))
                .or(env.vhosts.first());
            if let Some(v) = vhost {
                endpoint_urls.push(EndpointUrl {
                    environment_name: env.name.clone(),
                    urls: Urls {
                        http: format!(
                            "http://{}:{}{}/{}",
                            v.host, v.http_port, api.context, api.version
                        ),
                        https: format!(
                            "https://{}:{}{}/{}",
                            v.host, v.https_port, api.context, api.version
                        ),
                    },
                });
            }
        }
    }
    Ok(PortalApi {
        tiers: api
            .policies
            .iter()
            .map(|t| Tier {
                tier_name: t.clone(),
            })
            .collect(),
        id: api.id,
        name: api.name,
        description: api.description,
        context: api.context,
        version: api.version,
        provider: api.provider,
        api_type: api.api_type,
        life_cycle_status: api.life_cycle_status,
        tags: api.tags,
        security_scheme: api.security_scheme,
        is_default_version: api.is_default_version,
        operations: api.operations,
        endpoint_urls,
    })
}

/// Every API matching `query` (all pages).
pub(crate) async fn all_apis(p: &Portal, query: Option<&str>) -> Result<Vec<Api>, ApimError> {
    let mut out = Vec::new();
    loop {
        let (page, total) = p.store().list_apis(query, 1000, out.len() as i64).await?;
        let n = page.len();
        out.extend(page);
        if n == 0 || out.len() as i64 >= total {
            return Ok(out);
        }
    }
}

/// APIs the caller may see (anonymous callers see PUBLIC ones).
#[utoipa::path(get, path = "/apis", tag = "APIs", params(Paging),
    responses((status = 200, description = "APIs: {count, list, pagination}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Option<Caller>,
    Query(paging): Query<Paging>,
) -> Result<Json<List<PortalApi>>, ApimError> {
    let apis: Vec<Api> = all_apis(&p, paging.query.as_deref())
        .await?
        .into_iter()
        .filter(|a| visible(a, caller.as_ref()))
        .collect();
    let page = List::slice(apis, &paging);
    let mut list = Vec::with_capacity(page.list.len());
    for a in page.list {
        list.push(view(&p, a, false).await?);
    }
    Ok(Json(List {
        count: list.len(),
        list,
        pagination: page.pagination,
    }))
}

/// One API with its gateway URLs.
#[utoipa::path(get, path = "/apis/{apiId}", params(("apiId" = String, Path, description = "apiId")), tag = "APIs",
    responses((status = 200, description = "The API"), (status = 404, description = "Unknown or not visible")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<Json<PortalApi>, ApimError> {
    let api = visible_api(&p, caller.as_ref(), &id).await?;
    Ok(Json(view(&p, api, true).await?))
}

/// The API's OpenAPI definition.
#[utoipa::path(get, path = "/apis/{apiId}/swagger", params(("apiId" = String, Path, description = "apiId")), tag = "APIs",
    responses((status = 200, description = "OpenAPI document")))]
pub(crate) async fn swagger(
    State(p): State<Portal>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApimError> {
    visible_api(&p, caller.as_ref(), &id).await?;
    crate::publisher::apis::swagger_of(&p, &id).await
}

/// The API's documents (API_LEVEL visibility only).
#[utoipa::path(get, path = "/apis/{apiId}/documents", params(("apiId" = String, Path, description = "apiId")), tag = "APIs",
    responses((status = 200, description = "Documents: {count, list}")))]
pub(crate) async fn documents(
    State(p): State<Portal>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<Json<List<Document>>, ApimError> {
    visible_api(&p, caller.as_ref(), &id).await?;
    let docs: Vec<Document> = repo::documents::<Document>(p.store(), &id)
        .await?
        .into_iter()
        .filter(|d| d.visibility == "API_LEVEL")
        .collect();
    Ok(Json(List::all(docs)))
}
