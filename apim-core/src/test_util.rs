//! Test fixtures for the crates of this workspace and for embedders (feature `test-util`): a
//! fresh store on SQLite, and on PostgreSQL when `APIM_TEST_POSTGRES_URL` is set (`.ci/run` sets
//! it, so there the PostgreSQL runs always happen).

use crate::store::Store;

/// The variable naming the PostgreSQL server for tests (a URL with a database to connect to).
pub const POSTGRES_VAR: &str = "APIM_TEST_POSTGRES_URL";

/// A fresh SQLite store in a temporary directory (deleted when the guard drops).
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("apim.db").display());
    let store = Store::connect_url(&url, None, 5)
        .await
        .expect("sqlite store");
    (store, dir)
}

/// A fresh PostgreSQL store — apimgtdb and shareddb as two new databases — when
/// [`POSTGRES_VAR`] is set; `None` otherwise.
pub async fn postgres_store() -> Option<Store> {
    let base = std::env::var(POSTGRES_VAR).ok()?;
    let am = fresh_pg_database(&base, "am").await;
    let shared = fresh_pg_database(&base, "shared").await;
    Some(
        Store::connect_url(&am, Some(&shared), 5)
            .await
            .expect("postgres store"),
    )
}

/// Creates a uniquely named database `apim_test_<tag>_<random>` on the server of `base` and
/// returns its URL. Panics, naming the variable, when the server is unreachable.
pub async fn fresh_pg_database(base: &str, tag: &str) -> String {
    use sqlx::Connection;
    let tag: String = tag.chars().filter(char::is_ascii_alphanumeric).collect();
    let name = format!(
        "apim_test_{tag}_{}",
        &crate::crypto::new_id().replace('-', "")[..16]
    );
    let mut admin = sqlx::postgres::PgConnection::connect(base)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_VAR} is set but PostgreSQL is unreachable: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("URL with a database name");
    let query = base
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{prefix}/{name}{query}")
}

/// Databases with the schema an earlier version made: only migrations below `am_below` /
/// `shared_below`, apimgtdb at `am_url`, shareddb at `shared_url` (the same database when
/// `None`). The pools `(apimgtdb, shareddb)` write rows the way that version did;
/// [`Store::connect_url`] on the same URLs then upgrades them.
pub async fn previous_version(
    am_url: &str,
    shared_url: Option<&str>,
    am_below: i64,
    shared_below: i64,
) -> (sqlx::AnyPool, sqlx::AnyPool) {
    crate::store::previous_schema(am_url, shared_url, am_below, shared_below)
        .await
        .expect("previous schema")
}
