//! The API definition, with WSO2 API-M 4.x publisher JSON field names.

use serde::{Deserialize, Serialize};

use super::validate::{check_context, check_len, check_name, check_url, check_version};
use crate::lifecycle::LifecycleState;
use crate::ApimError;

/// An API as the Publisher stores it and the gateway serves it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Api {
    /// Server-assigned id (UUID).
    #[serde(default)]
    pub id: String,
    /// Display name, unique per provider and version.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Base path, e.g. `/pizzashack`. Starts with `/`.
    pub context: String,
    /// Version segment, e.g. `1.0.0` or `v1`.
    pub version: String,
    /// Owner user name.
    #[serde(default)]
    pub provider: String,
    /// API type: `HTTP` (default), `WS`.
    #[serde(default = "default_api_type", rename = "type")]
    pub api_type: String,
    /// Lifecycle state (`CREATED`, `PUBLISHED`, ...). Changed only through change-lifecycle.
    #[serde(default)]
    pub life_cycle_status: LifecycleState,
    /// `PUBLIC`, `PRIVATE` or `RESTRICTED` (Developer Portal visibility).
    #[serde(default)]
    pub visibility: Visibility,
    /// Roles that may see a RESTRICTED API.
    #[serde(default)]
    pub visible_roles: Vec<String>,
    /// `http`, `https`.
    #[serde(default = "default_transports")]
    pub transports: Vec<String>,
    /// Free-form tags for search.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Subscription tiers the API offers (e.g. `Gold`, `Unlimited`).
    #[serde(default = "default_policies")]
    pub policies: Vec<String>,
    /// API-level advanced throttling policy, if any.
    #[serde(default)]
    pub api_throttling_policy: Option<String>,
    /// `oauth2`, `api_key`, `basic_auth`, `oauth_basic_auth_api_key_mandatory`.
    #[serde(default = "default_security")]
    pub security_scheme: Vec<String>,
    /// Whether this version is also served without the version segment.
    #[serde(default)]
    pub is_default_version: bool,
    /// CORS settings.
    #[serde(default)]
    pub cors_configuration: CorsConfiguration,
    /// Backend endpoints.
    pub endpoint_config: EndpointConfig,
    /// Resources.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// OAuth scopes of the API (WSO2 `APIScope`): its own scopes with their role bindings, and
    /// shared scopes it uses (`shared: true`, defined under `/scopes`).
    #[serde(default)]
    pub scopes: Vec<ApiScope>,
    /// Largest accepted request body in bytes (gateway limit; 0 = the gateway default).
    #[serde(default)]
    pub max_request_body_bytes: u64,
    /// Subscriptions need approval (ON_HOLD until a publisher approves).
    #[serde(default)]
    pub subscription_approval_required: bool,
    /// Creation time, ms since the Unix epoch (UTC). Server-set.
    #[serde(default)]
    pub created_time: i64,
    /// Last change, ms since the Unix epoch (UTC). Server-set.
    #[serde(default)]
    pub last_updated_time: i64,
}

fn default_api_type() -> String {
    "HTTP".into()
}
fn default_transports() -> Vec<String> {
    vec!["http".into(), "https".into()]
}
fn default_policies() -> Vec<String> {
    vec!["Unlimited".into()]
}
fn default_security() -> Vec<String> {
    vec!["oauth2".into()]
}

/// Developer Portal visibility.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Visibility {
    /// Everyone, including anonymous users.
    #[default]
    Public,
    /// Only the provider's organisation (signed-in users).
    Private,
    /// Only users with one of `visibleRoles`.
    Restricted,
}

/// CORS configuration (WSO2 `corsConfiguration`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsConfiguration {
    /// CORS handling on/off for this API.
    #[serde(default)]
    pub cors_configuration_enabled: bool,
    /// Allowed origins; `*` for any.
    #[serde(default)]
    pub access_control_allow_origins: Vec<String>,
    /// Whether credentials are allowed.
    #[serde(default)]
    pub access_control_allow_credentials: bool,
    /// Allowed request headers.
    #[serde(default)]
    pub access_control_allow_headers: Vec<String>,
    /// Allowed methods.
    #[serde(default)]
    pub access_control_allow_methods: Vec<String>,
}

