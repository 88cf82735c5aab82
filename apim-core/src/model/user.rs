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
    /// Server-assigned id of a shared scope (read-only; empty for API-local scopes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Scope name, e.g. `read:orders`; unique among shared scopes and the APIs' own scopes.
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
    /// How many APIs use a shared scope (read-only, server-set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_count: Option<u64>,
}

impl Scope {
    /// Validation with field names.
    pub fn validate(&self) -> Result<(), ApimError> {
        self.validate_at("")
    }

    /// Validation with field names under `prefix` (e.g. `scopes[0].scope.`). Names are OAuth
    /// scope tokens (RFC 6749 §3.3: printable ASCII but space, quote and backslash); `apim:` names are
    /// the management scopes and cannot be defined.
    pub fn validate_at(&self, prefix: &str) -> Result<(), ApimError> {
        let field = |f: &str| format!("{prefix}{f}");
        check_name(&field("name"), &self.name)?;
        check_len(&field("name"), &self.name, 255)?;
        if !self
            .name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(ApimError::validation(
                field("name"),
                "must be printable ASCII without spaces, '\"' or '\\'",
            ));
        }
        if self.name.starts_with("apim:") {
            return Err(ApimError::validation(
                field("name"),
                "'apim:' scopes are the management scopes and cannot be defined",
            ));
        }
        if let Some(d) = &self.display_name {
            check_len(&field("displayName"), d, 255)?;
        }
        if let Some(d) = &self.description {
            check_len(&field("description"), d, 1000)?;
        }
        if self.bindings.len() > 100 {
            return Err(ApimError::validation(
                field("bindings"),
                "at most 100 roles",
            ));
        }
        for (i, r) in self.bindings.iter().enumerate() {
            check_name(&field(&format!("bindings[{i}]")), r)?;
            check_len(&field(&format!("bindings[{i}]")), r, 255)?;
        }
        Ok(())
    }

    /// Whether `user` may obtain this scope: anyone when it has no role bindings, else a user
    /// with one of the bound roles (admin has every role).
    pub fn allows(&self, user: Option<&User>) -> bool {
        self.bindings.is_empty()
            || user.is_some_and(|u| self.bindings.iter().any(|r| u.has_role(r)))
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
