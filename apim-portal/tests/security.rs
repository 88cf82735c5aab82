//! Security regressions of the REST handlers (issue 18): a publisher's block survives the
//! subscriber deleting and re-creating the subscription (item 4), an API cannot shadow another
//! API's gateway paths (item 10), and JSON bodies must say so while cross-site state changes are
//! refused (item 18). Each fails on the code before the fix.

mod common;

use apim_core::artifacts::{ArtifactSnapshot, GatewayData};
use apim_core::event::Event;
use apim_core::model::SubscriptionStatus;
use apim_core::store::Store;
use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn signup(app: &axum::Router, user: (&str, &str)) {
    let r = send(
        app,
        "POST",
        &format!("{DEV}/self-signup"),
        None,
        Some(json!({"username": user.0, "password": user.1})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

async fn create_user(app: &axum::Router, user: (&str, &str), roles: &[&str]) {
    let r = send(
        app,
        "POST",
        &format!("{ADM}/users"),
        Some(ADMIN),
        Some(json!({"username": user.0, "password": user.1, "roles": roles})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// Creates (as `who`) and returns the reply.
async fn create_api(app: &axum::Router, who: (&str, &str), body: Value) -> Reply {
    send(app, "POST", &format!("{PUB}/apis"), Some(who), Some(body)).await
}

fn api_body(name: &str, context: &str, version: &str, default: bool) -> Value {
    let mut v = pizza_api();
    v["name"] = json!(name);
    v["context"] = json!(context);
    v["version"] = json!(version);
    v["isDefaultVersion"] = json!(default);
    v
}

async fn snapshot(app: &axum::Router) -> GatewayData {
    let r = send_raw(
        app,
        "GET",
        "/internal/data/v1/snapshot",
        Some(format!("Bearer {INTERNAL_TOKEN}")),
        "",
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    serde_json::from_value(r.body).expect("GatewayData")
}

async fn events_after(app: &axum::Router, seq: u64) -> Vec<Event> {
    let r = send_raw(
        app,
        "GET",
        &format!("/internal/data/v1/events?after={seq}"),
        Some(format!("Bearer {INTERNAL_TOKEN}")),
        "",
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    serde_json::from_value(r.body).expect("events")
}

// ---- item 4 ----------------------------------------------------------------------------------

async fn subscribe(app: &axum::Router, who: (&str, &str), app_id: &str, api_id: &str) -> Reply {
    send(
        app,
        "POST",
        &format!("{DEV}/subscriptions"),
        Some(who),
        Some(json!({"applicationId": app_id, "apiId": api_id, "throttlingPolicy": "Gold"})),
    )
    .await
}

async fn blocked_stays_blocked(store: Store) {
    let app = app(store);
    let r = create_api(&app, ADMIN, pizza_api()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let api_id = r.body["id"].as_str().unwrap().to_owned();
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis/change-lifecycle?apiId={api_id}&action=Publish"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let alice = ("alice", "alice-pass-123");
    signup(&app, alice).await;
    let r = send(
        &app,
        "POST",
        &format!("{DEV}/applications"),
        Some(alice),
        Some(json!({"name": "A", "throttlingPolicy": "Unlimited"})),
    )
    .await;
    let app_id = r.body["applicationId"].as_str().unwrap().to_owned();
    for block_state in ["BLOCKED", "PROD_ONLY_BLOCKED"] {
        let r = subscribe(&app, alice, &app_id, &api_id).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(r.body["status"], "UNBLOCKED");
        let sub_id = r.body["subscriptionId"].as_str().unwrap().to_owned();
        let r = send(
            &app,
            "POST",
            &format!(
                "{PUB}/subscriptions/block-subscription?subscriptionId={sub_id}&blockState={block_state}"
            ),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let before = snapshot(&app).await;
        let seq = before.seq.0;

        // the subscriber deletes and re-creates it
        let r = send(
            &app,
            "DELETE",
            &format!("{DEV}/subscriptions/{sub_id}"),
            Some(alice),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let r = subscribe(&app, alice, &app_id, &api_id).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(r.body["status"], block_state, "the block comes back");
        let sub_id = r.body["subscriptionId"].as_str().unwrap().to_owned();

        // the publisher sees it blocked
        let r = send(
            &app,
            "GET",
            &format!("{PUB}/subscriptions?apiId={api_id}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(r.body["list"][0]["status"], block_state);

        // a gateway starting now, and one that followed the events, both see the block
        let want = if block_state == "BLOCKED" {
            SubscriptionStatus::Blocked
        } else {
            SubscriptionStatus::ProdOnlyBlocked
        };
        let fresh = ArtifactSnapshot::from_data(vec!["Default".into()], snapshot(&app).await);
        assert_eq!(
            fresh.subscription(&app_id, &api_id).map(|s| s.status),
            Some(want)
        );
        let mut followed = ArtifactSnapshot::from_data(vec!["Default".into()], before);
        followed.apply(&events_after(&app, seq).await);
        assert_eq!(
            followed.subscription(&app_id, &api_id).map(|s| s.status),
            Some(want)
        );

        // unblocking is the publisher's: afterwards delete + re-create is a clean subscription
        let r = send(
            &app,
            "POST",
            &format!("{PUB}/subscriptions/unblock-subscription?subscriptionId={sub_id}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let r = send(
            &app,
            "DELETE",
            &format!("{DEV}/subscriptions/{sub_id}"),
            Some(alice),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let r = subscribe(&app, alice, &app_id, &api_id).await;
        assert_eq!(r.body["status"], "UNBLOCKED", "{:?}", r.body);
        let sub_id = r.body["subscriptionId"].as_str().unwrap().to_owned();
        let r = send(
            &app,
            "DELETE",
            &format!("{DEV}/subscriptions/{sub_id}"),
            Some(alice),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

on_both_backends!(
    blocked_subscription_survives_delete_and_recreate,
    blocked_stays_blocked
);

// ---- item 10 ---------------------------------------------------------------------------------

fn assert_context_conflict(r: &Reply) {
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.description().contains("context"),
        "names the context: {:?}",
        r.body
    );
}

async fn no_shadowing(store: Store) {
    let app = app(store);
    let a = ("provider-a", "provider-a-pass");
    let b = ("provider-b", "provider-b-pass");
    create_user(&app, a, &["creator", "publisher"]).await;
    create_user(&app, b, &["creator", "publisher"]).await;

    let r = create_api(&app, a, api_body("Orders", "/orders", "1.0.0", false)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // the reported attack: /orders/1.0.0 + version open captures /orders/1.0.0/open/**
    let r = create_api(&app, b, api_body("Shadow", "/orders/1.0.0", "open", false)).await;
    assert_context_conflict(&r);
    // deeper, and through import
    let r = create_api(&app, b, api_body("Shadow2", "/orders/1.0.0/x", "1", false)).await;
    assert_context_conflict(&r);
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis/import-openapi"),
        Some(b),
        Some(json!({
            "definition": {"openapi": "3.0.1", "info": {"title": "Imp", "version": "open"},
                           "paths": {"/x": {"get": {"responses": {"200": {"description": "ok"}}}}}},
            "additionalProperties": {
                "context": "/orders/1.0.0",
                "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://localhost:9080/x"}}
            }
        })),
    )
    .await;
    assert_context_conflict(&r);
    // another provider's context, even with another version
    let r = create_api(&app, b, api_body("Orders2", "/orders", "2.0.0", false)).await;
    assert_context_conflict(&r);
    // not a segment prefix: fine
    let r = create_api(&app, b, api_body("Orders10", "/orders/1.0.0x", "1", false)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = create_api(&app, b, api_body("OrdersV", "/orders/v2", "1", false)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // a new version of one's own API shares the context
    let r = create_api(&app, a, api_body("Orders", "/orders", "2.0.0", false)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // ... but its version may not run into another API's context
    let r = create_api(&app, a, api_body("Orders", "/orders", "v2", false)).await;
    assert_context_conflict(&r);

    // the other direction: the longer one exists, the shorter is refused
    let r = create_api(&app, b, api_body("Shop", "/shop/v1", "x", false)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = create_api(&app, a, api_body("ShopRoot", "/shop", "v1", false)).await;
    assert_context_conflict(&r);

    // the default version serves /{context}/** without a version
    let r = create_api(&app, a, api_body("Pets", "/pets", "1.0.0", true)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = create_api(&app, b, api_body("PetStore", "/pets/store", "v1", false)).await;
    assert_context_conflict(&r);

    // update: turning on the default version may not capture another API's paths
    let r = create_api(&app, a, api_body("Catalog", "/catalog", "v2", false)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let catalog = r.body.clone();
    let r = create_api(&app, b, api_body("Items", "/catalog/items", "v1", false)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let mut update = catalog.clone();
    update["isDefaultVersion"] = json!(true);
    let r = send(
        &app,
        "PUT",
        &format!("{PUB}/apis/{}", catalog["id"].as_str().unwrap()),
        Some(a),
        Some(update),
    )
    .await;
    assert_context_conflict(&r);
    // other updates of it are fine
    let mut update = catalog.clone();
    update["description"] = json!("changed");
    let r = send(
        &app,
        "PUT",
        &format!("{PUB}/apis/{}", catalog["id"].as_str().unwrap()),
        Some(a),
        Some(update),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

on_both_backends!(context_shadowing_is_refused, no_shadowing);

// ---- item 18 ---------------------------------------------------------------------------------

async fn raw(
    app: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", basic(ADMIN))
        .header("host", "localhost:9763");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn user_exists(app: &axum::Router, name: &str) -> bool {
    let r = send(
        app,
        "GET",
        &format!("{ADM}/users/{name}"),
        Some(ADMIN),
        None,
    )
    .await;
    r.status == StatusCode::OK
}

#[tokio::test]
async fn cross_site_and_non_json_bodies_are_refused() {
    let (store, _dir) = sqlite().await;
    let app = app(store.clone());
    let user = |n: &str| {
        json!({"username": n, "password": "password-123", "roles": ["admin"]}).to_string()
    };
    let users = format!("{ADM}/users");

    // the reported attack: an HTML form (text/plain) from a foreign page creates an admin
    let (s, b) = raw(
        &app,
        "POST",
        &users,
        &[
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
        ],
        &user("mallory"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(b["description"].as_str().unwrap().contains("Origin"), "{b}");
    // a JSON body from a foreign origin is refused too, as is Sec-Fetch-Site: cross-site
    let (s, _) = raw(
        &app,
        "POST",
        &users,
        &[
            ("content-type", "application/json"),
            ("origin", "http://localhost:9764"),
        ],
        &user("mallory"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = raw(
        &app,
        "POST",
        &users,
        &[("content-type", "application/json"), ("origin", "null")],
        &user("mallory"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = raw(
        &app,
        "POST",
        &users,
        &[
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        &user("mallory"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // state changes without a body are guarded too (DELETE, query-only POSTs)
    let (s, _) = raw(
        &app,
        "DELETE",
        &format!("{ADM}/users/admin"),
        &[("origin", "https://evil.example")],
        "",
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // text/plain without an Origin: 415 naming the expected type
    let (s, b) = raw(
        &app,
        "POST",
        &users,
        &[("content-type", "text/plain")],
        &user("mallory"),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{b}");
    assert!(
        b["description"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{b}"
    );
    for ct in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ] {
        let headers: Vec<(&str, &str)> = if ct.is_empty() {
            vec![]
        } else {
            vec![("content-type", ct)]
        };
        let (s, _) = raw(&app, "POST", &users, &headers, &user("mallory")).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
    }
    // the document endpoints take JSON or YAML, nothing else
    let (s, _) = raw(
        &app,
        "POST",
        &format!("{PUB}/apis/import-openapi"),
        &[("content-type", "text/plain")],
        "openapi: 3.0.1\ninfo: {title: T, version: '1'}\npaths: {}\n",
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, _) = raw(
        &app,
        "POST",
        &format!("{ADM}/throttling/policies/subscription"),
        &[("content-type", "text/plain")],
        r#"{"policyName": "X"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(!user_exists(&app, "mallory").await);

    // what keeps working: same origin (Host), a script without Origin, +json, reads from anywhere
    let (s, b) = raw(
        &app,
        "POST",
        &users,
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("origin", "http://localhost:9763"),
            ("sec-fetch-site", "same-origin"),
        ],
        &user("same-origin"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = raw(
        &app,
        "POST",
        &users,
        &[("content-type", "application/vnd.apim+json")],
        &user("script"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = raw(
        &app,
        "GET",
        &users,
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // an empty body where one is optional needs no type
    let (s, _) = raw(
        &app,
        "POST",
        &format!("{PUB}/apis/change-lifecycle?apiId=nope&action=Publish"),
        &[],
        "",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // configured origins are allowed; others still are not
    let allowed = apim_portal::Portal::new(store)
        .with_allowed_origins(&["https://portal.example.com".to_owned()])
        .router();
    let (s, b) = raw(
        &allowed,
        "POST",
        &users,
        &[
            ("content-type", "application/json"),
            ("origin", "https://portal.example.com"),
            ("sec-fetch-site", "cross-site"),
        ],
        &user("allowed-origin"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = raw(
        &allowed,
        "POST",
        &users,
        &[
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ],
        &user("mallory"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(!user_exists(&app, "mallory").await);
}
