//! Advanced (API / resource) policies compiled for matching: condition groups on client IP or
//! IP range (IPv4 and IPv6), header, query parameter and JWT claim, each invertible; the first
//! group whose conditions all hold gives the limit, else the default limit applies.

use std::net::IpAddr;

use apim_core::model::{AdvancedPolicy, ConditionType, ThrottleCondition};
use apim_core::ApimError;
use http::{HeaderMap, HeaderName};

use crate::window::Quota;

/// What conditions look at.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Client IP.
    pub ip: Option<IpAddr>,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Raw query string.
    pub query: Option<&'a str>,
    /// JWT claims of the caller.
    pub claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    IpRange { start: IpAddr, end: IpAddr },
    Header { name: HeaderName, value: String },
    Query { name: String, value: String },
    Claim { name: String, value: String },
}

/// One compiled condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    test: Test,
    invert: bool,
}

/// A compiled advanced policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledAdvanced {
    /// Limit when no group matches (`None`: unlimited).
    pub default: Option<Quota>,
    /// Groups in order: conditions (ANDed) and their limit.
    pub groups: Vec<(Vec<Condition>, Option<Quota>)>,
}

impl CompiledAdvanced {
    /// Validates and compiles a policy; errors name the offending field.
    pub fn compile(p: &AdvancedPolicy) -> Result<Self, ApimError> {
        p.validate()?;
        let mut groups = Vec::with_capacity(p.conditional_groups.len());
        for (g, group) in p.conditional_groups.iter().enumerate() {
            let conds = group
                .conditions
                .iter()
                .enumerate()
                .map(|(c, cond)| {
                    Condition::compile(cond, &format!("conditionalGroups[{g}].conditions[{c}]"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            groups.push((conds, Quota::of(&group.limit)));
        }
        Ok(CompiledAdvanced {
            default: Quota::of(&p.default_limit),
            groups,
        })
    }

    /// The limit that applies: the first matching group's index and limit, else `None` and
    /// the default limit (a `None` limit is unlimited).
    pub fn select(&self, facts: &RequestFacts<'_>) -> (Option<usize>, Option<Quota>) {
        for (i, (conds, quota)) in self.groups.iter().enumerate() {
            if conds.iter().all(|c| c.holds(facts)) {
                return (Some(i), *quota);
            }
        }
        (None, self.default)
    }
}

impl Condition {
    /// Compiles one condition; `field` prefixes error field names.
    pub fn compile(c: &ThrottleCondition, field: &str) -> Result<Self, ApimError> {
        let missing = |what: &str| ApimError::validation(format!("{field}.{what}"), "is required");
        let ip = |what: &str, v: &Option<String>| -> Result<IpAddr, ApimError> {
            v.as_deref()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    ApimError::validation(
                        format!("{field}.ipCondition.{what}"),
                        "is not an IP address",
                    )
                })
        };
        let test = match c.condition_type {
            ConditionType::Ip => {
                let i = c
                    .ip_condition
                    .as_ref()
                    .ok_or_else(|| missing("ipCondition"))?;
                let (start, end) = match i.ip_condition_type.as_str() {
                    "IPSPECIFIC" => {
                        let a = ip("specificIP", &i.specific_ip)?;
                        (a, a)
                    }
                    "IPRANGE" => (
                        ip("startingIP", &i.starting_ip)?,
                        ip("endingIP", &i.ending_ip)?,
                    ),
                    _ => {
                        return Err(ApimError::validation(
                            format!("{field}.ipCondition.ipConditionType"),
                            "must be IPSPECIFIC or IPRANGE",
                        ))
                    }
                };
                if start.is_ipv4() != end.is_ipv4() || start > end {
                    return Err(ApimError::validation(
                        format!("{field}.ipCondition"),
                        "startingIP must not be after endingIP (same family)",
                    ));
                }
                Test::IpRange { start, end }
            }
            ConditionType::Header => {
                let h = c
                    .header_condition
                    .as_ref()
                    .ok_or_else(|| missing("headerCondition"))?;
                let name = HeaderName::from_bytes(h.header_name.as_bytes()).map_err(|_| {
                    ApimError::validation(
                        format!("{field}.headerCondition.headerName"),
                        "is not a valid header name",
                    )
                })?;
                Test::Header {
                    name,
                    value: h.header_value.clone(),
                }
            }
            ConditionType::QueryParameter => {
                let q = c
                    .query_parameter_condition
                    .as_ref()
                    .ok_or_else(|| missing("queryParameterCondition"))?;
                Test::Query {
                    name: q.parameter_name.clone(),
                    value: q.parameter_value.clone(),
                }
            }
            ConditionType::JwtClaims => {
                let j = c
                    .jwt_claims_condition
                    .as_ref()
                    .ok_or_else(|| missing("jwtClaimsCondition"))?;
                Test::Claim {
                    name: j.claim_url.clone(),
                    value: j.attribute.clone(),
                }
            }
        };
        Ok(Condition {
            test,
            invert: c.invert_condition,
        })
    }

    /// Whether the condition holds for a request (after inversion).
    pub fn holds(&self, f: &RequestFacts<'_>) -> bool {
        let hit = match &self.test {
            Test::IpRange { start, end } => {
                f.ip.map(canonical)
                    .is_some_and(|ip| ip.is_ipv4() == start.is_ipv4() && ip >= *start && ip <= *end)
            }
            Test::Header { name, value } => f
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.as_bytes() == value.as_bytes()),
            Test::Query { name, value } => f.query.is_some_and(|q| {
                q.split('&').any(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    decoded_eq(k, name) && decoded_eq(v, value)
                })
            }),
            Test::Claim { name, value } => {
                f.claims.and_then(|c| c.get(name)).is_some_and(|v| match v {
                    serde_json::Value::String(s) => s == value,
                    serde_json::Value::Array(a) => a.iter().any(|x| x.as_str() == Some(value)),
                    serde_json::Value::Null => false,
                    other => {
                        serde_json::from_str::<serde_json::Value>(value)
                            .ok()
                            .as_ref()
                            == Some(other)
                    }
                })
            }
        };
        hit != self.invert
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as dual-stack listeners report them) compare
/// as IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether a raw (percent-encoded, `+` for space) query component equals `expected`.
fn decoded_eq(raw: &str, expected: &str) -> bool {
    if !raw.contains(['%', '+']) {
        return raw == expected;
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    out == expected.as_bytes()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(groups: serde_json::Value) -> AdvancedPolicy {
        serde_json::from_value(serde_json::json!({
            "policyName": "p",
            "defaultLimit": {"type": "REQUESTCOUNTLIMIT", "requestCount": {"timeUnit": "min", "unitTime": 1, "requestCount": 100}},
            "conditionalGroups": groups,
        }))
        .unwrap()
    }

    fn limit(n: u64) -> serde_json::Value {
        serde_json::json!({"type": "REQUESTCOUNTLIMIT", "requestCount": {"timeUnit": "min", "unitTime": 1, "requestCount": n}})
    }

    #[test]
    fn first_matching_group_else_default() {
        let p = policy(serde_json::json!([
            {"conditions": [{"type": "IPCONDITION", "ipCondition": {"ipConditionType": "IPRANGE", "startingIP": "2001:db8::1", "endingIP": "2001:db8::ff"}}], "limit": limit(1)},
            {"conditions": [
                {"type": "HEADERCONDITION", "headerCondition": {"headerName": "X-Tier", "headerValue": "free"}},
                {"type": "QUERYPARAMETERCONDITION", "invertCondition": true, "queryParameterCondition": {"parameterName": "debug", "parameterValue": "yes please"}}
            ], "limit": limit(2)},
            {"conditions": [{"type": "JWTCLAIMSCONDITION", "jwtClaimsCondition": {"claimUrl": "role", "attribute": "intern"}}], "limit": limit(3)},
            {"conditions": [{"type": "IPCONDITION", "invertCondition": true, "ipCondition": {"ipConditionType": "IPSPECIFIC", "specificIP": "10.0.0.1"}}], "limit": limit(4)}
        ]));
        let c = CompiledAdvanced::compile(&p).unwrap();
        let empty = HeaderMap::new();
        let mut headers = HeaderMap::new();
        headers.insert("x-tier", "free".parse().unwrap());
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({"role": ["staff", "intern"]})).unwrap();
        let mut f = RequestFacts {
            ip: Some("2001:db8::10".parse().unwrap()),
            headers: &empty,
            query: None,
            claims: None,
        };
        let n = |s: (Option<usize>, Option<Quota>)| s.1.map(|q| q.limit);
        assert_eq!(n(c.select(&f)), Some(1));
        f.ip = Some("::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(
            c.select(&f),
            (
                None,
                Some(Quota::requests(100, std::time::Duration::from_secs(60)))
            )
        );
        f.ip = Some("10.0.0.2".parse().unwrap());
        assert_eq!(n(c.select(&f)), Some(4));
        f.ip = Some("10.0.0.1".parse().unwrap());
        f.claims = Some(&claims);
        assert_eq!(n(c.select(&f)), Some(3));
        f.headers = &headers;
        assert_eq!(n(c.select(&f)), Some(2));
        f.query = Some("a=1&debug=yes%20please");
        assert_eq!(n(c.select(&f)), Some(3), "inverted query condition fails");
        f.query = Some("debug=yes+please");
        assert_eq!(n(c.select(&f)), Some(3));
        f.query = Some("debug=no");
        assert_eq!(n(c.select(&f)), Some(2));
    }

    #[test]
    fn bad_conditions_name_the_field() {
        let p = policy(serde_json::json!([
            {"conditions": [{"type": "HEADERCONDITION"}], "limit": limit(1)}
        ]));
        match CompiledAdvanced::compile(&p) {
            Err(ApimError::Validation { field, .. }) => {
                assert!(
                    field.starts_with("conditionalGroups[0].conditions[0]"),
                    "{field}"
                )
            }
            o => panic!("{o:?}"),
        }
        assert!(!decoded_eq("%", "x"));
        assert!(decoded_eq("%4", "%4"));
        assert!(decoded_eq("%41", "A"));
    }
}
