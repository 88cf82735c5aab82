//! [`JwtValidator`]: self-contained JWT access tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apim_core::artifacts::{ArtifactStore, RouteMatch};
use apim_core::auth::{AuthContext, CredentialKind, KeyValidator, RequestMeta};
use apim_core::model::KeyType;
use apim_core::time::now_secs;
use apim_core::ApimError;
use moka::sync::Cache;

use super::{bearer, bearer_bytes, thread_answers, token_hash, AuthMemo};
use crate::jwks::JwksSource;
use crate::jwt::{check_claims, Claims, JwtError, Validation};

/// A validated credential in the cache.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) ctx: Arc<AuthContext>,
    pub(crate) exp: i64,
    pub(crate) jti: String,
    /// The last authorisation made with it.
    pub(crate) memo: AuthMemo,
}

/// Keeps each entry until its credential expires (and at most `max`).
pub(crate) struct UntilExpiry {
    pub(crate) max: Duration,
}

impl moka::Expiry<[u8; 32], Arc<Cached>> for UntilExpiry {
    fn expire_after_create(&self, _: &[u8; 32], v: &Arc<Cached>, _: Instant) -> Option<Duration> {
        let left = u64::try_from(v.exp - now_secs()).unwrap_or(0);
        Some(Duration::from_secs(left).min(self.max))
    }
}

/// Verified credentials by SHA-256 of the credential. The keys are digests (uniform, not
/// steerable by a caller), so the map hashes them with foldhash instead of SipHash.
pub(crate) type TokenCache = Cache<[u8; 32], Arc<Cached>, foldhash::fast::RandomState>;

pub(crate) fn new_cache(capacity: u64) -> TokenCache {
    Cache::builder()
        .max_capacity(capacity)
        .expire_after(UntilExpiry {
            max: Duration::from_secs(900),
        })
        .build_with_hasher(foldhash::fast::RandomState::default())
}

/// Validates `Authorization: Bearer <JWT>` against the Key Manager's keys, then authorises the
/// routed request (subscription, scopes). Verified tokens are cached by hash until they expire.
///
/// ```
/// # use std::sync::Arc;
/// use apim_core::artifacts::InMemoryArtifacts;
/// use apim_keymanager::{jwks::{JwkSet, JwksSource}, JwtValidator};
/// let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
/// let v = JwtValidator::new(JwksSource::fixed(&JwkSet::default()), artifacts)
///     .with_issuer("https://km:9443/oauth2/token");
/// # let _ = v;
/// ```
pub struct JwtValidator {
    keys: JwksSource,
    artifacts: Arc<dyn ArtifactStore>,
    validation: Validation,
    cache: TokenCache,
    /// Whose answers in the per-thread answer cache ([`thread_answers`]) are this validator's.
    owner: u64,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("keys", &self.keys)
            .field("validation", &self.validation)
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// A validator with 30 s leeway, no issuer or audience check, and a 100 000-entry cache.
    pub fn new(keys: JwksSource, artifacts: Arc<dyn ArtifactStore>) -> Self {
        JwtValidator {
            keys,
            artifacts,
            validation: Validation {
                issuer: None,
                audience: None,
                leeway_secs: 30,
            },
            cache: new_cache(100_000),
            owner: thread_answers::new_owner(),
        }
    }

