//! The store suite, written once and run on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use apim_core::bus::EventBus;
use apim_core::event::{EventPayload, Policy, PolicyKind, Seq, TokenRevocation};
use apim_core::lifecycle::{LifecycleAction, LifecycleState};
use apim_core::model::{Api, Application, Deployment, KeyType, SubscriptionStatus};
use apim_core::store::{OAuthClient, OutboxBus, Store};
use apim_core::ApimError;
use futures_util::StreamExt;

fn api(context: &str, version: &str, tiers: &[&str]) -> Api {
    serde_json::from_value(serde_json::json!({
        "name": format!("API {context}"),
        "context": context,
        "version": version,
        "policies": tiers,
        "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:9000/b"}},
        "operations": [{"target": "/menu", "verb": "GET"}, {"target": "/order/{id}", "verb": "GET"}]
    }))
    .unwrap()
}

fn field(e: ApimError) -> String {
    match e {
        ApimError::Validation { field, .. } => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

async fn seeded(store: &Store) {
    let r = store.seed_defaults(Some("admin-password-1")).await.unwrap();
    assert!(r.admin_created);
}

on_both_backends!(seed_is_idempotent_and_complete, |store: Store| async move {
    let first = store.seed_defaults(None).await.unwrap();
    assert_eq!(first.policies_created, 13);
    let pw = first
        .generated_admin_password
        .expect("generated admin password");
    assert!(store.verify_user("admin", &pw).await.unwrap().is_some());
    let second = store.seed_defaults(None).await.unwrap();
    assert_eq!(
        (
            second.policies_created,
            second.admin_created,
            second.generated_admin_password
        ),
        (0, false, None)
    );
    let subs = store
        .list_policies(Some(PolicyKind::Subscription))
        .await
        .unwrap();
    let names: Vec<_> = subs.iter().map(|p| p.name().to_owned()).collect();
    assert_eq!(
        names,
        ["Bronze", "Gold", "Silver", "Unauthenticated", "Unlimited"]
    );
    match store
        .get_policy_by_name(PolicyKind::Subscription, "Gold")
        .await
        .unwrap()
    {
        Some(Policy::Subscription(p)) => assert_eq!(p.default_limit.amount(), 5000),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .list_policies(Some(PolicyKind::Application))
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        store
            .list_policies(Some(PolicyKind::Advanced))
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(store.list_environments().await.unwrap()[0].name, "Default");
});

on_both_backends!(api_crud_validation_and_search, |store: Store| async move {
    seeded(&store).await;
    let a = store
        .create_api(api("/pizza", "1.0.0", &["Gold"]), "alice")
        .await
        .unwrap();
    assert_eq!(
        (a.provider.as_str(), a.life_cycle_status),
        ("alice", LifecycleState::Created)
    );
    assert!(matches!(
        store
            .create_api(api("/pizza", "1.0.0", &["Gold"]), "bob")
            .await,
        Err(ApimError::Conflict(_))
    ));
    assert_eq!(
        field(
            store
                .create_api(api("/x", "1", &["Platinum"]), "a")
                .await
                .unwrap_err()
        ),
        "policies[0]"
    );
    assert_eq!(
        field(
            store
                .create_api(api("/../x", "1", &["Gold"]), "a")
                .await
                .unwrap_err()
        ),
        "context"
    );
    assert_eq!(
        field(
            store
                .create_api(api("/x", "1 0", &["Gold"]), "a")
                .await
                .unwrap_err()
        ),
        "version"
    );
    let mut empty = api("/x", "1", &["Gold"]);
    empty.name = String::new();
    assert_eq!(
        field(store.create_api(empty, "a").await.unwrap_err()),
        "name"
    );
    store
        .create_api(api("/pasta", "2.0", &["Silver"]), "alice")
        .await
        .unwrap();
    let (all, total) = store.list_apis(None, 10, 0).await.unwrap();
    assert_eq!((all.len(), total), (2, 2));
    let (page, total) = store.list_apis(None, 1, 1).await.unwrap();
    assert_eq!((page.len(), total), (1, 2));
    let (found, _) = store.list_apis(Some("pizz"), 10, 0).await.unwrap();
    assert_eq!(found.len(), 1);
    let mut changed = a.clone();
    changed.description = Some("now with toppings".into());
    changed.life_cycle_status = LifecycleState::Published; // ignored: lifecycle has its own operation
    let u = store.update_api(&a.id, changed).await.unwrap();
    assert_eq!(
        (u.description.as_deref(), u.life_cycle_status),
        (Some("now with toppings"), LifecycleState::Created)
    );
    assert!(matches!(
        store.get_api("nope").await,
        Err(ApimError::NotFound(_))
    ));
    store.delete_api(&u.id).await.unwrap();
    assert!(matches!(
        store.get_api(&u.id).await,
        Err(ApimError::NotFound(_))
    ));
});

on_both_backends!(lifecycle_history_and_refusals, |store: Store| async move {
    seeded(&store).await;
    let a = store
        .create_api(api("/lc", "1", &["Gold"]), "alice")
        .await
        .unwrap();
    assert!(matches!(
        store
            .change_lifecycle(&a.id, LifecycleAction::Retire, "alice")
            .await,
        Err(ApimError::Conflict(_))
    ));
    store
        .change_lifecycle(&a.id, LifecycleAction::Publish, "alice")
        .await
        .unwrap();
    let b = store
        .change_lifecycle(&a.id, LifecycleAction::Block, "bob")
        .await
        .unwrap();
    assert_eq!(b.life_cycle_status, LifecycleState::Blocked);
    let h = store.lifecycle_history(&a.id).await.unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (
            h[1].previous_state.as_str(),
            h[1].post_state.as_str(),
            h[1].user.as_str()
        ),
        ("PUBLISHED", "BLOCKED", "bob")
    );
});

on_both_backends!(
    revisions_deployments_and_gateway_snapshot,
    |store: Store| async move {
        seeded(&store).await;
        let a = store
            .create_api(api("/rev", "1", &["Gold"]), "alice")
            .await
            .unwrap();
        let mut revs = vec![];
        for _ in 0..5 {
            revs.push(store.create_revision(&a.id, None).await.unwrap());
        }
        assert_eq!(revs[4].display_name, "Revision 5");
        assert!(matches!(
            store.create_revision(&a.id, None).await,
            Err(ApimError::Conflict(_))
        ));
        let target = |env: &str| Deployment {
            revision_uuid: String::new(),
            name: env.into(),
            vhost: None,
            display_on_devportal: true,
            deployed_time: 0,
        };
        assert_eq!(
            field(
                store
                    .deploy_revision(&a.id, &revs[0].id, &[target("Nowhere")])
                    .await
                    .unwrap_err()
            ),
            "deployments[0].name"
        );
        let deps = store
            .deploy_revision(&a.id, &revs[0].id, &[target("Default")])
            .await
            .unwrap();
        assert_eq!(deps[0].revision_uuid, revs[0].id);
        assert!(matches!(
            store.delete_revision(&a.id, &revs[0].id).await,
            Err(ApimError::Conflict(_))
        ));
        store
            .change_lifecycle(&a.id, LifecycleAction::Publish, "alice")
            .await
            .unwrap();
        let data = store.gateway_data().await.unwrap();
        assert_eq!(data.seq, store.last_seq().await.unwrap());
        assert_eq!(data.deployments.len(), 1);
        assert_eq!(data.deployments[0].gateway_labels, ["Default"]);
        assert_eq!(
            data.deployments[0].api.life_cycle_status,
            LifecycleState::Published
        );
        assert!(data.policies.len() >= 13);
        // the environments with their vhosts: which one is an environment's default
        // decides what hosts its deployments serve (issue 18)
        let default = data.environments.iter().find(|e| e.name == "Default");
        assert_eq!(
            default.map(|e| e.vhosts[0].host.as_str()),
            Some("localhost"),
            "{:?}",
            data.environments
        );
        store
            .undeploy_revision(&a.id, &revs[0].id, &["Default".into()])
            .await
            .unwrap();
        assert!(store.gateway_data().await.unwrap().deployments.is_empty());
        let events = store.events_after(Seq(0), 1000).await.unwrap();
        let kinds: Vec<_> = events
            .iter()
            .map(|e| e.payload.type_name())
            .filter(|t| !t.starts_with("POLICY"))
            .collect();
        assert_eq!(
            kinds,
            [
                "API_CREATE",
                "DEPLOY_API_IN_GATEWAY",
                "API_LIFECYCLE_CHANGE",
                "REMOVE_API_FROM_GATEWAY"
            ]
        );
    }
);

on_both_backends!(applications_subscriptions_keys, |store: Store| async move {
    seeded(&store).await;
    let a = store
        .create_api(api("/sub", "1", &["Gold", "Unlimited"]), "alice")
        .await
        .unwrap();
    let app: Application =
        serde_json::from_value(serde_json::json!({"name": "App", "throttlingPolicy": "10PerMin"}))
            .unwrap();
    let app = store.create_application(app, "sam").await.unwrap();
    assert!(matches!(
        store.create_application(app.clone(), "sam").await,
        Err(ApimError::Conflict(_))
    ));
    store
        .create_application(app.clone(), "other")
        .await
        .unwrap(); // unique per owner only
    let mut bad = app.clone();
    bad.throttling_policy = "1PerYear".into();
    assert_eq!(
        field(store.create_application(bad, "sam").await.unwrap_err()),
        "throttlingPolicy"
    );
    // not yet published
    assert!(matches!(
        store
            .create_subscription(&app.application_id, &a.id, "Gold")
            .await,
        Err(ApimError::Conflict(_))
    ));
    store
        .change_lifecycle(&a.id, LifecycleAction::Publish, "alice")
        .await
        .unwrap();
    assert_eq!(
        field(
            store
                .create_subscription(&app.application_id, &a.id, "Silver")
                .await
                .unwrap_err()
        ),
        "throttlingPolicy"
    );
    let s = store
        .create_subscription(&app.application_id, &a.id, "Gold")
        .await
        .unwrap();
    assert_eq!(s.status, SubscriptionStatus::Unblocked);
    assert!(matches!(
        store
            .create_subscription(&app.application_id, &a.id, "Gold")
            .await,
        Err(ApimError::Conflict(_))
    ));
    assert_eq!(
        store
            .get_application(&app.application_id)
            .await
            .unwrap()
            .subscription_count,
        1
    );
    let blocked = store
        .set_subscription_status(&s.subscription_id, SubscriptionStatus::ProdOnlyBlocked)
        .await
        .unwrap();
    assert_eq!(blocked.status, SubscriptionStatus::ProdOnlyBlocked);
    assert_eq!(
        store
            .list_subscriptions(None, Some(&a.id))
            .await
            .unwrap()
            .len(),
        1
    );
    let km = store
        .add_key_mapping(&app.application_id, KeyType::Production, "ck-1")
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_key_mapping(&app.application_id, KeyType::Production, "ck-2")
            .await,
        Err(ApimError::Conflict(_))
    ));
    assert_eq!(
        store.key_mapping_by_consumer_key("ck-1").await.unwrap(),
        Some(km)
    );
    let (mine, total) = store.list_applications(Some("sam"), 10, 0).await.unwrap();
    assert_eq!((mine.len(), total), (1, 1));
    store.delete_application(&app.application_id).await.unwrap();
    assert!(store
        .list_subscriptions(None, Some(&a.id))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .key_mapping_by_consumer_key("ck-1")
        .await
        .unwrap()
        .is_none());
});

