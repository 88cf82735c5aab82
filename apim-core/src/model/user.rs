//! Users, roles and OAuth scopes.

use serde::{Deserialize, Serialize};

use super::validate::{check_len, check_name};
use crate::ApimError;

/// Built-in roles.
pub mod roles {
    /// Everything.
    pub const ADMIN: &str = "admin";
    /// Creates and edits APIs.
    pub const CREATOR: &str = "creator";
    /// Changes lifecycle, deploys.
    pub const PUBLISHER: &str = "publisher";
    /// Subscribes, manages own applications (self-signup role).
    pub const SUBSCRIBER: &str = "subscriber";
    /// All built-in roles.
    pub const ALL: [&str; 4] = [ADMIN, CREATOR, PUBLISHER, SUBSCRIBER];
}

/// Management scopes.
pub mod scopes {
    /// Create and edit APIs.
    pub const API_CREATE: &str = "apim:api_create";
    /// Publish, deploy, change lifecycle.
    pub const API_PUBLISH: &str = "apim:api_publish";
    /// Developer Portal actions.
    pub const SUBSCRIBE: &str = "apim:subscribe";
    /// Admin API.
    pub const ADMIN: &str = "apim:admin";
}

/// A user account. The password hash never leaves the store layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Immutable id: what applications and OAuth clients are bound to, so a later account
    /// with a deleted user's name inherits nothing. Server-set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Unique user name (unique regardless of case).
    pub username: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Optional e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Ms since the Unix epoch.
    #[serde(default)]
    pub created_time: i64,
}

impl User {
    /// Whether the user has `role` (admin has every role).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role || r == roles::ADMIN)
    }

    /// Management scopes the user's roles grant.
    pub fn granted_scopes(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.has_role(roles::CREATOR) {
            out.push(scopes::API_CREATE);
        }
        if self.has_role(roles::PUBLISHER) {
            out.push(scopes::API_PUBLISH);
        }
        if self.has_role(roles::SUBSCRIBER)
            || self.has_role(roles::CREATOR)
            || self.has_role(roles::PUBLISHER)
        {
            out.push(scopes::SUBSCRIBE);
        }
        if self.has_role(roles::ADMIN) {
            out.push(scopes::ADMIN);
        }
        out
    }

    /// Validates a user name: 3–64 of `[A-Za-z0-9._@-]`.
    pub fn validate_username(name: &str) -> Result<(), ApimError> {
        let ok = (3..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
        if ok {
            Ok(())
        } else {
            Err(ApimError::validation(
                "username",
                "must be 3-64 characters of letters, digits, '.', '_', '@' or '-'",
            ))
        }
    }

    /// Validates a new password: 8–256 characters.
    pub fn validate_password(p: &str) -> Result<(), ApimError> {
        if p.chars().count() < 8 {
            return Err(ApimError::validation(
                "password",
                "must be at least 8 characters",
            ));
        }
        check_len("password", p, 256)
    }
}

/// A role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Role {
    /// Unique role name.
    pub name: String,
}

/// An OAuth scope an API resource may require, bound to roles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scope {
    /// Scope name, e.g. `read:orders`.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Roles allowed to obtain the scope (empty = anyone).
    #[serde(default)]
    pub bindings: Vec<String>,
}

impl Scope {
    /// Validation with field names.
    pub fn validate(&self) -> Result<(), ApimError> {
        check_name("name", &self.name)?;
        if self.name.contains(char::is_whitespace) {
            return Err(ApimError::validation("name", "must not contain whitespace"));
        }
        if let Some(d) = &self.description {
            check_len("description", d, 1000)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_scopes() {
        let u = User {
            id: String::new(),
            username: "alice".into(),
            roles: vec!["subscriber".into()],
            email: None,
            created_time: 0,
        };
        assert_eq!(u.granted_scopes(), vec![scopes::SUBSCRIBE]);
        let admin = User {
            id: String::new(),
            username: "admin".into(),
            roles: vec!["admin".into()],
            email: None,
            created_time: 0,
        };
        assert_eq!(admin.granted_scopes().len(), 4);
        assert!(User::validate_username("a b").is_err());
        assert!(User::validate_password("short").is_err());
    }
}
