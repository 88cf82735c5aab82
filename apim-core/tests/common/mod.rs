//! Test fixtures: a fresh store per test, on SQLite (always) and on PostgreSQL (when
//! `APIM_TEST_POSTGRES_URL` is set; `.ci/run` sets it, so there it always runs).

#![allow(dead_code, unreachable_pub)]

pub use apim_core::test_util::{
    fresh_pg_database, postgres_store as postgres, sqlite_store as sqlite,
};

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
