//! Signing keys on ring: ES256 (generated on first start and kept in the store), RS256 and
//! EdDSA (from supplied PKCS#8). Several keys are published in the JWKS; new tokens use the
//! active one, tokens signed by older keys stay valid until they expire.
//!
//! The private keys are sealed in the store with AES-256-GCM under a key-encryption key kept
//! outside the database ([`KeyEncryptionKey`], from `key_manager.key_encryption_key`, its
//! file, or `<data_dir>/signing-keys.kek`): a copy of the database alone does not let anyone
//! sign tokens. The associated data binds each sealed key to its `kid` and algorithm, so rows
//! cannot be swapped. Keys stored in plaintext by earlier versions are sealed when the ring is
//! loaded; their `kid` and public key do not change, so tokens they signed stay valid.

use std::sync::Arc;

use apim_core::store::Store;
use apim_core::ApimError;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use crate::jwks::{Jwk, JwkSet};
use crate::jwt::JwtVerifier;

/// A JWS algorithm this Key Manager signs and verifies with. Anything else (`none`, `HS256`, ...)
/// is rejected by the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256 (the default).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE name (exact, case-sensitive as RFC 7518 defines them).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(Algorithm::ES256),
            "RS256" => Some(Algorithm::RS256),
            "EdDSA" => Some(Algorithm::EdDSA),
            _ => None,
        }
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key with its key id. `Debug` shows only the id and algorithm.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    pair: Pair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn bad_key(e: impl std::fmt::Display) -> ApimError {
    ApimError::config("key_manager.signing_key", format!("unusable key: {e}"))
}

impl SigningKey {
    /// Generates a fresh ES256 key; returns it with its PKCS#8 document (to store).
    pub fn generate_es256(kid: &str) -> Result<(SigningKey, Vec<u8>), ApimError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| ApimError::Internal("ES256 key generation failed".into()))?;
        let key = SigningKey::from_pkcs8(kid, Algorithm::ES256, doc.as_ref())?;
        Ok((key, doc.as_ref().to_vec()))
    }

    /// Loads a PKCS#8 (DER) private key for `alg`.
    pub fn from_pkcs8(kid: &str, alg: Algorithm, der: &[u8]) -> Result<SigningKey, ApimError> {
        let pair = match alg {
            Algorithm::ES256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(bad_key)?,
            ),
            Algorithm::RS256 => Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(bad_key)?),
            // OpenSSL writes PKCS#8 v1 (no public key) for Ed25519
            Algorithm::EdDSA => {
                Pair::Ed(Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(bad_key)?)
            }
        };
        Ok(SigningKey {
            kid: kid.to_owned(),
            alg,
            pair,
        })
    }

    /// Key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ApimError> {
        let fail = |_| ApimError::Internal("signing failed".into());
        match &self.pair {
            Pair::Ec(k) => Ok(k
                .sign(&SystemRandom::new(), msg)
                .map_err(fail)?
                .as_ref()
                .to_vec()),
            Pair::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    msg,
                    &mut sig,
                )
                .map_err(fail)?;
                Ok(sig)
            }
        }
    }

    /// The public key as a JWK (RFC 7517), with `kid`, `alg` and `use: sig`.
    pub fn jwk(&self) -> Jwk {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let mut jwk = Jwk {
            kid: Some(self.kid.clone()),
            alg: Some(self.alg.as_str().into()),
            use_: Some("sig".into()),
            ..Jwk::default()
        };
        match &self.pair {
            Pair::Ec(k) => {
                // uncompressed point: 0x04 || x || y
                let p = k.public_key().as_ref();
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                jwk.x = Some(b64(&p[1..33]));
                jwk.y = Some(b64(&p[33..65]));
            }
            Pair::Ed(k) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64(k.public_key().as_ref()));
            }
            Pair::Rsa(k) => {
                let c: signature::RsaPublicKeyComponents<Vec<u8>> = k.public().into();
                jwk.kty = "RSA".into();
                jwk.n = Some(b64(&c.n));
                jwk.e = Some(b64(&c.e));
            }
        }
        jwk
    }
}

