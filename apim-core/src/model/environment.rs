//! Gateway environments, API revisions and their deployments.

use serde::{Deserialize, Serialize};

use super::validate::{check_len, check_name};
use crate::ApimError;

/// A named gateway environment (a group of gateways serving the same APIs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    /// Server-assigned id.
    #[serde(default)]
    pub id: String,
    /// Unique name (the gateway label), e.g. `Default`.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Virtual hosts served by this environment.
    #[serde(default)]
    pub vhosts: Vec<Vhost>,
}

/// A virtual host of an environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Vhost {
    /// Host name, e.g. `localhost` or `api.example.com`.
    pub host: String,
    /// HTTP port the gateways listen on.
    #[serde(default = "http_port")]
    pub http_port: u16,
    /// HTTPS port.
    #[serde(default = "https_port")]
    pub https_port: u16,
}

fn http_port() -> u16 {
    8280
}
fn https_port() -> u16 {
    8243
}

impl Environment {
    /// Validation with field names.
    pub fn validate(&self) -> Result<(), ApimError> {
        check_name("name", &self.name)?;
        if !self
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        {
            return Err(ApimError::validation(
                "name",
                "may only contain letters, digits, '_' and '-'",
            ));
        }
        if let Some(d) = &self.description {
            check_len("description", d, 1000)?;
        }
        for (i, v) in self.vhosts.iter().enumerate() {
            let ok = !v.host.is_empty()
                && v.host.len() <= 253
                && v.host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
            if !ok {
                return Err(ApimError::validation(
                    format!("vhosts[{i}].host"),
                    "is not a valid host name",
                ));
            }
        }
        Ok(())
    }
}

/// An immutable snapshot of an API definition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiRevision {
    /// Revision id.
    pub id: String,
    /// The API it snapshots.
    pub api_id: String,
    /// `Revision 1`, `Revision 2`, ...
    pub display_name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Ms since the Unix epoch.
    pub created_time: i64,
    /// The snapshot.
    pub api: super::Api,
    /// Where it is deployed.
    #[serde(default)]
    pub deployment_info: Vec<Deployment>,
}

/// A revision deployed to a gateway environment and vhost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Deployed revision.
    #[serde(default)]
    pub revision_uuid: String,
    /// Environment name (gateway label).
    pub name: String,
    /// Vhost within the environment.
    #[serde(default)]
    pub vhost: Option<String>,
    /// Shown in the Developer Portal.
    #[serde(default = "yes")]
    pub display_on_devportal: bool,
    /// Ms since the Unix epoch. Server-set.
    #[serde(default)]
    pub deployed_time: i64,
}

fn yes() -> bool {
    true
}
