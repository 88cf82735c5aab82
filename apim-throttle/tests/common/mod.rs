//! Fixtures shared by the integration tests and the benchmark: a gateway view with one API,
//! policies and block conditions, and requests against it.
#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;
use std::sync::Arc;

use apim_core::artifacts::{ArtifactStore, GatewayData, InMemoryArtifacts, RouteMatch};
use apim_core::auth::AuthContext;
use apim_core::event::{GatewayDeployment, Policy};
use apim_core::model::{Api, BlockCondition};
use apim_core::throttle::ThrottleContext;
use http::{HeaderMap, Method, Uri};
use serde_json::json;

/// `/pizza/1.0` with `GET /menu` (resource policy `res`) and `POST /order`; the API-level
/// policy is `api_policy` if given.
pub fn pizza_api(api_policy: Option<&str>) -> Api {
    serde_json::from_value(json!({
        "id": "api-pizza",
        "name": "Pizza",
        "context": "/pizza",
        "version": "1.0",
        "lifeCycleStatus": "PUBLISHED",
        "apiThrottlingPolicy": api_policy,
        "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:9/"}},
        "operations": [
            {"target": "/menu", "verb": "GET", "throttlingPolicy": "res"},
            {"target": "/order", "verb": "POST"}
        ]
    }))
    .expect("fixture API")
}

pub fn count_limit(n: u64, unit: &str) -> serde_json::Value {
    json!({"type": "REQUESTCOUNTLIMIT", "requestCount": {"timeUnit": unit, "unitTime": 1, "requestCount": n}})
}

pub fn bandwidth_limit(kb: u64, unit: &str) -> serde_json::Value {
    json!({"type": "BANDWIDTHLIMIT", "bandwidth": {"timeUnit": unit, "unitTime": 1, "dataAmount": kb, "dataUnit": "KB"}})
}

pub fn subscription(
    name: &str,
    limit: serde_json::Value,
    burst: Option<(u64, &str)>,
    stop: bool,
) -> Policy {
    let (count, unit) = burst.map_or((0, None), |(c, u)| (c, Some(u)));
    Policy::Subscription(
        serde_json::from_value(json!({
            "policyName": name, "defaultLimit": limit, "rateLimitCount": count,
            "rateLimitTimeUnit": unit, "stopOnQuotaReach": stop
        }))
        .expect("subscription policy"),
    )
}

pub fn application(name: &str, limit: serde_json::Value) -> Policy {
    Policy::Application(
        serde_json::from_value(json!({"policyName": name, "defaultLimit": limit}))
            .expect("application policy"),
    )
}

pub fn advanced(name: &str, limit: serde_json::Value, groups: serde_json::Value) -> Policy {
    Policy::Advanced(
        serde_json::from_value(
            json!({"policyName": name, "defaultLimit": limit, "conditionalGroups": groups}),
        )
        .expect("advanced policy"),
    )
}

pub fn custom(name: &str, template: &str, limit: serde_json::Value) -> Policy {
    Policy::Custom(
        serde_json::from_value(
            json!({"policyName": name, "keyTemplate": template, "defaultLimit": limit}),
        )
        .expect("custom policy"),
    )
}

pub fn block(id: &str, kind: &str, value: serde_json::Value) -> BlockCondition {
    serde_json::from_value(
        json!({"conditionId": id, "conditionType": kind, "conditionValue": value}),
    )
    .expect("block condition")
}

/// A gateway view with the given API, policies and block conditions.
pub fn artifacts(
    api: Api,
    policies: Vec<Policy>,
    blocks: Vec<BlockCondition>,
) -> Arc<InMemoryArtifacts> {
    let a = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
    a.load(GatewayData {
        deployments: vec![GatewayDeployment {
            api,
            revision_id: "r1".into(),
            gateway_labels: vec!["Default".into()],
            vhost: None,
        }],
        policies,
        block_conditions: blocks,
        ..Default::default()
    });
    a
}

/// One request, owning what a [`ThrottleContext`] borrows.
pub struct Req {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub ip: Option<IpAddr>,
    pub route: Option<RouteMatch>,
    pub auth: Option<AuthContext>,
    pub bytes: u64,
}

impl Req {
    /// A request routed through `artifacts` (anonymous until [`Req::caller`]).
    pub fn new(artifacts: &InMemoryArtifacts, method: Method, path_and_query: &str) -> Self {
        let uri: Uri = path_and_query.parse().expect("uri");
        let route = artifacts.resolve(&method, None, uri.path()).ok();
        assert!(route.is_some(), "fixture route {path_and_query}");
        Req {
            method,
            uri,
            headers: HeaderMap::new(),
            ip: Some("192.0.2.10".parse().expect("ip")),
            route,
            auth: None,
            bytes: 0,
        }
    }

    pub fn caller(mut self, app: &str, user: &str, sub_tier: &str, app_tier: &str) -> Self {
        let mut a = AuthContext::for_application(app, user);
        a.application_owner = "owner".into();
        a.application_name = format!("{app}-name");
        a.subscription_tier = Some(sub_tier.into());
        a.application_tier = app_tier.into();
        self.auth = Some(a);
        self
    }

    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = Some(ip.parse().expect("ip"));
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers
            .insert(name, value.parse().expect("header value"));
        self
    }

    pub fn ctx(&self) -> ThrottleContext<'_> {
        ThrottleContext {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            client_ip: self.ip,
            route: self.route.as_ref(),
            auth: self.auth.as_ref(),
            request_bytes: self.bytes,
        }
    }
}
