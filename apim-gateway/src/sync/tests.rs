//! A fake control plane and a fake Traffic Manager stream (axum on 127.0.0.1:0): events take
//! effect without restart, the gateway serves only its environments, reconnects resume after
//! the last applied sequence, and a 409 triggers a new snapshot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use apim_core::artifacts::InMemoryArtifacts;
use apim_core::event::{
    ApiRef, Event, EventPayload, GatewayDeployment, GatewayRemoval, LifecycleChange, Seq,
    SubscriptionChange,
};
use apim_core::lifecycle::LifecycleState;
use apim_core::model::{Api, Subscription, SubscriptionStatus};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::Method;
use tokio::sync::mpsc;

use super::*;

const TOKEN: &str = "test-internal-token-123";

fn api(id: &str, ctx: &str) -> Api {
    let mut a: Api = serde_json::from_value(serde_json::json!({
        "name": id, "context": ctx, "version": "1",
        "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:1"}},
        "operations": [{"verb": "GET", "target": "/*"}]
    }))
    .unwrap();
    a.id = id.into();
    a.life_cycle_status = LifecycleState::Published;
    a
}

fn dep(a: Api, labels: &[&str]) -> GatewayDeployment {
    GatewayDeployment {
        api: a,
        revision_id: "r1".into(),
        gateway_labels: labels.iter().map(|s| s.to_string()).collect(),
        vhost: None,
    }
}

fn event(seq: u64, payload: EventPayload) -> String {
    let mut s = serde_json::to_string(&Event {
        seq: Seq(seq),
        time: 0,
        payload,
    })
    .unwrap();
    s.push('\n');
    s
}

fn api_ref(id: &str, ctx: &str, state: LifecycleState) -> ApiRef {
    ApiRef {
        api_id: id.into(),
        name: id.into(),
        context: ctx.into(),
        version: "1".into(),
        provider: "admin".into(),
        life_cycle_status: state,
    }
}

fn removal(id: &str, ctx: &str, labels: &[&str]) -> EventPayload {
    EventPayload::RemoveApiFromGateway(GatewayRemoval {
        api_id: id.into(),
        context: ctx.into(),
        version: "1".into(),
        revision_id: "r1".into(),
        gateway_labels: labels.iter().map(|s| s.to_string()).collect(),
    })
}

enum Plan {
    Stream(mpsc::UnboundedReceiver<String>),
    Conflict,
}

