//! Extractors whose every rejection is an [`ApimError`] naming the offending field.
//!
//! axum's own `Json` / `Query` rejections are plain text without the field; these wrappers
//! deserialize through `serde_path_to_error`, so a bad body is a 400 whose description names the
//! field (`endpointConfig.production_endpoints.url`), and a body over the limit is a 413.

use apim_core::ApimError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest accepted request body (1 MiB; an OpenAPI document fits comfortably).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body; a rejection names the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// Turns a `serde_path_to_error` failure into a 400 naming the field.
pub(crate) fn field_error(path: &str, inner: &str) -> ApimError {
    let path = if path == "." { "" } else { path };
    // serde reports missing/unknown fields at the parent; append the field name
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| inner.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    let field = match named {
        Some(name) if !path.ends_with(name) => {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        }
        _ if path.is_empty() => "body".to_owned(),
        _ => path.to_owned(),
    };
    ApimError::validation(field, inner.to_owned())
}

/// Deserializes JSON bytes, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApimError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApimError::validation(
                    "body",
                    format!("invalid JSON: {inner}"),
                ));
            }
            Err(field_error(&e.path().to_string(), &inner.to_string()))
        }
    }
}

/// Reads the whole body, mapping a body over [`BODY_LIMIT`] to a 413.
pub(crate) async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Bytes, ApimError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
            ApimError::PayloadTooLarge(format!("the body is over {BODY_LIMIT} bytes"))
        } else {
            ApimError::BadRequest("the request body could not be read".into())
        }
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(ApimError::validation("body", "a JSON body is required"));
        }
        parse_json(&bytes).map(Json)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for Json<T> {
    type Rejection = ApimError;

    /// An empty body is `None`; a non-empty one must parse.
    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse_json(&bytes).map(|v| Some(Json(v)))
    }
}

/// A raw body (an OpenAPI document, JSON or YAML); over the limit is a 413.
#[derive(Debug, Clone, Default)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        body_bytes(req, state).await.map(RawBody)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query parameters; a rejection names the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApimError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_de(q);
        match de {
            Ok(v) => Ok(Query(v)),
            Err((path, msg)) => Err(field_error(&path, &msg)),
        }
    }
}

fn serde_urlencoded_de<T: DeserializeOwned>(q: &str) -> Result<T, (String, String)> {
    // axum re-exports no urlencoded deserializer; go through a JSON map of strings
    let mut map = serde_json::Map::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k).map_err(|m| ("query".to_owned(), m))?;
        let v = decode(v).map_err(|m| (k.clone(), m))?;
        map.insert(k, serde_json::Value::String(v));
    }
    let value = serde_json::Value::Object(map);
    serde_path_to_error::deserialize::<_, T>(value)
        .map_err(|e| (e.path().to_string(), e.inner().to_string()))
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "invalid percent-encoding".to_owned())?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "not valid UTF-8".to_owned())
}

/// Path parameters; a rejection is a 400 naming the parameter.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rej) => Err(ApimError::validation("path", rej.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        url: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
        count: Option<u32>,
    }

    fn field(body: &str) -> String {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApimError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_the_field() {
        assert_eq!(field("{"), "body");
        assert_eq!(field(r#"{"inner":{"url":"x"}}"#), "name");
        assert_eq!(field(r#"{"name":"a","inner":{}}"#), "inner.url");
        assert_eq!(
            field(r#"{"name":"a","inner":{"url":"x"},"bogus":1}"#),
            "bogus"
        );
        assert_eq!(
            field(r#"{"name":"a","inner":{"url":"x","z":1}}"#),
            "inner.z"
        );
        assert_eq!(field(r#"{"name":5,"inner":{"url":"x"}}"#), "name");
        assert_eq!(
            field(r#"{"name":"a","inner":{"url":"x"},"count":"x"}"#),
            "count"
        );
    }

    #[test]
    fn query_decoding() {
        #[derive(serde::Deserialize)]
        struct Q {
            action: String,
        }
        let q: Q = serde_urlencoded_de("action=Deploy+as+a%20Prototype").unwrap();
        assert_eq!(q.action, "Deploy as a Prototype");
        assert!(serde_urlencoded_de::<Q>("x=1").is_err());
    }
}