on_both_backends!(secrets_are_stored_as_hashes, |store: Store| async move {
    seeded(&store).await;
    store
        .create_user(
            "alice",
            "correct horse battery",
            &["subscriber".into()],
            None,
        )
        .await
        .unwrap();
    assert!(store
        .verify_user("alice", "correct horse battery")
        .await
        .unwrap()
        .is_some());
    assert!(store.verify_user("alice", "wrong").await.unwrap().is_none());
    assert!(store.verify_user("nobody", "x").await.unwrap().is_none());
    assert!(matches!(
        store
            .create_user("alice", "another password", &[], None)
            .await,
        Err(ApimError::Conflict(_))
    ));
    assert_eq!(
        field(
            store
                .create_user("bob", "short", &[], None)
                .await
                .unwrap_err()
        ),
        "password"
    );
    assert_eq!(
        field(
            store
                .create_user("bob", "long enough pw", &["wizard".into()], None)
                .await
                .unwrap_err()
        ),
        "roles[0]"
    );
    let secret = apim_core::crypto::random_secret().unwrap();
    let client = OAuthClient {
        client_id: "client-1".into(),
        client_name: "c".into(),
        owner: "alice".into(),
        application_id: None,
        key_type: None,
        redirect_uris: vec![],
        grant_types: vec!["client_credentials".into()],
        scopes: vec![],
        token_type: "JWT".into(),
        access_token_lifetime: 0,
        refresh_token_lifetime: 0,
        created_time: 0,
        first_party: false,
    };
    store.create_oauth_client(client, &secret).await.unwrap();
    assert!(store
        .authenticate_client("client-1", &secret)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .authenticate_client("client-1", "guess")
        .await
        .unwrap()
        .is_none());
    store.delete_oauth_client("client-1").await.unwrap();
    assert!(store
        .authenticate_client("client-1", &secret)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.delete_oauth_client("client-1").await,
        Err(ApimError::NotFound(_))
    ));
    // what is at rest: the hashes, never the values
    let dump = format!("{:?}", store.gateway_data().await.unwrap());
    assert!(!dump.contains(&secret));
    let revocation = TokenRevocation {
        jti: "j1".into(),
        expiry_time: apim_core::time::now_secs() + 60,
        token_type: "JWT".into(),
        consumer_key: None,
    };
    store.revoke_token(revocation.clone()).await.unwrap();
    store.revoke_token(revocation).await.unwrap(); // idempotent, one event
    assert!(store.is_revoked("j1").await.unwrap());
    let data = store.gateway_data().await.unwrap();
    assert_eq!(data.revoked_tokens.len(), 1);
    let revs = store
        .events_after(Seq(0), 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.payload.type_name() == "TOKEN_REVOCATION")
        .count();
    assert_eq!(revs, 1);
});

