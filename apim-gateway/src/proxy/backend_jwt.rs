//! The backend JWT (`X-JWT-Assertion`): who called, signed by the gateway so the backend can
//! trust it. ES256 with a P-256 key generated at start (ring); the backend verifies it with
//! [`BackendJwt::public_key`] (uncompressed SEC1 point).

use apim_core::auth::AuthContext;
use apim_core::model::Api;
use apim_core::ApimError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// Claims are valid this long.
const TTL_SECS: i64 = 900;

/// Signs backend JWTs.
pub struct BackendJwt {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    header_b64: String,
}

impl std::fmt::Debug for BackendJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendJwt").finish_non_exhaustive()
    }
}

impl BackendJwt {
    /// A signer with a freshly generated key.
    pub fn generate() -> Result<Self, ApimError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| ApimError::Internal("backend JWT key generation failed".into()))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| ApimError::Internal("backend JWT key rejected".into()))?;
        let kid = apim_core::crypto::sha256_hex(key.public_key().as_ref());
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": &kid[..16]});
        Ok(BackendJwt {
            key,
            rng,
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
        })
    }

    /// The verification key: an uncompressed P-256 point.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// The signed assertion for a caller of `api`.
    pub fn sign(&self, auth: &AuthContext, api: &Api) -> Result<HeaderValue, ApimError> {
        let now = apim_core::time::now_secs();
        let claims = serde_json::json!({
            "iss": "wso2.org/products/am",
            "iat": now,
            "exp": now + TTL_SECS,
            "sub": auth.end_user,
            "http://wso2.org/claims/subscriber": auth.application_owner,
            "http://wso2.org/claims/applicationid": auth.application_id,
            "http://wso2.org/claims/applicationname": auth.application_name,
            "http://wso2.org/claims/applicationtier": auth.application_tier,
            "http://wso2.org/claims/apiname": api.name,
            "http://wso2.org/claims/apicontext": api.context,
            "http://wso2.org/claims/version": api.version,
            "http://wso2.org/claims/tier": auth.subscription_tier,
            "http://wso2.org/claims/keytype": auth.key_type.as_str(),
            "http://wso2.org/claims/enduser": auth.end_user,
            "http://wso2.org/claims/client_id": auth.consumer_key,
            "scope": auth.scopes.join(" "),
        });
        let mut token = String::with_capacity(512);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut token);
        let sig = self
            .key
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| ApimError::Internal("backend JWT signing failed".into()))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
        HeaderValue::try_from(token).map_err(|e| ApimError::Internal(format!("backend JWT: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn signs_verifiable_es256() {
        let jwt = BackendJwt::generate().unwrap();
        let api: Api = serde_json::from_value(serde_json::json!({
            "name": "Pizza", "context": "/pizza", "version": "1",
            "endpointConfig": {"endpoint_type": "http"}
        }))
        .unwrap();
        let v = jwt
            .sign(&AuthContext::for_application("app1", "alice"), &api)
            .unwrap();
        let s = v.to_str().unwrap();
        let (signed, sig) = s.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, jwt.public_key())
            .verify(signed.as_bytes(), &sig)
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(signed.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["http://wso2.org/claims/applicationid"], "app1");
        assert_eq!(claims["http://wso2.org/claims/apicontext"], "/pizza");
    }
}
