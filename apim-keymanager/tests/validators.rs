//! The gateway-side validators: JWT (with cache and revocation), opaque tokens by
//! introspection, API keys (IP / referer limits), Basic, and the routed authorisation checks.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use apim_core::artifacts::{
    ArtifactStore, DeployedApi, GatewayData, InMemoryArtifacts, RouteMatch,
};
use apim_core::auth::{AuthContext, CredentialKind, KeyValidator, RequestMeta};
use apim_core::event::{Event, EventPayload, Seq, SubscriptionChange, TokenRevocation};
use apim_core::model::{Api, Application, KeyMapping, KeyType, Subscription};
use apim_core::time::now_secs;
use apim_core::ApimError;
use apim_keymanager::jwt::{self, Claims};
use apim_keymanager::keys::Algorithm;
use apim_keymanager::validator::{TokenIntrospector, UserVerifier};
use apim_keymanager::{
    ApiKeyRequest, ApiKeyValidator, BasicAuthValidator, ClientRegistration, CredentialValidator,
    IntrospectionValidator, JwtValidator, KeyManager,
};
use http::{HeaderMap, Method, Uri};

const APP: &str = "app-1";
const API: &str = "api-1";

fn application() -> Application {
    serde_json::from_value(serde_json::json!({
        "applicationId": APP, "name": "Shop", "throttlingPolicy": "10PerMin", "owner": "admin"
    }))
    .unwrap()
}

fn api() -> Api {
    let mut a: Api = serde_json::from_value(serde_json::json!({
        "name": "Pizza", "context": "/pizza", "version": "1.0.0",
        "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:1"}},
        "operations": [{"target": "/menu", "verb": "GET"}, {"target": "/order", "verb": "POST", "scopes": ["write"]}]
    }))
    .unwrap();
    a.id = API.into();
    a
}

fn route(op: usize) -> RouteMatch {
    route_to(api(), op)
}

fn route_to(api: Api, op: usize) -> RouteMatch {
    RouteMatch {
        api: Arc::new(DeployedApi::new(
            api,
            "r1".into(),
            None,
            vec!["Default".into()],
        )),
        operation: op,
        resource_start: 0,
    }
}

/// A production API key of the application for the API, valid an hour, optionally for some
/// client IPs only.
fn key_request(permitted_ip: Option<&str>) -> ApiKeyRequest {
    ApiKeyRequest {
        application: application(),
        key_type: KeyType::Production,
        validity_secs: 3600,
        permitted_ip: permitted_ip.map(Into::into),
        permitted_referer: None,
        subscribed_apis: vec![jwt::SubscribedApi {
            id: API.into(),
            ..Default::default()
        }],
        subject: None,
    }
}

/// Artifacts with the application, its key mapping for `consumer_key` and a subscription.
fn artifacts(consumer_key: &str, status: &str) -> Arc<InMemoryArtifacts> {
    let a = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    let sub: Subscription = serde_json::from_value(serde_json::json!({
        "subscriptionId": "s1", "applicationId": APP, "apiId": API, "throttlingPolicy": "Gold", "status": status
    }))
    .unwrap();
    a.load(GatewayData {
        seq: Seq(1),
        applications: vec![application()],
        key_mappings: vec![KeyMapping {
            key_mapping_id: "m1".into(),
            application_id: APP.into(),
            key_type: KeyType::Production,
            consumer_key: consumer_key.into(),
            key_manager: "Resident Key Manager".into(),
        }],
        subscriptions: vec![SubscriptionChange {
            subscription: sub,
            api_context: "/pizza".into(),
            api_version: "1.0.0".into(),
        }],
        ..GatewayData::default()
    });
    a
}

fn revoke_event(a: &InMemoryArtifacts, seq: u64, jti: &str) {
    a.apply(&Event {
        seq: Seq(seq),
        time: 0,
        payload: EventPayload::TokenRevocation(TokenRevocation {
            jti: jti.into(),
            expiry_time: now_secs() + 3600,
            token_type: "JWT".into(),
            consumer_key: None,
        }),
    });
}

struct Req {
    headers: HeaderMap,
    uri: Uri,
    ip: Option<IpAddr>,
}

