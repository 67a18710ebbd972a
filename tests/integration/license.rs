//! Offline licensing over HTTP and the CLI: activation, enforcement at each limit, bad licence files,
//! and the states reached as the (test-shifted) clock moves.

use crate::common::*;

fn unlicensed() -> Server {
    Server::start_with(Options {
        enterprise_license: false,
        ..Options::default()
    })
}

fn new_user(server: &Server, name: &str) -> Reply {
    server.post_json(
        "/api/v1/users",
        &json!({"username": name, "password": format!("{name} long enough password"), "must_change_password": false}),
    )
}

/// `text` with one base64 character changed: character `at` of line `line` (0-based).
fn flip_base64_char(text: &str, line: usize, at: usize) -> String {
    let original = text.lines().nth(line).expect("line exists");
    let mut bytes = original.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    text.replacen(original, std::str::from_utf8(&bytes).expect("ascii"), 1)
}

fn tenant(server: &Server, id: &str) -> Reply {
    server.post_json(
        "/api/v1/tenants",
        &json!({ "name": format!("Tenant {id}"), "id": id }),
    )
}

fn license_id(server: &Server) -> Value {
    server.get("/api/v1/license").json()["license"]["license_id"].clone()
}

#[test]
fn community_limits_then_offline_activation_lifts_them_and_every_limit_is_enforced() {
    let server = unlicensed();
    let info = server.get("/api/v1/license").json();
    assert_eq!(info["state"]["state"], "community", "{info}");
    assert_eq!(info["limits"]["users"], 5);
    assert_eq!(info["limits"]["tenants"], 1);
    assert!(info["license"].is_null());

    // The free plan: 5 users (the administrator is one), 1 tenant, no audit export.
    for name in ["u1", "u2", "u3", "u4"] {
        assert_eq!(new_user(&server, name).status, 201);
    }
    let refused = new_user(&server, "u5");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "plan_limit_reached");
    let details = &refused.json()["error"]["details"];
    assert_eq!(
        details,
        &json!({"limit": "users", "current": 5, "allowed": 5})
    );
    assert_eq!(tenant(&server, "one").status, 201);
    let second = tenant(&server, "two");
    assert_eq!(second.status, 403);
    assert_eq!(second.json()["error"]["details"]["limit"], "tenants");
    let export = server.get("/api/v1/audit?format=csv");
    assert_eq!(export.status, 403);
    assert_eq!(export.error_code(), "feature_not_licensed");
    assert_eq!(export.json()["error"]["details"]["feature"], "audit_export");
    assert_eq!(server.get("/api/v1/audit").status, 200, "viewing is free");

    // Air-gapped activation: the request (file + QR) goes to the vendor, the licence comes back.
    let request = server.get("/api/v1/license/activation-request").json();
    let text = request["request"].as_str().expect("request");
    assert!(text.starts_with("-----BEGIN ENCLAVE ACTIVATION REQUEST-----"));
    assert!(request["compact"]
        .as_str()
        .is_some_and(|c| c.starts_with("ENCLAVE-AR1:")));
    assert!(request["qr_svg"]
        .as_str()
        .is_some_and(|s| s.contains("<svg")));
    let request_file = server.cwd.path().join("request.txt");
    std::fs::write(&request_file, text).expect("write request");
    let licence = issue_license(&[
        "--request",
        request_file.to_str().expect("utf8"),
        "--edition",
        "pro",
        "--users",
        "8",
        "--tenants",
        "2",
        "--users-per-tenant",
        "3",
    ]);
    let installed = server.install_license(&licence);
    assert_eq!(installed.status, 200, "{}", installed.body);
    let info = installed.json();
    assert_eq!(info["state"]["state"], "valid", "{info}");
    assert_eq!(info["edition"], "Pro");
    assert_eq!(info["license"]["installation_id"], server.installation_id());
    assert_eq!(info["usage"]["users"], 5);
    assert!(info["features"]
        .as_array()
        .expect("features")
        .contains(&json!("audit_export")));

    // Users: 8.
    for name in ["u5", "u6", "u7"] {
        assert_eq!(new_user(&server, name).status, 201, "{name}");
    }
    let ninth = new_user(&server, "u8");
    assert_eq!(ninth.status, 403);
    assert_eq!(
        ninth.json()["error"]["details"],
        json!({"limit": "users", "current": 8, "allowed": 8})
    );
    // Suspending an account frees its seat; bringing it back needs one.
    let suspend = server.patch_json("/api/v1/users/u7", &json!({"state": "suspended"}));
    assert_eq!(suspend.status, 200, "{}", suspend.body);
    assert_eq!(new_user(&server, "u8").status, 201);
    let back = server.patch_json("/api/v1/users/u7", &json!({"state": "active"}));
    assert_eq!(back.status, 403);
    assert_eq!(back.error_code(), "plan_limit_reached");

    // Tenants: 2; members per tenant: 3 (the owner-less tenant "one" gets three, the fourth is refused).
    assert_eq!(tenant(&server, "two").status, 201);
    assert_eq!(tenant(&server, "three").status, 403);
    for name in ["u1", "u2", "u3"] {
        let added = server.put_json(
            &format!("/api/v1/tenants/one/members/{name}"),
            &json!({"role": "viewer"}),
        );
        assert_eq!(added.status, 200, "{}", added.body);
    }
    let fourth = server.put_json("/api/v1/tenants/one/members/u4", &json!({"role": "viewer"}));
    assert_eq!(fourth.status, 403);
    assert_eq!(
        fourth.json()["error"]["details"]["limit"],
        "users_per_tenant"
    );
    // Changing an existing member's role is not a new member.
    let promote = server.put_json("/api/v1/tenants/one/members/u1", &json!({"role": "editor"}));
    assert_eq!(promote.status, 200, "{}", promote.body);
    assert_eq!(server.get("/api/v1/audit?format=csv").status, 200);

    // A smaller licence never locks existing users out: new ones are refused, everyone signs in.
    let smaller = issue_license(&[
        "--installation-id",
        &server.installation_id(),
        "--edition",
        "pro",
        "--users",
        "2",
    ]);
    assert_eq!(server.install_license(&smaller).status, 200);
    assert!(server.login("u6", "u6 long enough password").is_ok());
    assert_eq!(new_user(&server, "u9").status, 403);

    // Every change is audited.
    let log = server.get("/api/v1/audit?action=license.install").json();
    assert_eq!(
        log["entries"].as_array().expect("entries").len(),
        2,
        "{log}"
    );
}

