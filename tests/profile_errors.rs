//! Every profile binary exits non-zero with a message naming the problem on bad configuration,
//! and the database-backed ones on an unreachable database.

mod support;

use std::process::Command;

fn run(example: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(support::example(example));
    cmd.args([
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--port-offset",
        "31000",
    ]);
    cmd.env("RUST_LOG", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PROFILES: [&str; 6] = [
    "all-in-one",
    "publisher",
    "devportal",
    "keymanager",
    "trafficmanager",
    "gateway",
];

#[test]
fn bad_config_names_the_field() {
    for p in PROFILES {
        let (code, err) = run(p, &[("APIM_GATEWAY_HTTP_PORT", "eighty")]);
        assert_ne!(code, 0, "{p} must fail");
        assert!(
            err.contains("APIM_GATEWAY_HTTP_PORT") && err.contains("eighty"),
            "{p}: {err}"
        );
        let (code, err) = run(p, &[("APIM_DATABASE_URL", "mysql://x")]);
        assert_ne!(code, 0, "{p} must fail");
        assert!(err.contains("database.url"), "{p}: {err}");
    }
}

#[test]
fn unreachable_database_is_a_clear_error() {
    // in parallel: each waits out the pool's connect timeout
    std::thread::scope(|s| {
        for p in [
            "all-in-one",
            "publisher",
            "devportal",
            "keymanager",
            "trafficmanager",
        ] {
            s.spawn(move || {
                let (code, err) = run(
                    p,
                    &[("APIM_DATABASE_URL", "postgres://apim@127.0.0.1:1/apimgtdb")],
                );
                assert_ne!(code, 0, "{p} must fail");
                assert!(
                    err.contains("cannot connect") && err.contains("127.0.0.1:1"),
                    "{p}: {err}"
                );
            });
        }
    });
}
