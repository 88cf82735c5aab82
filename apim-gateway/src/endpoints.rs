//! Backend endpoints of deployed APIs: parsed once per deployed revision, then chosen per
//! request by endpoint type (http, load_balance round robin, failover) and key type
//! (production / sandbox), skipping endpoints suspended by passive health checks.
//!
//! A failing endpoint (connection refused, connect timeout, response timeout) is suspended for
//! its `suspendDuration` (default 30 s), doubled on each consecutive failure up to 5 minutes;
//! one success clears it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use apim_core::artifacts::DeployedApi;
use apim_core::model::{Endpoint, EndpointType, Endpoints, KeyType};
use apim_core::ApimError;
use http::uri::{Authority, Scheme};
use http::HeaderValue;

use crate::proxy::pool::IdleList;

const MAX_SUSPEND: Duration = Duration::from_secs(300);

/// Milliseconds since the first call (a monotonic clock for suspensions).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// One backend URL and its health.
#[derive(Debug)]
pub struct Target {
    /// The URL as configured.
    pub url: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
    /// Path prefix without a trailing `/` (may be empty).
    pub base_path: String,
    /// Response timeout (`actionDuration`), if set.
    pub timeout: Option<Duration>,
    /// The `Host` header for requests to it (the authority, without a default port).
    pub host: HeaderValue,
    /// Idle HTTP/1.1 connections to it (see [`crate::proxy::pool`]).
    pub(crate) idle: IdleList,
    suspend: Duration,
    suspended_until: AtomicU64,
    failures: AtomicU32,
}

impl Target {
    fn parse(e: &Endpoint, default_suspend: Duration) -> Result<Self, String> {
        let uri: http::Uri = e.url.parse().map_err(|err| format!("{err}"))?;
        let scheme = uri.scheme().cloned().ok_or("no scheme")?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err("scheme must be http or https".into());
        }
        let authority = uri.authority().cloned().ok_or("no host")?;
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(p) if p == default_port => authority.host(),
            _ => authority.as_str(),
        };
        let host = HeaderValue::from_str(host).map_err(|e| format!("{e}"))?;
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let cfg = e.config.clone().unwrap_or_default();
        Ok(Target {
            url: e.url.clone(),
            scheme,
            authority,
            base_path,
            host,
            idle: IdleList::default(),
            timeout: cfg
                .action_duration
                .filter(|d| *d > 0)
                .map(Duration::from_millis),
            suspend: cfg
                .suspend_duration
                .filter(|d| *d > 0)
                .map_or(default_suspend, Duration::from_millis),
            suspended_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
        })
    }

    /// Whether the endpoint may be tried at `now` (see [`now_ms`]).
    pub fn available(&self, now: u64) -> bool {
        self.suspended_until.load(Ordering::Relaxed) <= now
    }

    /// Records a failure: suspends the endpoint with exponential back-off.
    pub fn mark_failure(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed).min(8);
        let d = self
            .suspend
            .saturating_mul(1 << n)
            .min(MAX_SUSPEND.max(self.suspend));
        self.suspended_until
            .store(now_ms() + d.as_millis() as u64, Ordering::Relaxed);
        tracing::warn!(endpoint = %self.url, suspend_ms = d.as_millis() as u64, "endpoint suspended");
    }

    /// Records a success: clears any suspension.
    pub fn mark_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.suspended_until.store(0, Ordering::Relaxed);
        }
    }
}

/// The endpoints of one key type of an API.
#[derive(Debug)]
pub struct EndpointGroup {
    kind: EndpointType,
    primary: Vec<Arc<Target>>,
    failovers: Vec<Arc<Target>>,
    next: AtomicUsize,
}

impl EndpointGroup {
    fn build(
        kind: EndpointType,
        eps: Option<&Endpoints>,
        failovers: &[Endpoint],
        suspend: Duration,
    ) -> Option<Self> {
        let parse = |e: &Endpoint| match Target::parse(e, suspend) {
            Ok(t) => Some(Arc::new(t)),
            Err(err) => {
                tracing::warn!(url = %e.url, error = %err, "skipping unusable endpoint");
                None
            }
        };
        let primary: Vec<_> = eps?.as_slice().iter().filter_map(parse).collect();
        let failovers: Vec<_> = if kind == EndpointType::Failover {
            failovers.iter().filter_map(parse).collect()
        } else {
            Vec::new()
        };
        (!primary.is_empty() || !failovers.is_empty()).then(|| EndpointGroup {
            kind,
            primary,
            failovers,
            next: AtomicUsize::new(0),
        })
    }

    /// Endpoints to try, in order, that are not suspended: round robin for load_balance,
    /// primary then failovers for failover, the one endpoint for http.
    pub fn candidates(&self) -> impl Iterator<Item = &Arc<Target>> + '_ {
        let n = self.primary.len();
        let start = match self.kind {
            EndpointType::LoadBalance if n > 1 => self.next.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let now = now_ms();
        (0..n)
            .map(move |i| &self.primary[(start + i) % n])
            .chain(self.failovers.iter())
            .filter(move |t| t.available(now))
    }

    /// How many endpoints the group has in total.
    pub fn len(&self) -> usize {
        self.primary.len() + self.failovers.len()
    }