/// A scope an API defines or uses (WSO2 `APIScope`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiScope {
    /// The scope; for a shared scope only its name is read (the definition is the shared one).
    pub scope: super::Scope,
    /// Whether this is a shared scope.
    #[serde(default)]
    pub shared: bool,
}

/// One resource of an API: URI template + verb.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// Optional id.
    #[serde(default)]
    pub id: Option<String>,
    /// URI template relative to context/version, e.g. `/menu/{id}` or `/*`.
    pub target: String,
    /// HTTP method, upper case.
    pub verb: String,
    /// `Application & Application User` (default) or `None` (no authentication).
    #[serde(default = "default_auth_type")]
    pub auth_type: String,
    /// Resource-level advanced throttling policy.
    #[serde(default)]
    pub throttling_policy: Option<String>,
    /// Scopes required to call this resource (any one of them).
    #[serde(default)]
    pub scopes: Vec<String>,
}

fn default_auth_type() -> String {
    "Application & Application User".into()
}

impl Operation {
    /// Whether calling this resource needs a credential.
    pub fn requires_auth(&self) -> bool {
        !self.auth_type.eq_ignore_ascii_case("none")
    }
}

/// Backend endpoints (WSO2 `endpointConfig`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `http`, `load_balance` or `failover`.
    pub endpoint_type: EndpointType,
    /// Production endpoints (one, or several for load_balance).
    #[serde(default)]
    pub production_endpoints: Option<Endpoints>,
    /// Sandbox endpoints.
    #[serde(default)]
    pub sandbox_endpoints: Option<Endpoints>,
    /// Failover endpoints tried after production (endpoint_type failover).
    #[serde(default)]
    pub production_failovers: Vec<Endpoint>,
    /// Failover endpoints tried after sandbox.
    #[serde(default)]
    pub sandbox_failovers: Vec<Endpoint>,
}

/// How endpoints are combined.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndpointType {
    /// A single HTTP endpoint.
    Http,
    /// Round robin over several endpoints.
    LoadBalance,
    /// The primary endpoint, then failovers in order.
    Failover,
}

/// One endpoint or a list (WSO2 accepts both shapes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Endpoints {
    /// `{"url": ...}`
    One(Endpoint),
    /// `[{"url": ...}, ...]`
    Many(Vec<Endpoint>),
}

impl Endpoints {
    /// All endpoints as a slice.
    pub fn as_slice(&self) -> &[Endpoint] {
        match self {
            Endpoints::One(e) => std::slice::from_ref(e),
            Endpoints::Many(v) => v,
        }
    }
}

/// A backend URL with optional per-endpoint settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Absolute http(s) URL.
    pub url: String,
    /// Per-endpoint settings.
    #[serde(default)]
    pub config: Option<EndpointSettings>,
}

/// Per-endpoint settings (WSO2 `config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSettings {
    /// Response timeout in milliseconds.
    #[serde(default)]
    pub action_duration: Option<u64>,
    /// Suspension after failures, milliseconds.
    #[serde(default)]
    pub suspend_duration: Option<u64>,
}

/// Security schemes the gateway understands.
pub const SECURITY_SCHEMES: &[&str] = &[
    "oauth2",
    "api_key",
    "basic_auth",
    "oauth_basic_auth_api_key_mandatory",
];

const VERBS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

