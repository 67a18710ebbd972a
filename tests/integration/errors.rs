//! Bad input over HTTP: every failure is JSON in the house shape with the right status.

use crate::common::*;

#[test]
fn unknown_routes_and_methods_answer_json() {
    let server = Server::start();
    let reply = server.get("/api/v1/nope");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code(), "route_not_found");
    assert!(reply
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));

    let reply = server.post_json("/healthz", &json!({}));
    assert_eq!(reply.status, 405);
    assert_eq!(reply.error_code(), "method_not_allowed");

    let reply = server.get("/favicon.ico");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code(), "route_not_found");
}

#[test]
fn malformed_wrong_type_and_oversized_bodies() {
    let server = Server::start_with(Options {
        env: vec![
            ("ENCLAVE_LISTEN".into(), "127.0.0.1:0".into()),
            ("ENCLAVE_MAX_BODY_BYTES".into(), "4096".into()),
        ],
        ..Default::default()
    });
    let reply = server.post_raw(
        "/api/v1/tenants",
        "application/json",
        b"{\"name\": ".to_vec(),
    );
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "malformed_json");

    let reply = server.post_raw(
        "/api/v1/tenants",
        "application/json",
        br#"{"name": 5}"#.to_vec(),
    );
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "malformed_json");
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("invalid type"));

    let reply = server.post_raw(
        "/api/v1/tenants",
        "application/json",
        br#"{"name": "x", "extra": 1}"#.to_vec(),
    );
    assert_eq!(reply.error_code(), "malformed_json");

    let reply = server.post_raw(
        "/api/v1/tenants",
        "text/plain",
        br#"{"name": "Acme"}"#.to_vec(),
    );
    assert_eq!(reply.status, 415);
    assert_eq!(reply.error_code(), "unsupported_media_type");

    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(8000));
    let reply = server.post_raw("/api/v1/tenants", "application/json", big.into_bytes());
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_code(), "payload_too_large");

    // Nothing was created by any of the above, and the server still serves.
    assert_eq!(server.get("/api/v1/tenants").json()["tenants"], json!([]));
}

#[test]
fn security_headers_are_on_api_and_ui_responses() {
    let server = Server::start();
    for path in ["/healthz", "/", "/api/v1/nope", "/assets/app.js"] {
        let reply = server.get(path);
        let csp = reply.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(
            reply.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            reply.header("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(
            reply.header("x-frame-options").as_deref(),
            Some("DENY"),
            "{path}"
        );
    }
}
