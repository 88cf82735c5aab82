//! The outbox: reading events after a sequence number, the store-backed [`EventBus`], and the
//! gateway snapshot that says which sequence it reflects.

use std::time::Duration;

use sqlx::Row;

use super::Store;
use crate::artifacts::GatewayData;
use crate::bus::{EventBus, EventStream};
use crate::config::DbKind;
use crate::event::{Event, EventPayload, Policy, Seq, SubscriptionChange};
use crate::model::{
    Application, BlockCondition, Environment, KeyMapping, KeyType, Scope, Subscription,
};
use crate::ApimError;

impl Store {
    /// Up to `limit` events with a sequence number greater than `after`, in order.
    pub async fn events_after(&self, after: Seq, limit: i64) -> Result<Vec<Event>, ApimError> {
        let rows = sqlx::query(
            "SELECT seq, body, created_at FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after.0 as i64)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.am())
        .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get(0)?;
                let body: String = r.try_get(1)?;
                let payload: EventPayload = serde_json::from_str(&body)
                    .map_err(|e| ApimError::Storage(format!("corrupt event {seq}: {e}")))?;
                Ok(Event {
                    seq: Seq(seq as u64),
                    time: r.try_get(2)?,
                    payload,
                })
            })
            .collect()
    }

    /// The last committed sequence number (0 when there are no events).
    pub async fn last_seq(&self) -> Result<Seq, ApimError> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(self.am())
            .await?;
        Ok(Seq(row.try_get::<i64, _>(0)? as u64))
    }

    /// Everything a gateway needs, read in one transaction together with the last sequence
    /// number, so `follow after data.seq` misses nothing and repeats nothing.
    pub async fn gateway_data(&self) -> Result<GatewayData, ApimError> {
        let mut tx = self.am().begin().await?;
        if self.kind() == DbKind::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let seq: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let deployments = self.gateway_deployments_in(&mut tx).await?;
        let mut applications = Vec::new();
        for r in sqlx::query("SELECT body FROM applications ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
        {
            applications.push(super::from_row::<Application>(&r, "body")?);
        }
        let mut key_mappings = Vec::new();
        for r in sqlx::query("SELECT id, application_id, key_type, consumer_key, key_manager FROM key_mappings ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
        {
            key_mappings.push(KeyMapping {
                key_mapping_id: r.try_get(0)?,
                application_id: r.try_get(1)?,
                key_type: KeyType::parse(&r.try_get::<String, _>(2)?)?,
                consumer_key: r.try_get(3)?,
                key_manager: r.try_get(4)?,
            });
        }
        let mut subscriptions = Vec::new();
        for r in sqlx::query("SELECT s.body, a.context, a.version FROM subscriptions s JOIN apis a ON a.id = s.api_id ORDER BY s.id")
            .fetch_all(&mut *tx)
            .await?
        {
            subscriptions.push(SubscriptionChange {
                subscription: super::from_row::<Subscription>(&r, "body")?,
                api_context: r.try_get(1)?,
                api_version: r.try_get(2)?,
            });
        }
        let mut policies = Vec::new();
        for r in sqlx::query("SELECT body FROM policies ORDER BY kind, name")
            .fetch_all(&mut *tx)
            .await?
        {
            policies.push(super::from_row::<Policy>(&r, "body")?);
        }
        let mut block_conditions = Vec::new();
        for r in sqlx::query("SELECT body FROM block_conditions ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
        {
            block_conditions.push(super::from_row::<BlockCondition>(&r, "body")?);
        }
        let mut scopes = Vec::new();
        for r in sqlx::query("SELECT body FROM scopes ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
        {
            scopes.push(super::from_row::<Scope>(&r, "body")?);
        }
        let revoked_tokens = self.live_revocations_in(&mut tx).await?;
        let mut environments = Vec::new();
        for r in sqlx::query("SELECT body FROM environments ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
        {
            environments.push(super::from_row::<Environment>(&r, "body")?);
        }
        tx.commit().await?;
        Ok(GatewayData {
            seq: Seq(seq as u64),
            deployments,
            applications,
            key_mappings,
            subscriptions,
            policies,
            block_conditions,
            revoked_tokens,
            scopes,
            environments,
        })
    }
}

/// An [`EventBus`] over the store's outbox. Subscribers read rows after their position; they are
/// woken at once by commits made through the same [`Store`] handle and poll every
/// `poll_interval` for commits made by other processes.
#[derive(Debug, Clone)]
pub struct OutboxBus {
    store: Store,
    poll_interval: Duration,
}

impl OutboxBus {
    /// A bus over `store`, polling every `poll_interval` for other processes' commits. On
    /// PostgreSQL it also LISTENs on `apim_events` (a task on the current tokio runtime), so
    /// commits by other processes wake subscribers at once; polling stays as the safety net.
    pub fn new(store: Store, poll_interval: Duration) -> Self {
        if store.kind() == DbKind::Postgres {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(listen(store.clone()));
            }
        }
        OutboxBus {
            store,
            poll_interval,
        }
    }
}

#[async_trait::async_trait]
impl EventBus for OutboxBus {
    async fn publish(&self, payload: EventPayload) -> Result<Seq, ApimError> {
        let mut tx = self.store.begin().await?;
        tx.emit(payload);
        let events = tx.commit().await?;
        Ok(events.last().map_or(Seq(0), |e| e.seq))
    }

    fn subscribe(&self, after: Seq) -> EventStream {
        let store = self.store.clone();
        let poll = self.poll_interval;
        let rx = store.committed();
        let state = (store, rx, after, std::collections::VecDeque::<Event>::new());
        Box::pin(futures_util::stream::unfold(
            state,
            move |(store, mut rx, mut cursor, mut buf)| async move {
                loop {
                    if let Some(e) = buf.pop_front() {
                        cursor = e.seq;
                        return Some((Ok(e), (store, rx, cursor, buf)));
                    }
                    rx.borrow_and_update();
                    match store.events_after(cursor, 500).await {
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox read failed; retrying");
                            tokio::time::sleep(poll).await;
                        }
                        Ok(events) if !events.is_empty() => buf.extend(events),
                        Ok(_) => {
                            let _ = tokio::time::timeout(poll, rx.changed()).await;
                        }
                    }
                }
            },
        ))
    }

    async fn last_seq(&self) -> Result<Seq, ApimError> {
        self.store.last_seq().await
    }
}

/// Follows `LISTEN apim_events` and raises the store's committed watch; reconnects with backoff.
async fn listen(store: Store) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match sqlx::postgres::PgListener::connect(store.am_url()).await {
            Ok(mut l) => {
                if l.listen("apim_events").await.is_ok() {
                    backoff = Duration::from_millis(200);
                    while let Ok(n) = l.recv().await {
                        if let Ok(seq) = n.payload().parse::<u64>() {
                            store.note_committed(Seq(seq));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "outbox LISTEN connection failed; polling meanwhile")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