/// Prefix of a sealed private key in the store: `aes256gcm:v1:` + base64(nonce ‖ ciphertext
/// ‖ tag). A stored key without it is base64 PKCS#8 in plaintext (earlier versions).
const SEALED_PREFIX: &str = "aes256gcm:v1:";

/// The key-encryption key of the signing keys (AES-256-GCM). `Debug` shows nothing of it.
#[derive(Clone)]
pub struct KeyEncryptionKey(Arc<aead::LessSafeKey>);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

fn aad(kid: &str, alg: &str) -> aead::Aad<Vec<u8>> {
    aead::Aad::from(format!("apim-signing-key:v1:{kid}:{alg}").into_bytes())
}

fn kek_error(msg: impl Into<String>) -> ApimError {
    ApimError::config("key_manager.key_encryption_key", msg)
}

impl KeyEncryptionKey {
    /// A key from 32 bytes (see `apim_core::config::Config::key_encryption_key`).
    pub fn new(bytes: &[u8; 32]) -> Self {
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, bytes)
            .expect("AES-256-GCM takes 32-byte keys");
        KeyEncryptionKey(Arc::new(aead::LessSafeKey::new(key)))
    }

    /// Seals a PKCS#8 document for the row `(kid, alg)`.
    pub fn seal(&self, kid: &str, alg: &str, pkcs8: &[u8]) -> Result<String, ApimError> {
        let mut nonce = [0u8; aead::NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| ApimError::Internal("system RNG failed".into()))?;
        let mut buf = pkcs8.to_vec();
        self.0
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aad(kid, alg),
                &mut buf,
            )
            .map_err(|_| ApimError::Internal("sealing the signing key failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens what [`seal`](Self::seal) made for `(kid, alg)`; a wrong key (or a row changed
    /// or moved) fails naming `key_manager.key_encryption_key`.
    pub fn open(&self, kid: &str, alg: &str, sealed: &str) -> Result<Vec<u8>, ApimError> {
        let b64 = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| bad_key("not a sealed key"))?;
        let mut raw = STANDARD.decode(b64.as_bytes()).map_err(bad_key)?;
        if raw.len() < aead::NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return Err(bad_key("sealed key too short"));
        }
        let mut ct = raw.split_off(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(&raw).map_err(|_| bad_key("nonce"))?;
        let plain = self.0.open_in_place(nonce, aad(kid, alg), &mut ct).map_err(|_| {
            kek_error(format!(
                "cannot decrypt signing key {kid}: this is not the key-encryption key it was sealed with"
            ))
        })?;
        Ok(plain.to_vec())
    }
}

/// Whether a stored private key is sealed (else plaintext base64 PKCS#8).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The stored form of a PKCS#8 key: sealed with `kek`, else plaintext base64.
fn to_stored(
    kek: Option<&KeyEncryptionKey>,
    kid: &str,
    alg: &str,
    der: &[u8],
) -> Result<String, ApimError> {
    match kek {
        Some(k) => k.seal(kid, alg, der),
        None => Ok(STANDARD.encode(der)),
    }
}

/// The Key Manager's keys: the active one signs, all are published and verify.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<Arc<SigningKey>>,
    active: usize,
}

impl KeyRing {
    /// A ring of `keys` where `keys[active]` signs.
    pub fn new(keys: Vec<Arc<SigningKey>>, active: usize) -> Result<KeyRing, ApimError> {
        if active >= keys.len() {
            return Err(ApimError::Internal("no active signing key".into()));
        }
        Ok(KeyRing { keys, active })
    }

