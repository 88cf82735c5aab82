//! [`GlobalThrottle`]: the gateway side of the shared-quota protocol (DESIGN §5).
//!
//! Each key keeps, per window, four packed atomics: `local` (hits admitted here), `sent`
//! (local count when last put in a report), `acked` (local count the last *answered* report
//! covered) and `global` (the Traffic Manager's total in that answer, which includes our hits
//! up to `acked`). A request is admitted while `global + (local − acked) + n ≤ limit`: the last
//! global count known plus this gateway's hits the Traffic Manager has not confirmed.
//!
//! A reporter task sends the hits of changed keys in one batch at least every
//! `report_interval`, and at once when a key's unreported hits reach `quota_share` of its quota
//! (or an eighth of what the last global count leaves, so reports get more frequent close to
//! the limit). Within the last `quota_share` of a quota a gateway admits one unconfirmed hit
//! at a time (a hit arriving meanwhile gets a 10 ms retry hint), which bounds the overshoot of
//! N gateways by N − 1 plus what they admitted on stale views just before. The reply's totals and throttled keys update the view. If the Traffic Manager
//! cannot be reached, the gateway keeps deciding on its own view (fail-open) or denies quota
//! checks (fail-closed), retries with exponential backoff (50 ms → 5 s, rotating through the
//! configured URLs) and, once through, reports every hit it admitted meanwhile.
//!
//! Burst control stays local per gateway (as WSO2's spike arrest).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apim_core::artifacts::ArtifactStore;
use apim_core::config::Config;
use apim_core::throttle::{Decision, Outcome, ThrottleContext, ThrottleDecider};
use bytes::Bytes;
use dashmap::DashMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, Notify};

use crate::chain::{Chain, QuotaBackend, QuotaLevel};
use crate::clock::{Clock, Nanos, SystemClock};
use crate::keyed::KeyMap;
use crate::traffic_manager::wire::{CountEntry, CountReply, CountReport};
use crate::window::{count_in, index_of, pack, Quota};

const NS_PER_MS: u64 = 1_000_000;
/// Retry hint when a hit waits for the previous one to be confirmed (last share of a quota).
const FINAL_ZONE_RETRY: Duration = Duration::from_millis(10);

/// How a gateway talks to its Traffic Managers.
#[derive(Debug, Clone)]
pub struct GlobalConfig {
    /// Traffic Manager base URLs (`http://host:9611`); tried in turn on failure.
    pub urls: Vec<String>,
    /// The internal Bearer token.
    pub token: String,
    /// This gateway's name in reports.
    pub gateway_id: String,
    /// While the Traffic Manager is unreachable: admit on the local view (true) or deny.
    pub fail_open: bool,
    /// Report at least this often.
    pub report_interval: Duration,
    /// Report at once when a key's unreported hits reach this share of its quota.
    pub quota_share: f64,
    /// Timeout of one report.
    pub request_timeout: Duration,
    /// TLS for `https://` Traffic Manager URLs: the internal clients' set-up (webpki roots
    /// and `internal.ca_file`, [`apim_core::tls::internal_client_config`]).
    pub tls: Arc<rustls::ClientConfig>,
}

impl GlobalConfig {
    /// Settings for `urls` and `token` with defaults: fail-open, 250 ms, 1 % of quota, 2 s.
    pub fn new(urls: Vec<String>, token: impl Into<String>) -> Self {
        GlobalConfig {
            urls,
            token: token.into(),
            gateway_id: "gateway".into(),
            fail_open: true,
            report_interval: Duration::from_millis(250),
            quota_share: 0.01,
            request_timeout: Duration::from_secs(2),
            tls: apim_core::tls::internal_client_config(),
        }
    }

    /// Settings from the configuration file (`gateway.traffic_manager_urls`,
    /// `traffic_manager.fail_open`, `traffic_manager.report_interval_ms`).
    pub fn from_config(cfg: &Config, token: impl Into<String>) -> Self {
        GlobalConfig {
            fail_open: cfg.traffic_manager.fail_open,
            report_interval: Duration::from_millis(cfg.traffic_manager.report_interval_ms),
            gateway_id: cfg.hostname.clone(),
            ..GlobalConfig::new(cfg.gateway.traffic_manager_urls.clone(), token)
        }
    }
}

