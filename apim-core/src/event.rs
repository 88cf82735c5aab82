//! Control-plane events, with WSO2's type names (DESIGN §6). Every event has a sequence number.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::lifecycle::LifecycleState;
use crate::model::{
    AdvancedPolicy, Api, Application, ApplicationPolicy, BlockCondition, CustomPolicy, KeyMapping,
    Scope, Subscription, SubscriptionPolicy,
};

/// Position in the event log. Sequence numbers start at 1 and grow by commit order.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One event: sequence number, time and payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Sequence number (0 until published).
    pub seq: Seq,
    /// Ms since the Unix epoch (UTC) when the change committed.
    pub time: i64,
    /// What happened.
    #[serde(flatten)]
    pub payload: EventPayload,
}

/// API identity carried by API events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiRef {
    /// API id.
    pub api_id: String,
    /// Name.
    pub name: String,
    /// Context.
    pub context: String,
    /// Version.
    pub version: String,
    /// Provider.
    pub provider: String,
    /// Lifecycle state after the change.
    pub life_cycle_status: LifecycleState,
}

/// A lifecycle transition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleChange {
    /// The API.
    pub api: ApiRef,
    /// State before.
    pub previous: LifecycleState,
}

/// A revision deployed to (or removed from) gateway environments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayDeployment {
    /// The API definition of the revision (with the API's current lifecycle state).
    pub api: Api,
    /// Revision id.
    pub revision_id: String,
    /// Gateway environment names.
    pub gateway_labels: Vec<String>,
    /// Vhost, if one was chosen.
    #[serde(default)]
    pub vhost: Option<String>,
}

/// Removal of an API from gateway environments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRemoval {
    /// API id.
    pub api_id: String,
    /// Context.
    pub context: String,
    /// Version.
    pub version: String,
    /// Revision id.
    pub revision_id: String,
    /// Gateway environment names it is removed from.
    pub gateway_labels: Vec<String>,
}

/// Reference to a deleted entity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntityRef {
    /// Id (or name, for named entities like policies and scopes).
    pub id: String,
}

/// A subscription with the API it is for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionChange {
    /// The subscription.
    pub subscription: Subscription,
    /// The API's context.
    pub api_context: String,
    /// The API's version.
    pub api_version: String,
}

/// A policy of any kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "policyType", content = "policy")]
pub enum Policy {
    /// Subscription tier.
    #[serde(rename = "SUBSCRIPTION")]
    Subscription(SubscriptionPolicy),
    /// Application tier.
    #[serde(rename = "APPLICATION")]
    Application(ApplicationPolicy),
    /// Advanced API/resource policy.
    #[serde(rename = "API")]
    Advanced(AdvancedPolicy),
    /// Custom (global) policy.
    #[serde(rename = "CUSTOM")]
    Custom(CustomPolicy),
}

impl Policy {
    /// Policy kind name (`SUBSCRIPTION`, `APPLICATION`, `API`, `CUSTOM`).
    pub fn kind(&self) -> PolicyKind {
        match self {
            Policy::Subscription(_) => PolicyKind::Subscription,
            Policy::Application(_) => PolicyKind::Application,
            Policy::Advanced(_) => PolicyKind::Advanced,
            Policy::Custom(_) => PolicyKind::Custom,
        }
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        match self {
            Policy::Subscription(p) => &p.policy_name,
            Policy::Application(p) => &p.policy_name,
            Policy::Advanced(p) => &p.policy_name,
            Policy::Custom(p) => &p.policy_name,
        }
    }
}

/// Kind of a policy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Subscription tier.
    #[serde(rename = "SUBSCRIPTION")]
    Subscription,
    /// Application tier.
    #[serde(rename = "APPLICATION")]
    Application,
    /// Advanced API/resource policy.
    #[serde(rename = "API")]
    Advanced,
    /// Custom (global) policy.
    #[serde(rename = "CUSTOM")]
    Custom,
}

impl PolicyKind {
    /// Name as stored (`SUBSCRIPTION`, `APPLICATION`, `API`, `CUSTOM`).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Subscription => "SUBSCRIPTION",
            PolicyKind::Application => "APPLICATION",
            PolicyKind::Advanced => "API",
            PolicyKind::Custom => "CUSTOM",
        }
    }
}

/// A deleted policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    /// Kind.
    pub policy_type: PolicyKind,
    /// Name.
    pub policy_name: String,
}

/// A revoked token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenRevocation {
    /// Token id (`jti`) or, for opaque tokens, the SHA-256 of the token (hex).
    pub jti: String,
    /// Expiry of the token, seconds since the Unix epoch; the revocation can be forgotten after.
    pub expiry_time: i64,
    /// `JWT`, `OPAQUE`, `API_KEY` or `REFRESH`.
    pub token_type: String,
    /// OAuth client the token was issued to, if known.
    #[serde(default)]
    pub consumer_key: Option<String>,
}