impl Api {
    /// Structural validation of a definition as submitted (tier existence is the store's job).
    pub fn validate(&self) -> Result<(), ApimError> {
        check_name("name", &self.name)?;
        check_context("context", &self.context)?;
        check_version("version", &self.version)?;
        if let Some(d) = &self.description {
            check_len("description", d, 20_000)?;
        }
        if !matches!(self.api_type.as_str(), "HTTP" | "WS") {
            return Err(ApimError::validation("type", "must be HTTP or WS"));
        }
        for t in &self.transports {
            if !matches!(t.as_str(), "http" | "https" | "ws" | "wss") {
                return Err(ApimError::validation(
                    "transports",
                    format!("unknown transport '{t}'"),
                ));
            }
        }
        for s in &self.security_scheme {
            if !SECURITY_SCHEMES.contains(&s.as_str()) {
                return Err(ApimError::validation(
                    "securityScheme",
                    format!("unknown scheme '{s}'; expected one of {SECURITY_SCHEMES:?}"),
                ));
            }
        }
        for (i, tag) in self.tags.iter().enumerate() {
            check_len(&format!("tags[{i}]"), tag, 64)?;
        }
        if self.policies.is_empty() {
            return Err(ApimError::validation(
                "policies",
                "at least one subscription tier is required",
            ));
        }
        self.validate_endpoints()?;
        for (i, op) in self.operations.iter().enumerate() {
            let field = format!("operations[{i}]");
            if !VERBS.contains(&op.verb.as_str()) {
                return Err(ApimError::validation(
                    format!("{field}.verb"),
                    format!("unknown HTTP verb '{}'", op.verb),
                ));
            }
            crate::uri_template::UriTemplate::parse(&op.target)
                .map_err(|m| ApimError::validation(format!("{field}.target"), m))?;
            if !matches!(
                op.auth_type.as_str(),
                "Application & Application User"
                    | "Application"
                    | "Application User"
                    | "None"
                    | "Any"
            ) {
                return Err(ApimError::validation(
                    format!("{field}.authType"),
                    format!("unknown auth type '{}'", op.auth_type),
                ));
            }
        }
        self.validate_scopes()?;
        let mut seen = std::collections::HashSet::new();
        for (i, op) in self.operations.iter().enumerate() {
            if !seen.insert((op.verb.as_str(), op.target.as_str())) {
                return Err(ApimError::validation(
                    format!("operations[{i}]"),
                    format!("duplicate resource {} {}", op.verb, op.target),
                ));
            }
        }
        Ok(())
    }

