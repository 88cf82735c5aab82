//! Request routing: `/{context}/{version}/{resource}`, the default version without the version
//! segment, and vhosts. Lookup is a few hash probes (one per path segment of the context, at most
//! the deepest context's depth), so its cost does not grow with the number of APIs.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use http::Method;

use super::{DeployedApi, RouteMatch};
use crate::lifecycle::LifecycleState;
use crate::ApimError;

/// A deployment as routing sees it: the API, and whether it serves hosts no vhost claims.
#[derive(Debug, Clone)]
struct Deployed {
    api: Arc<DeployedApi>,
    /// Deployed on its environment's default vhost: it also serves every host that no other
    /// vhost of this gateway's environments claims (`127.0.0.1:8280`, a load balancer's name).
    on_default_vhost: bool,
}

#[derive(Debug, Default, Clone)]
struct ContextEntry {
    /// version → deployments (one per vhost).
    versions: HashMap<String, Vec<Deployed>, RandomState>,
    /// Deployments of the default version (one per vhost).
    default: Vec<Deployed>,
}

/// The vhosts of this gateway's environments (from the control plane's snapshot): each
/// environment's first vhost is its default one; the others are claimed by their names.
#[derive(Debug, Default, Clone)]
pub struct VhostRules {
    /// Environment name → its default vhost.
    defaults: Vec<(String, String)>,
    /// Hosts named by a vhost that is not its environment's default.
    claimed: Vec<String>,
}

impl VhostRules {
    /// The rules for the `environments` a gateway serving `labels` belongs to.
    pub fn new(environments: &[crate::model::Environment], labels: &[String]) -> Self {
        let mut r = VhostRules::default();
        for env in environments.iter().filter(|e| labels.contains(&e.name)) {
            let mut hosts = env.vhosts.iter().map(|v| v.host.to_ascii_lowercase());
            if let Some(default) = hosts.next() {
                r.defaults.push((env.name.clone(), default));
            }
            r.claimed.extend(hosts);
        }
        let defaults: Vec<String> = r.defaults.iter().map(|(_, h)| h.clone()).collect();
        r.claimed.retain(|h| !defaults.contains(h));
        r
    }

    fn on_default_vhost(&self, d: &DeployedApi) -> bool {
        let Some(vhost) = &d.vhost else {
            return false;
        };
        self.defaults
            .iter()
            .any(|(env, host)| d.labels.contains(env) && host.eq_ignore_ascii_case(vhost))
    }

    fn claims(&self, host: &str) -> bool {
        self.claimed.iter().any(|c| c.eq_ignore_ascii_case(host))
    }
}

/// Routing table over deployed APIs. Immutable once built. Its maps hash with foldhash
/// (seeded per map): their keys are the operator's contexts and versions, so a request can
/// only probe them, and SipHash cost two of the gateway's hottest hash computations.
#[derive(Debug, Default, Clone)]
pub struct ApiRouter {
    by_context: HashMap<String, ContextEntry, RandomState>,
    max_depth: usize,
    vhosts: VhostRules,
}

