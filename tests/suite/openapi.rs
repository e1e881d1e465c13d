//! `/openapi.json` describes the router exactly: every documented route exists on a running
//! server (its method answered by its handler, not by the router's fallbacks), and every route
//! the server defines is documented (routes are only added through `utoipa_axum::routes!`,
//! which documents them; checked in the sources). The status codes the route-table test
//! observes are checked against the document in `tests/suite/routes.rs`.

use crate::common::*;
use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// `template` with every `{param}` replaced by a plausible value.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{instance_id}" => "6b1c0e52-5d8a-4f0e-9a4c-1d3e2f4a5b6c",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_exists_and_answers_its_documented_methods() {
    let s = serve().await;
    let document = s.get_json("/openapi.json", None).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{:?}", paths.keys());
    let mut refs = Vec::new();
    collect_refs(&document, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let target = reference
            .strip_prefix("#/")
            .unwrap_or_else(|| panic!("{reference}"));
        let found = target
            .split('/')
            .try_fold(&document, |node, key| node.get(key));
        assert!(found.is_some(), "{reference} points nowhere");
    }
    let mut checked = 0;
    for (template, item) in paths {
        let item = item.as_object().unwrap();
        for method in METHODS.iter().filter(|m| item.contains_key(**m)) {
            let operation = &item[*method];
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {template} documents no response"
            );
            assert!(
                operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {template} has no tag"
            );
            let url = format!("{}{}", s.url(), concrete(template));
            let response = s
                .http
                .request(method.to_uppercase().parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let fallback = body["details"]
                .as_str()
                .is_some_and(|d| d.contains("/openapi.json"));
            assert!(
                status != 405 && !fallback,
                "{method} {template}: answered by the router's fallback ({status} {body})"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} operations");

    // And the fallbacks do say so: an undocumented path or method is not served.
    let missing = s
        .http
        .get(format!("{}/api/admin/no-such-route", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(!paths.contains_key("/api/admin/no-such-route"));
    let wrong = s
        .http
        .delete(format!("{}/healthz", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
}

fn collect_refs(node: &Value, into: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                into.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

/// Routes reach the router only through `routes!` (documented by construction): no plain
/// `.route(` or service route in the server's sources, except the test-only routes.
#[test]
fn routes_are_only_added_documented() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/server/src");
    let mut offenders = Vec::new();
    for file in walk(&dir) {
        if file.ends_with("test_routes.rs") || file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        for (n, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            // A plain axum router (not `OpenApiRouter`) would take undocumented routes too.
            let plain_router = code
                .match_indices("Router::new()")
                .any(|(at, _)| !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
            if plain_router
                || [".route(\"", ".route_service(", ".nest_service("]
                    .iter()
                    .any(|p| code.contains(p))
            {
                offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "undocumented routes:\n{}",
        offenders.join("\n")
    );
}
