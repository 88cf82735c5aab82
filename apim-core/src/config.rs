//! Configuration: one TOML file, overridable by `APIM_*` environment variables.
//!
//! Every key has a default, so an empty file (or none) is a working all-in-one configuration.
//! An environment variable `APIM_<SECTION>_<KEY>` (upper case) overrides `[section] key`, and
//! `APIM_<KEY>` a top-level key: `APIM_PORT_OFFSET=10`, `APIM_GATEWAY_HTTP_PORT=8081`,
//! `APIM_DATABASE_APIMGT_URL=postgres://...`. A bad value stops start-up with an
//! [`ApimError::Config`] that names the field.
//!
//! ```
//! let cfg = apim_core::config::Config::from_toml_str("port_offset = 1\n[gateway]\nhttp_port = 9000\n").unwrap();
//! assert_eq!(cfg.ports().gateway_http, 9001);
//! assert_eq!(cfg.ports().control_plane_https, 9444);
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ApimError;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for the SQLite database, keys and the development certificate.
    pub data_dir: PathBuf,
    /// Added to every port (run several instances on one host).
    pub port_offset: u16,
    /// Host name used in URLs this instance prints and issues (token issuer, metadata).
    pub hostname: String,
    /// Address to bind listeners to: `127.0.0.1` by default (the all-in-one answers this host
    /// only); a distributed deployment sets it (`0.0.0.0`, or one interface).
    pub bind_address: String,
    /// Databases.
    pub database: DatabaseConfig,
    /// Control plane (Publisher, Developer Portal, Admin, Key Manager) listeners.
    pub server: ServerConfig,
    /// Gateway.
    pub gateway: GatewayConfig,
    /// Traffic Manager.
    pub traffic_manager: TrafficManagerConfig,
    /// Key Manager.
    pub key_manager: KeyManagerConfig,
    /// First-start admin account.
    pub admin: AdminConfig,
    /// Credential for the internal endpoints (`/internal/...`, Traffic Manager).
    pub internal: InternalConfig,
    /// Password checks: lock-out after failures and the hashing pool.
    pub passwords: PasswordsConfig,
}

/// Password checks (docs/keymanager.md, *Password checks*): every path that checks a user's
/// password locks an account or client address out after failures and hashes in a bounded
/// pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordsConfig {
    /// Failures per account or client address before the first lock-out.
    pub free_failures: u32,
    /// First lock-out in ms; doubles with each further failure.
    pub base_lockout_ms: u64,
    /// Longest lock-out in ms.
    pub max_lockout_ms: u64,
    /// PBKDF2 runs at the same time (blocking threads).
    pub max_concurrent: usize,
    /// Checks that may wait for a hashing slot; more are answered 503.
    pub max_waiting: usize,
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        let p = crate::store::PasswordPolicy::default();
        PasswordsConfig {
            free_failures: p.free_failures,
            base_lockout_ms: u64::try_from(p.base_lockout.as_millis()).unwrap_or(u64::MAX),
            max_lockout_ms: u64::try_from(p.max_lockout.as_millis()).unwrap_or(u64::MAX),
            max_concurrent: p.max_concurrent,
            max_waiting: p.max_waiting,
        }
    }
}

impl PasswordsConfig {
    /// The store's policy with these settings (the hashing cost and cache stay the defaults).
    pub fn policy(&self) -> crate::store::PasswordPolicy {
        crate::store::PasswordPolicy {
            free_failures: self.free_failures,
            base_lockout: std::time::Duration::from_millis(self.base_lockout_ms),
            max_lockout: std::time::Duration::from_millis(self.max_lockout_ms),
            max_concurrent: self.max_concurrent,
            max_waiting: self.max_waiting,
            ..crate::store::PasswordPolicy::default()
        }
    }

    fn validate(&self) -> Result<(), ApimError> {
        for (field, zero) in [
            ("passwords.free_failures", self.free_failures == 0),
            ("passwords.base_lockout_ms", self.base_lockout_ms == 0),
            ("passwords.max_concurrent", self.max_concurrent == 0),
        ] {
            if zero {
                return Err(ApimError::config(field, "must be greater than 0"));
            }
        }
        if self.max_lockout_ms < self.base_lockout_ms {
            return Err(ApimError::config(
                "passwords.max_lockout_ms",
                "must be at least passwords.base_lockout_ms",
            ));
        }
        Ok(())
    }
}

/// Database settings. Without URLs, SQLite at `<data_dir>/apim.db`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// One URL for both databases (`sqlite://...` or `postgres://...`).
    pub url: Option<String>,
    /// URL of apimgtdb (APIs, applications, subscriptions, tokens, events). Overrides `url`.
    pub apimgt_url: Option<String>,
    /// URL of shareddb (users and roles). Overrides `url`.
    pub shared_url: Option<String>,
    /// Pool size per database.
    pub max_connections: u32,
}

/// Control-plane listener ports (before the offset).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTPS port (9443).
    pub https_port: u16,
    /// Plain HTTP port for local use and TLS-terminating load balancers (9763).
    pub http_port: u16,
    /// Allow self-signup in the Developer Portal.
    pub self_signup: bool,
    /// PEM certificate chain; a development certificate is generated when unset.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Origins (`scheme://host[:port]`) besides the control plane's own from which browsers may
    /// change state through the REST APIs; any other `Origin` gets 403 (default: none).
    pub allowed_origins: Vec<String>,
    /// Addresses or CIDR ranges of the load balancers / reverse proxies in front of the control
    /// plane: for a connection from one of them the client's address is the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (default: none, the TCP peer
    /// is the client). Per-address password lock-out counts by this address.
    pub trusted_proxies: Vec<String>,
    /// Control-plane and Traffic Manager ports: a request head not complete, or a connection
    /// without a request, for this long (ms) is closed.
    pub idle_timeout_ms: u64,
    /// Control-plane and Traffic Manager ports: a response write that makes no progress for
    /// this long (ms; a client that stopped reading) closes the connection.
    pub send_timeout_ms: u64,
    /// Control-plane and Traffic Manager ports: most open connections per router (the plain and
    /// TLS port together); connections beyond it are closed at once.
    pub max_connections: usize,
}

