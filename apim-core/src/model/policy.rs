//! Throttling policies (Admin API v4 shapes): subscription, application, advanced and custom.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::validate::{check_len, check_name};
use crate::ApimError;

/// Request counts at or above this are "unlimited" (WSO2 stores Unlimited as `i32::MAX`).
pub const UNLIMITED_COUNT: u64 = 2_147_483_647;

/// Unit of a quota window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Seconds.
    Sec,
    /// Minutes.
    Min,
    /// Hours.
    Hour,
    /// Days.
    Day,
}

impl TimeUnit {
    /// Length of one unit.
    pub const fn duration(self) -> Duration {
        Duration::from_secs(match self {
            TimeUnit::Sec => 1,
            TimeUnit::Min => 60,
            TimeUnit::Hour => 3600,
            TimeUnit::Day => 86_400,
        })
    }
}

/// A request-count quota.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestCountLimit {
    /// Window unit.
    pub time_unit: TimeUnit,
    /// Number of units per window (≥ 1).
    #[serde(default = "one")]
    pub unit_time: u32,
    /// Requests allowed per window.
    pub request_count: u64,
}

/// A bandwidth quota.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandwidthLimit {
    /// Window unit.
    pub time_unit: TimeUnit,
    /// Number of units per window (≥ 1).
    #[serde(default = "one")]
    pub unit_time: u32,
    /// Amount allowed per window, in `data_unit`.
    pub data_amount: u64,
    /// `KB`, `MB` or `GB`.
    pub data_unit: DataUnit,
}

/// Unit of a bandwidth amount.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum DataUnit {
    /// 1024 bytes.
    KB,
    /// 1024² bytes.
    MB,
    /// 1024³ bytes.
    GB,
}

fn one() -> u32 {
    1
}

/// A quota: request count or bandwidth (WSO2 `defaultLimit` / `limit`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type")]
pub enum ThrottleLimit {
    /// `{"type":"REQUESTCOUNTLIMIT","requestCount":{...}}`
    #[serde(rename = "REQUESTCOUNTLIMIT")]
    RequestCount {
        /// The quota.
        #[serde(rename = "requestCount")]
        request_count: RequestCountLimit,
    },
    /// `{"type":"BANDWIDTHLIMIT","bandwidth":{...}}`
    #[serde(rename = "BANDWIDTHLIMIT")]
    Bandwidth {
        /// The quota.
        bandwidth: BandwidthLimit,
    },
}

impl ThrottleLimit {
    /// A request-count limit of `count` per `unit_time` `unit`s.
    pub fn requests(count: u64, unit: TimeUnit, unit_time: u32) -> Self {
        ThrottleLimit::RequestCount {
            request_count: RequestCountLimit {
                time_unit: unit,
                unit_time,
                request_count: count,
            },
        }
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        let (u, n) = match self {
            ThrottleLimit::RequestCount { request_count: r } => (r.time_unit, r.unit_time),
            ThrottleLimit::Bandwidth { bandwidth: b } => (b.time_unit, b.unit_time),
        };
        u.duration() * n.max(1)
    }

    /// The amount per window: requests, or bytes for bandwidth.
    pub fn amount(&self) -> u64 {
        match self {
            ThrottleLimit::RequestCount { request_count: r } => r.request_count,
            ThrottleLimit::Bandwidth { bandwidth: b } => {
                b.data_amount.saturating_mul(match b.data_unit {
                    DataUnit::KB => 1 << 10,
                    DataUnit::MB => 1 << 20,
                    DataUnit::GB => 1 << 30,
                })
            }
        }
    }

    /// Whether this is a bandwidth quota.
    pub fn is_bandwidth(&self) -> bool {
        matches!(self, ThrottleLimit::Bandwidth { .. })
    }

    /// Whether this limit never denies.
    pub fn is_unlimited(&self) -> bool {
        !self.is_bandwidth() && self.amount() >= UNLIMITED_COUNT
    }

