//! URI-template parsing and matching, request-path hygiene, routing and hop-by-hop header
//! handling on arbitrary input: nothing panics, and the invariants below hold.
//!
//! Run with: `cargo fuzz run uri_template` (from `fuzz/`).
#![no_main]

use std::sync::{Arc, OnceLock};

use apim_core::artifacts::{ApiRouter, DeployedApi};
use apim_core::uri_template::UriTemplate;
use apim_gateway::hygiene::{check_host, check_path};
use apim_gateway::proxy::headers::strip_hop_by_hop;
use libfuzzer_sys::fuzz_target;

fn router() -> &'static ApiRouter {
    static R: OnceLock<ApiRouter> = OnceLock::new();
    R.get_or_init(|| {
        let mut api: apim_core::model::Api = serde_json::from_value(serde_json::json!({
            "name": "f", "context": "/shop/v", "version": "1.0", "isDefaultVersion": true,
            "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://127.0.0.1:1"}},
            "operations": [
                {"verb": "GET", "target": "/items/{id}"},
                {"verb": "GET", "target": "/files/*"},
                {"verb": "POST", "target": "/items"}
            ]
        }))
        .expect("valid API");
        api.id = "f".into();
        api.life_cycle_status = apim_core::lifecycle::LifecycleState::Published;
        let d = Arc::new(DeployedApi::new(api, "r".into(), None, vec!["Default".into()]));
        ApiRouter::build([&d])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        let _ = check_host(data);
        return;
    };
    let (template, path) = s.split_once('\n').unwrap_or((s, s));

    if let Ok(t) = UriTemplate::parse(template) {
        let _ = t.matches(path);
        // a template without parameters or wildcards matches its own text
        if !template.contains(['{', '*']) && !template.ends_with('/') {
            assert!(t.matches(template), "{template:?} does not match itself");
        }
    }

    if check_path(path).is_ok() {
        assert!(!path.split('/').any(|seg| seg == ".." || seg == "."), "{path:?}");
        assert!(!path.to_ascii_lowercase().contains("%2e"), "{path:?}");
        assert!(!path.to_ascii_lowercase().contains("%2f"), "{path:?}");
    }
    let _ = check_host(template.as_bytes());

    if let Ok(m) = router().resolve(&http::Method::GET, Some(template), path) {
        assert!(m.resource_start <= path.len());
        assert!(path.is_char_boundary(m.resource_start));
    }

    // header handling: whatever the client puts into Connection, hop-by-hop headers go
    let mut h = http::HeaderMap::new();
    for line in template.split(';') {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            ) {
                h.append(k, v);
            }
        }
    }
    strip_hop_by_hop(&mut h, false);
    for gone in ["connection", "keep-alive", "te", "transfer-encoding", "upgrade", "trailer"] {
        assert!(!h.contains_key(gone), "{gone} kept");
    }
});
