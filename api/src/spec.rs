//! The committed OpenAPI document: how it is made from the operations, served,
//! and read back for the `Allow` header of a `405` (`allowed_methods`).

use crate::routes::service;

/// The committed form of the spec: pretty JSON with a trailing newline
/// (made once).
pub fn spec_json() -> &'static str {
    static SPEC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        let raw: serde_json::Value = serde_json::from_str(&service(None).spec()).unwrap_or_default();
        let mut spec = serde_json::to_string_pretty(&clearable(plain_refs(raw))).unwrap_or_default();
        spec.push('\n');
        spec
    })
    .as_str()
}

/// Routes outside the API description; each takes `GET` (and so `HEAD`).
const PLAIN_GET_ROUTES: &[&str] = &["/openapi.json", "/jobs", "/widget.js", "/widget/{name}"];

/// The methods a path takes, for the `Allow` header of a `405`: from the
/// spec's paths (a literal segment beats a `{parameter}`), and the plain
/// routes. `None` for a path no route has.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    static TABLE: std::sync::OnceLock<Vec<(Vec<String>, String)>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let spec: serde_json::Value = serde_json::from_str(spec_json()).unwrap_or_default();
        let mut table: Vec<(Vec<String>, String)> = Vec::new();
        let split = |template: &str| template.trim_start_matches('/').split('/').map(str::to_owned).collect();
        if let Some(paths) = spec["paths"].as_object() {
            for (template, operations) in paths {
                let mut methods: Vec<&str> = ["get", "post", "put", "patch", "delete"]
                    .into_iter()
                    .filter(|m| operations.get(*m).is_some())
                    .collect();
                if methods.contains(&"get") {
                    methods.insert(1, "head");
                }
                table.push((split(template), methods.join(", ").to_uppercase()));
            }
        }
        for template in PLAIN_GET_ROUTES {
            table.push((split(template), "GET, HEAD".to_owned()));
        }
        table
    });
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    table
        .iter()
        .filter_map(|(template, methods)| {
            let fits = template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s);
            let literal = template.iter().filter(|t| !t.starts_with('{')).count();
            fits.then_some((literal, methods.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, methods)| methods)
}

/// Request fields where `null` clears the value (`MaybeUndefined` in the
/// code), as `(schema, property)`. poem-openapi describes them as their
/// value's type alone; the spec says they take `null` too, so that generated
/// clients can send it.
const CLEARABLE: &[(&str, &str)] = &[
    ("ModelSettingsPatch", "model"),
    ("UpdateBotRequest", "website"),
    ("UpdateBotRequest", "rate_limit_per_minute"),
    ("UpdateWebhookRequest", "description"),
];

/// Marks the `CLEARABLE` fields `nullable`.
fn clearable(mut spec: serde_json::Value) -> serde_json::Value {
    for (schema, field) in CLEARABLE {
        let pointer = format!("/components/schemas/{schema}/properties/{field}");
        if let Some(property) = spec.pointer_mut(&pointer).and_then(serde_json::Value::as_object_mut) {
            property.insert("nullable".into(), serde_json::Value::Bool(true));
        }
    }
    spec
}

/// A described reference, `{"allOf": [{"$ref": X}, {"description": ...}]}`,
/// as the plain `{"$ref": X, "description": ...}` that client generators
/// read (several cannot take `allOf` of an enum); everything else as it is.
fn plain_refs(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let described_ref = |parts: &[Value]| {
        parts.len() == 2
            && parts[0]
                .as_object()
                .is_some_and(|o| o.len() == 1 && o.contains_key("$ref"))
            && parts[1]
                .as_object()
                .is_some_and(|o| !o.contains_key("$ref") && !o.contains_key("properties") && !o.contains_key("type"))
    };
    match value {
        Value::Object(mut map) => {
            let plain = matches!(map.get("allOf"), Some(Value::Array(parts)) if described_ref(parts));
            if plain && let Some(Value::Array(parts)) = map.remove("allOf") {
                for part in parts {
                    if let Value::Object(o) = part {
                        map.extend(o);
                    }
                }
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, plain_refs(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(plain_refs).collect()),
        other @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)) => other,
    }
}

/// `GET /openapi.json`: the spec as committed in `openapi/openapi.json`.
#[poem::handler]
pub fn spec_endpoint() -> poem::Response {
    poem::Response::builder()
        .content_type("application/json; charset=utf-8")
        .body(spec_json())
}

#[cfg(test)]
mod tests {
    use super::{CLEARABLE, spec_json};

    #[test]
    fn allowed_methods_follow_the_routes() {
        use super::allowed_methods;
        assert_eq!(allowed_methods("/api/v1/bots"), Some("GET, HEAD, POST"));
        let bot = "/api/v1/bots/0192e5a0-0000-7000-8000-000000000000";
        assert_eq!(allowed_methods(bot), Some("GET, HEAD, PATCH, DELETE"));
        assert_eq!(allowed_methods("/widget/frame.js"), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/api/v1/nothing-here"), None);
    }

    #[test]
    fn clearable_fields_take_null_in_the_spec() {
        let spec: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
        for (schema, field) in CLEARABLE {
            let property = spec
                .pointer(&format!("/components/schemas/{schema}/properties/{field}"))
                .unwrap_or_else(|| panic!("{schema}.{field} is in the spec"));
            assert_eq!(property["nullable"], true, "{schema}.{field}: {property}");
            assert!(
                property.get("$ref").is_none(),
                "{schema}.{field}: nullable beside $ref is ignored"
            );
        }
        let nullable = spec_json().matches("\"nullable\": true").count();
        assert_eq!(nullable, CLEARABLE.len(), "no other field is marked");
    }
}
