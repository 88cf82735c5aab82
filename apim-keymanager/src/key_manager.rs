//! [`KeyManager`]: the authorization server's state, its settings and its axum router.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apim_core::config::Config;
use apim_core::model::User;
use apim_core::store::Store;
use apim_core::ApimError;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::form::MAX_FORM_BYTES;
use crate::jwks::{JwkSet, JwksSource};
use crate::keys::{Algorithm, KeyRing, SigningKey};

/// Settings of a Key Manager.
#[derive(Clone)]
pub struct KeyManagerSettings {
    /// `iss` of issued tokens.
    pub issuer: String,
    /// Base URL the endpoints are published under in the metadata document
    /// (e.g. `https://km.example.com:9443`).
    pub base_url: String,
    /// Default access-token lifetime (a client's own lifetime overrides it).
    pub access_token_lifetime: Duration,
    /// Default refresh-token lifetime.
    pub refresh_token_lifetime: Duration,
    /// Audiences added to every token besides the client id.
    pub audiences: Vec<String>,
    /// Bearer token that may call `/oauth2/register` (RFC 7591 initial access token), besides
    /// management users with HTTP Basic.
    pub initial_access_token: Option<String>,
    /// Unused: how long a successful password check is remembered is the store's
    /// [`apim_core::store::PasswordPolicy::cache_ttl`] (one cache for every password path).
    pub user_cache_ttl: Duration,
    /// The deployment's internal token: what gateways present to check user credentials
    /// ([`crate::internal`]); unset, the internal endpoints refuse every call.
    pub internal_token: Option<String>,
    /// Seals the signing keys in the store (AES-256-GCM); the profiles set it from
    /// `Config::key_encryption_key`. Unset, keys are stored in plaintext (a warning is logged).
    pub key_encryption_key: Option<crate::keys::KeyEncryptionKey>,
    /// Longest access-token lifetime a client may ask for (registration refuses more; a longer
    /// stored lifetime is cut to this when a token is issued).
    pub max_access_token_lifetime: Duration,
    /// Longest refresh-token lifetime a client may ask for.
    pub max_refresh_token_lifetime: Duration,
    /// Whether users without the admin role may register clients at `/oauth2/register`.
    pub allow_user_client_registration: bool,
}

impl std::fmt::Debug for KeyManagerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManagerSettings")
            .field("issuer", &self.issuer)
            .field("base_url", &self.base_url)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("refresh_token_lifetime", &self.refresh_token_lifetime)
            .field("audiences", &self.audiences)
            .field(
                "initial_access_token",
                &self.initial_access_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "internal_token",
                &self.internal_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_access_token_lifetime", &self.max_access_token_lifetime)
            .field(
                "max_refresh_token_lifetime",
                &self.max_refresh_token_lifetime,
            )
            .field(
                "allow_user_client_registration",
                &self.allow_user_client_registration,
            )
            .finish()
    }
}

impl KeyManagerSettings {
    /// Settings for endpoints served under `base_url`, issuer `<base_url>/oauth2/token`.
    pub fn new(base_url: &str) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        KeyManagerSettings {
            issuer: format!("{base_url}/oauth2/token"),
            base_url,
            access_token_lifetime: Duration::from_secs(3600),
            refresh_token_lifetime: Duration::from_secs(86400),
            audiences: Vec::new(),
            initial_access_token: None,
            user_cache_ttl: Duration::from_secs(60),
            internal_token: None,
            key_encryption_key: None,
            max_access_token_lifetime: Duration::from_secs(86_400),
            max_refresh_token_lifetime: Duration::from_secs(30 * 86_400),
            allow_user_client_registration: false,
        }
    }

    /// Settings from the configuration: base URL `https://<hostname>:<control-plane https port>`,
    /// issuer from `key_manager.issuer` or `<base>/oauth2/token`, lifetimes from `[key_manager]`.
    pub fn from_config(config: &Config) -> Self {
        let base = format!(
            "https://{}:{}",
            config.hostname,
            config.ports().control_plane_https
        );
        let mut s = KeyManagerSettings::new(&base);
        if let Some(iss) = &config.key_manager.issuer {
            s.issuer = iss.clone();
        }
        if config.key_manager.access_token_lifetime_secs > 0 {
            s.access_token_lifetime =
                Duration::from_secs(config.key_manager.access_token_lifetime_secs);
        }
        if config.key_manager.refresh_token_lifetime_secs > 0 {
            s.refresh_token_lifetime =
                Duration::from_secs(config.key_manager.refresh_token_lifetime_secs);
        }
        s.max_access_token_lifetime =
            Duration::from_secs(config.key_manager.max_access_token_lifetime_secs)
                .max(s.access_token_lifetime);
        s.max_refresh_token_lifetime =
            Duration::from_secs(config.key_manager.max_refresh_token_lifetime_secs)
                .max(s.refresh_token_lifetime);
        s.allow_user_client_registration = config.key_manager.allow_user_client_registration;
        s
    }
}