impl Req {
    fn bearer(t: &str) -> Req {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
        Req {
            headers,
            uri: Uri::from_static("/pizza/1.0.0/menu"),
            ip: None,
        }
    }
    fn meta<'a>(&'a self, route: Option<&'a RouteMatch>) -> RequestMeta<'a> {
        RequestMeta {
            method: &Method::GET,
            uri: &self.uri,
            headers: &self.headers,
            client_ip: self.ip,
            route,
        }
    }
}

async fn km_with_client(
    scope: Option<&str>,
    token_type: Option<&str>,
) -> (KeyManager, String, tempfile::TempDir) {
    let (store, dir) = common::sqlite().await;
    let km = common::key_manager(store).await;
    let c = common::client(
        &km,
        ClientRegistration {
            scope: scope.map(Into::into),
            application_id: Some(APP.into()),
            token_type: token_type.map(Into::into),
            ..Default::default()
        },
    )
    .await;
    (km, c.client.client_id, dir)
}

fn err_code(r: Result<Arc<AuthContext>, ApimError>) -> u32 {
    r.expect_err("should be rejected").code()
}

#[tokio::test]
async fn jwt_valid_subscribed_scoped_and_cached() {
    let (km, cid, _d) = km_with_client(Some("read write"), None).await;
    let arts = artifacts(&cid, "UNBLOCKED");
    let v =
        JwtValidator::new(km.jwks_source(), arts.clone()).with_issuer(km.settings().issuer.clone());
    let tok = km
        .issue_client_credentials_token(&cid, &["read".into()], None)
        .await
        .unwrap();
    let req = Req::bearer(&tok.access_token);

    let ctx = v.validate(&req.meta(Some(&route(0)))).await.unwrap();
    assert_eq!(ctx.application_id, APP);
    assert_eq!(ctx.application_tier, "10PerMin");
    assert_eq!(ctx.subscription_tier.as_deref(), Some("Gold"));
    assert_eq!(ctx.credential, CredentialKind::Jwt);
    assert_eq!(v.cached(), 1);
    // the /order resource needs `write`: 403 900910, also on a cache hit
    assert_eq!(
        err_code(v.validate(&req.meta(Some(&route(1)))).await),
        900910
    );
    // no route: authentication only
    assert!(v.validate(&req.meta(None)).await.is_ok());
    // missing credential
    let none = Req {
        headers: HeaderMap::new(),
        uri: Uri::from_static("/"),
        ip: None,
    };
    assert_eq!(err_code(v.validate(&none.meta(None)).await), 900902);
}

/// A Key Manager with a subscribed client, its artifacts, a JWT validator over them and a
/// request carrying a fresh client-credentials token.
struct JwtSetup {
    km: KeyManager,
    arts: Arc<InMemoryArtifacts>,
    v: JwtValidator,
    token: String,
    req: Req,
    _dir: tempfile::TempDir,
}

impl JwtSetup {
    /// Revokes the token at the Key Manager (outbox) and feeds the validator's artifacts the
    /// event a gateway would receive for `jti`.
    async fn revoke(&self, jti: &str) {
        assert!(self.km.revoke(&self.token, None).await.unwrap());
        revoke_event(&self.arts, 2, jti);
    }
}

async fn jwt_setup() -> JwtSetup {
    let (km, cid, _dir) = km_with_client(None, None).await;
    let arts = artifacts(&cid, "UNBLOCKED");
    let v = JwtValidator::new(km.jwks_source(), arts.clone());
    let token = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap()
        .access_token;
    let req = Req::bearer(&token);
    JwtSetup {
        km,
        arts,
        v,
        token,
        req,
        _dir,
    }
}

#[tokio::test]
async fn jwt_cached_authorisation_follows_subscription_changes() {
    let JwtSetup { arts, v, req, .. } = jwt_setup().await;
    let r = route(0);
    let first = v.validate(&req.meta(Some(&r))).await.unwrap();
    let again = v.validate(&req.meta(Some(&r))).await.unwrap();
    assert_eq!(again.subscription_tier.as_deref(), Some("Gold"));
    assert!(
        Arc::ptr_eq(&first, &again),
        "the same API on the same snapshot reuses the authorised context"
    );
    // from now on the thread's own remembered answer: equal, not shared
    let third = v.validate(&req.meta(Some(&r))).await.unwrap();
    assert!(!Arc::ptr_eq(&again, &third) && *again == *third);
    // the subscription is blocked: the next call sees it despite the remembered results
    let sub: Subscription = serde_json::from_value(serde_json::json!({
        "subscriptionId": "s1", "applicationId": APP, "apiId": API, "throttlingPolicy": "Gold",
        "status": "BLOCKED"
    }))
    .unwrap();
    arts.apply(&Event {
        seq: Seq(2),
        time: 0,
        payload: EventPayload::SubscriptionsUpdate(SubscriptionChange {
            subscription: sub,
            api_context: "/pizza".into(),
            api_version: "1.0.0".into(),
        }),
    });
    assert_eq!(err_code(v.validate(&req.meta(Some(&r))).await), 900907);
}

