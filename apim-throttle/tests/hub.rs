//! The Traffic Manager's HTTP surface: authentication, the count endpoint's errors, and the
//! event hub stream (order, resume, heartbeat, slow subscriber cut off).

use std::sync::Arc;
use std::time::Duration;

use apim_core::bus::{EventBus, InProcessBus};
use apim_core::event::{EntityRef, EventPayload};
use apim_throttle::traffic_manager::HubSettings;
use apim_throttle::TrafficManager;
use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

const TOKEN: &str = "test-internal-token-0123456789";

fn get(uri: &str, token: Option<&str>) -> http::Request<Body> {
    let mut b = http::Request::get(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

async fn publish(bus: &InProcessBus, n: u64) {
    for i in 0..n {
        bus.publish(EventPayload::ApplicationDelete(EntityRef {
            id: format!("a{i}"),
        }))
        .await
        .unwrap();
    }
}

fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[tokio::test]
async fn internal_endpoints_need_the_token() {
    let tm = TrafficManager::new(TOKEN, Arc::new(InProcessBus::new(8)));
    for token in [None, Some("wrong-token-wrong-token")] {
        let res = tm
            .router()
            .oneshot(get("/internal/events/v1/stream", token))
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let res = tm
            .router()
            .oneshot(
                http::Request::post("/internal/throttle/v1/counts")
                    .header("authorization", format!("Bearer {}", token.unwrap_or("")))
                    .body(Body::from("{\"counts\":[]}"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = tm
        .router()
        .oneshot(
            http::Request::post("/internal/throttle/v1/counts")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["code"], 400);
    let res = tm
        .router()
        .oneshot(get("/internal/events/v1/stream?after=x", Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn stream_resumes_after_a_sequence_and_sends_heartbeats() {
    let bus = InProcessBus::new(100);
    publish(&bus, 3).await;
    let tm = TrafficManager::new(TOKEN, Arc::new(bus.clone())).with_hub_settings(HubSettings {
        heartbeat: Duration::from_millis(50),
        buffer: 64,
    });
    let res = tm
        .router()
        .oneshot(get("/internal/events/v1/stream?after=1", Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let mut body = res.into_body();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a line in time")
            .unwrap()
            .unwrap();
        seen.extend(lines(frame.data_ref().unwrap()));
    }
    assert_eq!(seen[0]["seq"], 2);
    assert_eq!(seen[0]["type"], "APPLICATION_DELETE");
    assert_eq!(seen[1]["seq"], 3);
    assert_eq!(seen[2], serde_json::json!({"type": "HEARTBEAT", "seq": 3}));
    // live events follow
    publish(&bus, 1).await;
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let l = lines(frame.data_ref().unwrap());
    assert_eq!(l[0]["seq"], 4);
    let e: apim_core::event::Event = serde_json::from_value(l[0].clone()).unwrap();
    assert_eq!(e.seq.0, 4);
}

#[tokio::test]
async fn a_slow_subscriber_is_cut_off_and_resumes_without_gaps() {
    let bus = InProcessBus::new(1000);
    publish(&bus, 200).await;
    let tm = TrafficManager::new(TOKEN, Arc::new(bus.clone())).with_hub_settings(HubSettings {
        heartbeat: Duration::from_secs(60),
        buffer: 8,
    });
    let res = tm
        .router()
        .oneshot(get("/internal/events/v1/stream?after=0", Some(TOKEN)))
        .await
        .unwrap();
    // read nothing for a while: the hub fills this subscriber's buffer and cuts it off
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = tokio::time::timeout(Duration::from_secs(5), res.into_body().collect())
        .await
        .expect("a cut-off stream ends")
        .unwrap()
        .to_bytes();
    let first = lines(&got);
    assert!(
        !first.is_empty() && first.len() <= 9,
        "{} lines buffered",
        first.len()
    );
    let last = first.last().unwrap()["seq"].as_u64().unwrap();
    assert_eq!(last, first.len() as u64);
    // resume after the last one seen: the next line is the next event
    let res = tm
        .router()
        .oneshot(get(
            &format!("/internal/events/v1/stream?after={last}"),
            Some(TOKEN),
        ))
        .await
        .unwrap();
    let mut body = res.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(lines(frame.data_ref().unwrap())[0]["seq"], last + 1);
}

#[tokio::test]
async fn a_position_no_longer_held_ends_with_an_error_line() {
    let bus = InProcessBus::new(3);
    publish(&bus, 10).await;
    let tm = TrafficManager::new(TOKEN, Arc::new(bus));
    let res = tm
        .router()
        .oneshot(get("/internal/events/v1/stream?after=1", Some(TOKEN)))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), res.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let l = lines(&got);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["type"], "ERROR");
    assert_eq!(l[0]["code"], 409);
}