/// What happened. Serialised as `{"type": "API_CREATE", "payload": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "payload")]
#[allow(missing_docs)]
pub enum EventPayload {
    #[serde(rename = "API_CREATE")]
    ApiCreate(ApiRef),
    #[serde(rename = "API_UPDATE")]
    ApiUpdate(ApiRef),
    #[serde(rename = "API_DELETE")]
    ApiDelete(ApiRef),
    #[serde(rename = "API_LIFECYCLE_CHANGE")]
    ApiLifecycleChange(LifecycleChange),
    #[serde(rename = "DEPLOY_API_IN_GATEWAY")]
    DeployApiInGateway(Box<GatewayDeployment>),
    #[serde(rename = "REMOVE_API_FROM_GATEWAY")]
    RemoveApiFromGateway(GatewayRemoval),
    #[serde(rename = "APPLICATION_CREATE")]
    ApplicationCreate(Application),
    #[serde(rename = "APPLICATION_UPDATE")]
    ApplicationUpdate(Application),
    #[serde(rename = "APPLICATION_DELETE")]
    ApplicationDelete(EntityRef),
    #[serde(rename = "APPLICATION_REGISTRATION_CREATE")]
    ApplicationRegistrationCreate(KeyMapping),
    #[serde(rename = "REMOVE_APPLICATION_KEYMAPPING")]
    RemoveApplicationKeymapping(KeyMapping),
    #[serde(rename = "SUBSCRIPTIONS_CREATE")]
    SubscriptionsCreate(SubscriptionChange),
    #[serde(rename = "SUBSCRIPTIONS_UPDATE")]
    SubscriptionsUpdate(SubscriptionChange),
    #[serde(rename = "SUBSCRIPTIONS_DELETE")]
    SubscriptionsDelete(SubscriptionChange),
    #[serde(rename = "POLICY_CREATE")]
    PolicyCreate(Policy),
    #[serde(rename = "POLICY_UPDATE")]
    PolicyUpdate(Policy),
    #[serde(rename = "POLICY_DELETE")]
    PolicyDelete(PolicyRef),
    #[serde(rename = "SCOPE_CREATE")]
    ScopeCreate(Scope),
    #[serde(rename = "SCOPE_UPDATE")]
    ScopeUpdate(Scope),
    #[serde(rename = "SCOPE_DELETE")]
    ScopeDelete(EntityRef),
    #[serde(rename = "BLOCK_CONDITION_ADD")]
    BlockConditionAdd(BlockCondition),
    #[serde(rename = "BLOCK_CONDITION_DELETE")]
    BlockConditionDelete(EntityRef),
    #[serde(rename = "TOKEN_REVOCATION")]
    TokenRevocation(TokenRevocation),
}

impl EventPayload {
    /// WSO2 type name, e.g. `DEPLOY_API_IN_GATEWAY`.
    pub fn type_name(&self) -> &'static str {
        use EventPayload::*;
        match self {
            ApiCreate(_) => "API_CREATE",
            ApiUpdate(_) => "API_UPDATE",
            ApiDelete(_) => "API_DELETE",
            ApiLifecycleChange(_) => "API_LIFECYCLE_CHANGE",
            DeployApiInGateway(_) => "DEPLOY_API_IN_GATEWAY",
            RemoveApiFromGateway(_) => "REMOVE_API_FROM_GATEWAY",
            ApplicationCreate(_) => "APPLICATION_CREATE",
            ApplicationUpdate(_) => "APPLICATION_UPDATE",
            ApplicationDelete(_) => "APPLICATION_DELETE",
            ApplicationRegistrationCreate(_) => "APPLICATION_REGISTRATION_CREATE",
            RemoveApplicationKeymapping(_) => "REMOVE_APPLICATION_KEYMAPPING",
            SubscriptionsCreate(_) => "SUBSCRIPTIONS_CREATE",
            SubscriptionsUpdate(_) => "SUBSCRIPTIONS_UPDATE",
            SubscriptionsDelete(_) => "SUBSCRIPTIONS_DELETE",
            PolicyCreate(_) => "POLICY_CREATE",
            PolicyUpdate(_) => "POLICY_UPDATE",
            PolicyDelete(_) => "POLICY_DELETE",
            ScopeCreate(_) => "SCOPE_CREATE",
            ScopeUpdate(_) => "SCOPE_UPDATE",
            ScopeDelete(_) => "SCOPE_DELETE",
            BlockConditionAdd(_) => "BLOCK_CONDITION_ADD",
            BlockConditionDelete(_) => "BLOCK_CONDITION_DELETE",
            TokenRevocation(_) => "TOKEN_REVOCATION",
        }
    }
}

impl Event {
    /// An unpublished event (seq 0) stamped with the current time.
    pub fn new(payload: EventPayload) -> Self {
        Event {
            seq: Seq(0),
            time: crate::time::now_ms(),
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_uses_wso2_names() {
        let e = Event {
            seq: Seq(7),
            time: 1,
            payload: EventPayload::TokenRevocation(TokenRevocation {
                jti: "abc".into(),
                expiry_time: 99,
                token_type: "JWT".into(),
                consumer_key: None,
            }),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "TOKEN_REVOCATION");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["payload"]["expiryTime"], 99);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.payload.type_name(), "TOKEN_REVOCATION");
    }
}
