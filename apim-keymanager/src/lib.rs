//! # apim-keymanager
//!
//! The Key Manager of apim-rs: an OAuth2 authorization server over the apim-core
//! [`Store`](apim_core::store::Store), and the [`KeyValidator`](apim_core::auth::KeyValidator)
//! implementations a gateway puts in front of APIs.
//!
//! | endpoint | spec |
//! |---|---|
//! | `POST /oauth2/token` | RFC 6749: `client_credentials`, `password`, `refresh_token` (rotating), `authorization_code` + PKCE S256 |
//! | `GET/POST /oauth2/authorize` | minimal login + consent page for the code flow |
//! | `POST /oauth2/revoke` | RFC 7009 (emits TOKEN_REVOCATION through the outbox) |
//! | `POST /oauth2/introspect` | RFC 7662 (the caller authenticates as a client) |
//! | `GET /oauth2/jwks` | RFC 7517 |
//! | `POST /oauth2/register` | RFC 7591 (Basic user or initial access token) |
//! | `GET /.well-known/oauth-authorization-server`, `/.well-known/openid-configuration` | RFC 8414 |
//!
//! Tokens are JWTs signed with ring (ES256 by default, RS256 / EdDSA from supplied PKCS#8
//! keys) or, for clients registered with `token_type: OAUTH`, opaque tokens stored as hashes.
//! Errors follow RFC 6749 §5.2 ([`OAuthError`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), apim_core::ApimError> {
//! use std::sync::Arc;
//! use apim_core::artifacts::InMemoryArtifacts;
//! use apim_core::store::Store;
//! use apim_keymanager::{JwtValidator, KeyManager, KeyManagerSettings};
//!
//! let store = Store::connect_url("sqlite::memory:", None, 1).await?;
//! let km = KeyManager::new(store, KeyManagerSettings::new("http://localhost:9763")).await?;
//! let app = km.router(); // serve with axum::serve
//!
//! // a gateway in the same process verifies tokens with the Key Manager's keys
//! let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
//! let validator = JwtValidator::new(km.jwks_source(), artifacts)
//!     .with_issuer(km.settings().issuer.clone());
//! # let _ = (app, validator); Ok(()) }
//! ```

mod api_key;
mod authorize;
mod client_auth;
mod error;
pub mod form;
mod grants;
mod http_client;
pub mod internal;
mod introspect;
mod issue;
pub mod jwks;
pub mod jwt;
mod key_manager;
pub mod keys;
mod metadata;
mod register;
mod revoke;
mod scopes;
mod token_endpoint;
pub mod validator;

pub use api_key::ApiKeyRequest;
pub use error::{OAuthError, OAuthErrorKind};
pub use issue::TokenResponse;
pub use key_manager::{KeyManager, KeyManagerSettings};
pub use register::{ClientRegistration, RegisteredClient};
pub use scopes::DEFAULT_SCOPE;
pub use validator::{
    ApiKeyValidator, BasicAuthValidator, CredentialValidator, HttpUserVerifier,
    IntrospectionValidator, JwtValidator,
};

/// The axum version the router is built with, for embedders that serve it.
pub use axum;
