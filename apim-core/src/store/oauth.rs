//! OAuth clients, issued tokens (refresh tokens, authorization codes, opaque access tokens —
//! only their SHA-256 hashes), signing keys and token revocations. Used by the Key Manager and by
//! the Developer Portal's generate-keys.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{from_row, to_json, Store};
use crate::crypto::{hash_secret, verify_secret};
use crate::event::{EventPayload, TokenRevocation};
use crate::time::{now_ms, now_secs};
use crate::ApimError;

/// A registered OAuth client (RFC 7591 metadata subset). The secret is never stored, only its hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OAuthClient {
    /// Client id (consumer key).
    pub client_id: String,
    /// Human-readable name.
    pub client_name: String,
    /// Owning user.
    pub owner: String,
    /// Application this client belongs to (Developer Portal keys), if any.
    #[serde(default)]
    pub application_id: Option<String>,
    /// `PRODUCTION` / `SANDBOX` when bound to an application.
    #[serde(default)]
    pub key_type: Option<String>,
    /// Allowed redirect URIs (authorization code flow).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Allowed grant types.
    pub grant_types: Vec<String>,
    /// Scopes the client may request (empty = any the user may have).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `JWT` or `OAUTH` (opaque).
    #[serde(default = "jwt")]
    pub token_type: String,
    /// Access-token lifetime, seconds (0 = server default).
    #[serde(default)]
    pub access_token_lifetime: u64,
    /// Refresh-token lifetime, seconds (0 = server default).
    #[serde(default)]
    pub refresh_token_lifetime: u64,
    /// Ms since the Unix epoch.
    #[serde(default)]
    pub created_time: i64,
    /// Registered with the deployment's initial access token (a console of the deployment).
    /// Only first-party clients — these and clients an admin owns — may obtain `apim:*` scopes.
    #[serde(default)]
    pub first_party: bool,
}

fn jwt() -> String {
    "JWT".into()
}