#[tokio::test]
async fn jwt_revoked_is_rejected_even_when_cached() {
    let s = jwt_setup().await;
    let (v, req) = (&s.v, &s.req);
    let ctx = v.validate(&req.meta(None)).await.unwrap();
    assert_eq!(v.cached(), 1);
    s.revoke(ctx.token_id.as_deref().unwrap()).await;
    let e = v.validate(&req.meta(None)).await.unwrap_err();
    assert_eq!((e.status().as_u16(), e.code()), (401, 900901));
    assert!(e.to_string().contains("revoked"));
}

#[tokio::test]
async fn immediate_answers_only_for_verified_tokens() {
    let s = jwt_setup().await;
    let (v, req) = (&s.v, &s.req);
    let r = route(0);
    let all =
        CredentialValidator::new().with_jwt(JwtValidator::new(s.km.jwks_source(), s.arts.clone()));
    // not verified yet: no immediate answer, `validate` verifies
    assert!(v.validate_now(&req.meta(Some(&r))).is_none());
    assert!(all.validate_now(&req.meta(Some(&r))).is_none());
    let verified = v.validate(&req.meta(Some(&r))).await.unwrap();
    all.validate(&req.meta(Some(&r))).await.unwrap();
    // verified: the same answer at once, from both
    let now = v.validate_now(&req.meta(Some(&r))).unwrap().unwrap();
    assert!(
        Arc::ptr_eq(&verified, &now),
        "the cached, authorised context"
    );
    let via_all = all.validate_now(&req.meta(Some(&r))).unwrap().unwrap();
    assert_eq!(via_all.subscription_tier.as_deref(), Some("Gold"));
    // asked again: the thread's remembered answers, equal to the verified one
    for _ in 0..3 {
        assert_eq!(
            *v.validate_now(&req.meta(Some(&r))).unwrap().unwrap(),
            *verified
        );
        assert_eq!(
            *all.validate_now(&req.meta(Some(&r))).unwrap().unwrap(),
            *via_all
        );
    }
    // no credential: refused at once
    let none = Req {
        headers: HeaderMap::new(),
        uri: Uri::from_static("/"),
        ip: None,
    };
    assert_eq!(err_code(v.validate_now(&none.meta(None)).unwrap()), 900902);
    assert_eq!(
        err_code(all.validate_now(&none.meta(None)).unwrap()),
        900902
    );
    // revoked: refused at once, though cached
    s.revoke(verified.token_id.as_deref().unwrap()).await;
    assert_eq!(
        err_code(v.validate_now(&req.meta(Some(&r))).unwrap()),
        900901
    );
    assert_eq!(
        err_code(all.validate_now(&req.meta(Some(&r))).unwrap()),
        900901
    );
}

#[tokio::test]
async fn jwt_not_subscribed_and_blocked() {
    let (km, cid, _d) = km_with_client(None, None).await;
    let tok = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap();
    let req = Req::bearer(&tok.access_token);
    let other = artifacts("someone-else", "UNBLOCKED"); // no key mapping for this client
    let v = JwtValidator::new(km.jwks_source(), other);
    assert_eq!(
        err_code(v.validate(&req.meta(Some(&route(0)))).await),
        900908
    );
    let blocked = artifacts(&cid, "BLOCKED");
    let v = JwtValidator::new(km.jwks_source(), blocked);
    assert_eq!(
        err_code(v.validate(&req.meta(Some(&route(0)))).await),
        900907
    );
    let on_hold = artifacts(&cid, "ON_HOLD");
    let v = JwtValidator::new(km.jwks_source(), on_hold);
    assert_eq!(
        err_code(v.validate(&req.meta(Some(&route(0)))).await),
        900908
    );
}