#[test]
fn bad_licence_files_are_refused_with_a_precise_message_and_the_previous_one_stays() {
    let server = unlicensed();
    let here = server.installation_id();
    let good = issue_license(&["--installation-id", &here, "--edition", "pro"]);
    assert_eq!(server.install_license(&good).status, 200);
    let kept = license_id(&server);

    // Mail clients change line endings and indentation: the signed bytes are unchanged, so it installs.
    let crlf: String = good.lines().map(|l| format!("  {l}  \r\n")).collect();
    assert_eq!(server.install_license(&crlf).status, 200);

    let payload_edited = flip_base64_char(&good, 2, 10);
    let signature_lines = good.lines().count();
    let signature_flipped = flip_base64_char(&good, signature_lines - 2, 5);
    let truncated = good[..good.len() / 2].to_string();
    let other_installation = issue_license(&[
        "--installation-id",
        "inst-of-someone-else",
        "--edition",
        "pro",
    ]);
    let expired = issue_license(&[
        "--installation-id",
        &here,
        "--edition",
        "pro",
        "--starts-at",
        "2020-01-01T00:00:00Z",
        "--expires-at",
        "2021-01-01T00:00:00Z",
    ]);
    let not_yet = issue_license(&[
        "--installation-id",
        &here,
        "--edition",
        "pro",
        "--starts-at",
        "2099-01-01T00:00:00Z",
        "--expires-at",
        "2100-01-01T00:00:00Z",
    ]);
    // A payload claiming to be issued in the future, signed properly (from a JSON file).
    let future_json = server.cwd.path().join("future.json");
    std::fs::write(
        &future_json,
        json!({
            "format": 1, "license_id": "future-1", "edition": "pro", "trial": false,
            "customer": "Time Traveller", "issued_at": "2099-01-01T00:00:00Z",
            "starts_at": "2020-01-01T00:00:00Z", "expires_at": "2100-01-01T00:00:00Z",
            "grace_days": 14, "installation_id": here, "limits": {}, "features": []
        })
        .to_string(),
    )
    .expect("write json");
    let future_issued = tool_stdout(
        license_tool()
            .args([
                "issue",
                "--key",
                TEST_KEY,
                "--key-id",
                "enclave-test-1",
                "--from-json",
            ])
            .arg(&future_json),
    );
    // Signed with a key this build does not trust.
    let keydir = tempfile::tempdir().expect("tempdir");
    tool_stdout(
        license_tool()
            .args(["keygen", "--key-id", "rogue-1", "--out-dir"])
            .arg(keydir.path()),
    );
    let unknown_key = tool_stdout(
        license_tool()
            .args(["issue", "--key"])
            .arg(keydir.path().join("rogue-1.pk8"))
            .args(["--key-id", "rogue-1", "--customer", "Mallory"])
            .args(["--edition", "enterprise", "--site"]),
    );
    let oversized = format!("{good}{}", " ".repeat(70 * 1024));

    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("truncated", truncated, 400, "truncated"),
        (
            "payload edited",
            payload_edited,
            400,
            "signature does not match",
        ),
        (
            "signature flipped",
            signature_flipped,
            400,
            "signature does not match",
        ),
        (
            "other installation",
            other_installation,
            400,
            "issued for installation inst-of-someone-else",
        ),
        ("expired", expired, 400, "expired on 2021-01-01"),
        ("not yet valid", not_yet, 400, "not valid before 2099-01-01"),
        ("issued in the future", future_issued, 400, "in the future"),
        ("unknown key", unknown_key, 400, "rogue-1"),
        ("oversized", oversized, 413, "limit"),
        (
            "garbage",
            "hello, this is not a licence".into(),
            400,
            "BEGIN ENCLAVE LICENSE",
        ),
        ("empty", String::new(), 400, "BEGIN ENCLAVE LICENSE"),
    ];
    for (what, text, status, needle) in cases {
        let reply = server.install_license(&text);
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(needle), "{what}: {message}");
        assert_eq!(
            license_id(&server),
            kept,
            "{what}: the previous licence stays"
        );
    }
    // The refusals are audited as failures.
    let log = server
        .get("/api/v1/audit?action=license.install&limit=100")
        .json();
    let failures = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["result"] == "failure")
        .count();
    assert_eq!(failures, 11, "{log}");
}

