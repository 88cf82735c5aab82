//! Reading OpenAPI 3.0 / 3.1 documents (JSON or YAML) into API operations. Pure functions, so
//! the fuzz target can drive them directly; an invalid document is refused with a JSON-pointer
//! location (`/paths/~1menu/get`).

use apim_core::model::Operation;
use apim_core::ApimError;
use serde_json::Value;

/// Largest accepted definition (bytes).
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;
/// Most operations one definition may declare.
pub const MAX_OPERATIONS: usize = 1000;
/// Values (scalars, sequences, mappings, keys) a YAML definition may expand to, aliases
/// included, beyond one per byte of the document. A YAML alias repeats the node it names, so
/// a small document can describe a huge one ("billion laughs": 30 KB that expanded to 1.6 GB);
/// reading stops at `len + YAML_SLACK_VALUES` values instead. A document without aliases
/// holds at most one value per two bytes, so it always passes, with room for modest alias use.
pub const YAML_SLACK_VALUES: usize = 10_000;
/// Bytes of strings (keys and scalars) a YAML definition may expand to, aliases included:
/// twice the document's length plus this (without aliases they are fewer than its bytes).
pub const YAML_SLACK_STRING_BYTES: usize = 64 * 1024;

const VERBS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];
/// Path-item keys that are not operations.
const PATH_ITEM_KEYS: [&str; 6] = [
    "summary",
    "description",
    "servers",
    "parameters",
    "$ref",
    "trace",
];

/// What an OpenAPI document says about an API.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenApiDefinition {
    /// The document as JSON.
    pub document: Value,
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// `info.description`.
    pub description: Option<String>,
    /// The first absolute http(s) server URL, if any.
    pub server_url: Option<String>,
    /// Operations from `paths`.
    pub operations: Vec<Operation>,
}

fn invalid(pointer: impl Into<String>, message: impl Into<String>) -> ApimError {
    ApimError::validation(format!("definition{}", pointer.into()), message)
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Parses an OpenAPI document from JSON or YAML text.
pub fn parse_document(text: &[u8]) -> Result<Value, ApimError> {
    if text.len() > MAX_DEFINITION_BYTES {
        return Err(too_large());
    }
    let s = std::str::from_utf8(text).map_err(|_| invalid("", "is not valid UTF-8"))?;
    let trimmed = s.trim_start();
    if trimmed.is_empty() {
        return Err(invalid("", "is empty"));
    }
    if trimmed.starts_with('{') {
        return serde_json::from_str(s).map_err(|e| invalid("", format!("invalid JSON: {e}")));
    }
    parse_yaml(s)
}

/// Parses `text` as [`parse_document`] does, on a thread of tokio's blocking pool: a large
/// definition takes tens of milliseconds to read, which would stall every other request served
/// by the same async worker thread.
pub async fn parse_openapi_blocking(text: bytes::Bytes) -> Result<OpenApiDefinition, ApimError> {
    if text.len() > MAX_DEFINITION_BYTES {
        return Err(too_large());
    }
    tokio::task::spawn_blocking(move || parse_openapi(&text))
        .await
        .map_err(|e| ApimError::Internal(format!("definition parser: {e}")))?
}

fn too_large() -> ApimError {
    ApimError::PayloadTooLarge(format!(
        "the definition is over {MAX_DEFINITION_BYTES} bytes"
    ))
}

/// YAML into JSON values within the budget ([`YAML_SLACK_VALUES`], [`YAML_SLACK_STRING_BYTES`]), counted as
/// the values are built (aliases expanded), so a document that repeats itself through aliases
/// is refused after a bounded amount of work and memory, not after building all of it.
fn parse_yaml(s: &str) -> Result<Value, ApimError> {
    let (max_values, max_bytes) = (
        s.len() + YAML_SLACK_VALUES,
        2 * s.len() + YAML_SLACK_STRING_BYTES,
    );
    let budget = std::cell::Cell::new(Budget {
        values: max_values,
        bytes: max_bytes,
        exceeded: false,
    });
    let seed = Budgeted(&budget);
    let out =
        serde::de::DeserializeSeed::deserialize(seed, serde_yaml_ng::Deserializer::from_str(s));
    match out {
        Ok(v) => Ok(v),
        Err(_) if budget.get().exceeded => Err(invalid(
            "",
            format!(
                "expands to more than {max_values} values or {max_bytes} bytes of strings \
                 through YAML aliases (*name) repeating anchored nodes (&name); refused"
            ),
        )),
        Err(e) => Err(invalid("", format!("invalid YAML: {e}"))),
    }
}

#[derive(Clone, Copy)]
struct Budget {
    values: usize,
    bytes: usize,
    exceeded: bool,
}

/// Builds a [`Value`] as `serde_json`'s own `Deserialize` does, charging every value and
/// string to the budget.
#[derive(Clone, Copy)]
struct Budgeted<'b>(&'b std::cell::Cell<Budget>);

