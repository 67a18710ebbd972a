//! The audit log over HTTP and the command line: what is recorded, filters and exports, and tamper
//! detection with `enclave audit verify`.

use crate::common::*;

fn actions(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn sign_ins_and_changes_are_recorded_with_who_what_where() {
    let server = Server::start();
    let _ = server.login("admin", "a wrong password here");
    server.create_tenant("acme");
    let (key_id, key) = server.create_key("acme", &["admin"]);
    server.call_with_key(
        "PATCH",
        "/api/v1/tenants/acme/settings",
        Some(&json!({"theme": "dark"})),
        &key,
    );
    server.user("erin");
    server.call(
        "PUT",
        "/api/v1/tenants/acme/members/erin",
        Some(&json!({"role": "editor"})),
        server.admin.as_ref(),
    );

    let system = server.get("/api/v1/audit?limit=100").json();
    let all = actions(&system);
    for expected in [
        "auth.login",
        "user.password_change",
        "tenant.create",
        "api_key.create",
        "user.create",
        "member.set",
    ] {
        assert!(
            all.iter().any(|a| a == expected),
            "{expected} missing from {all:?}"
        );
    }
    let failed = server.get("/api/v1/audit?action=auth.login&q=wrong").json();
    assert!(
        failed["entries"].as_array().expect("entries").is_empty(),
        "passwords are never recorded"
    );
    let failures: Vec<Value> = server.get("/api/v1/audit?action=auth.login").json()["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["result"] == "failure")
        .cloned()
        .collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["actor"], "admin");
    assert_eq!(failures[0]["ip"], "127.0.0.1");
    assert_eq!(failures[0]["request_id"].as_str().map(str::len), Some(24));

    // The tenant's view joins its own changes (settings, made with the key) and the system entries about it.
    let tenant = server.get("/api/v1/tenants/acme/audit").json();
    let mine = actions(&tenant);
    assert!(mine.contains(&"settings.update".to_string()), "{mine:?}");
    assert!(
        mine.contains(&"api_key.create".to_string()) && mine.contains(&"member.set".to_string()),
        "{mine:?}"
    );
    assert!(
        !mine.contains(&"auth.login".to_string()),
        "sign-ins are not tenant events"
    );
    let by_key = tenant["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "settings.update")
        .cloned()
        .expect("entry");
    assert_eq!(by_key["actor"], format!("key:{key_id}"));
    assert_eq!(by_key["actor_type"], "key");
    assert_eq!(by_key["detail"]["keys"], json!(["theme"]));

    // Filters and exports.
    let only_members = server.get("/api/v1/audit?action=member.set").json();
    assert_eq!(actions(&only_members), ["member.set"]);
    let csv = server.get("/api/v1/audit?format=csv");
    assert_eq!(
        csv.header("content-type").as_deref(),
        Some("text/csv; charset=utf-8")
    );
    assert!(
        csv.body.starts_with("seq,at,actor_type,actor,action,"),
        "{}",
        csv.body
    );
    let jsonl = server.get("/api/v1/tenants/acme/audit?format=jsonl");
    let lines: Vec<Value> = jsonl
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), mine.len());
    assert_eq!(
        server.get("/api/v1/audit?since=yesterday").error_code(),
        "invalid_parameter"
    );
    assert_eq!(
        server.get("/api/v1/audit?format=xml").error_code(),
        "invalid_parameter"
    );

    // Only admins read logs.
    let erin = server
        .login("erin", "erin long enough password")
        .expect("erin");
    assert_eq!(server.get_as("/api/v1/audit", Some(&erin)).status, 403);
    assert_eq!(
        server
            .get_as("/api/v1/tenants/acme/audit", Some(&erin))
            .status,
        403
    );
}

#[test]
fn audit_verify_finds_the_first_edited_entry() {
    let server = Server::start();
    server.create_tenant("acme");
    server.patch_json("/api/v1/tenants/acme/settings", &json!({"a": 1}));
    server.patch_json("/api/v1/tenants/acme/settings", &json!({"b": 2}));
    let data = server.data_dir.clone();
    let data_arg = data.to_str().expect("utf8").to_string();
    let (code, out, err) = run(
        server.cwd.path(),
        &["--data-dir", &data_arg, "audit", "verify"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("system: ok") && out.contains("tenant acme: ok, 2 entries"),
        "{out}"
    );

    // Someone edits the system log directly in SQLite.
    let system = rusqlite::Connection::open(data.join("system.db")).expect("open");
    system
        .execute(
            "UPDATE audit_log SET actor = 'somebody-else' WHERE seq = 2",
            [],
        )
        .expect("tamper");
    drop(system);
    let (code, out, _) = run(
        server.cwd.path(),
        &["--data-dir", &data_arg, "audit", "verify"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("system: BROKEN at entry 2"), "{out}");
    assert!(out.contains("tenant acme: ok"), "{out}");

    // Someone deletes the newest tenant entry.
    let tenant = rusqlite::Connection::open(data.join("tenants/acme/tenant.db")).expect("open");
    tenant
        .execute("DELETE FROM audit_log WHERE seq = 2", [])
        .expect("delete");
    drop(tenant);
    let (code, out, _) = run(
        server.cwd.path(),
        &["--data-dir", &data_arg, "audit", "verify"],
    );
    assert_eq!(code, 1);
    assert!(out.contains("tenant acme: BROKEN at entry 2"), "{out}");
}

#[test]
fn retention_prunes_old_entries_and_the_chain_still_verifies() {
    let server = Server::start();
    server.create_tenant("acme");
    server.patch_json("/api/v1/tenants/acme/settings", &json!({"a": 1}));
    let data_arg = server.data_dir.to_str().expect("utf8").to_string();
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "--data-dir".to_string(),
            data_arg.clone(),
            "audit".to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run_args = |extra: &[&'static str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run(server.cwd.path(), &refs)
    };

    // With the default (keep forever) a bare prune refuses and says how.
    let (code, _, err) = run_args(&["prune"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--older-than-days"), "{err}");

    // Entries are second-stamped: wait so that everything so far is strictly older than "now".
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, out, err) = run_args(&["prune", "--older-than-days", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("removed"), "{out}");

    // What is left still verifies from the anchor, and the prune is itself in the log.
    let (code, out, err) = run_args(&["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let system_log = server.get("/api/v1/audit?action=audit.prune").json();
    let entry = &system_log["entries"][0];
    assert_eq!(entry["action"], "audit.prune", "{system_log}");
    assert!(
        entry["detail"]["removed"].as_u64().unwrap_or(0) >= 2,
        "{entry}"
    );
    let tenant_log = server
        .get("/api/v1/tenants/acme/audit?action=audit.prune")
        .json();
    assert_eq!(
        tenant_log["entries"][0]["detail"]["removed"], 1,
        "{tenant_log}"
    );

    // Removing more old entries by hand (moving the anchor) is detected.
    let system = rusqlite::Connection::open(server.data_dir.join("system.db")).expect("open");
    let (seq, hash): (i64, String) = system
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("oldest");
    system
        .execute("DELETE FROM audit_log WHERE seq = ?1", [seq])
        .expect("delete");
    system
        .execute(
            "UPDATE audit_anchor SET seq = ?1, hash = ?2",
            rusqlite::params![seq, hash],
        )
        .expect("move anchor");
    drop(system);
    let (code, out, _) = run_args(&["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("system: BROKEN"), "{out}");
}