#[test]
fn the_cli_activates_offline_and_shows_the_state() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let dir = cwd.path();
    run(dir, &["init"]);
    let (code, out, _) = run(dir, &["license", "show"]);
    assert_eq!(code, 0);
    assert!(out.contains("edition:          Community"), "{out}");
    let (code, out, err) = activate_via_cli(dir, &[], &["--edition", "enterprise", "--days", "20"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("licence installed"), "{out}");
    let (_, out, _) = run(dir, &["license", "show", "--json"]);
    let info: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(info["state"]["state"], "expiring", "{info}");
    assert_eq!(info["state"]["days_left"], 20);
    assert!(info["banner"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("expires in 20 day")));

    // A second activation of a file for another installation is refused; the first stays.
    let other = dir.join("other.txt");
    std::fs::write(
        &other,
        issue_license(&["--installation-id", "another-one", "--edition", "pro"]),
    )
    .expect("write");
    let (code, _, err) = run(dir, &["license", "activate", other.to_str().expect("utf8")]);
    assert_eq!(code, 1);
    assert!(err.contains("issued for installation another-one"), "{err}");
    let (_, out, _) = run(dir, &["license", "show"]);
    assert!(out.contains("Enterprise"), "{out}");

    // The usage report is signed by the instance key and verifies.
    let report = dir.join("usage.txt");
    let (code, _, err) = run(
        dir,
        &[
            "license",
            "usage-report",
            "--out",
            report.to_str().expect("utf8"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&report).expect("report");
    assert!(
        text.starts_with("-----BEGIN ENCLAVE USAGE REPORT-----"),
        "{text}"
    );
    // The vendor verifies it against the installation's activation request (same instance key).
    let (code, _, err) = run(
        dir,
        &[
            "license",
            "request",
            "--out",
            dir.join("req2.txt").to_str().expect("utf8"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let checked = tool_stdout(
        license_tool()
            .arg("verify-report")
            .arg(&report)
            .arg("--request")
            .arg(dir.join("req2.txt")),
    );
    let json: Value = serde_json::from_str(&checked).expect("report json");
    assert_eq!(
        json["current"]["users"], 0,
        "no account before the first start: {json}"
    );
    assert!(
        json["daily"].as_array().is_some_and(|d| !d.is_empty()),
        "{json}"
    );
    let tampered = flip_base64_char(&text, 3, 7);
    assert_ne!(tampered, text);
    let tampered_path = dir.join("tampered.txt");
    std::fs::write(&tampered_path, &tampered).expect("write");
    let refused = license_tool()
        .arg("verify-report")
        .arg(&tampered_path)
        .output()
        .expect("verify-report");
    assert!(!refused.status.success());
    let key_mode = std::fs::metadata(dir.join("data/instance-key.pk8"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("instance key");
    assert_eq!(key_mode, 0o600);
}

/// Restarts the server on the same data with the licence clock shifted by `days`.
fn restart_at(server: Server, days: i64) -> Server {
    server.restart_with_clock_offset(days * 86_400)
}

fn state(server: &Server) -> Value {
    server.get("/api/v1/license/status").json()
}

#[test]
fn expiry_grace_restriction_and_clock_anomaly_as_the_clock_moves() {
    let server = unlicensed();
    let here = server.installation_id();
    let licence = issue_license(&[
        "--installation-id",
        &here,
        "--edition",
        "pro",
        "--days",
        "40",
        "--grace-days",
        "14",
    ]);
    assert_eq!(server.install_license(&licence).status, 200);
    assert_eq!(state(&server)["state"]["state"], "valid");
    assert!(state(&server)["banner"].is_null());

    let server = restart_at(server, 15);
    let s = state(&server);
    assert_eq!(
        s["state"],
        json!({"state": "expiring", "days_left": 25}),
        "{s}"
    );
    assert_eq!(s["banner"]["level"], "warning");

    let server = restart_at(server, 45);
    let s = state(&server);
    assert_eq!(s["state"]["state"], "grace", "{s}");
    assert_eq!(s["banner"]["level"], "error");
    assert_eq!(
        new_user(&server, "in-grace").status,
        201,
        "grace: all works"
    );

    let server = restart_at(server, 60);
    let s = state(&server);
    assert_eq!(s["state"]["state"], "restricted", "{s}");
    assert_eq!(s["restricted"], true);
    let refused = new_user(&server, "too-late");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "license_restricted");
    assert_eq!(tenant(&server, "late").error_code(), "license_restricted");
    // Nobody is locked out: sign-in, reading and export keep working.
    assert!(server
        .login("in-grace", "in-grace long enough password")
        .is_ok());
    assert_eq!(server.get("/api/v1/users").status, 200);
    assert_eq!(server.get("/api/v1/audit?format=jsonl").status, 200);

    // The clock goes back 60 days (below the high-water mark): a clock anomaly, a warning at first.
    let server = restart_at(server, 0);
    let s = state(&server);
    assert_eq!(s["state"]["state"], "clock_anomaly", "{s}");
    assert_eq!(s["state"]["treated_as_expired"], false);
    assert_eq!(s["banner"]["level"], "warning");
    // ...and treated as expired once it lasted more than 72 hours.
    let server = restart_at(server, 4);
    let s = state(&server);
    assert_eq!(s["state"]["state"], "clock_anomaly", "{s}");
    assert_eq!(s["state"]["treated_as_expired"], true);
    assert_eq!(
        new_user(&server, "during-anomaly").error_code(),
        "license_restricted"
    );

    // A clock set into the future by mistake: the administrator resets the mark from the shell.
    let (status, stderr, cwd) = server.terminate();
    assert!(status.success(), "{stderr}");
    let (code, out, err) = run(
        cwd.path(),
        &["--data-dir", "data", "license", "reset-clock"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let data_dir = cwd.path().join("data");
    let server = Server::spawn(
        cwd,
        data_dir,
        Options {
            enterprise_license: false,
            ..Options::default()
        },
    );
    let s = state(&server);
    assert_eq!(s["state"]["state"], "valid", "clock anomaly cleared: {s}");

    // Uploading a licence keeps working in every state; a renewal valid at the (shifted) clock installs.
    let server = restart_at(server, 60);
    let renewal = issue_license(&[
        "--installation-id",
        &here,
        "--edition",
        "pro",
        "--starts-at",
        "2020-01-01T00:00:00Z",
        "--expires-at",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(server.install_license(&renewal).status, 200);
    assert_eq!(state(&server)["state"]["state"], "valid");
    assert_eq!(new_user(&server, "renewed").status, 201);
}

#[test]
fn a_stored_licence_that_no_longer_verifies_is_invalid_and_the_community_plan_applies() {
    // E.g. a licence signed by a key a newer build no longer trusts, or a system.db edited by hand.
    let server = unlicensed();
    let here = server.installation_id();
    let good = issue_license(&["--installation-id", &here, "--edition", "enterprise"]);
    assert_eq!(server.install_license(&good).status, 200);
    let (status, stderr, cwd) = server.terminate();
    assert!(status.success(), "{stderr}");
    let data_dir = cwd.path().join("data");
    let tampered = flip_base64_char(&good, 2, 10);
    let system = rusqlite::Connection::open(data_dir.join("system.db")).expect("open");
    system
        .execute("UPDATE license SET armored = ?1", [&tampered])
        .expect("edit");
    drop(system);
    let server = Server::spawn(
        cwd,
        data_dir,
        Options {
            enterprise_license: false,
            ..Options::default()
        },
    );
    let status = server.get("/api/v1/license/status").json();
    assert_eq!(status["state"]["state"], "invalid", "{status}");
    assert!(
        status["state"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("signature")),
        "{status}"
    );
    assert_eq!(status["banner"]["level"], "error");
    assert_eq!(status["edition"], "Community");
    // Nobody is locked out; the free plan's limits apply to new things.
    assert_eq!(server.get("/api/v1/users").status, 200);
    assert_eq!(server.get("/api/v1/license").json()["limits"]["users"], 5);
}
