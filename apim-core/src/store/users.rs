//! Users and roles (shareddb). Passwords are PBKDF2 hashes (DESIGN §8).

use sqlx::Row;

use super::{from_row, to_json, Store};
use crate::crypto::{hash_password, verify_password};
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
            username: username.to_owned(),
            roles: user_roles.to_vec(),
            email,
            created_time: now_ms(),
        };
        let hash = hash_off_runtime(password.to_owned()).await?;
        let _gate = self.shared_write_gate().await;
        if self.get_user(username).await?.is_some() {
            return Err(ApimError::Conflict(format!(
                "user '{username}' already exists"
            )));
        }
        sqlx::query(
            "INSERT INTO users (username, password_hash, body, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(username)
        .bind(hash)
        .bind(to_json(&user)?)
        .bind(user.created_time)
        .execute(self.shared())
        .await?;
        Ok(user)
    }

    /// A user by name.
    pub async fn get_user(&self, username: &str) -> Result<Option<User>, ApimError> {
        let row = sqlx::query("SELECT body FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(self.shared())
            .await?;
        row.map(|r| from_row(&r, "body")).transpose()
    }

    /// All users.
    pub async fn list_users(&self) -> Result<Vec<User>, ApimError> {
        let rows = sqlx::query("SELECT body FROM users ORDER BY username")
            .fetch_all(self.shared())
            .await?;
        rows.iter().map(|r| from_row(r, "body")).collect()
    }

    /// Checks a user's password (PBKDF2, off the async runtime). `None` for an unknown user or a
    /// wrong password — callers must not tell the two apart.
    pub async fn verify_user(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, ApimError> {
        let Some((user, hash)) = self.user_with_password_hash(username).await? else {
            return Ok(None);
        };
        Ok(password_matches(password, &hash).await?.then_some(user))
    }

    /// A user with the stored password hash, for callers that remember verified credentials:
    /// keyed by the hash too, a remembered password stops working as soon as it is changed.
    pub async fn user_with_password_hash(
        &self,
        username: &str,
    ) -> Result<Option<(User, String)>, ApimError> {
        let row = sqlx::query("SELECT password_hash, body FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(self.shared())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: String = row.try_get(0)?;
        Ok(Some((from_row(&row, "body")?, hash)))
    }

    /// Changes a user's password.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), ApimError> {
        User::validate_password(password)?;
        let hash = hash_off_runtime(password.to_owned()).await?;
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

    /// Deletes a user.
    pub async fn delete_user(&self, username: &str) -> Result<(), ApimError> {
        let _gate = self.shared_write_gate().await;
        let n = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(self.shared())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(ApimError::NotFound(format!("user {username}")));
        }
        Ok(())
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

/// Whether `password` matches the stored PBKDF2 `hash` (checked off the async runtime).
pub async fn password_matches(password: &str, hash: &str) -> Result<bool, ApimError> {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApimError::Internal(format!("password check: {e}")))
}

async fn hash_off_runtime(password: String) -> Result<String, ApimError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApimError::Internal(format!("password hash: {e}")))?
}