fn forge(km: &KeyManager, f: impl FnOnce(&mut Claims)) -> String {
    let now = now_secs();
    let mut c = Claims {
        iss: km.settings().issuer.clone(),
        sub: "admin".into(),
        aud: vec!["gw".into()],
        exp: now + 600,
        iat: now,
        nbf: Some(now),
        jti: apim_core::crypto::new_id(),
        ..Claims::default()
    };
    f(&mut c);
    jwt::encode(km.key_ring().active(), &c).unwrap()
}

#[tokio::test]
async fn jwt_expired_not_yet_valid_wrong_issuer_wrong_audience() {
    let (km, cid, _d) = km_with_client(None, None).await;
    let v = JwtValidator::new(km.jwks_source(), artifacts(&cid, "UNBLOCKED"))
        .with_issuer(km.settings().issuer.clone())
        .with_audience("gw");
    let cases = [
        (forge(&km, |c| c.exp = now_secs() - 120), "expired"),
        (
            forge(&km, |c| c.nbf = Some(now_secs() + 600)),
            "not yet valid",
        ),
        (
            forge(&km, |c| c.iss = "https://evil/oauth2/token".into()),
            "wrong issuer",
        ),
        (
            forge(&km, |c| c.aud = vec!["other".into()]),
            "wrong audience",
        ),
    ];
    for (tok, why) in cases {
        let e = v.validate(&Req::bearer(&tok).meta(None)).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (401, 900901), "{why}");
        assert!(e.to_string().contains(why), "{e} vs {why}");
    }
    // within the 30 s leeway it still passes
    let tok = forge(&km, |c| c.exp = now_secs() - 5);
    assert!(v.validate(&Req::bearer(&tok).meta(None)).await.is_ok());
    // tampered and alg=none tokens through the validator
    let good = forge(&km, |_| {});
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let e = v
        .validate(&Req::bearer(&parts.join(".")).meta(None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), 900901);
}

#[tokio::test]
async fn rotated_and_supplied_keys_all_verify() {
    let (km, cid, _d) = km_with_client(None, None).await;
    let v = JwtValidator::new(km.jwks_source(), artifacts(&cid, "UNBLOCKED"));
    let old = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap();
    km.add_signing_key(
        "rsa-1",
        Algorithm::RS256,
        include_bytes!("keys/rsa2048.pk8.der"),
        true,
    )
    .await
    .unwrap();
    let rsa = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap();
    km.add_signing_key(
        "ed-1",
        Algorithm::EdDSA,
        include_bytes!("keys/ed25519.pk8.der"),
        true,
    )
    .await
    .unwrap();
    let ed = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap();
    assert_eq!(jwt::decode_header(&rsa.access_token).unwrap().alg, "RS256");
    assert_eq!(jwt::decode_header(&ed.access_token).unwrap().alg, "EdDSA");
    assert_eq!(km.jwks().keys.len(), 3);
    for t in [old, rsa, ed] {
        assert!(v
            .validate(&Req::bearer(&t.access_token).meta(None))
            .await
            .is_ok());
    }
    // a bad key is refused before it is stored
    assert!(km
        .add_signing_key("x", Algorithm::RS256, b"not a key", true)
        .await
        .is_err());
    assert_eq!(km.jwks().keys.len(), 3);
}

#[tokio::test]
async fn opaque_tokens_by_introspection() {
    let (km, cid, _d) = km_with_client(None, Some("OAUTH")).await;
    let arts = artifacts(&cid, "UNBLOCKED");
    let tok = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap();
    assert!(!jwt::looks_like_jwt(&tok.access_token));
    let v = IntrospectionValidator::new(Arc::new(km.clone()), arts.clone());
    let req = Req::bearer(&tok.access_token);
    let ctx = v.validate(&req.meta(Some(&route(0)))).await.unwrap();
    assert_eq!(ctx.credential, CredentialKind::Opaque);
    assert_eq!(ctx.application_id, APP);
    // revoked: the KM emits the SHA-256 of the token as its id; rejected on the cache hit too
    assert!(km.revoke(&tok.access_token, None).await.unwrap());
    revoke_event(&arts, 2, ctx.token_id.as_deref().unwrap());
    assert_eq!(err_code(v.validate(&req.meta(None)).await), 900901);
    assert_eq!(
        err_code(v.validate(&Req::bearer("unknown-opaque").meta(None)).await),
        900901
    );
}

