//! Sends generated bodies (mutations of a valid body: fields removed, retyped, over-long,
//! unknown fields added, broken JSON) to every write endpoint, and asserts that none answers
//! 5xx and that a refused request changes no stored data.

mod common;

use apim_core::store::Store;
use common::*;
use serde_json::{json, Value};

const REPLACEMENTS: [fn() -> Value; 8] = [
    || Value::Null,
    || json!(0),
    || json!(-1),
    || json!(1e300),
    || json!(""),
    || json!("x".repeat(5000)),
    || json!([{}]),
    || json!({"a": "\u{0}"}),
];

/// Mutations of `v` up to two levels deep.
fn mutations(v: &Value) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "",
        "null",
        "[]",
        "{}",
        "{",
        "\"s\"",
        "[1,2]",
        "{\"a\":}",
        "\u{feff}{}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    out.push(vec![0xff, 0xfe, 0x00]);
    let mut values = Vec::new();
    mutate(v, &mut values, 0);
    out.extend(
        values
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap_or_default()),
    );
    out
}

fn mutate(v: &Value, out: &mut Vec<Value>, depth: usize) {
    match v {
        Value::Object(m) => {
            let mut extra = m.clone();
            extra.insert("zzUnknown".into(), json!(1));
            out.push(Value::Object(extra));
            for (k, child) in m {
                let mut removed = m.clone();
                removed.remove(k);
                out.push(Value::Object(removed));
                for r in REPLACEMENTS {
                    let mut changed = m.clone();
                    changed.insert(k.clone(), r());
                    out.push(Value::Object(changed));
                }
                if depth < 2 {
                    let mut inner = Vec::new();
                    mutate(child, &mut inner, depth + 1);
                    for i in inner {
                        let mut changed = m.clone();
                        changed.insert(k.clone(), i);
                        out.push(Value::Object(changed));
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            out.push(json!([]));
            let mut inner = Vec::new();
            mutate(&a[0], &mut inner, depth + 1);
            for i in inner {
                let mut changed = a.clone();
                changed[0] = i;
                out.push(Value::Array(changed));
            }
        }
        _ => {}
    }
}

/// Everything a refused request must leave as it was.
async fn fingerprint(store: &Store, app: &axum::Router, api_id: &str, app_id: &str) -> String {
    let data = store.gateway_data().await.expect("gateway data");
    let apis = store.list_apis(None, 1000, 0).await.expect("apis");
    let users = store.list_users().await.expect("users");
    let envs = store.list_environments().await.expect("envs");
    let revs = store.list_revisions(api_id).await.expect("revisions");
    let keys = store.key_mappings(app_id).await.expect("keys");
    let roles = store.list_roles().await.expect("roles");
    let docs = send(
        app,
        "GET",
        &format!("{PUB}/apis/{api_id}/documents"),
        Some(ADMIN),
        None,
    )
    .await
    .body;
    let comments = send(
        app,
        "GET",
        &format!("{DEV}/apis/{api_id}/comments"),
        Some(ADMIN),
        None,
    )
    .await
    .body;
    let ratings = send(
        app,
        "GET",
        &format!("{DEV}/apis/{api_id}/ratings"),
        Some(ADMIN),
        None,
    )
    .await
    .body;
    serde_json::to_string(&json!([
        data, apis.0, users, envs, revs, keys, roles, docs, comments, ratings
    ]))
    .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_5xx_and_no_change_on_refusal() {
    let (store, _dir) = sqlite().await;
    let app = app(store.clone());
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis"),
        Some(ADMIN),
        Some(pizza_api()),
    )
    .await;
    let api_id = r.body["id"].as_str().expect("api").to_owned();
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis/{api_id}/revisions"),
        Some(ADMIN),
        None,
    )
    .await;
    let rev = r.body["id"].as_str().expect("rev").to_owned();
    send(
        &app,
        "POST",
        &format!("{PUB}/apis/change-lifecycle?apiId={api_id}&action=Publish"),
        Some(ADMIN),
        None,
    )
    .await;
    let r = send(
        &app,
        "POST",
        &format!("{DEV}/applications"),
        Some(ADMIN),
        Some(json!({"name": "Base"})),
    )
    .await;
    let app_id = r.body["applicationId"].as_str().expect("app").to_owned();
    let r = send(
        &app,
        "POST",
        &format!("{DEV}/applications/{app_id}/generate-keys"),
        Some(ADMIN),
        Some(json!({"keyType": "PRODUCTION"})),
    )
    .await;
    let km = r.body["keyMappingId"].as_str().expect("km").to_owned();
    let r = send(&app, "POST", &format!("{ADM}/throttling/blacklist"), Some(ADMIN), Some(json!({"conditionType": "IP", "conditionValue": {"fixedIp": "10.0.0.1", "invert": false}}))).await;
    let block = r.body["conditionId"].as_str().expect("block").to_owned();
    let r = send(
        &app,
        "GET",
        &format!("{ADM}/throttling/policies/subscription"),
        Some(ADMIN),
        None,
    )
    .await;
    let gold = r.body["list"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["policyName"] == "Gold")
        .cloned()
        .expect("Gold");
    let gold_id = gold["policyId"].as_str().expect("id").to_owned();
    let mut gold_body = gold.clone();
    gold_body
        .as_object_mut()
        .expect("object")
        .remove("policyId");

    let r = send(
        &app,
        "POST",
        &format!("{ADM}/users"),
        Some(ADMIN),
        Some(json!({"username": "victim", "password": "victim-pass-1", "roles": ["subscriber"]})),
    )
    .await;
    assert_eq!(r.status, http::StatusCode::CREATED);
    let mut api2 = pizza_api();
    api2["context"] = json!("/pizza2");
    let openapi = json!({"openapi": "3.0.3", "info": {"title": "Fuzz", "version": "1.0.0"},
        "servers": [{"url": "http://localhost:9080"}], "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}}});
    let endpoints: Vec<(&str, String, Value)> = vec![
        ("POST", format!("{PUB}/apis"), api2),
        ("PUT", format!("{PUB}/apis/{api_id}"), pizza_api()),
        (
            "POST",
            format!("{PUB}/apis/import-openapi"),
            json!({"definition": openapi.clone(), "additionalProperties": {"context": "/fuzz"}}),
        ),
        ("PUT", format!("{PUB}/apis/{api_id}/swagger"), openapi),
        (
            "POST",
            format!("{PUB}/apis/{api_id}/revisions"),
            json!({"description": "d"}),
        ),
        (
            "POST",
            format!("{PUB}/apis/{api_id}/deploy-revision?revisionId={rev}"),
            json!([{"name": "Default", "vhost": "localhost", "displayOnDevportal": true}]),
        ),
        (
            "POST",
            format!("{PUB}/apis/{api_id}/documents"),
            json!({"name": "Doc", "type": "HOWTO", "sourceType": "URL", "sourceUrl": "https://example.com/doc"}),
        ),
        (
            "POST",
            format!("{DEV}/self-signup"),
            json!({"username": "fuzzer", "password": "fuzzer-pass-1", "email": "f@example.com"}),
        ),
        (
            "POST",
            format!("{DEV}/applications"),
            json!({"name": "FuzzApp", "throttlingPolicy": "10PerMin", "description": "d", "tokenType": "JWT", "attributes": {"k": "v"}}),
        ),
        (
            "PUT",
            format!("{DEV}/applications/{app_id}"),
            json!({"name": "Base", "throttlingPolicy": "Unlimited"}),
        ),
        (
            "POST",
            format!("{DEV}/subscriptions"),
            json!({"applicationId": app_id, "apiId": api_id, "throttlingPolicy": "Gold"}),
        ),
        (
            "POST",
            format!("{DEV}/applications/{app_id}/generate-keys"),
            json!({"keyType": "SANDBOX", "grantTypesToBeSupported": ["client_credentials"], "callbackUrl": "https://cb.example.com", "scopes": ["default"], "validityTime": 3600}),
        ),
        (
            "POST",
            format!("{DEV}/applications/{app_id}/oauth-keys/{km}/generate-token"),
            json!({"consumerSecret": "x", "validityPeriod": 60, "scopes": ["a"]}),
        ),
        (
            "POST",
            format!("{DEV}/applications/{app_id}/api-keys/PRODUCTION/generate"),
            json!({"validityPeriod": 60, "additionalProperties": {"permittedIP": "10.0.0.1"}}),
        ),
        (
            "POST",
            format!("{DEV}/applications/{app_id}/api-keys/PRODUCTION/revoke"),
            json!({"apikey": "k"}),
        ),
        (
            "PUT",
            format!("{DEV}/apis/{api_id}/user-rating"),
            json!({"rating": 3}),
        ),
        (
            "POST",
            format!("{DEV}/apis/{api_id}/comments"),
            json!({"content": "c"}),
        ),
        (
            "POST",
            format!("{ADM}/throttling/policies/subscription"),
            json!({"policyName": "Fuzz", "defaultLimit": {"type": "REQUESTCOUNTLIMIT", "requestCount": {"timeUnit": "min", "unitTime": 1, "requestCount": 10}}}),
        ),
        (
            "PUT",
            format!("{ADM}/throttling/policies/subscription/{gold_id}"),
            gold_body,
        ),
        (
            "POST",
            format!("{ADM}/throttling/blacklist"),
            json!({"conditionType": "IPRANGE", "conditionValue": {"startingIp": "10.0.0.1", "endingIp": "10.0.0.9", "invert": false}, "conditionStatus": true}),
        ),
        (
            "PATCH",
            format!("{ADM}/throttling/blacklist/{block}"),
            json!({"conditionStatus": false}),
        ),
        (
            "POST",
            format!("{ADM}/environments"),
            json!({"name": "Edge", "displayName": "Edge", "vhosts": [{"host": "edge.example.com", "httpPort": 80}]}),
        ),
        (
            "POST",
            format!("{ADM}/users"),
            json!({"username": "fuzzuser", "password": "fuzz-pass-12", "roles": ["creator"]}),
        ),
        (
            "PUT",
            format!("{ADM}/users/victim/roles"),
            json!({"roles": ["creator"]}),
        ),
        (
            "PUT",
            format!("{ADM}/users/victim/password"),
            json!({"password": "victim-pass-2"}),
        ),
        ("POST", format!("{ADM}/roles"), json!({"name": "fuzzrole"})),
    ];
    // query-string endpoints
    let queries = [
        format!("{PUB}/apis/change-lifecycle?apiId={api_id}&action=Fly"),
        format!("{PUB}/apis/change-lifecycle?apiId={api_id}"),
        format!("{PUB}/apis/change-lifecycle?apiId=%ZZ&action=Publish"),
        format!("{PUB}/apis/change-lifecycle?apiId={api_id}&action=Retire"),
        format!("{PUB}/apis/{api_id}/restore-revision?revisionId=nope"),
        format!("{PUB}/apis/{api_id}/undeploy-revision?revisionId=nope"),
        format!("{PUB}/subscriptions/block-subscription?subscriptionId=nope&blockState=BLOCKED"),
        format!("{PUB}/subscriptions/block-subscription?subscriptionId=nope&blockState=PAUSED"),
        format!("{PUB}/subscriptions/unblock-subscription"),
        format!("{PUB}/apis?limit=abc"),
    ];
    let mut sent = 0;
    for path in &queries {
        let before = fingerprint(&store, &app, &api_id, &app_id).await;
        let method = if path.contains("apis?") {
            "GET"
        } else {
            "POST"
        };
        let r = send(&app, method, path, Some(ADMIN), None).await;
        assert!(
            r.status.is_client_error(),
            "{path}: {} {:?}",
            r.status,
            r.body
        );
        assert_eq!(
            before,
            fingerprint(&store, &app, &api_id, &app_id).await,
            "{path} changed data"
        );
    }
    for (method, path, valid) in &endpoints {
        for body in mutations(valid) {
            let before = fingerprint(&store, &app, &api_id, &app_id).await;
            let r = send_raw(
                &app,
                method,
                path,
                Some(basic(ADMIN)),
                "application/json",
                body.clone(),
            )
            .await;
            sent += 1;
            assert!(
                !r.status.is_server_error(),
                "{method} {path} with {} -> {} {:?}",
                String::from_utf8_lossy(&body),
                r.status,
                r.body
            );
            if r.status.is_client_error() {
                let after = fingerprint(&store, &app, &api_id, &app_id).await;
                assert_eq!(
                    before,
                    after,
                    "{method} {path} refused {} but changed data",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
    assert!(sent > 1000, "only {sent} bodies sent");
}
