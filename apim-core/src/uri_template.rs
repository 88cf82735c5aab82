//! URI templates of API resources: `/menu`, `/order/{orderId}`, `/files/*`.
//!
//! A template is a list of segments; `{name}` matches exactly one non-empty segment and `*`
//! (last segment only) matches zero or more. Matching walks the path once without allocating.

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal this text.
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param(String),
    /// `*` (or `/*` at the end): the rest of the path, possibly empty.
    Wildcard,
}

/// A parsed URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    segments: Vec<Segment>,
}

impl UriTemplate {
    /// Parses a template; the error says what is wrong.
    pub fn parse(t: &str) -> Result<Self, String> {
        if t.len() > 1000 {
            return Err("must be at most 1000 characters".into());
        }
        let Some(rest) = t.strip_prefix('/') else {
            return Err(format!("'{t}' must start with '/'"));
        };
        if t.contains('?') || t.contains('#') {
            return Err(format!("'{t}' must not contain a query or fragment"));
        }
        let mut segments = Vec::new();
        if rest.is_empty() {
            return Ok(UriTemplate { segments });
        }
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, seg) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if *seg == "*" {
                if !last {
                    return Err(format!("'{t}': '*' is only allowed as the last segment"));
                }
                segments.push(Segment::Wildcard);
            } else if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(format!("'{t}': bad parameter name '{{{name}}}'"));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else if seg.is_empty() {
                if !last {
                    return Err(format!("'{t}': empty segment"));
                }
            } else if seg.contains(['{', '}', '*']) || *seg == "." || *seg == ".." {
                return Err(format!("'{t}': bad segment '{seg}'"));
            } else {
                segments.push(Segment::Literal((*seg).to_owned()));
            }
        }
        Ok(UriTemplate { segments })
    }

    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether `path` (relative to context/version, starting with `/` or empty, no query)
    /// matches.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.strip_prefix('/').unwrap_or(path);
        let mut parts = path.split('/');
        for seg in &self.segments {
            match seg {
                Segment::Wildcard => return true,
                Segment::Literal(l) => match parts.next() {
                    Some(p) if p == l => {}
                    _ => return false,
                },
                Segment::Param(_) => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
            }
        }
        match parts.next() {
            None => true,
            // a trailing slash ("/menu/") matches "/menu"
            Some("") => parts.next().is_none(),
            Some(_) => false,
        }
    }

    /// Specificity used to order candidates: more literal segments first, wildcards last.
    pub fn specificity(&self) -> (usize, usize, bool) {
        let lit = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let wild = self.segments.iter().any(|s| matches!(s, Segment::Wildcard));
        (lit, self.segments.len(), !wild)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let t = UriTemplate::parse("/menu").unwrap();
        assert!(
            t.matches("/menu") && t.matches("/menu/") && !t.matches("/menu/1") && !t.matches("/")
        );
        let t = UriTemplate::parse("/order/{id}").unwrap();
        assert!(t.matches("/order/7") && !t.matches("/order/") && !t.matches("/order/7/x"));
        let t = UriTemplate::parse("/*").unwrap();
        assert!(t.matches("/") && t.matches("") && t.matches("/a/b/c"));
        let t = UriTemplate::parse("/files/*").unwrap();
        assert!(t.matches("/files") && t.matches("/files/a/b") && !t.matches("/filesx"));
        let t = UriTemplate::parse("/").unwrap();
        assert!(t.matches("/") && t.matches("") && !t.matches("/a"));
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "menu", "/a/*/b", "/{}", "/{a b}", "/a?x=1", "/a//b", "/../x", "/a{b",
        ] {
            assert!(UriTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
