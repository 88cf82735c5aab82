//! Fuzzes JWT / API-key parsing and verification: arbitrary bytes as a compact token, as a
//! token assembled from base64url-encoded fuzz parts (to reach the signature and claim checks),
//! and as a JWK set. Nothing may panic; nothing forged may verify.

#![no_main]

use std::sync::OnceLock;

use apim_keymanager::jwks::JwkSet;
use apim_keymanager::jwt::{self, check_claims, Claims, JwtVerifier, Validation};
use apim_keymanager::keys::{KeyRing, SigningKey};
use libfuzzer_sys::fuzz_target;

fn fixture() -> &'static (JwtVerifier, String) {
    static F: OnceLock<(JwtVerifier, String)> = OnceLock::new();
    F.get_or_init(|| {
        let key = SigningKey::generate_es256("fuzz").expect("key").0;
        let good = jwt::encode(
            &key,
            &Claims {
                exp: i64::MAX / 4,
                ..Claims::default()
            },
        )
        .expect("sign");
        let ring = KeyRing::new(vec![std::sync::Arc::new(key)], 0).expect("ring");
        (ring.verifier(), good)
    })
}

fn b64(d: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
}

fuzz_target!(|data: &[u8]| {
    let (verifier, good) = fixture();
    let v = Validation {
        issuer: Some("iss".into()),
        audience: Some("aud".into()),
        leeway_secs: 30,
    };

    // 1. raw bytes as a token
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = jwt::decode_header(s);
        if let Ok(c) = verifier.verify_signature(s) {
            // a signature only verifies over the exact claims this fixture signed
            assert_eq!(
                s.split('.').nth(1),
                good.split('.').nth(1),
                "forged claims verified"
            );
            let _ = check_claims(&c, &v, 1_800_000_000);
        }
    }

    // 2. parts split on 0xff, each base64url-encoded, with the real signature or a fuzzed one
    let parts: Vec<&[u8]> = data.splitn(3, |b| *b == 0xff).collect();
    let h = parts.first().copied().unwrap_or_default();
    let p = parts.get(1).copied().unwrap_or_default();
    let sig = parts
        .get(2)
        .map(|s| b64(s))
        .unwrap_or_else(|| good.rsplit('.').next().unwrap_or("").to_owned());
    let token = format!("{}.{}.{sig}", b64(h), b64(p));
    assert!(verifier.verify_signature(&token).is_err() || token == *good);

    // 3. a JWK set
    if let Ok(set) = serde_json::from_slice::<JwkSet>(data) {
        let fv = JwtVerifier::from_jwks(&set);
        let _ = fv.verify_signature(good);
    }
});
