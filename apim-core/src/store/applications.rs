//! Applications, their key mappings, and subscriptions.

use sqlx::Row;

use super::apis::{load_api, policy_exists};
use super::{from_row, page, to_json, Store, Tx};
use crate::crypto::new_id;
use crate::event::{EntityRef, EventPayload, PolicyKind, SubscriptionChange};
use crate::lifecycle::LifecycleState;
use crate::model::{Application, KeyMapping, KeyType, Subscription, SubscriptionStatus};
use crate::time::now_ms;
use crate::ApimError;

impl Store {
    /// Creates an application owned by `owner` (name unique per owner; tier must exist).
    pub async fn create_application(
        &self,
        mut app: Application,
        owner: &str,
    ) -> Result<Application, ApimError> {
        app.validate()?;
        app.application_id = new_id();
        app.owner = owner.to_owned();
        app.created_time = now_ms();
        app.subscription_count = 0;
        app.status = "APPROVED".into();
        let owner_id = self.owner_id_for(owner).await?;
        let mut tx = self.begin().await?;
        check_app_tier(&mut tx, &app).await?;
        check_app_name(&mut tx, &app, None).await?;
        sqlx::query("INSERT INTO applications (id, name, owner, body, created_at, owner_id) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&app.application_id)
            .bind(&app.name)
            .bind(owner)
            .bind(to_json(&app)?)
            .bind(app.created_time)
            .bind(owner_id)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::ApplicationCreate(app.clone()));
        tx.commit().await?;
        Ok(app)
    }

    /// An application by id, with its subscription count.
    pub async fn get_application(&self, id: &str) -> Result<Application, ApimError> {
        let row = sqlx::query(
            "SELECT a.body, (SELECT COUNT(*) FROM subscriptions s WHERE s.application_id = a.id) AS subs FROM applications a WHERE a.id = $1",
        )
        .bind(id)
        .fetch_optional(self.am())
        .await?
        .ok_or_else(|| ApimError::NotFound(format!("application {id}")))?;
        let mut app: Application = from_row(&row, "body")?;
        app.subscription_count = row.try_get::<i64, _>("subs")? as u32;
        Ok(app)
    }

