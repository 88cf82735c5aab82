//! The immutable view a gateway serves from, and how events change it.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::router::VhostRules;
use super::{ApiRouter, DeployedApi};
use crate::event::{
    Event, EventPayload, GatewayDeployment, Policy, Seq, SubscriptionChange, TokenRevocation,
};
use crate::model::{
    AdvancedPolicy, Application, ApplicationPolicy, BlockCondition, BlockTarget, CustomPolicy,
    Environment, KeyMapping, Scope, Subscription, SubscriptionPolicy,
};

/// Everything a gateway needs, as the control plane serves it at `/internal/data/v1/snapshot`,
/// with the event sequence it reflects.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayData {
    /// The last event included.
    pub seq: Seq,
    /// Deployed revisions with their environments.
    pub deployments: Vec<GatewayDeployment>,
    /// Applications.
    pub applications: Vec<Application>,
    /// OAuth clients of applications.
    pub key_mappings: Vec<KeyMapping>,
    /// Subscriptions.
    pub subscriptions: Vec<SubscriptionChange>,
    /// Throttling policies.
    pub policies: Vec<Policy>,
    /// Block conditions.
    pub block_conditions: Vec<BlockCondition>,
    /// Revoked tokens not yet expired.
    pub revoked_tokens: Vec<TokenRevocation>,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// The gateway environments with their vhosts (which one is an environment's default
    /// decides which hosts its deployments serve). Absent from an older control plane's
    /// snapshot: then a deployment on a vhost serves that host only.
    #[serde(default)]
    pub environments: Vec<Environment>,
}

/// The snapshot's maps: keyed by ids and names the control plane sets (so no untrusted party
/// chooses what is inserted), looked up on every request — foldhash, not the standard
/// SipHash, as the router's maps (`router.rs`).
type Map<V> = HashMap<String, V, RandomState>;

/// The gateway's immutable view. Built by [`ArtifactSnapshot::from_data`], changed by
/// [`ArtifactSnapshot::apply`] on a copy (maps of `Arc`s: copying is cheap).
#[derive(Debug, Clone, Default)]
pub struct ArtifactSnapshot {
    seq: Seq,
    labels: Arc<[String]>,
    apis: Map<Arc<DeployedApi>>,
    router: Arc<ApiRouter>,
    applications: Map<Arc<Application>>,
    keys: Map<Arc<KeyMapping>>,
    /// application id → api id → subscription
    subscriptions: Map<Map<Arc<Subscription>>>,
    subscription_policies: Map<Arc<SubscriptionPolicy>>,
    application_policies: Map<Arc<ApplicationPolicy>>,
    advanced_policies: Map<Arc<AdvancedPolicy>>,
    custom_policies: Map<Arc<CustomPolicy>>,
    block_conditions: Map<(BlockCondition, Option<BlockTarget>)>,
    revoked: Map<i64>,
    scopes: Map<Arc<Scope>>,
    /// The vhosts of this gateway's environments, for routing.
    vhosts: VhostRules,
}

impl ArtifactSnapshot {
    /// An empty view for a gateway serving `labels`.
    pub fn empty(labels: Vec<String>) -> Self {
        ArtifactSnapshot {
            labels: labels.into(),
            ..Default::default()
        }
    }

    /// Builds a view from a full snapshot.
    pub fn from_data(labels: Vec<String>, data: GatewayData) -> Self {
        let mut s = ArtifactSnapshot::empty(labels);
        s.vhosts = VhostRules::new(&data.environments, &s.labels);
        let mut api_changed = false;
        for d in data.deployments {
            api_changed |= s.deploy(d);
        }
        for a in data.applications {
            s.applications.insert(a.application_id.clone(), Arc::new(a));
        }
        for k in data.key_mappings {
            s.keys.insert(k.consumer_key.clone(), Arc::new(k));
        }
        for sc in data.subscriptions {
            s.put_subscription(sc.subscription);
        }
        for p in data.policies {
            s.put_policy(p);
        }
        for b in data.block_conditions {
            s.put_block(b);
        }
        for r in data.revoked_tokens {
            s.revoked.insert(r.jti, r.expiry_time);
        }
        for sc in data.scopes {
            s.scopes.insert(sc.name.clone(), Arc::new(sc));
        }
        s.seq = data.seq;
        if api_changed {
            s.rebuild_router();
        }
        s
    }

