//! Each core layer driven in front of a plain tower service, asserting what a client sees.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apim_core::artifacts::{ArtifactStore, InMemoryArtifacts, RouteLayer, RouteMatch};
use apim_core::auth::{AuthContext, AuthLayer, KeyValidator, RequestMeta};
use apim_core::bus::{EventLayer, RequestRecord, RequestSink};
use apim_core::event::{Event, EventPayload, GatewayDeployment, GatewayRemoval, Seq};
use apim_core::lifecycle::LifecycleState;
use apim_core::model::Api;
use apim_core::throttle::{Decision, Outcome, ThrottleContext, ThrottleDecider, ThrottleLayer};
use apim_core::{ApimError, ErrorBody, ThrottleLevel};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

fn api(id: &str) -> Api {
    let mut a: Api = serde_json::from_value(serde_json::json!({
        "name": "Pizza", "context": "/pizza", "version": "1.0.0", "isDefaultVersion": true,
        "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:1"}},
        "operations": [
            {"target": "/menu", "verb": "GET", "authType": "None"},
            {"target": "/order/{id}", "verb": "GET"}
        ]
    }))
    .unwrap();
    a.id = id.into();
    a.life_cycle_status = LifecycleState::Published;
    a
}

fn deploy(seq: u64, a: Api, labels: &[&str]) -> Event {
    Event {
        seq: Seq(seq),
        time: 0,
        payload: EventPayload::DeployApiInGateway(Box::new(GatewayDeployment {
            api: a,
            revision_id: "r1".into(),
            gateway_labels: labels.iter().map(|s| s.to_string()).collect(),
            vhost: None,
        })),
    }
}

/// The plain service behind the layers: echoes what the layers attached.
async fn echo(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let route = req
        .extensions()
        .get::<RouteMatch>()
        .map(|m| m.operation().target.clone())
        .unwrap_or_default();
    let user = req
        .extensions()
        .get::<Arc<AuthContext>>()
        .map(|a| a.end_user.clone())
        .unwrap_or_default();
    Ok(Response::new(Full::from(format!(
        "route={route} user={user}"
    ))))
}

async fn call<S>(svc: S, uri: &str, token: Option<&str>) -> (StatusCode, http::HeaderMap, String)
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let res = svc.oneshot(b.body(Full::default()).unwrap()).await.unwrap();
    let (p, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        p.status,
        p.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn code(body: &str) -> u32 {
    serde_json::from_str::<ErrorBody>(body).unwrap().code
}

#[tokio::test]
async fn route_layer_routes_and_rejects() {
    let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    artifacts.apply(&deploy(1, api("a1"), &["Default"]));
    let svc = ServiceBuilder::new()
        .layer(RouteLayer::new(artifacts.clone()))
        .service(service_fn(echo));
    let (s, _, b) = call(svc.clone(), "/pizza/1.0.0/order/7", None).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "route=/order/{id} user="));
    let (s, _, b) = call(svc.clone(), "/pizza/menu", None).await;
    assert_eq!(
        (s, b.as_str()),
        (StatusCode::OK, "route=/menu user="),
        "default version"
    );
    let (s, h, b) = call(svc.clone(), "/nope/1.0.0/x", None).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, 900906));
    assert_eq!(h["content-type"], "application/json");
    let mut blocked = api("a1");
    blocked.life_cycle_status = LifecycleState::Blocked;
    artifacts.apply(&deploy(2, blocked, &["Default"]));
    let (s, _, b) = call(svc, "/pizza/1.0.0/order/7", None).await;
    assert_eq!((s, code(&b)), (StatusCode::SERVICE_UNAVAILABLE, 700700));
}