    fn validate(&self, field: &str) -> Result<(), ApimError> {
        let (unit_time, amount_field) = match self {
            ThrottleLimit::RequestCount { request_count: r } => {
                (r.unit_time, "requestCount.requestCount")
            }
            ThrottleLimit::Bandwidth { bandwidth: b } => (b.unit_time, "bandwidth.dataAmount"),
        };
        if unit_time == 0 || unit_time > 1000 {
            return Err(ApimError::validation(
                format!("{field}.unitTime"),
                "must be between 1 and 1000",
            ));
        }
        if self.amount() == 0 {
            return Err(ApimError::validation(
                format!("{field}.{amount_field}"),
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// Common policy header fields.
fn check_header(name: &str, description: &Option<String>) -> Result<(), ApimError> {
    check_name("policyName", name)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(ApimError::validation(
            "policyName",
            "may only contain letters, digits, '_', '-' and '.'",
        ));
    }
    if let Some(d) = description {
        check_len("description", d, 1000)?;
    }
    Ok(())
}

/// A subscription tier (Gold, Silver, ...).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionPolicy {
    /// Server-assigned id.
    #[serde(default)]
    pub policy_id: String,
    /// Unique name, used as the tier name.
    pub policy_name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The quota.
    pub default_limit: ThrottleLimit,
    /// Burst control: requests per `rate_limit_time_unit` (0 = no burst control).
    #[serde(default)]
    pub rate_limit_count: u64,
    /// Burst control unit: `sec` or `min`.
    #[serde(default)]
    pub rate_limit_time_unit: Option<TimeUnit>,
    /// If false, traffic over quota passes and is marked instead of denied.
    #[serde(default = "yes")]
    pub stop_on_quota_reach: bool,
    /// `FREE` or `COMMERCIAL`.
    #[serde(default = "free")]
    pub billing_plan: String,
}

fn yes() -> bool {
    true
}
fn free() -> String {
    "FREE".into()
}

impl SubscriptionPolicy {
    /// Validation with field names.
    pub fn validate(&self) -> Result<(), ApimError> {
        check_header(&self.policy_name, &self.description)?;
        self.default_limit.validate("defaultLimit")?;
        if self.rate_limit_count > 0 {
            match self.rate_limit_time_unit {
                Some(TimeUnit::Sec) | Some(TimeUnit::Min) => {}
                _ => {
                    return Err(ApimError::validation(
                        "rateLimitTimeUnit",
                        "must be 'sec' or 'min' when rateLimitCount is set",
                    ))
                }
            }
        }
        if !matches!(self.billing_plan.as_str(), "FREE" | "COMMERCIAL") {
            return Err(ApimError::validation(
                "billingPlan",
                "must be FREE or COMMERCIAL",
            ));
        }
        Ok(())
    }

    /// Burst limit as (count, period), if configured.
    pub fn burst(&self) -> Option<(u64, Duration)> {
        match (self.rate_limit_count, self.rate_limit_time_unit) {
            (0, _) | (_, None) => None,
            (n, Some(u)) => Some((n, u.duration())),
        }
    }
}

/// An application tier (10PerMin, ...).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationPolicy {
    /// Server-assigned id.
    #[serde(default)]
    pub policy_id: String,
    /// Unique name, used as the tier name.
    pub policy_name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The quota, per application and user.
    pub default_limit: ThrottleLimit,
}

impl ApplicationPolicy {
    /// Validation with field names.
    pub fn validate(&self) -> Result<(), ApimError> {
        check_header(&self.policy_name, &self.description)?;
        self.default_limit.validate("defaultLimit")
    }
}

/// An advanced (API- or resource-level) policy with conditional groups.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdvancedPolicy {
    /// Server-assigned id.
    #[serde(default)]
    pub policy_id: String,
    /// Unique name.
    pub policy_name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Limit when no conditional group matches.
    pub default_limit: ThrottleLimit,
    /// Groups; the first matching one's limit applies.
    #[serde(default)]
    pub conditional_groups: Vec<ConditionalGroup>,
}

/// A set of conditions (all must hold) with its own limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionalGroup {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Conditions, ANDed.
    pub conditions: Vec<ThrottleCondition>,
    /// The limit of this group.
    pub limit: ThrottleLimit,
}

/// Kind of a throttle condition.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ConditionType {
    /// On a request header.
    #[serde(rename = "HEADERCONDITION")]
    Header,
    /// On the client IP (one address or a range).
    #[serde(rename = "IPCONDITION")]
    Ip,
    /// On a query parameter.
    #[serde(rename = "QUERYPARAMETERCONDITION")]
    QueryParameter,
    /// On a JWT claim.
    #[serde(rename = "JWTCLAIMSCONDITION")]
    JwtClaims,
}

/// One condition (WSO2 shape: a type tag plus the matching sub-object).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThrottleCondition {
    /// Which sub-object applies.
    #[serde(rename = "type")]
    pub condition_type: ConditionType,
    /// Negate the result.
    #[serde(default)]
    pub invert_condition: bool,
    /// For HEADERCONDITION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_condition: Option<HeaderCondition>,
    /// For IPCONDITION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_condition: Option<IpCondition>,
    /// For QUERYPARAMETERCONDITION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter_condition: Option<QueryParameterCondition>,
    /// For JWTCLAIMSCONDITION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_claims_condition: Option<JwtClaimsCondition>,
}

