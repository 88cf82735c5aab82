//! Issue 18, Key Manager side: scopes are granted by their role bindings (1), `apim:*` scopes
//! only to first-party clients and registration only for admins by default (22), lifetimes are
//! capped and a client's tokens end with its secret or keys (13), generate-token honours the
//! client's grants (23).

mod common;

use std::sync::Arc;

use apim_core::artifacts::{
    ArtifactStore, DeployedApi, GatewayData, InMemoryArtifacts, RouteMatch,
};
use apim_core::auth::{KeyValidator, RequestMeta};
use apim_core::event::{Seq, SubscriptionChange};
use apim_core::model::{Api, Application, KeyMapping, KeyType, Scope, Subscription};
use apim_core::store::Store;
use apim_core::ApimError;
use apim_keymanager::{ClientRegistration, JwtValidator, KeyManager};
use common::{basic, post_form, ADMIN_PW};
use http::{HeaderMap, Method, Uri};
use serde_json::json;

const PW: &str = "user-pass-1234";

/// An API with a local scope `read:menu` (no bindings) on GET /menu and the shared scope
/// `admin:orders` (bound to `publisher`) on DELETE /orders.
fn orders_api() -> Api {
    serde_json::from_value(json!({
        "name": "Orders", "context": "/orders", "version": "1.0.0",
        "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:1"}},
        "scopes": [
            {"scope": {"name": "read:menu", "bindings": []}},
            {"scope": {"name": "admin:orders"}, "shared": true}
        ],
        "operations": [
            {"target": "/menu", "verb": "GET", "scopes": ["read:menu"]},
            {"target": "/orders", "verb": "DELETE", "scopes": ["admin:orders"]}
        ]
    }))
    .unwrap()
}

/// Seeds users alice (subscriber) and bob (publisher), the shared scope and the API; returns the
/// API and alice's application.
async fn seed(store: &Store) -> (Api, Application) {
    store
        .create_user("alice", PW, &["subscriber".into()], None)
        .await
        .unwrap();
    store
        .create_user("bob", PW, &["subscriber".into(), "publisher".into()], None)
        .await
        .unwrap();
    store
        .create_shared_scope(Scope {
            id: String::new(),
            name: "admin:orders".into(),
            display_name: None,
            description: None,
            bindings: vec!["publisher".into()],
            usage_count: None,
        })
        .await
        .unwrap();
    let api = store.create_api(orders_api(), "admin").await.unwrap();
    let app: Application =
        serde_json::from_value(json!({"name": "Shop", "throttlingPolicy": "Unlimited"})).unwrap();
    let app = store.create_application(app, "alice").await.unwrap();
    (api, app)
}

/// A client of `app` owned by `owner`, registered in-process, allowing `grants`.
async fn app_client(
    km: &KeyManager,
    app: &Application,
    owner: &str,
    grants: &[&str],
) -> (String, String) {
    let c = km
        .register_client(
            ClientRegistration {
                application_id: Some(app.application_id.clone()),
                grant_types: grants.iter().map(|g| (*g).to_owned()).collect(),
                ..Default::default()
            },
            owner,
        )
        .await
        .unwrap();
    km.store()
        .add_key_mapping(
            &app.application_id,
            KeyType::Production,
            &c.client.client_id,
        )
        .await
        .unwrap();
    (c.client.client_id, c.client_secret)
}

