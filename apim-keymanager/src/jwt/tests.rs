//! Verifier unit tests: every forged or malformed token is rejected with the right reason.

use super::*;
use crate::keys::{KeyRing, SigningKey};
use std::sync::Arc;

const NOW: i64 = 1_800_000_000;

fn claims() -> Claims {
    Claims {
        iss: "https://km/oauth2/token".into(),
        sub: "alice".into(),
        aud: vec!["client-1".into()],
        client_id: Some("client-1".into()),
        scope: Some("default".into()),
        exp: NOW + 3600,
        iat: NOW,
        nbf: Some(NOW),
        jti: "jti-1".into(),
        ..Claims::default()
    }
}

fn es256() -> SigningKey {
    SigningKey::generate_es256("k1").unwrap().0
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

fn strict() -> Validation {
    Validation {
        issuer: Some("https://km/oauth2/token".into()),
        audience: Some("client-1".into()),
        leeway_secs: 5,
    }
}

fn verifier(keys: Vec<SigningKey>) -> JwtVerifier {
    let ring = KeyRing::new(keys.into_iter().map(Arc::new).collect(), 0).unwrap();
    ring.verifier()
}

#[test]
fn round_trip_all_algorithms() {
    let rsa = SigningKey::from_pkcs8(
        "r1",
        Algorithm::RS256,
        include_bytes!("../../tests/keys/rsa2048.pk8.der"),
    )
    .unwrap();
    let ed = SigningKey::from_pkcs8(
        "e1",
        Algorithm::EdDSA,
        include_bytes!("../../tests/keys/ed25519.pk8.der"),
    )
    .unwrap();
    let es = es256();
    let tokens: Vec<String> = [&es, &rsa, &ed]
        .iter()
        .map(|k| encode(k, &claims()).unwrap())
        .collect();
    let v = verifier(vec![es, rsa, ed]);
    assert_eq!(v.len(), 3);
    for t in tokens {
        assert_eq!(v.verify(&t, &strict(), NOW).unwrap().sub, "alice");
    }
}

#[test]
fn alg_none_is_rejected() {
    let key = es256();
    let v = verifier(vec![key]);
    let h = b64(br#"{"alg":"none","kid":"k1"}"#);
    let p = b64(&serde_json::to_vec(&claims()).unwrap());
    for t in [format!("{h}.{p}."), format!("{h}.{p}")] {
        let e = v.verify(&t, &strict(), NOW).unwrap_err();
        assert!(
            matches!(
                e,
                JwtError::UnsupportedAlgorithm(_) | JwtError::Malformed(_)
            ),
            "{e:?}"
        );
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    let key = es256();
    let jwk = key.jwk();
    let public = serde_json::to_vec(&jwk).unwrap();
    let v = verifier(vec![key]);
    let h = b64(br#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#);
    let p = b64(&serde_json::to_vec(&claims()).unwrap());
    let input = format!("{h}.{p}");
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public),
        input.as_bytes(),
    );
    let t = format!("{input}.{}", b64(mac.as_ref()));
    assert_eq!(
        v.verify(&t, &strict(), NOW).unwrap_err(),
        JwtError::UnsupportedAlgorithm("HS256".into())
    );
}

#[test]
fn algorithm_swap_between_known_algorithms_is_rejected() {
    // an EdDSA key's kid presented with alg ES256
    let ed = SigningKey::from_pkcs8(
        "e1",
        Algorithm::EdDSA,
        include_bytes!("../../tests/keys/ed25519.pk8.der"),
    )
    .unwrap();
    let t = encode(&ed, &claims()).unwrap();
    let v = verifier(vec![ed]);
    let (_, rest) = t.split_once('.').unwrap();
    let forged = format!("{}.{rest}", b64(br#"{"alg":"ES256","kid":"e1"}"#));
    assert_eq!(
        v.verify(&forged, &strict(), NOW).unwrap_err(),
        JwtError::AlgorithmMismatch
    );
}

#[test]
fn unknown_kid_is_rejected() {
    let signer = SigningKey::generate_es256("other").unwrap().0;
    let t = encode(&signer, &claims()).unwrap();
    let v = verifier(vec![es256()]);
    assert_eq!(
        v.verify(&t, &strict(), NOW).unwrap_err(),
        JwtError::UnknownKid
    );
}

#[test]
fn tampered_payload_is_rejected() {
    let key = es256();
    let t = encode(&key, &claims()).unwrap();
    let v = verifier(vec![key]);
    let parts: Vec<&str> = t.split('.').collect();
    let mut c = claims();
    c.scope = Some("apim:admin".into());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&c).unwrap()),
        parts[2]
    );
    assert_eq!(
        v.verify(&forged, &strict(), NOW).unwrap_err(),
        JwtError::BadSignature
    );
}

#[test]
fn bad_base64_is_rejected() {
    let key = es256();
    let t = encode(&key, &claims()).unwrap();
    let v = verifier(vec![key]);
    let bad = format!("{}!!", t);
    assert_eq!(
        v.verify(&bad, &strict(), NOW).unwrap_err(),
        JwtError::Base64
    );
    assert_eq!(
        v.verify("%%%.a.b", &strict(), NOW).unwrap_err(),
        JwtError::Base64
    );
    assert!(matches!(
        v.verify("only-one-part", &strict(), NOW).unwrap_err(),
        JwtError::Malformed(_)
    ));
}

#[test]
fn time_issuer_and_audience_checks() {
    let c = claims();
    let s = strict();
    assert_eq!(check_claims(&c, &s, NOW), Ok(()));
    let expired = Claims {
        exp: NOW - 10,
        ..claims()
    };
    assert_eq!(check_claims(&expired, &s, NOW), Err(JwtError::Expired));
    let within_leeway = Claims {
        exp: NOW - 2,
        ..claims()
    };
    assert_eq!(check_claims(&within_leeway, &s, NOW), Ok(()));
    let future = Claims {
        nbf: Some(NOW + 60),
        ..claims()
    };
    assert_eq!(check_claims(&future, &s, NOW), Err(JwtError::NotYetValid));
    let iss = Claims {
        iss: "https://evil/".into(),
        ..claims()
    };
    assert_eq!(check_claims(&iss, &s, NOW), Err(JwtError::WrongIssuer));
    let aud = Claims {
        aud: vec!["someone-else".into()],
        ..claims()
    };
    assert_eq!(check_claims(&aud, &s, NOW), Err(JwtError::WrongAudience));
}

#[test]
fn aud_may_be_a_string() {
    let c: Claims = serde_json::from_str(r#"{"iss":"i","sub":"s","aud":"x","exp":1}"#).unwrap();
    assert_eq!(c.aud, vec!["x".to_owned()]);
}

#[test]
fn debug_of_a_signing_key_has_no_private_material() {
    let k = es256();
    let d = format!("{k:?}");
    assert!(d.contains("k1") && !d.contains("pair"), "{d}");
}
