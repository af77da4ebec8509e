//! The API reference page `/api/docs/` (issue 18): Swagger UI embedded in the binary,
//! reading the server's own OpenAPI document, under the pages' headers. The browser peer
//! (`api_docs.mjs`) checks that it renders every operation with no CSP violation and
//! nothing fetched from elsewhere.

use std::error::Error;

use crate::harness::browser::run_browser;
use crate::harness::server::Server;

#[test]
fn the_reference_page_renders_the_document_under_the_csp() -> Result<(), Box<dyn Error>> {
    let server = Server::start(&[]);

    let bare = server.get("/api/docs", None);
    bare.expect(308, "the bare path");
    assert_eq!(bare.header("location"), Some("/api/docs/"));

    let page = server.get("/api/docs/", None);
    page.expect(200, "the reference page");
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "content type {:?}",
        page.header("content-type")
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "the page's CSP: {csp:?}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    // The initializer points Swagger UI at this server's document, validator off.
    let init = server.get("/api/docs/swagger-initializer.js", None);
    init.expect(200, "the initializer");
    let text = init.text();
    assert!(text.contains("/api/v1/openapi.json"), "{text}");
    assert!(text.contains("\"validatorUrl\": \"none\""), "{text}");
    server
        .get("/api/docs/no-such-file.js", None)
        .expect(404, "a file Swagger UI does not have");

    let doc = server.get("/api/v1/openapi.json", None).json();
    let operations: usize = doc["paths"]
        .as_object()
        .map(|paths| {
            paths
                .values()
                .filter_map(|p| p.as_object())
                .map(|p| {
                    p.keys()
                        .filter(|k| {
                            ["get", "put", "post", "delete", "patch", "head", "options"]
                                .contains(&k.as_str())
                        })
                        .count()
                })
                .sum()
        })
        .unwrap_or(0);
    assert!(operations > 20, "{operations} operations in the document");

    let out = run_browser(
        "api_docs.mjs",
        &[
            ("BASE_URL", server.base.clone()),
            ("OPERATIONS", operations.to_string()),
        ],
    )?;
    for step in [
        "ok the page renders every operation of the document",
        "ok an operation opens to its answers and the error shape",
        "ok nothing was fetched from another origin, no CSP violation",
    ] {
        assert!(out.contains(step), "{step} missing from:\n{out}");
    }
    Ok(())
}
