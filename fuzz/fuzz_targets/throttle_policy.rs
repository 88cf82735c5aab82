//! Fuzzes advanced-policy parsing, compilation and condition evaluation: the input's first
//! line is a request (`ip|query|header-value|claim-value`), the rest a policy's JSON. Nothing
//! may panic; a policy that compiles always selects a limit, and that limit is one of its own.
#![no_main]

use apim_core::model::AdvancedPolicy;
use apim_throttle::{CompiledAdvanced, Quota, RequestFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (head, json) = text.split_once('\n').unwrap_or(("", text));
    let Ok(policy) = serde_json::from_str::<AdvancedPolicy>(json) else { return };
    let Ok(compiled) = CompiledAdvanced::compile(&policy) else { return };
    let mut parts = head.split('|');
    let ip = parts.next().and_then(|s| s.parse().ok());
    let query = parts.next();
    let mut headers = http::HeaderMap::new();
    if let Some(v) = parts.next().and_then(|v| http::HeaderValue::from_str(v).ok()) {
        for g in &policy.conditional_groups {
            for c in &g.conditions {
                if let Some(h) = &c.header_condition {
                    if let Ok(name) = http::HeaderName::from_bytes(h.header_name.as_bytes()) {
                        headers.insert(name, v.clone());
                    }
                }
            }
        }
    }
    let mut claims = serde_json::Map::new();
    if let Some(v) = parts.next() {
        for g in &policy.conditional_groups {
            for c in &g.conditions {
                if let Some(j) = &c.jwt_claims_condition {
                    claims.insert(j.claim_url.clone(), serde_json::Value::String(v.to_owned()));
                }
            }
        }
    }
    let facts = RequestFacts { ip, headers: &headers, query, claims: Some(&claims) };
    let (group, quota) = compiled.select(&facts);
    let expected = match group {
        Some(i) => Quota::of(&policy.conditional_groups[i].limit),
        None => Quota::of(&policy.default_limit),
    };
    assert_eq!(quota, expected);
    if let Some(q) = quota {
        assert!(q.window > 0);
        let _ = q.until_window_end(u64::MAX);
    }
});
