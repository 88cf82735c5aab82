//! Accounts at the token endpoint (issue 18 items 5, 11): a password change or an account
//! deletion ends what the account's grants could mint, refresh rotation never extends a grant,
//! a deleted owner's client stops issuing tokens, and password guessing is locked out.

mod common;

use std::time::Duration;

use apim_core::store::{PasswordPolicy, Store};
use apim_core::time::now_secs;
use apim_keymanager::ClientRegistration;
use common::{post_form, serve, Server};
use http::StatusCode;

async fn server() -> (Server, Store, Option<tempfile::TempDir>) {
    let (store, dir) = common::sqlite().await;
    store
        .set_password_policy(PasswordPolicy::for_tests())
        .unwrap();
    let srv = serve(store.clone()).await;
    (srv, store, Some(dir))
}

async fn subscriber(store: &Store, name: &str, pw: &str) {
    store
        .create_user(name, pw, &["subscriber".into()], None)
        .await
        .unwrap();
}

/// A client owned by `owner` with the password, refresh and client-credentials grants.
async fn client_of(srv: &Server, owner: &str, refresh_lifetime: u64) -> (String, String) {
    let reg = ClientRegistration {
        client_name: Some("app".into()),
        grant_types: vec![
            "password".into(),
            "refresh_token".into(),
            "client_credentials".into(),
        ],
        refresh_token_lifetime: refresh_lifetime,
        ..ClientRegistration::default()
    };
    let c = srv.km.register_client(reg, owner).await.unwrap();
    (c.client.client_id, c.client_secret)
}

async fn token(
    srv: &Server,
    (id, secret): &(String, String),
    form: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let url = format!("{}/oauth2/token", srv.base);
    post_form(&url, Some(&common::basic(id, secret)), form).await
}

async fn password_grant(srv: &Server, c: &(String, String), user: &str, pw: &str) -> String {
    let (s, _, j) = token(
        srv,
        c,
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", pw),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    j["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn password_change_revokes_refresh_tokens() {
    let (srv, store, _d) = server().await;
    subscriber(&store, "carla", "first-passw0rd").await;
    let c = client_of(&srv, "carla", 0).await;
    let rt = password_grant(&srv, &c, "carla", "first-passw0rd").await;

    store
        .set_password("carla", "second-passw0rd")
        .await
        .unwrap();
    let (s, _, j) = token(
        &srv,
        &c,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
    assert_eq!(j["error"], "invalid_grant");
    // the old password is refused too, the new one works
    let (s, _, j) = token(
        &srv,
        &c,
        &[
            ("grant_type", "password"),
            ("username", "carla"),
            ("password", "first-passw0rd"),
        ],
    )
    .await;
    assert_eq!(
        (s, j["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    password_grant(&srv, &c, "carla", "second-passw0rd").await;
}

#[tokio::test]
async fn refresh_rotation_never_outlives_the_grants_first_refresh_token() {
    let (srv, store, _d) = server().await;
    subscriber(&store, "dora", "first-passw0rd").await;
    // refresh tokens live 2 s
    let c = client_of(&srv, "dora", 2).await;
    let start = now_secs();
    let rt1 = password_grant(&srv, &c, "dora", "first-passw0rd").await;
    while now_secs() < start + 1 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _, j) = token(
        &srv,
        &c,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let rt2 = j["refresh_token"].as_str().unwrap().to_owned();
    // past the first refresh token's end: the rotated one ended with it
    while now_secs() < start + 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _, j) = token(
        &srv,
        &c,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
    assert_eq!(j["error"], "invalid_grant");
}

#[tokio::test]
async fn a_deleted_owners_client_issues_nothing() {
    let (srv, store, _d) = server().await;
    subscriber(&store, "eddie", "first-passw0rd").await;
    let c = client_of(&srv, "eddie", 0).await;
    let rt = password_grant(&srv, &c, "eddie", "first-passw0rd").await;
    let (s, _, j) = token(&srv, &c, &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, StatusCode::OK, "{j}");

    store.delete_user("eddie").await.unwrap();
    let (s, _, j) = token(&srv, &c, &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{j}");
    assert_eq!(j["error"], "invalid_client");
    // a new account with the same name does not bring the client back
    subscriber(&store, "eddie", "other-passw0rd").await;
    let (s, _, j) = token(&srv, &c, &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{j}");
    let (s, _, j) = token(
        &srv,
        &c,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert!(s.is_client_error(), "{s} {j}");
}

#[tokio::test]
async fn a_client_left_by_an_earlier_account_is_not_inherited_by_a_new_one() {
    // a client whose owner account is gone but the client stayed (as the previous version
    // left them on deletion): it is bound to that account's id, so a new sign-up with the
    // name gets nothing from it
    let (srv, store, _d) = server().await;
    let c = client_of(&srv, "hank", 0).await;
    subscriber(&store, "hank", "first-passw0rd").await;
    let (s, _, j) = token(&srv, &c, &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{j}");
    assert_eq!(j["error"], "invalid_client");
}

#[tokio::test]
async fn password_guessing_at_the_token_endpoint_is_locked_out() {
    let (srv, store, _d) = server().await;
    store
        .set_password_policy(PasswordPolicy {
            free_failures: 3,
            base_lockout: Duration::from_secs(30),
            ..PasswordPolicy::for_tests()
        })
        .unwrap();
    subscriber(&store, "gina", "right-passw0rd").await;
    let c = client_of(&srv, "gina", 0).await;
    let grant = |pw: &'static str| {
        [
            ("grant_type", "password"),
            ("username", "gina"),
            ("password", pw),
        ]
    };
    for _ in 0..3 {
        let (s, _, j) = token(&srv, &c, &grant("wrong-guess")).await;
        assert_eq!(
            (s, j["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
    }
    let hashed = store.password_stats().hashed;
    let (s, h, j) = token(&srv, &c, &grant("right-passw0rd")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{j}");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(
        store.password_stats().hashed,
        hashed,
        "refused without hashing"
    );
}

#[tokio::test]
async fn a_gateway_passes_its_clients_address_and_the_lock_out_on() {
    use apim_keymanager::validator::UserVerifier;
    let (store, _d) = common::sqlite().await;
    store
        .set_password_policy(PasswordPolicy {
            free_failures: 2,
            base_lockout: Duration::from_secs(30),
            ..PasswordPolicy::for_tests()
        })
        .unwrap();
    subscriber(&store, "lena", "right-passw0rd").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = apim_keymanager::KeyManagerSettings::new(&base);
    settings.internal_token = Some("internal-secret".into());
    let km = apim_keymanager::KeyManager::new(store.clone(), settings)
        .await
        .unwrap();
    let router = km.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let remote = apim_keymanager::HttpUserVerifier::new(&base, "internal-secret").unwrap();

    let attacker = Some("203.0.113.9".parse().unwrap());
    for name in ["mona", "nina"] {
        assert!(remote
            .verify_from(name, "guess-1234", attacker)
            .await
            .unwrap()
            .is_none());
    }
    let e = remote
        .verify_from("lena", "right-passw0rd", attacker)
        .await
        .unwrap_err();
    let apim_core::ApimError::TooManyAttempts { retry_after } = e else {
        panic!("{e:?}")
    };
    assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");
    let other = Some("198.51.100.2".parse().unwrap());
    assert!(remote
        .verify_from("lena", "right-passw0rd", other)
        .await
        .unwrap()
        .is_some());
}