/// Issue 18 item 2: `permittedIP` / `permittedReferer` are validated when a key is issued
/// (400 naming the field), and the referer wildcard is matched in linear time: an eight-star
/// pattern against a 46-byte referer took seconds with the backtracking matcher.
#[tokio::test]
async fn api_key_limits_validated_at_issue_and_referer_matched_in_linear_time() {
    let (km, cid, _d) = km_with_client(None, None).await;
    let arts = artifacts(&cid, "UNBLOCKED");
    for (ip, referer, field) in [
        (Some("1.2.3.4/99"), None, "permittedIP"),
        (Some("10.0.0.0/8, not-an-ip"), None, "permittedIP"),
        (Some("::1/129"), None, "permittedIP"),
        (None, Some("*a*a*a*a*a*a*a*a*b"), "permittedReferer"),
        (None, Some(&*"x".repeat(300)), "permittedReferer"),
    ] {
        let mut r = key_request(ip);
        r.permitted_referer = referer.map(Into::into);
        match km.issue_api_key(r) {
            Err(ApimError::Validation { field: f, .. }) => {
                assert_eq!(f, field, "{ip:?} {referer:?}")
            }
            other => panic!("{ip:?} {referer:?}: {other:?}"),
        }
    }
    // a key issued before the caps (its claims forged here) is matched, quickly
    let key = km.issue_api_key(key_request(None)).unwrap();
    let mut claims = jwt::JwtVerifier::from_jwks(&km.jwks())
        .verify_signature(&key)
        .unwrap();
    claims.permitted_referer = Some("*a*a*a*a*a*a*a*a*b".into());
    let key = jwt::encode(km.key_ring().active(), &claims).unwrap();
    let v = ApiKeyValidator::new(km.jwks_source(), arts);
    let mut headers = HeaderMap::new();
    headers.insert("apikey", key.parse().unwrap());
    headers.insert("referer", "a".repeat(46).parse().unwrap());
    let req = Req {
        headers,
        uri: Uri::from_static("/pizza/1.0.0/menu"),
        ip: None,
    };
    let t = std::time::Instant::now();
    assert_eq!(
        err_code(v.validate(&req.meta(Some(&route(0)))).await),
        900908
    );
    assert!(
        t.elapsed() < std::time::Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn api_keys_with_ip_and_referer_limits() {
    let (km, cid, _d) = km_with_client(None, None).await;
    let arts = artifacts(&cid, "UNBLOCKED");
    let key = km
        .issue_api_key(key_request(Some("10.0.0.0/8, 192.168.1.10")))
        .unwrap();
    let v = ApiKeyValidator::new(km.jwks_source(), arts.clone());
    let mut headers = HeaderMap::new();
    headers.insert("apikey", key.parse().unwrap());
    let mut req = Req {
        headers,
        uri: Uri::from_static("/pizza/1.0.0/menu"),
        ip: Some("10.1.2.3".parse().unwrap()),
    };
    let ctx = v.validate(&req.meta(Some(&route(0)))).await.unwrap();
    assert_eq!(ctx.credential, CredentialKind::ApiKey);
    assert_eq!(ctx.subscription_tier.as_deref(), Some("Gold"));
    // from a non-permitted IP: 403, also when cached
    req.ip = Some("172.16.0.1".parse().unwrap());
    let e = v.validate(&req.meta(Some(&route(0)))).await.unwrap_err();
    assert_eq!((e.status().as_u16(), e.code()), (403, 900908));
    req.ip = None;
    assert_eq!(err_code(v.validate(&req.meta(None)).await), 900908);

    // referer limits
    let key = km
        .issue_api_key(ApiKeyRequest {
            application: application(),
            key_type: KeyType::Production,
            validity_secs: 0,
            permitted_ip: None,
            permitted_referer: Some("https://*.shop.test/*".into()),
            subscribed_apis: vec![],
            subject: None,
        })
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("apikey", key.parse().unwrap());
    headers.insert("referer", "https://www.evil.test/".parse().unwrap());
    let mut req = Req {
        headers,
        uri: Uri::from_static("/"),
        ip: None,
    };
    assert_eq!(err_code(v.validate(&req.meta(None)).await), 900908);
    req.headers
        .insert("referer", "https://www.shop.test/page".parse().unwrap());
    assert!(v.validate(&req.meta(None)).await.is_ok());
    // an API key is not a bearer token, and a bearer token is not an API key
    let jv = JwtValidator::new(km.jwks_source(), arts.clone());
    assert_eq!(
        err_code(jv.validate(&Req::bearer(&key).meta(None)).await),
        900901
    );
    let tok = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("apikey", tok.access_token.parse().unwrap());
    let req = Req {
        headers,
        uri: Uri::from_static("/"),
        ip: None,
    };
    assert_eq!(err_code(v.validate(&req.meta(None)).await), 900901);
    // revoked API key
    let kid_jti = jwt::JwtVerifier::from_jwks(&km.jwks())
        .verify_signature(&key)
        .unwrap()
        .jti;
    assert!(km.revoke(&key, None).await.unwrap());
    revoke_event(&arts, 2, &kid_jti);
    let mut headers = HeaderMap::new();
    headers.insert("apikey", key.parse().unwrap());
    headers.insert("referer", "https://www.shop.test/page".parse().unwrap());
    let req = Req {
        headers,
        uri: Uri::from_static("/"),
        ip: None,
    };
    assert_eq!(err_code(v.validate(&req.meta(None)).await), 900901);
}

struct FixedUser;
#[async_trait::async_trait]
impl UserVerifier for FixedUser {
    async fn verify(&self, u: &str, p: &str) -> Result<Option<apim_core::model::User>, ApimError> {
        Ok((u == "bob" && p == "secret-pw").then(|| {
            serde_json::from_value(serde_json::json!({"username": "bob", "roles": ["subscriber"]}))
                .unwrap()
        }))
    }
}

#[tokio::test]
async fn basic_and_composite() {
    let basic = BasicAuthValidator::new(Arc::new(FixedUser));
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        common::basic("bob", "secret-pw").parse().unwrap(),
    );
    let req = Req {
        headers,
        uri: Uri::from_static("/"),
        ip: None,
    };
    let ctx = basic.validate(&req.meta(None)).await.unwrap();
    assert_eq!(
        (ctx.credential, ctx.end_user.as_str()),
        (CredentialKind::Basic, "bob")
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        common::basic("bob", "nope").parse().unwrap(),
    );
    let bad = Req {
        headers,
        uri: Uri::from_static("/"),
        ip: None,
    };
    assert_eq!(err_code(basic.validate(&bad.meta(None)).await), 900901);

    let (km, cid, _d) = km_with_client(None, None).await;
    let arts = artifacts(&cid, "UNBLOCKED");
    let all = CredentialValidator::new()
        .with_jwt(JwtValidator::new(km.jwks_source(), arts.clone()))
        .with_basic(basic);
    let tok = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap();
    assert_eq!(
        all.validate(&Req::bearer(&tok.access_token).meta(None))
            .await
            .unwrap()
            .credential,
        CredentialKind::Jwt
    );
    assert_eq!(
        all.validate(&req.meta(None)).await.unwrap().credential,
        CredentialKind::Basic
    );
    // opaque tokens are not configured here
    assert_eq!(
        err_code(all.validate(&Req::bearer("opaque").meta(None)).await),
        900901
    );
}

#[tokio::test]
async fn basic_credentials_follow_password_and_role_changes_at_once() {
    let (store, _d) = common::sqlite().await;
    let km = common::key_manager(store.clone()).await;
    store
        .create_user("carol", "first-passw0rd", &["subscriber".into()], None)
        .await
        .unwrap();
    let basic = BasicAuthValidator::new(Arc::new(km.clone()));
    let req = |pw: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", common::basic("carol", pw).parse().unwrap());
        Req {
            headers,
            uri: Uri::from_static("/"),
            ip: None,
        }
    };
    for _ in 0..2 {
        // the second time from the remembered verification
        let ctx = basic
            .validate(&req("first-passw0rd").meta(None))
            .await
            .unwrap();
        assert_eq!(ctx.end_user, "carol");
        assert!(ctx.scopes.contains(&"subscriber".to_owned()));
    }

    store
        .set_password("carol", "second-passw0rd")
        .await
        .unwrap();
    assert_eq!(
        err_code(basic.validate(&req("first-passw0rd").meta(None)).await),
        900901,
        "the old password stops working with the next request"
    );
    let ctx = basic
        .validate(&req("second-passw0rd").meta(None))
        .await
        .unwrap();
    assert_eq!(ctx.end_user, "carol");

    store.set_roles("carol", &["creator".into()]).await.unwrap();
    let ctx = basic
        .validate(&req("second-passw0rd").meta(None))
        .await
        .unwrap();
    assert!(
        ctx.scopes.contains(&"creator".to_owned()),
        "{:?}",
        ctx.scopes
    );
    assert!(
        !ctx.scopes.contains(&"subscriber".to_owned()),
        "{:?}",
        ctx.scopes
    );
}

