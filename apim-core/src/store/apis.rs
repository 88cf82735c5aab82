//! APIs, their lifecycle, revisions and deployments.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{from_row, page, to_json, Store, Tx};
use crate::crypto::new_id;
use crate::event::{
    ApiRef, EventPayload, GatewayDeployment, GatewayRemoval, LifecycleChange, PolicyKind,
};
use crate::lifecycle::{LifecycleAction, LifecycleState};
use crate::model::{Api, ApiRevision, Deployment};
use crate::time::now_ms;
use crate::ApimError;

/// Revisions kept per API (WSO2's default maximum).
pub const MAX_REVISIONS: i64 = 5;

/// One lifecycle transition, as the history lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHistoryItem {
    /// State before.
    pub previous_state: String,
    /// State after.
    pub post_state: String,
    /// Who changed it.
    pub user: String,
    /// Ms since the Unix epoch.
    pub updated_time: i64,
}

fn api_ref(api: &Api) -> ApiRef {
    ApiRef {
        api_id: api.id.clone(),
        name: api.name.clone(),
        context: api.context.clone(),
        version: api.version.clone(),
        provider: api.provider.clone(),
        life_cycle_status: api.life_cycle_status,
    }
}

impl Store {
    /// Checks that every named tier exists (subscription tiers and advanced policies).
    async fn check_api_tiers(&self, tx: &mut Tx<'_>, api: &Api) -> Result<(), ApimError> {
        for (i, tier) in api.policies.iter().enumerate() {
            if !policy_exists(tx, PolicyKind::Subscription, tier).await? {
                return Err(ApimError::validation(
                    format!("policies[{i}]"),
                    format!("subscription tier '{tier}' does not exist"),
                ));
            }
        }
        if let Some(p) = &api.api_throttling_policy {
            if !policy_exists(tx, PolicyKind::Advanced, p).await? {
                return Err(ApimError::validation(
                    "apiThrottlingPolicy",
                    format!("advanced policy '{p}' does not exist"),
                ));
            }
        }
        for (i, op) in api.operations.iter().enumerate() {
            if let Some(p) = &op.throttling_policy {
                if !policy_exists(tx, PolicyKind::Advanced, p).await? {
                    return Err(ApimError::validation(
                        format!("operations[{i}].throttlingPolicy"),
                        format!("advanced policy '{p}' does not exist"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Creates an API owned by `provider`. Validates the definition and its tiers; a duplicate
    /// context + version is a 409.
    pub async fn create_api(&self, mut api: Api, provider: &str) -> Result<Api, ApimError> {
        api.validate()?;
        let now = now_ms();
        api.id = new_id();
        api.provider = provider.to_owned();
        api.life_cycle_status = LifecycleState::Created;
        api.created_time = now;
        api.last_updated_time = now;
        let mut tx = self.begin().await?;
        self.check_api_tiers(&mut tx, &api).await?;
        let dup = sqlx::query("SELECT id FROM apis WHERE context = $1 AND version = $2")
            .bind(&api.context)
            .bind(&api.version)
            .fetch_optional(tx.conn())
            .await?;
        if dup.is_some() {
            return Err(ApimError::Conflict(format!(
                "an API with context {} and version {} already exists",
                api.context, api.version
            )));
        }
        check_route_overlap(&mut tx, &api, None).await?;
        sqlx::query(
            "INSERT INTO apis (id, name, context, version, provider, status, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&api.id)
        .bind(&api.name)
        .bind(&api.context)
        .bind(&api.version)
        .bind(&api.provider)
        .bind(api.life_cycle_status.as_str())
        .bind(to_json(&api)?)
        .bind(now)
        .bind(now)
        .execute(tx.conn())
        .await?;
        Store::save_api_scopes(&mut tx, &api).await?;
        tx.emit(EventPayload::ApiCreate(api_ref(&api)));
        tx.commit().await?;
        Ok(api)
    }

    /// An API by id.
    pub async fn get_api(&self, id: &str) -> Result<Api, ApimError> {
        let row = sqlx::query("SELECT body FROM apis WHERE id = $1")
            .bind(id)
            .fetch_optional(self.am())
            .await?
            .ok_or_else(|| ApimError::NotFound(format!("API {id}")))?;
        from_row(&row, "body")
    }

    /// APIs matching `query` (substring of name or context, or `tag:x`), newest first, paged.
    /// Returns the page and the total count.
    pub async fn list_apis(
        &self,
        query: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Api>, i64), ApimError> {
        let (limit, offset) = page(limit, offset);
        let rows = sqlx::query("SELECT body FROM apis ORDER BY created_at DESC, id")
            .fetch_all(self.am())
            .await?;
        let mut all = Vec::with_capacity(rows.len());
        for r in &rows {
            let api: Api = from_row(r, "body")?;
            if matches_query(&api, query) {
                all.push(api);
            }
        }
        let total = all.len() as i64;
        Ok((
            all.into_iter()
                .skip(offset as usize)
                .take(limit as usize)
                .collect(),
            total,
        ))
    }

    /// Replaces an API's definition. Identity (id, context, version, provider) and lifecycle
    /// state are kept; they change only through their own operations.
    pub async fn update_api(&self, id: &str, mut api: Api) -> Result<Api, ApimError> {
        api.validate()?;
        let mut tx = self.begin().await?;
        let cur = load_api(&mut tx, id).await?;
        if api.context != cur.context || api.version != cur.version {
            return Err(ApimError::validation(
                "context",
                "context and version cannot be changed; create a new version",
            ));
        }
        api.id = cur.id.clone();
        api.provider = cur.provider.clone();
        api.life_cycle_status = cur.life_cycle_status;
        api.created_time = cur.created_time;
        api.last_updated_time = now_ms();
        self.check_api_tiers(&mut tx, &api).await?;
        check_route_overlap(&mut tx, &api, Some(&cur)).await?;
        save_api(&mut tx, &api).await?;
        Store::save_api_scopes(&mut tx, &api).await?;
        tx.emit(EventPayload::ApiUpdate(api_ref(&api)));
        tx.commit().await?;
        Ok(api)
    }

    /// Deletes an API; refused while it has subscriptions. Removes it from every gateway.
    pub async fn delete_api(&self, id: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let api = load_api(&mut tx, id).await?;
        let subs: i64 = sqlx::query("SELECT COUNT(*) FROM subscriptions WHERE api_id = $1")
            .bind(id)
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        if subs > 0 {
            return Err(ApimError::Conflict(format!(
                "API {id} has {subs} subscription(s); delete them first"
            )));
        }
        let deployments = load_deployments(&mut tx, id).await?;
        sqlx::query("DELETE FROM apis WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        if !deployments.is_empty() {
            tx.emit(EventPayload::RemoveApiFromGateway(GatewayRemoval {
                api_id: api.id.clone(),
                context: api.context.clone(),
                version: api.version.clone(),
                revision_id: deployments[0].revision_uuid.clone(),
                gateway_labels: deployments.iter().map(|d| d.name.clone()).collect(),
            }));
        }
        tx.emit(EventPayload::ApiDelete(api_ref(&api)));
        tx.commit().await?;
        Ok(())
    }

    /// Applies a lifecycle action (DESIGN §4); records history; emits API_LIFECYCLE_CHANGE.
    pub async fn change_lifecycle(
        &self,
        id: &str,
        action: LifecycleAction,
        user: &str,
    ) -> Result<Api, ApimError> {
        let mut tx = self.begin().await?;
        let mut api = load_api(&mut tx, id).await?;
        let previous = api.life_cycle_status;
        api.life_cycle_status = previous.apply(action)?;
        api.last_updated_time = now_ms();
        save_api(&mut tx, &api).await?;
        // history is ordered by time: two changes within one millisecond get distinct,
        // increasing times, so the order they happened in is the order they are listed in
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(at) FROM api_lifecycle_history WHERE api_id = $1")
                .bind(id)
                .fetch_one(tx.conn())
                .await?;
        let at = last.map_or(api.last_updated_time, |l| api.last_updated_time.max(l + 1));
        sqlx::query(
            "INSERT INTO api_lifecycle_history (id, api_id, previous_state, post_state, username, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(id)
        .bind(previous.as_str())
        .bind(api.life_cycle_status.as_str())
        .bind(user)
        .bind(at)
        .execute(tx.conn())
        .await?;
        tx.emit(EventPayload::ApiLifecycleChange(LifecycleChange {
            api: api_ref(&api),
            previous,
        }));
        tx.commit().await?;
        Ok(api)
    }

    /// Lifecycle history, oldest first.
    pub async fn lifecycle_history(
        &self,
        id: &str,
    ) -> Result<Vec<LifecycleHistoryItem>, ApimError> {
        self.get_api(id).await?;
        let rows = sqlx::query(
            "SELECT previous_state, post_state, username, at FROM api_lifecycle_history WHERE api_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(self.am())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LifecycleHistoryItem {
                    previous_state: r.try_get(0)?,
                    post_state: r.try_get(1)?,
                    user: r.try_get(2)?,
                    updated_time: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Snapshots the API's current definition as a new revision (at most [`MAX_REVISIONS`]).
    pub async fn create_revision(
        &self,
        api_id: &str,
        description: Option<String>,
    ) -> Result<ApiRevision, ApimError> {
        let mut tx = self.begin().await?;
        let api = load_api(&mut tx, api_id).await?;
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(MAX(number), 0) FROM api_revisions WHERE api_id = $1",
        )
        .bind(api_id)
        .fetch_one(tx.conn())
        .await?;
        let (count, max): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if count >= MAX_REVISIONS {
            return Err(ApimError::Conflict(format!(
                "API {api_id} already has the maximum of {MAX_REVISIONS} revisions; delete one first"
            )));
        }
        let rev = ApiRevision {
            id: new_id(),
            api_id: api_id.to_owned(),
            display_name: format!("Revision {}", max + 1),
            description,
            created_time: now_ms(),
            api,
            deployment_info: vec![],
        };
        sqlx::query("INSERT INTO api_revisions (id, api_id, number, description, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&rev.id)
            .bind(api_id)
            .bind(max + 1)
            .bind(&rev.description)
            .bind(to_json(&rev.api)?)
            .bind(rev.created_time)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(rev)
    }

    /// Revisions of an API with their deployments, oldest first.
    pub async fn list_revisions(&self, api_id: &str) -> Result<Vec<ApiRevision>, ApimError> {
        self.get_api(api_id).await?;
        let rows = sqlx::query("SELECT id, number, description, body, created_at FROM api_revisions WHERE api_id = $1 ORDER BY number")
            .bind(api_id)
            .fetch_all(self.am())
            .await?;
        let deployments = self.deployments(api_id).await?;
        rows.iter()
            .map(|r| revision_from_row(api_id, r, &deployments))
            .collect()
    }

    /// One revision.
    pub async fn get_revision(
        &self,
        api_id: &str,
        revision_id: &str,
    ) -> Result<ApiRevision, ApimError> {
        self.list_revisions(api_id)
            .await?
            .into_iter()
            .find(|r| r.id == revision_id)
            .ok_or_else(|| ApimError::NotFound(format!("revision {revision_id}")))
    }

    /// Deletes a revision that is not deployed.
    pub async fn delete_revision(&self, api_id: &str, revision_id: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        load_revision_api(&mut tx, api_id, revision_id).await?;
        if load_deployments(&mut tx, api_id)
            .await?
            .iter()
            .any(|d| d.revision_uuid == revision_id)
        {
            return Err(ApimError::Conflict(format!(
                "revision {revision_id} is deployed; undeploy it first"
            )));
        }
        sqlx::query("DELETE FROM api_revisions WHERE id = $1")
            .bind(revision_id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Restores the working copy of an API from a revision (identity and state kept).
    pub async fn restore_revision(
        &self,
        api_id: &str,
        revision_id: &str,
    ) -> Result<Api, ApimError> {
        let mut tx = self.begin().await?;
        let cur = load_api(&mut tx, api_id).await?;
        let mut api = load_revision_api(&mut tx, api_id, revision_id).await?;
        api.life_cycle_status = cur.life_cycle_status;
        api.last_updated_time = now_ms();
        check_route_overlap(&mut tx, &api, Some(&cur)).await?;
        save_api(&mut tx, &api).await?;
        Store::save_api_scopes(&mut tx, &api).await?;
        tx.emit(EventPayload::ApiUpdate(api_ref(&api)));
        tx.commit().await?;
        Ok(api)
    }

    /// Deploys a revision to gateway environments (replacing what each had). Emits
    /// DEPLOY_API_IN_GATEWAY with the labels.
    pub async fn deploy_revision(
        &self,
        api_id: &str,
        revision_id: &str,
        targets: &[Deployment],
    ) -> Result<Vec<Deployment>, ApimError> {
        if targets.is_empty() {
            return Err(ApimError::validation(
                "deployments",
                "name at least one gateway environment",
            ));
        }
        let mut tx = self.begin().await?;
        let cur = load_api(&mut tx, api_id).await?;
        let mut api = load_revision_api(&mut tx, api_id, revision_id).await?;
        api.life_cycle_status = cur.life_cycle_status;
        // the gateway routes by the deployed definition: an older revision may still be the
        // default version
        check_route_overlap(&mut tx, &api, Some(&cur)).await?;
        let now = now_ms();
        let mut labels = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let env = sqlx::query("SELECT body FROM environments WHERE name = $1")
                .bind(&t.name)
                .fetch_optional(tx.conn())
                .await?;
            if env.is_none() {
                return Err(ApimError::validation(
                    format!("deployments[{i}].name"),
                    format!("gateway environment '{}' does not exist", t.name),
                ));
            }
            sqlx::query("DELETE FROM api_deployments WHERE api_id = $1 AND environment = $2")
                .bind(api_id)
                .bind(&t.name)
                .execute(tx.conn())
                .await?;
            sqlx::query(
                "INSERT INTO api_deployments (api_id, environment, revision_id, vhost, display_on_devportal, deployed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(api_id)
            .bind(&t.name)
            .bind(revision_id)
            .bind(&t.vhost)
            .bind(i64::from(t.display_on_devportal))
            .bind(now)
            .execute(tx.conn())
            .await?;
            labels.push(t.name.clone());
        }
        tx.emit(EventPayload::DeployApiInGateway(Box::new(
            GatewayDeployment {
                api,
                revision_id: revision_id.to_owned(),
                gateway_labels: labels,
                vhost: targets[0].vhost.clone(),
            },
        )));
        tx.commit().await?;
        self.deployments(api_id).await
    }

    /// Removes a revision from gateway environments. Emits REMOVE_API_FROM_GATEWAY with the labels.
    pub async fn undeploy_revision(
        &self,
        api_id: &str,
        revision_id: &str,
        environments: &[String],
    ) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let api = load_api(&mut tx, api_id).await?;
        load_revision_api(&mut tx, api_id, revision_id).await?;
        let current = load_deployments(&mut tx, api_id).await?;
        let mut removed = Vec::new();
        for env in environments {
            if current
                .iter()
                .any(|d| &d.name == env && d.revision_uuid == revision_id)
            {
                sqlx::query("DELETE FROM api_deployments WHERE api_id = $1 AND environment = $2")
                    .bind(api_id)
                    .bind(env)
                    .execute(tx.conn())
                    .await?;
                removed.push(env.clone());
            }
        }
        if removed.is_empty() {
            return Err(ApimError::NotFound(format!(
                "deployment of revision {revision_id} in {environments:?}"
            )));
        }
        tx.emit(EventPayload::RemoveApiFromGateway(GatewayRemoval {
            api_id: api.id,
            context: api.context,
            version: api.version,
            revision_id: revision_id.to_owned(),
            gateway_labels: removed,
        }));
        tx.commit().await?;
        Ok(())
    }

    /// Where an API is deployed.
    pub async fn deployments(&self, api_id: &str) -> Result<Vec<Deployment>, ApimError> {
        let rows = sqlx::query(
            "SELECT revision_id, environment, vhost, display_on_devportal, deployed_at FROM api_deployments WHERE api_id = $1 ORDER BY environment",
        )
        .bind(api_id)
        .fetch_all(self.am())
        .await?;
        rows.iter().map(deployment_from_row).collect()
    }

    /// Every deployment as the gateways see it: the revision's definition with the API's
    /// current lifecycle state, grouped per (API, revision, vhost).
    pub async fn gateway_deployments_in(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Vec<GatewayDeployment>, ApimError> {
        let rows = sqlx::query(
            "SELECT d.api_id, d.environment, d.revision_id, d.vhost, r.body AS rbody, a.status \
             FROM api_deployments d JOIN api_revisions r ON r.id = d.revision_id JOIN apis a ON a.id = d.api_id \
             ORDER BY d.api_id, d.revision_id, d.environment",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut out: Vec<GatewayDeployment> = Vec::new();
        for r in &rows {
            let revision_id: String = r.try_get("revision_id")?;
            let env: String = r.try_get("environment")?;
            let vhost: Option<String> = r.try_get("vhost")?;
            let status: String = r.try_get("status")?;
            if let Some(last) = out.last_mut() {
                if last.revision_id == revision_id && last.vhost == vhost {
                    last.gateway_labels.push(env);
                    continue;
                }
            }
            let mut api: Api = from_row(r, "rbody")?;
            api.life_cycle_status = serde_json::from_value(serde_json::Value::String(status))?;
            out.push(GatewayDeployment {
                api,
                revision_id,
                gateway_labels: vec![env],
                vhost,
            });
        }
        Ok(out)
    }
}

/// The path prefixes an API takes in the gateway's router ([`crate::artifacts::ApiRouter`]):
/// `{context}/{version}`, and for the default version `{context}` itself (the router serves
/// `{context}/**` without a version segment). Contexts are matched longest first, byte for byte.
fn route_claims(api: &Api) -> Vec<String> {
    let mut out = vec![format!("{}/{}", api.context, api.version)];
    if api.is_default_version {
        out.push(api.context.clone());
    }
    out
}

/// Whether path `a` is `b` or a segment-wise prefix of it (`/a/b` of `/a/b/c`, not of `/a/bc`).
fn path_prefix(a: &str, b: &str) -> bool {
    b.strip_prefix(a)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Refuses (409 naming `context`) an API whose routes would shadow, or be shadowed by, another
/// API's: one's `context/version` (or, as default version, `context`) is a path prefix of the
/// other's, e.g. `/orders` 1.0.0 and `/orders/1.0.0` version `open`, whose context the router,
/// matching the longest context first, would pick for `/orders/1.0.0/open/**`. Versions of one
/// API share a context (the router prefers the explicit version over the default); a context
/// used by another provider's API is refused outright. On update only the routes the change adds
/// are checked (`previous`), so APIs stored before this check keep working.
async fn check_route_overlap(
    tx: &mut Tx<'_>,
    api: &Api,
    previous: Option<&Api>,
) -> Result<(), ApimError> {
    let old = previous.map(route_claims).unwrap_or_default();
    let new: Vec<String> = route_claims(api)
        .into_iter()
        .filter(|c| !old.contains(c))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    // candidates: the same context, contexts it is a prefix of, contexts that are its prefixes
    // (LIKE may over-match on '_' and, on SQLite, on case; the exact test follows)
    let rows = sqlx::query(
        "SELECT provider, body FROM apis WHERE id <> $1 AND (context = $2 OR context LIKE $3 OR $2 LIKE (context || '/%'))",
    )
    .bind(&api.id)
    .bind(&api.context)
    .bind(format!("{}/%", api.context))
    .fetch_all(tx.conn())
    .await?;
    for r in &rows {
        let other: Api = from_row(r, "body")?;
        let provider: String = r.try_get("provider")?;
        if other.context == api.context {
            if provider != api.provider && previous.is_none() {
                return Err(ApimError::Conflict(format!(
                    "context: '{}' is the context of another provider's API; choose another context",
                    api.context
                )));
            }
            // another version of the same API
            continue;
        }
        for mine in &new {
            for theirs in route_claims(&other) {
                if path_prefix(mine, &theirs) || path_prefix(&theirs, mine) {
                    return Err(ApimError::Conflict(format!(
                        "context: the gateway path '{mine}' of this API overlaps the path '{theirs}' of another API (API {} {}); \
                         one would capture the other's requests",
                        other.context, other.version
                    )));
                }
            }
        }
    }
    Ok(())
}

fn matches_query(api: &Api, query: Option<&str>) -> bool {
    let Some(q) = query.map(str::trim).filter(|q| !q.is_empty()) else {
        return true;
    };
    let q = q.to_lowercase();
    if let Some(tag) = q.strip_prefix("tag:") {
        return api.tags.iter().any(|t| t.to_lowercase() == tag);
    }
    if let Some(name) = q.strip_prefix("name:") {
        return api.name.to_lowercase().contains(name);
    }
    if let Some(ctx) = q.strip_prefix("context:") {
        return api.context.to_lowercase().contains(ctx);
    }
    api.name.to_lowercase().contains(&q)
        || api.context.to_lowercase().contains(&q)
        || api.tags.iter().any(|t| t.to_lowercase() == q)
}

pub(super) async fn load_api(tx: &mut Tx<'_>, id: &str) -> Result<Api, ApimError> {
    let row = sqlx::query("SELECT body FROM apis WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApimError::NotFound(format!("API {id}")))?;
    from_row(&row, "body")
}

async fn save_api(tx: &mut Tx<'_>, api: &Api) -> Result<(), ApimError> {
    sqlx::query("UPDATE apis SET name = $1, status = $2, body = $3, updated_at = $4 WHERE id = $5")
        .bind(&api.name)
        .bind(api.life_cycle_status.as_str())
        .bind(to_json(api)?)
        .bind(api.last_updated_time)
        .bind(&api.id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

async fn load_revision_api(
    tx: &mut Tx<'_>,
    api_id: &str,
    revision_id: &str,
) -> Result<Api, ApimError> {
    let row = sqlx::query("SELECT body FROM api_revisions WHERE id = $1 AND api_id = $2")
        .bind(revision_id)
        .bind(api_id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApimError::NotFound(format!("revision {revision_id}")))?;
    from_row(&row, "body")
}

async fn load_deployments(tx: &mut Tx<'_>, api_id: &str) -> Result<Vec<Deployment>, ApimError> {
    let rows = sqlx::query(
        "SELECT revision_id, environment, vhost, display_on_devportal, deployed_at FROM api_deployments WHERE api_id = $1 ORDER BY environment",
    )
    .bind(api_id)
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(deployment_from_row).collect()
}

fn deployment_from_row(r: &AnyRow) -> Result<Deployment, ApimError> {
    Ok(Deployment {
        revision_uuid: r.try_get(0)?,
        name: r.try_get(1)?,
        vhost: r.try_get(2)?,
        display_on_devportal: r.try_get::<i64, _>(3)? != 0,
        deployed_time: r.try_get(4)?,
    })
}

fn revision_from_row(
    api_id: &str,
    r: &AnyRow,
    deployments: &[Deployment],
) -> Result<ApiRevision, ApimError> {
    let id: String = r.try_get("id")?;
    let number: i64 = r.try_get("number")?;
    Ok(ApiRevision {
        deployment_info: deployments
            .iter()
            .filter(|d| d.revision_uuid == id)
            .cloned()
            .collect(),
        id,
        api_id: api_id.to_owned(),
        display_name: format!("Revision {number}"),
        description: r.try_get("description")?,
        created_time: r.try_get("created_at")?,
        api: from_row(r, "body")?,
    })
}

pub(super) async fn policy_exists(
    tx: &mut Tx<'_>,
    kind: PolicyKind,
    name: &str,
) -> Result<bool, ApimError> {
    Ok(
        sqlx::query("SELECT 1 FROM policies WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(tx.conn())
            .await?
            .is_some(),
    )
}