#[derive(Default)]
struct Fake {
    snapshots: Mutex<Vec<GatewayData>>,
    snapshot_calls: AtomicUsize,
    environments: Mutex<Vec<String>>,
    plans: Mutex<Vec<Plan>>,
    afters: Mutex<Vec<u64>>,
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn snapshot(
    State(f): State<Arc<Fake>>,
    h: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !authorized(&h) {
        return http::StatusCode::UNAUTHORIZED.into_response();
    }
    let n = f.snapshot_calls.fetch_add(1, Ordering::SeqCst);
    f.environments
        .lock()
        .unwrap()
        .push(q.get("environments").cloned().unwrap_or_default());
    let snaps = f.snapshots.lock().unwrap();
    axum::Json(snaps[n.min(snaps.len() - 1)].clone()).into_response()
}

async fn stream(
    State(f): State<Arc<Fake>>,
    h: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !authorized(&h) {
        return http::StatusCode::UNAUTHORIZED.into_response();
    }
    f.afters.lock().unwrap().push(
        q.get("after")
            .and_then(|a| a.parse().ok())
            .unwrap_or(u64::MAX),
    );
    let plan = {
        let mut p = f.plans.lock().unwrap();
        if p.is_empty() {
            None
        } else {
            Some(p.remove(0))
        }
    };
    match plan {
        Some(Plan::Stream(rx)) => {
            let s = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|l| (Ok::<_, std::io::Error>(l), rx))
            });
            axum::body::Body::from_stream(s).into_response()
        }
        Some(Plan::Conflict) => http::StatusCode::CONFLICT.into_response(),
        // nothing planned: hang up at once (the syncer backs off and retries)
        None => http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn serve_fake(f: Arc<Fake>) -> String {
    let app = axum::Router::new()
        .route("/internal/data/v1/snapshot", get(snapshot))
        .route("/internal/events/v1/stream", get(stream))
        .with_state(f);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn code(a: &InMemoryArtifacts, path: &str) -> u32 {
    match a.resolve(&Method::GET, None, path) {
        Ok(_) => 200,
        Err(e) => e.code(),
    }
}

#[tokio::test]
async fn snapshot_then_events_without_restart() {
    let fake = Arc::new(Fake::default());
    fake.snapshots.lock().unwrap().extend([
        GatewayData {
            seq: Seq(2),
            deployments: vec![
                dep(api("a", "/a"), &["Default"]),
                dep(api("b", "/b"), &["Other"]),
            ],
            ..Default::default()
        },
        GatewayData {
            seq: Seq(20),
            deployments: vec![dep(api("c", "/c"), &["Default"])],
            ..Default::default()
        },
    ]);
    let (tx, rx) = mpsc::unbounded_channel();
    fake.plans
        .lock()
        .unwrap()
        .extend([Plan::Stream(rx), Plan::Conflict]);
    let (tx2, rx2) = mpsc::unbounded_channel::<String>();
    fake.plans.lock().unwrap().push(Plan::Stream(rx2));
    let url = serve_fake(fake.clone()).await;

    let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    let ready = Arc::new(Readiness::new());
    let syncer = Syncer::new(
        &url,
        vec!["http://127.0.0.1:1".into(), url.clone()],
        &["Default".into()],
        TOKEN,
        artifacts.clone(),
        ready.clone(),
    )
    .unwrap();
    assert!(!ready.is_ready());
    let task = tokio::spawn(syncer.run());

    until("ready", || ready.is_ready()).await;
    assert_eq!(fake.environments.lock().unwrap()[0], "Default");
    assert_eq!(code(&artifacts, "/a/1/x"), 200);
    assert_eq!(
        code(&artifacts, "/b/1/x"),
        900906,
        "b is deployed to another environment"
    );

    // the first TM URL is down: the syncer moves on to the second
    until("stream connected", || {
        !fake.afters.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(fake.afters.lock().unwrap()[0], 2);

    // deploy b to this environment too
    tx.send(event(
        3,
        EventPayload::DeployApiInGateway(Box::new(dep(api("b", "/b"), &["Default", "Other"]))),
    ))
    .unwrap();
    tx.send("{\"type\":\"HEARTBEAT\",\"seq\":3}\n".into())
        .unwrap();
    until("deploy", || code(&artifacts, "/b/1/x") == 200).await;

    // lifecycle: block a
    tx.send(event(
        4,
        EventPayload::ApiLifecycleChange(LifecycleChange {
            api: api_ref("a", "/a", LifecycleState::Blocked),
            previous: LifecycleState::Published,
        }),
    ))
    .unwrap();
    until("blocked", || code(&artifacts, "/a/1/x") == 700700).await;

    // subscription, split across two chunks mid-line
    let sub = event(
        5,
        EventPayload::SubscriptionsCreate(SubscriptionChange {
            subscription: Subscription {
                subscription_id: "s1".into(),
                application_id: "app1".into(),
                api_id: "a".into(),
                throttling_policy: "Gold".into(),
                requested_throttling_policy: None,
                status: SubscriptionStatus::Unblocked,
                created_time: 0,
            },
            api_context: "/a".into(),
            api_version: "1".into(),
        }),
    );
    let (h1, h2) = sub.split_at(sub.len() / 2);
    tx.send(h1.into()).unwrap();
    tx.send(h2.into()).unwrap();
    until("subscription", || {
        artifacts.snapshot().subscription("app1", "a").is_some()
    })
    .await;

    // undeploy b from the other environment: still served here; then from ours: gone
    tx.send(event(6, removal("b", "/b", &["Other"]))).unwrap();
    tx.send(event(7, removal("b", "/b", &["Default"]))).unwrap();
    until("undeploy", || artifacts.seq() == Seq(7)).await;
    assert_eq!(code(&artifacts, "/b/1/x"), 900906);

    // a replayed (already applied) event changes nothing
    tx.send(event(
        3,
        EventPayload::DeployApiInGateway(Box::new(dep(api("b", "/b"), &["Default"]))),
    ))
    .unwrap();
    // the stream breaks: the syncer resumes after 7, gets 409, takes a new snapshot (seq 20)
    drop(tx);
    until("re-snapshot", || {
        fake.snapshot_calls.load(Ordering::SeqCst) == 2
    })
    .await;
    until("snapshot loaded", || artifacts.seq() == Seq(20)).await;
    assert_eq!(code(&artifacts, "/c/1/x"), 200);
    assert_eq!(code(&artifacts, "/b/1/x"), 900906);
    until("resumed", || fake.afters.lock().unwrap().contains(&20)).await;
    let afters = fake.afters.lock().unwrap().clone();
    assert!(afters.starts_with(&[2, 7]), "{afters:?}");

    tx2.send(event(
        21,
        EventPayload::ApiDelete(api_ref("c", "/c", LifecycleState::Retired)),
    ))
    .unwrap();
    until("delete", || code(&artifacts, "/c/1/x") == 900906).await;
    task.abort();
}

#[tokio::test]
async fn wrong_token_is_not_ready() {
    let fake = Arc::new(Fake::default());
    fake.snapshots.lock().unwrap().push(GatewayData::default());
    let url = serve_fake(fake.clone()).await;
    let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    let ready = Arc::new(Readiness::new());
    let s = Syncer::new(
        &url,
        vec![url.clone()],
        &["Default".into()],
        "wrong-token-xxxxxxxx",
        artifacts,
        ready.clone(),
    )
    .unwrap();
    let err = s.snapshot().await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert!(!ready.is_ready());
}