/// Gateway settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// HTTP port (8280).
    pub http_port: u16,
    /// HTTPS port (8243).
    pub https_port: u16,
    /// WebSocket port (8099).
    pub ws_port: u16,
    /// Secure WebSocket port (9099).
    pub wss_port: u16,
    /// Environments (gateway labels) this gateway serves.
    pub environments: Vec<String>,
    /// Control plane base URL for the snapshot (`/internal/data/v1`).
    pub control_plane_url: String,
    /// Traffic Manager base URLs (event stream, throttle counts); several for failover.
    pub traffic_manager_urls: Vec<String>,
    /// Largest request body in bytes (per-API settings may lower it).
    pub max_body_bytes: u64,
    /// Largest request header block in bytes.
    pub max_header_bytes: usize,
    /// Whole-request timeout in ms.
    pub request_timeout_ms: u64,
    /// Backend connect timeout in ms.
    pub connect_timeout_ms: u64,
    /// Keep-alive idle timeout in ms.
    pub idle_timeout_ms: u64,
    /// Load balancers (addresses or CIDR ranges) in front of the gateway: for a request from
    /// one of them the client's address — for IP block conditions, API keys' `permittedIP` and
    /// the password lock-out — is the rightmost `X-Forwarded-For` entry that is not a trusted
    /// proxy (default: none, the TCP peer is the client).
    pub trusted_proxies: Vec<String>,
    /// Longest wait for the next bytes of a client's request body, in ms (then 408; the wait
    /// does not count against the backend endpoint's `actionDuration`).
    pub client_body_timeout_ms: u64,
    /// A response write to a client that makes no progress for this long (the client stopped
    /// reading) closes the connection, in ms.
    pub send_timeout_ms: u64,
    /// Maximum concurrent connections.
    pub max_connections: usize,
    /// Traffic runtimes: 0 (default) serves the traffic ports on the caller's tokio runtime;
    /// N ≥ 1 runs N threads, each with its own single-threaded runtime, its own
    /// `SO_REUSEPORT` listeners and its own backend connections, like nginx's worker
    /// processes (see docs/gateway.md).
    pub worker_threads: usize,
    /// How the OS schedules those worker threads: `batch` (default; Linux `SCHED_BATCH`) or
    /// `normal`. See [`WorkerScheduling`].
    pub worker_scheduling: WorkerScheduling,
    /// Which HTTP/1.1 server reads the traffic ports' requests: `native` (default) or
    /// `hyper`. See [`Http1Server`].
    pub http1_server: Http1Server,
    /// Send a signed backend JWT in `X-JWT-Assertion`.
    pub backend_jwt: bool,
    /// PEM certificate chain; a development certificate is generated when unset.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates trusted for `https` backends besides the public (webpki) roots:
    /// a private CA or a self-signed backend (WSO2's client trust store).
    pub backend_ca_file: Option<PathBuf>,
}

/// Scheduling policy of the gateway's worker threads (`gateway.worker_threads` ≥ 1).
///
/// With `batch` (the default) each worker thread runs under Linux's `SCHED_BATCH`: a worker
/// woken by network traffic no longer preempts the task running on its CPU (the load
/// generator, the backend, another worker), it takes its turn at the next scheduling point
/// and then handles what has arrived in one go. On a busy machine where the gateway shares
/// cores with its backend this cut the gateway's median p99 latency from 26 to 9 ms and
/// raised its throughput by a median 23 % (docs/benchmarks-history.md, run 6). Setting it needs no privilege; where
/// the OS refuses it, or off Linux, the threads keep the normal policy (logged). `normal`
/// leaves the OS default (`SCHED_OTHER`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WorkerScheduling {
    /// `SCHED_BATCH` (Linux).
    #[default]
    Batch,
    /// The OS default policy.
    Normal,
}

/// The HTTP/1.1 server of the gateway's traffic ports.
///
/// With `native` (the default) the gateway reads and answers the common request itself: an
/// HTTP/1.1 request without a body (or with `Content-Length: 0`), without `Upgrade`,
/// `Expect` or `Transfer-Encoding`, whose head is well-formed. Its head is parsed once into
/// the request the flow sees and the response head is written in one pass, which costs
/// less than hyper's general machinery. Any other request — a body, a WebSocket
/// handshake, HTTP/1.0, HTTP/2 (h2c or ALPN), a head that is malformed or too large — hands
/// the connection, with the bytes already read, to hyper for the rest of its life, so such
/// requests behave exactly as with `hyper`. `hyper` serves every connection with hyper.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Http1Server {
    /// The gateway's own HTTP/1.1 server for the common request, hyper for the rest.
    #[default]
    Native,
    /// hyper for every connection.
    Hyper,
}

/// Traffic Manager settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TrafficManagerConfig {
    /// Plain port (9611).
    pub port: u16,
    /// TLS port (9711).
    pub tls_port: u16,
    /// Redis URL to share counters between Traffic Managers; in memory when unset.
    pub redis_url: Option<String>,
    /// When the Traffic Manager is unreachable, gateways admit on local counts (true) or deny.
    pub fail_open: bool,
    /// Gateways report counts at least this often (ms).
    pub report_interval_ms: u64,
}

