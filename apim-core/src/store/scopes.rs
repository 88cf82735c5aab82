//! OAuth scope definitions, as WSO2 keeps them: shared scopes (`/api/am/publisher/v4/scopes`,
//! table `scopes`) and each API's own scopes (table `api_scopes`, written with the API), every
//! one with the roles that may obtain it. A scope name is defined once: as a shared scope or by
//! one API (and its other versions). The Key Manager grants a requested scope only when it is
//! defined and the user has one of its roles ([`Store::scope_definitions`]).

use std::collections::HashMap;

use sqlx::Row;

use super::{from_row, to_json, Store, Tx};
use crate::crypto::new_id;
use crate::event::{EntityRef, EventPayload, TokenRevocation};
use crate::model::{Api, Scope};
use crate::time::now_secs;
use crate::ApimError;

/// An API that uses a shared scope, and the resources that require it (WSO2
/// `SharedScopeUsedAPIInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeUse {
    /// The API.
    pub api: Api,
    /// `(target, verb)` of each resource that requires the scope.
    pub resources: Vec<(String, String)>,
}

fn shared_from_row(row: &sqlx::any::AnyRow) -> Result<Scope, ApimError> {
    let mut s: Scope = from_row(row, "body")?;
    // shared scopes written before ids existed got their name as id (migration 20)
    let id: Option<String> = row.try_get("id")?;
    s.id = id.unwrap_or_else(|| s.name.clone());
    Ok(s)
}

async fn shared_by_name(tx: &mut Tx<'_>, name: &str) -> Result<Option<Scope>, ApimError> {
    let row = sqlx::query("SELECT id, body FROM scopes WHERE name = $1")
        .bind(name)
        .fetch_optional(tx.conn())
        .await?;
    row.map(|r| shared_from_row(&r)).transpose()
}

