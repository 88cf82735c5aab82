//! LocalThrottle on a manual clock: every policy kind, level and unit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use apim_core::artifacts::ArtifactStore;
use apim_core::throttle::{Decision, Outcome, ThrottleDecider, ThrottleLayer};
use apim_core::ThrottleLevel;
use apim_throttle::{Clock, LocalThrottle, ManualClock};
use common::*;
use http::Method;
use serde_json::json;

fn throttle(a: Arc<apim_core::artifacts::InMemoryArtifacts>) -> (LocalThrottle, ManualClock) {
    let clock = ManualClock::at_day_start();
    (LocalThrottle::with_clock(a, Arc::new(clock.clone())), clock)
}

fn deny(level: ThrottleLevel, secs: u64) -> Decision {
    Decision::Deny {
        level,
        retry_after: Duration::from_secs(secs),
    }
}

#[test]
fn subscription_quota_in_every_unit_with_exact_retry_after() {
    for (unit, secs) in [("sec", 1), ("min", 60), ("hour", 3600), ("day", 86_400)] {
        let a = artifacts(
            pizza_api(None),
            vec![subscription("T", count_limit(3, unit), None, true)],
            vec![],
        );
        let (t, clock) = throttle(a.clone());
        let r = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
            "app-1",
            "alice",
            "T",
            "Unlimited",
        );
        for _ in 0..3 {
            assert_eq!(t.check(&r.ctx()), Decision::Allow, "{unit}");
        }
        assert_eq!(
            t.check(&r.ctx()),
            deny(ThrottleLevel::Subscription, secs),
            "{unit}"
        );
        // other application: own key
        let other = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
            "app-2",
            "alice",
            "T",
            "Unlimited",
        );
        assert_eq!(t.check(&other.ctx()), Decision::Allow);
        clock.advance(Duration::from_secs(secs) / 4);
        assert_eq!(
            t.check(&r.ctx()),
            Decision::Deny {
                level: ThrottleLevel::Subscription,
                retry_after: Duration::from_secs(secs) * 3 / 4
            },
            "{unit}: retry-after counts down to the window end"
        );
        clock.advance(Duration::from_secs(secs) * 3 / 4);
        assert_eq!(t.check(&r.ctx()), Decision::Allow, "{unit}: next window");
    }
}

#[test]
fn burst_control_per_second_and_per_minute() {
    for (unit, retry_ms) in [("sec", 500), ("min", 30_000)] {
        let a = artifacts(
            pizza_api(None),
            vec![subscription(
                "Gold",
                count_limit(1000, "min"),
                Some((2, unit)),
                true,
            )],
            vec![],
        );
        let (t, clock) = throttle(a.clone());
        let r = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
            "app-1",
            "alice",
            "Gold",
            "Unlimited",
        );
        assert_eq!(t.check(&r.ctx()), Decision::Allow);
        assert_eq!(t.check(&r.ctx()), Decision::Allow);
        assert_eq!(
            t.check(&r.ctx()),
            Decision::Deny {
                level: ThrottleLevel::Burst,
                retry_after: Duration::from_millis(retry_ms)
            }
        );
        clock.advance(Duration::from_millis(retry_ms));
        assert_eq!(t.check(&r.ctx()), Decision::Allow, "{unit}");
    }
}

#[tokio::test]
async fn decide_now_and_decide_count_alike() {
    use apim_core::throttle::ThrottleDecider as _;
    let a = artifacts(
        pizza_api(None),
        vec![subscription(
            "Gold",
            count_limit(1000, "min"),
            Some((3, "min")),
            true,
        )],
        vec![],
    );
    let (t, _clock) = throttle(a.clone());
    let r =
        Req::new(&a, Method::GET, "/pizza/1.0/menu").caller("app-1", "alice", "Gold", "Unlimited");
    assert_eq!(
        t.decide_now(&r.ctx()),
        Some(Decision::Allow),
        "local: at once"
    );
    assert_eq!(t.decide(&r.ctx()).await, Decision::Allow);
    assert_eq!(t.decide_now(&r.ctx()), Some(Decision::Allow));
    assert_eq!(
        t.decide(&r.ctx()).await,
        Decision::Deny {
            level: ThrottleLevel::Burst,
            retry_after: Duration::from_secs(20)
        },
        "three counted, whichever way they were decided"
    );
}

