//! Throttling policies, block conditions, gateway environments and scopes.

use sqlx::Row;

use super::{from_row, to_json, Store};
use crate::crypto::new_id;
use crate::event::{EntityRef, EventPayload, Policy, PolicyKind, PolicyRef};
use crate::model::{BlockCondition, Environment, Scope};
use crate::ApimError;

fn set_policy_id(p: &mut Policy, id: String) {
    match p {
        Policy::Subscription(x) => x.policy_id = id,
        Policy::Application(x) => x.policy_id = id,
        Policy::Advanced(x) => x.policy_id = id,
        Policy::Custom(x) => x.policy_id = id,
    }
}

fn validate_policy(p: &Policy) -> Result<(), ApimError> {
    match p {
        Policy::Subscription(x) => x.validate(),
        Policy::Application(x) => x.validate(),
        Policy::Advanced(x) => x.validate(),
        Policy::Custom(x) => x.validate(),
    }
}

impl Store {
    /// Creates a policy; a duplicate name within its kind is a 409.
    pub async fn create_policy(&self, mut policy: Policy) -> Result<Policy, ApimError> {
        validate_policy(&policy)?;
        set_policy_id(&mut policy, new_id());
        let mut tx = self.begin().await?;
        let kind = policy.kind();
        let dup = sqlx::query("SELECT 1 FROM policies WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(policy.name())
            .fetch_optional(tx.conn())
            .await?;
        if dup.is_some() {
            return Err(ApimError::Conflict(format!(
                "a {} policy named '{}' already exists",
                kind.as_str(),
                policy.name()
            )));
        }
        let id = policy_id(&policy);
        sqlx::query("INSERT INTO policies (kind, name, id, body) VALUES ($1, $2, $3, $4)")
            .bind(kind.as_str())
            .bind(policy.name())
            .bind(id)
            .bind(to_json(&policy)?)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::PolicyCreate(policy.clone()));
        tx.commit().await?;
        Ok(policy)
    }

