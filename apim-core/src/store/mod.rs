//! The store: one API over two sqlx backends, SQLite (embedded default) and PostgreSQL (shared
//! `apimgtdb` and `shareddb`, as in the seed deployment).
//!
//! Entities are stored as JSON documents (the WSO2 wire shape) next to the columns that are
//! queried or constrained (ids, names, context + version, owner, status), so one set of SQL
//! statements serves both backends through `sqlx::Any`.
//!
//! Every state change runs in a [`Tx`]; the events it [`Tx::emit`]s are written to the `events`
//! table (the outbox) in the same transaction at [`Tx::commit`], so a change and its event commit
//! or roll back together. Sequence numbers follow commit order: on PostgreSQL the outbox insert
//! takes a transaction-scoped advisory lock, on SQLite writers are serialised anyway.
//!
//! ```no_run
//! # async fn demo() -> Result<(), apim_core::ApimError> {
//! use apim_core::store::Store;
//! let store = Store::connect_url("sqlite://./apim-data/apim.db?mode=rwc", None, 5).await?;
//! store.seed_defaults(Some("admin-password")).await?;
//! let (apis, total) = store.list_apis(None, 25, 0).await?;
//! # let _ = (apis, total); Ok(()) }
//! ```

mod apis;
mod applications;
mod migrate;
mod oauth;
mod outbox;
mod passwords;
mod policies;
mod scopes;
mod seed;
mod users;

use std::sync::{Arc, Once, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Row};
use tokio::sync::{watch, Mutex, MutexGuard};

use crate::bus::InProcessBus;
use crate::config::{db_kind, redact, Config, DbKind};
use crate::event::{Event, EventPayload, Seq};
use crate::ApimError;

pub use apis::{LifecycleHistoryItem, MAX_REVISIONS};
pub use oauth::{OAuthClient, StoredToken};
pub use outbox::OutboxBus;
pub use passwords::{CredentialSnapshot, PasswordPolicy, PasswordStats};
pub use scopes::ScopeUse;
pub use seed::{default_policies, SeedReport};

/// Handle to the databases. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    am: AnyPool,
    shared: AnyPool,
    kind: DbKind,
    /// SQLite allows one writer; serialise writers in-process instead of failing with BUSY.
    write_gate: Option<Mutex<()>>,
    committed: watch::Sender<Seq>,
    relay: RwLock<Option<InProcessBus>>,
    /// apimgtdb URL (PostgreSQL LISTEN needs its own connection).
    am_url: String,
    /// Password checks: backoff, hashing pool, remembered successes.
    passwords: RwLock<Arc<passwords::PasswordGuard>>,
}

/// A write transaction on apimgtdb that collects events for the outbox.
pub struct Tx<'s> {
    tx: sqlx::Transaction<'static, Any>,
    events: Vec<EventPayload>,
    store: &'s Store,
    _gate: Option<MutexGuard<'s, ()>>,
}

fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

async fn open_pool(url: &str, max: u32) -> Result<(AnyPool, DbKind), ApimError> {
    install_drivers();
    let kind = db_kind(url).map_err(|m| ApimError::config("database.url", m))?;
    let mut opts = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(std::time::Duration::from_secs(10));
    if kind == DbKind::Sqlite {
        opts = opts.after_connect(|conn, _| {
            Box::pin(async move {
                for pragma in [
                    "PRAGMA journal_mode=WAL",
                    "PRAGMA busy_timeout=10000",
                    "PRAGMA foreign_keys=ON",
                    "PRAGMA synchronous=NORMAL",
                    // deleted and overwritten rows (old password hashes, a signing key sealed
                    // in place) do not linger in free space of the file
                    "PRAGMA secure_delete=ON",
                ] {
                    sqlx::query(pragma).execute(&mut *conn).await?;
                }
                Ok(())
            })
        });
    }
    let pool = opts.connect(url).await.map_err(|e| {
        ApimError::config(
            "database.url",
            format!("cannot connect to {}: {e}", redact(url)),
        )
    })?;
    Ok((pool, kind))
}

