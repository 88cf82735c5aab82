//! `X-Request-ID`: propagated when the client sent a sane one, generated otherwise.
//!
//! Generated ids are a random 64-bit prefix (from ring's `SystemRandom`, once per process)
//! and a counter: unique per gateway, no syscall per request.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};
use ring::rand::{SecureRandom, SystemRandom};

/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes request ids.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new() -> Self {
        let mut b = [0u8; 8];
        // a failing system RNG only makes ids less unique across processes
        let _ = SystemRandom::new().fill(&mut b);
        RequestIds {
            prefix: u64::from_le_bytes(b),
            counter: AtomicU64::new(0),
        }
    }

    /// The request's id: the client's `X-Request-ID` if it is 1..=128 visible ASCII characters,
    /// else a new one. The header is set to the id either way.
    pub fn assign(&self, headers: &mut HeaderMap) -> HeaderValue {
        if let Some(v) = headers.get(&X_REQUEST_ID) {
            let b = v.as_bytes();
            if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
                return v.clone();
            }
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // `{prefix:016x}-{n:012x}`, written without the formatting machinery
        let mut id = [b'-'; 29];
        hex(self.prefix, &mut id[..16]);
        hex(n, &mut id[17..]);
        // hex and '-' are always a valid header value
        let v = HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("invalid"));
        headers.insert(X_REQUEST_ID.clone(), v.clone());
        v
    }
}

/// Writes the low `out.len()` hex digits of `v` into `out`.
fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagates_sane_and_replaces_bad() {
        let ids = RequestIds::new();
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(ids.assign(&mut h), "abc-123");
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        let a = ids.assign(&mut h);
        assert_ne!(a, "has space");
        assert_eq!(h[&X_REQUEST_ID], a);
        let b = ids.assign(&mut HeaderMap::new());
        assert_ne!(a, b);
        assert_eq!(b.len(), 29);
        let expect = format!("{:016x}-{:012x}", ids.prefix, 1);
        assert_eq!(b, expect.as_str());
    }
}
