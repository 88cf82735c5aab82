//! The one place user passwords are checked ([`Store::check_password`]): every
//! password-checking path (Basic on the management APIs, Basic on APIs through the Key Manager,
//! the password grant, the authorize page, DCR with Basic) goes through it.
//!
//! - **Failure backoff.** Failures are counted per account (case-insensitive name) and per
//!   client address. After [`PasswordPolicy::free_failures`] failures a key is locked out for
//!   [`PasswordPolicy::base_lockout`], doubling with every further failure up to
//!   [`PasswordPolicy::max_lockout`]. While locked, a check is refused with 429 and `Retry-After`
//!   ([`ApimError::TooManyAttempts`]) *without hashing*, even for the right password. A success
//!   clears the account's count (never the address's: logging in to one's own account must not
//!   reset a guessing budget).
//! - **Bounded hashing pool.** PBKDF2 runs on blocking threads, at most
//!   [`PasswordPolicy::max_concurrent`] at a time; at most [`PasswordPolicy::max_waiting`] more
//!   wait for a slot, and anything beyond is refused with 503 and `Retry-After`
//!   ([`ApimError::Overloaded`]). Hashing for new passwords uses the same pool.
//! - **Equal work for unknown users.** An unknown user name is checked against a dummy hash of
//!   the same cost, so the answer takes as long as for a wrong password.
//! - **Generation-aware cache of successes.** A verified credential is remembered (PBKDF2 is
//!   slow on purpose) under a digest of the user's immutable id, the name, the password and the
//!   stored password hash read *before* hashing. The stored hash is the user's credential
//!   version: every password change writes a new one (fresh salt), so a result computed under an
//!   older version can never be found again, and it is not even inserted when the version moved
//!   while the check ran.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::crypto::{hash_password_with, sha256_hex, verify_password, PBKDF2_ITERATIONS};
use crate::ApimError;

/// How password checks are throttled and hashed. The default is what ships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// PBKDF2 iterations for new hashes and for the dummy hash (default 600,000). Stored hashes
    /// keep the count they were made with.
    pub iterations: u32,
    /// PBKDF2 runs at the same time (default 2).
    pub max_concurrent: usize,
    /// Checks that may wait for a hashing slot (default 16); more are refused with 503.
    pub max_waiting: usize,
    /// Failures per account or address before the first lock-out (default 5).
    pub free_failures: u32,
    /// First lock-out (default 1 s); doubles with each further failure.
    pub base_lockout: Duration,
    /// Longest lock-out (default 15 min).
    pub max_lockout: Duration,
    /// How long a verified credential is remembered (default 60 s).
    pub cache_ttl: Duration,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            iterations: PBKDF2_ITERATIONS,
            max_concurrent: 2,
            max_waiting: 16,
            free_failures: 5,
            base_lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(15 * 60),
            cache_ttl: Duration::from_secs(60),
        }
    }
}

impl PasswordPolicy {
    /// A cheap policy for tests: 1,000 iterations, otherwise the defaults.
    pub fn for_tests() -> Self {
        PasswordPolicy {
            iterations: 1_000,
            ..PasswordPolicy::default()
        }
    }

    /// Checks the values; names the offending field.
    pub fn validate(&self) -> Result<(), ApimError> {
        if self.iterations == 0 {
            return Err(ApimError::config("passwords.iterations", "must be > 0"));
        }
        if self.max_concurrent == 0 {
            return Err(ApimError::config("passwords.max_concurrent", "must be > 0"));
        }
        if self.free_failures == 0 {
            return Err(ApimError::config("passwords.free_failures", "must be > 0"));
        }
        if self.base_lockout.is_zero() || self.max_lockout < self.base_lockout {
            return Err(ApimError::config(
                "passwords.max_lockout",
                "must be at least base_lockout, which must be > 0",
            ));
        }
        Ok(())
    }
}

/// Counters of the password guard (what tests and metrics look at).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordStats {
    /// PBKDF2 runs against a stored hash.
    pub hashed: u64,
    /// PBKDF2 runs against the dummy hash (unknown user names).
    pub dummy: u64,
    /// New hashes made (user created, password changed).
    pub derived: u64,
    /// Checks answered from the cache.
    pub cached: u64,
    /// Checks refused by a lock-out, without hashing.
    pub locked_out: u64,
    /// Checks refused because the hashing pool was full.
    pub overloaded: u64,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

#[derive(Debug)]
struct FailureTable {
    map: HashMap<String, Failures>,
    pruned: Instant,
}