/// Creates the schema an earlier version made: only migrations below `am_below` /
/// `shared_below`, in apimgtdb at `am_url` and shareddb at `shared_url` (the same database when
/// `None`). Returns pools `(apimgtdb, shareddb)` for writing rows the way that version did.
#[cfg(feature = "test-util")]
pub(crate) async fn previous_schema(
    am_url: &str,
    shared_url: Option<&str>,
    am_below: i64,
    shared_below: i64,
) -> Result<(AnyPool, AnyPool), ApimError> {
    let (am, kind) = open_pool(am_url, 2).await?;
    let shared = match shared_url {
        Some(u) => open_pool(u, 2).await?.0,
        None => am.clone(),
    };
    migrate::run_below(&am, kind, &shared, am_below, shared_below).await?;
    Ok((am, shared))
}

impl Store {
    /// Opens the databases named by `config` (SQLite under the data dir by default, creating the
    /// directory), and applies migrations.
    pub async fn connect(config: &Config) -> Result<Store, ApimError> {
        let am = config.apimgt_url();
        let shared = config.shared_url();
        if db_kind(&am) == Ok(DbKind::Sqlite) {
            // owner-only: the database holds password hashes and (sealed) signing keys
            config.secure_data_dir()?;
        }
        for url in [&am, &shared] {
            crate::config::precreate_sqlite_file(url).map_err(|e| {
                ApimError::config(
                    "database.url",
                    format!("cannot create the SQLite file: {e}"),
                )
            })?;
        }
        let shared = (shared != am).then_some(shared);
        let store =
            Self::connect_url(&am, shared.as_deref(), config.database.max_connections).await?;
        store.set_password_policy(config.passwords.policy())?;
        Ok(store)
    }

    /// Opens apimgtdb at `apimgt_url` and shareddb at `shared_url` (the same database when
    /// `None`), and applies migrations.
    pub async fn connect_url(
        apimgt_url: &str,
        shared_url: Option<&str>,
        max_connections: u32,
    ) -> Result<Store, ApimError> {
        let (am, kind) = open_pool(apimgt_url, max_connections).await?;
        let shared = match shared_url {
            Some(u) => open_pool(u, max_connections).await?.0,
            None => am.clone(),
        };
        migrate::run(
            &am,
            kind,
            &shared,
            shared_url
                .map(|u| db_kind(u).unwrap_or(kind))
                .unwrap_or(kind),
        )
        .await?;
        let store = Store {
            inner: Arc::new(Inner {
                am,
                shared,
                kind,
                write_gate: (kind == DbKind::Sqlite).then(|| Mutex::new(())),
                committed: watch::channel(Seq(0)).0,
                relay: RwLock::new(None),
                am_url: apimgt_url.to_owned(),
                passwords: RwLock::new(Arc::new(passwords::PasswordGuard::new(
                    PasswordPolicy::default(),
                ))),
            }),
        };
        let last = store.last_seq().await?;
        store.inner.committed.send_replace(last);
        Ok(store)
    }

    /// Replaces the password policy (hashing pool, backoff, cache); failure counts and
    /// remembered credentials start over.
    pub fn set_password_policy(&self, policy: PasswordPolicy) -> Result<(), ApimError> {
        policy.validate()?;
        *self
            .inner
            .passwords
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(passwords::PasswordGuard::new(policy));
        Ok(())
    }

    /// The password policy in force.
    pub fn password_policy(&self) -> PasswordPolicy {
        self.passwords().policy().clone()
    }

    /// Counters of the password checks.
    pub fn password_stats(&self) -> PasswordStats {
        self.passwords().stats()
    }

    /// Password checks holding or waiting for a hashing slot.
    pub fn password_checks_queued(&self) -> usize {
        self.passwords().queued()
    }