/// A token kept by hash: refresh token, authorization code or opaque access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredToken {
    /// `refresh`, `code` or `access`.
    pub kind: String,
    /// Client it was issued to.
    pub client_id: String,
    /// Token id (for access tokens the `jti`).
    pub jti: String,
    /// End user (or the client owner for client credentials).
    pub username: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: i64,
    /// Extra data (PKCE challenge, redirect URI, key type, application...).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Store {
    /// Registers a client with the hash of `secret`.
    pub async fn create_oauth_client(
        &self,
        mut client: OAuthClient,
        secret: &str,
    ) -> Result<OAuthClient, ApimError> {
        client.created_time = now_ms();
        let owner_id = self.owner_id_for(&client.owner).await?;
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO oauth_clients (client_id, secret_hash, owner, body, created_at, owner_id) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&client.client_id)
            .bind(hash_secret(secret))
            .bind(&client.owner)
            .bind(to_json(&client)?)
            .bind(client.created_time)
            .bind(owner_id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(client)
    }

    /// A client by id.
    pub async fn get_oauth_client(
        &self,
        client_id: &str,
    ) -> Result<Option<OAuthClient>, ApimError> {
        let row = sqlx::query("SELECT body FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(self.am())
            .await?;
        row.map(|r| from_row(&r, "body")).transpose()
    }

    /// Whether the account that owns `client` still exists — the same account, not a later
    /// one with the same name (clients are bound to the owner's immutable id).
    pub async fn oauth_client_owner_live(&self, client: &OAuthClient) -> Result<bool, ApimError> {
        let bound: Option<String> = sqlx::query(
            "SELECT COALESCE(owner_id, 'u-' || owner) FROM oauth_clients WHERE client_id = $1",
        )
        .bind(&client.client_id)
        .fetch_optional(self.am())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
        let current = self.user_id_of(&client.owner).await?;
        Ok(bound.is_some() && bound == current)
    }

    /// The id an entity owned by `username` is bound to: the user's id, or for a name without
    /// an account (embedded use, tests) the id a migrated row of that name carries.
    pub(crate) async fn owner_id_for(&self, username: &str) -> Result<String, ApimError> {
        Ok(self
            .user_id_of(username)
            .await?
            .unwrap_or_else(|| format!("u-{username}")))
    }

    /// Revokes `username`'s refresh tokens and authorization codes (password change, account
    /// deletion): none of them mints a token afterwards.
    pub async fn revoke_user_grants(&self, username: &str) -> Result<u64, ApimError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE oauth_tokens SET revoked = 1 WHERE username = $1 AND kind IN ('refresh', 'code') AND revoked = 0",
        )
        .bind(username)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// After an account is deleted: removes its applications (with their subscriptions, key
    /// mappings and OAuth clients; APPLICATION_DELETE for the gateways) and its other OAuth
    /// clients, revokes its refresh tokens and codes, and revokes the opaque access tokens of
    /// the user and of the removed clients (TOKEN_REVOCATION for the gateways).
    pub(crate) async fn remove_user_artifacts(
        &self,
        user_id: &str,
        username: &str,
    ) -> Result<(), ApimError> {
        let apps = sqlx::query("SELECT id FROM applications WHERE owner_id = $1")
            .bind(user_id)
            .fetch_all(self.am())
            .await?;
        let mut clients: Vec<String> = Vec::new();
        for a in apps {
            let id: String = a.try_get(0)?;
            for m in self.key_mappings(&id).await? {
                clients.push(m.consumer_key);
            }
            match self.delete_application(&id).await {
                Ok(()) | Err(ApimError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let own = sqlx::query("SELECT client_id FROM oauth_clients WHERE owner_id = $1")
            .bind(user_id)
            .fetch_all(self.am())
            .await?;
        for c in own {
            let id: String = c.try_get(0)?;
            match self.delete_oauth_client(&id).await {
                Ok(()) | Err(ApimError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            clients.push(id);
        }
        self.revoke_user_grants(username).await?;
        // opaque access tokens: of the user, and of the removed clients (client_credentials)
        let mut live = sqlx::query(
            "SELECT jti, expires_at, client_id FROM oauth_tokens WHERE username = $1 AND kind = 'access' AND revoked = 0 AND expires_at > $2",
        )
        .bind(username)
        .bind(now_secs())
        .fetch_all(self.am())
        .await?;
        for c in &clients {
            live.extend(
                sqlx::query(
                    "SELECT jti, expires_at, client_id FROM oauth_tokens WHERE client_id = $1 AND kind = 'access' AND revoked = 0 AND expires_at > $2",
                )
                .bind(c)
                .bind(now_secs())
                .fetch_all(self.am())
                .await?,
            );
        }
        for r in live {
            self.revoke_token(TokenRevocation {
                jti: r.try_get(0)?,
                token_type: "OPAQUE".into(),
                expiry_time: r.try_get(1)?,
                consumer_key: Some(r.try_get(2)?),
            })
            .await?;
        }
        for c in &clients {
            sqlx::query("UPDATE oauth_tokens SET revoked = 1 WHERE client_id = $1")
                .bind(c)
                .execute(self.am())
                .await?;
        }
        Ok(())
    }

    /// Authenticates a client: `Some(client)` when the secret matches (constant-time compare of
    /// SHA-256 hashes), `None` otherwise.
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Option<OAuthClient>, ApimError> {
        let row = sqlx::query("SELECT secret_hash, body FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(self.am())
            .await?;
        let Some(row) = row else {
            // same work for unknown clients, so timing does not reveal which ids exist
            let _ = verify_secret(
                secret,
                "0000000000000000000000000000000000000000000000000000000000000000",
            );
            return Ok(None);
        };
        let hash: String = row.try_get(0)?;
        if verify_secret(secret, &hash) {
            Ok(Some(from_row(&row, "body")?))
        } else {
            Ok(None)
        }
    }

    /// Replaces a client's secret.
    pub async fn set_client_secret(&self, client_id: &str, secret: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE oauth_clients SET secret_hash = $1 WHERE client_id = $2")
            .bind(hash_secret(secret))
            .bind(client_id)
            .execute(tx.conn())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(ApimError::NotFound(format!("client {client_id}")));
        }
        // a new secret ends what the old one obtained
        Store::revoke_client_tokens_in(&mut tx, client_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a client and revokes its tokens.
    pub async fn delete_oauth_client(&self, client_id: &str) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(tx.conn())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(ApimError::NotFound(format!("client {client_id}")));
        }
        Store::revoke_client_tokens_in(&mut tx, client_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Updates a client's metadata (not its secret).
    pub async fn update_oauth_client(&self, client: &OAuthClient) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE oauth_clients SET body = $1 WHERE client_id = $2")
            .bind(to_json(client)?)
            .bind(&client.client_id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a token under the SHA-256 of its value.
    pub async fn put_token(&self, value: &str, token: &StoredToken) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO oauth_tokens (token_hash, kind, client_id, jti, body, expires_at, revoked, username) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)")
            .bind(hash_secret(value))
            .bind(&token.kind)
            .bind(&token.client_id)
            .bind(&token.jti)
            .bind(to_json(token)?)
            .bind(token.expires_at)
            .bind(&token.username)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Looks up a live (unexpired, unrevoked) token of `kind` by value.
    pub async fn get_token(
        &self,
        value: &str,
        kind: &str,
    ) -> Result<Option<StoredToken>, ApimError> {
        let row = sqlx::query("SELECT body FROM oauth_tokens WHERE token_hash = $1 AND kind = $2 AND revoked = 0 AND expires_at > $3")
            .bind(hash_secret(value))
            .bind(kind)
            .bind(now_secs())
            .fetch_optional(self.am())
            .await?;
        row.map(|r| from_row(&r, "body")).transpose()
    }

    /// Atomically consumes a single-use token (refresh token rotation, authorization codes):
    /// returns it only to the first caller.
    pub async fn take_token(
        &self,
        value: &str,
        kind: &str,
    ) -> Result<Option<StoredToken>, ApimError> {
        let mut tx = self.begin().await?;
        let hash = hash_secret(value);
        let row = sqlx::query("SELECT body FROM oauth_tokens WHERE token_hash = $1 AND kind = $2 AND revoked = 0 AND expires_at > $3")
            .bind(&hash)
            .bind(kind)
            .bind(now_secs())
            .fetch_optional(tx.conn())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let n = sqlx::query(
            "UPDATE oauth_tokens SET revoked = 1 WHERE token_hash = $1 AND revoked = 0",
        )
        .bind(&hash)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(None);
        }
        let token = from_row(&row, "body")?;
        tx.commit().await?;
        Ok(Some(token))
    }

    /// Revokes a token id: records it and emits TOKEN_REVOCATION through the outbox (and marks a
    /// stored token with that id revoked).
    pub async fn revoke_token(&self, revocation: TokenRevocation) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(&revocation.jti)
            .fetch_optional(tx.conn())
            .await?
            .is_some();
        if exists {
            return Ok(());
        }
        sqlx::query("INSERT INTO revoked_tokens (jti, token_type, expires_at) VALUES ($1, $2, $3)")
            .bind(&revocation.jti)
            .bind(&revocation.token_type)
            .bind(revocation.expiry_time)
            .execute(tx.conn())
            .await?;
        sqlx::query("UPDATE oauth_tokens SET revoked = 1 WHERE jti = $1")
            .bind(&revocation.jti)
            .execute(tx.conn())
            .await?;
        tx.emit(EventPayload::TokenRevocation(revocation));
        tx.commit().await?;
        Ok(())
    }

    /// Whether a token id is revoked.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, ApimError> {
        Ok(sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(self.am())
            .await?
            .is_some())
    }

    /// Revocations that have not expired yet.
    pub async fn live_revocations_in(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Vec<TokenRevocation>, ApimError> {
        let rows = sqlx::query("SELECT jti, token_type, expires_at FROM revoked_tokens WHERE expires_at >= $1 ORDER BY jti")
            .bind(now_secs())
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenRevocation {
                    jti: r.try_get(0)?,
                    token_type: r.try_get(1)?,
                    expiry_time: r.try_get(2)?,
                    consumer_key: None,
                })
            })
            .collect()
    }

    /// Deletes expired tokens and revocations. Returns how many rows went.
    pub async fn purge_expired_tokens(&self) -> Result<u64, ApimError> {
        let now = now_secs();
        let mut tx = self.begin().await?;
        let a = sqlx::query("DELETE FROM oauth_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(tx.conn())
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(a + b)
    }

    /// Stores a signing key (the Key Manager's sealed text; base64 PKCS#8 when it has no
    /// key-encryption key). With `active`, every other key becomes inactive.
    pub async fn put_signing_key(
        &self,
        kid: &str,
        alg: &str,
        private_key_b64: &str,
        active: bool,
    ) -> Result<(), ApimError> {
        let mut tx = self.begin().await?;
        if active {
            sqlx::query("UPDATE signing_keys SET active = 0")
                .execute(tx.conn())
                .await?;
        }
        sqlx::query("INSERT INTO signing_keys (kid, alg, private_key, active, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(kid)
            .bind(alg)
            .bind(private_key_b64)
            .bind(i64::from(active))
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the stored private key of `kid` if it still is `old` (moving a plaintext key
    /// to sealed storage); returns whether it did.
    pub async fn replace_signing_key_material(
        &self,
        kid: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, ApimError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE signing_keys SET private_key = $1 WHERE kid = $2 AND private_key = $3",
        )
        .bind(new)
        .bind(kid)
        .bind(old)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Signing keys `(kid, alg, stored private key, active)`, newest first. The stored private
    /// key is the Key Manager's text (sealed, or base64 PKCS#8 from older versions).
    pub async fn signing_keys(&self) -> Result<Vec<(String, String, String, bool)>, ApimError> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_key, active FROM signing_keys ORDER BY created_at DESC, kid",
        )
        .fetch_all(self.am())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get::<i64, _>(3)? != 0,
                ))
            })
            .collect()
    }
}