impl ApiRouter {
    /// Builds the table, without vhost rules: a deployment on a vhost serves that host only.
    pub fn build<'a>(apis: impl IntoIterator<Item = &'a Arc<DeployedApi>>) -> Self {
        Self::build_with_vhosts(apis, VhostRules::default())
    }

    /// Builds the table. A request goes to the deployment on its host's vhost, else to one
    /// without a vhost, else — when no vhost of this gateway's environments claims its host —
    /// to one on its environment's default vhost.
    pub fn build_with_vhosts<'a>(
        apis: impl IntoIterator<Item = &'a Arc<DeployedApi>>,
        vhosts: VhostRules,
    ) -> Self {
        let mut r = ApiRouter::default();
        for d in apis {
            let ctx = d.api.context.clone();
            r.max_depth = r.max_depth.max(ctx.matches('/').count());
            let deployed = Deployed {
                api: d.clone(),
                on_default_vhost: vhosts.on_default_vhost(d),
            };
            let e = r.by_context.entry(ctx).or_default();
            e.versions
                .entry(d.api.version.clone())
                .or_default()
                .push(deployed.clone());
            if d.api.is_default_version {
                e.default.push(deployed);
            }
        }
        r.vhosts = vhosts;
        r
    }

    /// Number of contexts.
    pub fn len(&self) -> usize {
        self.by_context.len()
    }

    /// Whether no API is routable.
    pub fn is_empty(&self) -> bool {
        self.by_context.is_empty()
    }

    /// Routes `method host path` (path without query).
    pub fn resolve(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> Result<RouteMatch, ApimError> {
        let not_found =
            || ApimError::NoMatchingResource(format!("no API or resource matches {method} {path}"));
        if !path.starts_with('/') {
            return Err(not_found());
        }
        let host = host.map(strip_port);
        // candidate context ends: positions of '/' after the first, and the end; longest first
        let mut ends: [usize; 16] = [0; 16];
        let mut n = 0;
        for (i, b) in path.bytes().enumerate().skip(1) {
            if b == b'/' {
                if n == ends.len() || n >= self.max_depth {
                    break;
                }
                ends[n] = i;
                n += 1;
            }
        }
        if n < ends.len() && n < self.max_depth {
            ends[n] = path.len();
            n += 1;
        }
        for &end in ends[..n].iter().rev() {
            let Some(entry) = self.by_context.get(&path[..end]) else {
                continue;
            };
            let rest = &path[end..];
            // explicit version segment
            let (ver, after) = match rest.strip_prefix('/') {
                Some(r) => match r.find('/') {
                    Some(i) => (&r[..i], end + 1 + i),
                    None => (r, path.len()),
                },
                None => ("", end),
            };
            if let Some(deps) = entry.versions.get(ver) {
                if let Some(m) = self.pick(deps, host, method, &path[after..], after)? {
                    return Ok(m);
                }
            }
            if let Some(m) = self.pick(&entry.default, host, method, rest, end)? {
                return Ok(m);
            }
        }
        Err(not_found())
    }
}

fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h.split_once(']').map_or(h, |(a, _)| &a[1..]);
    }
    h.rsplit_once(':').map_or(h, |(a, _)| a)
}

impl ApiRouter {
    fn pick(
        &self,
        deps: &[Deployed],
        host: Option<&str>,
        method: &Method,
        resource: &str,
        resource_start: usize,
    ) -> Result<Option<RouteMatch>, ApimError> {
        let on_host = |d: &&Deployed| matches!((&d.api.vhost, host), (Some(v), Some(h)) if v.eq_ignore_ascii_case(h));
        let dep = deps
            .iter()
            .find(on_host)
            .or_else(|| deps.iter().find(|d| d.api.vhost.is_none()))
            .or_else(|| {
                // the default vhost's deployment, for a host no vhost claims
                let unclaimed = host.is_none_or(|h| !self.vhosts.claims(h));
                deps.iter().find(|d| d.on_default_vhost && unclaimed)
            });
        pick_in(dep.map(|d| &d.api), method, resource, resource_start)
    }
}