    /// Last applied sequence number.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The routing table.
    pub fn router(&self) -> &ApiRouter {
        &self.router
    }

    /// A deployed API by id.
    pub fn api(&self, api_id: &str) -> Option<&Arc<DeployedApi>> {
        self.apis.get(api_id)
    }

    /// Number of deployed APIs.
    pub fn api_count(&self) -> usize {
        self.apis.len()
    }

    /// An application by id.
    pub fn application(&self, id: &str) -> Option<&Arc<Application>> {
        self.applications.get(id)
    }

    /// The key mapping of an OAuth client id.
    pub fn key_mapping(&self, consumer_key: &str) -> Option<&Arc<KeyMapping>> {
        self.keys.get(consumer_key)
    }

    /// The subscription of an application to an API.
    pub fn subscription(&self, application_id: &str, api_id: &str) -> Option<&Arc<Subscription>> {
        self.subscriptions.get(application_id)?.get(api_id)
    }

    /// A subscription tier by name.
    pub fn subscription_policy(&self, name: &str) -> Option<&Arc<SubscriptionPolicy>> {
        self.subscription_policies.get(name)
    }

    /// An application tier by name.
    pub fn application_policy(&self, name: &str) -> Option<&Arc<ApplicationPolicy>> {
        self.application_policies.get(name)
    }

    /// An advanced policy by name.
    pub fn advanced_policy(&self, name: &str) -> Option<&Arc<AdvancedPolicy>> {
        self.advanced_policies.get(name)
    }

    /// All custom policies.
    pub fn custom_policies(&self) -> impl Iterator<Item = &Arc<CustomPolicy>> {
        self.custom_policies.values()
    }

    /// Active block conditions with their parsed targets.
    pub fn block_targets(&self) -> impl Iterator<Item = &BlockTarget> {
        self.block_conditions
            .values()
            .filter(|(c, _)| c.condition_status)
            .filter_map(|(_, t)| t.as_ref())
    }

