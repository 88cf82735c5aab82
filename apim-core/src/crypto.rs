//! Password hashing, secret hashing and random values — all on `ring` (DESIGN §8).

use std::num::NonZeroU32;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, pbkdf2};

use crate::ApimError;

/// PBKDF2 iterations for user passwords (OWASP 2023 guidance for PBKDF2-HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

fn rng() -> &'static SystemRandom {
    static RNG: std::sync::OnceLock<SystemRandom> = std::sync::OnceLock::new();
    RNG.get_or_init(SystemRandom::new)
}

/// `n` random bytes from the system RNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, ApimError> {
    let mut v = vec![0u8; n];
    rng()
        .fill(&mut v)
        .map_err(|_| ApimError::Internal("system RNG failed".into()))?;
    Ok(v)
}

/// A 256-bit random secret, base64url without padding (43 characters).
pub fn random_secret() -> Result<String, ApimError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(32)?))
}

/// A random UUID (v4) for entity ids.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// SHA-256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, data);
    let mut s = String::with_capacity(64);
    for b in d.as_ref() {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // lengths are not secret (both are fixed-size hashes here)
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hash of a high-entropy secret (client secret, API key id): SHA-256 hex. A slow KDF adds
/// nothing for 256-bit random values and would cap the token endpoint.
pub fn hash_secret(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// Checks a high-entropy secret against its stored SHA-256 hex hash in constant time.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    ct_eq(hash_secret(secret).as_bytes(), stored_hash.as_bytes())
}

/// Hashes a user password: `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`.
pub fn hash_password(password: &str) -> Result<String, ApimError> {
    hash_password_with(password, PBKDF2_ITERATIONS)
}

/// [`hash_password`] with another iteration count (the password policy's; cheap in tests).
pub fn hash_password_with(password: &str, iterations: u32) -> Result<String, ApimError> {
    let salt = random_bytes(SALT_LEN)?;
    let iters =
        NonZeroU32::new(iterations).ok_or_else(|| ApimError::Internal("zero iterations".into()))?;
    let mut out = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iters,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2-sha256${iterations}${}${}",
        STANDARD_NO_PAD.encode(&salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Verifies a password against a stored PBKDF2 hash (constant time, via ring). A malformed
/// stored hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iters), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(iters), Ok(salt), Ok(hash)) = (
        iters.parse::<u32>().ok().and_then(NonZeroU32::new),
        STANDARD_NO_PAD.decode(salt),
        STANDARD_NO_PAD.decode(hash),
    ) else {
        return false;
    };
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iters,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_and_format() {
        // the real iteration count, once, so a regression in the constant is caught
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("pbkdf2-sha256$600000$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        let h2 = hash_password_with("correct horse", 1000).unwrap();
        assert_ne!(h.split('$').nth(2), h2.split('$').nth(2), "salts differ");
        assert!(!verify_password("x", "garbage"));
        assert!(!verify_password("x", "pbkdf2-sha256$0$AA$AA"));
    }

    #[test]
    fn secrets() {
        let s = random_secret().unwrap();
        assert_eq!(s.len(), 43);
        assert_ne!(s, random_secret().unwrap());
        let h = hash_secret(&s);
        assert!(verify_secret(&s, &h));
        assert!(!verify_secret("nope", &h));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
