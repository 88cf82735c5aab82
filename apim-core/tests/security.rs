//! Accounts and passwords (issue 18 items 5, 11, 21, 23): the one password check's lock-out,
//! equal work for unknown users, the bounded hashing pool, generation-aware remembering,
//! case-insensitive user names, and the upgrade of a database the previous version made.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use apim_core::crypto::hash_password_with;
use apim_core::model::Application;
use apim_core::store::{OAuthClient, PasswordPolicy, Store, StoredToken};
use apim_core::ApimError;

fn quick(free_failures: u32, base_lockout: Duration) -> PasswordPolicy {
    PasswordPolicy {
        free_failures,
        base_lockout,
        ..PasswordPolicy::for_tests()
    }
}

async fn user(store: &Store, name: &str, pw: &str) {
    store
        .create_user(name, pw, &["subscriber".into()], None)
        .await
        .unwrap();
}

on_both_backends!(
    lockout_refuses_without_hashing_until_the_backoff_passes,
    |store: Store| async move {
        store
            .set_password_policy(quick(3, Duration::from_millis(700)))
            .unwrap();
        user(&store, "lucy", "right-passw0rd").await;
        for _ in 0..3 {
            assert!(store
                .verify_user("lucy", "wrong-guess")
                .await
                .unwrap()
                .is_none());
        }
        let before = store.password_stats();
        // locked: refused with 429 + a retry time, even with the right password, without hashing
        for name in ["lucy", "LUCY"] {
            match store.verify_user(name, "right-passw0rd").await {
                Err(e @ ApimError::TooManyAttempts { .. }) => {
                    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
                    let res: http::Response<bytes::Bytes> = e.to_response();
                    assert!(res.headers().contains_key("retry-after"));
                }
                other => panic!("expected a lock-out, got {other:?}"),
            }
        }
        let after = store.password_stats();
        assert_eq!(after.hashed, before.hashed, "no PBKDF2 while locked out");
        assert_eq!(after.dummy, before.dummy);
        assert_eq!(after.locked_out, before.locked_out + 2);

        tokio::time::sleep(Duration::from_millis(800)).await;
        // the backoff passed: one more failure locks again, twice as long (exponential)
        assert!(store
            .verify_user("lucy", "wrong-guess")
            .await
            .unwrap()
            .is_none());
        let Err(ApimError::TooManyAttempts { retry_after }) =
            store.verify_user("lucy", "right-passw0rd").await
        else {
            panic!("locked again")
        };
        assert!(retry_after > Duration::from_millis(700), "{retry_after:?}");
        tokio::time::sleep(retry_after + Duration::from_millis(100)).await;
        assert!(store
            .verify_user("lucy", "right-passw0rd")
            .await
            .unwrap()
            .is_some());
        // a success clears the account's count
        assert!(store
            .verify_user("lucy", "wrong-guess")
            .await
            .unwrap()
            .is_none());
        assert!(store
            .verify_user("lucy", "right-passw0rd")
            .await
            .unwrap()
            .is_some());
    }
);

on_both_backends!(
    failures_count_per_client_address_across_accounts,
    |store: Store| async move {
        store
            .set_password_policy(quick(3, Duration::from_secs(60)))
            .unwrap();
        user(&store, "mike", "right-passw0rd").await;
        let attacker: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        // spraying one password over many names from one address
        for name in ["nora", "oscar", "paul"] {
            assert!(store
                .check_password(name, "Summer2024!", Some(attacker))
                .await
                .unwrap()
                .is_none());
        }
        let e = store
            .check_password("mike", "right-passw0rd", Some(attacker))
            .await
            .unwrap_err();
        assert!(matches!(e, ApimError::TooManyAttempts { .. }), "{e:?}");
        // the account itself is not locked: another address gets in
        assert!(store
            .check_password("mike", "right-passw0rd", Some(other))
            .await
            .unwrap()
            .is_some());
    }
);

