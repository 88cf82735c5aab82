//! Every bad input to the OAuth endpoints gets the RFC 6749 §5.2 error and status it should.

mod common;

use apim_keymanager::{ClientRegistration, KeyManager};
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn setup() -> (KeyManager, String, String, tempfile::TempDir) {
    let (store, dir) = common::sqlite().await;
    common::define_scopes(&store, &["read", "write"]).await;
    let km = common::key_manager(store).await;
    let c = common::client(
        &km,
        ClientRegistration {
            scope: Some("read write".into()),
            ..Default::default()
        },
    )
    .await;
    (km, c.client.client_id, c.client_secret, dir)
}

async fn call(km: &KeyManager, req: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let res = km.router().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, json)
}

fn form(path: &str, auth: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(body.into()).unwrap()
}

fn assert_error(got: (StatusCode, http::HeaderMap, Value), status: u16, error: &str) {
    assert_eq!(got.0.as_u16(), status, "{:?}", got.2);
    assert_eq!(got.2["error"], error, "{:?}", got.2);
    assert!(got.2["error_description"].is_string());
}

#[tokio::test]
async fn malformed_forms() {
    let (km, id, secret, _d) = setup().await;
    let auth = common::basic(&id, &secret);
    // wrong content type
    let req = Request::post("/oauth2/token")
        .header("content-type", "application/json")
        .header("authorization", &auth)
        .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
        .unwrap();
    assert_error(call(&km, req).await, 400, "invalid_request");
    // a parameter twice
    let req = form(
        "/oauth2/token",
        Some(&auth),
        "grant_type=client_credentials&grant_type=password",
    );
    assert_error(call(&km, req).await, 400, "invalid_request");
    // no grant_type
    assert_error(
        call(&km, form("/oauth2/token", Some(&auth), "scope=read")).await,
        400,
        "invalid_request",
    );
    // not UTF-8
    assert_error(
        call(
            &km,
            form("/oauth2/token", Some(&auth), vec![0xff, 0xfe, b'=', 0x80]),
        )
        .await,
        400,
        "invalid_request",
    );
    // revoke / introspect without the token parameter
    assert_error(
        call(&km, form("/oauth2/revoke", Some(&auth), "")).await,
        400,
        "invalid_request",
    );
    assert_error(
        call(&km, form("/oauth2/introspect", Some(&auth), "")).await,
        400,
        "invalid_request",
    );
}

#[tokio::test]
async fn body_over_the_limit() {
    let (km, id, secret, _d) = setup().await;
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some(&common::basic(&id, &secret)),
            big.clone(),
        ),
    )
    .await;
    assert_error(got, 413, "invalid_request");
    // without a Content-Length (streamed): still cut off at the limit
    let stream = futures_like::chunks(big.into_bytes());
    let got = call(
        &km,
        form("/oauth2/token", Some(&common::basic(&id, &secret)), stream),
    )
    .await;
    assert_error(got, 413, "invalid_request");
}

#[tokio::test]
async fn bad_base64_in_basic_credentials() {
    let (km, _, _, _d) = setup().await;
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some("Basic !!!not-base64!!!"),
            "grant_type=client_credentials",
        ),
    )
    .await;
    assert_eq!(got.1["www-authenticate"], "Basic realm=\"apim-keymanager\"");
    assert_error(got, 401, "invalid_client");
}

#[tokio::test]
async fn unknown_grant_type() {
    let (km, id, secret, _d) = setup().await;
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some(&common::basic(&id, &secret)),
            "grant_type=urn:magic",
        ),
    )
    .await;
    assert_error(got, 400, "unsupported_grant_type");
}