/// A Key Manager served on a port with `internal` as its internal token, and its base URL.
async fn km_with_internal_token(store: apim_core::store::Store, internal: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = apim_keymanager::KeyManagerSettings::new(&base);
    settings.internal_token = Some(internal.to_owned());
    let km = KeyManager::new(store, settings).await.unwrap();
    let router = km.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test]
async fn basic_credentials_checked_by_a_remote_key_manager() {
    let (store, _d) = common::sqlite().await;
    store
        .create_user("dave", "first-passw0rd", &["subscriber".into()], None)
        .await
        .unwrap();
    let base = km_with_internal_token(store.clone(), "internal-secret").await;
    let remote = apim_keymanager::HttpUserVerifier::new(&base, "internal-secret").unwrap();

    let user = remote
        .verify("dave", "first-passw0rd")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.username, "dave");
    assert_eq!(user.roles, ["subscriber"]);
    assert!(remote.verify("dave", "wrong").await.unwrap().is_none());
    assert!(remote.verify("nobody", "x").await.unwrap().is_none());

    // through the gateway's Basic validator; a changed password applies to the next request
    let basic = BasicAuthValidator::new(Arc::new(remote));
    let req = |pw: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", common::basic("dave", pw).parse().unwrap());
        Req {
            headers,
            uri: Uri::from_static("/"),
            ip: None,
        }
    };
    let ctx = basic
        .validate(&req("first-passw0rd").meta(None))
        .await
        .unwrap();
    assert_eq!(ctx.end_user, "dave");
    store.set_password("dave", "second-passw0rd").await.unwrap();
    assert_eq!(
        err_code(basic.validate(&req("first-passw0rd").meta(None)).await),
        900901
    );
    assert!(basic
        .validate(&req("second-passw0rd").meta(None))
        .await
        .is_ok());

    // a wrong internal token is the gateway's misconfiguration: an error, not "wrong password"
    let wrong = apim_keymanager::HttpUserVerifier::new(&base, "not-the-token").unwrap();
    let err = wrong.verify("dave", "second-passw0rd").await.unwrap_err();
    assert!(matches!(err, ApimError::BackendUnavailable(_)), "{err:?}");
}