    /// Replaces a policy (same kind and name; the id is kept).
    pub async fn update_policy(
        &self,
        kind: PolicyKind,
        id: &str,
        mut policy: Policy,
    ) -> Result<Policy, ApimError> {
        validate_policy(&policy)?;
        if policy.kind() != kind {
            return Err(ApimError::validation(
                "policyType",
                "the policy kind cannot change",
            ));
        }
        let cur = self.get_policy(kind, id).await?;
        if cur.name() != policy.name() {
            return Err(ApimError::validation(
                "policyName",
                "the policy name cannot change",
            ));
        }
        set_policy_id(&mut policy, id.to_owned());
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE policies SET body = $1 WHERE id = $2")
            .bind(to_json(&policy)?)
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::PolicyUpdate(policy.clone()));
        tx.commit().await?;
        Ok(policy)
    }

    /// A policy by kind and id.
    pub async fn get_policy(&self, kind: PolicyKind, id: &str) -> Result<Policy, ApimError> {
        let row = sqlx::query("SELECT body FROM policies WHERE kind = $1 AND id = $2")
            .bind(kind.as_str())
            .bind(id)
            .fetch_optional(self.am())
            .await?
            .ok_or_else(|| ApimError::NotFound(format!("{} policy {id}", kind.as_str())))?;
        from_row(&row, "body")
    }

    /// A policy by kind and name.
    pub async fn get_policy_by_name(
        &self,
        kind: PolicyKind,
        name: &str,
    ) -> Result<Option<Policy>, ApimError> {
        let row = sqlx::query("SELECT body FROM policies WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(self.am())
            .await?;
        row.map(|r| from_row(&r, "body")).transpose()
    }

    /// Policies of a kind (all kinds when `None`), by name.
    pub async fn list_policies(&self, kind: Option<PolicyKind>) -> Result<Vec<Policy>, ApimError> {
        let rows = sqlx::query(
            "SELECT body FROM policies WHERE ($1 = '' OR kind = $1) ORDER BY kind, name",
        )
        .bind(kind.map_or("", |k| k.as_str()))
        .fetch_all(self.am())
        .await?;
        rows.iter().map(|r| from_row(r, "body")).collect()
    }

    /// Deletes a policy that nothing uses.
    pub async fn delete_policy(&self, kind: PolicyKind, id: &str) -> Result<(), ApimError> {
        let policy = self.get_policy(kind, id).await?;
        let name = policy.name().to_owned();
        let mut tx = self.begin().await?;
        let in_use = match kind {
            PolicyKind::Subscription => {
                sqlx::query("SELECT 1 FROM subscriptions WHERE body LIKE $1 LIMIT 1")
                    .bind(format!("%\"throttlingPolicy\":\"{}\"%", name))
                    .fetch_optional(tx.conn())
                    .await?
                    .is_some()
            }
            PolicyKind::Application => {
                sqlx::query("SELECT 1 FROM applications WHERE body LIKE $1 LIMIT 1")
                    .bind(format!("%\"throttlingPolicy\":\"{}\"%", name))
                    .fetch_optional(tx.conn())
                    .await?
                    .is_some()
            }
            _ => false,
        };
        if in_use {
            return Err(ApimError::Conflict(format!("policy '{name}' is in use")));
        }
        sqlx::query("DELETE FROM policies WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::PolicyDelete(PolicyRef {
            policy_type: kind,
            policy_name: name,
        }));
        tx.commit().await?;
        Ok(())
    }

    /// Adds a block condition (its value is checked for its type).
    pub async fn create_block_condition(
        &self,
        mut b: BlockCondition,
    ) -> Result<BlockCondition, ApimError> {
        b.target()?;
        b.condition_id = new_id();
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO block_conditions (id, body) VALUES ($1, $2)")
            .bind(&b.condition_id)
            .bind(to_json(&b)?)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::BlockConditionAdd(b.clone()));
        tx.commit().await?;
        Ok(b)
    }

    /// Enables or disables a block condition.
    pub async fn set_block_condition_status(
        &self,
        id: &str,
        enabled: bool,
    ) -> Result<BlockCondition, ApimError> {
        let mut b = self.get_block_condition(id).await?;
        b.condition_status = enabled;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE block_conditions SET body = $1 WHERE id = $2")
            .bind(to_json(&b)?)
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::BlockConditionAdd(b.clone()));
        tx.commit().await?;
        Ok(b)
    }

    /// A block condition by id.
    pub async fn get_block_condition(&self, id: &str) -> Result<BlockCondition, ApimError> {
        let row = sqlx::query("SELECT body FROM block_conditions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.am())
            .await?
            .ok_or_else(|| ApimError::NotFound(format!("block condition {id}")))?;
        from_row(&row, "body")
    }

    /// All block conditions.
    pub async fn list_block_conditions(&self) -> Result<Vec<BlockCondition>, ApimError> {
        let rows = sqlx::query("SELECT body FROM block_conditions ORDER BY id")
            .fetch_all(self.am())
            .await?;
        rows.iter().map(|r| from_row(r, "body")).collect()
    }

    /// Deletes a block condition.
    pub async fn delete_block_condition(&self, id: &str) -> Result<(), ApimError> {
        self.get_block_condition(id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM block_conditions WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::BlockConditionDelete(EntityRef {
            id: id.to_owned(),
        }));
        tx.commit().await?;
        Ok(())
    }

    /// Creates a gateway environment (unique name).
    pub async fn create_environment(&self, mut env: Environment) -> Result<Environment, ApimError> {
        env.validate()?;
        env.id = new_id();
        let mut tx = self.begin().await?;
        if sqlx::query("SELECT 1 FROM environments WHERE name = $1")
            .bind(&env.name)
            .fetch_optional(tx.conn())
            .await?
            .is_some()
        {
            return Err(ApimError::Conflict(format!(
                "an environment named '{}' already exists",
                env.name
            )));
        }
        sqlx::query("INSERT INTO environments (id, name, body) VALUES ($1, $2, $3)")
            .bind(&env.id)
            .bind(&env.name)
            .bind(to_json(&env)?)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(env)
    }

    /// All gateway environments.
    pub async fn list_environments(&self) -> Result<Vec<Environment>, ApimError> {
        let rows = sqlx::query("SELECT body FROM environments ORDER BY name")
            .fetch_all(self.am())
            .await?;
        rows.iter().map(|r| from_row(r, "body")).collect()
    }

    /// Deletes an environment nothing is deployed to.
    pub async fn delete_environment(&self, id: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT name FROM environments WHERE id = $1")
            .bind(id)
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| ApimError::NotFound(format!("environment {id}")))?;
        let name: String = row.try_get(0)?;
        if sqlx::query("SELECT 1 FROM api_deployments WHERE environment = $1")
            .bind(&name)
            .fetch_optional(tx.conn())
            .await?
            .is_some()
        {
            return Err(ApimError::Conflict(format!(
                "APIs are deployed to environment '{name}'; undeploy them first"
            )));
        }
        sqlx::query("DELETE FROM environments WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates or replaces a scope.
    pub async fn put_scope(&self, scope: Scope) -> Result<Scope, ApimError> {
        scope.validate()?;
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM scopes WHERE name = $1")
            .bind(&scope.name)
            .fetch_optional(tx.conn())
            .await?
            .is_some();
        if exists {
            sqlx::query("UPDATE scopes SET body = $1 WHERE name = $2")
                .bind(to_json(&scope)?)
                .bind(&scope.name)
                .execute(tx.conn())
                .await?;
            tx.emit(EventPayload::ScopeUpdate(scope.clone()));
        } else {
            sqlx::query("INSERT INTO scopes (name, body) VALUES ($1, $2)")
                .bind(&scope.name)
                .bind(to_json(&scope)?)
                .execute(tx.conn())
                .await?;
            tx.emit(EventPayload::ScopeCreate(scope.clone()));
        }
        tx.commit().await?;
        Ok(scope)
    }

    /// All scopes.
    pub async fn list_scopes(&self) -> Result<Vec<Scope>, ApimError> {
        let rows = sqlx::query("SELECT body FROM scopes ORDER BY name")
            .fetch_all(self.am())
            .await?;
        rows.iter().map(|r| from_row(r, "body")).collect()
    }

    /// Deletes a scope.
    pub async fn delete_scope(&self, name: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM scopes WHERE name = $1")
            .bind(name)
            .execute(tx.conn())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(ApimError::NotFound(format!("scope {name}")));
        }
        tx.emit(EventPayload::ScopeDelete(EntityRef {
            id: name.to_owned(),
        }));
        tx.commit().await?;
        Ok(())
    }
}

fn policy_id(p: &Policy) -> &str {
    match p {
        Policy::Subscription(x) => &x.policy_id,
        Policy::Application(x) => &x.policy_id,
        Policy::Advanced(x) => &x.policy_id,
        Policy::Custom(x) => &x.policy_id,
    }
}
