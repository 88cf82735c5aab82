//! `X-Request-ID`: propagated when the client sent a sane one, generated otherwise.
//!
//! Generated ids are a random 64-bit prefix (from ring's `SystemRandom`, once per process)
//! and a counter: unique per gateway, no syscall per request. Their bytes are cut from a
//! per-thread chunk of [`ID_CHUNK`] bytes, so an id costs no allocation of its own and its
//! clones (request to the backend, response to the client) only count references.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use ring::rand::{SecureRandom, SystemRandom};

/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes request ids.
#[derive(Debug)]
pub struct RequestIds {
    /// The random prefix in hex, as every id of this generator starts.
    prefix: [u8; 16],
    counter: AtomicU64,
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new() -> Self {
        let mut b = [0u8; 8];
        // a failing system RNG only makes ids less unique across processes
        let _ = SystemRandom::new().fill(&mut b);
        let mut prefix = [0u8; 16];
        hex(u64::from_le_bytes(b), &mut prefix);
        RequestIds {
            prefix,
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
        id[..16].copy_from_slice(&self.prefix);
        hex(n, &mut id[17..]);
        // hex and '-' are always a valid header value
        let v = HeaderValue::from_maybe_shared(id_bytes(&id))
            .unwrap_or(HeaderValue::from_static("invalid"));
        headers.insert(X_REQUEST_ID.clone(), v.clone());
        v
    }
}

/// Bytes one chunk of ids is cut from (≈ 140 ids per allocation).
pub const ID_CHUNK: usize = 4096;

thread_local! {
    static CHUNK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `id` as shared bytes cut from this thread's chunk; a chunk is freed when the last id cut
/// from it is dropped.
fn id_bytes(id: &[u8]) -> Bytes {
    CHUNK.with(|chunk| match chunk.try_borrow_mut() {
        Ok(mut chunk) => {
            if chunk.capacity() < id.len() {
                *chunk = BytesMut::with_capacity(ID_CHUNK);
            }
            chunk.extend_from_slice(id);
            chunk.split().freeze()
        }
        Err(_) => Bytes::copy_from_slice(id),
    })
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
        let prefix = std::str::from_utf8(&ids.prefix).unwrap();
        assert!(prefix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let expect = format!("{prefix}-{:012x}", 1);
        assert_eq!(b, expect.as_str());
    }

    #[test]
    fn ids_cut_from_one_chunk_stay_distinct() {
        let ids = RequestIds::new();
        // more ids than one chunk holds: the chunk is replaced, earlier ids keep their bytes
        let all: Vec<HeaderValue> = (0..3 * ID_CHUNK / 29)
            .map(|_| ids.assign(&mut HeaderMap::new()))
            .collect();
        let prefix = std::str::from_utf8(&ids.prefix).unwrap();
        for (n, v) in all.iter().enumerate() {
            assert_eq!(v, format!("{prefix}-{n:012x}").as_str());
        }
    }
}
