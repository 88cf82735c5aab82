//! Prometheus metrics, exposed in the text format (hand-written over atomics; no registry
//! crate is needed for a handful of series).
//!
//! | series | labels |
//! |---|---|
//! | `apim_gateway_requests_total` | `api` (`context:version`, or `_unmatched`), `status` |
//! | `apim_gateway_request_duration_seconds` | histogram over all requests |
//! | `apim_gateway_throttled_total` | — |
//! | `apim_gateway_upstream_errors_total` | `kind` (`connect`, `timeout`, `connect_timeout`) |
//! | `apim_gateway_http1_handovers_total` | connections the native HTTP/1.1 server handed to hyper |
//! | `apim_gateway_connections` / `apim_gateway_artifact_seq` / `apim_gateway_apis` | gauges |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Kinds of upstream failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Connection refused or dropped (101503).
    Connect,
    /// No response in time (101504).
    Timeout,
    /// Connect timed out (101508).
    ConnectTimeout,
}

#[derive(Debug)]
struct ApiCounters {
    label: String,
    by_status: RwLock<Vec<(u16, AtomicU64)>>,
}

/// The gateway's counters. Cheap to update: a read lock and a short scan on the common path.
#[derive(Debug)]
pub struct Metrics {
    /// foldhash: keys are deployed API ids, not request data
    by_api: RwLock<HashMap<String, ApiCounters, foldhash::fast::RandomState>>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    throttled: AtomicU64,
    upstream: [AtomicU64; 3],
    connections: AtomicI64,
    handovers: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        Metrics {
            by_api: RwLock::new(HashMap::default()),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_count: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            upstream: std::array::from_fn(|_| AtomicU64::new(0)),
            connections: AtomicI64::new(0),
            handovers: AtomicU64::new(0),
        }
    }

    /// Counts a finished request. `api` is `(api id, context, version)` when it was routed.
    pub fn request(&self, api: Option<(&str, &str, &str)>, status: u16, latency: Duration) {
        let (id, ctx, ver) = api.unwrap_or(("", "_unmatched", ""));
        if !self.bump(id, status) {
            let mut w = self.by_api.write().unwrap_or_else(|p| p.into_inner());
            let e = w.entry(id.to_owned()).or_insert_with(|| ApiCounters {
                label: if ver.is_empty() {
                    ctx.to_owned()
                } else {
                    format!("{ctx}:{ver}")
                },
                by_status: RwLock::new(Vec::new()),
            });
            let mut v = e.by_status.write().unwrap_or_else(|p| p.into_inner());
            match v.iter().find(|(s, _)| *s == status) {
                Some((_, c)) => drop(c.fetch_add(1, Ordering::Relaxed)),
                None => v.push((status, AtomicU64::new(1))),
            }
        }
        if status == 429 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        let secs = latency.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    fn bump(&self, id: &str, status: u16) -> bool {
        let r = self.by_api.read().unwrap_or_else(|p| p.into_inner());
        let Some(e) = r.get(id) else { return false };
        let v = e.by_status.read().unwrap_or_else(|p| p.into_inner());
        match v.iter().find(|(s, _)| *s == status) {
            Some((_, c)) => {
                c.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self, kind: UpstreamError) {
        self.upstream[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Tracks open connections (+1 / -1).
    pub fn connection(&self, delta: i64) {
        self.connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a connection the native HTTP/1.1 server handed to hyper (a request with a
    /// body, an upgrade, HTTP/1.0 or HTTP/2, a malformed or oversize head).
    pub fn handover(&self) {
        self.handovers.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections handed to hyper so far.
    pub fn handovers(&self) -> u64 {
        self.handovers.load(Ordering::Relaxed)
    }

    /// Requests counted for an API label (`context:version`) and status (for tests and checks).
    pub fn requests(&self, label: &str, status: u16) -> u64 {
        let r = self.by_api.read().unwrap_or_else(|p| p.into_inner());
        r.values()
            .filter(|e| e.label == label)
            .flat_map(|e| {
                let v = e.by_status.read().unwrap_or_else(|p| p.into_inner());
                v.iter()
                    .filter(|(s, _)| *s == status)
                    .map(|(_, c)| c.load(Ordering::Relaxed))
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// The Prometheus text exposition. `seq` and `apis` are the artifact gauges.
    pub fn render(&self, seq: u64, apis: usize) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP apim_gateway_requests_total Requests by API and status.\n# TYPE apim_gateway_requests_total counter\n");
        {
            let r = self.by_api.read().unwrap_or_else(|p| p.into_inner());
            let mut rows: Vec<(String, u16, u64)> = Vec::new();
            for e in r.values() {
                let v = e.by_status.read().unwrap_or_else(|p| p.into_inner());
                for (s, c) in v.iter() {
                    rows.push((e.label.clone(), *s, c.load(Ordering::Relaxed)));
                }
            }
            rows.sort();
            for (label, s, c) in rows {
                let _ = writeln!(
                    out,
                    "apim_gateway_requests_total{{api=\"{}\",status=\"{s}\"}} {c}",
                    escape(&label)
                );
            }
        }
        out.push_str("# HELP apim_gateway_request_duration_seconds Time to the response head.\n# TYPE apim_gateway_request_duration_seconds histogram\n");
        let mut cum = 0;
        for (b, c) in BUCKETS.iter().zip(&self.buckets) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "apim_gateway_request_duration_seconds_bucket{{le=\"{b}\"}} {cum}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "apim_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\napim_gateway_request_duration_seconds_sum {}\napim_gateway_request_duration_seconds_count {count}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP apim_gateway_throttled_total Requests answered 429.\n# TYPE apim_gateway_throttled_total counter\napim_gateway_throttled_total {}",
            self.throttled.load(Ordering::Relaxed)
        );
        out.push_str("# HELP apim_gateway_upstream_errors_total Backend failures.\n# TYPE apim_gateway_upstream_errors_total counter\n");
        for (name, c) in ["connect", "timeout", "connect_timeout"]
            .iter()
            .zip(&self.upstream)
        {
            let _ = writeln!(
                out,
                "apim_gateway_upstream_errors_total{{kind=\"{name}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP apim_gateway_http1_handovers_total Connections the native HTTP/1.1 server handed to hyper.\n# TYPE apim_gateway_http1_handovers_total counter\napim_gateway_http1_handovers_total {}",
            self.handovers.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP apim_gateway_connections Open client connections.\n# TYPE apim_gateway_connections gauge\napim_gateway_connections {}\n# HELP apim_gateway_artifact_seq Last applied event sequence.\n# TYPE apim_gateway_artifact_seq gauge\napim_gateway_artifact_seq {seq}\n# HELP apim_gateway_apis Deployed APIs.\n# TYPE apim_gateway_apis gauge\napim_gateway_apis {apis}",
            self.connections.load(Ordering::Relaxed)
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_counts_by_api_and_status() {
        let m = Metrics::new();
        let api = Some(("id1", "/pizza", "1.0.0"));
        m.request(api, 200, Duration::from_micros(300));
        m.request(api, 200, Duration::from_millis(3));
        m.request(api, 429, Duration::from_micros(10));
        m.request(None, 404, Duration::from_micros(10));
        m.upstream_error(UpstreamError::Timeout);
        m.handover();
        assert_eq!(m.requests("/pizza:1.0.0", 200), 2);
        let text = m.render(7, 1);
        assert!(text.contains("apim_gateway_requests_total{api=\"/pizza:1.0.0\",status=\"200\"} 2"));
        assert!(text.contains("apim_gateway_requests_total{api=\"_unmatched\",status=\"404\"} 1"));
        assert!(text.contains("apim_gateway_throttled_total 1"));
        assert!(text.contains("apim_gateway_upstream_errors_total{kind=\"timeout\"} 1"));
        assert!(text.contains("apim_gateway_request_duration_seconds_bucket{le=\"0.0005\"} 3"));
        assert!(text.contains("apim_gateway_request_duration_seconds_count 4"));
        assert!(text.contains("apim_gateway_artifact_seq 7"));
        assert!(text.contains("apim_gateway_http1_handovers_total 1\n"));
    }
}