fn scopes_of(body: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = body["scope"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// Gateway artifacts: the API deployed, the application subscribed through `consumer_key`.
fn artifacts(api: &Api, app: &Application, consumer_key: &str) -> Arc<InMemoryArtifacts> {
    let a = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    let sub: Subscription = serde_json::from_value(json!({
        "subscriptionId": "s1", "applicationId": app.application_id, "apiId": api.id,
        "throttlingPolicy": "Unlimited", "status": "UNBLOCKED"
    }))
    .unwrap();
    a.load(GatewayData {
        seq: Seq(1),
        applications: vec![app.clone()],
        key_mappings: vec![KeyMapping {
            key_mapping_id: "m1".into(),
            application_id: app.application_id.clone(),
            key_type: KeyType::Production,
            consumer_key: consumer_key.into(),
            key_manager: "Resident Key Manager".into(),
        }],
        subscriptions: vec![SubscriptionChange {
            subscription: sub,
            api_context: api.context.clone(),
            api_version: api.version.clone(),
        }],
        ..GatewayData::default()
    });
    a
}

/// The gateway's answer code for `token` on operation `op` of `api` (0 = allowed).
async fn gateway_code(v: &JwtValidator, api: &Api, op: usize, token: &str) -> u32 {
    let route = RouteMatch {
        api: Arc::new(DeployedApi::new(
            api.clone(),
            "r1".into(),
            None,
            vec!["Default".into()],
        )),
        operation: op,
        resource_start: 0,
    };
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let uri = Uri::from_static("/orders/1.0.0/orders");
    let meta = RequestMeta {
        method: &Method::DELETE,
        uri: &uri,
        headers: &headers,
        client_ip: None,
        route: Some(&route),
    };
    match v.validate(&meta).await {
        Ok(_) => 0,
        Err(e) => e.code(),
    }
}

on_both_backends!(bound_scopes_need_a_bound_role, |store: Store| async move {
    let srv = common::serve(store.clone()).await;
    let km = &srv.km;
    let (api, app) = seed(&store).await;
    let token_url = format!("{}/oauth2/token", srv.base);
    let (cid, secret) = app_client(
        km,
        &app,
        "alice",
        &["client_credentials", "password", "refresh_token"],
    )
    .await;
    let client_auth = basic(&cid, &secret);
    let asked = "admin:orders read:menu no:such-scope";

    // client_credentials: alice's application; she is no publisher
    let (st, _, body) = post_form(
        &token_url,
        Some(&client_auth),
        &[("grant_type", "client_credentials"), ("scope", asked)],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(scopes_of(&body), ["read:menu"]);
    let v = JwtValidator::new(km.jwks_source(), artifacts(&api, &app, &cid))
        .with_issuer(km.settings().issuer.clone());
    let alice_cc = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(gateway_code(&v, &api, 1, &alice_cc).await, 900910);
    assert_eq!(gateway_code(&v, &api, 0, &alice_cc).await, 0);

    // password grant: alice is refused the bound scope, bob (publisher) gets it
    let (st, _, body) = post_form(
        &token_url,
        Some(&client_auth),
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PW),
            ("scope", asked),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(scopes_of(&body), ["read:menu"]);
    assert_eq!(
        gateway_code(&v, &api, 1, body["access_token"].as_str().unwrap()).await,
        900910
    );
    let (st, _, body) = post_form(
        &token_url,
        Some(&client_auth),
        &[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", PW),
            ("scope", asked),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(scopes_of(&body), ["admin:orders", "read:menu"]);
    assert_eq!(
        gateway_code(&v, &api, 1, body["access_token"].as_str().unwrap()).await,
        0
    );

    // refresh after bob lost the role: the bound scope is dropped
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    store
        .set_roles("bob", &["subscriber".into()])
        .await
        .unwrap();
    let (st, _, body) = post_form(
        &token_url,
        Some(&client_auth),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(scopes_of(&body), ["read:menu"]);
    assert_eq!(
        gateway_code(&v, &api, 1, body["access_token"].as_str().unwrap()).await,
        900910
    );

    // the Developer Portal's generate-token path
    let t = km
        .issue_client_credentials_token(&cid, &["admin:orders".into(), "read:menu".into()], None)
        .await
        .unwrap();
    assert_eq!(t.scope, "read:menu");
    assert_eq!(gateway_code(&v, &api, 1, &t.access_token).await, 900910);

    // an application of a publisher: granted there
    store
        .set_roles("alice", &["subscriber".into(), "publisher".into()])
        .await
        .unwrap();
    let t = km
        .issue_client_credentials_token(&cid, &["admin:orders".into()], None)
        .await
        .unwrap();
    assert_eq!(t.scope, "admin:orders");
    assert_eq!(gateway_code(&v, &api, 1, &t.access_token).await, 0);
});

on_both_backends!(
    management_scopes_and_registration_are_first_party,
    |store: Store| async move {
        let srv = common::serve(store.clone()).await;
        let km = &srv.km;
        seed(&store).await;
        let token_url = format!("{}/oauth2/token", srv.base);
        let register_url = format!("{}/oauth2/register", srv.base);

        // a subscriber cannot register clients (opt-in knob, off by default)
        let res = common::http(
            http::Request::post(&register_url)
                .header("authorization", basic("alice", PW))
                .header("content-type", "application/json")
                .body(
                    br#"{"client_name":"phish","redirect_uris":["https://evil.example/cb"]}"#
                        .to_vec(),
                )
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 400);
        let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(body["error"], "access_denied");
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .contains("allow_user_client_registration"));

        // a client a user owns never obtains apim:* scopes, not even for the admin
        let theirs = km
            .register_client(
                ClientRegistration {
                    grant_types: vec!["password".into()],
                    ..Default::default()
                },
                "alice",
            )
            .await
            .unwrap();
        let (st, _, body) = post_form(
            &token_url,
            Some(&basic(&theirs.client.client_id, &theirs.client_secret)),
            &[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", ADMIN_PW),
                ("scope", "apim:admin apim:api_create"),
            ],
        )
        .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["scope"], "default");

        // a client the admin registered does, as far as the user's roles go
        let res = common::http(
            http::Request::post(&register_url)
                .header("authorization", basic("admin", ADMIN_PW))
                .header("content-type", "application/json")
                .body(br#"{"client_name":"console","grant_types":["password"]}"#.to_vec())
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 201);
        let reg: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        let console = basic(
            reg["client_id"].as_str().unwrap(),
            reg["client_secret"].as_str().unwrap(),
        );
        let (_, _, body) = post_form(
            &token_url,
            Some(&console),
            &[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", ADMIN_PW),
                ("scope", "apim:admin"),
            ],
        )
        .await;
        assert_eq!(body["scope"], "apim:admin");
        let (_, _, body) = post_form(
            &token_url,
            Some(&console),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PW),
                ("scope", "apim:admin apim:subscribe"),
            ],
        )
        .await;
        assert_eq!(body["scope"], "apim:subscribe");
    }
);

#[tokio::test]
async fn user_registration_can_be_opened() {
    let (store, _d) = common::sqlite().await;
    store.seed_defaults(Some(ADMIN_PW)).await.unwrap();
    store
        .create_user("alice", PW, &["subscriber".into()], None)
        .await
        .unwrap();
    let mut settings = apim_keymanager::KeyManagerSettings::new("http://km.test");
    settings.allow_user_client_registration = true;
    let km = KeyManager::new(store, settings).await.unwrap();
    let res = tower::ServiceExt::oneshot(
        km.router(),
        http::Request::post("/oauth2/register")
            .header("authorization", basic("alice", PW))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"client_name":"mine"}"#))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
}

on_both_backends!(lifetimes_are_capped, |store: Store| async move {
    let srv = common::serve(store.clone()).await;
    let km = &srv.km;
    let register_url = format!("{}/oauth2/register", srv.base);
    for (field, value) in [
        ("access_token_lifetime", 315_360_000_000u64),
        ("refresh_token_lifetime", 315_360_000_000u64),
    ] {
        let res = common::http(
            http::Request::post(&register_url)
                .header("authorization", basic("admin", ADMIN_PW))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&json!({ field: value })).unwrap())
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 400, "{field}");
        let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(body["error"], "invalid_client_metadata");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}"
        );
    }
    // a client stored with a longer lifetime (written before the caps) gets the cap
    let c = common::client(km, ClientRegistration::default()).await;
    let mut stored = c.client.clone();
    stored.access_token_lifetime = 315_360_000_000;
    store.update_oauth_client(&stored).await.unwrap();
    let t = km
        .issue_client_credentials_token(&stored.client_id, &[], None)
        .await
        .unwrap();
    assert_eq!(t.expires_in, 86_400);
    // generate-token asking for more than the cap: 400 naming the field
    let e = km
        .issue_client_credentials_token(&stored.client_id, &[], Some(10 * 365 * 86_400))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ApimError::Validation { field, .. } if field == "validityPeriod"),
        "{e}"
    );
});

