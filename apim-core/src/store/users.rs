//! Users and roles (shareddb). Passwords are PBKDF2 hashes (DESIGN §8).

use std::net::IpAddr;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{from_row, to_json, CredentialSnapshot, Store};
use crate::crypto::new_id;
use crate::model::{roles, User};
use crate::time::now_ms;
use crate::ApimError;

impl Store {
    /// Creates a user with the given roles (each must exist). The password is hashed with
    /// PBKDF2-HMAC-SHA256 (600,000 iterations) off the async runtime.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        user_roles: &[String],
        email: Option<String>,
    ) -> Result<User, ApimError> {
        User::validate_username(username)?;
        User::validate_password(password)?;
        for (i, r) in user_roles.iter().enumerate() {
            if !self.role_exists(r).await? {
                return Err(ApimError::validation(
                    format!("roles[{i}]"),
                    format!("role '{r}' does not exist"),
                ));
            }
        }
        let user = User {
            id: new_id(),
            username: username.to_owned(),
            roles: user_roles.to_vec(),
            email,
            created_time: now_ms(),
        };
        if self.username_taken(username).await? {
            return Err(taken(username));
        }
        let hash = self.passwords().derive(password.to_owned()).await?;
        let _gate = self.shared_write_gate().await;
        // user names are unique regardless of case (the unique index on username_key holds
        // across processes; this check gives the friendly answer)
        if self.username_taken(username).await? {
            return Err(taken(username));
        }
        sqlx::query(
            "INSERT INTO users (username, password_hash, body, created_at, user_id, username_key) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(username)
        .bind(hash)
        .bind(to_json(&user)?)
        .bind(user.created_time)
        .bind(&user.id)
        .bind(username.to_ascii_lowercase())
        .execute(self.shared())
        .await
        .map_err(|e| match ApimError::from(e) {
            ApimError::Conflict(_) => taken(username),
            other => other,
        })?;
        Ok(user)
    }

    /// Whether a user name is taken, compared without regard to case.
    async fn username_taken(&self, username: &str) -> Result<bool, ApimError> {
        Ok(
            sqlx::query("SELECT 1 FROM users WHERE username_key = $1 OR lower(username) = $1")
                .bind(username.to_ascii_lowercase())
                .fetch_optional(self.shared())
                .await?
                .is_some(),
        )
    }

    /// A user by name.
    pub async fn get_user(&self, username: &str) -> Result<Option<User>, ApimError> {
        let row = sqlx::query(&format!(
            "SELECT body, {USER_ID} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.shared())
        .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// The immutable id of a user (what applications and OAuth clients are bound to).
    pub async fn user_id_of(&self, username: &str) -> Result<Option<String>, ApimError> {
        let row = sqlx::query(&format!("SELECT {USER_ID} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(self.shared())
            .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    /// All users.
    pub async fn list_users(&self) -> Result<Vec<User>, ApimError> {
        let rows = sqlx::query(&format!(
            "SELECT body, {USER_ID} FROM users ORDER BY username"
        ))
        .fetch_all(self.shared())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Checks a user's password. `None` for an unknown user or a wrong password — callers must
    /// not tell the two apart. See [`Store::check_password`].
    pub async fn verify_user(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, ApimError> {
        self.check_password(username, password, None).await
    }

    /// THE password check of every path (management Basic, Basic on APIs, password grant,
    /// authorize page, DCR): refused with 429 while the account or the client address `from`
    /// is locked out after repeated failures (without hashing), PBKDF2 in the bounded pool
    /// (503 when full), the same work for unknown users, and successes remembered per
    /// credential version (module `passwords`).
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
        from: Option<IpAddr>,
    ) -> Result<Option<User>, ApimError> {
        let guard = self.passwords();
        // a lock-out answers before any database or hashing work
        guard.check_lockout(username, from)?;
        let found = self.user_credential(username).await?;
        let snap = found.as_ref().map(|(_, s)| s);
        let ok = guard
            .check(username, password, from, snap, || async {
                Ok(self.user_credential(username).await?.map(|(_, s)| s))
            })
            .await?;
        Ok(if ok { found.map(|(u, _)| u) } else { None })
    }

    /// A user with the stored credential a password check is computed under.
    pub async fn user_credential(
        &self,
        username: &str,
    ) -> Result<Option<(User, CredentialSnapshot)>, ApimError> {
        let row = sqlx::query(&format!(
            "SELECT password_hash, body, {USER_ID} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.shared())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from_row(&row)?;
        let snap = CredentialSnapshot {
            user_id: user.id.clone(),
            hash: row.try_get(0)?,
        };
        Ok(Some((user, snap)))
    }

    /// A user with the stored password hash, for callers that remember verified credentials:
    /// keyed by the hash too, a remembered password stops working as soon as it is changed.
    pub async fn user_with_password_hash(
        &self,
        username: &str,
    ) -> Result<Option<(User, String)>, ApimError> {
        Ok(self
            .user_credential(username)
            .await?
            .map(|(u, snap)| (u, snap.hash)))
    }

    /// Changes a user's password (a new credential version: remembered checks of the old one
    /// no longer match) and revokes the user's refresh tokens and authorization codes.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), ApimError> {
        User::validate_password(password)?;
        if self.get_user(username).await?.is_none() {
            return Err(ApimError::NotFound(format!("user {username}")));
        }
        let hash = self.passwords().derive(password.to_owned()).await?;
        {
            let _gate = self.shared_write_gate().await;
            let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
                .bind(hash)
                .bind(username)
                .execute(self.shared())
                .await?
                .rows_affected();
            if n == 0 {
                return Err(ApimError::NotFound(format!("user {username}")));
            }
        }
        self.revoke_user_grants(username).await?;
        Ok(())
    }

    /// Replaces a user's roles.
    pub async fn set_roles(
        &self,
        username: &str,
        user_roles: &[String],
    ) -> Result<User, ApimError> {
        for (i, r) in user_roles.iter().enumerate() {
            if !self.role_exists(r).await? {
                return Err(ApimError::validation(
                    format!("roles[{i}]"),
                    format!("role '{r}' does not exist"),
                ));
            }
        }
        let mut user = self
            .get_user(username)
            .await?
            .ok_or_else(|| ApimError::NotFound(format!("user {username}")))?;
        user.roles = user_roles.to_vec();
        let _gate = self.shared_write_gate().await;
        sqlx::query("UPDATE users SET body = $1 WHERE username = $2")
            .bind(to_json(&user)?)
            .bind(username)
            .execute(self.shared())
            .await?;
        Ok(user)
    }

    /// Deletes a user, then everything bound to the account: its applications (with their
    /// subscriptions, keys and OAuth clients; APPLICATION_DELETE tells the gateways), its other
    /// OAuth clients, and its tokens (refresh tokens and codes revoked, opaque access tokens
    /// revoked with TOKEN_REVOCATION).
    pub async fn delete_user(&self, username: &str) -> Result<(), ApimError> {
        let user_id = self
            .user_id_of(username)
            .await?
            .ok_or_else(|| ApimError::NotFound(format!("user {username}")))?;
        {
            let _gate = self.shared_write_gate().await;
            let n = sqlx::query("DELETE FROM users WHERE username = $1")
                .bind(username)
                .execute(self.shared())
                .await?
                .rows_affected();
            if n == 0 {
                return Err(ApimError::NotFound(format!("user {username}")));
            }
        }
        self.remove_user_artifacts(&user_id, username).await
    }

    /// Creates a role (idempotent).
    pub async fn create_role(&self, name: &str) -> Result<(), ApimError> {
        User::validate_username(name).map_err(|_| {
            ApimError::validation(
                "name",
                "must be 3-64 characters of letters, digits, '.', '_', '@' or '-'",
            )
        })?;
        let _gate = self.shared_write_gate().await;
        if !self.role_exists(name).await? {
            sqlx::query("INSERT INTO roles (name) VALUES ($1)")
                .bind(name)
                .execute(self.shared())
                .await?;
        }
        Ok(())
    }

    /// All role names.
    pub async fn list_roles(&self) -> Result<Vec<String>, ApimError> {
        let rows = sqlx::query("SELECT name FROM roles ORDER BY name")
            .fetch_all(self.shared())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn role_exists(&self, name: &str) -> Result<bool, ApimError> {
        if roles::ALL.contains(&name) {
            return Ok(true);
        }
        Ok(sqlx::query("SELECT 1 FROM roles WHERE name = $1")
            .bind(name)
            .fetch_optional(self.shared())
            .await?
            .is_some())
    }
}

/// The user id column; rows written before ids existed get the id their migration gave them.
const USER_ID: &str = "COALESCE(user_id, 'u-' || username) AS user_id";

fn user_from_row(row: &AnyRow) -> Result<User, ApimError> {
    let mut user: User = from_row(row, "body")?;
    user.id = row.try_get("user_id")?;
    Ok(user)
}

fn taken(username: &str) -> ApimError {
    ApimError::Conflict(format!(
        "user '{username}' already exists (user names are compared without regard to case)"
    ))
}
