//! GlobalThrottle against real Traffic Managers on 127.0.0.1: a shared quota under concurrent
//! load (in memory, and two Traffic Managers sharing Redis), and the Traffic Manager going away.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apim_core::artifacts::InMemoryArtifacts;
use apim_core::bus::InProcessBus;
use apim_core::throttle::Decision;
use apim_core::ThrottleLevel;
use apim_throttle::traffic_manager::{CountEntry, CountReply, CountReport, RedisCounters};
use apim_throttle::{Clock, GlobalConfig, GlobalThrottle, ManualClock, TrafficManager};
use common::*;
use http::Method;

const TOKEN: &str = "test-internal-token-0123456789";

async fn serve(
    tm: TrafficManager,
    listener: tokio::net::TcpListener,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, tm.router()).await;
    })
}

async fn spawn_tm(tm: TrafficManager) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (addr, serve(tm, l).await)
}

fn tm() -> TrafficManager {
    TrafficManager::new(TOKEN, Arc::new(InProcessBus::new(16)))
}

fn config(addr: SocketAddr, fail_open: bool) -> GlobalConfig {
    GlobalConfig {
        fail_open,
        report_interval: Duration::from_millis(20),
        request_timeout: Duration::from_millis(500),
        ..GlobalConfig::new(vec![format!("http://{addr}")], TOKEN)
    }
}

fn shared_quota() -> Arc<InMemoryArtifacts> {
    artifacts(
        pizza_api(None),
        vec![subscription("Shared", count_limit(600, "min"), None, true)],
        vec![],
    )
}

fn req(a: &InMemoryArtifacts) -> Req {
    Req::new(a, Method::POST, "/pizza/1.0/order").caller("app-1", "alice", "Shared", "Unlimited")
}