/// Header equals value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderCondition {
    /// Header name (case-insensitive).
    pub header_name: String,
    /// Expected value.
    pub header_value: String,
}

/// Client IP is one address or within a range.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpCondition {
    /// `IPSPECIFIC` or `IPRANGE`.
    pub ip_condition_type: String,
    /// For IPSPECIFIC.
    #[serde(default, rename = "specificIP")]
    pub specific_ip: Option<String>,
    /// For IPRANGE.
    #[serde(default, rename = "startingIP")]
    pub starting_ip: Option<String>,
    /// For IPRANGE.
    #[serde(default, rename = "endingIP")]
    pub ending_ip: Option<String>,
}

/// Query parameter equals value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryParameterCondition {
    /// Parameter name.
    pub parameter_name: String,
    /// Expected value.
    pub parameter_value: String,
}

/// JWT claim equals value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtClaimsCondition {
    /// Claim name (e.g. `sub` or `http://wso2.org/claims/role`).
    pub claim_url: String,
    /// Expected value.
    pub attribute: String,
}

impl AdvancedPolicy {
    /// Validation with field names.
    pub fn validate(&self) -> Result<(), ApimError> {
        check_header(&self.policy_name, &self.description)?;
        self.default_limit.validate("defaultLimit")?;
        for (g, group) in self.conditional_groups.iter().enumerate() {
            let gf = format!("conditionalGroups[{g}]");
            group.limit.validate(&format!("{gf}.limit"))?;
            if group.conditions.is_empty() {
                return Err(ApimError::validation(
                    format!("{gf}.conditions"),
                    "must not be empty",
                ));
            }
            for (c, cond) in group.conditions.iter().enumerate() {
                cond.validate(&format!("{gf}.conditions[{c}]"))?;
            }
        }
        Ok(())
    }
}

impl ThrottleCondition {
    fn validate(&self, field: &str) -> Result<(), ApimError> {
        let missing = |name: &str| {
            ApimError::validation(
                format!("{field}.{name}"),
                "is required for this condition type",
            )
        };
        match self.condition_type {
            ConditionType::Header => {
                let h = self
                    .header_condition
                    .as_ref()
                    .ok_or_else(|| missing("headerCondition"))?;
                if http::HeaderName::from_bytes(h.header_name.as_bytes()).is_err() {
                    return Err(ApimError::validation(
                        format!("{field}.headerCondition.headerName"),
                        "is not a valid header name",
                    ));
                }
            }
            ConditionType::Ip => {
                let ip = self
                    .ip_condition
                    .as_ref()
                    .ok_or_else(|| missing("ipCondition"))?;
                let parse =
                    |name: &str, v: &Option<String>| -> Result<std::net::IpAddr, ApimError> {
                        v.as_deref()
                            .ok_or_else(|| missing(&format!("ipCondition.{name}")))?
                            .parse()
                            .map_err(|_| {
                                ApimError::validation(
                                    format!("{field}.ipCondition.{name}"),
                                    "is not an IP address",
                                )
                            })
                    };
                match ip.ip_condition_type.as_str() {
                    "IPSPECIFIC" => {
                        parse("specificIP", &ip.specific_ip)?;
                    }
                    "IPRANGE" => {
                        let a = parse("startingIP", &ip.starting_ip)?;
                        let b = parse("endingIP", &ip.ending_ip)?;
                        if a.is_ipv4() != b.is_ipv4() || a > b {
                            return Err(ApimError::validation(
                                format!("{field}.ipCondition"),
                                "startingIP must not be after endingIP (same family)",
                            ));
                        }
                    }
                    _ => {
                        return Err(ApimError::validation(
                            format!("{field}.ipCondition.ipConditionType"),
                            "must be IPSPECIFIC or IPRANGE",
                        ))
                    }
                }
            }
            ConditionType::QueryParameter => {
                self.query_parameter_condition
                    .as_ref()
                    .ok_or_else(|| missing("queryParameterCondition"))?;
            }
            ConditionType::JwtClaims => {
                self.jwt_claims_condition
                    .as_ref()
                    .ok_or_else(|| missing("jwtClaimsCondition"))?;
            }
        }
        Ok(())
    }
}

/// A custom (global) policy: a key template and a limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomPolicy {
    /// Server-assigned id.
    #[serde(default)]
    pub policy_id: String,
    /// Unique name.
    pub policy_name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Key template, e.g. `$userId:$apiContext:$apiVersion`.
    pub key_template: String,
    /// Limit per distinct key.
    pub default_limit: ThrottleLimit,
}

