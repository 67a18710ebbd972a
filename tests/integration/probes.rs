//! Start-up on the embedded defaults, and the probes.

use crate::common::*;

#[test]
fn starts_on_embedded_defaults_without_a_config_file() {
    // No config file, no --data-dir: the embedded default ./data (relative to the working directory) is used.
    let server = Server::start_with(Options {
        explicit_data_dir: false,
        ..Default::default()
    });
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "{}",
        server.base
    );
    assert!(server.cwd.path().join("data/system.db").is_file());
    assert!(server.cwd.path().join("data/enclave.lock").is_file());
    assert!(
        server.stderr().contains("no config file"),
        "{}",
        server.stderr()
    );

    let health = server.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");

    let info = server.get("/api/v1/system/info").json();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["tenants"], 0);
    assert_eq!(info["max_open_tenant_pools"], 256);
    assert_eq!(info["installation_id"].as_str().map(str::len), Some(36));
}

#[test]
fn metrics_count_requests_by_route_template_and_status() {
    let server = Server::start();
    server.create_tenant("acme");
    assert_eq!(server.get("/api/v1/tenants/acme").status, 200);
    assert_eq!(server.get("/api/v1/tenants/nope").status, 404);
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain"));
    let text = reply.body;
    assert!(
        text.contains(r#"enclave_http_requests_total{method="GET",route="/api/v1/tenants/{tenant}",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"enclave_http_requests_total{method="GET",route="/api/v1/tenants/{tenant}",status="404"} 1"#));
    assert!(text.contains(r#"enclave_http_request_duration_seconds_bucket{route="/api/v1/tenants/{tenant}",le="+Inf"} 2"#));
    assert_eq!(metric(&text, "enclave_tenants"), Some(1.0));
    assert_eq!(metric(&text, "enclave_tenant_pools_open"), Some(1.0));
    assert_eq!(metric(&text, "enclave_tenant_pools_limit"), Some(256.0));
    assert_eq!(metric(&text, "enclave_ready"), Some(1.0));
    assert!(metric(&text, "enclave_db_errors_total").is_some());
}

#[test]
fn request_ids_are_generated_or_taken_from_the_caller() {
    let server = Server::start();
    let generated = server
        .get("/healthz")
        .header("x-request-id")
        .expect("request id");
    assert_eq!(generated.len(), 24);
    let mine = server.get_with("/api/v1/tenants/none", ("x-request-id", "trace-42"));
    assert_eq!(mine.header("x-request-id").as_deref(), Some("trace-42"));
    assert_eq!(mine.json()["error"]["request_id"], "trace-42");
    let hostile = server.get_with("/healthz", ("x-request-id", "a b<script>"));
    assert_ne!(
        hostile.header("x-request-id").as_deref(),
        Some("a b<script>")
    );
}

#[test]
fn json_logs_on_request() {
    let server = Server::start_with(Options {
        args: vec!["--log-format".into(), "json".into()],
        ..Default::default()
    });
    server.get("/api/v1/tenants");
    let (status, stderr, _) = server.terminate();
    assert!(status.success());
    let request_line = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["route"] == "/api/v1/tenants")
        .unwrap_or_else(|| panic!("no JSON request log line:\n{stderr}"));
    assert_eq!(request_line["status"], 200);
    assert_eq!(request_line["level"], "INFO");
    assert!(request_line["request_id"].is_string());
}
