//! Schema migrations for both backends, applied at start with sqlx's migrator (embedded SQL;
//! apimgtdb and shareddb keep separate version ranges so they may share one database).

use std::borrow::Cow;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyPool;

use crate::config::DbKind;
use crate::ApimError;

#[derive(Debug)]
struct Embedded(Vec<Migration>);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> futures_core::future::BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        Cow::Borrowed(name),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        false,
    )
}

fn apimgt(kind: DbKind) -> Vec<Migration> {
    vec![
        migration(
            1,
            "apimgt tables",
            include_str!("../../migrations/common.sql"),
        ),
        match kind {
            DbKind::Sqlite => migration(
                2,
                "events outbox",
                include_str!("../../migrations/sqlite/0001_events.sql"),
            ),
            DbKind::Postgres => migration(
                2,
                "events outbox",
                include_str!("../../migrations/postgres/0001_events.sql"),
            ),
        },
        migration(
            10,
            "owner ids",
            include_str!("../../migrations/0010_owner_ids.sql"),
        ),
        match kind {
            DbKind::Sqlite => migration(
                11,
                "token users",
                include_str!("../../migrations/sqlite/0011_token_users.sql"),
            ),
            DbKind::Postgres => migration(
                11,
                "token users",
                include_str!("../../migrations/postgres/0011_token_users.sql"),
            ),
        },
        migration(
            20,
            "scope definitions, tokens by client",
            include_str!("../../migrations/0020_scopes.sql"),
        ),
        migration(
            40,
            "subscription blocks",
            include_str!("../../migrations/0040_subscription_blocks.sql"),
        ),
    ]
}

fn shared() -> Vec<Migration> {
    vec![
        migration(
            1001,
            "shared tables",
            include_str!("../../migrations/shared.sql"),
        ),
        migration(
            1010,
            "user ids",
            include_str!("../../migrations/shared_1010_user_ids.sql"),
        ),
    ]
}

async fn apply(pool: &AnyPool, migrations: Vec<Migration>, what: &str) -> Result<(), ApimError> {
    let mut m = Migrator::new(Embedded(migrations))
        .await
        .map_err(|e| ApimError::Storage(format!("{what} migrations: {e}")))?;
    m.set_ignore_missing(true);
    m.run(pool)
        .await
        .map_err(|e| ApimError::Storage(format!("{what} migrations: {e}")))
}

/// Applies only the migrations below `am_below` / `shared_below`: the schema an earlier
/// version made (tests of upgrades).
#[cfg(feature = "test-util")]
pub(super) async fn run_below(
    am: &AnyPool,
    am_kind: DbKind,
    shared_pool: &AnyPool,
    am_below: i64,
    shared_below: i64,
) -> Result<(), ApimError> {
    let old = |v: Vec<Migration>, below: i64| {
        v.into_iter()
            .filter(|m| m.version < below)
            .collect::<Vec<_>>()
    };
    apply(am, old(apimgt(am_kind), am_below), "apimgtdb").await?;
    apply(shared_pool, old(shared(), shared_below), "shareddb").await
}

pub(super) async fn run(
    am: &AnyPool,
    am_kind: DbKind,
    shared_pool: &AnyPool,
    _shared_kind: DbKind,
) -> Result<(), ApimError> {
    apply(am, apimgt(am_kind), "apimgtdb").await?;
    apply(shared_pool, shared(), "shareddb").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A database the previous version made (migrations before 20: shared scopes without ids)
    /// opens with this one, and its scope, tokens and APIs keep working.
    async fn upgrade(url: &str) {
        let (pool, kind) = super::super::open_pool(url, 2).await.expect("pool");
        let old: Vec<Migration> = apimgt(kind)
            .into_iter()
            .filter(|m| m.version < 20)
            .collect();
        apply(&pool, old, "previous apimgtdb")
            .await
            .expect("old schema");
        apply(&pool, shared(), "shareddb")
            .await
            .expect("old shared schema");
        sqlx::query("INSERT INTO scopes (name, body) VALUES ($1, $2)")
            .bind("read:orders")
            .bind(r#"{"name":"read:orders","bindings":["publisher"]}"#)
            .execute(&pool)
            .await
            .expect("old scope row");
        pool.close().await;

        let store = Store::connect_url(url, None, 2)
            .await
            .expect("new version opens it");
        let scopes = store.list_shared_scopes().await.expect("list");
        assert_eq!(scopes.len(), 1);
        assert_eq!(scopes[0].id, "read:orders");
        assert_eq!(scopes[0].bindings, ["publisher"]);
        let defs = store
            .scope_definitions(&["read:orders"])
            .await
            .expect("definitions");
        assert_eq!(defs["read:orders"].len(), 1);
        store
            .delete_shared_scope("read:orders")
            .await
            .expect("delete by its id");
        assert!(!store
            .scope_name_exists("read:orders")
            .await
            .expect("exists"));
    }

    #[tokio::test]
    async fn scopes_of_the_previous_version_on_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("apim.db").display());
        upgrade(&url).await;
    }

    #[tokio::test]
    async fn scopes_of_the_previous_version_on_postgres() {
        let Ok(base) = std::env::var("APIM_TEST_POSTGRES_URL") else {
            eprintln!("APIM_TEST_POSTGRES_URL not set: PostgreSQL run skipped");
            return;
        };
        let url = crate::test_util::fresh_pg_database(&base, "upgrade").await;
        upgrade(&url).await;
    }
}