/// Key Manager settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct KeyManagerConfig {
    /// Token issuer (`iss`); defaults to `https://<hostname>:<https port>/oauth2/token`.
    pub issuer: Option<String>,
    /// Default access-token lifetime in seconds.
    pub access_token_lifetime_secs: u64,
    /// Default refresh-token lifetime in seconds.
    pub refresh_token_lifetime_secs: u64,
    /// Key Manager base URL, for profiles that do not run it in-process.
    pub url: Option<String>,
    /// Key-encryption key for the signing keys kept in the database (AES-256-GCM): 32 bytes,
    /// base64 or base64url (`APIM_KEY_MANAGER_KEY_ENCRYPTION_KEY`). Takes precedence over
    /// `key_encryption_key_file`.
    pub key_encryption_key: Option<String>,
    /// File holding the key-encryption key (base64, mode 0600). With neither set, one is
    /// generated into `<data_dir>/signing-keys.kek` (see [`Config::key_encryption_key`]).
    pub key_encryption_key_file: Option<PathBuf>,
    /// Longest access-token lifetime a client may have, seconds (registration asking for more is
    /// refused; longer stored lifetimes are cut to this).
    pub max_access_token_lifetime_secs: u64,
    /// Longest refresh-token lifetime a client may have, seconds.
    pub max_refresh_token_lifetime_secs: u64,
    /// Whether users without the admin role may register OAuth clients at `/oauth2/register`
    /// (their clients never get `apim:*` scopes).
    pub allow_user_client_registration: bool,
}

/// First-start admin account.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Admin user name.
    pub username: Option<String>,
    /// Admin password (`APIM_ADMIN_PASSWORD`); generated and printed once when unset.
    pub password: Option<String>,
}

/// Internal credential shared by the profiles of one deployment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct InternalConfig {
    /// Bearer token for `/internal/...` and the Traffic Manager; generated under the data dir
    /// when unset (fine for all-in-one; set it explicitly for a distributed deployment). At
    /// least 32 characters; the shipped configurations' placeholders are refused.
    pub token: Option<String>,
    /// PEM CA certificates that every internal HTTP client (gateway snapshot and event stream,
    /// Traffic Manager counts, remote Key Manager calls) trusts besides the public (webpki)
    /// roots: the deployment's private CA.
    pub ca_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./apim-data"),
            port_offset: 0,
            hostname: "localhost".into(),
            bind_address: "127.0.0.1".into(),
            database: DatabaseConfig::default(),
            server: ServerConfig::default(),
            gateway: GatewayConfig::default(),
            traffic_manager: TrafficManagerConfig::default(),
            key_manager: KeyManagerConfig::default(),
            admin: AdminConfig::default(),
            internal: InternalConfig::default(),
            passwords: PasswordsConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            apimgt_url: None,
            shared_url: None,
            max_connections: 10,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            https_port: 9443,
            http_port: 9763,
            self_signup: true,
            tls_cert: None,
            tls_key: None,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            idle_timeout_ms: 60_000,
            send_timeout_ms: 60_000,
            max_connections: 1_000,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            http_port: 8280,
            https_port: 8243,
            ws_port: 8099,
            wss_port: 9099,
            environments: vec!["Default".into()],
            control_plane_url: "http://localhost:9763".into(),
            traffic_manager_urls: vec!["http://localhost:9611".into()],
            max_body_bytes: 10 << 20,
            max_header_bytes: 16 << 10,
            request_timeout_ms: 60_000,
            connect_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            trusted_proxies: Vec::new(),
            client_body_timeout_ms: 30_000,
            send_timeout_ms: 60_000,
            max_connections: 10_000,
            worker_threads: 0,
            worker_scheduling: WorkerScheduling::default(),
            http1_server: Http1Server::default(),
            backend_jwt: false,
            tls_cert: None,
            tls_key: None,
            backend_ca_file: None,
        }
    }
}

impl Default for TrafficManagerConfig {
    fn default() -> Self {
        TrafficManagerConfig {
            port: 9611,
            tls_port: 9711,
            redis_url: None,
            fail_open: true,
            report_interval_ms: 250,
        }
    }
}

impl Default for KeyManagerConfig {
    fn default() -> Self {
        KeyManagerConfig {
            issuer: None,
            access_token_lifetime_secs: 3600,
            refresh_token_lifetime_secs: 86_400,
            url: None,
            key_encryption_key: None,
            key_encryption_key_file: None,
            max_access_token_lifetime_secs: 86_400,
            max_refresh_token_lifetime_secs: 30 * 86_400,
            allow_user_client_registration: false,
        }
    }
}

/// Effective ports (offset applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Control plane HTTPS.
    pub control_plane_https: u16,
    /// Control plane HTTP.
    pub control_plane_http: u16,
    /// Gateway HTTP.
    pub gateway_http: u16,
    /// Gateway HTTPS.
    pub gateway_https: u16,
    /// Gateway WS.
    pub gateway_ws: u16,
    /// Gateway WSS.
    pub gateway_wss: u16,
    /// Traffic Manager plain.
    pub traffic_manager: u16,
    /// Traffic Manager TLS.
    pub traffic_manager_tls: u16,
}

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// `sqlite:`
    Sqlite,
    /// `postgres:` / `postgresql:`
    Postgres,
}

