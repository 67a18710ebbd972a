//! Tenants: creation, validation, settings, and isolation under load with a small open-pool cap.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;

#[test]
fn create_list_show_and_validate() {
    let server = Server::start();
    let reply = server.post_json("/api/v1/tenants", &json!({"name": "Acme Corp. (EU)"}));
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.header("location").as_deref(),
        Some("/api/v1/tenants/acme-corp-eu")
    );
    let created = reply.json();
    assert_eq!(created["id"], "acme-corp-eu");
    assert_eq!(created["status"], "active");
    assert!(server
        .data_dir
        .join("tenants/acme-corp-eu/tenant.db")
        .is_file());

    let dup = server.post_json(
        "/api/v1/tenants",
        &json!({"name": "Again", "id": "acme-corp-eu"}),
    );
    assert_eq!(dup.status, 409);
    assert_eq!(dup.error_code(), "tenant_exists");

    for bad in ["A", "../etc", "UPPER", "-x", "a_b"] {
        let reply = server.post_json("/api/v1/tenants", &json!({"name": "X", "id": bad}));
        assert_eq!(reply.status, 400, "{bad}");
        assert_eq!(reply.error_code(), "invalid_tenant_id");
    }
    let reply = server.post_json("/api/v1/tenants", &json!({"name": "   "}));
    assert_eq!(reply.error_code(), "invalid_tenant_id");
    let reply = server.post_json(
        "/api/v1/tenants",
        &json!({"name": "x".repeat(201), "id": "long"}),
    );
    assert_eq!(reply.error_code(), "invalid_request");

    let list = server.get("/api/v1/tenants").json();
    assert_eq!(list["tenants"].as_array().map(Vec::len), Some(1));
    let shown = server.get("/api/v1/tenants/acme-corp-eu").json();
    assert_eq!(shown["schema_version"], schema_version("tenant"));
    assert!(shown["database_bytes"].as_u64().unwrap_or(0) > 0);
    let missing = server.get("/api/v1/tenants/ghost");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "tenant_not_found");
    let invalid = server.get("/api/v1/tenants/NOT..VALID");
    assert_eq!(invalid.error_code(), "invalid_tenant_id");
}

#[test]
fn settings_merge_delete_and_validate() {
    let server = Server::start();
    server.create_tenant("acme");
    let path = "/api/v1/tenants/acme/settings";
    assert_eq!(server.get(path).json(), json!({"settings": {}}));
    let reply = server.patch_json(
        path,
        &json!({"branding.title": "Acme AI", "limits": {"a": 1}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["settings"]["limits"], json!({"a": 1}));
    let reply = server.patch_json(path, &json!({"limits": null}));
    assert_eq!(
        reply.json(),
        json!({"settings": {"branding.title": "Acme AI"}})
    );
    let reply = server.patch_json(path, &json!({"Bad Key": 1}));
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "invalid_request");
    let reply = server.patch_json(path, &json!({"big": "x".repeat(17 * 1024)}));
    assert_eq!(reply.error_code(), "invalid_request");
    assert_eq!(
        server.get(path).json(),
        json!({"settings": {"branding.title": "Acme AI"}})
    );
}

/// Counts the process's open file descriptors on tenant databases.
fn open_tenant_db_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|target| target.to_string_lossy().ends_with("/tenant.db"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_thousand_tenants_stay_within_the_pool_cap_and_never_see_each_others_data() {
    const TENANTS: usize = 1000;
    const CAP: usize = 16;
    const POOL: usize = 2;
    let server = Arc::new(Server::start_with(Options {
        env: vec![
            ("ENCLAVE_LISTEN".into(), "127.0.0.1:0".into()),
            ("ENCLAVE_MAX_OPEN_TENANT_POOLS".into(), CAP.to_string()),
            ("ENCLAVE_TENANT_POOL_SIZE".into(), POOL.to_string()),
        ],
        ..Default::default()
    }));
    let ids: Arc<Vec<String>> = Arc::new((0..TENANTS).map(|i| format!("tenant-{i:04}")).collect());

    // Create them from 4 client threads.
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (server, ids) = (server.clone(), ids.clone());
            scope.spawn(move || {
                for id in ids.iter().skip(worker).step_by(4) {
                    server.create_tenant(id);
                }
            });
        }
    });
    assert_eq!(
        server.get("/api/v1/tenants").json()["tenants"]
            .as_array()
            .map(Vec::len),
        Some(TENANTS)
    );

    // Spread writes and reads over all tenants from 8 client threads while a sampler watches the
    // process's open tenant-database file descriptors.
    let stop = Arc::new(AtomicBool::new(false));
    let max_fds = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, max_fds, pid) = (stop.clone(), max_fds.clone(), server.pid());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                max_fds.fetch_max(open_tenant_db_fds(pid), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    std::thread::scope(|scope| {
        for worker in 0..8usize {
            let (server, ids) = (server.clone(), ids.clone());
            scope.spawn(move || {
                // Each worker walks the tenants with a different stride, so accesses interleave.
                let stride = [7, 11, 13, 17, 19, 23, 29, 31][worker];
                for step in 0..TENANTS / 2 {
                    let id = &ids[(worker * 97 + step * stride) % TENANTS];
                    let own_key = format!("seen-by-{worker}");
                    let reply = server.patch_json(
                        &format!("/api/v1/tenants/{id}/settings"),
                        &json!({ "owner": id, own_key: step }),
                    );
                    assert_eq!(reply.status, 200, "{id}: {}", reply.body);
                    let settings = &reply.json()["settings"];
                    assert_eq!(
                        settings["owner"],
                        json!(id),
                        "a tenant saw another tenant's data"
                    );
                }
            });
        }
    });
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");

    // Every tenant holds only what was written to it.
    for id in ids.iter() {
        let settings =
            server.get(&format!("/api/v1/tenants/{id}/settings")).json()["settings"].clone();
        let keys: HashSet<String> = settings
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        if !keys.is_empty() {
            assert_eq!(settings["owner"], json!(id));
            assert!(
                keys.iter()
                    .all(|k| k == "owner" || k.starts_with("seen-by-")),
                "{id}: {keys:?}"
            );
        }
    }
    let metrics = server.get("/metrics").body;
    let high_water = metric(&metrics, "enclave_tenant_pools_open_max").expect("high water");
    assert!(
        high_water <= CAP as f64,
        "open pools reached {high_water} > cap {CAP}"
    );
    assert!(
        high_water >= 2.0,
        "the test did not exercise the pool at all"
    );
    let fds = max_fds.load(Ordering::Relaxed);
    assert!(
        fds <= CAP * POOL,
        "{fds} tenant.db descriptors open at once > {CAP} pools x {POOL} connections"
    );
    assert!(metric(&metrics, "enclave_tenant_pools_open").unwrap_or(99.0) <= CAP as f64);
    eprintln!("1000 tenants: pool high water {high_water}, max tenant.db fds {fds}");
}

