//! Block conditions (Admin API): deny calls by API, application, IP, IP range or user.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ApimError;

/// A block condition as the Admin API takes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockCondition {
    /// Server-assigned id.
    #[serde(default)]
    pub condition_id: String,
    /// `API`, `APPLICATION`, `IP`, `IPRANGE` or `USER`.
    pub condition_type: BlockConditionType,
    /// API context, `owner:appName`, user name, `{"fixedIp","invert"}` or
    /// `{"startingIp","endingIp","invert"}`.
    pub condition_value: serde_json::Value,
    /// Active or not.
    #[serde(default = "yes")]
    pub condition_status: bool,
}

fn yes() -> bool {
    true
}

/// Kind of a block condition.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BlockConditionType {
    /// An API context (all versions).
    Api,
    /// An application, `owner:appName`.
    Application,
    /// One IP address.
    Ip,
    /// An inclusive IP range.
    Iprange,
    /// A user name.
    User,
}

/// The typed target of a block condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockTarget {
    /// API context.
    Api(String),
    /// `owner:appName`.
    Application(String),
    /// One address; `invert` blocks everyone else.
    Ip {
        /// The address.
        ip: IpAddr,
        /// Block all other addresses instead.
        invert: bool,
    },
    /// Inclusive range of one family; `invert` blocks addresses outside it.
    IpRange {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
        /// Block addresses outside the range instead.
        invert: bool,
    },
    /// User name.
    User(String),
}

impl BlockCondition {
    /// Parses `conditionValue` for the type; errors name the field.
    pub fn target(&self) -> Result<BlockTarget, ApimError> {
        let v = &self.condition_value;
        let text = |what: &str| -> Result<String, ApimError> {
            match v.as_str() {
                Some(s) if !s.trim().is_empty() && s.len() <= 500 => Ok(s.to_owned()),
                _ => Err(ApimError::validation(
                    "conditionValue",
                    format!("must be a non-empty {what}"),
                )),
            }
        };
        let ip_of = |field: &str, s: Option<&serde_json::Value>| -> Result<IpAddr, ApimError> {
            s.and_then(|x| x.as_str())
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| {
                    ApimError::validation(
                        format!("conditionValue.{field}"),
                        "must be an IP address",
                    )
                })
        };
        let invert = v.get("invert").and_then(|x| x.as_bool()).unwrap_or(false);
        Ok(match self.condition_type {
            BlockConditionType::Api => {
                let c = text("API context")?;
                super::validate::check_context("conditionValue", &c)?;
                BlockTarget::Api(c)
            }
            BlockConditionType::Application => {
                let a = text("'owner:applicationName'")?;
                if !a.contains(':') {
                    return Err(ApimError::validation(
                        "conditionValue",
                        "must be 'owner:applicationName'",
                    ));
                }
                BlockTarget::Application(a)
            }
            BlockConditionType::User => BlockTarget::User(text("user name")?),
            BlockConditionType::Ip => match v {
                serde_json::Value::String(s) => BlockTarget::Ip {
                    ip: s.parse().map_err(|_| {
                        ApimError::validation("conditionValue", "must be an IP address")
                    })?,
                    invert: false,
                },
                _ => BlockTarget::Ip {
                    ip: ip_of("fixedIp", v.get("fixedIp"))?,
                    invert,
                },
            },
            BlockConditionType::Iprange => {
                let start = ip_of("startingIp", v.get("startingIp"))?;
                let end = ip_of("endingIp", v.get("endingIp"))?;
                if start.is_ipv4() != end.is_ipv4() || start > end {
                    return Err(ApimError::validation(
                        "conditionValue",
                        "startingIp and endingIp must be of one family, start not after end",
                    ));
                }
                BlockTarget::IpRange { start, end, invert }
            }
        })
    }
}

impl BlockTarget {
    /// Whether a request with these attributes is blocked by this target.
    pub fn blocks(
        &self,
        api_context: &str,
        app: Option<&str>,
        user: Option<&str>,
        ip: Option<IpAddr>,
    ) -> bool {
        match self {
            BlockTarget::Api(c) => c == api_context,
            BlockTarget::Application(a) => app == Some(a.as_str()),
            BlockTarget::User(u) => user == Some(u.as_str()),
            BlockTarget::Ip {
                ip: blocked,
                invert,
            } => ip.is_some_and(|ip| (ip == *blocked) != *invert),
            BlockTarget::IpRange { start, end, invert } => ip.is_some_and(|ip| {
                let inside = ip.is_ipv4() == start.is_ipv4() && ip >= *start && ip <= *end;
                inside != *invert
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(t: BlockConditionType, v: serde_json::Value) -> BlockCondition {
        BlockCondition {
            condition_id: String::new(),
            condition_type: t,
            condition_value: v,
            condition_status: true,
        }
    }

    #[test]
    fn ranges_and_inversion_incl_ipv6() {
        let r = cond(
            BlockConditionType::Iprange,
            serde_json::json!({"startingIp": "2001:db8::1", "endingIp": "2001:db8::ff", "invert": false}),
        )
        .target()
        .unwrap();
        assert!(r.blocks("/x", None, None, Some("2001:db8::10".parse().unwrap())));
        assert!(!r.blocks("/x", None, None, Some("2001:db9::10".parse().unwrap())));
        assert!(!r.blocks("/x", None, None, Some("10.0.0.1".parse().unwrap())));
        let inv = cond(
            BlockConditionType::Ip,
            serde_json::json!({"fixedIp": "10.0.0.1", "invert": true}),
        )
        .target()
        .unwrap();
        assert!(!inv.blocks("/x", None, None, Some("10.0.0.1".parse().unwrap())));
        assert!(inv.blocks("/x", None, None, Some("10.0.0.2".parse().unwrap())));
    }

    #[test]
    fn bad_values() {
        assert!(cond(BlockConditionType::Ip, serde_json::json!("999.1.1.1"))
            .target()
            .is_err());
        assert!(cond(BlockConditionType::Api, serde_json::json!("/../x"))
            .target()
            .is_err());
        assert!(cond(
            BlockConditionType::Application,
            serde_json::json!("noowner")
        )
        .target()
        .is_err());
        assert!(cond(
            BlockConditionType::Iprange,
            serde_json::json!({"startingIp": "10.0.0.9", "endingIp": "10.0.0.1"})
        )
        .target()
        .is_err());
    }
}
