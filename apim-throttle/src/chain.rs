//! The check chain shared by [`crate::LocalThrottle`] and [`crate::GlobalThrottle`]:
//! block conditions → API / resource (advanced policy) → subscription (burst, then quota) →
//! application → custom policies. Quota counting is delegated to a [`QuotaBackend`] (local
//! atomics, or local atomics plus the Traffic Manager's global counts); burst control is always
//! local. When a later level denies, what earlier levels took is given back, so a denied request
//! uses no quota.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apim_core::artifacts::{ArtifactSnapshot, ArtifactStore, RouteMatch};
use apim_core::auth::{AuthContext, CredentialKind};
use apim_core::model::AdvancedPolicy;
use apim_core::throttle::{Decision, Outcome, ThrottleContext};
use apim_core::ThrottleLevel;

use crate::clock::{Clock, Nanos};
use crate::conditions::{canonical, CompiledAdvanced, RequestFacts};
use crate::gcra::{Gcra, GcraParams};
use crate::keyed::{KeyMap, KeyedStates, SweepSchedule};
use crate::keys;
use crate::window::{Quota, QuotaKind};

/// Which counter family a quota key belongs to (keys of different levels never share state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum QuotaLevel {
    Api = 0,
    Resource = 1,
    Subscription = 2,
    Application = 3,
    Custom = 4,
}

impl QuotaLevel {
    pub(crate) const ALL: [QuotaLevel; 5] = [
        QuotaLevel::Api,
        QuotaLevel::Resource,
        QuotaLevel::Subscription,
        QuotaLevel::Application,
        QuotaLevel::Custom,
    ];

    /// Prefix of the key on the wire to the Traffic Manager.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            QuotaLevel::Api => "api",
            QuotaLevel::Resource => "res",
            QuotaLevel::Subscription => "sub",
            QuotaLevel::Application => "app",
            QuotaLevel::Custom => "cus",
        }
    }

    pub(crate) fn from_tag(tag: &str) -> Option<Self> {
        QuotaLevel::ALL.into_iter().find(|l| l.tag() == tag)
    }
}

/// Where quota counts live.
pub(crate) trait QuotaBackend: Send + Sync + 'static {
    /// Takes `n` of `q` for `key`, or says how long until it could succeed.
    fn acquire(
        &self,
        level: QuotaLevel,
        key: &str,
        q: &Quota,
        n: u64,
        now: Nanos,
    ) -> Result<(), Duration>;
    /// Counts `n` without a check (response bytes).
    fn add(&self, level: QuotaLevel, key: &str, q: &Quota, n: u64, now: Nanos);
    /// Gives back `n` taken earlier in the same window.
    fn refund(&self, level: QuotaLevel, key: &str, q: &Quota, n: u64, now: Nanos);
    /// Forgets idle keys.
    fn sweep(&self, now: Nanos);
    /// Number of keys held.
    fn len(&self) -> usize;
}

/// A quota taken by the decision in progress, given back if a later level denies.
struct Taken {
    level: QuotaLevel,
    /// Where its key sits in [`Scratch::keys`].
    key: Range<usize>,
    quota: Quota,
    n: u64,
}

/// What one decision builds: every key, back to back in one string, and the quotas taken. One
/// per thread, reused, so a decision allocates nothing once the buffers have grown.
#[derive(Default)]
struct Scratch {
    keys: String,
    taken: Vec<Taken>,
    /// The subscription's burst key and parameters, if burst control took a token.
    burst: Option<(Range<usize>, GcraParams)>,
}

impl Scratch {
    /// Appends the key `write` produces; where it sits.
    fn key(&mut self, write: impl FnOnce(&mut String)) -> Range<usize> {
        let start = self.keys.len();
        write(&mut self.keys);
        start..self.keys.len()
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Runs `f` on this thread's scratch, cleared (on a fresh one if it is in use: a quota
/// backend deciding inside a decision).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            s.keys.clear();
            s.taken.clear();
            s.burst = None;
            f(&mut s)
        }
        Err(_) => f(&mut Scratch::default()),
    })
}

type Denied = (ThrottleLevel, Duration);

