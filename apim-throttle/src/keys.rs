//! Throttle keys (DESIGN §5): API `context:version`, resource `context/version/resource:METHOD`,
//! subscription `appId:context:version`, application `appId:user`, and custom key templates.
//!
//! Each key has a `write_*` form that appends it to a buffer: the deciders build every key of a
//! request into one per-thread buffer instead of allocating a string per key.

use std::fmt::Write as _;
use std::net::IpAddr;

use apim_core::auth::AuthContext;
use apim_core::model::{Api, Operation};

/// `context:version`.
pub fn api(api: &Api) -> String {
    let mut k = String::with_capacity(api.context.len() + api.version.len() + 1);
    write_api(&mut k, api);
    k
}

/// Appends `context:version`.
pub fn write_api(k: &mut String, api: &Api) {
    k.push_str(&api.context);
    k.push(':');
    k.push_str(&api.version);
}

/// `context/version/resource:METHOD`.
pub fn resource(api: &Api, op: &Operation) -> String {
    let mut k = String::with_capacity(api.context.len() + api.version.len() + op.target.len() + 10);
    write_resource(&mut k, api, op);
    k
}

/// Appends `context/version/resource:METHOD`.
pub fn write_resource(k: &mut String, api: &Api, op: &Operation) {
    k.push_str(&api.context);
    k.push('/');
    k.push_str(&api.version);
    if !op.target.starts_with('/') {
        k.push('/');
    }
    k.push_str(&op.target);
    k.push(':');
    k.push_str(&op.verb);
}

/// `appId:context:version`. Anonymous callers (no application) are keyed by client IP, so
/// one client cannot use up the `Unauthenticated` tier of everybody.
pub fn subscription(auth: &AuthContext, client_ip: Option<IpAddr>, api: &Api) -> String {
    let mut k = String::with_capacity(64);
    write_subscription(&mut k, auth, client_ip, api);
    k
}

/// Appends `appId:context:version` (the client IP for anonymous callers).
pub fn write_subscription(
    k: &mut String,
    auth: &AuthContext,
    client_ip: Option<IpAddr>,
    api: &Api,
) {
    if auth.application_id.is_empty() {
        if let Some(ip) = client_ip {
            let _ = write!(k, "{ip}");
        }
    } else {
        k.push_str(&auth.application_id);
    }
    k.push(':');
    write_api(k, api);
}

/// `appId:user`.
pub fn application(auth: &AuthContext) -> String {
    let mut k = String::with_capacity(auth.application_id.len() + auth.end_user.len() + 1);
    write_application(&mut k, auth);
    k
}

/// Appends `appId:user`.
pub fn write_application(k: &mut String, auth: &AuthContext) {
    k.push_str(&auth.application_id);
    k.push(':');
    k.push_str(&auth.end_user);
}

/// `policyName|<template expanded>`; variables: `$userId`, `$apiContext`, `$apiVersion`,
/// `$appId`, `$clientIp`. Unknown `$words` stay as written (policies are validated on input).
pub fn custom(
    policy: &str,
    template: &str,
    auth: &AuthContext,
    api: Option<&Api>,
    client_ip: Option<IpAddr>,
) -> String {
    let mut out = String::with_capacity(policy.len() + template.len() + 32);
    write_custom(&mut out, policy, template, auth, api, client_ip);
    out
}

/// Appends `policyName|<template expanded>`.
pub fn write_custom(
    out: &mut String,
    policy: &str,
    template: &str,
    auth: &AuthContext,
    api: Option<&Api>,
    client_ip: Option<IpAddr>,
) {
    out.push_str(policy);
    out.push('|');
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(rest.len(), |e| e + 1);
        match &rest[..end] {
            "$userId" => out.push_str(&auth.end_user),
            "$apiContext" => out.push_str(api.map_or("", |a| a.context.as_str())),
            "$apiVersion" => out.push_str(api.map_or("", |a| a.version.as_str())),
            "$appId" => out.push_str(&auth.application_id),
            "$clientIp" => {
                if let Some(ip) = client_ip {
                    let _ = write!(out, "{ip}");
                }
            }
            other => out.push_str(other),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_templates_expand() {
        let auth = AuthContext::for_application("app-1", "alice");
        let k = custom(
            "perUser",
            "$userId:$appId@$clientIp/$apiContext:$apiVersion$x",
            &auth,
            None,
            Some("10.1.2.3".parse().unwrap()),
        );
        assert_eq!(k, "perUser|alice:app-1@10.1.2.3/:$x");
        assert_eq!(custom("p", "$", &auth, None, None), "p|$");
        assert_eq!(application(&auth), "app-1:alice");
    }
}
