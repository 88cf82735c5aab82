//! Applications (Developer Portal), their OAuth key mappings and key types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::{check_len, check_name};
use crate::ApimError;

/// A consumer application.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Application {
    /// Server-assigned id (UUID).
    #[serde(default)]
    pub application_id: String,
    /// Name, unique per owner.
    pub name: String,
    /// Application throttling tier (e.g. `10PerMin`, `Unlimited`).
    #[serde(default = "default_app_tier")]
    pub throttling_policy: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `JWT` (self-contained access tokens, default) or `OAUTH` (opaque tokens).
    #[serde(default)]
    pub token_type: TokenType,
    /// `APPROVED` or `CREATED` (pending approval).
    #[serde(default = "default_status")]
    pub status: String,
    /// Owner user name. Server-set.
    #[serde(default)]
    pub owner: String,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Number of subscriptions. Server-set.
    #[serde(default)]
    pub subscription_count: u32,
    /// Creation time, ms since the Unix epoch. Server-set.
    #[serde(default)]
    pub created_time: i64,
}

fn default_app_tier() -> String {
    "Unlimited".into()
}
fn default_status() -> String {
    "APPROVED".into()
}

/// Kind of access token an application gets.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenType {
    /// Self-contained signed JWT.
    #[default]
    Jwt,
    /// Opaque reference token, validated by introspection.
    Oauth,
}

/// PRODUCTION or SANDBOX keys (separate endpoints per key type).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyType {
    /// Production keys: production endpoints.
    #[default]
    Production,
    /// Sandbox keys: sandbox endpoints.
    Sandbox,
}

impl KeyType {
    /// `PRODUCTION` / `SANDBOX`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Production => "PRODUCTION",
            KeyType::Sandbox => "SANDBOX",
        }
    }

    /// Parses `PRODUCTION` / `SANDBOX` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, ApimError> {
        if s.eq_ignore_ascii_case("PRODUCTION") {
            Ok(KeyType::Production)
        } else if s.eq_ignore_ascii_case("SANDBOX") {
            Ok(KeyType::Sandbox)
        } else {
            Err(ApimError::validation(
                "keyType",
                format!("'{s}' is not PRODUCTION or SANDBOX"),
            ))
        }
    }
}

/// The OAuth client of an application for one key type.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyMapping {
    /// Server-assigned id.
    pub key_mapping_id: String,
    /// Owning application.
    pub application_id: String,
    /// PRODUCTION or SANDBOX.
    pub key_type: KeyType,
    /// OAuth client id.
    pub consumer_key: String,
    /// Key manager name (`Resident Key Manager`).
    pub key_manager: String,
}

impl Application {
    /// Structural validation (tier existence is the store's job).
    pub fn validate(&self) -> Result<(), ApimError> {
        check_name("name", &self.name)?;
        check_name("throttlingPolicy", &self.throttling_policy)?;
        if let Some(d) = &self.description {
            check_len("description", d, 1000)?;
        }
        if self.attributes.len() > 50 {
            return Err(ApimError::validation("attributes", "at most 50 attributes"));
        }
        for (k, v) in &self.attributes {
            check_len("attributes", k, 100)?;
            check_len(&format!("attributes.{k}"), v, 1000)?;
        }
        Ok(())
    }

    /// The application throttle key for a user: `appId:user`.
    pub fn throttle_key(&self, user: &str) -> String {
        format!("{}:{user}", self.application_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_names() {
        let app: Application = serde_json::from_str(r#"{"name":"DefaultApplication"}"#).unwrap();
        assert_eq!(app.throttling_policy, "Unlimited");
        assert_eq!(app.token_type, TokenType::Jwt);
        app.validate().unwrap();
        let v = serde_json::to_value(&app).unwrap();
        assert!(v.get("throttlingPolicy").is_some() && v.get("tokenType").is_some());
        assert!(serde_json::from_str::<Application>(r#"{"name":"x","tokenType":"SAML"}"#).is_err());
        let empty: Application = serde_json::from_str(r#"{"name":""}"#).unwrap();
        assert!(
            matches!(empty.validate(), Err(ApimError::Validation { field, .. }) if field == "name")
        );
    }

    #[test]
    fn key_types() {
        assert_eq!(KeyType::parse("sandbox").unwrap(), KeyType::Sandbox);
        assert!(KeyType::parse("TEST").is_err());
    }
}