impl FailureTable {
    /// Drops records that lock nothing and are older than `keep` (at most once a minute, or
    /// when the table is full).
    fn prune(&mut self, now: Instant, keep: Duration) {
        if self.map.len() < MAX_ENTRIES && now.duration_since(self.pruned) < Duration::from_secs(60)
        {
            return;
        }
        self.pruned = now;
        self.map.retain(|_, f| {
            f.locked_until.is_some_and(|u| u > now) || now.duration_since(f.last) < keep
        });
        if self.map.len() < MAX_ENTRIES {
            return;
        }
        // still full (a flood of fresh failures): what locks nothing goes first, then the locks
        // that end soonest — never all of them, or a flood would lift every lock-out
        self.map
            .retain(|_, f| f.locked_until.is_some_and(|u| u > now));
        if self.map.len() >= MAX_ENTRIES {
            let mut ends: Vec<Instant> = self.map.values().filter_map(|f| f.locked_until).collect();
            ends.sort_unstable();
            let cut = ends[self.map.len() - MAX_ENTRIES * 9 / 10];
            self.map
                .retain(|_, f| f.locked_until.is_some_and(|u| u > cut));
        }
    }
}

/// Most failure records and cached credentials kept; beyond, the stale ones are dropped.
const MAX_ENTRIES: usize = 100_000;

/// State of the password checks of one [`super::Store`].
#[derive(Debug)]
pub(crate) struct PasswordGuard {
    policy: PasswordPolicy,
    slots: Arc<Semaphore>,
    /// Checks holding or waiting for a slot.
    queued: Arc<AtomicUsize>,
    failures: Mutex<FailureTable>,
    /// Number of failure records: with none (the usual case) a check takes no lock for them.
    failing: AtomicUsize,
    verified: Mutex<HashMap<String, Instant>>,
    dummy: OnceLock<String>,
    hashed: AtomicU64,
    dummy_runs: AtomicU64,
    derived: AtomicU64,
    cached: AtomicU64,
    locked_out: AtomicU64,
    overloaded: AtomicU64,
}

fn account_key(username: &str) -> String {
    format!("u\u{0}{}", username.to_ascii_lowercase())
}