#[tokio::test]
async fn artifacts_follow_environments() {
    let gw_a = InMemoryArtifacts::new(vec!["A".into()]);
    let gw_b = InMemoryArtifacts::new(vec!["B".into()]);
    let d = deploy(1, api("a1"), &["A", "B"]);
    gw_a.apply(&d);
    gw_b.apply(&d);
    let only_b = deploy(
        2,
        {
            let mut x = api("a2");
            x.context = "/other".into();
            x
        },
        &["B"],
    );
    gw_a.apply(&only_b);
    gw_b.apply(&only_b);
    assert_eq!(
        (gw_a.snapshot().api_count(), gw_b.snapshot().api_count()),
        (1, 2)
    );
    let undeploy_b = Event {
        seq: Seq(3),
        time: 0,
        payload: EventPayload::RemoveApiFromGateway(GatewayRemoval {
            api_id: "a1".into(),
            context: "/pizza".into(),
            version: "1.0.0".into(),
            revision_id: "r1".into(),
            gateway_labels: vec!["B".into()],
        }),
    };
    gw_a.apply(&undeploy_b);
    gw_b.apply(&undeploy_b);
    assert!(
        gw_a.resolve(&http::Method::GET, None, "/pizza/1.0.0/menu")
            .is_ok(),
        "A keeps serving"
    );
    assert!(
        gw_b.resolve(&http::Method::GET, None, "/pizza/1.0.0/menu")
            .is_err(),
        "B stops"
    );
    // replaying an old event changes nothing
    gw_b.apply(&d);
    assert!(gw_b
        .resolve(&http::Method::GET, None, "/pizza/1.0.0/menu")
        .is_err());
    assert_eq!(gw_b.seq(), Seq(3));
}

struct TokenIsUser;
#[async_trait::async_trait]
impl KeyValidator for TokenIsUser {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        let h = req
            .headers
            .get("authorization")
            .ok_or_else(|| ApimError::MissingCredentials("no token".into()))?;
        let t = h
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        match t.strip_prefix("good-") {
            Some(user) => Ok(Arc::new(AuthContext::for_application("app", user))),
            None => Err(ApimError::InvalidCredentials("bad token".into())),
        }
    }
}

#[tokio::test]
async fn auth_layer_sets_context_or_answers() {
    let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    artifacts.apply(&deploy(1, api("a1"), &["Default"]));
    let svc = ServiceBuilder::new()
        .layer(RouteLayer::new(artifacts))
        .layer(AuthLayer::new(Arc::new(TokenIsUser)))
        .service(service_fn(echo));
    let (s, h, b) = call(svc.clone(), "/pizza/1.0.0/order/1", None).await;
    assert_eq!((s, code(&b)), (StatusCode::UNAUTHORIZED, 900902));
    assert!(h.contains_key("www-authenticate"));
    let (s, _, b) = call(svc.clone(), "/pizza/1.0.0/order/1", Some("forged")).await;
    assert_eq!((s, code(&b)), (StatusCode::UNAUTHORIZED, 900901));
    let (s, _, b) = call(svc.clone(), "/pizza/1.0.0/order/1", Some("good-alice")).await;
    assert_eq!(
        (s, b.as_str()),
        (StatusCode::OK, "route=/order/{id} user=alice")
    );
    let (s, _, b) = call(svc, "/pizza/1.0.0/menu", None).await;
    assert_eq!(
        (s, b.as_str()),
        (StatusCode::OK, "route=/menu user=anonymous"),
        "authType None needs no credential"
    );
}

/// Answers tokens `now-<user>` at once (`validate_now`), anything else through `validate`,
/// which it counts.
struct CachedTokens {
    waited: AtomicU64,
}
#[async_trait::async_trait]
impl KeyValidator for CachedTokens {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        self.waited.fetch_add(1, Ordering::SeqCst);
        TokenIsUser.validate(req).await
    }
    fn validate_now(&self, req: &RequestMeta<'_>) -> Option<Result<Arc<AuthContext>, ApimError>> {
        let t = req.headers.get("authorization")?.to_str().ok()?;
        let user = t.strip_prefix("Bearer now-")?;
        Some(Ok(Arc::new(AuthContext::for_application("app", user))))
    }
}

#[tokio::test]
async fn an_immediate_answer_skips_validate() {
    let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    artifacts.apply(&deploy(1, api("a1"), &["Default"]));
    let v = Arc::new(CachedTokens {
        waited: AtomicU64::new(0),
    });
    let svc = ServiceBuilder::new()
        .layer(RouteLayer::new(artifacts))
        .layer(AuthLayer::new(v.clone()))
        .service(service_fn(echo));
    let (s, _, b) = call(svc.clone(), "/pizza/1.0.0/order/1", Some("now-bob")).await;
    assert_eq!(
        (s, b.as_str()),
        (StatusCode::OK, "route=/order/{id} user=bob")
    );
    assert_eq!(
        v.waited.load(Ordering::SeqCst),
        0,
        "answered without validate"
    );
    let (s, _, b) = call(svc.clone(), "/pizza/1.0.0/order/1", Some("good-alice")).await;
    assert_eq!(
        (s, b.as_str()),
        (StatusCode::OK, "route=/order/{id} user=alice")
    );
    let (s, _, b) = call(svc, "/pizza/1.0.0/order/1", Some("forged")).await;
    assert_eq!((s, code(&b)), (StatusCode::UNAUTHORIZED, 900901));
    assert_eq!(
        v.waited.load(Ordering::SeqCst),
        2,
        "the others went to validate"
    );
}