    /// Loads the keys kept in the store; on first start generates an ES256 key and stores it.
    /// With `kek`, keys are stored sealed, and keys an earlier version stored in plaintext
    /// are sealed now (same `kid`, same key); without it (embedders, tests) they are stored in
    /// plaintext, and a sealed key fails naming `key_manager.key_encryption_key`.
    pub async fn load_or_generate(
        store: &Store,
        kek: Option<&KeyEncryptionKey>,
    ) -> Result<KeyRing, ApimError> {
        let rows = store.signing_keys().await?;
        if !rows.iter().any(|r| r.3) {
            let kid = apim_core::crypto::new_id();
            let (_, der) = SigningKey::generate_es256(&kid)?;
            store
                .put_signing_key(&kid, "ES256", &to_stored(kek, &kid, "ES256", &der)?, true)
                .await?;
            tracing::info!(kid, sealed = kek.is_some(), "generated ES256 signing key");
            return Box::pin(Self::load_or_generate(store, kek)).await;
        }
        let mut keys = Vec::with_capacity(rows.len());
        let mut active = 0;
        for (kid, alg_name, stored, is_active) in rows {
            let alg = Algorithm::parse(&alg_name)
                .ok_or_else(|| bad_key(format!("algorithm {alg_name}")))?;
            let der = if is_sealed(&stored) {
                kek.ok_or_else(|| {
                    kek_error(format!(
                        "signing key {kid} is sealed: configure the key-encryption key it was sealed with"
                    ))
                })?
                .open(&kid, &alg_name, &stored)?
            } else {
                let der = STANDARD.decode(stored.as_bytes()).map_err(bad_key)?;
                if let Some(k) = kek {
                    SigningKey::from_pkcs8(&kid, alg, &der)?; // seal only a usable key
                    let sealed = k.seal(&kid, &alg_name, &der)?;
                    if store
                        .replace_signing_key_material(&kid, &stored, &sealed)
                        .await?
                    {
                        tracing::info!(kid, "sealed a signing key stored in plaintext");
                    }
                }
                der
            };
            if is_active {
                active = keys.len();
            }
            keys.push(Arc::new(SigningKey::from_pkcs8(&kid, alg, &der)?));
        }
        KeyRing::new(keys, active)
    }

    /// Adds a supplied PKCS#8 key to the store (optionally making it the active one), sealed
    /// with `kek` when given.
    pub async fn import(
        store: &Store,
        kek: Option<&KeyEncryptionKey>,
        kid: &str,
        alg: Algorithm,
        pkcs8_der: &[u8],
        active: bool,
    ) -> Result<(), ApimError> {
        SigningKey::from_pkcs8(kid, alg, pkcs8_der)?; // refuse unusable keys before storing
        store
            .put_signing_key(
                kid,
                alg.as_str(),
                &to_stored(kek, kid, alg.as_str(), pkcs8_der)?,
                active,
            )
            .await
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &Arc<SigningKey> {
        &self.keys[self.active]
    }

    /// The public keys (RFC 7517).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(|k| k.jwk()).collect(),
        }
    }

    /// A verifier for tokens signed by any of these keys.
    pub fn verifier(&self) -> JwtVerifier {
        JwtVerifier::from_jwks(&self.jwks())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18 item 8: a sealed key opens only with its key-encryption key and only for the
    /// row it was sealed for (kid and algorithm are associated data), and holds no plaintext.
    #[test]
    fn sealed_keys_open_only_with_their_kek_and_row() {
        let kek = KeyEncryptionKey::new(&[7u8; 32]);
        let (_, der) = SigningKey::generate_es256("k1").unwrap();
        let sealed = kek.seal("k1", "ES256", &der).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains(&STANDARD.encode(&der)[..20]));
        assert_eq!(kek.open("k1", "ES256", &sealed).unwrap(), der);
        let field = |r: Result<Vec<u8>, ApimError>| match r {
            Err(ApimError::Config { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let other = KeyEncryptionKey::new(&[8u8; 32]);
        assert_eq!(
            field(other.open("k1", "ES256", &sealed)),
            "key_manager.key_encryption_key"
        );
        assert_eq!(
            field(kek.open("k2", "ES256", &sealed)),
            "key_manager.key_encryption_key",
            "a sealed key moved to another kid does not open"
        );
        assert!(format!("{kek:?}").contains("redacted"));
    }
}