#[tokio::test]
async fn wrong_client_secret_and_unknown_client() {
    let (km, id, _, _d) = setup().await;
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some(&common::basic(&id, "wrong")),
            "grant_type=client_credentials",
        ),
    )
    .await;
    assert!(got.1.contains_key("www-authenticate"));
    assert!(!got.2.to_string().contains("wrong"));
    assert_error(got, 401, "invalid_client");
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret=wrong");
    assert_error(
        call(&km, form("/oauth2/token", None, body)).await,
        401,
        "invalid_client",
    );
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some(&common::basic("nobody", "x")),
            "grant_type=client_credentials",
        ),
    )
    .await;
    assert_error(got, 401, "invalid_client");
    // no authentication at all
    assert_error(
        call(
            &km,
            form("/oauth2/token", None, "grant_type=client_credentials"),
        )
        .await,
        401,
        "invalid_client",
    );
    assert_error(
        call(&km, form("/oauth2/introspect", None, "token=x")).await,
        401,
        "invalid_client",
    );
    assert_error(
        call(&km, form("/oauth2/revoke", None, "token=x")).await,
        401,
        "invalid_client",
    );
}

#[tokio::test]
async fn client_secret_post_works_and_both_methods_is_an_error() {
    let (km, id, secret, _d) = setup().await;
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let got = call(&km, form("/oauth2/token", None, body.clone())).await;
    assert_eq!(got.0, 200, "{:?}", got.2);
    assert_eq!(got.1["cache-control"], "no-store");
    assert_eq!(got.2["scope"], "read write");
    let got = call(
        &km,
        form("/oauth2/token", Some(&common::basic(&id, &secret)), body),
    )
    .await;
    assert_error(got, 400, "invalid_request");
}

#[tokio::test]
async fn scope_not_allowed_for_the_client() {
    let (km, id, secret, _d) = setup().await;
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some(&common::basic(&id, &secret)),
            "grant_type=client_credentials&scope=read%20admin",
        ),
    )
    .await;
    assert_error(got, 400, "invalid_scope");
}

#[tokio::test]
async fn invalid_grants() {
    let (km, id, secret, _d) = setup().await;
    let auth = common::basic(&id, &secret);
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some(&auth),
            "grant_type=refresh_token&refresh_token=nope",
        ),
    )
    .await;
    assert_error(got, 400, "invalid_grant");
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some(&auth),
            "grant_type=password&username=ghost&password=whatever1",
        ),
    )
    .await;
    assert_error(got, 400, "invalid_grant");
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some(&auth),
            "grant_type=password&username=ghost",
        ),
    )
    .await;
    assert_error(got, 400, "invalid_request");
    // the client was not registered for the code grant
    let got = call(
        &km,
        form(
            "/oauth2/token",
            Some(&auth),
            "grant_type=authorization_code&code=x",
        ),
    )
    .await;
    assert_error(got, 400, "unauthorized_client");
}

#[tokio::test]
async fn registration_needs_credentials_and_valid_metadata() {
    let (km, _, _, _d) = setup().await;
    let reg = |auth: Option<&str>, body: &str| {
        let mut b = Request::post("/oauth2/register").header("content-type", "application/json");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::from(body.to_owned())).unwrap()
    };
    assert_error(call(&km, reg(None, "{}")).await, 401, "invalid_token");
    assert_error(
        call(&km, reg(Some("Bearer guess"), "{}")).await,
        401,
        "invalid_token",
    );
    assert_error(
        call(
            &km,
            reg(Some(&common::basic("admin", "wrong-password")), "{}"),
        )
        .await,
        401,
        "invalid_token",
    );
}

