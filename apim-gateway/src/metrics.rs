//! Prometheus metrics, exposed in the text format (hand-written; no registry crate is needed
//! for a handful of series). Request counters are kept per thread and summed when rendered.
//!
//! | series | labels |
//! |---|---|
//! | `apim_gateway_requests_total` | `api` (`context:version`, or `_unmatched`), `status` |
//! | `apim_gateway_request_duration_seconds` | histogram over all requests |
//! | `apim_gateway_throttled_total` | — |
//! | `apim_gateway_upstream_errors_total` | `kind` (`connect`, `timeout`, `connect_timeout`) |
//! | `apim_gateway_http1_handovers_total` | connections the native HTTP/1.1 server handed to hyper |
//! | `apim_gateway_connections` / `apim_gateway_artifact_seq` / `apim_gateway_apis` | gauges |

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Request counters are kept in this many shards, one per thread (threads beyond it share).
const SHARDS: usize = 16;

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

#[derive(Debug, Default)]
struct ApiCounters {
    label: String,
    by_status: Vec<(u16, u64)>,
}

/// One thread's request counters. Each shard has its own cache lines and its own lock, taken
/// by one thread per request and by `/metrics` when it renders: counting a request writes no
/// memory another worker thread writes (shared counters made every request move their cache
/// lines between the cores).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// foldhash: keys are deployed API ids, not request data
    by_api: HashMap<String, ApiCounters, foldhash::fast::RandomState>,
    buckets: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum_us: u64,
    throttled: u64,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// This thread's shard.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        i.get()
    })
}

/// The gateway's counters. Counting a request takes its thread's shard (an uncontended lock)
/// and touches no line other threads write; rendering sums the shards.
#[derive(Debug)]
pub struct Metrics {
    shards: Box<[Shard]>,
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
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            upstream: std::array::from_fn(|_| AtomicU64::new(0)),
            connections: AtomicI64::new(0),
            handovers: AtomicU64::new(0),
        }
    }

    /// Counts a finished request. `api` is `(api id, context, version)` when it was routed.
    pub fn request(&self, api: Option<(&str, &str, &str)>, status: u16, latency: Duration) {
        let (id, ctx, ver) = api.unwrap_or(("", "_unmatched", ""));
        let mut guard = self.shards[shard_index()].lock();
        let c = &mut *guard;
        let bump = |a: &mut ApiCounters| match a.by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => a.by_status.push((status, 1)),
        };
        if let Some(a) = c.by_api.get_mut(id) {
            bump(a);
        } else {
            let mut a = ApiCounters {
                label: if ver.is_empty() {
                    ctx.to_owned()
                } else {
                    format!("{ctx}:{ver}")
                },
                by_status: Vec::new(),
            };
            bump(&mut a);
            c.by_api.insert(id.to_owned(), a);
        }
        if status == 429 {
            c.throttled += 1;
        }
        let secs = latency.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            c.buckets[i] += 1;
        }
        c.latency_count += 1;
        c.latency_sum_us += latency.as_micros() as u64;
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
        self.shards
            .iter()
            .map(|sh| {
                sh.lock()
                    .by_api
                    .values()
                    .filter(|e| e.label == label)
                    .flat_map(|e| e.by_status.iter().filter(|(s, _)| *s == status))
                    .map(|(_, n)| n)
                    .sum::<u64>()
            })
            .sum()
    }

    /// The shards' counts summed: the requests by (label, status), sorted, and the latency
    /// and throttled counts (`by_api` left empty).
    fn totals(&self) -> (Vec<(String, u16, u64)>, Counts) {
        let mut rows: HashMap<(String, u16), u64> = HashMap::new();
        let mut sum = Counts::default();
        for sh in self.shards.iter() {
            let c = sh.lock();
            for e in c.by_api.values() {
                for (s, n) in &e.by_status {
                    *rows.entry((e.label.clone(), *s)).or_default() += n;
                }
            }
            for (t, b) in sum.buckets.iter_mut().zip(&c.buckets) {
                *t += b;
            }
            sum.latency_count += c.latency_count;
            sum.latency_sum_us += c.latency_sum_us;
            sum.throttled += c.throttled;
        }
        let mut rows: Vec<_> = rows.into_iter().map(|((l, s), n)| (l, s, n)).collect();
        rows.sort();
        (rows, sum)
    }

    /// The Prometheus text exposition. `seq` and `apis` are the artifact gauges.
    pub fn render(&self, seq: u64, apis: usize) -> String {
        let mut out = String::with_capacity(2048);
        let (rows, sum) = self.totals();
        let Counts {
            buckets,
            latency_count: count,
            latency_sum_us: sum_us,
            throttled,
            ..
        } = sum;
        out.push_str("# HELP apim_gateway_requests_total Requests by API and status.\n# TYPE apim_gateway_requests_total counter\n");
        for (label, s, c) in rows {
            let _ = writeln!(
                out,
                "apim_gateway_requests_total{{api=\"{}\",status=\"{s}\"}} {c}",
                escape(&label)
            );
        }
        out.push_str("# HELP apim_gateway_request_duration_seconds Time to the response head.\n# TYPE apim_gateway_request_duration_seconds histogram\n");
        let mut cum = 0;
        for (b, c) in BUCKETS.iter().zip(&buckets) {
            cum += c;
            let _ = writeln!(
                out,
                "apim_gateway_request_duration_seconds_bucket{{le=\"{b}\"}} {cum}"
            );
        }
        let _ = writeln!(
            out,
            "apim_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\napim_gateway_request_duration_seconds_sum {}\napim_gateway_request_duration_seconds_count {count}",
            sum_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP apim_gateway_throttled_total Requests answered 429.\n# TYPE apim_gateway_throttled_total counter\napim_gateway_throttled_total {throttled}"
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

    #[test]
    fn counts_from_many_threads_add_up() {
        let m = std::sync::Arc::new(Metrics::new());
        let threads: Vec<_> = (0..SHARDS + 4)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..100u64 {
                        let status = if i % 10 == 0 { 429 } else { 200 };
                        m.request(
                            Some(("id1", "/pizza", "1.0.0")),
                            status,
                            Duration::from_micros(t as u64),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = (SHARDS as u64 + 4) * 100;
        assert_eq!(m.requests("/pizza:1.0.0", 200), n * 9 / 10);
        assert_eq!(m.requests("/pizza:1.0.0", 429), n / 10);
        let text = m.render(0, 1);
        assert!(
            text.contains(&format!(
                "apim_gateway_requests_total{{api=\"/pizza:1.0.0\",status=\"200\"}} {}\n",
                n * 9 / 10
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("apim_gateway_throttled_total {}\n", n / 10)),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "apim_gateway_request_duration_seconds_count {n}\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "apim_gateway_request_duration_seconds_bucket{{le=\"0.0005\"}} {n}\n"
            )),
            "{text}"
        );
    }
}
