//! Issue 18, the data at rest and the servers' connection limits, against the all-in-one:
//! a data directory the previous version wrote (tests/fixtures/datadir-v0) opens with modes
//! tightened and its signing key sealed while the token it issued stays valid; every
//! control-plane and Traffic Manager port closes half a request head and refuses connections
//! beyond its cap.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apim::all_in_one::AllInOne;
use apim::core::config::Config;
use support::{free_offset, sh};

const FIXTURE: &str = "tests/fixtures/datadir-v0";
/// The issuer the fixture's tokens carry (its `made-with.toml`).
const FIXTURE_ISSUER: &str = "https://apim-fixture.example/oauth2/token";
/// Base64 of the DER prefix every P-256 PKCS#8 document starts with: a signing key stored in
/// plaintext.
const PLAINTEXT_ES256_KEY: &str = "MIGHAgEAMBMGByqGSM49";

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// A copy of the fixture with the modes the old code gave it (git keeps none of them).
fn old_data_dir(tmp: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let dir = tmp.join("data");
    std::fs::create_dir(&dir).unwrap();
    for f in [
        "apim.db",
        "internal.token",
        "gateway-cert.pem",
        "gateway-key.pem",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
        #[cfg(unix)]
        set_mode(
            &dir.join(f),
            if f == "gateway-key.pem" || f == "internal.token" {
                0o600
            } else {
                0o644
            },
        );
    }
    #[cfg(unix)]
    set_mode(&dir, 0o755);
    dir
}

fn fixture_json() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(FIXTURE)
        .join("fixture.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn config(data_dir: &Path, offset: u16) -> Config {
    let mut cfg = Config::from_toml_str(&format!(
        "port_offset = {offset}\n[key_manager]\nissuer = \"{FIXTURE_ISSUER}\"\n[admin]\npassword = \"fixture-admin-pass-1\"\n"
    ))
    .unwrap();
    cfg.data_dir = data_dir.to_owned();
    cfg
}

fn introspect(cp: SocketAddr, ck: &str, cs: &str, token: &str) -> serde_json::Value {
    let out = sh(&format!(
        "curl -sf -u '{ck}:{cs}' --data-urlencode 'token={token}' http://{cp}/oauth2/introspect"
    ));
    serde_json::from_str(&out).unwrap()
}

fn jwks_kids(cp: SocketAddr) -> Vec<String> {
    let jwks: serde_json::Value =
        serde_json::from_str(&sh(&format!("curl -sf http://{cp}/oauth2/jwks"))).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(jwt: &str) -> String {
    use base64::Engine as _;
    let head = jwt.split('.').next().unwrap();
    let head = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .unwrap();
    let head: serde_json::Value = serde_json::from_slice(&head).unwrap();
    head["kid"].as_str().unwrap().to_owned()
}

/// Item 8: the previous version's data directory (0755, database 0644, the ES256 key in
/// plaintext in the database) opens with the new code: the directory becomes 0700 and every
/// file 0600, the key is sealed (no plaintext PKCS#8 left in the database file), the token
/// issued before the upgrade still introspects as active and its kid is still in the JWKS,
/// new tokens work, and a second start reads the sealed key back.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_dir_of_the_previous_version_is_tightened_and_its_keys_sealed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = old_data_dir(tmp.path());
    let before = std::fs::read(dir.join("apim.db")).unwrap();
    assert!(
        before
            .windows(PLAINTEXT_ES256_KEY.len())
            .any(|w| w == PLAINTEXT_ES256_KEY.as_bytes()),
        "the fixture holds its key in plaintext"
    );
    let fx = fixture_json();
    let (ck, cs) = (
        fx["consumerKey"].as_str().unwrap(),
        fx["consumerSecret"].as_str().unwrap(),
    );
    let old_token = fx["access_token"].as_str().unwrap();
    let old_kid = kid_of(old_token);

    let offset = free_offset(&[]);
    let aio = AllInOne::start(config(&dir, offset)).await.unwrap();
    let cp = aio.control_plane;

    // modes: the directory 0700, every file in it 0600 (database, WAL, keys, tokens, KEK)
    assert_eq!(mode(&dir), 0o700, "data dir");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert_eq!(mode(&e.path()), 0o600, "{name}");
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "signing-keys.kek"), "{names:?}");
    assert!(names.iter().any(|n| n == "apim.db-wal"), "{names:?}");

    // the key rows are sealed
    let rows = aio.store.signing_keys().await.unwrap();
    assert!(!rows.is_empty());
    for (kid, _, stored, _) in &rows {
        assert!(
            apim::keymanager::keys::is_sealed(stored),
            "{kid} is not sealed"
        );
        assert!(!stored.contains(PLAINTEXT_ES256_KEY));
    }

    // the old token stays valid, its key is still published; a new token works
    let old = tokio::task::block_in_place(|| introspect(cp, ck, cs, old_token));
    assert_eq!(old["active"], true, "{old}");
    assert!(tokio::task::block_in_place(|| jwks_kids(cp)).contains(&old_kid));
    let new: serde_json::Value = serde_json::from_str(&tokio::task::block_in_place(|| {
        sh(&format!(
            "curl -sf -u '{ck}:{cs}' -d grant_type=client_credentials http://{cp}/oauth2/token"
        ))
    }))
    .unwrap();
    let new_token = new["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&new_token), old_kid, "the migrated key still signs");
    let n = tokio::task::block_in_place(|| introspect(cp, ck, cs, &new_token));
    assert_eq!(n["active"], true, "{n}");
    aio.shutdown().await;

    // no plaintext key left anywhere in the database file (overwritten, not just unlinked)
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("apim.db")
        {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes
                    .windows(PLAINTEXT_ES256_KEY.len())
                    .any(|w| w == PLAINTEXT_ES256_KEY.as_bytes()),
                "{} still holds a plaintext key",
                p.display()
            );
        }
    }

    // a second start reads the sealed key back: same kid, the old token still active
    let aio = AllInOne::start(config(&dir, offset)).await.unwrap();
    let cp = aio.control_plane;
    assert!(tokio::task::block_in_place(|| jwks_kids(cp)).contains(&old_kid));
    let old = tokio::task::block_in_place(|| introspect(cp, ck, cs, old_token));
    assert_eq!(old["active"], true, "{old}");
    aio.shutdown().await;

    // rotating the signing key (`--rotate-signing-key`): the new key signs, the old one stays
    // published, so the token issued before the upgrade is still active
    let rotated = apim::cli::rotate_signing_key(&config(&dir, offset))
        .await
        .unwrap();
    assert_ne!(rotated, old_kid);
    let aio = AllInOne::start(config(&dir, offset)).await.unwrap();
    let cp = aio.control_plane;
    let kids = tokio::task::block_in_place(|| jwks_kids(cp));
    assert!(
        kids.contains(&old_kid) && kids.contains(&rotated),
        "{kids:?}"
    );
    let new: serde_json::Value = serde_json::from_str(&tokio::task::block_in_place(|| {
        sh(&format!(
            "curl -sf -u '{ck}:{cs}' -d grant_type=client_credentials http://{cp}/oauth2/token"
        ))
    }))
    .unwrap();
    assert_eq!(kid_of(new["access_token"].as_str().unwrap()), rotated);
    let old = tokio::task::block_in_place(|| introspect(cp, ck, cs, old_token));
    assert_eq!(old["active"], true, "{old}");
    assert!(aio
        .store
        .signing_keys()
        .await
        .unwrap()
        .iter()
        .all(|(_, _, stored, _)| apim::keymanager::keys::is_sealed(stored)));
    aio.shutdown().await;

    // without the key-encryption key the sealed key cannot be used: start-up names the field
    std::fs::rename(dir.join("signing-keys.kek"), tmp.path().join("kek")).unwrap();
    let mut cfg = config(&dir, offset);
    cfg.key_manager.key_encryption_key = Some(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(), // 32 zero bytes
    );
    match AllInOne::start(cfg).await {
        Err(apim::core::ApimError::Config { field, .. }) => {
            assert_eq!(field, "key_manager.key_encryption_key")
        }
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("started with the wrong key-encryption key"),
    }
}