#[derive(Debug)]
struct GlobalKey {
    wire: Box<str>,
    window: AtomicU64,
    limit: AtomicU64,
    local: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    global: AtomicU64,
    dirty: AtomicBool,
}

impl GlobalKey {
    fn new(wire: String, window: Nanos, limit: u64) -> Self {
        GlobalKey {
            wire: wire.into(),
            window: AtomicU64::new(window),
            limit: AtomicU64::new(limit),
            local: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            global: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
        }
    }
}

struct GlobalQuotas {
    levels: [KeyMap<Box<str>, Arc<GlobalKey>>; 5],
    dirty: mpsc::UnboundedSender<Arc<GlobalKey>>,
    wake: Notify,
    connected: AtomicBool,
    fail_open: bool,
    share: f64,
}

impl GlobalQuotas {
    fn with_key<R>(
        &self,
        level: QuotaLevel,
        key: &str,
        q: &Quota,
        f: impl FnOnce(&Arc<GlobalKey>) -> R,
    ) -> R {
        let map = &self.levels[level as usize];
        if let Some(k) = map.get(key) {
            if k.window.load(Ordering::Relaxed) != q.window {
                k.window.store(q.window, Ordering::Relaxed);
            }
            if k.limit.load(Ordering::Relaxed) != q.limit {
                k.limit.store(q.limit, Ordering::Relaxed);
            }
            return f(&k);
        }
        let k = map.entry(key.into()).or_insert_with(|| {
            Arc::new(GlobalKey::new(
                format!("{}|{key}", level.tag()),
                q.window,
                q.limit,
            ))
        });
        f(&k)
    }

    /// Remaining quota below which each gateway admits one unconfirmed hit at a time.
    fn final_zone(&self, q: &Quota) -> u64 {
        ((q.limit as f64 * self.share) as u64).max(1)
    }

    /// Queues the key for the next report, and wakes the reporter when enough is unreported.
    fn mark(&self, k: &Arc<GlobalKey>, q: &Quota, idx: u64, local: u64, est: u64) {
        if !k.dirty.swap(true, Ordering::AcqRel) {
            let _ = self.dirty.send(k.clone());
        }
        let unreported = local.saturating_sub(count_in(k.sent.load(Ordering::Acquire), idx));
        let by_share = (q.limit as f64 * self.share) as u64;
        let by_remaining = q.limit.saturating_sub(est) / 8;
        if unreported >= by_share.min(by_remaining).max(1) {
            self.wake.notify_one();
        }
    }
}

impl QuotaBackend for GlobalQuotas {
    fn acquire(
        &self,
        level: QuotaLevel,
        key: &str,
        q: &Quota,
        n: u64,
        now: Nanos,
    ) -> Result<(), Duration> {
        if !self.fail_open && !self.connected.load(Ordering::Relaxed) {
            return Err(Duration::from_secs(1).min(q.until_window_end(now)));
        }
        let idx = q.index(now);
        self.with_key(level, key, q, |k| {
            let mut cur = k.local.load(Ordering::Acquire);
            loop {
                // acked before global: the reporter writes global first, so a fresh `acked`
                // implies a fresh `global` (never an underestimate)
                let acked = count_in(k.acked.load(Ordering::Acquire), idx);
                let global = count_in(k.global.load(Ordering::Acquire), idx);
                let local = count_in(cur, idx);
                let unconfirmed = local.saturating_sub(acked);
                let est = global + unconfirmed;
                if !q.admits(est, n) {
                    return Err(q.until_window_end(now));
                }
                // the last share of the quota: one unconfirmed hit at a time, so N gateways
                // overshoot by at most N − 1 however fast they are hit
                if unconfirmed > 0
                    && q.limit.saturating_sub(est) <= self.final_zone(q)
                    && self.connected.load(Ordering::Relaxed)
                {
                    self.wake.notify_one();
                    return Err(FINAL_ZONE_RETRY.min(q.until_window_end(now)));
                }
                match k.local.compare_exchange_weak(
                    cur,
                    pack(idx, local + n),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.mark(k, q, idx, local + n, est + n);
                        return Ok(());
                    }
                    Err(actual) => cur = actual,
                }
            }
        })
    }

    fn add(&self, level: QuotaLevel, key: &str, q: &Quota, n: u64, now: Nanos) {
        let idx = q.index(now);
        self.with_key(level, key, q, |k| {
            if let Ok(prev) = k
                .local
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                    Some(pack(idx, count_in(cur, idx) + n))
                })
            {
                self.mark(k, q, idx, count_in(prev, idx) + n, 0);
            }
        });
    }

    fn refund(&self, level: QuotaLevel, key: &str, q: &Quota, n: u64, now: Nanos) {
        let idx = q.index(now);
        if let Some(k) = self.levels[level as usize].get(key) {
            let sent = count_in(k.sent.load(Ordering::Acquire), idx);
            // hits already reported stay counted (conservative)
            let _ = k
                .local
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                    let l = count_in(cur, idx);
                    (l >= sent + n).then(|| pack(idx, l - n))
                });
        }
    }

    fn sweep(&self, now: Nanos) {
        for m in &self.levels {
            m.retain(|_, k| {
                let w = k.window.load(Ordering::Relaxed).max(1);
                let idx = now / w;
                k.dirty.load(Ordering::Acquire)
                    || count_in(k.local.load(Ordering::Acquire), idx) > 0
                    || count_in(k.global.load(Ordering::Acquire), idx) > 0
            });
        }
    }

    fn len(&self) -> usize {
        self.levels.iter().map(DashMap::len).sum()
    }
}