on_both_backends!(
    outbox_state_and_event_commit_or_roll_back_together,
    |store: Store| async move {
        seeded(&store).await;
        let before = store.last_seq().await.unwrap();
        // make the outbox write fail after the state change in the same transaction
        sqlx_exec(&store, "ALTER TABLE events RENAME TO events_away").await;
        let err = store
            .create_api(api("/atomic", "1", &["Gold"]), "alice")
            .await
            .unwrap_err();
        assert!(matches!(err, ApimError::Storage(_)), "{err:?}");
        sqlx_exec(&store, "ALTER TABLE events_away RENAME TO events").await;
        let (apis, _) = store.list_apis(Some("/atomic"), 10, 0).await.unwrap();
        assert!(apis.is_empty(), "the API must not exist without its event");
        assert_eq!(store.last_seq().await.unwrap(), before);
        // and with the outbox back, both land
        let a = store
            .create_api(api("/atomic", "1", &["Gold"]), "alice")
            .await
            .unwrap();
        let events = store.events_after(before, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        match &events[0].payload {
            EventPayload::ApiCreate(r) => assert_eq!(r.api_id, a.id),
            other => panic!("{other:?}"),
        }
    }
);

async fn sqlx_exec(store: &Store, sql: &str) {
    // a side door for the fault-injection test: run DDL through a transaction of the store
    let mut tx = store.begin().await.unwrap();
    sqlx::query(sql).execute(tx.conn()).await.unwrap();
    tx.commit().await.unwrap();
}

on_both_backends!(
    outbox_subscriber_resumes_exactly,
    |store: Store| async move {
        let bus = OutboxBus::new(store.clone(), Duration::from_millis(50));
        let start = store.last_seq().await.unwrap();
        let mut published = vec![];
        for i in 0..10 {
            published.push(
                bus.publish(EventPayload::ScopeDelete(apim_core::event::EntityRef {
                    id: format!("s{i}"),
                }))
                .await
                .unwrap(),
            );
        }
        let mut stream = bus.subscribe(start);
        let mut seen = vec![];
        for _ in 0..4 {
            seen.push(stream.next().await.unwrap().unwrap().seq);
        }
        drop(stream); // disconnect after 4
                      // events keep coming while disconnected, and concurrently after resuming
        let writer = {
            let bus = bus.clone();
            tokio::spawn(async move {
                let mut out = vec![];
                for i in 10..30 {
                    out.push(
                        bus.publish(EventPayload::ScopeDelete(apim_core::event::EntityRef {
                            id: format!("s{i}"),
                        }))
                        .await
                        .unwrap(),
                    );
                }
                out
            })
        };
        let mut stream = bus.subscribe(*seen.last().unwrap());
        while seen.len() < 30 {
            let e = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("event in time")
                .unwrap()
                .unwrap();
            seen.push(e.seq);
        }
        published.extend(writer.await.unwrap());
        assert_eq!(
            seen, published,
            "exactly the published events, in order, none twice"
        );
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }
);

on_both_backends!(
    concurrent_writers_get_commit_ordered_sequences,
    |store: Store| async move {
        seeded(&store).await;
        let start = store.last_seq().await.unwrap();
        let mut tasks = vec![];
        for t in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    store
                        .create_api(api(&format!("/c{t}x{i}"), "1", &["Gold"]), "alice")
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let events = store.events_after(start, 1000).await.unwrap();
        assert_eq!(events.len(), 40);
        assert!(events.windows(2).all(|w| w[1].seq > w[0].seq));
    }
);

/// Another process's commit reaches an OutboxBus subscriber without waiting for a poll:
/// PostgreSQL LISTEN/NOTIFY (the poll interval here is far longer than the deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notify_wakes_other_processes() {
    let Some(base) = std::env::var("APIM_TEST_POSTGRES_URL").ok() else {
        eprintln!("APIM_TEST_POSTGRES_URL not set: skipped (.ci/run sets it)");
        return;
    };
    let url = common::fresh_pg_database(&base, "notify").await;
    let writer = Store::connect_url(&url, None, 2).await.unwrap();
    let reader = Store::connect_url(&url, None, 2).await.unwrap(); // a separate handle = another process
    let bus = OutboxBus::new(reader, Duration::from_secs(60));
    let mut stream = bus.subscribe(Seq(0));
    // the first read happens immediately; give the LISTEN task a moment to connect
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = std::time::Instant::now();
    let mut tx = writer.begin().await.unwrap();
    tx.emit(EventPayload::ScopeDelete(apim_core::event::EntityRef {
        id: "x".into(),
    }));
    tx.commit().await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("woken by NOTIFY")
        .unwrap()
        .unwrap();
    assert_eq!(e.seq, Seq(1));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
}