on_both_backends!(
    new_secret_and_removed_keys_end_the_tokens,
    |store: Store| async move {
        let srv = common::serve(store.clone()).await;
        let km = &srv.km;
        let (_, app) = seed(&store).await;
        let token_url = format!("{}/oauth2/token", srv.base);
        let active = |v: serde_json::Value| v["active"] == true;
        for opaque in [false, true] {
            let c = km
                .register_client(
                    ClientRegistration {
                        token_type: opaque.then(|| "OAUTH".into()),
                        ..Default::default()
                    },
                    "alice",
                )
                .await
                .unwrap();
            let cid = c.client.client_id.clone();
            let (_, _, body) = post_form(
                &token_url,
                Some(&basic(&cid, &c.client_secret)),
                &[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", PW),
                ],
            )
            .await;
            let access = body["access_token"].as_str().unwrap().to_owned();
            let refresh = body["refresh_token"].as_str().unwrap().to_owned();
            assert!(active(km.introspect(&access).await.unwrap()));

            let new_secret = km.regenerate_client_secret(&cid).await.unwrap();
            assert!(
                !active(km.introspect(&access).await.unwrap()),
                "opaque={opaque}"
            );
            let (st, _, body) = post_form(
                &token_url,
                Some(&basic(&cid, &new_secret)),
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await;
            assert_eq!(st, 400, "{body}");
            assert_eq!(body["error"], "invalid_grant");
            // the gateways hear of it
            let snapshot = store.gateway_data().await.unwrap();
            let jti = if opaque {
                apim_core::crypto::sha256_hex(access.as_bytes())
            } else {
                km.key_ring()
                    .verifier()
                    .verify_signature(&access)
                    .unwrap()
                    .jti
            };
            assert!(snapshot.revoked_tokens.iter().any(|r| r.jti == jti));
        }

        // keys removed (clean-up): the application's client tokens end too
        let (cid, _) = app_client(km, &app, "alice", &["client_credentials"]).await;
        let t = km
            .issue_client_credentials_token(&cid, &[], None)
            .await
            .unwrap();
        assert!(active(km.introspect(&t.access_token).await.unwrap()));
        store
            .remove_key_mapping(&app.application_id, KeyType::Production)
            .await
            .unwrap();
        assert!(!active(km.introspect(&t.access_token).await.unwrap()));
    }
);

on_both_backends!(
    generate_token_needs_the_client_credentials_grant,
    |store: Store| async move {
        let km = common::key_manager(store).await;
        let c = common::client(
            &km,
            ClientRegistration {
                grant_types: vec!["password".into()],
                ..Default::default()
            },
        )
        .await;
        let e = km
            .issue_client_credentials_token(&c.client.client_id, &[], None)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ApimError::Validation { field, .. } if field == "grantType"),
            "{e}"
        );
    }
);