fn address_key(ip: IpAddr) -> String {
    // an IPv6 client usually holds a whole /64: count per /64
    match ip {
        IpAddr::V4(v4) => format!("a\u{0}{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("a\u{0}{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl PasswordGuard {
    pub(crate) fn new(policy: PasswordPolicy) -> Self {
        PasswordGuard {
            slots: Arc::new(Semaphore::new(policy.max_concurrent)),
            policy,
            queued: Arc::new(AtomicUsize::new(0)),
            failures: Mutex::new(FailureTable {
                map: HashMap::new(),
                pruned: Instant::now(),
            }),
            failing: AtomicUsize::new(0),
            verified: Mutex::new(HashMap::new()),
            dummy: OnceLock::new(),
            hashed: AtomicU64::new(0),
            dummy_runs: AtomicU64::new(0),
            derived: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            locked_out: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
        }
    }

    pub(crate) fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    pub(crate) fn stats(&self) -> PasswordStats {
        PasswordStats {
            hashed: self.hashed.load(Ordering::Relaxed),
            dummy: self.dummy_runs.load(Ordering::Relaxed),
            derived: self.derived.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
            locked_out: self.locked_out.load(Ordering::Relaxed),
            overloaded: self.overloaded.load(Ordering::Relaxed),
        }
    }

    /// Checks holding or waiting for a hashing slot.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Runs `f` on a blocking thread once a hashing slot is free; refused with 503 when
    /// `max_concurrent + max_waiting` checks are already in or waiting.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, ApimError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let limit = self.policy.max_concurrent + self.policy.max_waiting;
        if self.queued.fetch_add(1, Ordering::AcqRel) >= limit {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(ApimError::Overloaded {
                retry_after: Duration::from_secs(1),
            });
        }
        struct Leave(Arc<AtomicUsize>);
        impl Drop for Leave {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let leave = Leave(self.queued.clone());
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApimError::Internal("password pool closed".into()))?;
        // the slot and the count go with the work: a caller that goes away (client
        // disconnected) does not free the slot while PBKDF2 still runs
        tokio::task::spawn_blocking(move || {
            let _held = (slot, leave);
            f()
        })
        .await
        .map_err(|e| ApimError::Internal(format!("password hashing: {e}")))
    }

    /// A new hash of `password` (user creation, password change), in the pool.
    pub(crate) async fn derive(&self, password: String) -> Result<String, ApimError> {
        let iterations = self.policy.iterations;
        let h = self
            .run(move || hash_password_with(&password, iterations))
            .await??;
        self.derived.fetch_add(1, Ordering::Relaxed);
        Ok(h)
    }

    /// 429 with the remaining lock-out when the account or the address is locked.
    pub(crate) fn check_lockout(
        &self,
        username: &str,
        from: Option<IpAddr>,
    ) -> Result<(), ApimError> {
        if self.failing.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let failures = &failures.map;
        let mut wait = Duration::ZERO;
        let keys = std::iter::once(account_key(username)).chain(from.map(address_key));
        for k in keys {
            if let Some(until) = failures.get(&k).and_then(|f| f.locked_until) {
                wait = wait.max(until.saturating_duration_since(now));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            self.locked_out.fetch_add(1, Ordering::Relaxed);
            Err(ApimError::TooManyAttempts { retry_after: wait })
        }
    }

    fn record_failure(&self, username: &str, from: Option<IpAddr>) {
        let now = Instant::now();
        let mut table = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        table.prune(now, self.policy.max_lockout * 2);
        let failures = &mut table.map;
        let keys = std::iter::once(account_key(username)).chain(from.map(address_key));
        for k in keys {
            let f = failures.entry(k).or_insert(Failures {
                count: 0,
                locked_until: None,
                last: now,
            });
            // a record idle for longer than the longest lock-out starts over
            if now.duration_since(f.last) > self.policy.max_lockout * 2 {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
            if f.count >= self.policy.free_failures {
                let doublings = (f.count - self.policy.free_failures).min(20);
                let lock = self
                    .policy
                    .base_lockout
                    .saturating_mul(1 << doublings)
                    .min(self.policy.max_lockout);
                f.locked_until = Some(now + lock);
            }
        }
        self.failing.store(failures.len(), Ordering::Release);
    }

    fn record_success(&self, username: &str) {
        if self.failing.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut table = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        table.map.remove(&account_key(username));
        table.prune(Instant::now(), self.policy.max_lockout * 2);
        self.failing.store(table.map.len(), Ordering::Release);
    }

    fn cache_hit(&self, key: &str) -> bool {
        let now = Instant::now();
        let hit = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some_and(|exp| *exp > now);
        if hit {
            self.cached.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    fn remember(&self, key: String) {
        let now = Instant::now();
        let mut v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() >= MAX_ENTRIES {
            v.retain(|_, exp| *exp > now);
            if v.len() >= MAX_ENTRIES {
                v.clear();
            }
        }
        v.insert(key, now + self.policy.cache_ttl);
    }
}

/// A user's stored credential as read before a check: what the check is computed under.
#[derive(Debug, Clone)]
pub struct CredentialSnapshot {
    /// The immutable user id.
    pub user_id: String,
    /// The stored PBKDF2 hash (the credential version).
    pub hash: String,
}

impl PasswordGuard {
    /// The cache key of a credential under `snap`.
    fn key(username: &str, password: &str, snap: &CredentialSnapshot) -> String {
        sha256_hex(
            format!(
                "{}\u{0}{username}\u{0}{password}\u{0}{}",
                snap.user_id, snap.hash
            )
            .as_bytes(),
        )
    }

    /// Checks `password` under `snap` (`None`: unknown user, the dummy hash does the same work).
    /// `current` re-reads the stored credential after a success: the success is remembered only
    /// if the credential is still the one it was computed under.
    pub(crate) async fn check<C, Fut>(
        &self,
        username: &str,
        password: &str,
        from: Option<IpAddr>,
        snap: Option<&CredentialSnapshot>,
        current: C,
    ) -> Result<bool, ApimError>
    where
        C: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<CredentialSnapshot>, ApimError>>,
    {
        self.check_lockout(username, from)?;
        let key = snap.map(|s| Self::key(username, password, s));
        if key.as_deref().is_some_and(|k| self.cache_hit(k)) {
            self.record_success(username);
            return Ok(true);
        }
        let pw = password.to_owned();
        let ok = match snap {
            Some(s) => {
                let hash = s.hash.clone();
                let ok = self.run(move || verify_password(&pw, &hash)).await?;
                self.hashed.fetch_add(1, Ordering::Relaxed);
                ok
            }
            None => {
                let dummy = match self.dummy.get() {
                    Some(h) => h.clone(),
                    None => {
                        // made once, in the pool like any other hashing
                        let iterations = self.policy.iterations;
                        let h = self
                            .run(move || hash_password_with("apim-rs dummy password", iterations))
                            .await??;
                        self.dummy.get_or_init(|| h).clone()
                    }
                };
                let _ = self.run(move || verify_password(&pw, &dummy)).await?;
                self.dummy_runs.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        if !ok {
            self.record_failure(username, from);
            return Ok(false);
        }
        self.record_success(username);
        if let (Some(key), Some(snap)) = (key, snap) {
            let still = current().await?;
            if still.is_some_and(|c| c.user_id == snap.user_id && c.hash == snap.hash) {
                self.remember(key);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    /// A table filled by a flood of fresh failures keeps the lock-outs that last longest: the
    /// attacker's flood does not lift the lock on the account it guesses.
    #[test]
    fn a_full_table_keeps_the_longest_lock_outs() {
        let now = Instant::now();
        let mut t = FailureTable {
            map: HashMap::new(),
            pruned: now,
        };
        t.map.insert(
            "account:admin".into(),
            Failures {
                count: 20,
                locked_until: Some(now + Duration::from_secs(900)),
                last: now,
            },
        );
        for i in 0..MAX_ENTRIES {
            let locked = i % 2 == 0;
            t.map.insert(
                format!("account:u{i}"),
                Failures {
                    count: 5,
                    locked_until: locked.then(|| now + Duration::from_secs(1 + (i % 100) as u64)),
                    last: now,
                },
            );
        }
        t.prune(now, Duration::from_secs(1800));
        assert!(t.map.len() < MAX_ENTRIES, "{}", t.map.len());
        assert!(
            t.map.contains_key("account:admin"),
            "the long lock-out survives"
        );
        assert!(t.map.values().all(|f| f.locked_until.is_some()));
    }
}