impl Budgeted<'_> {
    fn charge<E: serde::de::Error>(self, values: usize, bytes: usize) -> Result<(), E> {
        let mut b = self.0.get();
        match (b.values.checked_sub(values), b.bytes.checked_sub(bytes)) {
            (Some(v), Some(n)) => {
                b.values = v;
                b.bytes = n;
                self.0.set(b);
                Ok(())
            }
            _ => {
                b.exceeded = true;
                self.0.set(b);
                Err(E::custom("the document expands beyond the limit"))
            }
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Budgeted<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Budgeted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(1, 0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(1, 0)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(1, 0)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(1, 0)?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(1, v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(1, v.len())?;
        Ok(Value::String(v))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.charge(1, 0)?;
        Ok(Value::Null)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.charge(1, 0)?;
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(1, 0)?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(1, 0)?;
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key_seed(Key(self))? {
            let v = map.next_value_seed(self)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// A mapping key as a string (YAML keys such as `200:` are scalars of any type), charged to
/// the budget.
#[derive(Clone, Copy)]
struct Key<'b>(Budgeted<'b>);

impl<'de> serde::de::DeserializeSeed<'de> for Key<'_> {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        self.0.charge(1, s.len())?;
        Ok(s)
    }
}

/// Checks a parsed document and extracts the operations.
pub fn read_definition(document: Value) -> Result<OpenApiDefinition, ApimError> {
    let root = document
        .as_object()
        .ok_or_else(|| invalid("", "must be an object"))?;
    let version = root
        .get("openapi")
        .ok_or_else(|| {
            invalid(
                "/openapi",
                "is required (OpenAPI 3.0 or 3.1; Swagger 2.0 is not supported)",
            )
        })?
        .as_str()
        .ok_or_else(|| invalid("/openapi", "must be a string"))?;
    if !(version.starts_with("3.0") || version.starts_with("3.1")) {
        return Err(invalid(
            "/openapi",
            format!("version '{version}' is not supported; use 3.0.x or 3.1.x"),
        ));
    }
    let info = root
        .get("info")
        .ok_or_else(|| invalid("/info", "is required"))?
        .as_object()
        .ok_or_else(|| invalid("/info", "must be an object"))?;
    let string_at = |key: &str| -> Result<String, ApimError> {
        info.get(key)
            .ok_or_else(|| invalid(format!("/info/{key}"), "is required"))?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("/info/{key}"), "must be a string"))
    };
    let title = string_at("title")?;
    let api_version = string_at("version")?;
    let description = info
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let server_url = root
        .get("servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("url").and_then(Value::as_str))
        .find(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(str::to_owned);
    let mut operations = Vec::new();
    match root.get("paths") {
        None => {
            if !version.starts_with("3.1") {
                return Err(invalid("/paths", "is required in OpenAPI 3.0"));
            }
        }
        Some(paths) => {
            let paths = paths
                .as_object()
                .ok_or_else(|| invalid("/paths", "must be an object"))?;
            for (path, item) in paths {
                let at = format!("/paths/{}", escape(path));
                if path.starts_with("x-") {
                    continue;
                }
                if !path.starts_with('/') {
                    return Err(invalid(at, "a path must start with '/'"));
                }
                let item = item
                    .as_object()
                    .ok_or_else(|| invalid(at.clone(), "must be an object"))?;
                for (key, op) in item {
                    let lower = key.to_ascii_lowercase();
                    if key.starts_with("x-") || PATH_ITEM_KEYS.contains(&lower.as_str()) {
                        continue;
                    }
                    let op_at = format!("{at}/{}", escape(key));
                    if !VERBS.contains(&key.as_str()) {
                        return Err(invalid(op_at, format!("'{key}' is not an HTTP method")));
                    }
                    let op = op
                        .as_object()
                        .ok_or_else(|| invalid(op_at.clone(), "must be an object"))?;
                    if operations.len() >= MAX_OPERATIONS {
                        return Err(invalid(
                            "/paths",
                            format!("more than {MAX_OPERATIONS} operations"),
                        ));
                    }
                    let scopes = op
                        .get("security")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_object)
                        .flat_map(|req| req.values())
                        .filter_map(Value::as_array)
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                    let auth_none = op
                        .get("x-auth-type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("none"))
                        || op
                            .get("security")
                            .and_then(Value::as_array)
                            .is_some_and(|a| a.is_empty());
                    operations.push(Operation {
                        id: op
                            .get("operationId")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        target: path.clone(),
                        verb: key.to_ascii_uppercase(),
                        auth_type: if auth_none {
                            "None".into()
                        } else {
                            "Application & Application User".into()
                        },
                        throttling_policy: op
                            .get("x-throttling-tier")
                            .and_then(Value::as_str)
                            .filter(|t| *t != "Unlimited")
                            .map(str::to_owned),
                        scopes,
                    });
                }
            }
        }
    }
    Ok(OpenApiDefinition {
        document,
        title,
        version: api_version,
        description,
        server_url,
        operations,
    })
}

/// [`parse_document`] then [`read_definition`].
pub fn parse_openapi(text: &[u8]) -> Result<OpenApiDefinition, ApimError> {
    read_definition(parse_document(text)?)
}

/// A minimal OpenAPI 3.0 document for an API that has none stored.
pub fn generate(api: &apim_core::model::Api) -> Value {
    let mut paths = serde_json::Map::new();
    for op in &api.operations {
        let entry = paths
            .entry(op.target.clone())
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(m) = entry {
            let mut o = serde_json::json!({
                "responses": {"200": {"description": "OK"}},
                "x-auth-type": op.auth_type,
            });
            if let Some(p) = &op.throttling_policy {
                o["x-throttling-tier"] = Value::String(p.clone());
            }
            if !op.scopes.is_empty() {
                o["security"] = serde_json::json!([{"default": op.scopes}]);
            }
            m.insert(op.verb.to_ascii_lowercase(), o);
        }
    }
    serde_json::json!({
        "openapi": "3.0.1",
        "info": {"title": api.name, "version": api.version, "description": api.description},
        "servers": [{"url": format!("{}/{}", api.context, api.version)}],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETSTORE: &str = r#"
openapi: 3.0.3
info:
  title: Petstore
  version: 1.0.0
servers:
  - url: http://localhost:9080/pets
paths:
  /pets:
    get:
      operationId: listPets
      responses: {"200": {description: ok}}
    post:
      security: [{default: [write:pets]}]
      responses: {"201": {description: created}}
  /pets/{petId}:
    parameters: []
    get:
      responses: {"200": {description: ok}}
"#;

    #[test]
    fn yaml_and_json() {
        let d = parse_openapi(PETSTORE.as_bytes()).unwrap();
        assert_eq!(d.title, "Petstore");
        assert_eq!(d.server_url.as_deref(), Some("http://localhost:9080/pets"));
        assert_eq!(d.operations.len(), 3);
        let post = d.operations.iter().find(|o| o.verb == "POST").unwrap();
        assert_eq!(post.scopes, vec!["write:pets".to_owned()]);
        let json = serde_json::to_vec(&d.document).unwrap();
        assert_eq!(parse_openapi(&json).unwrap().operations.len(), 3);
    }

    fn field(text: &str) -> String {
        match parse_openapi(text.as_bytes()) {
            Err(ApimError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_documents_point_at_the_problem() {
        assert_eq!(field("swagger: '2.0'"), "definition/openapi");
        assert_eq!(field("openapi: 2.0.0\ninfo: {}"), "definition/openapi");
        assert_eq!(
            field("openapi: 3.0.0\ninfo: {version: '1'}\npaths: {}"),
            "definition/info/title"
        );
        assert_eq!(
            field("openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {/a: {fetch: {}}}"),
            "definition/paths/~1a/fetch"
        );
        assert_eq!(
            field("openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {a: {}}"),
            "definition/paths/a"
        );
        assert_eq!(field("{\"openapi\": "), "definition");
        assert_eq!(field("- a\n- b"), "definition");
    }

    /// A flat sequence anchored once and named by thousands of aliases: 30 KB that expand to
    /// tens of millions of values.
    fn alias_bomb() -> String {
        let mut doc =
            String::from("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\nx-a: &a [");
        doc.push_str(&"x,".repeat(5000));
        doc.push_str("x]\nx-b: [");
        doc.push_str(&"*a,".repeat(6600));
        doc.push_str("*a]\n");
        doc
    }

    #[test]
    fn yaml_aliases_are_bounded() {
        let doc = alias_bomb();
        assert!(doc.len() < 32 * 1024);
        let t = std::time::Instant::now();
        let e = parse_openapi(doc.as_bytes()).unwrap_err();
        assert!(
            matches!(&e, ApimError::Validation { field, message } if field == "definition" && message.contains("aliases")),
            "{e:?}"
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        // modest alias use (a shared response) still reads
        let ok = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get: {responses: &r {'200': {description: ok}}}\n  /b:\n    get: {responses: *r}\n";
        assert_eq!(parse_openapi(ok.as_bytes()).unwrap().operations.len(), 2);
        // integer keys read as strings, as before
        let d = parse_openapi(PETSTORE.as_bytes()).unwrap();
        assert!(d.document["paths"]["/pets"]["get"]["responses"]["200"].is_object());
    }

    #[test]
    fn generated_round_trips() {
        let d = parse_openapi(PETSTORE.as_bytes()).unwrap();
        let api: apim_core::model::Api = serde_json::from_value(serde_json::json!({
            "name": "Petstore", "context": "/pets", "version": "1.0.0",
            "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://localhost:9080"}},
            "operations": serde_json::to_value(&d.operations).unwrap(),
        }))
        .unwrap();
        let again = read_definition(generate(&api)).unwrap();
        assert_eq!(again.operations.len(), 3);
    }
}
