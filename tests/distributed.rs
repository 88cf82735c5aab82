//! The distributed deployment, end to end, as separate processes on PostgreSQL and Redis:
//! publisher, devportal, keymanager (the control plane), two Traffic Managers sharing Redis
//! counters, two gateways. Runs when APIM_TEST_POSTGRES_URL and APIM_TEST_REDIS_URL are set
//! (`.ci/run` sets both and fails if the servers are down).

mod support;

use std::time::{Duration, Instant};

use support::{free_offset, sh, Proc};

const ADMIN: &str = "admin:admin-pass-123";

struct Deployment {
    env: Vec<(String, String)>,
    offsets: Vec<u16>,
}

impl Deployment {
    fn offset(&mut self) -> u16 {
        let o = free_offset(&self.offsets);
        self.offsets.push(o);
        o
    }

    fn start(
        &self,
        example: &str,
        offset: u16,
        data: &std::path::Path,
        extra: &[(&str, String)],
    ) -> Proc {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let args = vec![
            "--data-dir".to_string(),
            data.join(format!("{example}-{offset}"))
                .to_string_lossy()
                .into_owned(),
            "--port-offset".to_string(),
            offset.to_string(),
        ];
        let (p, line) = Proc::start(example, &args, &env);
        assert!(line.contains("ready"), "{example}: {line}");
        p
    }
}

/// Polls `check` every 20 ms until it returns true or `limit` passes; returns the time taken.
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if check() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {limit:?}");
}

fn status(url: &str, token: Option<&str>) -> u16 {
    let auth = token
        .map(|t| format!("-H 'Authorization: Bearer {t}'"))
        .unwrap_or_default();
    sh(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' {auth} '{url}' || true"
    ))
    .trim()
    .parse()
    .unwrap_or(0)
}