impl Config {
    /// Loads `path` (if given) and applies `APIM_*` overrides from the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ApimError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| {
                ApimError::config("--config", format!("cannot read {}: {e}", p.display()))
            })?,
            None => String::new(),
        };
        Self::from_toml_and_env(&text, std::env::vars())
    }

    /// Parses TOML text without environment overrides.
    pub fn from_toml_str(text: &str) -> Result<Config, ApimError> {
        Self::from_toml_and_env(text, std::iter::empty())
    }

    /// Parses TOML text and applies the given `APIM_*` variables.
    pub fn from_toml_and_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ApimError> {
        let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ApimError::config(
                "config file",
                e.message().to_owned() + &span_hint(text, e.span()),
            )
        })?;
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| ApimError::Internal(format!("default config: {e}")))?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("APIM_") else {
                continue;
            };
            if rest.starts_with("TEST_") {
                continue;
            }
            let key = rest.to_ascii_lowercase();
            match find_key(&defaults, &key) {
                Some((section, field)) => {
                    set_override(&mut doc, &defaults, section, field, &value, &name)?
                }
                None => tracing::warn!(variable = %name, "ignoring unknown APIM_* variable"),
            }
        }
        let cfg: Config = serde_path_to_error::deserialize(doc).map_err(|e| {
            let path = e.path().to_string();
            ApimError::config(path, e.into_inner().message().to_owned())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks cross-field rules.
    pub fn validate(&self) -> Result<(), ApimError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ApimError::config("data_dir", "must not be empty"));
        }
        if self.hostname.is_empty() || self.hostname.contains(['/', ' ', '@']) {
            return Err(ApimError::config("hostname", "must be a host name"));
        }
        if self.bind_address.parse::<std::net::IpAddr>().is_err() {
            return Err(ApimError::config("bind_address", "must be an IP address"));
        }
        let ports = [
            ("server.https_port", self.server.https_port),
            ("server.http_port", self.server.http_port),
            ("gateway.http_port", self.gateway.http_port),
            ("gateway.https_port", self.gateway.https_port),
            ("gateway.ws_port", self.gateway.ws_port),
            ("gateway.wss_port", self.gateway.wss_port),
            ("traffic_manager.port", self.traffic_manager.port),
            ("traffic_manager.tls_port", self.traffic_manager.tls_port),
        ];
        for (field, p) in ports {
            if p == 0 {
                return Err(ApimError::config(field, "must not be 0"));
            }
            if u32::from(p) + u32::from(self.port_offset) > 65_535 {
                return Err(ApimError::config(
                    field,
                    format!("{p} + port_offset {} exceeds 65535", self.port_offset),
                ));
            }
        }
        for (field, url) in [
            ("database.url", &self.database.url),
            ("database.apimgt_url", &self.database.apimgt_url),
            ("database.shared_url", &self.database.shared_url),
        ] {
            if let Some(u) = url {
                db_kind(u).map_err(|m| ApimError::config(field, m))?;
            }
        }
        if self.database.max_connections == 0 {
            return Err(ApimError::config(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.gateway.worker_threads > 1024 {
            return Err(ApimError::config(
                "gateway.worker_threads",
                "must be at most 1024 (0 runs on the caller's runtime)",
            ));
        }
        if self.gateway.environments.is_empty() {
            return Err(ApimError::config(
                "gateway.environments",
                "must name at least one environment",
            ));
        }
        for (i, u) in std::iter::once(&self.gateway.control_plane_url)
            .chain(&self.gateway.traffic_manager_urls)
            .enumerate()
        {
            let field = if i == 0 {
                "gateway.control_plane_url".to_owned()
            } else {
                format!("gateway.traffic_manager_urls[{}]", i - 1)
            };
            let ok = u.parse::<http::Uri>().is_ok_and(|x| {
                matches!(x.scheme_str(), Some("http" | "https")) && x.host().is_some()
            });
            if !ok {
                return Err(ApimError::config(
                    field,
                    format!("'{u}' is not an http(s) URL"),
                ));
            }
        }
        for (field, v) in [
            (
                "gateway.request_timeout_ms",
                self.gateway.request_timeout_ms,
            ),
            (
                "gateway.connect_timeout_ms",
                self.gateway.connect_timeout_ms,
            ),
            ("gateway.idle_timeout_ms", self.gateway.idle_timeout_ms),
            (
                "gateway.client_body_timeout_ms",
                self.gateway.client_body_timeout_ms,
            ),
            ("gateway.send_timeout_ms", self.gateway.send_timeout_ms),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
            ("server.send_timeout_ms", self.server.send_timeout_ms),
            ("server.max_connections", self.server.max_connections as u64),
            ("gateway.max_body_bytes", self.gateway.max_body_bytes),
            (
                "traffic_manager.report_interval_ms",
                self.traffic_manager.report_interval_ms,
            ),
            (
                "key_manager.access_token_lifetime_secs",
                self.key_manager.access_token_lifetime_secs,
            ),
            (
                "key_manager.refresh_token_lifetime_secs",
                self.key_manager.refresh_token_lifetime_secs,
            ),
        ] {
            if v == 0 {
                return Err(ApimError::config(field, "must be greater than 0"));
            }
        }
        let km = &self.key_manager;
        if km.max_access_token_lifetime_secs < km.access_token_lifetime_secs {
            return Err(ApimError::config(
                "key_manager.max_access_token_lifetime_secs",
                "must be at least key_manager.access_token_lifetime_secs",
            ));
        }
        if km.max_refresh_token_lifetime_secs < km.refresh_token_lifetime_secs {
            return Err(ApimError::config(
                "key_manager.max_refresh_token_lifetime_secs",
                "must be at least key_manager.refresh_token_lifetime_secs",
            ));
        }
        if self.gateway.max_header_bytes < 1024 {
            return Err(ApimError::config(
                "gateway.max_header_bytes",
                "must be at least 1024",
            ));
        }
        if let Some(p) = &self.admin.password {
            if p.chars().count() < 8 {
                return Err(ApimError::config(
                    "admin.password",
                    "must be at least 8 characters",
                ));
            }
        }
        if let Some(t) = &self.internal.token {
            check_internal_token(t)?;
        }
        if let Some(k) = &self.key_manager.key_encryption_key {
            decode_kek(k).map_err(|m| ApimError::config("key_manager.key_encryption_key", m))?;
        }
        self.passwords.validate()?;
        for (section, list) in [
            ("server", &self.server.trusted_proxies),
            ("gateway", &self.gateway.trusted_proxies),
        ] {
            for (i, p) in list.iter().enumerate() {
                crate::auth::key_limits::IpRange::parse(p)
                    .map_err(|m| ApimError::config(format!("{section}.trusted_proxies[{i}]"), m))?;
            }
        }
        for (i, o) in self.server.allowed_origins.iter().enumerate() {
            let ok = o.parse::<http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https"))
                    && u.host().is_some_and(|h| !h.is_empty())
                    && u.authority().is_some_and(|a| !a.as_str().contains('@'))
                    && matches!(u.path(), "" | "/")
                    && u.query().is_none()
            });
            if !ok {
                return Err(ApimError::config(
                    format!("server.allowed_origins[{i}]"),
                    format!("'{o}' is not an origin (scheme://host[:port], e.g. https://portal.example.com)"),
                ));
            }
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(ApimError::config(
                "server.tls_key",
                "tls_cert and tls_key must be set together",
            ));
        }
        if self.gateway.tls_cert.is_some() != self.gateway.tls_key.is_some() {
            return Err(ApimError::config(
                "gateway.tls_key",
                "tls_cert and tls_key must be set together",
            ));
        }
        Ok(())
    }

    /// Effective ports with the offset applied.
    pub fn ports(&self) -> Ports {
        let o = self.port_offset;
        Ports {
            control_plane_https: self.server.https_port + o,
            control_plane_http: self.server.http_port + o,
            gateway_http: self.gateway.http_port + o,
            gateway_https: self.gateway.https_port + o,
            gateway_ws: self.gateway.ws_port + o,
            gateway_wss: self.gateway.wss_port + o,
            traffic_manager: self.traffic_manager.port + o,
            traffic_manager_tls: self.traffic_manager.tls_port + o,
        }
    }

    /// The internal credential: `internal.token`, else the one kept in `<data_dir>/internal.token`
    /// (created with mode 0600 on first use — fine for all-in-one and single-host setups; set
    /// `internal.token` explicitly for a distributed deployment so every node shares it).
    pub fn internal_token(&self) -> Result<String, ApimError> {
        if let Some(t) = &self.internal.token {
            return Ok(t.clone());
        }
        let path = self.data_dir.join("internal.token");
        match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ApimError::config(
                    "internal.token",
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        }
        let token = crate::crypto::random_secret()?;
        match write_new_private(&self.data_dir, &path, &token) {
            Ok(()) => Ok(token),
            // another profile of this host created it first: use theirs
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_owned())
                    .map_err(|e| {
                        ApimError::config(
                            "internal.token",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })
            }
            Err(e) => Err(ApimError::config(
                "internal.token",
                format!("cannot write {}: {e}", path.display()),
            )),
        }
    }

    /// The key-encryption key that seals the signing keys in the database (32 bytes):
    /// `key_manager.key_encryption_key` (or `APIM_KEY_MANAGER_KEY_ENCRYPTION_KEY`), else the file
    /// `key_manager.key_encryption_key_file`, else `<data_dir>/signing-keys.kek`, generated
    /// with mode 0600 on first use. The generated file sits next to the SQLite database: it
    /// protects database dumps and backups (and a PostgreSQL database read by someone else),
    /// not a reader of the whole data directory — keep the key elsewhere for that.
    pub fn key_encryption_key(&self) -> Result<[u8; 32], ApimError> {
        if let Some(k) = &self.key_manager.key_encryption_key {
            return decode_kek(k)
                .map_err(|m| ApimError::config("key_manager.key_encryption_key", m));
        }
        let field = "key_manager.key_encryption_key_file";
        if let Some(p) = &self.key_manager.key_encryption_key_file {
            let text = std::fs::read_to_string(p).map_err(|e| {
                ApimError::config(field, format!("cannot read {}: {e}", p.display()))
            })?;
            return decode_kek(text.trim())
                .map_err(|m| ApimError::config(field, format!("{}: {m}", p.display())));
        }
        let path = self.data_dir.join("signing-keys.kek");
        match std::fs::read_to_string(&path) {
            Ok(t) => {
                return decode_kek(t.trim())
                    .map_err(|m| ApimError::config(field, format!("{}: {m}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ApimError::config(
                    field,
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        }
        let key = crate::crypto::random_bytes(32)?;
        let text = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key);
        match write_new_private(&self.data_dir, &path, &text) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated the signing keys' key-encryption key");
                decode_kek(&text).map_err(|m| ApimError::config(field, m))
            }
            // another profile of this host created it first: use theirs
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let t = std::fs::read_to_string(&path).map_err(|e| {
                    ApimError::config(field, format!("cannot read {}: {e}", path.display()))
                })?;
                decode_kek(t.trim())
                    .map_err(|m| ApimError::config(field, format!("{}: {m}", path.display())))
            }
            Err(e) => Err(ApimError::config(
                field,
                format!("cannot write {}: {e}", path.display()),
            )),
        }
    }

    /// Creates the data directory owner-only (0700) and takes group and other access away
    /// from it and from the files the profiles keep in it (database, keys, tokens,
    /// certificates): a
    /// data directory made by an older version (0755, files 0644) is tightened at start.
    pub fn secure_data_dir(&self) -> Result<(), ApimError> {
        secure_dir(&self.data_dir)
            .map_err(|e| ApimError::config("data_dir", format!("{}: {e}", self.data_dir.display())))
    }

    /// URL of apimgtdb: the explicit one, else `url`, else SQLite under the data dir.
    pub fn apimgt_url(&self) -> String {
        self.database
            .apimgt_url
            .clone()
            .or_else(|| self.database.url.clone())
            .unwrap_or_else(|| self.sqlite_url())
    }

    /// URL of shareddb: the explicit one, else `url`, else the apimgtdb URL.
    pub fn shared_url(&self) -> String {
        self.database
            .shared_url
            .clone()
            .or_else(|| self.database.url.clone())
            .unwrap_or_else(|| self.apimgt_url())
    }

    fn sqlite_url(&self) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            self.data_dir.join("apim.db").display()
        )
    }
}

