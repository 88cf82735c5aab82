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
            20,
            "scope definitions, tokens by client",
            include_str!("../../migrations/0020_scopes.sql"),
        ),
    ]
}

fn shared() -> Vec<Migration> {
    vec![migration(
        1001,
        "shared tables",
        include_str!("../../migrations/shared.sql"),
    )]
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

pub(super) async fn run(
    am: &AnyPool,
    am_kind: DbKind,
    shared_pool: &AnyPool,
    _shared_kind: DbKind,
) -> Result<(), ApimError> {
    apply(am, apimgt(am_kind), "apimgtdb").await?;
    apply(shared_pool, shared(), "shareddb").await
}