/// Connects and waits until the server closes the connection (EOF or reset); how long it took.
fn closed_after(addr: SocketAddr, send: &[u8], limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(send).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

/// Item 9: on every port the all-in-one serves besides the gateway's traffic ports — control
/// plane 9763/9443, Traffic Manager 9611/9711, the gateway's admin port — half a request head
/// (or, on a TLS port, a handshake that never starts) is closed within the idle timeout, and
/// a connection beyond `server.max_connections` is closed at once. Before, half a head stayed
/// open for 75 s and more, and every connection was served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_ports_close_slow_heads_and_cap_connections() {
    let tmp = tempfile::tempdir().unwrap();
    // not the offset the other test of this process takes
    let offset = free_offset(&[free_offset(&[])]);
    let mut cfg = Config::from_toml_str(&format!(
        "port_offset = {offset}\n[server]\nidle_timeout_ms = 1000\nmax_connections = 3\n[gateway]\nidle_timeout_ms = 1000\n[admin]\npassword = \"limits-admin-pass-1\"\n"
    ))
    .unwrap();
    cfg.data_dir = tmp.path().join("data");
    let aio = AllInOne::start(cfg).await.unwrap();
    let ports = [
        ("control plane", aio.control_plane, false),
        ("control plane TLS", aio.control_plane_https, true),
        ("traffic manager", aio.traffic_manager, false),
        (
            "traffic manager TLS",
            SocketAddr::from(([127, 0, 0, 1], 9711 + offset)),
            true,
        ),
        ("gateway admin", aio.gateway_admin.unwrap(), false),
    ];
    tokio::task::block_in_place(|| {
        for (name, addr, tls) in ports {
            let half: &[u8] = if tls {
                b""
            } else {
                b"GET /internal/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
            };
            let took = closed_after(addr, half, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{name}: half a head still open after 5 s"));
            assert!(
                took >= Duration::from_millis(800) && took < Duration::from_millis(3_500),
                "{name}: closed after {took:?}"
            );
        }
        // the cap: three connections are held, the fourth is closed at once
        for (name, addr, _) in &ports[..4] {
            let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
            std::thread::sleep(Duration::from_millis(100));
            let took = closed_after(*addr, b"", Duration::from_millis(700))
                .unwrap_or_else(|| panic!("{name}: a fourth connection was served"));
            assert!(took < Duration::from_millis(500), "{name}: {took:?}");
            drop(held);
            // the server notices the held connections closing, freeing their slots
            std::thread::sleep(Duration::from_millis(300));
            let ok = sh(&format!(
                "curl -sk -o /dev/null -w '%{{http_code}}' {scheme}://{addr}/internal/health || true",
                scheme = if name.contains("TLS") { "https" } else { "http" },
            ));
            assert!(ok == "200" || ok == "404", "{name}: {ok}");
        }
    });
    aio.shutdown().await;
}