#[tokio::test]
async fn user_check_endpoint_refuses_bad_callers_and_bodies() {
    let (store, _d) = common::sqlite().await;
    let base = km_with_internal_token(store, "internal-secret").await;
    let url = format!("{base}{}", apim_keymanager::internal::USER_VERIFY_PATH);
    let send = |auth: Option<&str>, body: &str| {
        let mut req = http::Request::post(&url).header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let req = req.body(body.as_bytes().to_vec()).unwrap();
        async move {
            let res = common::http(req).await.unwrap();
            let json: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
            (res.status().as_u16(), json)
        }
    };
    let ok_body = r#"{"username":"admin","password":"x"}"#;
    let (status, json) = send(None, ok_body).await;
    assert_eq!(status, 401, "{json}");
    let (status, json) = send(Some("Bearer nope"), ok_body).await;
    assert_eq!(status, 401, "{json}");
    assert!(json["message"].as_str().is_some(), "{json}");
    let (status, json) = send(Some("Bearer internal-secret"), r#"{"username":"a"}"#).await;
    assert_eq!(status, 400, "{json}");
    assert!(
        json["description"].to_string().contains("password")
            || json["message"].to_string().contains("password"),
        "the error says what is missing: {json}"
    );
    let (status, json) = send(Some("Bearer internal-secret"), "not json").await;
    assert_eq!(status, 400, "{json}");
}

/// `route(0)` of an API whose `securityScheme` is `schemes`.
fn route_with_schemes(schemes: &[&str]) -> RouteMatch {
    let mut a = api();
    a.security_scheme = schemes.iter().map(|s| (*s).to_owned()).collect();
    route_to(a, 0)
}

#[tokio::test]
async fn credentials_must_be_of_a_scheme_the_api_enables() {
    let (km, cid, _d) = km_with_client(None, None).await;
    let arts = artifacts(&cid, "UNBLOCKED");
    let all = CredentialValidator::new()
        .with_jwt(JwtValidator::new(km.jwks_source(), arts.clone()))
        .with_api_key(ApiKeyValidator::new(km.jwks_source(), arts.clone()))
        .with_basic(BasicAuthValidator::new(Arc::new(FixedUser)));
    let token = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap()
        .access_token;
    let key = km.issue_api_key(key_request(None)).unwrap();
    let with = |name: &str, value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        Req {
            headers,
            uri: Uri::from_static("/pizza/1.0.0/menu"),
            ip: None,
        }
    };
    let bearer = with("authorization", &format!("Bearer {token}"));
    let apikey = with("apikey", &key);
    let basic = with("authorization", &common::basic("bob", "secret-pw"));

    // the default scheme (oauth2 only, as in WSO2): access tokens only
    let oauth_only = route_with_schemes(&["oauth2"]);
    assert!(all.validate(&bearer.meta(Some(&oauth_only))).await.is_ok());
    for (what, req) in [("API key", &apikey), ("Basic", &basic)] {
        let err = all
            .validate(&req.meta(Some(&oauth_only)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), 900901, "{what}: {err}");
        assert!(err.to_string().contains("securityScheme"), "{what}: {err}");
    }

    // an API enabling all three accepts each
    let all_schemes = route_with_schemes(&["oauth2", "api_key", "basic_auth"]);
    for (what, req, kind) in [
        ("token", &bearer, CredentialKind::Jwt),
        ("API key", &apikey, CredentialKind::ApiKey),
        ("Basic", &basic, CredentialKind::Basic),
    ] {
        let ctx = all.validate(&req.meta(Some(&all_schemes))).await;
        assert_eq!(ctx.map(|c| c.credential).ok(), Some(kind), "{what}");
    }

    // API keys only: a token is refused, the key accepted
    let keys_only = route_with_schemes(&["api_key"]);
    assert_eq!(
        err_code(all.validate(&bearer.meta(Some(&keys_only))).await),
        900901
    );
    assert!(all.validate(&apikey.meta(Some(&keys_only))).await.is_ok());
}