/// Decides the first `at_once` requests in `decide_now` (admitting them), then defers to
/// `decide`, which denies and is counted.
struct LocalFirst {
    at_once: u64,
    seen: AtomicU64,
    waited: AtomicU64,
}
#[async_trait::async_trait]
impl ThrottleDecider for LocalFirst {
    async fn decide(&self, _ctx: &ThrottleContext<'_>) -> Decision {
        self.waited.fetch_add(1, Ordering::SeqCst);
        Decision::Deny {
            level: ThrottleLevel::Application,
            retry_after: Duration::from_secs(1),
        }
    }
    fn decide_now(&self, _ctx: &ThrottleContext<'_>) -> Option<Decision> {
        (self.seen.fetch_add(1, Ordering::SeqCst) < self.at_once).then_some(Decision::Allow)
    }
}

#[tokio::test]
async fn an_immediate_decision_skips_decide() {
    let d = Arc::new(LocalFirst {
        at_once: 2,
        seen: AtomicU64::new(0),
        waited: AtomicU64::new(0),
    });
    let svc = ServiceBuilder::new()
        .layer(ThrottleLayer::new(d.clone()))
        .service(service_fn(echo));
    for _ in 0..2 {
        let (s, _, _) = call(svc.clone(), "/pizza/1.0.0/menu", None).await;
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(d.waited.load(Ordering::SeqCst), 0);
    let (s, _, b) = call(svc, "/pizza/1.0.0/menu", None).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::TOO_MANY_REQUESTS, 900803),
        "application level, from decide"
    );
    assert_eq!(d.waited.load(Ordering::SeqCst), 1);
}

/// Admits `limit` requests, then denies; counts what record() saw.
struct Counter {
    limit: u64,
    seen: AtomicU64,
    recorded: Mutex<Vec<u16>>,
}
#[async_trait::async_trait]
impl ThrottleDecider for Counter {
    async fn decide(&self, _ctx: &ThrottleContext<'_>) -> Decision {
        if self.seen.fetch_add(1, Ordering::SeqCst) < self.limit {
            Decision::Allow
        } else {
            Decision::Deny {
                level: ThrottleLevel::Subscription,
                retry_after: Duration::from_millis(2500),
            }
        }
    }
    fn record(&self, _ctx: &ThrottleContext<'_>, outcome: &Outcome) {
        self.recorded.lock().unwrap().push(outcome.status);
    }
}

#[tokio::test]
async fn throttle_layer_denies_with_retry_after_and_records() {
    let decider = Arc::new(Counter {
        limit: 2,
        seen: AtomicU64::new(0),
        recorded: Mutex::new(vec![]),
    });
    let svc = ServiceBuilder::new()
        .layer(ThrottleLayer::new(decider.clone()))
        .service(service_fn(echo));
    for _ in 0..2 {
        assert_eq!(call(svc.clone(), "/x", None).await.0, StatusCode::OK);
    }
    let (s, h, b) = call(svc, "/x", None).await;
    assert_eq!((s, code(&b)), (StatusCode::TOO_MANY_REQUESTS, 900804));
    assert_eq!(h["retry-after"], "3");
    assert_eq!(
        *decider.recorded.lock().unwrap(),
        vec![200, 200],
        "only admitted requests are recorded"
    );
}

struct Collect(Mutex<Vec<RequestRecord>>);
impl RequestSink for Collect {
    fn emit(&self, r: RequestRecord) {
        self.0.lock().unwrap().push(r);
    }
}

#[tokio::test]
async fn event_layer_emits_one_record_per_request() {
    let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    artifacts.apply(&deploy(1, api("a1"), &["Default"]));
    let sink = Arc::new(Collect(Mutex::new(vec![])));
    let svc = ServiceBuilder::new()
        .layer(RouteLayer::new(artifacts))
        .layer(EventLayer::new(sink.clone()))
        .service(service_fn(echo));
    call(svc.clone(), "/pizza/1.0.0/menu", None).await;
    call(svc, "/pizza/1.0.0/order/2", None).await;
    let recs = sink.0.lock().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (
            recs[0].status,
            recs[0].api_id.as_deref(),
            recs[0].path.as_str()
        ),
        (200, Some("a1"), "/pizza/1.0.0/menu")
    );
}