/// Variables a custom policy's key template may use.
pub const KEY_TEMPLATE_VARS: &[&str] = &[
    "$userId",
    "$apiContext",
    "$apiVersion",
    "$appId",
    "$clientIp",
];

impl CustomPolicy {
    /// Validation with field names; unknown `$variables` are refused.
    pub fn validate(&self) -> Result<(), ApimError> {
        check_header(&self.policy_name, &self.description)?;
        self.default_limit.validate("defaultLimit")?;
        check_len("keyTemplate", &self.key_template, 500)?;
        if self.key_template.trim().is_empty() {
            return Err(ApimError::validation("keyTemplate", "must not be empty"));
        }
        let mut rest = self.key_template.as_str();
        while let Some(i) = rest.find('$') {
            rest = &rest[i..];
            let end = rest[1..]
                .find(|c: char| !c.is_ascii_alphanumeric())
                .map_or(rest.len(), |e| e + 1);
            let var = &rest[..end];
            if !KEY_TEMPLATE_VARS.contains(&var) {
                return Err(ApimError::validation(
                    "keyTemplate",
                    format!("unknown variable '{var}'; expected one of {KEY_TEMPLATE_VARS:?}"),
                ));
            }
            rest = &rest[end..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wso2_shapes() {
        let p: SubscriptionPolicy = serde_json::from_value(serde_json::json!({
            "policyName": "Gold",
            "defaultLimit": {"type": "REQUESTCOUNTLIMIT", "requestCount": {"timeUnit": "min", "unitTime": 1, "requestCount": 5000}},
            "rateLimitCount": 100, "rateLimitTimeUnit": "sec", "stopOnQuotaReach": true
        }))
        .unwrap();
        p.validate().unwrap();
        assert_eq!(p.default_limit.amount(), 5000);
        assert_eq!(p.default_limit.window(), Duration::from_secs(60));
        assert_eq!(p.burst(), Some((100, Duration::from_secs(1))));
        let bw: ThrottleLimit = serde_json::from_value(serde_json::json!(
            {"type": "BANDWIDTHLIMIT", "bandwidth": {"timeUnit": "hour", "unitTime": 2, "dataAmount": 3, "dataUnit": "MB"}}
        ))
        .unwrap();
        assert_eq!(bw.amount(), 3 << 20);
        assert_eq!(bw.window(), Duration::from_secs(7200));
    }

    #[test]
    fn bad_policies_name_the_field() {
        let field = |r: Result<(), ApimError>| match r {
            Err(ApimError::Validation { field, .. }) => field,
            o => panic!("{o:?}"),
        };
        let mut p = AdvancedPolicy {
            policy_id: String::new(),
            policy_name: "10KPerMin".into(),
            display_name: None,
            description: None,
            default_limit: ThrottleLimit::requests(0, TimeUnit::Min, 1),
            conditional_groups: vec![],
        };
        assert_eq!(
            field(p.validate()),
            "defaultLimit.requestCount.requestCount"
        );
        p.default_limit = ThrottleLimit::requests(10, TimeUnit::Min, 1);
        p.conditional_groups.push(ConditionalGroup {
            description: None,
            conditions: vec![ThrottleCondition {
                condition_type: ConditionType::Ip,
                invert_condition: false,
                header_condition: None,
                ip_condition: Some(IpCondition {
                    ip_condition_type: "IPRANGE".into(),
                    specific_ip: None,
                    starting_ip: Some("10.0.0.9".into()),
                    ending_ip: Some("10.0.0.1".into()),
                }),
                query_parameter_condition: None,
                jwt_claims_condition: None,
            }],
            limit: ThrottleLimit::requests(1, TimeUnit::Sec, 1),
        });
        assert_eq!(
            field(p.validate()),
            "conditionalGroups[0].conditions[0].ipCondition"
        );
        let c = CustomPolicy {
            policy_id: String::new(),
            policy_name: "perUser".into(),
            description: None,
            key_template: "$userId:$secret".into(),
            default_limit: ThrottleLimit::requests(5, TimeUnit::Min, 1),
        };
        assert_eq!(field(c.validate()), "keyTemplate");
        let sub = SubscriptionPolicy {
            policy_id: String::new(),
            policy_name: "bad name!".into(),
            display_name: None,
            description: None,
            default_limit: ThrottleLimit::requests(5, TimeUnit::Min, 1),
            rate_limit_count: 0,
            rate_limit_time_unit: None,
            stop_on_quota_reach: true,
            billing_plan: "FREE".into(),
        };
        assert_eq!(field(sub.validate()), "policyName");
    }
}