/// Issue 18 item 18: client metadata must be sent as JSON; a `text/plain` (or form) body, which
/// a web page can send cross-site without a preflight, registers nothing.
#[tokio::test]
async fn registration_needs_a_json_body() {
    let (store, _d) = common::sqlite().await;
    let mut settings = apim_keymanager::KeyManagerSettings::new("http://km.test");
    settings.initial_access_token = Some("initial-token-for-tests".into());
    let km = KeyManager::new(store, settings).await.unwrap();
    for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let mut b = Request::post("/oauth2/register")
            .header("authorization", "Bearer initial-token-for-tests");
        if !ct.is_empty() {
            b = b.header("content-type", ct);
        }
        let req = b
            .body(Body::from(r#"{"client_name":"csrf"}"#.to_owned()))
            .unwrap();
        let got = call(&km, req).await;
        assert_error(got.clone(), 415, "invalid_request");
        assert!(
            got.2["error_description"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{:?}",
            got.2
        );
    }
    let req = Request::post("/oauth2/register")
        .header("authorization", "Bearer initial-token-for-tests")
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(r#"{"client_name":"ok"}"#.to_owned()))
        .unwrap();
    assert_eq!(call(&km, req).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn registration_metadata_errors() {
    let (store, _d) = common::sqlite().await;
    let mut settings = apim_keymanager::KeyManagerSettings::new("http://km.test");
    settings.initial_access_token = Some("initial-token-for-tests".into());
    let km = KeyManager::new(store, settings).await.unwrap();
    let reg = |body: &str| {
        Request::post("/oauth2/register")
            .header("content-type", "application/json")
            .header("authorization", "Bearer initial-token-for-tests")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    assert_error(
        call(&km, reg("{not json")).await,
        400,
        "invalid_client_metadata",
    );
    assert_error(
        call(&km, reg(r#"{"grant_types":["implicit"]}"#)).await,
        400,
        "invalid_client_metadata",
    );
    assert_error(
        call(&km, reg(r#"{"redirect_uris":["javascript:alert(1)"]}"#)).await,
        400,
        "invalid_redirect_uri",
    );
    assert_error(
        call(&km, reg(r#"{"grant_types":["authorization_code"]}"#)).await,
        400,
        "invalid_redirect_uri",
    );
    let (status, _, body) = call(&km, reg(r#"{"client_name":"ok","owner":"svc"}"#)).await;
    assert_eq!(status, 201);
    assert_eq!(body["owner"], "svc");
    assert!(body["client_secret"].is_string());
}

#[tokio::test]
async fn authorize_rejects_unregistered_redirects_and_missing_pkce() {
    let (store, _d) = common::sqlite().await;
    let km = common::key_manager(store).await;
    let c = common::client(
        &km,
        ClientRegistration {
            redirect_uris: vec!["https://app.test/cb".into()],
            ..Default::default()
        },
    )
    .await;
    let id = c.client.client_id;
    let get = |q: String| {
        Request::get(format!("/oauth2/authorize?{q}"))
            .body(Body::empty())
            .unwrap()
    };
    let got = call(&km, get(format!("response_type=code&client_id={id}&redirect_uri=https://evil.test/cb&code_challenge={}&code_challenge_method=S256", "a".repeat(43)))).await;
    assert_error(got, 400, "invalid_request");
    let got = call(&km, get(format!("response_type=code&client_id={id}"))).await;
    assert_error(got, 400, "invalid_request");
    let got = call(
        &km,
        get(format!(
            "response_type=code&client_id={id}&code_challenge={}&code_challenge_method=plain",
            "a".repeat(43)
        )),
    )
    .await;
    assert_error(got, 400, "invalid_request");
}

#[tokio::test]
async fn metadata_and_jwks() {
    let (km, _, _, _d) = setup().await;
    let req = Request::get("/.well-known/oauth-authorization-server")
        .body(Body::empty())
        .unwrap();
    let (status, _, meta) = call(&km, req).await;
    assert_eq!(status, 200);
    assert_eq!(meta["token_endpoint"], "http://km.test/oauth2/token");
    assert_eq!(meta["code_challenge_methods_supported"][0], "S256");
    let (_, _, jwks) = call(
        &km,
        Request::get("/oauth2/jwks").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
}

/// A body without Content-Length.
mod futures_like {
    use axum::body::Body;
    pub(crate) fn chunks(data: Vec<u8>) -> Body {
        let parts: Vec<Result<bytes::Bytes, std::io::Error>> = data
            .chunks(8192)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures_util::stream::iter(parts))
    }
}