    /// Whether the group is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The parsed endpoints of a deployed API revision.
#[derive(Debug)]
pub struct ApiEndpoints {
    api: Weak<DeployedApi>,
    production: Option<EndpointGroup>,
    sandbox: Option<EndpointGroup>,
}

impl ApiEndpoints {
    fn build(api: &Arc<DeployedApi>, suspend: Duration) -> Self {
        let ec = &api.api.endpoint_config;
        ApiEndpoints {
            api: Arc::downgrade(api),
            production: EndpointGroup::build(
                ec.endpoint_type,
                ec.production_endpoints.as_ref(),
                &ec.production_failovers,
                suspend,
            ),
            sandbox: EndpointGroup::build(
                ec.endpoint_type,
                ec.sandbox_endpoints.as_ref(),
                &ec.sandbox_failovers,
                suspend,
            ),
        }
    }

    /// The group for a key type, or a clear error when the API has none for it.
    pub fn group(&self, key_type: KeyType) -> Result<&EndpointGroup, ApimError> {
        let (g, what) = match key_type {
            KeyType::Production => (&self.production, "production"),
            KeyType::Sandbox => (&self.sandbox, "sandbox"),
        };
        g.as_ref().ok_or_else(|| {
            ApimError::BadRequest(format!(
                "the API has no {what} endpoint; call it with {} keys",
                if what == "sandbox" {
                    "production"
                } else {
                    "sandbox"
                }
            ))
        })
    }
}

/// Parsed endpoints of every deployed API, rebuilt when a new revision is deployed.
#[derive(Debug)]
pub struct EndpointRegistry {
    /// foldhash: keys are deployed API ids, not request data
    by_api: RwLock<HashMap<String, Arc<ApiEndpoints>, foldhash::fast::RandomState>>,
    default_suspend: Duration,
}

impl Default for EndpointRegistry {
    fn default() -> Self {
        EndpointRegistry::new(Duration::from_secs(30))
    }
}

impl EndpointRegistry {
    /// An empty registry; endpoints without `suspendDuration` are suspended for `suspend`.
    pub fn new(suspend: Duration) -> Self {
        EndpointRegistry {
            by_api: RwLock::new(HashMap::default()),
            default_suspend: suspend,
        }
    }

    /// How long a failing endpoint is suspended when it sets no `suspendDuration`.
    pub fn default_suspend(&self) -> Duration {
        self.default_suspend
    }

    /// The endpoints of `api` (of exactly this deployed revision).
    pub fn get(&self, api: &Arc<DeployedApi>) -> Arc<ApiEndpoints> {
        {
            let r = self.by_api.read().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = r.get(&api.api.id) {
                if std::ptr::eq(e.api.as_ptr(), Arc::as_ptr(api)) {
                    return e.clone();
                }
            }
        }
        let built = Arc::new(ApiEndpoints::build(api, self.default_suspend));
        let mut w = self.by_api.write().unwrap_or_else(|p| p.into_inner());
        // forget APIs whose revision is gone (undeployed or replaced)
        if w.len() > 64 {
            w.retain(|_, e| e.api.strong_count() > 0);
        }
        w.insert(api.api.id.clone(), built.clone());
        built
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apim_core::model::Api;

    fn deployed(ec: serde_json::Value) -> Arc<DeployedApi> {
        let api: Api = serde_json::from_value(serde_json::json!({
            "id": "a1", "name": "A", "context": "/a", "version": "1",
            "endpointConfig": ec, "operations": [{"verb": "GET", "target": "/*"}]
        }))
        .unwrap();
        Arc::new(DeployedApi::new(
            api,
            "r1".into(),
            None,
            vec!["Default".into()],
        ))
    }

    fn urls(g: &EndpointGroup) -> Vec<String> {
        g.candidates().map(|t| t.url.clone()).collect()
    }

    #[test]
    fn round_robin_failover_and_suspension() {
        let reg = EndpointRegistry::new(Duration::from_secs(60));
        let api = deployed(serde_json::json!({
            "endpoint_type": "load_balance",
            "production_endpoints": [{"url": "http://a:1/x/"}, {"url": "http://b:2"}]
        }));
        let eps = reg.get(&api);
        let g = eps.group(KeyType::Production).unwrap();
        let first: Vec<_> = (0..4).map(|_| urls(g)[0].clone()).collect();
        assert_eq!(
            first,
            ["http://a:1/x/", "http://b:2", "http://a:1/x/", "http://b:2"]
        );
        g.candidates().next().unwrap().mark_failure();
        assert_eq!(urls(g), ["http://b:2"]);
        assert_eq!(urls(g), ["http://b:2"]);
        assert!(eps.group(KeyType::Sandbox).is_err());
        assert!(Arc::ptr_eq(&reg.get(&api), &eps), "cached per revision");

        let api = deployed(serde_json::json!({
            "endpoint_type": "failover",
            "production_endpoints": {"url": "http://p:1"},
            "production_failovers": [{"url": "http://f:1"}],
            "sandbox_endpoints": {"url": "http://s:1", "config": {"actionDuration": 250}}
        }));
        let eps = reg.get(&api);
        let g = eps.group(KeyType::Production).unwrap();
        assert_eq!(urls(g), ["http://p:1", "http://f:1"]);
        g.candidates().next().unwrap().mark_failure();
        assert_eq!(urls(g), ["http://f:1"]);
        let s = eps.group(KeyType::Sandbox).unwrap();
        let t = s.candidates().next().unwrap();
        assert_eq!(t.timeout, Some(Duration::from_millis(250)));
        assert_eq!(t.base_path, "");
    }
}
