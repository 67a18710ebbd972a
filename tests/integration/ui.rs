//! The embedded web UI over HTTP: content types, SPA fallback, ETag revalidation, and the OpenAPI document.

use crate::common::*;

#[test]
fn shell_assets_have_content_types_and_etags() {
    let server = Server::start();
    let index = server.get("/");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(index.body.contains("/assets/app.js"), "{}", index.body);
    let etag = index.header("etag").expect("etag");
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    assert_eq!(index.header("cache-control").as_deref(), Some("no-cache"));

    let again = server.get_with("/", ("if-none-match", &etag));
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag").as_deref(), Some(etag.as_str()));
    let stale = server.get_with("/", ("if-none-match", "\"something-else\""));
    assert_eq!(stale.status, 200);

    let js = server.get("/assets/app.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    let css = server.get("/assets/app.css");
    assert_eq!(
        css.header("content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );

    // Client routes get the shell; missing files and API paths do not.
    for route in ["/tenants", "/api-docs", "/login", "/some/deep/link"] {
        let page = server.get(route);
        assert_eq!(page.status, 200, "{route}");
        assert_eq!(page.body, index.body, "{route}");
    }
    let missing = server.get("/assets/nope.js");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "route_not_found");

    // Build-time files are not embedded.
    assert_eq!(server.get("/assets/vendor/refresh.sh").status, 404);
    assert_eq!(server.get("/assets/vendor/SHA256SUMS").status, 404);
}

#[test]
fn openapi_document_describes_the_api() {
    let server = Server::start();
    let doc = server.get("/api/openapi.json").json();
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3."),
        "{doc}"
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    for path in [
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant}",
        "/api/v1/tenants/{tenant}/settings",
        "/healthz",
        "/readyz",
        "/api/v1/system/info",
        "/api/v1/tenants/{tenant}/apps",
        "/api/v1/tenants/{tenant}/apps/{app}/chat",
        "/api/v1/tenants/{tenant}/apps/{app}/prompt/versions",
        "/api/v1/tenants/{tenant}/apps/{app}/end-users/{user}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/api/v1/tenants"]["post"]["requestBody"].is_object());
    assert!(doc["components"]["schemas"]["ErrorResponse"].is_object());
}
