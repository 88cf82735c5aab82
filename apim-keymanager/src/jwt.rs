//! JWT (RFC 7519) encoding and verification with ring, base64 and serde_json.
//!
//! The verifier pins every key id to one algorithm (from the JWKS): a token whose header names
//! another algorithm — `none`, `HS256` "signed" with the public key, or any swap — is rejected
//! before any signature check, as are unknown key ids.

use std::collections::HashMap;

use apim_core::ApimError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::jwks::{Jwk, JwkSet};
use crate::keys::{Algorithm, SigningKey};

/// Longest token the verifier looks at.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three dot-separated parts, bad JSON, or too long.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A part is not base64url.
    #[error("malformed token: bad base64url")]
    Base64,
    /// `none`, `HS256` and anything not ES256/RS256/EdDSA.
    #[error("unsupported algorithm '{0}'")]
    UnsupportedAlgorithm(String),
    /// No key with this id.
    #[error("unknown key id")]
    UnknownKid,
    /// The header's algorithm differs from the one the key is pinned to.
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    /// Signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` differs.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` lacks the expected audience.
    #[error("wrong audience")]
    WrongAudience,
    /// The `jti` was revoked.
    #[error("token revoked")]
    Revoked,
}

impl From<JwtError> for ApimError {
    fn from(e: JwtError) -> Self {
        ApimError::InvalidCredentials(e.to_string())
    }
}

/// JOSE header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// Algorithm.
    pub alg: String,
    /// `JWT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// The `application` claim (WSO2).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApplicationClaim {
    /// Application id.
    pub id: String,
    /// Application UUID (same as `id` here).
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Application throttling tier.
    pub tier: String,
    /// Owner (subscriber).
    pub owner: String,
}

/// An API an API key may call (`subscribedAPIs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SubscribedApi {
    /// API id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Context.
    #[serde(default)]
    pub context: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Subscription tier.
    #[serde(rename = "subscriptionTier", default)]
    pub subscription_tier: String,
}

/// Claims of access tokens and API keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: end user (client owner for client credentials).
    pub sub: String,
    /// Audiences (a string or an array on the wire).
    #[serde(deserialize_with = "one_or_many", default)]
    pub aud: Vec<String>,
    /// Authorised party (the client id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// Client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Expiry (s since epoch).
    pub exp: i64,
    /// Issued at.
    #[serde(default)]
    pub iat: i64,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Token id.
    #[serde(default)]
    pub jti: String,
    /// Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<ApplicationClaim>,
    /// `PRODUCTION` / `SANDBOX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keytype: Option<String>,
    /// `apiKey` for API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// API keys: comma-separated IPs / CIDR ranges allowed to use the key.
    #[serde(
        rename = "permittedIP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub permitted_ip: Option<String>,
    /// API keys: comma-separated referer patterns (`*` wildcard) allowed to use the key.
    #[serde(
        rename = "permittedReferer",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub permitted_referer: Option<String>,
    /// API keys: the APIs the application was subscribed to when the key was issued.
    #[serde(
        rename = "subscribedAPIs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subscribed_apis: Option<Vec<SubscribedApi>>,
}

impl Claims {
    /// The scopes as a list.
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Signs `claims` with `key`: `base64url(header).base64url(claims).base64url(signature)`.
pub fn encode<C: Serialize>(key: &SigningKey, claims: &C) -> Result<String, ApimError> {
    let header = Header {
        alg: key.alg().as_str().into(),
        typ: Some("JWT".into()),
        kid: Some(key.kid().into()),
    };
    let mut out = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(out)
}

/// Whether a string looks like a JWS compact token (three parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Splits a token and decodes its header without verifying anything.
pub fn decode_header(token: &str) -> Result<Header, JwtError> {
    let (h, _) = token.split_once('.').ok_or(JwtError::Malformed("no '.'"))?;
    let raw = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Base64)?;
    serde_json::from_slice(&raw).map_err(|_| JwtError::Malformed("header is not JSON"))
}

