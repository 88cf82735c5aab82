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