on_both_backends!(
    unknown_users_cost_the_same_pbkdf2_as_known_ones,
    |store: Store| async move {
        store
            .set_password_policy(PasswordPolicy::for_tests())
            .unwrap();
        user(&store, "quinn", "right-passw0rd").await;
        let s0 = store.password_stats();
        assert!(store
            .verify_user("quinn", "wrong-one")
            .await
            .unwrap()
            .is_none());
        let s1 = store.password_stats();
        assert_eq!((s1.hashed - s0.hashed, s1.dummy - s0.dummy), (1, 0));
        assert!(store
            .verify_user("nobody-here", "wrong-one")
            .await
            .unwrap()
            .is_none());
        let s2 = store.password_stats();
        assert_eq!(
            (s2.hashed - s1.hashed, s2.dummy - s1.dummy),
            (0, 1),
            "an unknown name runs PBKDF2 against the dummy hash"
        );
    }
);

/// Occupies every hashing slot until the returned sender is dropped.
async fn occupy_pool(store: &Store) -> std::sync::mpsc::Sender<()> {
    occupy_pool_task(store).await.0
}

/// [`occupy_pool`], with the task that asked for the slot.
async fn occupy_pool_task(
    store: &Store,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(), ApimError>>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let s = store.clone();
    let task = tokio::spawn(async move {
        s.in_password_pool(move || {
            let _ = rx.recv();
        })
        .await
    });
    wait_queued(store, 1).await;
    (tx, task)
}

