//! Test fixtures: a fresh seeded store on SQLite (always) and PostgreSQL (when
//! `APIM_TEST_POSTGRES_URL` is set), the portal over it, and a small HTTP client over
//! `tower::ServiceExt::oneshot`.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use apim_core::store::Store;
use apim_core::ApimError;
use apim_portal::{ApiKeyIssuer, ApiKeyRequest, IssuedApiKey, IssuedToken, Portal, TokenIssuer};
use axum::body::Body;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN: (&str, &str) = ("admin", "admin-pass-123");
pub const INTERNAL_TOKEN: &str = "internal-test-token-0123456789";

/// A fresh SQLite store in a temp dir.
pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("apim.db").display());
    let store = Store::connect_url(&url, None, 5)
        .await
        .expect("sqlite store");
    store.seed_defaults(Some(ADMIN.1)).await.expect("seed");
    (store, dir)
}

/// A fresh PostgreSQL pair of databases when the variable is set.
pub async fn postgres() -> Option<Store> {
    let base = std::env::var("APIM_TEST_POSTGRES_URL").ok()?;
    let am = fresh_pg_database(&base, "am").await;
    let shared = fresh_pg_database(&base, "shared").await;
    let store = Store::connect_url(&am, Some(&shared), 5)
        .await
        .expect("postgres store");
    store.seed_defaults(Some(ADMIN.1)).await.expect("seed");
    Some(store)
}

use apim_core::test_util::fresh_pg_database;

/// A token issuer standing in for the Key Manager.
pub struct FakeIssuer;

#[async_trait::async_trait]
impl TokenIssuer for FakeIssuer {
    async fn client_credentials_token(
        &self,
        consumer_key: &str,
        scopes: &[String],
        validity_secs: Option<u64>,
    ) -> Result<IssuedToken, ApimError> {
        Ok(IssuedToken {
            access_token: format!("token-for-{consumer_key}"),
            token_scopes: scopes.to_vec(),
            validity_time: validity_secs.unwrap_or(3600),
        })
    }
}

/// An API-key issuer standing in for the Key Manager.
pub struct FakeApiKeys;

#[async_trait::async_trait]
impl ApiKeyIssuer for FakeApiKeys {
    async fn issue_api_key(&self, request: ApiKeyRequest) -> Result<IssuedApiKey, ApimError> {
        Ok(IssuedApiKey {
            apikey: format!(
                "apikey-{}-{}",
                request.application.application_id,
                request.subscribed_apis.len()
            ),
            validity_time: request.validity_secs.map_or(-1, |v| v as i64),
        })
    }

    async fn revoke_api_key(
        &self,
        application_id: &str,
        _key_type: apim_core::model::KeyType,
        apikey: &str,
    ) -> Result<(), ApimError> {
        // the fake keys name their application (see issue_api_key)
        if apikey.starts_with(&format!("apikey-{application_id}-")) {
            Ok(())
        } else {
            Err(ApimError::NotFound("API key".into()))
        }
    }
}

/// The portal's routers over `store`.
pub fn app(store: Store) -> Router {
    Portal::new(store)
        .with_token_issuer(Arc::new(FakeIssuer))
        .with_api_key_issuer(Arc::new(FakeApiKeys))
        .with_internal_token(INTERNAL_TOKEN)
        .router()
}

/// A response: status and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The error description, for asserting that a 400 names the field.
    pub fn description(&self) -> String {
        self.body["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub fn basic((u, p): (&str, &str)) -> String {
    format!("Basic {}", STANDARD.encode(format!("{u}:{p}")))
}

/// Sends a request with an optional `Authorization` value and raw body.
pub async fn send_raw(
    app: &Router,
    method: &str,
    path: &str,
    auth: Option<String>,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if !body.is_empty() {
        req = req.header("content-type", content_type);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// Sends JSON as `user`.
pub async fn send(
    app: &Router,
    method: &str,
    path: &str,
    user: Option<(&str, &str)>,
    body: Option<Value>,
) -> Reply {
    let bytes = body
        .map(|b| serde_json::to_vec(&b).expect("json"))
        .unwrap_or_default();
    send_raw(
        app,
        method,
        path,
        user.map(basic),
        "application/json",
        bytes,
    )
    .await
}

pub const PUB: &str = "/api/am/publisher/v4";
pub const DEV: &str = "/api/am/devportal/v3";
pub const ADM: &str = "/api/am/admin/v4";

/// A valid API definition.
pub fn pizza_api() -> Value {
    serde_json::json!({
        "name": "PizzaShackAPI",
        "description": "Pizza ordering",
        "context": "/pizzashack",
        "version": "1.0.0",
        "policies": ["Gold", "Unlimited"],
        "tags": ["pizza"],
        "endpointConfig": {
            "endpoint_type": "http",
            "production_endpoints": {"url": "http://localhost:9080/pizzashack"}
        },
        "operations": [
            {"target": "/menu", "verb": "GET"},
            {"target": "/order", "verb": "POST"}
        ]
    })
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
                    eprintln!("APIM_TEST_POSTGRES_URL not set: PostgreSQL run skipped");
                    return;
                };
                ($body)(store).await;
            }
        }
    };
}
