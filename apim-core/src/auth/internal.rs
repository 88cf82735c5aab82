//! The deployment's internal token: how the components of a distributed deployment (gateways,
//! Traffic Managers) prove themselves to the control plane and the Key Manager.

use http::HeaderMap;

use crate::crypto::{ct_eq, sha256_hex};
use crate::ApimError;

/// Checks that `headers` carry `Authorization: Bearer <expected>`: 401 when the token is
/// missing or wrong, 403 when no internal token is configured (`expected` = `None`), so an
/// unconfigured component never lets a caller in. Constant-time over equal-length hashes.
pub fn check_internal_token(headers: &HeaderMap, expected: Option<&str>) -> Result<(), ApimError> {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| ApimError::Unauthenticated("the internal token is required".into()))?;
    let expected =
        expected.ok_or_else(|| ApimError::Forbidden("no internal token is configured".into()))?;
    // hash both so the comparison is over equal lengths
    if ct_eq(
        sha256_hex(presented.trim().as_bytes()).as_bytes(),
        sha256_hex(expected.as_bytes()).as_bytes(),
    ) {
        Ok(())
    } else {
        Err(ApimError::Unauthenticated("invalid internal token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_token_is_checked() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(check_internal_token(&with("Bearer s3cret"), Some("s3cret")).is_ok());
        assert!(check_internal_token(&with("bearer s3cret "), Some("s3cret")).is_ok());
        let code = |r: Result<(), ApimError>| r.unwrap_err().status().as_u16();
        assert_eq!(
            code(check_internal_token(&with("Bearer nope"), Some("s3cret"))),
            401
        );
        assert_eq!(
            code(check_internal_token(&HeaderMap::new(), Some("s3cret"))),
            401
        );
        assert_eq!(
            code(check_internal_token(&with("Basic eDp5"), Some("s3cret"))),
            401
        );
        assert_eq!(
            code(check_internal_token(&with("Bearer s3cret"), None)),
            403
        );
    }
}
