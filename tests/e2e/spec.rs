//! The committed `openapi/openapi.json` must be exactly what the code generates.

#[test]
fn committed_openapi_spec_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = parley_api::spec::spec_json();
    if committed != generated {
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, generated).expect("write openapi.json");
            return;
        }
        panic!(
            "openapi/openapi.json is out of date: run `cargo run -- openapi --output openapi/openapi.json` \
             (or this test with UPDATE_OPENAPI=1) and commit it"
        );
    }
    let spec: serde_json::Value = serde_json::from_str(generated).expect("valid JSON");
    // Every operation has an id, a summary, a tag and documented errors.
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            assert!(op["operationId"].is_string(), "{method} {path} has no operationId");
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(op["description"].is_string(), "{method} {path} has no description");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path} has no tag"
            );
        }
    }
    // Every field of every schema is described.
    for (name, schema) in spec["components"]["schemas"].as_object().expect("schemas") {
        for (field, prop) in schema["properties"].as_object().into_iter().flatten() {
            let described = prop["description"].is_string()
                || prop["allOf"]
                    .as_array()
                    .is_some_and(|all| all.iter().any(|p| p["description"].is_string()));
            assert!(described, "{name}.{field} has no description");
        }
    }
}