// The consent page: an admin approving a client a user registered grants it no `apim:*` scope.
on_both_backends!(
    consent_gives_third_party_clients_no_management_scopes,
    |store: Store| async move {
        let srv = common::serve(store.clone()).await;
        seed(&store).await;
        let redirect = "https://evil.example/cb";
        let c = srv
            .km
            .register_client(
                ClientRegistration {
                    redirect_uris: vec![redirect.into()],
                    grant_types: vec!["authorization_code".into()],
                    ..Default::default()
                },
                "alice",
            )
            .await
            .unwrap();
        let verifier = "v".repeat(50);
        let challenge = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
                &ring::digest::SHA256,
                verifier.as_bytes(),
            ))
        };
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", c.client.client_id.as_str()),
                ("redirect_uri", redirect),
                ("scope", "apim:admin apim:api_create"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("username", "admin"),
                ("password", ADMIN_PW),
                ("consent", "approve"),
            ])
            .finish();
        let res = common::http(
            http::Request::post(format!("{}/oauth2/authorize", srv.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.into_bytes())
                .unwrap(),
        )
        .await
        .unwrap();
        assert!(res.status().is_redirection(), "{}", res.status());
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let query = location.split_once('?').unwrap().1;
        let code = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let (st, _, body) = post_form(
            &format!("{}/oauth2/token", srv.base),
            Some(&basic(&c.client.client_id, &c.client_secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["scope"], "default");
    }
);
