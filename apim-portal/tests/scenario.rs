//! The reference scenario's control-plane steps over HTTP, on SQLite and PostgreSQL:
//! create API → revision → deploy → publish → sign up → application → subscribe → generate keys
//! → token, then the gateway snapshot reflects it.

mod common;

use apim_core::store::Store;
use common::*;
use http::StatusCode;
use serde_json::json;

async fn scenario(store: Store) {
    let app = app(store.clone());

    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis"),
        Some(ADMIN),
        Some(pizza_api()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["lifeCycleStatus"], "CREATED");
    let api_id = r.body["id"].as_str().expect("id").to_owned();

    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis/{api_id}/revisions"),
        Some(ADMIN),
        Some(json!({"description": "first"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let rev = r.body["id"].as_str().expect("revision id").to_owned();

    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis/{api_id}/deploy-revision?revisionId={rev}"),
        Some(ADMIN),
        Some(json!([{"name": "Default", "vhost": "localhost", "displayOnDevportal": true}])),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis/change-lifecycle?apiId={api_id}&action=Publish"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["lifecycleState"]["state"], "Published");

    let r = send(
        &app,
        "GET",
        &format!("{PUB}/apis/{api_id}/lifecycle-history"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.body["count"], 1);
    assert_eq!(r.body["list"][0]["postState"], "PUBLISHED");

    let alice = ("alice", "alice-pass-123");
    let r = send(
        &app,
        "POST",
        &format!("{DEV}/self-signup"),
        None,
        Some(json!({"username": "alice", "password": alice.1})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["roles"], json!(["subscriber"]));

    let r = send(&app, "GET", &format!("{DEV}/apis"), Some(alice), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["count"], 1);
    assert_eq!(r.body["list"][0]["id"], api_id);
    let r = send(
        &app,
        "GET",
        &format!("{DEV}/apis/{api_id}"),
        Some(alice),
        None,
    )
    .await;
    assert_eq!(r.body["endpointURLs"][0]["environmentName"], "Default");

    let r = send(
        &app,
        "POST",
        &format!("{DEV}/applications"),
        Some(alice),
        Some(json!({"name": "PizzaApp", "throttlingPolicy": "10PerMin"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let app_id = r.body["applicationId"].as_str().expect("app id").to_owned();

    let r = send(
        &app,
        "POST",
        &format!("{DEV}/subscriptions"),
        Some(alice),
        Some(json!({"applicationId": app_id, "apiId": api_id, "throttlingPolicy": "Gold"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "UNBLOCKED");

    let r = send(
        &app,
        "POST",
        &format!("{DEV}/applications/{app_id}/generate-keys"),
        Some(alice),
        Some(json!({"keyType": "PRODUCTION", "grantTypesToBeSupported": ["client_credentials"], "validityTime": "3600"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let key = r.body["consumerKey"]
        .as_str()
        .expect("consumer key")
        .to_owned();
    let secret = r.body["consumerSecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let km = r.body["keyMappingId"]
        .as_str()
        .expect("key mapping")
        .to_owned();
    assert!(secret.len() >= 43, "256-bit secret");

    // the secret is shown once
    let r = send(
        &app,
        "GET",
        &format!("{DEV}/applications/{app_id}/oauth-keys"),
        Some(alice),
        None,
    )
    .await;
    assert_eq!(r.body["count"], 1);
    assert!(r.body["list"][0].get("consumerSecret").is_none());

    let r = send(
        &app,
        "POST",
        &format!("{DEV}/applications/{app_id}/oauth-keys/{km}/generate-token"),
        Some(alice),
        Some(json!({"consumerSecret": secret, "validityPeriod": 3600, "scopes": []})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["accessToken"], format!("token-for-{key}"));

    let r = send(
        &app,
        "POST",
        &format!("{DEV}/applications/{app_id}/oauth-keys/{km}/generate-token"),
        Some(alice),
        Some(json!({"consumerSecret": "wrong"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.description().contains("consumerSecret"));

    // the gateway's snapshot reflects every step
    let r = send_raw(
        &app,
        "GET",
        "/internal/data/v1/snapshot?environments=Default",
        Some(format!("Bearer {INTERNAL_TOKEN}")),
        "",
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["seq"].as_u64().expect("seq") > 0);
    assert_eq!(r.body["deployments"][0]["api"]["id"], api_id);
    assert_eq!(
        r.body["deployments"][0]["api"]["lifeCycleStatus"],
        "PUBLISHED"
    );
    assert_eq!(r.body["subscriptions"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["keyMappings"][0]["consumerKey"], key);
    let r = send_raw(
        &app,
        "GET",
        "/internal/data/v1/snapshot?environments=Other",
        Some(format!("Bearer {INTERNAL_TOKEN}")),
        "",
        vec![],
    )
    .await;
    assert_eq!(r.body["deployments"], json!([]));
    let r = send_raw(
        &app,
        "GET",
        "/internal/data/v1/snapshot",
        Some("Bearer nope".into()),
        "",
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send_raw(&app, "GET", "/internal/data/v1/snapshot", None, "", vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // another subscriber sees none of alice's data
    let bob = ("bob", "bob-pass-1234");
    let r = send(
        &app,
        "POST",
        &format!("{DEV}/self-signup"),
        None,
        Some(json!({"username": "bob", "password": bob.1})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for path in [
        format!("{DEV}/applications/{app_id}"),
        format!("{DEV}/applications/{app_id}/oauth-keys"),
    ] {
        let r = send(&app, "GET", &path, Some(bob), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.body.to_string().contains("PizzaApp"));
    }
    let r = send(&app, "GET", &format!("{DEV}/applications"), Some(bob), None).await;
    assert_eq!(r.body["count"], 0);
    let r = send(
        &app,
        "GET",
        &format!("{DEV}/subscriptions"),
        Some(bob),
        None,
    )
    .await;
    assert_eq!(r.body["count"], 0);

    // a subscriber cannot use the Publisher
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis"),
        Some(alice),
        Some(pizza_api()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &app,
        "DELETE",
        &format!("{PUB}/apis/{api_id}"),
        Some(alice),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // the publisher blocks the subscription
    let r = send(
        &app,
        "GET",
        &format!("{PUB}/subscriptions?apiId={api_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.body["count"], 1);
    let sub_id = r.body["list"][0]["subscriptionId"]
        .as_str()
        .expect("sub")
        .to_owned();
    let r = send(&app, "POST", &format!("{PUB}/subscriptions/block-subscription?subscriptionId={sub_id}&blockState=PROD_ONLY_BLOCKED"), Some(ADMIN), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "PROD_ONLY_BLOCKED");
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/subscriptions/unblock-subscription?subscriptionId={sub_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.body["status"], "UNBLOCKED");
}

on_both_backends!(reference_scenario, scenario);

#[tokio::test]
async fn openapi_documents_are_served() {
    let (store, _d) = sqlite().await;
    let app = app(store);
    for (base, path) in [
        (PUB, "/apis/{apiId}/deploy-revision"),
        (DEV, "/applications/{applicationId}/generate-keys"),
        (ADM, "/throttling/blacklist"),
        ("/internal/data/v1", "/snapshot"),
    ] {
        let r = send(&app, "GET", &format!("{base}/openapi.json"), None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{base}");
        assert!(
            r.body["paths"].get(path).is_some(),
            "{base}{path} documented"
        );
        assert_eq!(r.body["servers"][0]["url"], base);
    }
}

async fn import_and_feedback(store: Store) {
    let app = app(store);
    let doc = "openapi: 3.0.3\ninfo: {title: Petstore, version: 1.0.0}\nservers: [{url: 'http://localhost:9080/pets'}]\npaths:\n  /pets: {get: {responses: {'200': {description: ok}}}}\n  /pets/{id}: {get: {responses: {'200': {description: ok}}}, delete: {responses: {'204': {description: gone}}}}\n";
    let r = send(&app, "POST", &format!("{PUB}/apis/import-openapi"), Some(ADMIN), Some(json!({"definition": doc, "additionalProperties": {"context": "/pets", "policies": ["Bronze"]}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["operations"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        r.body["endpointConfig"]["production_endpoints"]["url"],
        "http://localhost:9080/pets"
    );
    let id = r.body["id"].as_str().expect("id").to_owned();
    let r = send(
        &app,
        "GET",
        &format!("{PUB}/apis/{id}/swagger"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.body["info"]["title"], "Petstore");

    let r = send_raw(
        &app,
        "POST",
        &format!("{PUB}/apis/import-openapi"),
        Some(basic(ADMIN)),
        "application/yaml",
        doc.replace("Petstore", "Petstore2").into_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["context"], "/petstore2");

    let r = send(&app, "POST", &format!("{PUB}/apis/{id}/documents"), Some(ADMIN), Some(json!({"name": "Guide", "type": "HOWTO", "sourceType": "MARKDOWN", "inlineContent": "# Hi"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis/{id}/documents"),
        Some(ADMIN),
        Some(json!({"name": "Guide", "type": "HOWTO", "sourceType": "INLINE"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = send(
        &app,
        "GET",
        &format!("{PUB}/apis/{id}/documents"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        r.body["count"], 1,
        "the stored definition is not a document"
    );

    send(
        &app,
        "POST",
        &format!("{PUB}/apis/change-lifecycle?apiId={id}&action=Deploy%20as%20a%20Prototype"),
        Some(ADMIN),
        None,
    )
    .await;
    let carol = ("carol", "carol-pass-123");
    send(
        &app,
        "POST",
        &format!("{DEV}/self-signup"),
        None,
        Some(json!({"username": carol.0, "password": carol.1})),
    )
    .await;
    let r = send(
        &app,
        "PUT",
        &format!("{DEV}/apis/{id}/user-rating"),
        Some(carol),
        Some(json!({"rating": 4})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["avgRating"], "4.0");
    let r = send(
        &app,
        "POST",
        &format!("{DEV}/apis/{id}/comments"),
        Some(carol),
        Some(json!({"content": "tasty"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = send(
        &app,
        "GET",
        &format!("{DEV}/apis/{id}/comments"),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["list"][0]["createdBy"], "carol");
    let r = send(
        &app,
        "GET",
        &format!("{DEV}/apis/{id}/documents"),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["count"], 1);
}

on_both_backends!(openapi_import_documents_feedback, import_and_feedback);
