//! Fixtures: a Key Manager over a fresh store — SQLite always, PostgreSQL too when
//! `APIM_TEST_POSTGRES_URL` is set — served on a random local port, plus a small HTTP client
//! (also the `oauth2` crate's async HTTP client).

#![allow(dead_code, unreachable_pub)]

use apim_core::store::Store;
use apim_keymanager::{ClientRegistration, KeyManager, KeyManagerSettings, RegisteredClient};
use http_body_util::{BodyExt, Full};

pub const ADMIN_PW: &str = "Admin-pass-123";

/// A fresh SQLite store in a temp dir (kept alive by the returned guard).
pub use apim_core::test_util::sqlite_store as sqlite;

/// A fresh PostgreSQL database when the variable is set.
pub async fn postgres() -> Option<Store> {
    let base = std::env::var("APIM_TEST_POSTGRES_URL").ok()?;
    let am = fresh_pg_database(&base, "km").await;
    Some(
        Store::connect_url(&am, None, 5)
            .await
            .expect("postgres store"),
    )
}

use apim_core::test_util::fresh_pg_database;

/// A running Key Manager.
pub struct Server {
    pub km: KeyManager,
    pub base: String,
}

/// Seeds the store (admin / [`ADMIN_PW`]) and serves a Key Manager on 127.0.0.1:random.
pub async fn serve(store: Store) -> Server {
    store.seed_defaults(Some(ADMIN_PW)).await.expect("seed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let km = KeyManager::new(store, KeyManagerSettings::new(&base))
        .await
        .expect("key manager");
    let router = km.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Server { km, base }
}

/// A Key Manager without a listener (for `oneshot` tests); no users seeded.
pub async fn key_manager(store: Store) -> KeyManager {
    KeyManager::new(store, KeyManagerSettings::new("http://km.test"))
        .await
        .expect("key manager")
}

/// Defines shared scopes without role bindings (anyone may obtain them): a scope nobody
/// defined is never granted.
pub async fn define_scopes(store: &Store, names: &[&str]) {
    for n in names {
        store
            .create_shared_scope(apim_core::model::Scope {
                id: String::new(),
                name: (*n).to_owned(),
                display_name: None,
                description: None,
                bindings: Vec::new(),
                usage_count: None,
            })
            .await
            .expect("shared scope");
    }
}

/// Registers a client owned by `admin` in-process (creating the account if the store has
/// none: a client acts for an existing account).
pub async fn client(km: &KeyManager, reg: ClientRegistration) -> RegisteredClient {
    if km.store().get_user("admin").await.expect("user").is_none() {
        km.store()
            .create_user("admin", ADMIN_PW, &["admin".to_owned()], None)
            .await
            .expect("admin");
    }
    km.register_client(reg, "admin").await.expect("register")
}

/// The error type of [`http`].
#[derive(Debug)]
pub struct HttpError(pub String);
impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for HttpError {}

/// Sends a request over a real connection (the `oauth2` crate's async HTTP client).
pub async fn http(req: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, HttpError> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let (parts, body) = req.into_parts();
    let req = http::Request::from_parts(parts, Full::from(body));
    let res = client
        .request(req)
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| HttpError(e.to_string()))?
        .to_bytes()
        .to_vec();
    Ok(http::Response::from_parts(parts, body))
}

/// Basic credentials header value.
pub fn basic(user: &str, pw: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// Posts a form and returns status and JSON body (or `Null` for an empty body).
pub async fn post_form(
    url: &str,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        ser.append_pair(k, v);
    }
    let mut b =
        http::Request::post(url).header("content-type", "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    let res = http(b.body(ser.finish().into_bytes()).unwrap())
        .await
        .unwrap();
    let json = serde_json::from_slice(res.body()).unwrap_or(serde_json::Value::Null);
    (res.status(), res.headers().clone(), json)
}

/// Runs `body` against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _dir) = common::sqlite().await;
                ($body)(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(store) = common::postgres().await else {
                    eprintln!(
                        "APIM_TEST_POSTGRES_URL not set: PostgreSQL run skipped (.ci/run sets it)"
                    );
                    return;
                };
                ($body)(store).await;
            }
        }
    };
}