#[test]
fn rename_suspend_delete_restore_and_purge() {
    let server = Server::start_with(Options {
        env: vec![
            ("ENCLAVE_LISTEN".into(), "127.0.0.1:0".into()),
            ("ENCLAVE_TENANT_PURGE_GRACE_HOURS".into(), "0".into()),
        ],
        ..Default::default()
    });
    server.create_tenant("acme");
    server.create_tenant("keep");
    let (_, key) = server.create_key("acme", &["admin"]);
    let admin = server.admin.as_ref();
    let patch =
        |body: Value| server.call("PATCH", "/api/v1/admin/tenants/acme", Some(&body), admin);

    let renamed = patch(json!({"name": "Acme Europe"}));
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(
        server.get("/api/v1/tenants/acme").json()["name"],
        "Acme Europe"
    );

    // Suspended: readable, not changeable, by people and keys alike.
    assert_eq!(
        patch(json!({"status": "suspended"})).json()["status"],
        "suspended"
    );
    assert_eq!(server.get("/api/v1/tenants/acme/settings").status, 200);
    let refused = server.patch_json("/api/v1/tenants/acme/settings", &json!({"a": 1}));
    assert_eq!(refused.status, 409);
    assert_eq!(refused.error_code(), "tenant_suspended");
    let refused = server.call_with_key(
        "POST",
        "/api/v1/tenants/acme/api-keys",
        Some(&json!({"name": "x", "scopes": ["read"]})),
        &key,
    );
    assert_eq!(refused.error_code(), "tenant_suspended");
    assert_eq!(
        patch(json!({"status": "active"})).json()["status"],
        "active"
    );
    assert_eq!(patch(json!({"status": "deleting"})).status, 400);

    // Delete: hidden at once (404 for people and keys), restorable until purged.
    let deleted = server.call("DELETE", "/api/v1/admin/tenants/acme", None, admin);
    assert_eq!(deleted.json()["status"], "deleting");
    assert!(deleted.json()["delete_after"].as_i64().is_some());
    assert_eq!(server.get("/api/v1/tenants/acme").status, 404);
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/acme", None, &key)
            .status,
        401
    );
    let restored = server.call("POST", "/api/v1/admin/tenants/acme/restore", None, admin);
    assert_eq!(restored.json()["status"], "active");
    assert_eq!(server.get("/api/v1/tenants/acme").status, 200);

    // Delete again and purge: the directory is gone, the other tenant untouched, the purge audited.
    server.call("DELETE", "/api/v1/admin/tenants/acme", None, admin);
    let data = server.data_dir.to_str().expect("utf8").to_string();
    let (code, out, err) = run(server.cwd.path(), &["--data-dir", &data, "tenant", "purge"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 tenant(s) purged: acme"), "{out}");
    assert!(!server.data_dir.join("tenants/acme").exists());
    assert!(server.data_dir.join("tenants/keep/tenant.db").is_file());
    assert_eq!(
        server
            .call("POST", "/api/v1/admin/tenants/acme/restore", None, admin)
            .status,
        404
    );
    let audit = server.get("/api/v1/audit?q=acme").json();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in [
        "tenant.purge",
        "tenant.delete",
        "tenant.restore",
        "tenant.suspend",
        "tenant.rename",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing: {actions:?}"
        );
    }
    // A non-admin cannot touch the lifecycle.
    let user = server.user("uma");
    assert_eq!(
        server
            .call("DELETE", "/api/v1/admin/tenants/keep", None, Some(&user))
            .status,
        403
    );
}
