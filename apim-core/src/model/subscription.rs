//! Subscriptions of applications to APIs.

use serde::{Deserialize, Serialize};

use crate::ApimError;

/// An application's subscription to an API at a tier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    /// Server-assigned id.
    #[serde(default)]
    pub subscription_id: String,
    /// Subscribing application.
    pub application_id: String,
    /// Subscribed API.
    pub api_id: String,
    /// Subscription tier (one the API offers).
    pub throttling_policy: String,
    /// Requested tier while a tier change awaits approval.
    #[serde(default)]
    pub requested_throttling_policy: Option<String>,
    /// State. Server-set.
    #[serde(default)]
    pub status: SubscriptionStatus,
    /// Creation time, ms since the Unix epoch. Server-set.
    #[serde(default)]
    pub created_time: i64,
}

/// Subscription states, with WSO2's names.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriptionStatus {
    /// Active.
    #[default]
    Unblocked,
    /// Blocked for all key types.
    Blocked,
    /// Blocked for production keys only.
    ProdOnlyBlocked,
    /// Awaiting approval.
    OnHold,
    /// Approval refused.
    Rejected,
    /// A tier change awaits approval (the old tier stays in force).
    TierUpdatePending,
}

impl SubscriptionStatus {
    /// Parses WSO2's name (`PROD_ONLY_BLOCKED`, ...).
    pub fn parse(s: &str) -> Result<Self, ApimError> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            ApimError::validation(
                "blockState",
                format!("'{s}' is not one of UNBLOCKED, BLOCKED, PROD_ONLY_BLOCKED, ON_HOLD, REJECTED, TIER_UPDATE_PENDING"),
            )
        })
    }

    /// Whether calls with keys of `key_type` pass the subscription check.
    pub fn allows(self, key_type: super::KeyType) -> bool {
        match self {
            SubscriptionStatus::Unblocked | SubscriptionStatus::TierUpdatePending => true,
            SubscriptionStatus::ProdOnlyBlocked => key_type == super::KeyType::Sandbox,
            _ => false,
        }
    }
}

impl Subscription {
    /// The subscription throttle key: `appId:context:version`.
    pub fn throttle_key(&self, context: &str, version: &str) -> String {
        format!("{}:{context}:{version}", self.application_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KeyType;

    #[test]
    fn status_rules() {
        use SubscriptionStatus::*;
        assert!(Unblocked.allows(KeyType::Production));
        assert!(!ProdOnlyBlocked.allows(KeyType::Production));
        assert!(ProdOnlyBlocked.allows(KeyType::Sandbox));
        for s in [Blocked, OnHold, Rejected] {
            assert!(!s.allows(KeyType::Sandbox));
        }
        assert_eq!(
            SubscriptionStatus::parse("PROD_ONLY_BLOCKED").unwrap(),
            ProdOnlyBlocked
        );
        assert!(SubscriptionStatus::parse("PAUSED").is_err());
    }
}