    /// The API's own scopes are valid and distinct; every scope a resource requires is one of
    /// the API's scopes or a shared one (whether a shared scope exists is the store's check).
    fn validate_scopes(&self) -> Result<(), ApimError> {
        if self.scopes.len() > 200 {
            return Err(ApimError::validation("scopes", "at most 200 scopes"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.scopes.iter().enumerate() {
            if s.shared {
                check_name(&format!("scopes[{i}].scope.name"), &s.scope.name)?;
            } else {
                s.scope.validate_at(&format!("scopes[{i}].scope."))?;
            }
            if !names.insert(s.scope.name.as_str()) {
                return Err(ApimError::validation(
                    format!("scopes[{i}].scope.name"),
                    format!("scope '{}' is listed twice", s.scope.name),
                ));
            }
        }
        for (i, op) in self.operations.iter().enumerate() {
            if op.scopes.len() > 50 {
                return Err(ApimError::validation(
                    format!("operations[{i}].scopes"),
                    "at most 50 scopes",
                ));
            }
            for s in &op.scopes {
                check_name(&format!("operations[{i}].scopes"), s)?;
                if s.contains(char::is_whitespace) || s.starts_with("apim:") {
                    return Err(ApimError::validation(
                        format!("operations[{i}].scopes"),
                        format!("'{s}' is not a scope an API can require"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Scope names the resources require that are not among the API's own (local) scopes:
    /// these must be shared scopes. `(operation index, name)`.
    pub fn scopes_needing_shared(&self) -> Vec<(usize, &str)> {
        let local = |n: &str| self.scopes.iter().any(|s| !s.shared && s.scope.name == n);
        let mut out = Vec::new();
        for (i, op) in self.operations.iter().enumerate() {
            for s in &op.scopes {
                if !local(s) {
                    out.push((i, s.as_str()));
                }
            }
        }
        out
    }

    fn validate_endpoints(&self) -> Result<(), ApimError> {
        let ec = &self.endpoint_config;
        if ec.production_endpoints.is_none() && ec.sandbox_endpoints.is_none() {
            return Err(ApimError::validation(
                "endpointConfig",
                "at least one of production_endpoints or sandbox_endpoints is required",
            ));
        }
        for (name, eps) in [
            ("production_endpoints", &ec.production_endpoints),
            ("sandbox_endpoints", &ec.sandbox_endpoints),
        ] {
            let Some(eps) = eps else { continue };
            if eps.as_slice().is_empty() {
                return Err(ApimError::validation(
                    format!("endpointConfig.{name}"),
                    "is empty",
                ));
            }
            if ec.endpoint_type != EndpointType::LoadBalance && eps.as_slice().len() > 1 {
                return Err(ApimError::validation(
                    format!("endpointConfig.{name}"),
                    "several endpoints need endpoint_type load_balance",
                ));
            }
            for (i, e) in eps.as_slice().iter().enumerate() {
                check_url(&format!("endpointConfig.{name}[{i}].url"), &e.url)?;
            }
        }
        for (name, list) in [
            ("production_failovers", &ec.production_failovers),
            ("sandbox_failovers", &ec.sandbox_failovers),
        ] {
            for (i, e) in list.iter().enumerate() {
                check_url(&format!("endpointConfig.{name}[{i}].url"), &e.url)?;
            }
        }
        Ok(())
    }

    /// The throttle key of this API: `context:version`.
    pub fn throttle_key(&self) -> String {
        format!("{}:{}", self.context, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Api {
        serde_json::from_value(serde_json::json!({
            "name": "PizzaShack",
            "context": "/pizzashack",
            "version": "1.0.0",
            "policies": ["Gold", "Unlimited"],
            "endpointConfig": {
                "endpoint_type": "http",
                "production_endpoints": {"url": "http://localhost:9080/pizza"}
            },
            "operations": [
                {"target": "/menu", "verb": "GET"},
                {"target": "/order/{orderId}", "verb": "GET", "scopes": ["read"]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn wso2_json_round_trip() {
        let api = sample();
        assert_eq!(api.life_cycle_status, LifecycleState::Created);
        let v = serde_json::to_value(&api).unwrap();
        assert_eq!(v["lifeCycleStatus"], "CREATED");
        assert_eq!(
            v["endpointConfig"]["production_endpoints"]["url"],
            "http://localhost:9080/pizza"
        );
        assert_eq!(
            v["operations"][0]["authType"],
            "Application & Application User"
        );
        api.validate().unwrap();
    }

    #[test]
    fn load_balance_accepts_array() {
        let ec: EndpointConfig = serde_json::from_value(serde_json::json!({
            "endpoint_type": "load_balance",
            "production_endpoints": [{"url": "http://a:1"}, {"url": "http://b:2"}]
        }))
        .unwrap();
        assert_eq!(ec.production_endpoints.unwrap().as_slice().len(), 2);
    }

    #[test]
    fn invalid_definitions_name_the_field() {
        let field_of = |api: &Api| match api.validate() {
            Err(ApimError::Validation { field, .. }) => field,
            other => panic!("expected validation error, got {other:?}"),
        };
        let mut a = sample();
        a.name = "  ".into();
        assert_eq!(field_of(&a), "name");
        let mut a = sample();
        a.context = "/../x".into();
        assert_eq!(field_of(&a), "context");
        let mut a = sample();
        a.version = "1.0 beta".into();
        assert_eq!(field_of(&a), "version");
        let mut a = sample();
        a.endpoint_config.production_endpoints = Some(Endpoints::One(Endpoint {
            url: "ftp://x".into(),
            config: None,
        }));
        assert_eq!(field_of(&a), "endpointConfig.production_endpoints[0].url");
        let mut a = sample();
        a.operations[0].verb = "FETCH".into();
        assert_eq!(field_of(&a), "operations[0].verb");
        let mut a = sample();
        a.operations[1].target = "/order/{".into();
        assert_eq!(field_of(&a), "operations[1].target");
        let mut a = sample();
        a.operations.push(a.operations[0].clone());
        assert_eq!(field_of(&a), "operations[2]");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<Api>(serde_json::json!({
            "name": "x", "context": "/x", "version": "1", "bogus": 1,
            "endpointConfig": {"endpoint_type": "http"}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