async fn shared_by_id(tx: &mut Tx<'_>, id: &str) -> Result<Scope, ApimError> {
    let row = sqlx::query("SELECT id, body FROM scopes WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApimError::NotFound(format!("scope {id}")))?;
    shared_from_row(&row)
}

/// APIs that use shared scope `name` (in a resource or in their scope list).
async fn uses_of(conn: &mut sqlx::AnyConnection, name: &str) -> Result<Vec<ScopeUse>, ApimError> {
    // the name appears in the body of every API that uses it; parse only those
    let pattern = name
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let rows =
        sqlx::query("SELECT body FROM apis WHERE body LIKE $1 ESCAPE '\\' ORDER BY created_at, id")
            .bind(format!("%{pattern}%"))
            .fetch_all(&mut *conn)
            .await?;
    let mut out = Vec::new();
    for r in &rows {
        let api: Api = from_row(r, "body")?;
        let listed = api.scopes.iter().any(|s| s.shared && s.scope.name == name);
        let resources: Vec<(String, String)> = api
            .scopes_needing_shared()
            .into_iter()
            .filter(|(_, n)| *n == name)
            .map(|(i, _)| {
                let op = &api.operations[i];
                (op.target.clone(), op.verb.clone())
            })
            .collect();
        if listed || !resources.is_empty() {
            out.push(ScopeUse { api, resources });
        }
    }
    Ok(out)
}

impl Store {
    /// Shared scopes by name, each with its usage count.
    pub async fn list_shared_scopes(&self) -> Result<Vec<Scope>, ApimError> {
        let rows = sqlx::query("SELECT id, body FROM scopes ORDER BY name")
            .fetch_all(self.am())
            .await?;
        let mut out: Vec<Scope> = rows.iter().map(shared_from_row).collect::<Result<_, _>>()?;
        if out.is_empty() {
            return Ok(out);
        }
        let mut counts: HashMap<String, u64> = HashMap::new();
        let apis = sqlx::query("SELECT body FROM apis")
            .fetch_all(self.am())
            .await?;
        for r in &apis {
            let api: Api = from_row(r, "body")?;
            let mut names: Vec<&str> = api
                .scopes_needing_shared()
                .into_iter()
                .map(|(_, n)| n)
                .chain(
                    api.scopes
                        .iter()
                        .filter(|s| s.shared)
                        .map(|s| s.scope.name.as_str()),
                )
                .collect();
            names.sort_unstable();
            names.dedup();
            for n in names {
                *counts.entry(n.to_owned()).or_default() += 1;
            }
        }
        for s in &mut out {
            s.usage_count = Some(counts.get(&s.name).copied().unwrap_or(0));
        }
        Ok(out)
    }

    /// A shared scope by id, with its usage count.
    pub async fn get_shared_scope(&self, id: &str) -> Result<Scope, ApimError> {
        let mut tx = self.begin().await?;
        let mut s = shared_by_id(&mut tx, id).await?;
        s.usage_count = Some(uses_of(tx.conn(), &s.name).await?.len() as u64);
        Ok(s)
    }

    /// Whether a scope of this name is defined, shared or by an API (WSO2's HEAD check).
    pub async fn scope_name_exists(&self, name: &str) -> Result<bool, ApimError> {
        let shared = sqlx::query("SELECT 1 FROM scopes WHERE name = $1")
            .bind(name)
            .fetch_optional(self.am())
            .await?;
        if shared.is_some() {
            return Ok(true);
        }
        Ok(sqlx::query("SELECT 1 FROM api_scopes WHERE name = $1")
            .bind(name)
            .fetch_optional(self.am())
            .await?
            .is_some())
    }

    /// Whether a shared scope of this name exists.
    pub async fn is_shared_scope(&self, name: &str) -> Result<bool, ApimError> {
        Ok(sqlx::query("SELECT 1 FROM scopes WHERE name = $1")
            .bind(name)
            .fetch_optional(self.am())
            .await?
            .is_some())
    }

    /// Adds a shared scope; 409 when the name is taken (shared or by an API).
    pub async fn create_shared_scope(&self, mut scope: Scope) -> Result<Scope, ApimError> {
        scope.validate()?;
        scope.id = new_id();
        scope.usage_count = None;
        let mut tx = self.begin().await?;
        if shared_by_name(&mut tx, &scope.name).await?.is_some() {
            return Err(ApimError::Conflict(format!(
                "a shared scope named '{}' exists",
                scope.name
            )));
        }
        if let Some(r) = sqlx::query("SELECT api_id FROM api_scopes WHERE name = $1")
            .bind(&scope.name)
            .fetch_optional(tx.conn())
            .await?
        {
            let api_id: String = r.try_get(0)?;
            return Err(ApimError::Conflict(format!(
                "scope '{}' is defined by API {api_id}",
                scope.name
            )));
        }
        let mut body = scope.clone();
        body.id = String::new();
        sqlx::query("INSERT INTO scopes (name, id, body) VALUES ($1, $2, $3)")
            .bind(&scope.name)
            .bind(&scope.id)
            .bind(to_json(&body)?)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::ScopeCreate(body));
        tx.commit().await?;
        scope.usage_count = Some(0);
        Ok(scope)
    }

    /// Replaces a shared scope's display name, description and bindings; the name cannot change.
    pub async fn update_shared_scope(
        &self,
        id: &str,
        mut scope: Scope,
    ) -> Result<Scope, ApimError> {
        scope.validate()?;
        let mut tx = self.begin().await?;
        let cur = shared_by_id(&mut tx, id).await?;
        if cur.name != scope.name {
            return Err(ApimError::validation(
                "name",
                "the name of a scope cannot be changed",
            ));
        }
        scope.id = String::new();
        scope.usage_count = None;
        sqlx::query("UPDATE scopes SET body = $1 WHERE id = $2")
            .bind(to_json(&scope)?)
            .bind(&cur.id)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::ScopeUpdate(scope.clone()));
        scope.usage_count = Some(uses_of(tx.conn(), &scope.name).await?.len() as u64);
        tx.commit().await?;
        scope.id = cur.id;
        Ok(scope)
    }

    /// Deletes a shared scope; 409 naming the APIs while any uses it.
    pub async fn delete_shared_scope(&self, id: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let cur = shared_by_id(&mut tx, id).await?;
        let uses = uses_of(tx.conn(), &cur.name).await?;
        if !uses.is_empty() {
            let names: Vec<String> = uses
                .iter()
                .map(|u| format!("{} {} ({})", u.api.name, u.api.version, u.api.id))
                .collect();
            return Err(ApimError::Conflict(format!(
                "scope '{}' is used by the APIs: {}",
                cur.name,
                names.join(", ")
            )));
        }
        sqlx::query("DELETE FROM scopes WHERE id = $1")
            .bind(&cur.id)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::ScopeDelete(EntityRef { id: cur.name }));
        tx.commit().await?;
        Ok(())
    }

    /// A shared scope and the APIs (and their resources) that use it.
    pub async fn shared_scope_usage(&self, id: &str) -> Result<(Scope, Vec<ScopeUse>), ApimError> {
        let mut tx = self.begin().await?;
        let mut s = shared_by_id(&mut tx, id).await?;
        let uses = uses_of(tx.conn(), &s.name).await?;
        s.usage_count = Some(uses.len() as u64);
        Ok((s, uses))
    }

    /// Every definition of each of `names`: the shared scope and the scopes APIs define (the
    /// versions of one API may each define it). A name without definitions is absent.
    pub async fn scope_definitions(
        &self,
        names: &[&str],
    ) -> Result<HashMap<String, Vec<Scope>>, ApimError> {
        let mut out: HashMap<String, Vec<Scope>> = HashMap::new();
        if names.is_empty() {
            return Ok(out);
        }
        let marks: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let marks = marks.join(", ");
        for sql in [
            format!("SELECT body FROM scopes WHERE name IN ({marks})"),
            format!("SELECT body FROM api_scopes WHERE name IN ({marks})"),
        ] {
            let mut q = sqlx::query(&sql);
            for n in names {
                q = q.bind(*n);
            }
            for r in q.fetch_all(self.am()).await? {
                let s: Scope = from_row(&r, "body")?;
                out.entry(s.name.clone()).or_default().push(s);
            }
        }
        Ok(out)
    }

    /// Within an API write: checks the API's scopes against the other definitions and records
    /// its own scopes. A local scope may not take a shared scope's name or one another API
    /// defines (other versions of the same API may define it too); a shared one, and every scope
    /// a resource requires that is not local, must be a shared scope.
    pub(super) async fn save_api_scopes(tx: &mut Tx<'_>, api: &Api) -> Result<(), ApimError> {
        for (i, s) in api.scopes.iter().enumerate() {
            let field = format!("scopes[{i}].scope.name");
            let shared = shared_by_name(tx, &s.scope.name).await?;
            if s.shared {
                if shared.is_none() {
                    return Err(ApimError::validation(
                        field,
                        format!("no shared scope named '{}'", s.scope.name),
                    ));
                }
                continue;
            }
            if shared.is_some() {
                return Err(ApimError::validation(
                    field,
                    format!(
                        "'{}' is a shared scope; list it with \"shared\": true",
                        s.scope.name
                    ),
                ));
            }
            let others = sqlx::query(
                "SELECT a.name, a.provider, a.id FROM api_scopes s JOIN apis a ON a.id = s.api_id \
                 WHERE s.name = $1 AND s.api_id <> $2",
            )
            .bind(&s.scope.name)
            .bind(&api.id)
            .fetch_all(tx.conn())
            .await?;
            for r in &others {
                let (name, provider, id): (String, String, String) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                if name != api.name || provider != api.provider {
                    return Err(ApimError::validation(
                        field,
                        format!("scope '{}' is defined by another API ({id})", s.scope.name),
                    ));
                }
            }
        }
        for (i, name) in api.scopes_needing_shared() {
            if shared_by_name(tx, name).await?.is_none() {
                return Err(ApimError::validation(
                    format!("operations[{i}].scopes"),
                    format!(
                        "scope '{name}' is not defined: add it to the API's scopes or as a shared scope"
                    ),
                ));
            }
        }
        sqlx::query("DELETE FROM api_scopes WHERE api_id = $1")
            .bind(&api.id)
            .execute(tx.conn())
            .await?;
        for s in api.scopes.iter().filter(|s| !s.shared) {
            let mut body = s.scope.clone();
            body.id = String::new();
            body.usage_count = None;
            sqlx::query("INSERT INTO api_scopes (api_id, name, body) VALUES ($1, $2, $3)")
                .bind(&api.id)
                .bind(&body.name)
                .bind(to_json(&body)?)
                .execute(tx.conn())
                .await?;
        }
        Ok(())
    }

    /// Within a transaction: revokes every live token issued to `client_id` — access tokens
    /// (JWT and opaque: recorded as revoked and announced to the gateways with TOKEN_REVOCATION),
    /// refresh tokens and authorization codes (marked used). For a regenerated secret and for
    /// removed keys. Returns how many access tokens were revoked.
    pub(super) async fn revoke_client_tokens_in(
        tx: &mut Tx<'_>,
        client_id: &str,
    ) -> Result<usize, ApimError> {
        let rows = sqlx::query(
            "SELECT jti, body, expires_at FROM oauth_tokens \
             WHERE client_id = $1 AND kind = 'access' AND revoked = 0 AND expires_at > $2",
        )
        .bind(client_id)
        .bind(now_secs())
        .fetch_all(tx.conn())
        .await?;
        let mut n = 0;
        for r in &rows {
            let jti: String = r.try_get(0)?;
            let expires: i64 = r.try_get(2)?;
            let body: super::StoredToken = from_row(r, "body")?;
            let token_type = if body.extra.get("format").and_then(|f| f.as_str()) == Some("JWT") {
                "JWT"
            } else {
                "OPAQUE"
            };
            let known = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
                .bind(&jti)
                .fetch_optional(tx.conn())
                .await?
                .is_some();
            if !known {
                sqlx::query(
                    "INSERT INTO revoked_tokens (jti, token_type, expires_at) VALUES ($1, $2, $3)",
                )
                .bind(&jti)
                .bind(token_type)
                .bind(expires)
                .execute(tx.conn())
                .await?;
                tx.emit(EventPayload::TokenRevocation(TokenRevocation {
                    jti,
                    expiry_time: expires,
                    token_type: token_type.into(),
                    consumer_key: Some(client_id.to_owned()),
                }));
                n += 1;
            }
        }
        sqlx::query("UPDATE oauth_tokens SET revoked = 1 WHERE client_id = $1 AND revoked = 0")
            .bind(client_id)
            .execute(tx.conn())
            .await?;
        Ok(n)
    }
}
