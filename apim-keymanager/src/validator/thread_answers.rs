//! Answers for verified credentials, remembered per thread.
//!
//! Every request with a cached credential used to go through state all worker threads share:
//! the token cache's entry and its bookkeeping, the snapshot's and the caller context's
//! reference counts, the last-authorisation memo's lock. With the gateway's worker threads
//! asking for the same token at once, each of those cache lines moved between the cores on
//! every request (`benches/tokens.rs`: 780 ns on one thread, 1.45 µs per call with two). A
//! thread now remembers the answer it got — its own copy of the caller's context — for the
//! token, the API and the artifact snapshot it was made with, and gives it again while that
//! snapshot is current (revocations, subscriptions and key mappings are part of it) and the
//! token has not expired. What it reads to tell is its own map, the store's current-snapshot
//! pointer and the clock.
//!
//! The map is keyed by the token itself, not its SHA-256 as the shared cache is: hashing a
//! 500-byte token cost more than the rest of a remembered answer. Only verified tokens are
//! remembered (so a caller cannot fill the map, or aim at its hashing, with made-up ones),
//! at most [`CAPACITY`] per thread, and only while valid; the process holds each request's
//! token anyway while it serves it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use apim_core::artifacts::ArtifactSnapshot;
use apim_core::auth::AuthContext;

/// Most tokens one thread remembers answers for (for all validators); when full, it starts
/// over.
pub(crate) const CAPACITY: usize = 2048;

/// A new owner id: each validator's answers are its own.
pub(crate) fn new_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug)]
struct Answer {
    owner: u64,
    /// Address of the routed API (unique while its snapshot lives).
    api: usize,
    ctx: Arc<AuthContext>,
    /// The credential's `exp` plus the leeway.
    until: i64,
    /// The snapshot the answer was made with; a `Weak` keeps its address from being reused.
    snap: Weak<ArtifactSnapshot>,
}

thread_local! {
    /// foldhash: keys are digests and addresses, not steerable by a caller
    static ANSWERS: RefCell<HashMap<Box<[u8]>, Vec<Answer>, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
}

/// The answer this thread remembers for `owner`'s `token` on `api`, if it was made with the
/// snapshot that is `current` and the token is still valid at `now`.
pub(crate) fn get(
    owner: u64,
    token: &[u8],
    api: usize,
    current: *const ArtifactSnapshot,
    now: i64,
) -> Option<Arc<AuthContext>> {
    ANSWERS.with_borrow(|m| {
        m.get(token)?
            .iter()
            .find(|a| a.owner == owner && a.api == api)
            .filter(|a| std::ptr::eq(a.snap.as_ptr(), current) && now < a.until)
            .map(|a| a.ctx.clone())
    })
}

/// Remembers on this thread that `owner`'s verified `token` on `api` was answered `ctx` with
/// snapshot `snap`, valid before `until`.
pub(crate) fn put(
    owner: u64,
    token: &[u8],
    api: usize,
    ctx: &AuthContext,
    until: i64,
    snap: &Arc<ArtifactSnapshot>,
) {
    let answer = Answer {
        owner,
        api,
        // this thread's own copy: its reference count is written by this thread only
        ctx: Arc::new(ctx.clone()),
        until,
        snap: Arc::downgrade(snap),
    };
    ANSWERS.with_borrow_mut(|m| {
        if let Some(list) = m.get_mut(token) {
            // one answer per (validator, API): the newest
            list.retain(|a| !(a.owner == owner && a.api == api) && a.snap.strong_count() > 0);
            list.push(answer);
            return;
        }
        if m.len() >= CAPACITY {
            m.clear();
        }
        m.insert(token.into(), vec![answer]);
    });
}

/// How many tokens this thread remembers answers for.
#[cfg(test)]
pub(crate) fn remembered() -> usize {
    ANSWERS.with_borrow(HashMap::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Arc<ArtifactSnapshot> {
        Arc::new(ArtifactSnapshot::default())
    }

    #[test]
    fn an_answer_holds_for_its_owner_token_api_and_snapshot_until_expiry() {
        let (owner, other) = (new_owner(), new_owner());
        let s = snap();
        let ctx = AuthContext::for_application("app1", "alice");
        put(owner, b"t1", 7, &ctx, 100, &s);
        let cur = Arc::as_ptr(&s);
        assert_eq!(get(owner, b"t1", 7, cur, 99).as_deref(), Some(&ctx));
        assert!(get(owner, b"t1", 7, cur, 100).is_none(), "expired");
        assert!(
            get(other, b"t1", 7, cur, 99).is_none(),
            "another validator's"
        );
        put(
            owner,
            b"t1",
            8,
            &AuthContext::for_application("app2", "bob"),
            100,
            &s,
        );
        assert_eq!(
            get(owner, b"t1", 7, cur, 99).as_deref(),
            Some(&ctx),
            "per API"
        );
        put(
            owner,
            b"t1",
            7,
            &AuthContext::for_application("app3", "eve"),
            100,
            &s,
        );
        assert_eq!(
            get(owner, b"t1", 7, cur, 99)
                .expect("newest")
                .application_id,
            "app3"
        );
        assert!(get(owner, b"t2", 7, cur, 99).is_none(), "another token");
        assert!(get(owner, b"t1", 9, cur, 99).is_none(), "another API");
        let newer = snap();
        assert!(
            get(owner, b"t1", 7, Arc::as_ptr(&newer), 99).is_none(),
            "a newer snapshot"
        );
        let at = cur as usize;
        std::thread::spawn(move || assert!(get(owner, b"t1", 7, at as *const _, 99).is_none()))
            .join()
            .expect("another thread has its own answers");
    }

    #[test]
    fn a_dropped_snapshot_s_answers_never_match_a_new_one() {
        let owner = new_owner();
        let s = snap();
        put(
            owner,
            b"t3",
            1,
            &AuthContext::for_application("a", "b"),
            100,
            &s,
        );
        drop(s);
        // whatever the allocator hands out now, it is not the remembered snapshot's address
        for _ in 0..64 {
            let n = snap();
            assert!(get(owner, b"t3", 1, Arc::as_ptr(&n), 1).is_none());
        }
    }

    #[test]
    fn a_thread_remembers_at_most_capacity_tokens() {
        let owner = new_owner();
        let s = snap();
        let ctx = AuthContext::for_application("a", "b");
        for i in 0..CAPACITY + 10 {
            put(owner, format!("token-{i}").as_bytes(), 1, &ctx, 100, &s);
        }
        assert!(remembered() <= CAPACITY);
        let last = format!("token-{}", CAPACITY + 9);
        assert!(get(owner, last.as_bytes(), 1, Arc::as_ptr(&s), 1).is_some());
    }
}