/// Placeholder values of `internal.token` that configuration files and examples have shipped
/// (and that copy-pasted configurations would carry): refused at start.
const PLACEHOLDER_TOKENS: &[&str] = &[
    "change-me",
    "changeme",
    "replace-me",
    "placeholder",
    "your-token",
    "example",
];
/// Shortest accepted `internal.token` (a generated one has 43 characters, 256 bits).
pub const MIN_INTERNAL_TOKEN_LEN: usize = 32;

fn check_internal_token(t: &str) -> Result<(), ApimError> {
    let lower = t.to_ascii_lowercase();
    if let Some(p) = PLACEHOLDER_TOKENS.iter().find(|p| lower.contains(*p)) {
        return Err(ApimError::config(
            "internal.token",
            format!("is a placeholder ('{p}'): set a random value, e.g. `openssl rand -base64 32`"),
        ));
    }
    if t.chars().count() < MIN_INTERNAL_TOKEN_LEN {
        return Err(ApimError::config(
            "internal.token",
            format!("must be at least {MIN_INTERNAL_TOKEN_LEN} characters"),
        ));
    }
    if t.bytes().all(|b| b == t.as_bytes()[0]) {
        return Err(ApimError::config(
            "internal.token",
            "must be a random value",
        ));
    }
    Ok(())
}

