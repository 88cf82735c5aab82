//! Signing keys on ring: ES256 (generated on first start and kept in the store), RS256 and
//! EdDSA (from supplied PKCS#8). Several keys are published in the JWKS; new tokens use the
//! active one, tokens signed by older keys stay valid until they expire.

use std::sync::Arc;

use apim_core::store::Store;
use apim_core::ApimError;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
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
    pub async fn load_or_generate(store: &Store) -> Result<KeyRing, ApimError> {
        let rows = store.signing_keys().await?;
        if !rows.iter().any(|r| r.3) {
            let kid = apim_core::crypto::new_id();
            let (_, der) = SigningKey::generate_es256(&kid)?;
            store
                .put_signing_key(&kid, "ES256", &STANDARD.encode(der), true)
                .await?;
            tracing::info!(kid, "generated ES256 signing key");
            return Box::pin(Self::load_or_generate(store)).await;
        }
        let mut keys = Vec::with_capacity(rows.len());
        let mut active = 0;
        for (kid, alg, b64, is_active) in rows {
            let alg = Algorithm::parse(&alg).ok_or_else(|| bad_key(format!("algorithm {alg}")))?;
            let der = STANDARD.decode(b64.as_bytes()).map_err(bad_key)?;
            if is_active {
                active = keys.len();
            }
            keys.push(Arc::new(SigningKey::from_pkcs8(&kid, alg, &der)?));
        }
        KeyRing::new(keys, active)
    }

    /// Adds a supplied PKCS#8 key to the store (optionally making it the active one).
    pub async fn import(
        store: &Store,
        kid: &str,
        alg: Algorithm,
        pkcs8_der: &[u8],
        active: bool,
    ) -> Result<(), ApimError> {
        SigningKey::from_pkcs8(kid, alg, pkcs8_der)?; // refuse unusable keys before storing
        store
            .put_signing_key(kid, alg.as_str(), &STANDARD.encode(pkcs8_der), active)
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