    /// Whether application `id` belongs to the account with id `user_id` (not merely to a user
    /// of the same name).
    pub async fn application_owned_by(&self, id: &str, user_id: &str) -> Result<bool, ApimError> {
        Ok(sqlx::query(
            "SELECT 1 FROM applications WHERE id = $1 AND COALESCE(owner_id, 'u-' || owner) = $2",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(self.am())
        .await?
        .is_some())
    }

    /// Applications of the account with id `user_id`, by name, paged; with the total.
    pub async fn list_user_applications(
        &self,
        user_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Application>, i64), ApimError> {
        let (limit, offset) = page(limit, offset);
        let rows = sqlx::query(
            "SELECT id FROM applications WHERE COALESCE(owner_id, 'u-' || owner) = $1 ORDER BY name LIMIT $2 OFFSET $3",
        )
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.am())
        .await?;
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) FROM applications WHERE COALESCE(owner_id, 'u-' || owner) = $1",
        )
        .bind(user_id)
        .fetch_one(self.am())
        .await?
        .try_get(0)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.get_application(&r.try_get::<String, _>(0)?).await?);
        }
        Ok((out, total))
    }

    /// Applications of `owner` (all when `None`), by name, paged; with the total.
    pub async fn list_applications(
        &self,
        owner: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Application>, i64), ApimError> {
        let (limit, offset) = page(limit, offset);
        let (rows, total) = match owner {
            Some(o) => (
                sqlx::query(
                    "SELECT id FROM applications WHERE owner = $1 ORDER BY name LIMIT $2 OFFSET $3",
                )
                .bind(o)
                .bind(limit)
                .bind(offset)
                .fetch_all(self.am())
                .await?,
                sqlx::query("SELECT COUNT(*) FROM applications WHERE owner = $1")
                    .bind(o)
                    .fetch_one(self.am())
                    .await?
                    .try_get(0)?,
            ),
            None => (
                sqlx::query("SELECT id FROM applications ORDER BY name LIMIT $1 OFFSET $2")
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(self.am())
                    .await?,
                sqlx::query("SELECT COUNT(*) FROM applications")
                    .fetch_one(self.am())
                    .await?
                    .try_get(0)?,
            ),
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.get_application(&r.try_get::<String, _>(0)?).await?);
        }
        Ok((out, total))
    }

    /// Updates name, tier, description, token type and attributes.
    pub async fn update_application(
        &self,
        id: &str,
        mut app: Application,
    ) -> Result<Application, ApimError> {
        app.validate()?;
        let mut tx = self.begin().await?;
        let cur = load_application(&mut tx, id).await?;
        app.application_id = cur.application_id;
        app.owner = cur.owner;
        app.created_time = cur.created_time;
        app.status = cur.status;
        check_app_tier(&mut tx, &app).await?;
        check_app_name(&mut tx, &app, Some(id)).await?;
        sqlx::query("UPDATE applications SET name = $1, body = $2 WHERE id = $3")
            .bind(&app.name)
            .bind(to_json(&app)?)
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::ApplicationUpdate(app.clone()));
        tx.commit().await?;
        Ok(app)
    }

    /// Deletes an application with its subscriptions and key mappings.
    pub async fn delete_application(&self, id: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        load_application(&mut tx, id).await?;
        let clients =
            sqlx::query("SELECT consumer_key FROM key_mappings WHERE application_id = $1")
                .bind(id)
                .fetch_all(tx.conn())
                .await?;
        for c in clients {
            let ck: String = c.try_get(0)?;
            sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
                .bind(&ck)
                .execute(tx.conn())
                .await?;
            Store::revoke_client_tokens_in(&mut tx, &ck).await?;
        }
        sqlx::query("DELETE FROM applications WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::ApplicationDelete(EntityRef {
            id: id.to_owned(),
        }));
        tx.commit().await?;
        Ok(())
    }

    /// Records the OAuth client of an application for a key type (one per type).
    pub async fn add_key_mapping(
        &self,
        application_id: &str,
        key_type: KeyType,
        consumer_key: &str,
    ) -> Result<KeyMapping, ApimError> {
        let mut tx = self.begin().await?;
        load_application(&mut tx, application_id).await?;
        let km = KeyMapping {
            key_mapping_id: new_id(),
            application_id: application_id.to_owned(),
            key_type,
            consumer_key: consumer_key.to_owned(),
            key_manager: "Resident Key Manager".into(),
        };
        let dup =
            sqlx::query("SELECT 1 FROM key_mappings WHERE application_id = $1 AND key_type = $2")
                .bind(application_id)
                .bind(key_type.as_str())
                .fetch_optional(tx.conn())
                .await?;
        if dup.is_some() {
            return Err(ApimError::Conflict(format!(
                "application {application_id} already has {} keys",
                key_type.as_str()
            )));
        }
        sqlx::query("INSERT INTO key_mappings (id, application_id, key_type, consumer_key, key_manager) VALUES ($1, $2, $3, $4, $5)")
            .bind(&km.key_mapping_id)
            .bind(application_id)
            .bind(key_type.as_str())
            .bind(consumer_key)
            .bind(&km.key_manager)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::ApplicationRegistrationCreate(km.clone()));
        tx.commit().await?;
        Ok(km)
    }

    /// Key mappings of an application.
    pub async fn key_mappings(&self, application_id: &str) -> Result<Vec<KeyMapping>, ApimError> {
        let rows = sqlx::query("SELECT id, key_type, consumer_key, key_manager FROM key_mappings WHERE application_id = $1 ORDER BY key_type")
            .bind(application_id)
            .fetch_all(self.am())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyMapping {
                    key_mapping_id: r.try_get(0)?,
                    application_id: application_id.to_owned(),
                    key_type: KeyType::parse(&r.try_get::<String, _>(1)?)?,
                    consumer_key: r.try_get(2)?,
                    key_manager: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// The key mapping of an OAuth client id.
    pub async fn key_mapping_by_consumer_key(
        &self,
        consumer_key: &str,
    ) -> Result<Option<KeyMapping>, ApimError> {
        let row = sqlx::query("SELECT application_id FROM key_mappings WHERE consumer_key = $1")
            .bind(consumer_key)
            .fetch_optional(self.am())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let app: String = row.try_get(0)?;
        Ok(self
            .key_mappings(&app)
            .await?
            .into_iter()
            .find(|k| k.consumer_key == consumer_key))
    }

    /// Removes an application's keys of a type (and the OAuth client).
    pub async fn remove_key_mapping(
        &self,
        application_id: &str,
        key_type: KeyType,
    ) -> Result<(), ApimError> {
        let km = self
            .key_mappings(application_id)
            .await?
            .into_iter()
            .find(|k| k.key_type == key_type)
            .ok_or_else(|| {
                ApimError::NotFound(format!(
                    "{} keys of application {application_id}",
                    key_type.as_str()
                ))
            })?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM key_mappings WHERE id = $1")
            .bind(&km.key_mapping_id)
            .execute(tx.conn())
            .await?;
        sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(&km.consumer_key)
            .execute(tx.conn())
            .await?;
        Store::revoke_client_tokens_in(&mut tx, &km.consumer_key).await?;
        tx.emit(EventPayload::RemoveApplicationKeymapping(km));
        tx.commit().await?;
        Ok(())
    }

    /// Subscribes an application to an API at a tier the API offers. The API must be PUBLISHED
    /// or PROTOTYPED; with approval required the subscription starts ON_HOLD.
    pub async fn create_subscription(
        &self,
        application_id: &str,
        api_id: &str,
        tier: &str,
    ) -> Result<Subscription, ApimError> {
        let mut tx = self.begin().await?;
        load_application(&mut tx, application_id).await?;
        let api = match load_api(&mut tx, api_id).await {
            Err(ApimError::NotFound(_)) => {
                return Err(ApimError::validation(
                    "apiId",
                    format!("API {api_id} does not exist"),
                ))
            }
            other => other?,
        };
        if !matches!(
            api.life_cycle_status,
            LifecycleState::Published | LifecycleState::Prototyped
        ) {
            return Err(ApimError::Conflict(format!(
                "API {api_id} is {}; only PUBLISHED or PROTOTYPED APIs accept subscriptions",
                api.life_cycle_status.as_str()
            )));
        }
        if !api.policies.iter().any(|p| p == tier) {
            return Err(ApimError::validation(
                "throttlingPolicy",
                format!(
                    "tier '{tier}' is not offered by this API; offered: {:?}",
                    api.policies
                ),
            ));
        }
        if !policy_exists(&mut tx, PolicyKind::Subscription, tier).await? {
            return Err(ApimError::validation(
                "throttlingPolicy",
                format!("tier '{tier}' does not exist"),
            ));
        }
        let dup =
            sqlx::query("SELECT 1 FROM subscriptions WHERE application_id = $1 AND api_id = $2")
                .bind(application_id)
                .bind(api_id)
                .fetch_optional(tx.conn())
                .await?;
        if dup.is_some() {
            return Err(ApimError::Conflict(format!(
                "application {application_id} is already subscribed to API {api_id}"
            )));
        }
        // a block the publisher set on an earlier subscription of this pair comes back with it
        let block = load_block(&mut tx, application_id, api_id).await?;
        let sub = Subscription {
            subscription_id: new_id(),
            application_id: application_id.to_owned(),
            api_id: api_id.to_owned(),
            throttling_policy: tier.to_owned(),
            requested_throttling_policy: None,
            status: match block {
                Some(blocked) => blocked,
                None if api.subscription_approval_required => SubscriptionStatus::OnHold,
                None => SubscriptionStatus::Unblocked,
            },
            created_time: now_ms(),
        };
        insert_subscription(&mut tx, &sub).await?;
        if block.is_some() {
            // the subscription row carries the block again
            delete_block(&mut tx, application_id, api_id).await?;
        }
        tx.emit(EventPayload::SubscriptionsCreate(SubscriptionChange {
            subscription: sub.clone(),
            api_context: api.context,
            api_version: api.version,
        }));
        tx.commit().await?;
        Ok(sub)
    }

    /// A subscription by id.
    pub async fn get_subscription(&self, id: &str) -> Result<Subscription, ApimError> {
        let row = sqlx::query("SELECT body FROM subscriptions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.am())
            .await?
            .ok_or_else(|| ApimError::NotFound(format!("subscription {id}")))?;
        from_row(&row, "body")
    }

    /// Subscriptions of an application or of an API.
    pub async fn list_subscriptions(
        &self,
        application_id: Option<&str>,
        api_id: Option<&str>,
    ) -> Result<Vec<Subscription>, ApimError> {
        let rows = sqlx::query(
            "SELECT body FROM subscriptions WHERE ($1 = '' OR application_id = $1) AND ($2 = '' OR api_id = $2) ORDER BY created_at, id",
        )
        .bind(application_id.unwrap_or(""))
        .bind(api_id.unwrap_or(""))
        .fetch_all(self.am())
        .await?;
        rows.iter().map(|r| from_row(r, "body")).collect()
    }

    /// Sets a subscription's status (block / unblock / approve / reject).
    pub async fn set_subscription_status(
        &self,
        id: &str,
        status: SubscriptionStatus,
    ) -> Result<Subscription, ApimError> {
        let mut tx = self.begin().await?;
        let mut sub = load_subscription(&mut tx, id).await?;
        sub.status = status;
        sqlx::query("UPDATE subscriptions SET status = $1, body = $2 WHERE id = $3")
            .bind(status_str(status))
            .bind(to_json(&sub)?)
            .bind(id)
            .execute(tx.conn())
            .await?;
        let api = load_api(&mut tx, &sub.api_id).await?;
        tx.emit(EventPayload::SubscriptionsUpdate(SubscriptionChange {
            subscription: sub.clone(),
            api_context: api.context,
            api_version: api.version,
        }));
        tx.commit().await?;
        Ok(sub)
    }

    /// Deletes a subscription. A BLOCKED or PROD_ONLY_BLOCKED one leaves its block behind:
    /// subscribing the same application to the same API again restores it, so a subscriber
    /// cannot lift a publisher's block by unsubscribing and subscribing again.
    pub async fn delete_subscription(&self, id: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let sub = load_subscription(&mut tx, id).await?;
        let api = load_api(&mut tx, &sub.api_id).await?;
        sqlx::query("DELETE FROM subscriptions WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        if matches!(
            sub.status,
            SubscriptionStatus::Blocked | SubscriptionStatus::ProdOnlyBlocked
        ) {
            delete_block(&mut tx, &sub.application_id, &sub.api_id).await?;
            sqlx::query("INSERT INTO subscription_blocks (application_id, api_id, status, blocked_at) VALUES ($1, $2, $3, $4)")
                .bind(&sub.application_id)
                .bind(&sub.api_id)
                .bind(status_str(sub.status))
                .bind(now_ms())
                .execute(tx.conn())
                .await?;
        }
        tx.emit(EventPayload::SubscriptionsDelete(SubscriptionChange {
            subscription: sub,
            api_context: api.context,
            api_version: api.version,
        }));
        tx.commit().await?;
        Ok(())
    }
}

fn status_str(s: SubscriptionStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The block recorded for (application, API) when a blocked subscription was deleted.
async fn load_block(
    tx: &mut Tx<'_>,
    application_id: &str,
    api_id: &str,
) -> Result<Option<SubscriptionStatus>, ApimError> {
    let row = sqlx::query(
        "SELECT status FROM subscription_blocks WHERE application_id = $1 AND api_id = $2",
    )
    .bind(application_id)
    .bind(api_id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get(0)?;
    Ok(Some(
        serde_json::from_value(serde_json::Value::String(status))
            .unwrap_or(SubscriptionStatus::Blocked),
    ))
}

async fn delete_block(
    tx: &mut Tx<'_>,
    application_id: &str,
    api_id: &str,
) -> Result<(), ApimError> {
    sqlx::query("DELETE FROM subscription_blocks WHERE application_id = $1 AND api_id = $2")
        .bind(application_id)
        .bind(api_id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

async fn insert_subscription(tx: &mut Tx<'_>, sub: &Subscription) -> Result<(), ApimError> {
    sqlx::query("INSERT INTO subscriptions (id, application_id, api_id, status, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&sub.subscription_id)
        .bind(&sub.application_id)
        .bind(&sub.api_id)
        .bind(status_str(sub.status))
        .bind(to_json(sub)?)
        .bind(sub.created_time)
        .execute(tx.conn())
        .await?;
    Ok(())
}

async fn load_subscription(tx: &mut Tx<'_>, id: &str) -> Result<Subscription, ApimError> {
    let row = sqlx::query("SELECT body FROM subscriptions WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApimError::NotFound(format!("subscription {id}")))?;
    from_row(&row, "body")
}

async fn load_application(tx: &mut Tx<'_>, id: &str) -> Result<Application, ApimError> {
    let row = sqlx::query("SELECT body FROM applications WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApimError::NotFound(format!("application {id}")))?;
    from_row(&row, "body")
}

async fn check_app_tier(tx: &mut Tx<'_>, app: &Application) -> Result<(), ApimError> {
    if !policy_exists(tx, PolicyKind::Application, &app.throttling_policy).await? {
        return Err(ApimError::validation(
            "throttlingPolicy",
            format!(
                "application tier '{}' does not exist",
                app.throttling_policy
            ),
        ));
    }
    Ok(())
}

async fn check_app_name(
    tx: &mut Tx<'_>,
    app: &Application,
    except: Option<&str>,
) -> Result<(), ApimError> {
    let row = sqlx::query("SELECT id FROM applications WHERE owner = $1 AND name = $2")
        .bind(&app.owner)
        .bind(&app.name)
        .fetch_optional(tx.conn())
        .await?;
    if let Some(r) = row {
        let id: String = r.try_get(0)?;
        if Some(id.as_str()) != except {
            return Err(ApimError::Conflict(format!(
                "an application named '{}' already exists",
                app.name
            )));
        }
    }
    Ok(())
}