/// A [`ThrottleDecider`] whose quotas are shared with other gateways through a Traffic
/// Manager (see the module docs for the protocol). Needs a Tokio runtime: it spawns its
/// reporter task, which stops when the throttle is dropped.
pub struct GlobalThrottle {
    chain: Chain<Arc<GlobalQuotas>>,
    reporter: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for GlobalThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalThrottle")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Drop for GlobalThrottle {
    fn drop(&mut self) {
        self.reporter.abort();
    }
}

impl GlobalThrottle {
    /// A decider on the system clock.
    pub fn new(artifacts: Arc<dyn ArtifactStore>, config: GlobalConfig) -> Self {
        Self::with_clock(artifacts, config, Arc::new(SystemClock))
    }

    /// A decider on the given clock.
    pub fn with_clock(
        artifacts: Arc<dyn ArtifactStore>,
        config: GlobalConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(GlobalQuotas {
            levels: Default::default(),
            dirty: tx,
            wake: Notify::new(),
            connected: AtomicBool::new(true),
            fail_open: config.fail_open,
            share: config.quota_share.clamp(0.0, 1.0),
        });
        let reporter = tokio::spawn(report_loop(shared.clone(), rx, config, clock.clone()));
        GlobalThrottle {
            chain: Chain::new(artifacts, clock, shared),
            reporter,
        }
    }

    /// Whether the last report reached a Traffic Manager.
    pub fn is_connected(&self) -> bool {
        self.chain.backend.connected.load(Ordering::Relaxed)
    }

    /// Sends a report now instead of at the next interval.
    pub fn report_now(&self) {
        self.chain.backend.wake.notify_one();
    }

    /// The decision, synchronously.
    pub fn check(&self, ctx: &ThrottleContext<'_>) -> Decision {
        self.chain.decide(ctx)
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        self.chain.clock()
    }
}

#[async_trait::async_trait]
impl ThrottleDecider for GlobalThrottle {
    async fn decide(&self, ctx: &ThrottleContext<'_>) -> Decision {
        self.chain.decide(ctx)
    }

    fn decide_now(&self, ctx: &ThrottleContext<'_>) -> Option<Decision> {
        Some(self.chain.decide(ctx))
    }