    /// Requires `iss`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.validation.issuer = Some(issuer.into());
        // answers made under other settings are not this validator's
        self.owner = thread_answers::new_owner();
        self
    }

    /// Requires `aud` to contain `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.validation.audience = Some(audience.into());
        // answers made under other settings are not this validator's
        self.owner = thread_answers::new_owner();
        self
    }

    /// Clock-skew allowance for `exp` / `nbf`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.validation.leeway_secs = i64::try_from(leeway.as_secs()).unwrap_or(0);
        // answers made under other settings are not this validator's
        self.owner = thread_answers::new_owner();
        self
    }

    /// Number of cached tokens (approximate).
    pub fn cached(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// The answer for a token verified before (still in the cache): refused once expired or
    /// revoked, else authorised for `route`. `None`: not verified yet
    /// ([`validate_token`](Self::validate_token) verifies it).
    pub fn validate_cached(
        &self,
        token: &str,
        route: Option<&RouteMatch>,
    ) -> Option<Result<Arc<AuthContext>, ApimError>> {
        if let Some(ctx) = self.remembered(token.as_bytes(), route) {
            return Some(Ok(ctx));
        }
        self.cached_answer(token, &token_hash(token), route)
    }

    /// The answer this thread remembers for `token` on `route` (see [`thread_answers`]).
    fn remembered(&self, token: &[u8], route: Option<&RouteMatch>) -> Option<Arc<AuthContext>> {
        let api = Arc::as_ptr(&route?.api) as usize;
        let current = self.artifacts.snapshot_ptr();
        thread_answers::get(self.owner, token, api, current, now_secs())
    }

    /// [`validate_cached`](Self::validate_cached) from the shared cache, for `token` whose hash
    /// is `key`; a routed answer is remembered on this thread.
    fn cached_answer(
        &self,
        token: &str,
        key: &[u8; 32],
        route: Option<&RouteMatch>,
    ) -> Option<Result<Arc<AuthContext>, ApimError>> {
        let now = now_secs();
        let api = route.map(|r| Arc::as_ptr(&r.api) as usize);
        let hit = self.cache.get(key)?;
        let snap = self.artifacts.snapshot();
        let until = hit.exp + self.validation.leeway_secs;
        Some(if until <= now {
            self.cache.invalidate(key);
            Err(JwtError::Expired.into())
        } else if snap.is_revoked(&hit.jti) {
            self.cache.invalidate(key);
            Err(JwtError::Revoked.into())
        } else {
            let answer = hit.memo.authorize(&hit.ctx, route, &snap);
            if let (Ok(ctx), Some(api)) = (&answer, api) {
                thread_answers::put(self.owner, token.as_bytes(), api, ctx, until, &snap);
            }
            answer
        })
    }

    /// Validates a token (no route: no subscription or scope check).
    pub async fn validate_token(
        &self,
        token: &str,
        route: Option<&RouteMatch>,
    ) -> Result<Arc<AuthContext>, ApimError> {
        if let Some(ctx) = self.remembered(token.as_bytes(), route) {
            return Ok(ctx);
        }
        let key = token_hash(token);
        if let Some(answer) = self.cached_answer(token, &key, route) {
            return answer;
        }
        let snap = self.artifacts.snapshot();
        let now = now_secs();
        let claims = match self.keys.verifier().verify_signature(token) {
            Err(JwtError::UnknownKid) if self.keys.refresh(false).await.unwrap_or(false) => {
                self.keys.verifier().verify_signature(token)?
            }
            other => other?,
        };
        check_claims(&claims, &self.validation, now)?;
        if claims.token_type.as_deref() == Some("apiKey") {
            return Err(ApimError::InvalidCredentials(
                "an API key is not an access token".into(),
            ));
        }
        if snap.is_revoked(&claims.jti) {
            return Err(JwtError::Revoked.into());
        }
        let ctx = Arc::new(context_from_claims(&claims, &snap, CredentialKind::Jwt)?);
        let entry = Arc::new(Cached {
            ctx,
            exp: claims.exp,
            jti: claims.jti,
            memo: Default::default(),
        });
        self.cache.insert(key, entry.clone());
        entry.memo.authorize(&entry.ctx, route, &snap)
    }
}

/// Who is calling, from verified claims (application from the claim, else the key mapping).
pub(crate) fn context_from_claims(
    c: &Claims,
    snap: &apim_core::artifacts::ArtifactSnapshot,
    credential: CredentialKind,
) -> Result<AuthContext, ApimError> {
    let client_id = c
        .client_id
        .clone()
        .or_else(|| c.azp.clone())
        .unwrap_or_default();
    let mapping = snap.key_mapping(&client_id);
    let app_id = c
        .application
        .as_ref()
        .map(|a| a.uuid.clone())
        .or_else(|| mapping.map(|m| m.application_id.clone()))
        .unwrap_or_default();
    let app = snap.application(&app_id);
    let key_type = match (&c.keytype, mapping) {
        (Some(k), _) => KeyType::parse(k).unwrap_or_default(),
        (None, Some(m)) => m.key_type,
        _ => KeyType::Production,
    };
    let raw = match serde_json::to_value(c)? {
        serde_json::Value::Object(m) => Some(Arc::new(m)),
        _ => None,
    };
    Ok(AuthContext {
        credential,
        application_name: app
            .map(|a| a.name.clone())
            .or_else(|| c.application.as_ref().map(|a| a.name.clone()))
            .unwrap_or_default(),
        application_owner: app
            .map(|a| a.owner.clone())
            .or_else(|| c.application.as_ref().map(|a| a.owner.clone()))
            .unwrap_or_default(),
        application_tier: app
            .map(|a| a.throttling_policy.clone())
            .or_else(|| c.application.as_ref().map(|a| a.tier.clone()))
            .unwrap_or_else(|| "Unlimited".into()),
        application_id: app_id,
        end_user: c.sub.clone(),
        key_type,
        scopes: c.scopes(),
        consumer_key: client_id,
        token_id: Some(c.jti.clone()),
        expires_at: Some(c.exp),
        subscription_tier: None,
        claims: raw,
    })
}

#[async_trait::async_trait]
impl KeyValidator for JwtValidator {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        let token = bearer(req.headers)
            .ok_or_else(|| ApimError::MissingCredentials("no bearer token".into()))?;
        self.validate_token(token, req.route).await
    }

    fn validate_now(&self, req: &RequestMeta<'_>) -> Option<Result<Arc<AuthContext>, ApimError>> {
        // a token this thread verified for this API is found by its bytes: the header needs
        // no character check (a few hundred bytes of JWT) on that path
        if let Some(ctx) = bearer_bytes(req.headers).and_then(|t| self.remembered(t, req.route)) {
            return Some(Ok(ctx));
        }
        match bearer(req.headers) {
            None => Some(Err(ApimError::MissingCredentials("no bearer token".into()))),
            Some(token) => self.cached_answer(token, &token_hash(token), req.route),
        }
    }
}