fn pick_in(
    dep: Option<&Arc<DeployedApi>>,
    method: &Method,
    resource: &str,
    resource_start: usize,
) -> Result<Option<RouteMatch>, ApimError> {
    let Some(dep) = dep else { return Ok(None) };
    match dep.api.life_cycle_status {
        LifecycleState::Blocked => {
            return Err(ApimError::ApiBlocked(format!(
                "API {}:{} is blocked",
                dep.api.context, dep.api.version
            )))
        }
        LifecycleState::Retired => return Ok(None),
        _ => {}
    }
    Ok(dep
        .find_operation(method, resource)
        .map(|operation| RouteMatch {
            api: dep.clone(),
            operation,
            resource_start,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Api;

    pub(crate) fn api(context: &str, version: &str, default: bool, ops: &[(&str, &str)]) -> Api {
        let ops: Vec<_> = ops
            .iter()
            .map(|(v, t)| serde_json::json!({"verb": v, "target": t}))
            .collect();
        let mut a: Api = serde_json::from_value(serde_json::json!({
            "name": format!("api{context}"), "context": context, "version": version,
            "isDefaultVersion": default,
            "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:1"}},
            "operations": ops
        }))
        .unwrap();
        a.id = format!("{context}-{version}");
        a.life_cycle_status = LifecycleState::Published;
        a
    }

    #[test]
    fn default_vhost_serves_unclaimed_hosts() {
        use crate::model::{Environment, Vhost};
        let vhost = |h: &str| Vhost {
            host: h.into(),
            http_port: 8280,
            https_port: 8243,
        };
        let envs = vec![Environment {
            id: String::new(),
            name: "Default".into(),
            display_name: None,
            description: None,
            vhosts: vec![vhost("localhost"), vhost("api.example.com")],
        }];
        let apis = vec![
            dep(api("/d", "1", false, &[("GET", "/x")]), Some("localhost")),
            dep(
                api("/n", "1", false, &[("GET", "/x")]),
                Some("api.example.com"),
            ),
        ];
        let r =
            ApiRouter::build_with_vhosts(&apis, VhostRules::new(&envs, &["Default".to_owned()]));
        let ok = |host: Option<&str>, path: &str| r.resolve(&Method::GET, host, path).is_ok();
        // the default vhost's API: its own host, any unclaimed host, no host
        for host in [
            Some("localhost:8280"),
            Some("127.0.0.1:8280"),
            Some("lb.example.org"),
            Some("[::1]:8280"),
            None,
        ] {
            assert!(ok(host, "/d/1/x"), "{host:?}");
        }
        // ... but not a host another vhost of the environment claims
        assert!(!ok(Some("api.example.com"), "/d/1/x"));
        // a named vhost's API keeps its host
        assert!(ok(Some("API.example.com:8243"), "/n/1/x"));
        for host in [Some("localhost"), Some("127.0.0.1:8280"), None] {
            assert!(!ok(host, "/n/1/x"), "{host:?}");
        }
        // without the environments (an older control plane): exact hosts only, as before
        let r = ApiRouter::build(&apis);
        assert!(r
            .resolve(&Method::GET, Some("127.0.0.1:8280"), "/d/1/x")
            .is_err());
        assert!(r.resolve(&Method::GET, Some("localhost"), "/d/1/x").is_ok());
    }

    fn dep(a: Api, vhost: Option<&str>) -> Arc<DeployedApi> {
        Arc::new(DeployedApi::new(
            a,
            "r1".into(),
            vhost.map(Into::into),
            vec!["Default".into()],
        ))
    }

    #[test]
    fn routes_context_version_resource() {
        let apis = vec![
            dep(
                api(
                    "/pizza",
                    "1.0.0",
                    true,
                    &[("GET", "/menu"), ("GET", "/order/{id}"), ("POST", "/order")],
                ),
                None,
            ),
            dep(api("/pizza", "2.0.0", false, &[("GET", "/*")]), None),
            dep(api("/a/b", "v1", false, &[("GET", "/x")]), None),
        ];
        let r = ApiRouter::build(&apis);
        let get = Method::GET;
        let m = r.resolve(&get, None, "/pizza/1.0.0/order/7").unwrap();
        assert_eq!(
            (m.operation().target.as_str(), m.resource_start),
            ("/order/{id}", 12)
        );
        let m = r.resolve(&get, None, "/pizza/menu").unwrap();
        assert_eq!((m.api.api.version.as_str(), m.resource_start), ("1.0.0", 6));
        assert_eq!(
            r.resolve(&get, None, "/pizza/2.0.0/anything/here")
                .unwrap()
                .api
                .api
                .version,
            "2.0.0"
        );
        assert_eq!(
            r.resolve(&get, None, "/a/b/v1/x").unwrap().api.api.context,
            "/a/b"
        );
        for miss in [
            "/pizza/3.0.0/menu",
            "/nope/1/x",
            "/pizza/1.0.0/order",
            "",
            "pizza/1.0.0/menu",
            "/a/b/v1/y",
        ] {
            let e = r.resolve(&get, None, miss).unwrap_err();
            assert_eq!(e.code(), 900906, "{miss}");
        }
        assert!(r
            .resolve(&Method::DELETE, None, "/pizza/1.0.0/menu")
            .is_err());
        assert!(r.resolve(&Method::POST, None, "/pizza/1.0.0/order").is_ok());
    }

    #[test]
    fn blocked_and_vhosts() {
        let mut blocked = api("/b", "1", false, &[("GET", "/*")]);
        blocked.life_cycle_status = LifecycleState::Blocked;
        let apis = vec![
            dep(blocked, None),
            dep(
                api("/v", "1", false, &[("GET", "/one")]),
                Some("one.example.com"),
            ),
            dep(api("/v", "1", false, &[("GET", "/any")]), None),
        ];
        let r = ApiRouter::build(&apis);
        assert_eq!(
            r.resolve(&Method::GET, None, "/b/1/x").unwrap_err().code(),
            700700
        );
        assert!(r
            .resolve(&Method::GET, Some("one.example.com:8280"), "/v/1/one")
            .is_ok());
        assert!(r
            .resolve(&Method::GET, Some("other.example.com"), "/v/1/one")
            .is_err());
        assert!(r
            .resolve(&Method::GET, Some("other.example.com"), "/v/1/any")
            .is_ok());
    }
}