    /// Whether a token id (or opaque-token hash) is revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains_key(jti)
    }

    /// A scope by name.
    pub fn scope(&self, name: &str) -> Option<&Arc<Scope>> {
        self.scopes.get(name)
    }

    /// Applies events in order (events at or below the current sequence are skipped, so a
    /// replay never applies anything twice). Returns whether anything changed.
    pub fn apply(&mut self, events: &[Event]) -> bool {
        let mut api_changed = false;
        let mut changed = false;
        for e in events {
            if e.seq <= self.seq && e.seq.0 != 0 {
                continue;
            }
            api_changed |= self.apply_one(&e.payload);
            if e.seq.0 != 0 {
                self.seq = e.seq;
            }
            changed = true;
        }
        if api_changed {
            self.rebuild_router();
        }
        if changed {
            let now = crate::time::now_secs();
            self.revoked.retain(|_, exp| *exp >= now);
        }
        changed
    }

    fn apply_one(&mut self, p: &EventPayload) -> bool {
        use EventPayload::*;
        match p {
            DeployApiInGateway(d) => return self.deploy((**d).clone()),
            RemoveApiFromGateway(r) => {
                let Some(cur) = self.apis.get(&r.api_id) else {
                    return false;
                };
                let labels: Vec<String> = cur
                    .labels
                    .iter()
                    .filter(|l| !r.gateway_labels.contains(l))
                    .cloned()
                    .collect();
                if labels.len() == cur.labels.len() {
                    return false;
                }
                if labels.is_empty() {
                    self.apis.remove(&r.api_id);
                } else {
                    let d = DeployedApi::new(
                        cur.api.clone(),
                        cur.revision_id.clone(),
                        cur.vhost.clone(),
                        labels,
                    );
                    self.apis.insert(r.api_id.clone(), Arc::new(d));
                }
                return true;
            }
            ApiLifecycleChange(c) => {
                let Some(cur) = self.apis.get(&c.api.api_id) else {
                    return false;
                };
                let mut api = cur.api.clone();
                api.life_cycle_status = c.api.life_cycle_status;
                let d = DeployedApi::new(
                    api,
                    cur.revision_id.clone(),
                    cur.vhost.clone(),
                    cur.labels.clone(),
                );
                self.apis.insert(c.api.api_id.clone(), Arc::new(d));
                return true;
            }
            ApiDelete(a) => return self.apis.remove(&a.api_id).is_some(),
            ApiCreate(_) | ApiUpdate(_) => {}
            ApplicationCreate(a) | ApplicationUpdate(a) => {
                self.applications
                    .insert(a.application_id.clone(), Arc::new(a.clone()));
            }
            ApplicationDelete(r) => {
                self.applications.remove(&r.id);
                self.subscriptions.remove(&r.id);
                self.keys.retain(|_, k| k.application_id != r.id);
            }
            ApplicationRegistrationCreate(k) => {
                self.keys
                    .insert(k.consumer_key.clone(), Arc::new(k.clone()));
            }
            RemoveApplicationKeymapping(k) => {
                self.keys.remove(&k.consumer_key);
            }
            SubscriptionsCreate(s) | SubscriptionsUpdate(s) => {
                self.put_subscription(s.subscription.clone())
            }
            SubscriptionsDelete(s) => {
                if let Some(m) = self.subscriptions.get_mut(&s.subscription.application_id) {
                    m.remove(&s.subscription.api_id);
                }
            }
            PolicyCreate(p) | PolicyUpdate(p) => self.put_policy(p.clone()),
            PolicyDelete(r) => {
                use crate::event::PolicyKind::*;
                let n = &r.policy_name;
                match r.policy_type {
                    Subscription => drop(self.subscription_policies.remove(n)),
                    Application => drop(self.application_policies.remove(n)),
                    Advanced => drop(self.advanced_policies.remove(n)),
                    Custom => drop(self.custom_policies.remove(n)),
                }
            }
            ScopeCreate(s) | ScopeUpdate(s) => {
                self.scopes.insert(s.name.clone(), Arc::new(s.clone()));
            }
            ScopeDelete(r) => {
                self.scopes.remove(&r.id);
            }
            BlockConditionAdd(b) => self.put_block(b.clone()),
            BlockConditionDelete(r) => {
                self.block_conditions.remove(&r.id);
            }
            TokenRevocation(t) => {
                self.revoked.insert(t.jti.clone(), t.expiry_time);
            }
        }
        false
    }

    /// Adds a deployment if it targets one of this gateway's labels. Returns whether it did.
    fn deploy(&mut self, d: GatewayDeployment) -> bool {
        let mine: Vec<String> = d
            .gateway_labels
            .iter()
            .filter(|l| self.labels.contains(l))
            .cloned()
            .collect();
        if mine.is_empty() {
            return false;
        }
        let mut labels = mine;
        if let Some(cur) = self.apis.get(&d.api.id) {
            if cur.revision_id == d.revision_id {
                for l in &cur.labels {
                    if !labels.contains(l) {
                        labels.push(l.clone());
                    }
                }
            }
        }
        let id = d.api.id.clone();
        self.apis.insert(
            id,
            Arc::new(DeployedApi::new(d.api, d.revision_id, d.vhost, labels)),
        );
        true
    }

    fn put_subscription(&mut self, s: Subscription) {
        self.subscriptions
            .entry(s.application_id.clone())
            .or_default()
            .insert(s.api_id.clone(), Arc::new(s));
    }

    fn put_policy(&mut self, p: Policy) {
        match p {
            Policy::Subscription(p) => drop(
                self.subscription_policies
                    .insert(p.policy_name.clone(), Arc::new(p)),
            ),
            Policy::Application(p) => drop(
                self.application_policies
                    .insert(p.policy_name.clone(), Arc::new(p)),
            ),
            Policy::Advanced(p) => drop(
                self.advanced_policies
                    .insert(p.policy_name.clone(), Arc::new(p)),
            ),
            Policy::Custom(p) => drop(
                self.custom_policies
                    .insert(p.policy_name.clone(), Arc::new(p)),
            ),
        }
    }

    fn put_block(&mut self, b: BlockCondition) {
        let target = b.target().ok();
        self.block_conditions
            .insert(b.condition_id.clone(), (b, target));
    }

    fn rebuild_router(&mut self) {
        self.router = Arc::new(ApiRouter::build_with_vhosts(
            self.apis.values(),
            self.vhosts.clone(),
        ));
    }
}
