//! The Key Manager driven by a standard OAuth2 client (the `oauth2` crate) over real HTTP:
//! discovery, registration, client credentials, JWKS verification, introspection, revocation;
//! refresh-token rotation; authorization code + PKCE S256.

mod common;

use apim_core::store::Store;
use apim_keymanager::jwks::{JwkSet, JwksSource};
use apim_keymanager::jwt::Validation;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl,
    PkceCodeChallenge, RedirectUrl, RefreshToken, ResourceOwnerPassword, ResourceOwnerUsername,
    RevocationUrl, Scope, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde_json::Value;

async fn get_json(url: &str) -> Value {
    let res = common::http(http::Request::get(url).body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "GET {url}");
    serde_json::from_slice(res.body()).unwrap()
}

/// Discovers the endpoints and registers a client with the admin's Basic credential.
async fn discover_and_register(base: &str, body: Value) -> (Value, Value) {
    let meta = get_json(&format!("{base}/.well-known/oauth-authorization-server")).await;
    assert_eq!(
        meta,
        get_json(&format!("{base}/.well-known/openid-configuration")).await
    );
    let reg_url = meta["registration_endpoint"].as_str().unwrap();
    let res = common::http(
        http::Request::post(reg_url)
            .header("content-type", "application/json")
            .header("authorization", common::basic("admin", common::ADMIN_PW))
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let reg: Value = serde_json::from_slice(res.body()).unwrap();
    assert!(reg["client_secret"].as_str().unwrap().len() >= 43);
    (meta, reg)
}

on_both_backends!(
    client_credentials_introspect_revoke,
    |store: Store| async move {
        common::define_scopes(&store, &["read:menu"]).await;
        let srv = common::serve(store).await;
        let (meta, reg) =
            discover_and_register(&srv.base, serde_json::json!({"client_name": "cli"})).await;
        let s = |k: &str| meta[k].as_str().unwrap().to_owned();
        let client = BasicClient::new(ClientId::new(reg["client_id"].as_str().unwrap().into()))
            .set_client_secret(ClientSecret::new(
                reg["client_secret"].as_str().unwrap().into(),
            ))
            .set_token_uri(TokenUrl::new(s("token_endpoint")).unwrap())
            .set_introspection_url(IntrospectionUrl::new(s("introspection_endpoint")).unwrap())
            .set_revocation_url(RevocationUrl::new(s("revocation_endpoint")).unwrap());

        let token = client
            .exchange_client_credentials()
            .add_scope(Scope::new("read:menu".into()))
            .request_async(&common::http)
            .await
            .expect("client credentials token");
        assert!(token.refresh_token().is_none());
        assert_eq!(token.scopes().unwrap()[0].as_str(), "read:menu");

        // verify the JWT against the published JWKS
        let jwks: JwkSet = serde_json::from_value(get_json(&s("jwks_uri")).await).unwrap();
        assert!(jwks
            .keys
            .iter()
            .all(|k| k.kid.is_some() && k.alg.as_deref() == Some("ES256")));
        let verifier = JwksSource::fixed(&jwks).verifier();
        let v = Validation {
            issuer: Some(s("issuer")),
            audience: Some(reg["client_id"].as_str().unwrap().into()),
            leeway_secs: 0,
        };
        let claims = verifier
            .verify(
                token.access_token().secret(),
                &v,
                apim_core::time::now_secs(),
            )
            .expect("verifies against the JWKS");
        assert_eq!(claims.sub, "admin");
        assert_eq!(claims.client_id.as_deref(), reg["client_id"].as_str());
        assert_eq!(claims.keytype.as_deref(), Some("PRODUCTION"));

        // a remote JWKS source fetched over HTTP verifies it too
        let remote = JwksSource::remote(&s("jwks_uri")).await.unwrap();
        assert!(remote
            .verifier()
            .verify(
                token.access_token().secret(),
                &v,
                apim_core::time::now_secs()
            )
            .is_ok());

        let intro = client
            .introspect(token.access_token())
            .request_async(&common::http)
            .await
            .unwrap();
        assert!(intro.active());
        assert_eq!(intro.username(), Some("admin"));

        // the oauth2 crate refuses a plain-http revocation URL (RFC 7009 wants TLS; the test server
        // is plain HTTP), so this one request is made by hand, exactly as the crate would send it
        let (status, headers, _) = common::post_form(
            &s("revocation_endpoint"),
            Some(&common::basic(
                reg["client_id"].as_str().unwrap(),
                reg["client_secret"].as_str().unwrap(),
            )),
            &[
                ("token", token.access_token().secret()),
                ("token_type_hint", "access_token"),
            ],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(headers["cache-control"], "no-store");
        let intro = client
            .introspect(token.access_token())
            .request_async(&common::http)
            .await
            .unwrap();
        assert!(!intro.active());

        // the revocation went into the outbox with the token's id
        assert!(srv.km.store().is_revoked(&claims.jti).await.unwrap());
    }
);

on_both_backends!(refresh_rotation, |store: Store| async move {
    let srv = common::serve(store).await;
    let (meta, reg) =
        discover_and_register(&srv.base, serde_json::json!({"client_name": "app"})).await;
    let client = BasicClient::new(ClientId::new(reg["client_id"].as_str().unwrap().into()))
        .set_client_secret(ClientSecret::new(
            reg["client_secret"].as_str().unwrap().into(),
        ))
        .set_token_uri(TokenUrl::new(meta["token_endpoint"].as_str().unwrap().into()).unwrap());
    let first = client
        .exchange_password(
            &ResourceOwnerUsername::new("admin".into()),
            &ResourceOwnerPassword::new(common::ADMIN_PW.into()),
        )
        .add_scope(Scope::new("apim:subscribe".into()))
        .request_async(&common::http)
        .await
        .expect("password grant");
    let r1 = first.refresh_token().expect("refresh token").clone();
    let second = client
        .exchange_refresh_token(&r1)
        .request_async(&common::http)
        .await
        .expect("refresh");
    let r2 = second
        .refresh_token()
        .expect("rotated refresh token")
        .clone();
    assert_ne!(r1.secret(), r2.secret());
    assert_eq!(second.scopes().unwrap()[0].as_str(), "apim:subscribe");

    // the used refresh token is dead
    let (status, _, body) = common::post_form(
        meta["token_endpoint"].as_str().unwrap(),
        Some(&common::basic(
            reg["client_id"].as_str().unwrap(),
            reg["client_secret"].as_str().unwrap(),
        )),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", r1.secret()),
        ],
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // the new one works once more through the client
    let third = client
        .exchange_refresh_token(&RefreshToken::new(r2.secret().clone()))
        .request_async(&common::http)
        .await;
    assert!(third.is_ok());
});

on_both_backends!(authorization_code_pkce, |store: Store| async move {
    let srv = common::serve(store).await;
    let redirect = "http://localhost:7777/cb";
    let (meta, reg) = discover_and_register(
        &srv.base,
        serde_json::json!({"client_name": "spa", "redirect_uris": [redirect], "grant_types": ["authorization_code", "refresh_token"]}),
    )
    .await;
    let client = BasicClient::new(ClientId::new(reg["client_id"].as_str().unwrap().into()))
        .set_client_secret(ClientSecret::new(
            reg["client_secret"].as_str().unwrap().into(),
        ))
        .set_auth_uri(
            AuthUrl::new(meta["authorization_endpoint"].as_str().unwrap().into()).unwrap(),
        )
        .set_token_uri(TokenUrl::new(meta["token_endpoint"].as_str().unwrap().into()).unwrap())
        .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read:menu".into()))
        .set_pkce_challenge(challenge)
        .url();

    // the login + consent page
    let page = common::http(http::Request::get(url.as_str()).body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = String::from_utf8(page.body().clone()).unwrap();
    assert!(html.contains("name=\"password\"") && html.contains("spa"));

    // submit the form: the same query parameters plus credentials and consent
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("username".into(), "admin".into()));
    form.push(("password".into(), "wrong-password".into()));
    form.push(("consent".into(), "approve".into()));
    let as_refs = |f: &[(String, String)]| -> Vec<(String, String)> { f.to_vec() };
    let submit = |f: Vec<(String, String)>| {
        let authz = meta["authorization_endpoint"].as_str().unwrap().to_owned();
        async move {
            let body: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(f.iter())
                .finish();
            common::http(
                http::Request::post(authz)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.into_bytes())
                    .unwrap(),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(submit(as_refs(&form)).await.status(), 401);
    for p in form.iter_mut() {
        if p.0 == "password" {
            p.1 = common::ADMIN_PW.into();
        }
    }
    let res = submit(as_refs(&form)).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(redirect));
    let loc: url_lite::Query = url_lite::Query::parse(&location);
    assert_eq!(loc.get("state").as_deref(), Some(csrf.secret().as_str()));
    let code = loc.get("code").expect("code");

    // a wrong verifier fails (and burns the code, which is single-use)
    let bad = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(oauth2::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&common::http)
        .await;
    assert!(bad.is_err());
    let again = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(oauth2::PkceCodeVerifier::new(verifier.secret().clone()))
        .request_async(&common::http)
        .await;
    assert!(again.is_err(), "a code is single-use");

    // a fresh round with the right verifier succeeds
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("username".into(), "admin".into()));
    form.push(("password".into(), common::ADMIN_PW.into()));
    form.push(("consent".into(), "approve".into()));
    let res = submit(form).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let code = url_lite::Query::parse(&location).get("code").unwrap();
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&common::http)
        .await
        .expect("code exchange");
    assert!(token.refresh_token().is_some());
    let claims = srv
        .km
        .key_ring()
        .verifier()
        .verify_signature(token.access_token().secret())
        .unwrap();
    assert_eq!(claims.sub, "admin");
});

/// Tiny query-string reader for redirect locations.
mod url_lite {
    pub(crate) struct Query(Vec<(String, String)>);
    impl Query {
        pub(crate) fn parse(url: &str) -> Query {
            let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
            Query(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        }
        pub(crate) fn get(&self, k: &str) -> Option<String> {
            self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        }
    }
}

#[tokio::test]
async fn a_client_introspects_only_its_own_tokens() {
    use apim_keymanager::ClientRegistration;
    let (store, _d) = common::sqlite().await;
    let srv = common::serve(store).await;
    let a = common::client(&srv.km, ClientRegistration::default()).await;
    let b = common::client(&srv.km, ClientRegistration::default()).await;
    let token = srv
        .km
        .issue_client_credentials_token(&a.client.client_id, &[], None)
        .await
        .unwrap()
        .access_token;
    let url = format!("{}/oauth2/introspect", srv.base);
    let ask = |id: &str, secret: &str| {
        let auth = common::basic(id, secret);
        let (url, token) = (url.clone(), token.clone());
        async move { common::post_form(&url, Some(&auth), &[("token", &token)]).await }
    };
    let (status, _, other) = ask(&b.client.client_id, &b.client_secret).await;
    assert_eq!(status, 200);
    assert_eq!(
        other,
        serde_json::json!({"active": false}),
        "another client's token"
    );
    let (status, _, own) = ask(&a.client.client_id, &a.client_secret).await;
    assert_eq!(status, 200);
    assert_eq!(own["active"], true, "{own}");
    assert_eq!(own["client_id"], a.client.client_id.as_str());
}

/// Issue 18 item 8, on both backends: a signing key an earlier version stored in plaintext is
/// sealed when a Key Manager with a key-encryption key loads it; its kid and public key stay
/// (tokens it signed keep verifying), new keys are stored sealed, and a Key Manager without
/// the key-encryption key cannot use them (start-up names the field).
#[tokio::test]
async fn plaintext_signing_keys_are_sealed_on_load() {
    use apim_keymanager::keys::{is_sealed, Algorithm, KeyEncryptionKey, SigningKey};
    use base64::Engine as _;
    let (sqlite, _dir) = common::sqlite().await;
    let mut stores = vec![sqlite];
    stores.extend(common::postgres().await);
    for store in stores {
        let (old, der) = SigningKey::generate_es256("old-kid").unwrap();
        let plain = base64::engine::general_purpose::STANDARD.encode(&der);
        store
            .put_signing_key("old-kid", "ES256", &plain, true)
            .await
            .unwrap();
        let mut settings = apim_keymanager::KeyManagerSettings::new("http://km.test");
        settings.key_encryption_key = Some(KeyEncryptionKey::new(&[42u8; 32]));
        let km = apim_keymanager::KeyManager::new(store.clone(), settings.clone())
            .await
            .unwrap();
        assert_eq!(km.jwks().keys, vec![old.jwk()], "same kid, same public key");
        let rows = store.signing_keys().await.unwrap();
        assert!(
            rows.iter().all(|r| is_sealed(&r.2) && r.2 != plain),
            "{rows:?}"
        );
        let new_kid = km.rotate_key().await.unwrap();
        let rows = store.signing_keys().await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| is_sealed(&r.2)));
        let kids: Vec<_> = km.jwks().keys.into_iter().filter_map(|k| k.kid).collect();
        assert!(kids.contains(&new_kid) && kids.contains(&"old-kid".to_owned()));
        // an imported RSA key is sealed too
        km.add_signing_key(
            "rsa-kid",
            Algorithm::RS256,
            include_bytes!("keys/rsa2048.pk8.der"),
            false,
        )
        .await
        .unwrap();
        assert!(store
            .signing_keys()
            .await
            .unwrap()
            .iter()
            .all(|r| is_sealed(&r.2)));
        // without the key-encryption key the sealed keys are refused, naming the field
        match apim_keymanager::KeyManager::new(
            store.clone(),
            apim_keymanager::KeyManagerSettings::new("http://km.test"),
        )
        .await
        {
            Err(apim_core::ApimError::Config { field, .. }) => {
                assert_eq!(field, "key_manager.key_encryption_key")
            }
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("sealed keys loaded without the key-encryption key"),
        }
    }
}