fn json(script: &str) -> serde_json::Value {
    let out = sh(script);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn distributed_deployment_end_to_end() {
    let (Ok(pg), Ok(redis)) = (
        std::env::var("APIM_TEST_POSTGRES_URL"),
        std::env::var("APIM_TEST_REDIS_URL"),
    ) else {
        eprintln!(
            "APIM_TEST_POSTGRES_URL / APIM_TEST_REDIS_URL not set: skipped (.ci/run sets both)"
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (am, shared) = rt.block_on(async {
        (
            apim::core::test_util::fresh_pg_database(&pg, "e2eam").await,
            apim::core::test_util::fresh_pg_database(&pg, "e2eshared").await,
        )
    });
    let data = tempfile::tempdir().unwrap();
    let token = "e2e-internal-token-0123456789abcdef".to_string();
    let mut d = Deployment {
        env: vec![
            ("APIM_DATABASE_APIMGT_URL".into(), am),
            ("APIM_DATABASE_SHARED_URL".into(), shared),
            ("APIM_INTERNAL_TOKEN".into(), token),
            ("APIM_ADMIN_PASSWORD".into(), "admin-pass-123".into()),
        ],
        offsets: vec![],
    };
    let (o_pub, o_dev, o_km, o_tm1, o_tm2, o_gw1, o_gw2) = (
        d.offset(),
        d.offset(),
        d.offset(),
        d.offset(),
        d.offset(),
        d.offset(),
        d.offset(),
    );
    let url = |o: u16, base: u16| format!("http://127.0.0.1:{}", base + o);
    let (publisher, devportal, km) = (url(o_pub, 9763), url(o_dev, 9763), url(o_km, 9763));
    let (tm1, tm2) = (url(o_tm1, 9611), url(o_tm2, 9611));
    let (gw1, gw2) = (url(o_gw1, 8280), url(o_gw2, 8280));

    // backend
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_port = backend.local_addr().unwrap().port();
    drop(backend);
    let backend_dir = data.path().join("backend");
    std::fs::create_dir_all(&backend_dir).unwrap();
    std::fs::write(backend_dir.join("menu"), "[\"pizza\"]").unwrap();
    let mut backend = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &backend_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&backend_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 http.server");

    let _publisher = d.start("publisher", o_pub, data.path(), &[]);
    let _devportal = d.start("devportal", o_dev, data.path(), &[]);
    let _km = d.start("keymanager", o_km, data.path(), &[]);
    let tm_env = [("APIM_TRAFFIC_MANAGER_REDIS_URL", redis.clone())];
    let mut tm1_proc = d.start("trafficmanager", o_tm1, data.path(), &tm_env);
    let _tm2_proc = d.start("trafficmanager", o_tm2, data.path(), &tm_env);
    let gw_env = [
        ("APIM_GATEWAY_CONTROL_PLANE_URL", publisher.clone()),
        ("APIM_GATEWAY_TRAFFIC_MANAGER_URLS", format!("{tm1},{tm2}")),
        ("APIM_KEY_MANAGER_URL", km.clone()),
        ("APIM_TRAFFIC_MANAGER_REPORT_INTERVAL_MS", "100".into()),
    ];
    // gateway 1 serves on two worker threads (gateway.worker_threads), gateway 2 on the
    // process's runtime: the behaviour asserted below holds for both
    let mut gw1_env = gw_env.to_vec();
    gw1_env.push(("APIM_GATEWAY_WORKER_THREADS", "2".into()));
    let _gw1_proc = d.start("gateway", o_gw1, data.path(), &gw1_env);
    let mut gw2_proc = d.start("gateway", o_gw2, data.path(), &gw_env);

    // a 200-per-minute tier so the shared quota is quick to exhaust
    sh(&format!(
        r#"curl -sf -u {ADMIN} -H 'Content-Type: application/json' {publisher}/api/am/admin/v4/throttling/policies/subscription -d '{{
          "policyName": "E2E200", "defaultLimit": {{"type": "REQUESTCOUNTLIMIT", "requestCount": {{"timeUnit": "min", "unitTime": 1, "requestCount": 200}}}}
        }}' >/dev/null"#
    ));
    let create_api = |ctx: &str| -> String {
        let api = json(&format!(
            r#"curl -sf -u {ADMIN} -H 'Content-Type: application/json' {publisher}/api/am/publisher/v4/apis -d '{{
              "name": "E2E{ctx}", "context": "/{ctx}", "version": "1.0.0", "policies": ["E2E200", "Unlimited"],
              "endpointConfig": {{"endpoint_type": "http", "production_endpoints": {{"url": "http://127.0.0.1:{backend_port}"}}}},
              "operations": [{{"target": "/menu", "verb": "GET"}}]}}'"#
        ));
        api["id"].as_str().unwrap().to_owned()
    };
    let deploy_and_publish = |id: &str| {
        let rev = json(&format!(
            r#"curl -sf -u {ADMIN} -H 'Content-Type: application/json' {publisher}/api/am/publisher/v4/apis/{id}/revisions -d '{{}}'"#
        ));
        let rev = rev["id"].as_str().unwrap();
        sh(&format!(
            r#"curl -sf -u {ADMIN} -H 'Content-Type: application/json' '{publisher}/api/am/publisher/v4/apis/{id}/deploy-revision?revisionId={rev}' -d '[{{"name": "Default"}}]' >/dev/null
               curl -sf -u {ADMIN} -X POST '{publisher}/api/am/publisher/v4/apis/change-lifecycle?apiId={id}&action=Publish' >/dev/null"#
        ));
    };

    // the load balancer of docs/deployment.md in front of both gateways (TLS left out)
    let lb = nginx_from_docs(data.path(), &gw1, &gw2, &publisher);

    // 1. publish + deploy is served by both gateways within 1 s
    let api = create_api("shop");
    deploy_and_publish(&api);
    let p1 = within(Duration::from_secs(1), "gateway 1 serves the API", || {
        status(&format!("{gw1}/shop/1.0.0/menu"), None) == 401
    });
    let p2 = within(Duration::from_secs(1), "gateway 2 serves the API", || {
        status(&format!("{gw2}/shop/1.0.0/menu"), None) == 401
    });
    eprintln!("deploy propagation: gw1 {p1:?}, gw2 {p2:?}");

    // subscriber, application, subscription, keys, token
    sh(&format!(
        r#"curl -sf -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/self-signup -d '{{"username": "eve", "password": "eve-pass-123"}}' >/dev/null"#
    ));
    let app = json(&format!(
        r#"curl -sf -u eve:eve-pass-123 -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/applications -d '{{"name": "E2EApp", "throttlingPolicy": "Unlimited"}}'"#
    ));
    let app_id = app["applicationId"].as_str().unwrap().to_owned();
    sh(&format!(
        r#"curl -sf -u eve:eve-pass-123 -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/subscriptions -d '{{"applicationId": "{app_id}", "apiId": "{api}", "throttlingPolicy": "E2E200"}}' >/dev/null"#
    ));
    let keys = json(&format!(
        r#"curl -sf -u eve:eve-pass-123 -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/applications/{app_id}/generate-keys -d '{{"keyType": "PRODUCTION", "grantTypesToBeSupported": ["client_credentials"]}}'"#
    ));
    let (ck, cs) = (
        keys["consumerKey"].as_str().unwrap().to_owned(),
        keys["consumerSecret"].as_str().unwrap().to_owned(),
    );
    let tok = json(&format!(
        "curl -sf -u '{ck}:{cs}' -d grant_type=client_credentials {km}/oauth2/token"
    ));
    let access = tok["access_token"].as_str().unwrap().to_owned();
    // calls admitted with `access` before the quota check below, and the throttle window
    // (minute, aligned to the epoch) they started in: they count against the shared quota
    let minute = || apim::core::time::now_ms() / 60_000;
    let first_minute = minute();
    let mut admitted_before = 0u64;
    let mut admit = |url: String| {
        let ok = status(&url, Some(&access)) == 200;
        admitted_before += u64::from(ok);
        ok
    };
    within(
        Duration::from_secs(2),
        "both gateways accept the token",
        || admit(format!("{gw1}/shop/1.0.0/menu")) && admit(format!("{gw2}/shop/1.0.0/menu")),
    );

    if let Some((lb_url, _)) = &lb {
        let through_lb = (0..4)
            .filter(|_| admit(format!("{lb_url}/shop/1.0.0/menu")))
            .count();
        assert_eq!(
            through_lb, 4,
            "calls through the documented nginx load balancer"
        );
    }

    // Basic auth on an API that enables it: the gateways have no user store and ask the Key
    // Manager (internal token); an API without basic_auth refuses the same credentials
    let basic_api = json(&format!(
        r#"curl -sf -u {ADMIN} -H 'Content-Type: application/json' {publisher}/api/am/publisher/v4/apis -d '{{
          "name": "E2EBasic", "context": "/basic", "version": "1.0.0", "securityScheme": ["oauth2", "basic_auth"],
          "endpointConfig": {{"endpoint_type": "http", "production_endpoints": {{"url": "http://127.0.0.1:{backend_port}"}}}},
          "operations": [{{"target": "/menu", "verb": "GET"}}]}}'"#
    ))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    deploy_and_publish(&basic_api);
    let basic_status = |gw: &str, api: &str, user: &str| -> u16 {
        sh(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' -u '{user}' '{gw}/{api}/1.0.0/menu' || true"
        ))
        .trim()
        .parse()
        .unwrap_or(0)
    };
    within(
        Duration::from_secs(2),
        "both gateways accept Basic credentials checked by the Key Manager",
        || {
            basic_status(&gw1, "basic", "eve:eve-pass-123") == 200
                && basic_status(&gw2, "basic", "eve:eve-pass-123") == 200
        },
    );
    assert_eq!(basic_status(&gw1, "basic", "eve:wrong-password"), 401);
    assert_eq!(
        basic_status(&gw1, "shop", "eve:eve-pass-123"),
        401,
        "an oauth2-only API refuses Basic credentials"
    );

    // opaque access tokens (an application with tokenType OAUTH): the gateways introspect them
    // at the Key Manager with the internal token
    let app2 = json(&format!(
        r#"curl -sf -u eve:eve-pass-123 -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/applications -d '{{"name": "E2EOpaque", "throttlingPolicy": "Unlimited", "tokenType": "OAUTH"}}'"#
    ));
    let app2_id = app2["applicationId"].as_str().unwrap().to_owned();
    sh(&format!(
        r#"curl -sf -u eve:eve-pass-123 -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/subscriptions -d '{{"applicationId": "{app2_id}", "apiId": "{api}", "throttlingPolicy": "Unlimited"}}' >/dev/null"#
    ));
    let keys2 = json(&format!(
        r#"curl -sf -u eve:eve-pass-123 -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/applications/{app2_id}/generate-keys -d '{{"keyType": "PRODUCTION", "grantTypesToBeSupported": ["client_credentials"]}}'"#
    ));
    let opaque = json(&format!(
        "curl -sf -u '{}:{}' -d grant_type=client_credentials {km}/oauth2/token",
        keys2["consumerKey"].as_str().unwrap(),
        keys2["consumerSecret"].as_str().unwrap()
    ))["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(opaque.split('.').count(), 1, "an opaque token: {opaque}");
    within(
        Duration::from_secs(2),
        "both gateways accept the opaque token",
        || {
            status(&format!("{gw1}/shop/1.0.0/menu"), Some(&opaque)) == 200
                && status(&format!("{gw2}/shop/1.0.0/menu"), Some(&opaque)) == 200
        },
    );

    // 2. the shared subscription quota (200/min) holds across both gateways
    // one window for the whole check; the calls admitted above count in it when it is the
    // window they were made in, else a fresh window starts the check (counted exactly either
    // way: a guess of how many there were made this check flaky)
    let into_minute = (apim::core::time::now_ms() / 1000) % 60;
    let fresh = into_minute > 40 || minute() != first_minute;
    if fresh {
        std::thread::sleep(Duration::from_secs((61 - into_minute) as u64));
    }
    let used_before = if fresh { 0 } else { admitted_before };
    let counts = sh(&format!(
        r#"ok=0; for i in $(seq 1 150); do
             for gw in {gw1} {gw2}; do
               c=$(curl -s -o /dev/null -w '%{{http_code}}' -H 'Authorization: Bearer {access}' $gw/shop/1.0.0/menu); [ "$c" = 200 ] && ok=$((ok+1)) || true
             done
           done; echo $ok"#
    ));
    let admitted: u64 = counts.trim().parse().unwrap();
    let total = admitted + used_before;
    eprintln!(
        "shared quota 200/min across 2 gateways: admitted {total} of 300 attempts (+{:.1}%)",
        (total as f64 - 200.0) / 2.0
    );
    assert!(
        (200..=204).contains(&total),
        "admitted {total}, quota 200 (+2% = 204)"
    );
    assert_eq!(
        status(&format!("{gw1}/shop/1.0.0/menu"), Some(&access)),
        429
    );

    // 3. a Traffic Manager killed: traffic continues (other TM / fail-open), and resumes after restart
    let other_api = create_api("other");
    let app2 = json(&format!(
        r#"curl -sf -u eve:eve-pass-123 -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/applications -d '{{"name": "E2EApp2", "throttlingPolicy": "Unlimited"}}'"#
    ));
    let app2_id = app2["applicationId"].as_str().unwrap().to_owned();
    deploy_and_publish(&other_api);
    tm1_proc.kill();
    sh(&format!(
        r#"curl -sf -u eve:eve-pass-123 -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/subscriptions -d '{{"applicationId": "{app2_id}", "apiId": "{other_api}", "throttlingPolicy": "Unlimited"}}' >/dev/null"#
    ));
    let keys2 = json(&format!(
        r#"curl -sf -u eve:eve-pass-123 -H 'Content-Type: application/json' {devportal}/api/am/devportal/v3/applications/{app2_id}/generate-keys -d '{{"keyType": "PRODUCTION", "grantTypesToBeSupported": ["client_credentials"]}}'"#
    ));
    let (ck2, cs2) = (
        keys2["consumerKey"].as_str().unwrap().to_owned(),
        keys2["consumerSecret"].as_str().unwrap().to_owned(),
    );
    let access2 = json(&format!(
        "curl -sf -u '{ck2}:{cs2}' -d grant_type=client_credentials {km}/oauth2/token"
    ))["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let tm_down = within(
        Duration::from_secs(10),
        "traffic flows with one Traffic Manager down",
        || {
            status(&format!("{gw1}/other/1.0.0/menu"), Some(&access2)) == 200
                && status(&format!("{gw2}/other/1.0.0/menu"), Some(&access2)) == 200
        },
    );
    eprintln!("with TM1 down, both gateways served new subscriptions after {tm_down:?}");
    let _tm1_again = d.start("trafficmanager", o_tm1, data.path(), &tm_env);
    for _ in 0..20 {
        assert_eq!(
            status(&format!("{gw1}/other/1.0.0/menu"), Some(&access2)),
            200
        );
    }

    // 4. a gateway restarted while events happen catches up with nothing lost
    gw2_proc.kill();
    let late_api = create_api("late");
    deploy_and_publish(&late_api);
    let gw2_again = d.start("gateway", o_gw2, data.path(), &gw_env);
    within(
        Duration::from_secs(5),
        "restarted gateway serves what was deployed while it was down",
        || status(&format!("{gw2}/late/1.0.0/menu"), None) == 401,
    );

    // 5. a revoked token is refused by both gateways within 1 s
    sh(&format!(
        "curl -sf -u '{ck2}:{cs2}' -d 'token={access2}' {km}/oauth2/revoke"
    ));
    let r1 = within(
        Duration::from_secs(1),
        "gateway 1 refuses the revoked token",
        || status(&format!("{gw1}/other/1.0.0/menu"), Some(&access2)) == 401,
    );
    let r2 = within(
        Duration::from_secs(1),
        "gateway 2 refuses the revoked token",
        || status(&format!("{gw2}/other/1.0.0/menu"), Some(&access2)) == 401,
    );
    eprintln!("revocation propagation: gw1 {r1:?}, gw2 {r2:?}");
    drop(gw2_again);
    drop(lb);
    let _ = backend.kill();
    let _ = backend.wait();
}

