//! Security regressions that need the Key Manager and the portal wired together (issue 18):
//! the Developer Portal's API-key revoke through [`apim::wiring::KeyManagerHooks`], and the
//! same-origin guard on the Key Manager's endpoints.

use std::sync::Arc;

use apim::core::store::Store;
use apim::keymanager::{KeyManager, KeyManagerSettings};
use apim::portal::axum::body::Body;
use apim::portal::axum::Router;
use apim::portal::Portal;
use apim::wiring::KeyManagerHooks;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use tower::ServiceExt;

const DEV: &str = "/api/am/devportal/v3";

struct Env {
    store: Store,
    km: KeyManager,
    app: Router,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("apim.db").display());
    let store = Store::connect_url(&url, None, 5).await.unwrap();
    store.seed_defaults(Some("admin-pass-123")).await.unwrap();
    let km = KeyManager::new(store.clone(), KeyManagerSettings::new("http://km.test"))
        .await
        .unwrap();
    let hooks = Arc::new(KeyManagerHooks(km.clone()));
    let portal = Portal::new(store.clone())
        .with_token_issuer(hooks.clone())
        .with_api_key_issuer(hooks.clone())
        .with_introspector(hooks);
    let app = portal
        .router()
        .merge(apim::wiring::key_manager_router(&km, &[]));
    Env {
        store,
        km,
        app,
        _dir: dir,
    }
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    user: Option<(&str, &str)>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some((u, p)) = user {
        req = req.header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))),
        );
    }
    let has_ct = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if body.is_some() && !has_ct {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map_or_else(Vec::new, |b| serde_json::to_vec(&b).unwrap());
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn jti(jwt: &str) -> String {
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

async fn user_with_app(app: &Router, name: &str) -> (String, String) {
    let pass = format!("{name}-password-1");
    let (s, b) = call(
        app,
        "POST",
        &format!("{DEV}/self-signup"),
        None,
        &[],
        Some(json!({"username": name, "password": pass})),
    )
    .await;
    assert!(s == 200 || s == 201, "signup {s} {b}");
    let (s, b) = call(
        app,
        "POST",
        &format!("{DEV}/applications"),
        Some((name, &pass)),
        &[],
        Some(json!({"name": format!("{name}-app"), "throttlingPolicy": "Unlimited"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    (pass, b["applicationId"].as_str().unwrap().to_owned())
}

/// Issue 18 item 3: B cannot revoke A's API key, nor A's access token, through B's own
/// application; A's credentials keep working. A can revoke its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_revoke_is_bound_to_the_application_and_key_type() {
    let e = env().await;
    let (pass_a, app_a) = user_with_app(&e.app, "alice").await;
    let (pass_b, app_b) = user_with_app(&e.app, "bob").await;
    let a = Some(("alice", pass_a.as_str()));
    let b = Some(("bob", pass_b.as_str()));

    // A's API key and A's JWT access token
    let (s, key) = call(
        &e.app,
        "POST",
        &format!("{DEV}/applications/{app_a}/api-keys/PRODUCTION/generate"),
        a,
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{key}");
    let key_a = key["apikey"].as_str().unwrap().to_owned();
    let (s, keys) = call(
        &e.app,
        "POST",
        &format!("{DEV}/applications/{app_a}/generate-keys"),
        a,
        &[],
        Some(json!({"keyType": "PRODUCTION", "grantTypesToBeSupported": ["client_credentials"]})),
    )
    .await;
    assert_eq!(s, 200, "{keys}");
    let (s, tok) = call(
        &e.app,
        "POST",
        &format!(
            "{DEV}/applications/{app_a}/oauth-keys/{}/generate-token",
            keys["keyMappingId"].as_str().unwrap()
        ),
        a,
        &[],
        Some(json!({"consumerSecret": keys["consumerSecret"]})),
    )
    .await;
    assert_eq!(s, 200, "{tok}");
    let token_a = tok["accessToken"].as_str().unwrap().to_owned();

    // B, through B's own application: neither is revoked
    for cred in [&key_a, &token_a] {
        let (s, body) = call(
            &e.app,
            "POST",
            &format!("{DEV}/applications/{app_b}/api-keys/PRODUCTION/revoke"),
            b,
            &[],
            Some(json!({ "apikey": cred })),
        )
        .await;
        assert_eq!(s, 404, "{body}");
        assert!(!e.store.is_revoked(&jti(cred)).await.unwrap());
    }
    // A itself cannot revoke its access token through the API-key endpoint either
    let (s, _) = call(
        &e.app,
        "POST",
        &format!("{DEV}/applications/{app_a}/api-keys/PRODUCTION/revoke"),
        a,
        &[],
        Some(json!({ "apikey": token_a })),
    )
    .await;
    assert_eq!(s, 404);
    let intro = e.km.introspect(&token_a).await.unwrap();
    assert_eq!(intro["active"], true, "A's token keeps working");
    // nor its PRODUCTION key through the SANDBOX path
    let (s, _) = call(
        &e.app,
        "POST",
        &format!("{DEV}/applications/{app_a}/api-keys/SANDBOX/revoke"),
        a,
        &[],
        Some(json!({ "apikey": key_a })),
    )
    .await;
    assert_eq!(s, 404);
    assert!(!e.store.is_revoked(&jti(&key_a)).await.unwrap());

    // the owner, through the key's application and type: revoked
    let (s, body) = call(
        &e.app,
        "POST",
        &format!("{DEV}/applications/{app_a}/api-keys/PRODUCTION/revoke"),
        a,
        &[],
        Some(json!({ "apikey": key_a })),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(e.store.is_revoked(&jti(&key_a)).await.unwrap());
}

/// Issue 18 item 18 on the Key Manager: the consent form and DCR refuse cross-site posts; the
/// client-authenticated token endpoint stays open to browser-based clients of other origins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_manager_refuses_cross_site_state_changes() {
    let e = env().await;
    let admin = Some(("admin", "admin-pass-123"));
    let evil = [
        ("origin", "https://evil.example"),
        ("host", "localhost:9763"),
    ];
    let (s, body) = call(
        &e.app,
        "POST",
        "/oauth2/register",
        admin,
        &[
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
        ],
        Some(json!({"client_name": "csrf"})),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = call(
        &e.app,
        "POST",
        "/oauth2/register",
        admin,
        &evil,
        Some(json!({"client_name": "csrf"})),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", "https://evil.example"),
        ("host", "localhost:9763"),
    ];
    let (s, _) = call(&e.app, "POST", "/oauth2/authorize", None, &form, None).await;
    assert_eq!(s, 403);
    // the token endpoint answers as OAuth (here: unknown client), not with the guard's 403
    let req = http::Request::post("/oauth2/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://spa.example")
        .header("sec-fetch-site", "cross-site")
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode("nobody:nothing")),
        )
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    let res = e.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // same origin and scripts without Origin still register clients
    let (s, body) = call(
        &e.app,
        "POST",
        "/oauth2/register",
        admin,
        &[
            ("origin", "http://localhost:9763"),
            ("host", "localhost:9763"),
        ],
        Some(json!({"client_name": "same-origin"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
}

/// Issue 18 item 5: an access token of a deleted account is no credential for a later account
/// that takes the same name; the new account's own tokens work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_token_does_not_reach_a_new_account_of_the_same_name() {
    let e = env().await;
    let creator = ["creator".to_owned()];
    e.store
        .create_user("dora", "dora-password-1", &creator, None)
        .await
        .unwrap();
    let client =
        e.km.register_client(
            apim::keymanager::ClientRegistration {
                grant_types: vec!["password".into()],
                ..Default::default()
            },
            "admin",
        )
        .await
        .unwrap();
    let token = |password: &'static str| {
        let app = e.app.clone();
        let (id, secret) = (
            client.client.client_id.clone(),
            client.client_secret.clone(),
        );
        async move {
            let req = http::Request::post("/oauth2/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "grant_type=password&username=dora&password={password}&scope=apim:api_create\
                     &client_id={id}&client_secret={secret}"
                )))
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            assert_eq!(res.status(), 200);
            let bytes = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            v["access_token"].as_str().unwrap().to_owned()
        }
    };
    let list = |bearer: String| {
        let app = e.app.clone();
        async move {
            let req = http::Request::get("/api/am/publisher/v4/apis")
                .header("authorization", format!("Bearer {bearer}"))
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap().status().as_u16()
        }
    };
    let old = token("dora-password-1").await;
    assert_eq!(list(old.clone()).await, 200);
    e.store.delete_user("dora").await.unwrap();
    assert_eq!(list(old.clone()).await, 401, "the account is gone");
    // the token's `iat` has whole seconds: the new account comes a full second later
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    e.store
        .create_user("dora", "dora-password-2", &creator, None)
        .await
        .unwrap();
    assert_eq!(list(old).await, 401, "a token of the earlier account");
    assert_eq!(list(token("dora-password-2").await).await, 200);
}