/// A key-encryption key: 32 bytes in base64 (standard or URL-safe, padded or not).
fn decode_kek(text: &str) -> Result<[u8; 32], String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(text.trim()).ok())
        .ok_or("must be base64 (32 random bytes, e.g. `openssl rand -base64 32`)")?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("must be 32 bytes, is {}", b.len()))
}

/// Writes `text` to a new file `path` (mode 0600) in `dir` (created 0700 if missing); fails
/// with `AlreadyExists` if another process made it first.
fn write_new_private(dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    secure_dir(dir)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(path)?, text.as_bytes())
}

/// The files the profiles keep in the data directory besides the SQLite database (`apim.db*`).
const DATA_DIR_FILES: &[&str] = &[
    "internal.token",
    "admin-password",
    "signing-keys.kek",
    "gateway-key.pem",
    "gateway-cert.pem",
];

/// Creates `dir` (mode 0700) if missing; removes group and other permissions from it and
/// from the files the profiles keep in it (a data dir pointed at a shared directory does not
/// get every other file in it changed).
fn secure_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let tighten = |p: &Path, meta: &std::fs::Metadata| -> std::io::Result<()> {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o700))?;
                tracing::info!(path = %p.display(), from = format!("{mode:o}"), to = format!("{:o}", mode & 0o700), "tightened permissions");
            }
            Ok(())
        };
        tighten(dir, &std::fs::metadata(dir)?)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let ours = name
                .to_str()
                .is_some_and(|n| n.starts_with("apim.db") || DATA_DIR_FILES.contains(&n));
            let meta = entry.metadata()?; // does not follow symlinks
            if ours && meta.is_file() {
                tighten(&entry.path(), &meta)?;
            }
        }
    }
    Ok(())
}

/// Creates the SQLite database file of `url` (mode 0600) if it does not exist, so that SQLite,
/// which gives its `-wal` and `-shm` files the database's mode, never makes any of them
/// readable by others; an existing file loses group and other access.
pub fn precreate_sqlite_file(url: &str) -> std::io::Result<()> {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(());
    };
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') || path.contains("mode=memory") {
        return Ok(());
    }
    let path = Path::new(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            if let Ok(m) = std::fs::metadata(&side) {
                let mode = m.permissions().mode() & 0o7777;
                if m.is_file() && mode & 0o077 != 0 {
                    std::fs::set_permissions(&side, std::fs::Permissions::from_mode(mode & 0o700))?;
                }
            }
        }
    }
    drop(file);
    Ok(())
}

/// Classifies a database URL.
pub fn db_kind(url: &str) -> Result<DbKind, String> {
    if url.starts_with("sqlite:") {
        Ok(DbKind::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DbKind::Postgres)
    } else {
        Err(format!(
            "'{}' must start with sqlite: or postgres://",
            redact(url)
        ))
    }
}

/// A URL with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// Finds `(section, field)` in the defaults whose `section_field` (or `field`) equals `key`.
fn find_key<'a>(defaults: &'a toml::Table, key: &str) -> Option<(Option<&'a str>, &'a str)> {
    for (name, v) in defaults {
        match v {
            toml::Value::Table(t) => {
                if let Some(rest) = key
                    .strip_prefix(name.as_str())
                    .and_then(|r| r.strip_prefix('_'))
                {
                    if let Some((field, _)) = t.get_key_value(rest) {
                        return Some((Some(name), field));
                    }
                }
            }
            _ if name == key => return Some((None, name)),
            _ => {}
        }
    }
    // Optional keys are absent from the serialised defaults; accept the known ones.
    const OPTIONAL: &[(&str, &str)] = &[
        ("database", "url"),
        ("database", "apimgt_url"),
        ("database", "shared_url"),
        ("server", "tls_cert"),
        ("server", "tls_key"),
        ("gateway", "tls_cert"),
        ("gateway", "tls_key"),
        ("gateway", "backend_ca_file"),
        ("traffic_manager", "redis_url"),
        ("key_manager", "issuer"),
        ("key_manager", "url"),
        ("key_manager", "key_encryption_key"),
        ("key_manager", "key_encryption_key_file"),
        ("admin", "username"),
        ("admin", "password"),
        ("internal", "token"),
        ("internal", "ca_file"),
    ];
    OPTIONAL
        .iter()
        .find(|(s, f)| key == format!("{s}_{f}"))
        .and_then(|(s, f)| {
            let (s, _) = defaults.get_key_value(*s)?;
            Some((Some(s.as_str()), *f))
        })
}