/// The chain, generic over the quota backend.
pub(crate) struct Chain<B> {
    artifacts: Arc<dyn ArtifactStore>,
    clock: Arc<dyn Clock>,
    pub(crate) backend: B,
    burst: KeyedStates<Gcra>,
    compiled: KeyMap<String, (Arc<AdvancedPolicy>, Option<Arc<CompiledAdvanced>>)>,
    warned: Mutex<HashSet<String>>,
    sweep: SweepSchedule,
    anonymous: AuthContext,
    over_quota: AtomicU64,
}

fn limited(tier: &str) -> bool {
    !tier.is_empty() && tier != "Unlimited"
}

fn cost(q: &Quota, request_bytes: u64) -> u64 {
    match q.kind {
        QuotaKind::Requests => 1,
        QuotaKind::Bandwidth => request_bytes,
    }
}

impl<B: QuotaBackend> Chain<B> {
    pub(crate) fn new(
        artifacts: Arc<dyn ArtifactStore>,
        clock: Arc<dyn Clock>,
        backend: B,
    ) -> Self {
        Chain {
            artifacts,
            clock,
            backend,
            burst: KeyedStates::default(),
            compiled: KeyMap::default(),
            warned: Mutex::new(HashSet::new()),
            sweep: SweepSchedule::default(),
            anonymous: AuthContext::anonymous(),
            over_quota: AtomicU64::new(0),
        }
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Requests admitted over a subscription quota because the tier has `stopOnQuotaReach` off.
    pub(crate) fn over_quota_admitted(&self) -> u64 {
        self.over_quota.load(Ordering::Relaxed)
    }

    pub(crate) fn tracked_keys(&self) -> usize {
        self.backend.len() + self.burst.len()
    }

    pub(crate) fn decide(&self, ctx: &ThrottleContext<'_>) -> Decision {
        let now = self.clock.now();
        if self.sweep.due(now) {
            self.backend.sweep(now);
            self.burst.sweep(now);
        }
        let snap = self.artifacts.snapshot_ref();
        let auth = ctx.auth.unwrap_or(&self.anonymous);
        if blocked(&snap, ctx, auth) {
            return Decision::Blocked;
        }
        with_scratch(|s| match self.check(&snap, ctx, auth, now, s) {
            Ok(()) => Decision::Allow,
            Err((level, retry_after)) => {
                for t in &s.taken {
                    self.backend
                        .refund(t.level, &s.keys[t.key.clone()], &t.quota, t.n, now);
                }
                if let Some((key, params)) = &s.burst {
                    self.burst
                        .with_existing(&s.keys[key.clone()], |g: &Gcra| g.refund(params, now));
                }
                Decision::Deny { level, retry_after }
            }
        })
    }

    fn take(
        &self,
        level: QuotaLevel,
        key: Range<usize>,
        q: Quota,
        n: u64,
        now: Nanos,
        s: &mut Scratch,
    ) -> Result<(), Duration> {
        self.backend
            .acquire(level, &s.keys[key.clone()], &q, n, now)?;
        s.taken.push(Taken {
            level,
            key,
            quota: q,
            n,
        });
        Ok(())
    }

    fn check(
        &self,
        snap: &ArtifactSnapshot,
        ctx: &ThrottleContext<'_>,
        auth: &AuthContext,
        now: Nanos,
        s: &mut Scratch,
    ) -> Result<(), Denied> {
        // 1. API / resource level (advanced policy)
        if let Some(route) = ctx.route {
            if let Some((level, name)) = advanced_target(route) {
                if let Some(compiled) = self.advanced(snap, name) {
                    let facts = RequestFacts {
                        ip: ctx.client_ip,
                        headers: ctx.headers,
                        query: ctx.uri.query(),
                        claims: auth.claims.as_deref(),
                    };
                    let (group, quota) = compiled.select(&facts);
                    if let Some(q) = quota {
                        let key = s.key(|k| advanced_key(k, route, level, group));
                        let n = cost(&q, ctx.request_bytes);
                        self.take(level, key, q, n, now, s)
                            .map_err(|r| (ThrottleLevel::Resource, r))?;
                    }
                }
            }
        }
        // 2. subscription: burst, then quota
        if let (Some(route), Some(tier)) = (ctx.route, auth.subscription_tier.as_deref()) {
            if limited(tier) {
                match snap.subscription_policy(tier) {
                    None => self.unknown("subscription", tier),
                    Some(p) => {
                        let key = s.key(|k| {
                            keys::write_subscription(k, auth, ctx.client_ip, &route.api.api)
                        });
                        if let Some(params) = p.burst().and_then(|(n, per)| GcraParams::new(n, per))
                        {
                            self.burst
                                .with(&s.keys[key.clone()], |g: &Gcra| g.try_acquire(&params, now))
                                .map_err(|r| (ThrottleLevel::Burst, r))?;
                            s.burst = Some((key.clone(), params));
                        }
                        if let Some(q) = Quota::of(&p.default_limit) {
                            let n = cost(&q, ctx.request_bytes);
                            match self.backend.acquire(
                                QuotaLevel::Subscription,
                                &s.keys[key.clone()],
                                &q,
                                n,
                                now,
                            ) {
                                Ok(()) => s.taken.push(Taken {
                                    level: QuotaLevel::Subscription,
                                    key,
                                    quota: q,
                                    n,
                                }),
                                Err(r) if p.stop_on_quota_reach => {
                                    return Err((ThrottleLevel::Subscription, r))
                                }
                                Err(_) => {
                                    // stopOnQuotaReach = false: let it through, mark it
                                    self.over_quota.fetch_add(1, Ordering::Relaxed);
                                    tracing::debug!(
                                        tier,
                                        key = &s.keys[key],
                                        "over subscription quota; passing (stopOnQuotaReach=false)"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        // 3. application
        if !auth.application_id.is_empty() && limited(&auth.application_tier) {
            match snap.application_policy(&auth.application_tier) {
                None => self.unknown("application", &auth.application_tier),
                Some(p) => {
                    if let Some(q) = Quota::of(&p.default_limit) {
                        let n = cost(&q, ctx.request_bytes);
                        let key = s.key(|k| keys::write_application(k, auth));
                        self.take(QuotaLevel::Application, key, q, n, now, s)
                            .map_err(|r| (ThrottleLevel::Application, r))?;
                    }
                }
            }
        }
        // 4. custom policies
        for p in snap.custom_policies() {
            if let Some(q) = Quota::of(&p.default_limit) {
                let api = ctx.route.map(|r| &r.api.api);
                let key = s.key(|k| {
                    keys::write_custom(k, &p.policy_name, &p.key_template, auth, api, ctx.client_ip)
                });
                let n = cost(&q, ctx.request_bytes);
                self.take(QuotaLevel::Custom, key, q, n, now, s)
                    .map_err(|r| (ThrottleLevel::Custom, r))?;
            }
        }
        Ok(())
    }

    /// Post-response accounting: response bytes count against bandwidth quotas, and so do
    /// the request body's bytes the decision did not count (`decide` charges the request's
    /// `Content-Length`, `ctx.request_bytes`; a chunked body has none, so its bytes, counted
    /// as they streamed, are charged here). Header conditions cannot be re-evaluated here (the
    /// layer passes no headers), so bandwidth of an advanced policy is charged to the group
    /// selected without headers.
    pub(crate) fn record(&self, ctx: &ThrottleContext<'_>, outcome: &Outcome) {
        let n = outcome
            .response_bytes
            .saturating_add(outcome.request_bytes.saturating_sub(ctx.request_bytes));
        if n == 0 {
            return;
        }
        // the clock is read only when a bandwidth quota applies (most requests have none)
        let mut now = None;
        let mut now = || *now.get_or_insert_with(|| self.clock.now());
        let snap = self.artifacts.snapshot_ref();
        let auth = ctx.auth.unwrap_or(&self.anonymous);
        let bw = |q: Option<Quota>| q.filter(|q| q.kind == QuotaKind::Bandwidth);
        if let Some(route) = ctx.route {
            if let Some((level, name)) = advanced_target(route) {
                if let Some(c) = self.advanced(&snap, name) {
                    let facts = RequestFacts {
                        ip: ctx.client_ip,
                        headers: ctx.headers,
                        query: ctx.uri.query(),
                        claims: auth.claims.as_deref(),
                    };
                    let (group, quota) = c.select(&facts);
                    if let Some(q) = bw(quota) {
                        let mut key = String::new();
                        advanced_key(&mut key, route, level, group);
                        self.backend.add(level, &key, &q, n, now());
                    }
                }
            }
            if let Some(p) = auth
                .subscription_tier
                .as_deref()
                .and_then(|t| snap.subscription_policy(t))
            {
                if let Some(q) = bw(Quota::of(&p.default_limit)) {
                    let key = keys::subscription(auth, ctx.client_ip, &route.api.api);
                    self.backend
                        .add(QuotaLevel::Subscription, &key, &q, n, now());
                }
            }
        }
        if !auth.application_id.is_empty() {
            if let Some(p) = snap.application_policy(&auth.application_tier) {
                if let Some(q) = bw(Quota::of(&p.default_limit)) {
                    self.backend.add(
                        QuotaLevel::Application,
                        &keys::application(auth),
                        &q,
                        n,
                        now(),
                    );
                }
            }
        }
    }

    fn advanced(&self, snap: &ArtifactSnapshot, name: &str) -> Option<Arc<CompiledAdvanced>> {
        let Some(p) = snap.advanced_policy(name) else {
            self.unknown("advanced", name);
            return None;
        };
        if let Some(e) = self.compiled.get(name) {
            if Arc::ptr_eq(&e.0, p) {
                return e.1.clone();
            }
        }
        let compiled = match CompiledAdvanced::compile(p) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                tracing::warn!(policy = name, error = %e, "advanced policy does not compile; treated as Unlimited");
                None
            }
        };
        self.compiled
            .insert(name.to_owned(), (p.clone(), compiled.clone()));
        compiled
    }

    /// Unknown tiers are treated as Unlimited (a missing policy must not take an API down);
    /// each is logged once.
    fn unknown(&self, kind: &str, name: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.insert(format!("{kind}/{name}")) {
            tracing::warn!(
                kind,
                tier = name,
                "unknown throttling tier; treated as Unlimited"
            );
        }
    }
}

/// The advanced policy in force for a route: the API-level policy if set, else the
/// resource's.
fn advanced_target(route: &RouteMatch) -> Option<(QuotaLevel, &str)> {
    let api = &route.api.api;
    if let Some(name) = api.api_throttling_policy.as_deref().filter(|n| limited(n)) {
        return Some((QuotaLevel::Api, name));
    }
    route
        .operation()
        .throttling_policy
        .as_deref()
        .filter(|n| limited(n))
        .map(|name| (QuotaLevel::Resource, name))
}

/// Appends the key of an advanced policy's counter: `context:version` (API level) or
/// `context/version/resource:METHOD`, then `#c<n>` when conditional group `n` applies.
fn advanced_key(k: &mut String, route: &RouteMatch, level: QuotaLevel, group: Option<usize>) {
    let api = &route.api.api;
    if level == QuotaLevel::Api {
        keys::write_api(k, api);
    } else {
        keys::write_resource(k, api, route.operation());
    }
    if let Some(g) = group {
        let _ = write!(k, "#c{g}");
    }
}

fn blocked(snap: &ArtifactSnapshot, ctx: &ThrottleContext<'_>, auth: &AuthContext) -> bool {
    let mut targets = snap.block_targets().peekable();
    if targets.peek().is_none() {
        return false;
    }
    let context = ctx.route.map_or("", |r| r.api.api.context.as_str());
    let app = (!auth.application_id.is_empty())
        .then(|| format!("{}:{}", auth.application_owner, auth.application_name));
    let user = (auth.credential != CredentialKind::Anonymous).then_some(auth.end_user.as_str());
    let ip = ctx.client_ip.map(canonical);
    targets.any(|t| t.blocks(context, app.as_deref(), user, ip))
}

impl<T: QuotaBackend> QuotaBackend for Arc<T> {
    #[inline]
    fn acquire(
        &self,
        level: QuotaLevel,
        key: &str,
        q: &Quota,
        n: u64,
        now: Nanos,
    ) -> Result<(), Duration> {
        (**self).acquire(level, key, q, n, now)
    }
    fn add(&self, level: QuotaLevel, key: &str, q: &Quota, n: u64, now: Nanos) {
        (**self).add(level, key, q, n, now)
    }
    fn refund(&self, level: QuotaLevel, key: &str, q: &Quota, n: u64, now: Nanos) {
        (**self).refund(level, key, q, n, now)
    }
    fn sweep(&self, now: Nanos) {
        (**self).sweep(now)
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}