/// Starts nginx with the configuration of docs/deployment.md, host names replaced by the test's
/// addresses and the `listen 443 ssl` lines by plain ports. `None` (with a note) without nginx.
fn nginx_from_docs(
    dir: &std::path::Path,
    gw1: &str,
    gw2: &str,
    cp: &str,
) -> Option<(String, Proc)> {
    if std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("nginx not installed: the load-balancer check is skipped (.ci/run installs nginx-light)");
        return None;
    }
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deployment.md"),
    )
    .unwrap();
    let start = doc
        .find("```nginx\n")
        .expect("nginx block in docs/deployment.md")
        + "```nginx\n".len();
    let block = &doc[start..start + doc[start..].find("```").unwrap()];
    let host = |u: &str| u.trim_start_matches("http://").to_owned();
    let lb_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut n = 0;
    let conf: String = block
        .lines()
        .filter(|l| !l.contains("ssl_certificate"))
        .map(|l| {
            if l.trim() == "listen 443 ssl;" {
                n += 1;
                format!(
                    "    listen 127.0.0.1:{};",
                    if n == 1 { lb_port } else { cp_port }
                )
            } else {
                l.replace("gw1.example.internal:8280", &host(gw1))
                    .replace("gw2.example.internal:8280", &host(gw2))
                    .replace("cp.example.internal:9763", &host(cp))
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let p = dir.join("nginx");
    std::fs::create_dir_all(p.join("logs")).unwrap();
    let full = format!(
        "pid {pid};\nerror_log {err};\nevents {{}}\nhttp {{\naccess_log off;\nclient_body_temp_path {t}/b;\nproxy_temp_path {t}/p;\nfastcgi_temp_path {t}/f;\nuwsgi_temp_path {t}/u;\nscgi_temp_path {t}/s;\n{conf}\n}}\n",
        pid = p.join("nginx.pid").display(),
        err = p.join("logs/error.log").display(),
        t = p.display(),
    );
    std::fs::write(p.join("nginx.conf"), full).unwrap();
    let child = std::process::Command::new("nginx")
        .args([
            "-p",
            p.to_str().unwrap(),
            "-c",
            p.join("nginx.conf").to_str().unwrap(),
            "-g",
            // one process: killing it (also when the test fails) leaves no orphaned worker
            "daemon off; master_process off;",
        ])
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("nginx");
    let child = Proc {
        child,
        name: "nginx".into(),
    };
    let url = format!("http://127.0.0.1:{lb_port}");
    within(Duration::from_secs(5), "nginx listens", || {
        status(&format!("{url}/"), None) != 0
    });
    Some((url, child))
}