/// Three gateways, each with three workers, 160 attempts per worker (1440 in all) against a
/// 600/min subscription quota; returns how many were admitted.
async fn load(gateways: Vec<Arc<GlobalThrottle>>, a: Arc<InMemoryArtifacts>) -> u64 {
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for g in &gateways {
        for _ in 0..3 {
            let (g, a, admitted) = (g.clone(), a.clone(), admitted.clone());
            tasks.push(tokio::spawn(async move {
                let r = req(&a);
                for _ in 0..160 {
                    if g.check(&r.ctx()) == Decision::Allow {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    admitted.load(Ordering::Relaxed)
}

/// The Traffic Manager's total for the shared key (reads by reporting 0 hits).
async fn tm_total(addr: SocketAddr, key: &str, clock: &ManualClock) -> u64 {
    let window_ms = 60_000;
    let now_ms = clock.now() / 1_000_000;
    let report = CountReport {
        gateway: "probe".into(),
        counts: vec![CountEntry {
            key: key.into(),
            window_start_ms: now_ms / window_ms * window_ms,
            window_ms,
            limit: u64::MAX,
            count: 0,
        }],
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let res = client
        .request(
            http::Request::post(format!("http://{addr}/internal/throttle/v1/counts"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(http_body_util::Full::new(
                    serde_json::to_vec(&report).unwrap().into(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    use http_body_util::BodyExt;
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let reply: CountReply = serde_json::from_slice(&body).unwrap();
    reply.totals[0]
}

fn gateways(
    a: &Arc<InMemoryArtifacts>,
    addrs: &[SocketAddr],
    clock: &ManualClock,
) -> Vec<Arc<GlobalThrottle>> {
    (0..3)
        .map(|i| {
            let mut cfg = config(addrs[i % addrs.len()], true);
            cfg.gateway_id = format!("gw-{i}");
            Arc::new(GlobalThrottle::with_clock(
                a.clone(),
                cfg,
                Arc::new(clock.clone()),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_share_600_per_minute_through_one_traffic_manager() {
    let (addr, _server) = spawn_tm(tm()).await;
    let a = shared_quota();
    // frozen mid-window, so the run never straddles a window boundary
    let clock = ManualClock::at_day_start();
    clock.advance(Duration::from_secs(10));
    let admitted = load(gateways(&a, &[addr], &clock), a.clone()).await;
    eprintln!("one Traffic Manager: admitted {admitted} of 1440 against 600");
    assert!(
        (594..=612).contains(&admitted),
        "admitted {admitted}, expected 594..=612"
    );
    let total = tm_total(addr, "sub|app-1:/pizza:1.0", &clock).await;
    assert_eq!(
        total, admitted,
        "every admitted hit reached the Traffic Manager"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_traffic_managers_share_counters_in_redis() {
    let Ok(url) = std::env::var("APIM_TEST_REDIS_URL") else {
        eprintln!("APIM_TEST_REDIS_URL not set: skipping the Redis test");
        return;
    };
    // a fresh prefix per run: no interference from earlier runs
    let prefix = format!("apim-test:{}:", uuid::Uuid::new_v4());
    let mut addrs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let counters = RedisCounters::connect(&url, prefix.clone())
            .await
            .expect("APIM_TEST_REDIS_URL is set, so Redis must be reachable");
        let (addr, server) = spawn_tm(tm().with_counters(Arc::new(counters))).await;
        addrs.push(addr);
        servers.push(server);
    }
    let a = shared_quota();
    let clock = ManualClock::at_day_start();
    clock.advance(Duration::from_secs(10));
    let admitted = load(gateways(&a, &addrs, &clock), a.clone()).await;
    eprintln!("two Traffic Managers on Redis: admitted {admitted} of 1440 against 600");
    assert!(
        (594..=612).contains(&admitted),
        "admitted {admitted}, expected 594..=612"
    );
    for addr in addrs {
        assert_eq!(
            tm_total(addr, "sub|app-1:/pizza:1.0", &clock).await,
            admitted,
            "both Traffic Managers see the shared count"
        );
    }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A free port on 127.0.0.1 with nothing listening (yet).
async fn free_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn traffic_manager_down_fail_closed_then_recovers() {
    let addr = free_port().await;
    let a = artifacts(
        pizza_api(None),
        vec![subscription("Five", count_limit(5, "min"), None, true)],
        vec![],
    );
    let clock = ManualClock::at_day_start();
    let g = GlobalThrottle::with_clock(a.clone(), config(addr, false), Arc::new(clock.clone()));
    let r = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
        "app-1",
        "alice",
        "Five",
        "Unlimited",
    );
    assert_eq!(
        g.check(&r.ctx()),
        Decision::Allow,
        "not known to be down yet"
    );
    g.report_now();
    wait_until("the gateway notices", || !g.is_connected()).await;
    assert!(matches!(
        g.check(&r.ctx()),
        Decision::Deny {
            level: ThrottleLevel::Subscription,
            ..
        }
    ));
    let _server = serve(tm(), tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    wait_until("the gateway reconnects", || g.is_connected()).await;
    assert_eq!(g.check(&r.ctx()), Decision::Allow);
}

#[tokio::test]
async fn traffic_manager_down_fail_open_decides_locally_then_catches_up() {
    let addr = free_port().await;
    let a = artifacts(
        pizza_api(None),
        vec![subscription("Five", count_limit(5, "min"), None, true)],
        vec![],
    );
    let clock = ManualClock::at_day_start();
    let g = GlobalThrottle::with_clock(a.clone(), config(addr, true), Arc::new(clock.clone()));
    let r = Req::new(&a, Method::POST, "/pizza/1.0/order").caller(
        "app-1",
        "alice",
        "Five",
        "Unlimited",
    );
    assert_eq!(g.check(&r.ctx()), Decision::Allow);
    g.report_now();
    wait_until("the gateway notices", || !g.is_connected()).await;
    for _ in 0..4 {
        assert_eq!(g.check(&r.ctx()), Decision::Allow, "fail-open: local view");
    }
    assert!(
        matches!(
            g.check(&r.ctx()),
            Decision::Deny {
                level: ThrottleLevel::Subscription,
                ..
            }
        ),
        "the local view still enforces the quota"
    );
    let _server = serve(tm(), tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    wait_until("the gateway reconnects", || g.is_connected()).await;
    assert_eq!(
        tm_total(addr, "sub|app-1:/pizza:1.0", &clock).await,
        5,
        "hits admitted during the outage were reported"
    );
}

/// Serves `tm` over TLS (a self-signed certificate for `localhost`) on 127.0.0.1; returns the
/// address and the certificate to trust.
async fn spawn_tls_tm(
    tm: TrafficManager,
) -> (SocketAddr, rustls::pki_types::CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.key_pair.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (acceptor, router) = (acceptor.clone(), tm.router());
            tokio::spawn(async move {
                let Ok(s) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                .await;
            });
        }
    });
    (addr, cert)
}

/// Issue 18 ("also found"): with an `https://` Traffic Manager URL the reporter spoke plain
/// HTTP only, so no count was ever reported. Now it reports over TLS, trusting the
/// deployment's private CA (`GlobalConfig::tls`, from `internal.ca_file`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_reach_an_https_traffic_manager_with_a_private_ca() {
    let tm = tm();
    let (tls_addr, cert) = spawn_tls_tm(tm.clone()).await;
    let (plain_addr, _server) = spawn_tm(tm).await; // the same counters, for the probe
    let a = shared_quota();
    let clock = ManualClock::at_day_start();
    let mut cfg = config(tls_addr, false);
    cfg.urls = vec![format!("https://localhost:{}", tls_addr.port())];
    cfg.tls = apim_core::tls::client_config_with(&[cert]).unwrap();
    let g = GlobalThrottle::with_clock(a.clone(), cfg, Arc::new(clock.clone()));
    let r = req(&a);
    for _ in 0..3 {
        assert_eq!(g.check(&r.ctx()), Decision::Allow);
    }
    g.report_now();
    for _ in 0..200 {
        if tm_total(plain_addr, "sub|app-1:/pizza:1.0", &clock).await == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        tm_total(plain_addr, "sub|app-1:/pizza:1.0", &clock).await,
        3,
        "the hits reached the Traffic Manager over TLS"
    );
    assert!(g.is_connected());
}