/// The Key Manager: an OAuth2 authorization server over the [`Store`]. Cheap to clone.
///
/// ```no_run
/// # async fn run(store: apim_core::store::Store) -> Result<(), apim_core::ApimError> {
/// use apim_keymanager::{KeyManager, KeyManagerSettings};
/// let km = KeyManager::new(store, KeyManagerSettings::new("http://localhost:9763")).await?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9763").await.unwrap();
/// axum::serve(listener, km.router()).await.unwrap();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeyManager {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) settings: KeyManagerSettings,
    keys: RwLock<Arc<KeyRing>>,
    jwks: JwksSource,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl KeyManager {
    /// Opens the Key Manager: loads the signing keys from the store, generating an ES256 key on
    /// first start.
    pub async fn new(store: Store, settings: KeyManagerSettings) -> Result<KeyManager, ApimError> {
        if settings.key_encryption_key.is_none() {
            tracing::warn!("no key-encryption key: signing keys are kept in the store unencrypted");
        }
        let ring = KeyRing::load_or_generate(&store, settings.key_encryption_key.as_ref()).await?;
        let jwks = JwksSource::fixed(&ring.jwks());
        Ok(KeyManager {
            inner: Arc::new(Inner {
                store,
                settings,
                keys: RwLock::new(Arc::new(ring)),
                jwks,
            }),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings.
    pub fn settings(&self) -> &KeyManagerSettings {
        &self.inner.settings
    }

    /// The keys in force.
    pub fn key_ring(&self) -> Arc<KeyRing> {
        match self.inner.keys.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The public keys (what `/oauth2/jwks` serves).
    pub fn jwks(&self) -> JwkSet {
        self.key_ring().jwks()
    }

    /// The in-process key source for validators; follows key rotation.
    pub fn jwks_source(&self) -> JwksSource {
        self.inner.jwks.clone()
    }

    /// Adds a supplied PKCS#8 key (RS256, EdDSA or ES256). With `active`, new tokens are signed
    /// with it; tokens signed with the older keys stay valid until they expire.
    pub async fn add_signing_key(
        &self,
        kid: &str,
        alg: Algorithm,
        pkcs8_der: &[u8],
        active: bool,
    ) -> Result<(), ApimError> {
        KeyRing::import(
            &self.inner.store,
            self.inner.settings.key_encryption_key.as_ref(),
            kid,
            alg,
            pkcs8_der,
            active,
        )
        .await?;
        self.reload_keys().await
    }

    /// Generates a new ES256 key and makes it active (key rotation).
    pub async fn rotate_key(&self) -> Result<String, ApimError> {
        let kid = apim_core::crypto::new_id();
        let (_, der) = SigningKey::generate_es256(&kid)?;
        self.add_signing_key(&kid, Algorithm::ES256, &der, true)
            .await?;
        Ok(kid)
    }

    async fn reload_keys(&self) -> Result<(), ApimError> {
        let ring = KeyRing::load_or_generate(
            &self.inner.store,
            self.inner.settings.key_encryption_key.as_ref(),
        )
        .await?;
        self.inner.jwks.set(&ring.jwks());
        let ring = Arc::new(ring);
        match self.inner.keys.write() {
            Ok(mut g) => *g = ring,
            Err(p) => *p.into_inner() = ring,
        }
        Ok(())
    }

    /// Checks a user's password through the store's one password check
    /// ([`Store::check_password`]): lock-out after repeated failures (429 with `Retry-After`,
    /// no hashing), PBKDF2 in a bounded pool (503 when full), the same work for unknown users,
    /// and successes remembered per credential version, so a changed password, a deleted user
    /// or new roles take effect at once.
    pub async fn verify_user(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, ApimError> {
        self.verify_user_from(username, password, None).await
    }

    /// [`KeyManager::verify_user`] for a client at `from` (failures also count against the
    /// address).
    pub async fn verify_user_from(
        &self,
        username: &str,
        password: &str,
        from: Option<IpAddr>,
    ) -> Result<Option<User>, ApimError> {
        self.inner
            .store
            .check_password(username, password, from)
            .await
    }

    /// The HTTP endpoints: `/oauth2/{token,revoke,introspect,jwks,register,authorize}`, the
    /// metadata documents under `/.well-known/`, and the gateways' user check
    /// ([`crate::internal::USER_VERIFY_PATH`], internal token).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/oauth2/token", post(crate::token_endpoint::token))
            .route("/oauth2/revoke", post(crate::revoke::revoke))
            .route("/oauth2/introspect", post(crate::introspect::introspect))
            .route("/oauth2/jwks", get(crate::metadata::jwks))
            .route("/oauth2/register", post(crate::register::register))
            .route(
                crate::internal::USER_VERIFY_PATH,
                post(crate::internal::verify_user),
            )
            .route(
                "/oauth2/authorize",
                get(crate::authorize::page).post(crate::authorize::submit),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(crate::metadata::metadata),
            )
            .route(
                "/.well-known/openid-configuration",
                get(crate::metadata::metadata),
            )
            .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
            .with_state(self.clone())
    }
}