fn set_override(
    doc: &mut toml::Table,
    defaults: &toml::Table,
    section: Option<&str>,
    field: &str,
    raw: &str,
    var: &str,
) -> Result<(), ApimError> {
    let default = match section {
        Some(s) => defaults.get(s).and_then(|t| t.get(field)),
        None => defaults.get(field),
    };
    let bad = |what: &str| ApimError::config(var, format!("'{raw}' is not {what}"));
    let value = match default {
        Some(toml::Value::Integer(_)) => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?)
        }
        Some(toml::Value::Boolean(_)) => {
            toml::Value::Boolean(raw.trim().parse().map_err(|_| bad("true or false"))?)
        }
        Some(toml::Value::Array(_)) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.into()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_owned()),
    };
    let table = match section {
        Some(s) => doc
            .entry(s.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| ApimError::config(s, "must be a table"))?,
        None => doc,
    };
    table.insert(field.to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn field_of(r: Result<Config, ApimError>) -> String {
        match r {
            Err(ApimError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_seed_ports() {
        let c = Config::from_toml_str("").unwrap();
        let p = c.ports();
        assert_eq!(
            (
                p.control_plane_https,
                p.control_plane_http,
                p.gateway_http,
                p.gateway_https,
                p.gateway_ws,
                p.gateway_wss,
                p.traffic_manager,
                p.traffic_manager_tls
            ),
            (9443, 9763, 8280, 8243, 8099, 9099, 9611, 9711)
        );
        assert!(c.apimgt_url().starts_with("sqlite://"));
    }

    #[test]
    fn env_overrides_file() {
        let c = Config::from_toml_and_env(
            "port_offset = 1\n[gateway]\nhttp_port = 9000\n",
            env(&[
                ("APIM_GATEWAY_HTTP_PORT", "9100"),
                ("APIM_PORT_OFFSET", "2"),
                ("APIM_GATEWAY_ENVIRONMENTS", "Default, Internal"),
                ("APIM_DATABASE_APIMGT_URL", "postgres://u:p@h/apimgtdb"),
                ("APIM_TRAFFIC_MANAGER_FAIL_OPEN", "false"),
                ("APIM_GATEWAY_WORKER_THREADS", "2"),
                ("APIM_GATEWAY_WORKER_SCHEDULING", "normal"),
                ("APIM_GATEWAY_HTTP1_SERVER", "hyper"),
                ("APIM_TEST_POSTGRES_URL", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.ports().gateway_http, 9102);
        assert_eq!(c.gateway.worker_threads, 2);
        assert_eq!(c.gateway.worker_scheduling, WorkerScheduling::Normal);
        assert_eq!(
            Config::default().gateway.worker_scheduling,
            WorkerScheduling::Batch
        );
        assert_eq!(c.gateway.http1_server, Http1Server::Hyper);
        assert_eq!(Config::default().gateway.http1_server, Http1Server::Native);
        assert_eq!(c.gateway.environments, vec!["Default", "Internal"]);
        assert_eq!(c.apimgt_url(), "postgres://u:p@h/apimgtdb");
        assert!(!c.traffic_manager.fail_open);
    }

    #[test]
    fn bad_config_names_the_field() {
        assert_eq!(
            field_of(Config::from_toml_str("[gateway]\nhttp_port = \"x\"\n")),
            "gateway.http_port"
        );
        assert_eq!(
            field_of(Config::from_toml_str("[gateway]\nhttp_prt = 1\n")),
            "gateway.http_prt"
        );
        assert_eq!(
            field_of(Config::from_toml_str("[gateway]\nworker_threads = 5000\n")),
            "gateway.worker_threads"
        );
        assert_eq!(
            field_of(Config::from_toml_str(
                "[gateway]\nworker_scheduling = \"fifo\"\n"
            )),
            "gateway.worker_scheduling"
        );
        assert_eq!(
            field_of(Config::from_toml_str("[gateway]\nhttp1_server = \"h2\"\n")),
            "gateway.http1_server"
        );
        assert_eq!(
            field_of(Config::from_toml_str("[gateway]\nhttp_port = 70000\n")),
            "gateway.http_port"
        );
        assert_eq!(
            field_of(Config::from_toml_str("port_offset = 65000\n")),
            "server.https_port"
        );
        assert_eq!(
            field_of(Config::from_toml_str("[database]\nurl = \"mysql://x\"\n")),
            "database.url"
        );
        assert_eq!(
            field_of(Config::from_toml_str("[gateway]\nenvironments = []\n")),
            "gateway.environments"
        );
        assert_eq!(
            field_of(Config::from_toml_str("this is = not toml")),
            "config file"
        );
        assert_eq!(
            field_of(Config::from_toml_and_env(
                "",
                env(&[("APIM_GATEWAY_HTTP_PORT", "eighty")])
            )),
            "APIM_GATEWAY_HTTP_PORT"
        );
        assert_eq!(
            field_of(Config::from_toml_str("[admin]\npassword = \"short\"\n")),
            "admin.password"
        );
        assert_eq!(
            field_of(Config::from_toml_str(
                "[key_manager]\nmax_access_token_lifetime_secs = 60\n"
            )),
            "key_manager.max_access_token_lifetime_secs"
        );
        assert_eq!(
            field_of(Config::from_toml_str(
                "[key_manager]\nrefresh_token_lifetime_secs = 90000\nmax_refresh_token_lifetime_secs = 86400\n"
            )),
            "key_manager.max_refresh_token_lifetime_secs"
        );
        let c = Config::from_toml_and_env(
            "",
            env(&[("APIM_KEY_MANAGER_ALLOW_USER_CLIENT_REGISTRATION", "true")]),
        )
        .expect("config");
        assert!(c.key_manager.allow_user_client_registration);
        assert!(!Config::default().key_manager.allow_user_client_registration);
    }

    /// Issue 18 item 23: placeholders and short internal tokens stop start-up naming the field;
    /// the default listen address is this host only; a key-encryption key must be 32 bytes.
    #[test]
    fn insecure_settings_are_refused() {
        for t in [
            "change-me-to-a-long-random-value",
            "CHANGEME-0123456789abcdefghijklmnopqrstuvwxyz",
            "short-but-random-9f8e7d",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(
                field_of(Config::from_toml_str(&format!(
                    "[internal]\ntoken = \"{t}\"\n"
                ))),
                "internal.token",
                "{t}"
            );
            assert_eq!(
                field_of(Config::from_toml_and_env(
                    "",
                    env(&[("APIM_INTERNAL_TOKEN", t)])
                )),
                "internal.token",
                "{t}"
            );
        }
        let ok = Config::from_toml_str(
            "[internal]\ntoken = \"Jc2Vh0rXkq9pZ3mB7tL1wYf5sN8dQ4aE6uR0iO2\"\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(Config::default().bind_address, "127.0.0.1");
        assert_eq!(
            field_of(Config::from_toml_str(
                "[key_manager]\nkey_encryption_key = \"c2hvcnQ=\"\n"
            )),
            "key_manager.key_encryption_key"
        );
        let c = Config::from_toml_and_env(
            "",
            env(&[(
                "APIM_KEY_MANAGER_KEY_ENCRYPTION_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            )]),
        )
        .unwrap();
        let k = c.key_encryption_key().unwrap();
        assert_eq!(k[31], 31);
        assert_eq!(
            field_of(Config::from_toml_str("[server]\nidle_timeout_ms = 0\n")),
            "server.idle_timeout_ms"
        );
    }

    /// Issue 18 item 8: the data dir becomes 0700 and the files in it 0600; the generated
    /// key-encryption key is created 0600 and read back.
    #[cfg(unix)]
    #[test]
    fn data_dir_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("apim.db"), b"").unwrap();
        std::fs::set_permissions(d.join("apim.db"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let c = Config {
            data_dir: d.clone(),
            ..Config::default()
        };
        std::fs::write(d.join("notes.txt"), b"").unwrap();
        std::fs::set_permissions(d.join("notes.txt"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        c.secure_data_dir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("apim.db")), 0o600);
        assert_eq!(
            mode(&d.join("notes.txt")),
            0o644,
            "not one of ours: left alone"
        );
        let k = c.key_encryption_key().unwrap();
        assert_eq!(mode(&d.join("signing-keys.kek")), 0o600);
        assert_eq!(
            c.key_encryption_key().unwrap(),
            k,
            "read back, not regenerated"
        );
        let fresh = Config {
            data_dir: dir.path().join("new/nested"),
            ..Config::default()
        };
        fresh.internal_token().unwrap();
        assert_eq!(mode(&fresh.data_dir), 0o700);
        assert_eq!(mode(&fresh.data_dir.join("internal.token")), 0o600);
    }

    #[test]
    fn password_settings() {
        let c = Config::from_toml_and_env(
            "[passwords]\nfree_failures = 3\nmax_lockout_ms = 60000\n",
            env(&[("APIM_PASSWORDS_MAX_CONCURRENT", "4")]),
        )
        .unwrap();
        let p = c.passwords.policy();
        assert_eq!(p.free_failures, 3);
        assert_eq!(p.max_lockout, std::time::Duration::from_secs(60));
        assert_eq!(p.max_concurrent, 4);
        assert_eq!(
            Config::default().passwords.policy(),
            crate::store::PasswordPolicy::default()
        );
        for (toml, field) in [
            ("free_failures = 0", "passwords.free_failures"),
            ("max_concurrent = 0", "passwords.max_concurrent"),
            (
                "base_lockout_ms = 5000\nmax_lockout_ms = 1000",
                "passwords.max_lockout_ms",
            ),
        ] {
            assert_eq!(
                field_of(Config::from_toml_str(&format!("[passwords]\n{toml}\n"))),
                field
            );
        }
    }

    #[test]
    fn trusted_proxies_must_be_addresses_or_ranges() {
        let ok = Config::from_toml_str(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]\n",
        )
        .unwrap();
        assert_eq!(ok.server.trusted_proxies.len(), 3);
        for bad in ["lb.example.com", "10.0.0.0/33", "*"] {
            assert_eq!(
                field_of(Config::from_toml_str(&format!(
                    "[server]\ntrusted_proxies = [\"10.0.0.1\", \"{bad}\"]\n"
                ))),
                "server.trusted_proxies[1]",
                "{bad}"
            );
            assert_eq!(
                field_of(Config::from_toml_str(&format!(
                    "[gateway]\ntrusted_proxies = [\"{bad}\"]\n"
                ))),
                "gateway.trusted_proxies[0]",
                "{bad}"
            );
        }
    }

    #[test]
    fn allowed_origins_must_be_origins() {
        let ok = Config::from_toml_str(
            "[server]\nallowed_origins = [\"https://portal.example.com\", \"http://127.0.0.1:3000\"]\n",
        )
        .unwrap();
        assert_eq!(ok.server.allowed_origins.len(), 2);
        assert!(Config::default().server.allowed_origins.is_empty());
        for bad in [
            "*",
            "null",
            "portal.example.com",
            "https://portal.example.com/app",
            "https://u@portal.example.com",
            "ftp://portal.example.com",
        ] {
            assert_eq!(
                field_of(Config::from_toml_str(&format!(
                    "[server]\nallowed_origins = [\"https://ok.example\", \"{bad}\"]\n"
                ))),
                "server.allowed_origins[1]",
                "{bad}"
            );
        }
    }

    #[test]
    fn internal_token_is_generated_once_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config {
            data_dir: dir.path().join("d"),
            ..Config::default()
        };
        let a = c.internal_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_eq!(
            c.internal_token().unwrap(),
            a,
            "a second profile on the host reads the same token"
        );
        c.internal.token = Some("explicit-token-value-123".into());
        assert_eq!(c.internal_token().unwrap(), "explicit-token-value-123");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        let e = Config::from_toml_str("[database]\nurl = \"mysql://u:secret@h/db\"\n").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