#[tokio::test]
async fn opaque_tokens_introspected_over_http_with_the_internal_token() {
    let (store, _d) = common::sqlite().await;
    let base = km_with_internal_token(store.clone(), "internal-secret").await;
    // the same store behind an in-process Key Manager issues the token
    let km = common::key_manager(store).await;
    let c = common::client(
        &km,
        ClientRegistration {
            application_id: Some(APP.into()),
            token_type: Some("OAUTH".into()),
            ..Default::default()
        },
    )
    .await;
    let cid = c.client.client_id;
    let tok = km
        .issue_client_credentials_token(&cid, &[], None)
        .await
        .unwrap()
        .access_token;
    assert!(!jwt::looks_like_jwt(&tok));
    let arts = artifacts(&cid, "UNBLOCKED");
    let url = format!("{base}/oauth2/introspect");
    let remote =
        apim_keymanager::validator::HttpIntrospector::with_internal_token(&url, "internal-secret")
            .unwrap();
    let v = IntrospectionValidator::new(Arc::new(remote), arts.clone());
    let ctx = v
        .validate(&Req::bearer(&tok).meta(Some(&route(0))))
        .await
        .unwrap();
    assert_eq!(
        (ctx.credential, ctx.application_id.as_str()),
        (CredentialKind::Opaque, APP)
    );
    assert_eq!(
        err_code(v.validate(&Req::bearer("unknown-opaque").meta(None)).await),
        900901
    );

    // a wrong internal token: the Key Manager refuses the caller (invalid_client)
    let wrong =
        apim_keymanager::validator::HttpIntrospector::with_internal_token(&url, "nope").unwrap();
    let err = wrong.introspect(&tok).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}