    fn record(&self, ctx: &ThrottleContext<'_>, outcome: &Outcome) {
        self.chain.record(ctx, outcome)
    }
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

async fn report_loop(
    shared: Arc<GlobalQuotas>,
    mut dirty: mpsc::UnboundedReceiver<Arc<GlobalKey>>,
    cfg: GlobalConfig,
    clock: Arc<dyn Clock>,
) {
    // http:// and https:// Traffic Managers (before, https URLs were never reached)
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(cfg.request_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*cfg.tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(https);
    let mut pending: Vec<Arc<GlobalKey>> = Vec::new();
    let mut backoff = Duration::ZERO;
    let mut url = 0usize;
    loop {
        if backoff.is_zero() {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(cfg.report_interval) => {}
            }
        } else {
            tokio::time::sleep(backoff).await;
        }
        while let Ok(k) = dirty.try_recv() {
            pending.push(k);
        }
        pending.sort_by_key(|k| Arc::as_ptr(k) as usize);
        pending.dedup_by(|a, b| Arc::ptr_eq(a, b));
        let connected = shared.connected.load(Ordering::Relaxed);
        if pending.is_empty() && connected {
            continue;
        }
        // build the batch: (key, window index, local count sent, previous sent)
        let now = clock.now();
        let mut batch = Vec::with_capacity(pending.len());
        let mut entries = Vec::with_capacity(pending.len());
        for k in pending.drain(..) {
            k.dirty.store(false, Ordering::Release);
            let window = k.window.load(Ordering::Relaxed).max(1);
            let raw = k.local.load(Ordering::Acquire);
            let idx = index_of(raw, now / window);
            let local = count_in(raw, idx);
            let prev_sent = count_in(k.sent.load(Ordering::Acquire), idx);
            if local <= prev_sent {
                continue;
            }
            k.sent.store(pack(idx, local), Ordering::Release);
            entries.push(CountEntry {
                key: k.wire.to_string(),
                window_start_ms: idx * window / NS_PER_MS,
                window_ms: window / NS_PER_MS,
                limit: k.limit.load(Ordering::Relaxed),
                count: local - prev_sent,
            });
            batch.push((k, idx, local, prev_sent));
        }
        if entries.is_empty() && connected {
            continue;
        }
        let report = CountReport {
            gateway: cfg.gateway_id.clone(),
            counts: entries,
        };
        let Some(base) = cfg.urls.get(url % cfg.urls.len().max(1)) else {
            tracing::error!("no Traffic Manager URL configured; global quotas are local only");
            return;
        };
        match send(&client, base, &cfg, &report).await {
            Ok(reply) if reply.totals.len() == batch.len() => {
                for ((k, idx, local, _), total) in batch.iter().zip(&reply.totals) {
                    k.global.store(pack(*idx, *total), Ordering::Release);
                    k.acked.store(pack(*idx, *local), Ordering::Release);
                }
                apply_throttled(&shared, &reply);
                if !shared.connected.swap(true, Ordering::Relaxed) {
                    tracing::info!(url = %base, "Traffic Manager reachable again; counts caught up");
                }
                backoff = Duration::ZERO;
            }
            other => {
                let why = match other {
                    Ok(_) => "reply does not match the report".to_owned(),
                    Err(e) => e,
                };
                // put the hits back so the next report carries them (newest first: a key may
                // appear twice in one batch)
                for (k, idx, _, prev) in batch.into_iter().rev() {
                    k.sent.store(pack(idx, prev), Ordering::Release);
                    pending.push(k);
                }
                if shared.connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(url = %base, error = %why, fail_open = cfg.fail_open, "Traffic Manager unreachable; deciding locally");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(5));
                url = url.wrapping_add(1);
            }
        }
    }
}

fn apply_throttled(shared: &GlobalQuotas, reply: &CountReply) {
    for t in &reply.throttled {
        let Some((tag, key)) = t.key.split_once('|') else {
            continue;
        };
        let Some(level) = QuotaLevel::from_tag(tag) else {
            continue;
        };
        if t.window_ms == 0 {
            continue;
        }
        let window = t.window_ms * NS_PER_MS;
        let idx = t.window_start_ms * NS_PER_MS / window;
        let q = Quota::requests(t.limit, Duration::from_nanos(window));
        shared.with_key(level, key, &q, |k| {
            let _ = k
                .global
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |g| {
                    (count_in(g, idx) < t.limit).then(|| pack(idx, t.limit))
                });
        });
    }
}

async fn send(
    client: &HttpClient,
    base: &str,
    cfg: &GlobalConfig,
    report: &CountReport,
) -> Result<CountReply, String> {
    let body = serde_json::to_vec(report).map_err(|e| e.to_string())?;
    let req = http::Request::post(format!(
        "{}/internal/throttle/v1/counts",
        base.trim_end_matches('/')
    ))
    .header(http::header::AUTHORIZATION, format!("Bearer {}", cfg.token))
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(Full::new(Bytes::from(body)))
    .map_err(|e| e.to_string())?;
    let exchange = async {
        let res = client.request(req).await.map_err(|e| e.to_string())?;
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        serde_json::from_slice::<CountReply>(&bytes).map_err(|e| e.to_string())
    };
    tokio::time::timeout(cfg.request_timeout, exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}
