//! Runs exactly the `sh` blocks of docs/quickstart.md against a fresh all-in-one process, then
//! restarts it on the same data directory and checks that nothing was lost.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod support;

fn start(data: &Path, offset: u16) -> (support::Proc, String) {
    let (p, line) = support::Proc::start(
        "all-in-one",
        &[
            "--data-dir".into(),
            data.to_str().unwrap().into(),
            "--port-offset".into(),
            offset.to_string(),
        ],
        &[("APIM_ADMIN_PASSWORD".into(), "admin-pass-123".into())],
    );
    assert!(line.starts_with("apim all-in-one ready:"), "{line}");
    (p, line)
}

fn quickstart_script() -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/quickstart.md"))
            .unwrap();
    let mut out = String::from("set -euo pipefail\n");
    let mut in_block = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block && line.trim() == "```sh";
            continue;
        }
        if in_block {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn quickstart_runs_as_written_and_restart_keeps_data() {
    let data = tempfile::tempdir().unwrap();
    let offset = support::free_offset(&[]);
    let cp = format!("http://localhost:{}", 9763 + offset);
    let gw = format!("http://localhost:{}", 8280 + offset);
    let (cps, tms) = (9443 + offset, 9711 + offset);
    let backend = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (server, ready) = start(data.path(), offset);
    assert!(ready.contains(&cp) && ready.contains(&gw), "{ready}");

    let t0 = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg(quickstart_script())
        .env("CP", &cp)
        .env("GW", &gw)
        .env("BACKEND_PORT", backend.to_string())
        .env("APIM_ADMIN_PASSWORD", "admin-pass-123")
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quickstart failed after {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        t0.elapsed()
    );
    assert!(stdout.to_uppercase().contains("PUBLISHED"), "{stdout}");
    assert!(stdout.contains("UNBLOCKED"), "{stdout}");
    assert!(
        stdout.contains(r#"[{"name":"Margherita","price":"8.50"}]"#),
        "call through the gateway: {stdout}"
    );
    assert!(stdout.contains("HTTP/1.1 429"), "throttled: {stdout}");
    assert!(
        stdout.contains("\"code\":900803"),
        "application tier: {stdout}"
    );
    assert!(stdout.to_lowercase().contains("retry-after:"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with(r#"}"#) && stdout.contains("\"code\":900901"),
        "revoked: {stdout}"
    );

    // restart on the same data directory: the API, the user and the revocation are still there
    drop(server);
    let (_server, _) = start(data.path(), offset);
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail; curl -sf -u admin:admin-pass-123 {cp}/api/am/publisher/v4/apis | jq -r '.count, .list[0].lifeCycleStatus'; \
             curl -sf -u sam:sam-pass-123 {cp}/api/am/devportal/v3/applications | jq -r .count; \
             curl -sfk https://localhost:{cps}/oauth2/jwks | jq -r '.keys | length'; \
             curl -sk -o /dev/null -w '%{{http_code}}' https://localhost:{tms}/internal/events/v1/stream"
        ))
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{s} {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        s.split_whitespace().collect::<Vec<_>>(),
        ["1", "PUBLISHED", "1", "1", "401"]
    );
}