    /// Runs CPU-heavy credential work `f` in the bounded password-hashing pool (a blocking
    /// thread, once a slot is free; 503 when the pool and its queue are full).
    pub async fn in_password_pool<T, F>(&self, f: F) -> Result<T, ApimError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.passwords().run(f).await
    }

    pub(crate) fn passwords(&self) -> Arc<passwords::PasswordGuard> {
        self.inner
            .passwords
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Which backend this is.
    pub fn kind(&self) -> DbKind {
        self.inner.kind
    }

    pub(crate) fn am(&self) -> &AnyPool {
        &self.inner.am
    }

    pub(crate) fn shared(&self) -> &AnyPool {
        &self.inner.shared
    }

    /// Sends every committed event to `bus` too (all-in-one: the in-process bus carries the
    /// outbox's sequence numbers, so a gateway can switch between them).
    pub fn relay_to(&self, bus: InProcessBus) {
        *self.inner.relay.write().unwrap_or_else(|p| p.into_inner()) = Some(bus);
    }

    /// apimgtdb URL.
    pub(crate) fn am_url(&self) -> &str {
        &self.inner.am_url
    }

    /// Raises the known last sequence (a commit seen by another process).
    pub(crate) fn note_committed(&self, seq: Seq) {
        self.inner.committed.send_if_modified(|s| {
            let newer = seq > *s;
            if newer {
                *s = seq;
            }
            newer
        });
    }

    /// Watch of the last sequence committed through this handle (wakes outbox subscribers).
    pub fn committed(&self) -> watch::Receiver<Seq> {
        self.inner.committed.subscribe()
    }

    /// Begins a write transaction on apimgtdb.
    pub async fn begin(&self) -> Result<Tx<'_>, ApimError> {
        let gate = match &self.inner.write_gate {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let tx = self.inner.am.begin().await?;
        Ok(Tx {
            tx,
            events: Vec::new(),
            store: self,
            _gate: gate,
        })
    }

    /// Serialises a write on shareddb with the SQLite writer gate.
    pub(crate) async fn shared_write_gate(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.inner.write_gate {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.inner.am.close().await;
        self.inner.shared.close().await;
    }
}

impl Tx<'_> {
    /// The connection, for statements in this transaction.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Queues an event; it is written to the outbox at commit, in this transaction.
    pub fn emit(&mut self, payload: EventPayload) {
        self.events.push(payload);
    }

    /// Writes the queued events to the outbox and commits. Returns the events with their
    /// sequence numbers.
    pub async fn commit(mut self) -> Result<Vec<Event>, ApimError> {
        let mut out = Vec::with_capacity(self.events.len());
        if !self.events.is_empty() {
            if self.store.inner.kind == DbKind::Postgres {
                // sequence order == commit order: one outbox writer at a time
                sqlx::query("SELECT pg_advisory_xact_lock(7243107)")
                    .execute(&mut *self.tx)
                    .await?;
            }
            let now = crate::time::now_ms();
            for payload in std::mem::take(&mut self.events) {
                let body = serde_json::to_string(&payload)?;
                let row = sqlx::query(
                    "INSERT INTO events (type, body, created_at) VALUES ($1, $2, $3) RETURNING seq",
                )
                .bind(payload.type_name())
                .bind(body)
                .bind(now)
                .fetch_one(&mut *self.tx)
                .await?;
                let seq: i64 = row.try_get(0)?;
                out.push(Event {
                    seq: Seq(seq as u64),
                    time: now,
                    payload,
                });
            }
        }
        self.tx.commit().await?;
        if let Some(last) = out.last() {
            let relay = self
                .store
                .inner
                .relay
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(bus) = relay {
                for e in &out {
                    bus.relay(e.clone());
                }
            }
            self.store.inner.committed.send_if_modified(|s| {
                let newer = last.seq > *s;
                if newer {
                    *s = last.seq;
                }
                newer
            });
        }
        Ok(out)
    }
}

/// Serialises a document column.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String, ApimError> {
    Ok(serde_json::to_string(v)?)
}

/// Reads a document column.
pub(crate) fn from_row<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T, ApimError> {
    let body: String = row.try_get(col)?;
    serde_json::from_str(&body)
        .map_err(|e| ApimError::Storage(format!("corrupt {col} document: {e}")))
}

/// Clamps paging parameters.
pub(crate) fn page(limit: i64, offset: i64) -> (i64, i64) {
    (limit.clamp(1, 1000), offset.max(0))
}
