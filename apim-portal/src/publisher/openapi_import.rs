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
        return Err(ApimError::PayloadTooLarge(format!(
            "the definition is over {MAX_DEFINITION_BYTES} bytes"
        )));
    }
    let s = std::str::from_utf8(text).map_err(|_| invalid("", "is not valid UTF-8"))?;
    let trimmed = s.trim_start();
    if trimmed.is_empty() {
        return Err(invalid("", "is empty"));
    }
    if trimmed.starts_with('{') {
        return serde_json::from_str(s).map_err(|e| invalid("", format!("invalid JSON: {e}")));
    }
    serde_yaml_ng::from_str::<Value>(s).map_err(|e| invalid("", format!("invalid YAML: {e}")))
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
