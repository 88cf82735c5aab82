//! Test fixtures: a fresh store per test, on SQLite (always) and on PostgreSQL (when
//! `APIM_TEST_POSTGRES_URL` is set; `.ci/run` sets it, so there it always runs).

#![allow(dead_code, unreachable_pub)]

use apim_core::store::Store;

/// A fresh SQLite store in a temp dir (kept alive by the returned guard).
pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("apim.db").display());
    let store = Store::connect_url(&url, None, 5)
        .await
        .expect("sqlite store");
    (store, dir)
}

/// A fresh PostgreSQL database (apimgtdb + shareddb as two databases) when the variable is set.
pub async fn postgres() -> Option<Store> {
    let base = std::env::var("APIM_TEST_POSTGRES_URL").ok()?;
    let am = fresh_pg_database(&base, "am").await;
    let shared = fresh_pg_database(&base, "shared").await;
    Some(
        Store::connect_url(&am, Some(&shared), 5)
            .await
            .expect("postgres store"),
    )
}

/// Creates a uniquely named database next to `base` and returns its URL.
pub async fn fresh_pg_database(base: &str, tag: &str) -> String {
    use sqlx::Connection;
    let name = format!("apim_test_{tag}_{}", uuid_like());
    let mut admin = sqlx::postgres::PgConnection::connect(base)
        .await
        .unwrap_or_else(|e| {
            panic!("APIM_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
        });
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

fn uuid_like() -> String {
    apim_core::crypto::new_id().replace('-', "")[..16].to_owned()
}

/// Runs `body` against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _dir) = common::sqlite().await;
                ($body)(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(store) = common::postgres().await else {
                    eprintln!(
                        "APIM_TEST_POSTGRES_URL not set: PostgreSQL run skipped (.ci/run sets it)"
                    );
                    return;
                };
                ($body)(store).await;
            }
        }
    };
}
