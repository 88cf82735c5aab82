//! Field checks shared by the model's `validate` methods. Each names the field it refuses.

use crate::ApimError;

/// A non-empty, trimmed display name of at most 100 characters without control characters.
pub(crate) fn check_name(field: &str, v: &str) -> Result<(), ApimError> {
    if v.trim().is_empty() {
        return Err(ApimError::validation(field, "must not be empty"));
    }
    if v.trim() != v {
        return Err(ApimError::validation(
            field,
            "must not start or end with whitespace",
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ApimError::validation(
            field,
            "must not contain control characters",
        ));
    }
    check_len(field, v, 100)
}

/// At most `max` characters.
pub(crate) fn check_len(field: &str, v: &str, max: usize) -> Result<(), ApimError> {
    if v.chars().count() > max {
        return Err(ApimError::validation(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// An API context: `/seg(/seg)*`, segments of `[A-Za-z0-9_.~-]`, no `.`/`..` segments, no
/// `{version}` placeholder tricks, at most 200 characters.
pub(crate) fn check_context(field: &str, v: &str) -> Result<(), ApimError> {
    check_len(field, v, 200)?;
    let Some(rest) = v.strip_prefix('/') else {
        return Err(ApimError::validation(field, "must start with '/'"));
    };
    if rest.is_empty() {
        return Err(ApimError::validation(field, "must not be '/' alone"));
    }
    for seg in rest.split('/') {
        if seg.is_empty() {
            return Err(ApimError::validation(
                field,
                "must not contain empty segments or end with '/'",
            ));
        }
        if seg == "." || seg == ".." {
            return Err(ApimError::validation(
                field,
                "must not contain '.' or '..' segments",
            ));
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.~-".contains(&b))
        {
            return Err(ApimError::validation(
                field,
                format!("segment '{seg}' may only contain letters, digits, '_', '.', '~' and '-'"),
            ));
        }
    }
    Ok(())
}

/// A version: 1–30 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub(crate) fn check_version(field: &str, v: &str) -> Result<(), ApimError> {
    let ok = !v.is_empty()
        && v.len() <= 30
        && v.as_bytes()[0].is_ascii_alphanumeric()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && v != ".."
        && !v.contains("..");
    if ok {
        Ok(())
    } else {
        Err(ApimError::validation(
            field,
            "must be 1-30 characters of letters, digits, '.', '_' or '-' (e.g. 1.0.0 or v1)",
        ))
    }
}

/// An absolute `http` or `https` URL with a host.
pub(crate) fn check_url(field: &str, v: &str) -> Result<(), ApimError> {
    check_len(field, v, 2000)?;
    let uri: http::Uri = v
        .parse()
        .map_err(|_| ApimError::validation(field, format!("'{v}' is not a valid URL")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(ApimError::validation(
                field,
                "must be an http:// or https:// URL",
            ))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ApimError::validation(field, "must name a host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts() {
        for ok in ["/a", "/pizza/shack", "/t/x-y_z.1~"] {
            check_context("c", ok).unwrap();
        }
        for bad in [
            "",
            "a",
            "/",
            "//a",
            "/a/",
            "/../x",
            "/a/./b",
            "/a b",
            "/a%2f",
            "/{version}",
        ] {
            assert!(check_context("c", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for ok in ["1.0.0", "v1", "2024-01", "1_0"] {
            check_version("v", ok).unwrap();
        }
        for bad in ["", ".1", "1..0", "1.0 beta", "1/0", &"9".repeat(31)] {
            assert!(check_version("v", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        check_url("u", "http://localhost:8080/x").unwrap();
        check_url("u", "https://example.com").unwrap();
        for bad in [
            "localhost",
            "ftp://x/y",
            "http://",
            "not a url",
            "/relative",
        ] {
            assert!(check_url("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        check_name("n", "Pizza Shack").unwrap();
        for bad in ["", "   ", " x", "a\nb", &"x".repeat(101)] {
            assert!(check_name("n", bad).is_err());
        }
    }
}