#[derive(Debug)]
enum PublicKey {
    Ec(Vec<u8>),
    Ed(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// Verifies JWS signatures against a set of public keys, each pinned to one algorithm.
#[derive(Debug, Default)]
pub struct JwtVerifier {
    keys: HashMap<String, (Algorithm, PublicKey)>,
}

/// What to check besides the signature.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Expected `iss` (unchecked when `None`).
    pub issuer: Option<String>,
    /// An audience `aud` must contain (unchecked when `None`).
    pub audience: Option<String>,
    /// Allowed clock skew for `exp` / `nbf`, seconds.
    pub leeway_secs: i64,
}

fn key_from_jwk(jwk: &Jwk) -> Option<(Algorithm, PublicKey)> {
    let d = |s: &Option<String>| s.as_deref().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    // the alg a key is pinned to: its own `alg`, else the only one its type allows here
    let alg = match (&jwk.alg, jwk.kty.as_str(), jwk.crv.as_deref()) {
        (Some(a), _, _) => Algorithm::parse(a)?,
        (None, "EC", Some("P-256")) => Algorithm::ES256,
        (None, "OKP", Some("Ed25519")) => Algorithm::EdDSA,
        (None, "RSA", _) => Algorithm::RS256,
        _ => return None,
    };
    let key = match (alg, jwk.kty.as_str()) {
        (Algorithm::ES256, "EC") if jwk.crv.as_deref() == Some("P-256") => {
            let (x, y) = (d(&jwk.x)?, d(&jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut p = Vec::with_capacity(65);
            p.push(4);
            p.extend_from_slice(&x);
            p.extend_from_slice(&y);
            PublicKey::Ec(p)
        }
        (Algorithm::EdDSA, "OKP") if jwk.crv.as_deref() == Some("Ed25519") => {
            PublicKey::Ed(d(&jwk.x)?)
        }
        (Algorithm::RS256, "RSA") => PublicKey::Rsa {
            n: d(&jwk.n)?,
            e: d(&jwk.e)?,
        },
        _ => return None,
    };
    Some((alg, key))
}

impl JwtVerifier {
    /// A verifier for the keys of a JWKS. Keys without `kid`, of unsupported types, or whose
    /// `alg` does not fit their type are skipped.
    pub fn from_jwks(set: &JwkSet) -> JwtVerifier {
        let keys = set
            .keys
            .iter()
            .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
            .filter_map(|k| Some((k.kid.clone()?, key_from_jwk(k)?)))
            .collect();
        JwtVerifier { keys }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no usable keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `kid` is known.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Checks the signature and decodes the claims; checks no claim.
    pub fn verify_signature(&self, token: &str) -> Result<Claims, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("not three parts"));
        };
        let header = decode_header(token)?;
        let Some(alg) = Algorithm::parse(&header.alg) else {
            return Err(JwtError::UnsupportedAlgorithm(
                header.alg.chars().take(16).collect(),
            ));
        };
        let kid = header.kid.as_deref().ok_or(JwtError::UnknownKid)?;
        let (pinned, key) = self.keys.get(kid).ok_or(JwtError::UnknownKid)?;
        if *pinned != alg {
            return Err(JwtError::AlgorithmMismatch);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Base64)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Base64)?;
        let msg = &token.as_bytes()[..h.len() + 1 + p.len()];
        let ok = match key {
            PublicKey::Ec(k) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k).verify(msg, &sig)
            }
            PublicKey::Ed(k) => UnparsedPublicKey::new(&signature::ED25519, k).verify(msg, &sig),
            PublicKey::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                msg,
                &sig,
            ),
        };
        ok.map_err(|_| JwtError::BadSignature)?;
        serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed("claims are not JSON"))
    }

    /// Checks the signature, then `exp`, `nbf`, `iss` and `aud` at time `now` (s since epoch).
    pub fn verify(&self, token: &str, v: &Validation, now: i64) -> Result<Claims, JwtError> {
        let claims = self.verify_signature(token)?;
        check_claims(&claims, v, now)?;
        Ok(claims)
    }
}

/// The time and audience checks of [`JwtVerifier::verify`].
pub fn check_claims(c: &Claims, v: &Validation, now: i64) -> Result<(), JwtError> {
    if c.exp + v.leeway_secs <= now {
        return Err(JwtError::Expired);
    }
    if c.nbf.is_some_and(|nbf| nbf - v.leeway_secs > now) {
        return Err(JwtError::NotYetValid);
    }
    if v.issuer.as_deref().is_some_and(|iss| iss != c.iss) {
        return Err(JwtError::WrongIssuer);
    }
    if v.audience
        .as_deref()
        .is_some_and(|aud| !c.aud.iter().any(|a| a == aud))
    {
        return Err(JwtError::WrongAudience);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
