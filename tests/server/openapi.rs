//! The OpenAPI document (issue 18): fetched from a running server, validated by PyPI
//! `openapi-spec-validator` (`tests/peers/check_openapi.py`), and held against the route
//! table in `src/api/mod.rs` and `src/api/admin/mod.rs`: every JSON route is in the document
//! or on `NOT_YET_DOCUMENTED`, so a route added without a document entry fails here, and
//! the list only shrinks (an entry that became documented fails too, until it is removed).

use std::collections::BTreeSet;

use crate::harness::peer_scripts::python_json;
use crate::harness::server::Server;

/// Routes of the table the document does not cover yet (docs/OPENAPI-PLAN.md), as
/// `METHOD path` with the route table's own `{param}` names.
const NOT_YET_DOCUMENTED: &[&str] = &[];

#[test]
fn the_document_validates_and_covers_the_route_table() {
    let server = Server::start(&[]);
    let resp = server.get("/api/v1/openapi.json", None);
    resp.expect(200, "the OpenAPI document");
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "content type: {:?}",
        resp.header("content-type")
    );
    assert!(
        resp.header("cache-control")
            .is_some_and(|c| c.contains("public")),
        "a public document is cacheable: {:?}",
        resp.header("cache-control")
    );
    let doc = resp.json();
    assert_eq!(doc["info"]["title"], "cinegate");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["servers"][0]["url"]
            .as_str()
            .is_some_and(|u| server.url("").starts_with(u) || u.starts_with("http")),
        "servers: {}",
        doc["servers"]
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["csrf"]["in"], "header");
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or_default();
    assert!(codes > 40, "the error codes as an enum: {codes}");

    // The independent validator.
    let checked = python_json("check_openapi.py", &[&server.url("/api/v1/openapi.json")]);
    assert!(
        checked["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "version: {}",
        checked["openapi"]
    );
    assert_eq!(
        checked["errors"],
        serde_json::json!([]),
        "openapi-spec-validator"
    );

    let mut documented = BTreeSet::new();
    if let Some(paths) = checked["paths"].as_object() {
        for (path, methods) in paths {
            for m in methods.as_array().into_iter().flatten() {
                if let Some(m) = m.as_str() {
                    documented.insert(format!("{} {path}", m.to_uppercase()));
                }
            }
        }
    }
    let table = route_table();
    assert!(
        table.len() > 60,
        "the route table scan found {} routes",
        table.len()
    );
    let allowed: BTreeSet<String> = NOT_YET_DOCUMENTED.iter().map(|s| s.to_string()).collect();
    let missing: Vec<&String> = table
        .iter()
        .filter(|r| !documented.contains(*r) && !allowed.contains(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "routes neither in the OpenAPI document nor on NOT_YET_DOCUMENTED: {missing:#?}"
    );
    let stale: Vec<&String> = allowed
        .iter()
        .filter(|r| documented.contains(*r) || !table.contains(*r))
        .collect();
    assert!(
        stale.is_empty(),
        "NOT_YET_DOCUMENTED entries that are documented or no longer routes: {stale:#?}"
    );
    let unknown: Vec<&String> = documented.iter().filter(|r| !table.contains(*r)).collect();
    assert!(
        unknown.is_empty(),
        "documented operations that are not in the route table: {unknown:#?}"
    );
}

/// `METHOD path` of every route under `/api/v1`, read from the route table's source (actix
/// has no list of its routes at run time): `.route("path", web::method()…)` entries, and
/// `web::resource("path")` with its `.route(web::method()…)` entries.
fn route_table() -> BTreeSet<String> {
    let src = |f: &str| {
        std::fs::read_to_string(format!("{}/src/api/{f}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("read src/api/{f}: {e}"))
    };
    let api = src("mod.rs");
    let scope = api
        .split_once("web::scope(\"/api/v1\")")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_default();
    let mut routes = scan("/api/v1", &scope);
    routes.extend(scan("/api/v1/admin", &src("admin/mod.rs")));
    routes
}

fn scan(prefix: &str, text: &str) -> BTreeSet<String> {
    let squeezed: String = text.split_whitespace().collect();
    let mut routes = BTreeSet::new();
    let mut resource: Option<String> = None;
    let mut rest = squeezed.as_str();
    while let Some(at) = rest.find(['.', 'w']) {
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("web::resource(\"") {
            resource = after.split_once('"').map(|(p, _)| p.to_string());
            rest = after;
        } else if let Some(after) = rest.strip_prefix(".route(\"") {
            if let Some((path, tail)) = after.split_once("\",web::") {
                if let Some(method) = method_of(tail) {
                    routes.insert(format!("{method} {prefix}{path}"));
                }
            }
            rest = after;
        } else if let Some(after) = rest.strip_prefix(".route(web::") {
            if let (Some(path), Some(method)) = (&resource, method_of(after)) {
                routes.insert(format!("{method} {prefix}{path}"));
            }
            rest = after;
        } else {
            rest = &rest[1..];
        }
    }
    routes
}

/// `get().to(…)` → `GET`; `method(actix_web::http::Method::OPTIONS)` → `OPTIONS`.
fn method_of(call: &str) -> Option<String> {
    if let Some(m) = call.strip_prefix("method(") {
        let name = m.split(')').next()?.rsplit("::").next()?;
        return Some(name.to_uppercase());
    }
    let name = call.split('(').next()?;
    Some(name.to_uppercase())
}