async fn wait_queued(store: &Store, n: usize) {
    for _ in 0..500 {
        if store.password_checks_queued() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("queue never reached {n}");
}

on_both_backends!(
    hashing_pool_is_bounded_and_refuses_overflow,
    |store: Store| async move {
        store
            .set_password_policy(PasswordPolicy {
                max_concurrent: 1,
                max_waiting: 1,
                ..PasswordPolicy::for_tests()
            })
            .unwrap();
        user(&store, "rita", "right-passw0rd").await;
        let hold = occupy_pool(&store).await;
        // one check may wait for the slot...
        let waiting = tokio::spawn({
            let s = store.clone();
            async move { s.verify_user("rita", "right-passw0rd").await }
        });
        wait_queued(&store, 2).await;
        // ...the next is refused at once with 503 + Retry-After, nothing queued
        let e = store
            .verify_user("rita", "right-passw0rd")
            .await
            .unwrap_err();
        assert!(matches!(e, ApimError::Overloaded { .. }), "{e:?}");
        assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(store.password_stats().overloaded, 1);
        assert_eq!(store.password_checks_queued(), 2);
        drop(hold);
        assert!(waiting.await.unwrap().unwrap().is_some());
        assert_eq!(store.password_checks_queued(), 0);
    }
);

/// Item 21: a check that read the credential before a password change and finishes after it
/// succeeds (it was in flight) but is not remembered: the old password fails right after.
async fn in_flight_check(store: Store, second: Store) {
    store
        .set_password_policy(PasswordPolicy {
            max_concurrent: 1,
            ..PasswordPolicy::for_tests()
        })
        .unwrap();
    second
        .set_password_policy(PasswordPolicy::for_tests())
        .unwrap();
    user(&store, "sam", "old-passw0rd").await;
    let hold = occupy_pool(&store).await;
    let in_flight = tokio::spawn({
        let s = store.clone();
        async move { s.verify_user("sam", "old-passw0rd").await }
    });
    // the check has read the old credential and waits for a hashing slot
    wait_queued(&store, 2).await;
    second.set_password("sam", "new-passw0rd").await.unwrap();
    drop(hold);
    assert!(
        in_flight.await.unwrap().unwrap().is_some(),
        "computed under the old credential"
    );
    let before = store.password_stats();
    assert!(
        store
            .verify_user("sam", "old-passw0rd")
            .await
            .unwrap()
            .is_none(),
        "the old password must not come back from the cache"
    );
    let after = store.password_stats();
    assert_eq!(after.cached, before.cached, "not answered from the cache");
    assert_eq!(after.hashed, before.hashed + 1);
    assert!(store
        .verify_user("sam", "new-passw0rd")
        .await
        .unwrap()
        .is_some());
    // a remembered success of the current credential is still used
    assert!(store
        .verify_user("sam", "new-passw0rd")
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.password_stats().cached, after.cached + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_check_during_password_change_is_not_remembered_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("apim.db").display());
    let a = Store::connect_url(&url, None, 5).await.unwrap();
    let b = Store::connect_url(&url, None, 5).await.unwrap();
    in_flight_check(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_check_during_password_change_is_not_remembered_postgres() {
    let Ok(base) = std::env::var("APIM_TEST_POSTGRES_URL") else {
        eprintln!("APIM_TEST_POSTGRES_URL not set: PostgreSQL run skipped");
        return;
    };
    let am = common::fresh_pg_database(&base, "am").await;
    let shared = common::fresh_pg_database(&base, "shared").await;
    let a = Store::connect_url(&am, Some(&shared), 5).await.unwrap();
    let b = Store::connect_url(&am, Some(&shared), 5).await.unwrap();
    in_flight_check(a, b).await;
}

on_both_backends!(
    user_names_are_unique_regardless_of_case,
    |store: Store| async move {
        store
            .set_password_policy(PasswordPolicy::for_tests())
            .unwrap();
        user(&store, "Tina", "right-passw0rd").await;
        for name in ["tina", "TINA", "tInA"] {
            let e = store
                .create_user(name, "other-passw0rd", &[], None)
                .await
                .unwrap_err();
            assert!(matches!(e, ApimError::Conflict(_)), "{name}: {e:?}");
        }
        assert_eq!(store.list_users().await.unwrap().len(), 1);
    }
);

on_both_backends!(
    password_change_and_deletion_revoke_refresh_tokens_and_codes,
    |store: Store| async move {
        store
            .set_password_policy(PasswordPolicy::for_tests())
            .unwrap();
        user(&store, "uma", "first-passw0rd").await;
        let token = |kind: &str| StoredToken {
            kind: kind.into(),
            client_id: "c1".into(),
            jti: apim_core::crypto::new_id(),
            username: "uma".into(),
            scopes: vec![],
            expires_at: apim_core::time::now_secs() + 3600,
            extra: Default::default(),
        };
        store.put_token("rt-1", &token("refresh")).await.unwrap();
        store.put_token("code-1", &token("code")).await.unwrap();
        store.set_password("uma", "second-passw0rd").await.unwrap();
        assert!(store.take_token("rt-1", "refresh").await.unwrap().is_none());
        assert!(store.take_token("code-1", "code").await.unwrap().is_none());

        store.put_token("rt-2", &token("refresh")).await.unwrap();
        store.delete_user("uma").await.unwrap();
        assert!(store.take_token("rt-2", "refresh").await.unwrap().is_none());
    }
);

on_both_backends!(
    deleting_a_user_removes_their_applications_and_clients,
    |store: Store| async move {
        store
            .set_password_policy(PasswordPolicy::for_tests())
            .unwrap();
        store.seed_defaults(Some("admin-passw0rd")).await.unwrap();
        user(&store, "vera", "first-passw0rd").await;
        let app: Application = serde_json::from_value(serde_json::json!({"name": "shop"})).unwrap();
        let app = store.create_application(app, "vera").await.unwrap();
        let old_id = store.user_id_of("vera").await.unwrap().unwrap();
        assert!(store
            .application_owned_by(&app.application_id, &old_id)
            .await
            .unwrap());

        store.delete_user("vera").await.unwrap();
        assert!(matches!(
            store.get_application(&app.application_id).await,
            Err(ApimError::NotFound(_))
        ));
        // a new account with the same name is another account
        user(&store, "vera", "other-passw0rd").await;
        let new_id = store.user_id_of("vera").await.unwrap().unwrap();
        assert_ne!(new_id, old_id);
        assert_eq!(
            store
                .list_user_applications(&new_id, 25, 0)
                .await
                .unwrap()
                .1,
            0
        );
    }
);

/// A database the previous version wrote (schema before apimgtdb 10 / shareddb 1010) opens
/// with this one: users keep their passwords, users whose names differ only by case keep
/// working, their applications and clients stay theirs, and new case collisions are refused.
async fn upgrade_previous_version(am_url: &str, shared_url: Option<&str>) {
    let (old, old_shared) =
        apim_core::test_util::previous_version(am_url, shared_url, 10, 1010).await;
    let hash = hash_password_with("legacy-passw0rd", 1000).unwrap();
    for name in ["bob", "Bob"] {
        sqlx::query(
            "INSERT INTO users (username, password_hash, body, created_at) VALUES ($1, $2, $3, 0)",
        )
        .bind(name)
        .bind(&hash)
        .bind(serde_json::json!({"username": name, "roles": ["subscriber"]}).to_string())
        .execute(&old_shared)
        .await
        .unwrap();
    }
    let app = serde_json::json!({"applicationId": "app-1", "name": "legacy", "owner": "bob"});
    sqlx::query("INSERT INTO applications (id, name, owner, body, created_at) VALUES ('app-1', 'legacy', 'bob', $1, 0)")
        .bind(app.to_string())
        .execute(&old)
        .await
        .unwrap();
    let rt = StoredToken {
        kind: "refresh".into(),
        client_id: "c1".into(),
        jti: "j1".into(),
        username: "bob".into(),
        scopes: vec![],
        expires_at: apim_core::time::now_secs() + 3600,
        extra: Default::default(),
    };
    sqlx::query("INSERT INTO oauth_tokens (token_hash, kind, client_id, jti, body, expires_at, revoked) VALUES ($1, 'refresh', 'c1', 'j1', $2, $3, 0)")
        .bind(apim_core::crypto::hash_secret("legacy-rt"))
        .bind(serde_json::to_string(&rt).unwrap())
        .bind(rt.expires_at)
        .execute(&old)
        .await
        .unwrap();
    let client = OAuthClient {
        client_id: "c1".into(),
        client_name: "legacy".into(),
        owner: "bob".into(),
        application_id: Some("app-1".into()),
        key_type: Some("PRODUCTION".into()),
        redirect_uris: vec![],
        grant_types: vec!["client_credentials".into()],
        scopes: vec![],
        token_type: "JWT".into(),
        access_token_lifetime: 0,
        refresh_token_lifetime: 0,
        created_time: 0,
        first_party: false,
    };
    sqlx::query("INSERT INTO oauth_clients (client_id, secret_hash, owner, body, created_at) VALUES ('c1', $1, 'bob', $2, 0)")
        .bind(apim_core::crypto::hash_secret("legacy-secret"))
        .bind(serde_json::to_string(&client).unwrap())
        .execute(&old)
        .await
        .unwrap();
    old.close().await;
    old_shared.close().await;

    let store = Store::connect_url(am_url, shared_url, 5).await.unwrap();
    store
        .set_password_policy(PasswordPolicy::for_tests())
        .unwrap();
    for name in ["bob", "Bob"] {
        let u = store
            .verify_user(name, "legacy-passw0rd")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.username, name);
        assert!(!u.id.is_empty());
    }
    let bob = store.get_user("bob").await.unwrap().unwrap();
    assert_ne!(bob.id, store.get_user("Bob").await.unwrap().unwrap().id);
    assert!(store.application_owned_by("app-1", &bob.id).await.unwrap());
    assert_eq!(
        store
            .list_user_applications(&bob.id, 25, 0)
            .await
            .unwrap()
            .1,
        1
    );
    // the legacy refresh token is still live, and belongs to bob
    assert!(store
        .get_token("legacy-rt", "refresh")
        .await
        .unwrap()
        .is_some());
    store.set_password("bob", "new-passw0rd").await.unwrap();
    assert!(store
        .get_token("legacy-rt", "refresh")
        .await
        .unwrap()
        .is_none());
    // no new case collision
    let e = store
        .create_user("BOB", "some-passw0rd", &[], None)
        .await
        .unwrap_err();
    assert!(matches!(e, ApimError::Conflict(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_of_the_previous_version_is_upgraded_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("apim.db").display());
    upgrade_previous_version(&url, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_of_the_previous_version_is_upgraded_postgres() {
    let Ok(base) = std::env::var("APIM_TEST_POSTGRES_URL") else {
        eprintln!("APIM_TEST_POSTGRES_URL not set: PostgreSQL run skipped");
        return;
    };
    let am = common::fresh_pg_database(&base, "am").await;
    let shared = common::fresh_pg_database(&base, "shared").await;
    upgrade_previous_version(&am, Some(&shared)).await;
}

/// The profiles' store takes `[passwords]` from the configuration.
#[tokio::test]
async fn store_connect_takes_the_configured_password_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg =
        apim_core::config::Config::from_toml_str("[passwords]\nfree_failures = 2\n").unwrap();
    cfg.data_dir = dir.path().to_owned();
    let store = apim_core::store::Store::connect(&cfg).await.unwrap();
    assert_eq!(store.password_policy().free_failures, 2);
}