#[test]
fn stop_on_quota_reach_false_lets_traffic_through_and_marks_it() {
    let a = artifacts(
        pizza_api(None),
        vec![subscription("Soft", count_limit(2, "min"), None, false)],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let r = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
        "app-1",
        "alice",
        "Soft",
        "Unlimited",
    );
    for _ in 0..5 {
        assert_eq!(t.check(&r.ctx()), Decision::Allow);
    }
    assert_eq!(t.over_quota_admitted(), 3);
}

#[test]
fn application_tier_is_per_application_and_user() {
    let a = artifacts(
        pizza_api(None),
        vec![application("2PerMin", count_limit(2, "min"))],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let alice = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
        "app-1",
        "alice",
        "Unlimited",
        "2PerMin",
    );
    let bob = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
        "app-1",
        "bob",
        "Unlimited",
        "2PerMin",
    );
    assert_eq!(t.check(&alice.ctx()), Decision::Allow);
    assert_eq!(t.check(&alice.ctx()), Decision::Allow);
    assert_eq!(t.check(&alice.ctx()), deny(ThrottleLevel::Application, 60));
    assert_eq!(t.check(&bob.ctx()), Decision::Allow);
}

#[test]
fn resource_level_and_api_level_advanced_policies() {
    let a = artifacts(
        pizza_api(None),
        vec![advanced("res", count_limit(2, "min"), json!([]))],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let menu = Req::new(&a, Method::GET, "/pizza/1.0/menu").caller(
        "app-1",
        "alice",
        "Unlimited",
        "Unlimited",
    );
    let order = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
        "app-1",
        "alice",
        "Unlimited",
        "Unlimited",
    );
    assert_eq!(t.check(&menu.ctx()), Decision::Allow);
    assert_eq!(t.check(&menu.ctx()), Decision::Allow);
    assert_eq!(t.check(&menu.ctx()), deny(ThrottleLevel::Resource, 60));
    for _ in 0..5 {
        assert_eq!(
            t.check(&order.ctx()),
            Decision::Allow,
            "other resource has no policy"
        );
    }

    // an API-level policy overrides the resource's, and all resources share it
    let a = artifacts(
        pizza_api(Some("apiP")),
        vec![
            advanced("res", count_limit(100, "min"), json!([])),
            advanced("apiP", count_limit(3, "hour"), json!([])),
        ],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let menu = Req::new(&a, Method::GET, "/pizza/1.0/menu");
    let order = Req::new(&a, Method::POST, "/pizza/1.0/order");
    assert_eq!(t.check(&menu.ctx()), Decision::Allow);
    assert_eq!(t.check(&order.ctx()), Decision::Allow);
    assert_eq!(t.check(&menu.ctx()), Decision::Allow);
    assert_eq!(t.check(&order.ctx()), deny(ThrottleLevel::Resource, 3600));
}

#[test]
fn condition_groups_first_match_else_default() {
    let a = artifacts(
        pizza_api(None),
        vec![advanced(
            "res",
            count_limit(5, "min"),
            json!([
                {"conditions": [{"type": "HEADERCONDITION", "headerCondition": {"headerName": "x-tier", "headerValue": "free"}}], "limit": count_limit(1, "min")},
                {"conditions": [{"type": "IPCONDITION", "ipCondition": {"ipConditionType": "IPRANGE", "startingIP": "2001:db8::", "endingIP": "2001:db8::ffff"}}], "limit": count_limit(2, "min")},
                {"conditions": [{"type": "QUERYPARAMETERCONDITION", "queryParameterCondition": {"parameterName": "size", "parameterValue": "large"}}], "limit": count_limit(3, "sec")},
                {"conditions": [{"type": "JWTCLAIMSCONDITION", "invertCondition": true, "jwtClaimsCondition": {"claimUrl": "role", "attribute": "vip"}}], "limit": count_limit(4, "min")}
            ]),
        )],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let admitted = |r: &Req| {
        (0..10)
            .take_while(|_| t.check(&r.ctx()) == Decision::Allow)
            .count()
    };
    let vip = |r: Req| {
        let mut r = r.caller("app-1", "alice", "Unlimited", "Unlimited");
        let claims = serde_json::from_value(json!({"role": "vip"})).unwrap();
        r.auth.as_mut().unwrap().claims = Some(Arc::new(claims));
        r
    };
    assert_eq!(
        admitted(&vip(
            Req::new(&a, Method::GET, "/pizza/1.0/menu").header("x-tier", "free")
        )),
        1
    );
    assert_eq!(
        admitted(&vip(
            Req::new(&a, Method::GET, "/pizza/1.0/menu").ip("2001:db8::7")
        )),
        2
    );
    assert_eq!(
        admitted(&vip(Req::new(
            &a,
            Method::GET,
            "/pizza/1.0/menu?size=large"
        ))),
        3
    );
    // not a vip (inverted claim condition holds)
    assert_eq!(
        admitted(&Req::new(&a, Method::GET, "/pizza/1.0/menu").caller(
            "app-1",
            "bob",
            "Unlimited",
            "Unlimited"
        )),
        4
    );
    // nothing matches: the default limit
    assert_eq!(
        admitted(&vip(Req::new(&a, Method::GET, "/pizza/1.0/menu"))),
        5
    );
}

#[test]
fn custom_policy_keys_from_templates() {
    let a = artifacts(
        pizza_api(None),
        vec![custom(
            "perUserPerApi",
            "$userId:$apiContext:$apiVersion",
            count_limit(2, "min"),
        )],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let alice = Req::new(&a, Method::GET, "/pizza/1.0/menu").caller(
        "app-1",
        "alice",
        "Unlimited",
        "Unlimited",
    );
    let alice_other_app = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
        "app-2",
        "alice",
        "Unlimited",
        "Unlimited",
    );
    let bob = Req::new(&a, Method::GET, "/pizza/1.0/menu").caller(
        "app-1",
        "bob",
        "Unlimited",
        "Unlimited",
    );
    assert_eq!(t.check(&alice.ctx()), Decision::Allow);
    assert_eq!(t.check(&alice_other_app.ctx()), Decision::Allow);
    assert_eq!(t.check(&alice.ctx()), deny(ThrottleLevel::Custom, 60));
    assert_eq!(t.check(&bob.ctx()), Decision::Allow);
}

#[test]
fn block_conditions_of_every_type() {
    let cases = [
        (
            block("b1", "API", json!("/pizza")),
            "app-1",
            "alice",
            "192.0.2.10",
        ),
        (
            block("b2", "APPLICATION", json!("owner:app-9-name")),
            "app-9",
            "alice",
            "192.0.2.10",
        ),
        (
            block(
                "b3",
                "IP",
                json!({"fixedIp": "192.0.2.66", "invert": false}),
            ),
            "app-1",
            "alice",
            "192.0.2.66",
        ),
        (
            block(
                "b4",
                "IPRANGE",
                json!({"startingIp": "2001:db8::1", "endingIp": "2001:db8::ff"}),
            ),
            "app-1",
            "alice",
            "2001:db8::42",
        ),
        (
            block("b5", "USER", json!("mallory")),
            "app-1",
            "mallory",
            "192.0.2.10",
        ),
        (
            block("b6", "IP", json!({"fixedIp": "192.0.2.1", "invert": true})),
            "app-1",
            "alice",
            "192.0.2.10",
        ),
    ];
    for (cond, app, user, ip) in cases {
        let a = artifacts(pizza_api(None), vec![], vec![cond.clone()]);
        let (t, _) = throttle(a.clone());
        let hit = Req::new(&a, Method::GET, "/pizza/1.0/menu")
            .caller(app, user, "Unlimited", "Unlimited")
            .ip(ip);
        assert_eq!(t.check(&hit.ctx()), Decision::Blocked, "{cond:?}");
        if cond.condition_type != apim_core::model::BlockConditionType::Api {
            let miss = Req::new(&a, Method::GET, "/pizza/1.0/menu")
                .caller("app-1", "alice", "Unlimited", "Unlimited")
                .ip("192.0.2.1");
            assert_eq!(t.check(&miss.ctx()), Decision::Allow, "{cond:?}");
        }
    }
}

#[test]
fn unknown_tier_is_unlimited() {
    let a = artifacts(pizza_api(Some("NoSuchApiPolicy")), vec![], vec![]);
    let (t, _) = throttle(a.clone());
    let r = Req::new(&a, Method::GET, "/pizza/1.0/menu").caller(
        "app-1",
        "alice",
        "NoSuchTier",
        "NoSuchAppTier",
    );
    for _ in 0..100 {
        assert_eq!(t.check(&r.ctx()), Decision::Allow);
    }
}

#[test]
fn anonymous_callers_use_unauthenticated_tier_per_client_ip() {
    let a = artifacts(
        pizza_api(None),
        vec![subscription(
            "Unauthenticated",
            count_limit(2, "min"),
            None,
            true,
        )],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let r = Req::new(&a, Method::POST, "/pizza/1.0/order");
    assert_eq!(t.check(&r.ctx()), Decision::Allow);
    assert_eq!(t.check(&r.ctx()), Decision::Allow);
    assert_eq!(t.check(&r.ctx()), deny(ThrottleLevel::Subscription, 60));
    let other = Req::new(&a, Method::POST, "/pizza/1.0/order").ip("198.51.100.1");
    assert_eq!(t.check(&other.ctx()), Decision::Allow);
}

#[test]
fn a_denied_request_uses_no_quota_of_earlier_levels() {
    let a = artifacts(
        pizza_api(None),
        vec![
            subscription("Sub2", count_limit(2, "min"), None, true),
            application("App1", count_limit(1, "min")),
        ],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let user =
        |u: &str| Req::new(&a, Method::POST, "/pizza/1.0/order").caller("app-1", u, "Sub2", "App1");
    assert_eq!(t.check(&user("alice").ctx()), Decision::Allow);
    assert_eq!(
        t.check(&user("alice").ctx()),
        deny(ThrottleLevel::Application, 60)
    );
    // the subscription hit of alice's denied call was given back
    assert_eq!(t.check(&user("bob").ctx()), Decision::Allow);
    assert_eq!(
        t.check(&user("carol").ctx()),
        deny(ThrottleLevel::Subscription, 60)
    );
}

#[tokio::test]
async fn bandwidth_quotas_count_request_and_response_bytes() {
    let a = artifacts(
        pizza_api(None),
        vec![
            subscription("Bw", bandwidth_limit(1, "min"), None, true),
            application("AppBw", bandwidth_limit(2, "hour")),
        ],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let mut r =
        Req::new(&a, Method::POST, "/pizza/1.0/order").caller("app-1", "alice", "Bw", "AppBw");
    r.bytes = 600;
    assert_eq!(t.decide(&r.ctx()).await, Decision::Allow);
    assert_eq!(
        t.decide(&r.ctx()).await,
        Decision::Allow,
        "600 < 1024 used: passes"
    );
    assert_eq!(
        t.decide(&r.ctx()).await,
        deny(ThrottleLevel::Subscription, 60)
    );
    // application bandwidth: response bytes recorded after the fact
    let mut other =
        Req::new(&a, Method::POST, "/pizza/1.0/order").caller("app-2", "bob", "Unlimited", "AppBw");
    other.bytes = 0;
    assert_eq!(t.decide(&other.ctx()).await, Decision::Allow);
    t.record(
        &other.ctx(),
        &Outcome {
            status: 200,
            request_bytes: 0,
            response_bytes: 4096,
        },
    );
    assert_eq!(
        t.decide(&other.ctx()).await,
        deny(ThrottleLevel::Application, 3600)
    );
}

/// Issue 18 item 12: a chunked request body has no `Content-Length` (the decision counts 0);
/// its bytes, counted as they streamed, are charged when the request is recorded.
#[tokio::test]
async fn bandwidth_charges_streamed_request_bytes_the_decision_did_not_see() {
    let a = artifacts(
        pizza_api(None),
        vec![
            subscription("Unlimited", count_limit(1_000_000, "min"), None, true),
            application("AppBw", bandwidth_limit(2, "hour")),
        ],
        vec![],
    );
    let (t, _) = throttle(a.clone());
    let mut r = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
        "app-1",
        "alice",
        "Unlimited",
        "AppBw",
    );
    r.bytes = 0; // chunked: no Content-Length
    assert_eq!(t.decide(&r.ctx()).await, Decision::Allow);
    t.record(
        &r.ctx(),
        &Outcome {
            status: 200,
            request_bytes: 4096,
            response_bytes: 0,
        },
    );
    assert_eq!(
        t.decide(&r.ctx()).await,
        deny(ThrottleLevel::Application, 3600),
        "the 4 KB streamed count against the 2 KB quota"
    );
    // bytes the decision already counted (a Content-Length) are not charged twice
    let mut other =
        Req::new(&a, Method::POST, "/pizza/1.0/order").caller("app-2", "bob", "Unlimited", "AppBw");
    other.bytes = 1500;
    assert_eq!(t.decide(&other.ctx()).await, Decision::Allow);
    t.record(
        &other.ctx(),
        &Outcome {
            status: 200,
            request_bytes: 1500,
            response_bytes: 0,
        },
    );
    other.bytes = 500;
    assert_eq!(
        t.decide(&other.ctx()).await,
        Decision::Allow,
        "1500 + 500 <= 2048"
    );
}

#[test]
fn idle_keys_are_forgotten() {
    let a = artifacts(
        pizza_api(None),
        vec![custom("perUser", "$userId", count_limit(5, "sec"))],
        vec![],
    );
    let (t, clock) = throttle(a.clone());
    for i in 0..1000 {
        let r = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
            "app-1",
            &format!("u{i}"),
            "Unlimited",
            "Unlimited",
        );
        assert_eq!(t.check(&r.ctx()), Decision::Allow);
    }
    assert!(t.tracked_keys() >= 1000);
    clock.advance(Duration::from_secs(11));
    let r = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
        "app-1",
        "late",
        "Unlimited",
        "Unlimited",
    );
    assert_eq!(t.check(&r.ctx()), Decision::Allow);
    assert!(t.tracked_keys() <= 2, "{} keys kept", t.tracked_keys());
}

#[tokio::test]
async fn throttle_layer_answers_429_with_code_and_retry_after() {
    use tower::{Service, ServiceBuilder, ServiceExt};
    let a = artifacts(
        pizza_api(None),
        vec![subscription("One", count_limit(1, "min"), None, true)],
        vec![block("b", "USER", json!("mallory"))],
    );
    let clock = ManualClock::at_day_start();
    clock.advance(Duration::from_millis(20_500));
    assert_eq!(clock.now() % 60_000_000_000, 20_500_000_000);
    let decider = Arc::new(LocalThrottle::with_clock(a.clone(), Arc::new(clock)));
    let mut svc = ServiceBuilder::new()
        .layer(ThrottleLayer::new(decider))
        .service_fn(|_r: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(bytes::Bytes::from_static(b"ok")))
        });
    let req = |user: &str| {
        let route = a.resolve(&Method::GET, None, "/pizza/1.0/menu").unwrap();
        let mut auth = apim_core::auth::AuthContext::for_application("app-1", user);
        auth.subscription_tier = Some("One".into());
        let mut r = http::Request::get("/pizza/1.0/menu")
            .body(String::new())
            .unwrap();
        r.extensions_mut().insert(route);
        r.extensions_mut().insert(Arc::new(auth));
        r
    };
    let ok = svc.ready().await.unwrap().call(req("alice")).await.unwrap();
    assert_eq!(ok.status(), 200);
    let res = svc.ready().await.unwrap().call(req("alice")).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "40");
    let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(body["code"], 900804);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(req("mallory"))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(body["code"], 900805);
}
