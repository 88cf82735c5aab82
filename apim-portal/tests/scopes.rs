//! Issue 18, portal side: shared scopes with role bindings (`/scopes`), API scopes validated on
//! create and update, a shared scope in use cannot be deleted (1); generate-token honours the
//! keys' grant types (23).

mod common;

use apim_core::store::Store;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use http::StatusCode;
use serde_json::{json, Value};

const CREATOR: (&str, &str) = ("carol", "carol-pass-123");
const ALICE: (&str, &str) = ("alice", "alice-pass-123");

fn api_with(scopes: Value, operations: Value) -> Value {
    let mut api = pizza_api();
    api["scopes"] = scopes;
    api["operations"] = operations;
    api
}

on_both_backends!(shared_scopes_lifecycle, |store: Store| async move {
    store
        .create_user(CREATOR.0, CREATOR.1, &["creator".into()], None)
        .await
        .unwrap();
    let app = app(store.clone());
    let scope =
        json!({"name": "admin:orders", "displayName": "Order admin", "bindings": ["publisher"]});

    // only admins define shared scopes; bad names name the field
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/scopes"),
        Some(CREATOR),
        Some(scope.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/scopes"),
        Some(ADMIN),
        Some(json!({"name": "apim:admin"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.description().contains("name"), "{:?}", r.body);
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/scopes"),
        Some(ADMIN),
        Some(scope.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["bindings"], json!(["publisher"]));
    let id = r.body["id"].as_str().expect("id").to_owned();
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/scopes"),
        Some(ADMIN),
        Some(scope.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // read: list, one, existence by base64url name
    let r = send(&app, "GET", &format!("{PUB}/scopes"), Some(CREATOR), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["count"], 1);
    assert_eq!(r.body["list"][0]["usageCount"], 0);
    let r = send(
        &app,
        "GET",
        &format!("{PUB}/scopes/{id}"),
        Some(CREATOR),
        None,
    )
    .await;
    assert_eq!(r.body["name"], "admin:orders");
    let name = URL_SAFE_NO_PAD.encode("admin:orders");
    let r = send(
        &app,
        "HEAD",
        &format!("{PUB}/scopes/{name}"),
        Some(CREATOR),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let other = URL_SAFE_NO_PAD.encode("no:such");
    let r = send(
        &app,
        "HEAD",
        &format!("{PUB}/scopes/{other}"),
        Some(CREATOR),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // an API's resources may require only defined scopes
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis"),
        Some(CREATOR),
        Some(api_with(
            json!([]),
            json!([{"target": "/order", "verb": "DELETE", "scopes": ["admin:ordres"]}]),
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.description().contains("operations[0].scopes"),
        "{:?}",
        r.body
    );
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis"),
        Some(CREATOR),
        Some(api_with(
            json!([{"scope": {"name": "read:menu", "bindings": []}}, {"scope": {"name": "admin:orders"}, "shared": true}]),
            json!([
                {"target": "/menu", "verb": "GET", "scopes": ["read:menu"]},
                {"target": "/order", "verb": "DELETE", "scopes": ["admin:orders"]}
            ]),
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let api_id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["scopes"][0]["scope"]["name"], "read:menu");

    // a local scope of another API's, or a shared scope's, name is refused
    let mut second = api_with(
        json!([{"scope": {"name": "read:menu"}}]),
        json!([{"target": "/menu", "verb": "GET", "scopes": ["read:menu"]}]),
    );
    second["name"] = "Other".into();
    second["context"] = "/other".into();
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis"),
        Some(ADMIN),
        Some(second.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.description().contains("scopes[0].scope.name"),
        "{:?}",
        r.body
    );
    second["scopes"] = json!([{"scope": {"name": "admin:orders"}}]);
    second["operations"] = json!([]);
    let r = send(
        &app,
        "POST",
        &format!("{PUB}/apis"),
        Some(ADMIN),
        Some(second),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.description().contains("scopes[0].scope.name"),
        "{:?}",
        r.body
    );
    let r = send(
        &app,
        "HEAD",
        &format!("{PUB}/scopes/{}", URL_SAFE_NO_PAD.encode("read:menu")),
        Some(CREATOR),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // in use: usage names the API and resource, delete is refused naming the API
    let r = send(
        &app,
        "GET",
        &format!("{PUB}/scopes/{id}/usage"),
        Some(CREATOR),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["usedApiList"][0]["name"], "PizzaShackAPI");
    assert_eq!(
        r.body["usedApiList"][0]["usedResourceList"],
        json!([{"target": "/order", "verb": "DELETE"}])
    );
    let r = send(
        &app,
        "DELETE",
        &format!("{PUB}/scopes/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(r.description().contains("PizzaShackAPI"), "{:?}", r.body);

    // bindings change; the name does not
    let r = send(
        &app,
        "PUT",
        &format!("{PUB}/scopes/{id}"),
        Some(ADMIN),
        Some(json!({"name": "admin:orders", "bindings": ["admin"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["bindings"], json!(["admin"]));
    assert_eq!(r.body["usageCount"], 1);
    let r = send(
        &app,
        "PUT",
        &format!("{PUB}/scopes/{id}"),
        Some(ADMIN),
        Some(json!({"name": "admin:other"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.description().contains("name"));

    // once no API uses it, it can go
    let r = send(
        &app,
        "DELETE",
        &format!("{PUB}/apis/{api_id}"),
        Some(CREATOR),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = send(
        &app,
        "DELETE",
        &format!("{PUB}/scopes/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = send(
        &app,
        "GET",
        &format!("{PUB}/scopes/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // the API's own scopes went with it
    let r = send(
        &app,
        "HEAD",
        &format!("{PUB}/scopes/{}", URL_SAFE_NO_PAD.encode("read:menu")),
        Some(CREATOR),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
});

on_both_backends!(
    generate_token_needs_a_client_credentials_key,
    |store: Store| async move {
        store
            .create_user(ALICE.0, ALICE.1, &["subscriber".into()], None)
            .await
            .unwrap();
        let app = app(store.clone());
        let r = send(
            &app,
            "POST",
            &format!("{DEV}/applications"),
            Some(ALICE),
            Some(json!({"name": "App", "throttlingPolicy": "10PerMin"})),
        )
        .await;
        let app_id = r.body["applicationId"].as_str().unwrap().to_owned();
        let r = send(
        &app,
        "POST",
        &format!("{DEV}/applications/{app_id}/generate-keys"),
        Some(ALICE),
        Some(json!({"keyType": "PRODUCTION", "grantTypesToBeSupported": ["password", "refresh_token"]})),
    )
    .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let km = r.body["keyMappingId"].as_str().unwrap().to_owned();
        let secret = r.body["consumerSecret"].as_str().unwrap().to_owned();
        let r = send(
            &app,
            "POST",
            &format!("{DEV}/applications/{app_id}/oauth-keys/{km}/generate-token"),
            Some(ALICE),
            Some(json!({"consumerSecret": secret})),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        assert!(r.description().contains("grantType"), "{:?}", r.body);
    }
);

on_both_backends!(
    imported_scopes_are_defined_with_their_bindings,
    |store: Store| async move {
        let app = app(store);
        let doc = json!({
            "openapi": "3.0.3",
            "info": {"title": "Petstore", "version": "1.0.0"},
            "servers": [{"url": "http://localhost:9080/pets"}],
            "components": {"securitySchemes": {"default": {
                "type": "oauth2",
                "flows": {"implicit": {"authorizationUrl": "https://test.com", "scopes": {"write:pets": "", "read:pets": ""}}},
                "x-scopes-bindings": {"write:pets": "publisher, admin"}
            }}},
            "paths": {"/pets": {
                "get": {"security": [{"default": ["read:pets"]}], "responses": {"200": {"description": "ok"}}},
                "post": {"security": [{"default": ["write:pets"]}], "responses": {"200": {"description": "ok"}}}
            }}
        });
        let r = send(
            &app,
            "POST",
            &format!("{PUB}/apis/import-openapi"),
            Some(ADMIN),
            Some(json!({"definition": doc, "additionalProperties": {"context": "/pets"}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let mut scopes: Vec<(String, Value)> = r.body["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["scope"]["name"].as_str().unwrap().to_owned(),
                    s["scope"]["bindings"].clone(),
                )
            })
            .collect();
        scopes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            scopes,
            vec![
                ("read:pets".to_owned(), json!([])),
                ("write:pets".to_owned(), json!(["publisher", "admin"]))
            ]
        );
    }
);