/// Issue 18 item 4: a database written before migration 40 (no `subscription_blocks`) opens,
/// keeps its data, and from then on a deleted BLOCKED subscription comes back BLOCKED.
#[tokio::test]
async fn subscription_blocks_migrate_onto_an_older_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("apim.db").display());
    let store = Store::connect_url(&url, None, 2).await.unwrap();
    seeded(&store).await;
    let a = store
        .create_api(api("/old", "1", &["Gold"]), "alice")
        .await
        .unwrap();
    store
        .change_lifecycle(&a.id, LifecycleAction::Publish, "alice")
        .await
        .unwrap();
    let app: Application =
        serde_json::from_value(serde_json::json!({"name": "App", "throttlingPolicy": "10PerMin"}))
            .unwrap();
    let app = store.create_application(app, "sam").await.unwrap();
    let s = store
        .create_subscription(&app.application_id, &a.id, "Gold")
        .await
        .unwrap();
    store
        .set_subscription_status(&s.subscription_id, SubscriptionStatus::Blocked)
        .await
        .unwrap();
    // what the previous version left behind: no table, no record of migration 40
    sqlx_exec(&store, "DROP TABLE subscription_blocks").await;
    sqlx_exec(&store, "DELETE FROM _sqlx_migrations WHERE version = 40").await;
    store.close().await;

    let store = Store::connect_url(&url, None, 2).await.unwrap();
    let kept = store.get_subscription(&s.subscription_id).await.unwrap();
    assert_eq!(kept.status, SubscriptionStatus::Blocked);
    store.delete_subscription(&s.subscription_id).await.unwrap();
    let again = store
        .create_subscription(&app.application_id, &a.id, "Gold")
        .await
        .unwrap();
    assert_eq!(again.status, SubscriptionStatus::Blocked);
}
