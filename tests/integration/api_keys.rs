//! API keys over HTTP: scopes, tenant confinement, revocation, rotation, and a sweep of every
//! tenant-scoped route in the OpenAPI document with another tenant's credentials.

use crate::common::*;

#[test]
fn keys_are_shown_once_and_act_with_their_scopes_in_their_tenant_only() {
    let server = Server::start();
    server.create_tenant("acme");
    server.create_tenant("globex");
    let (read_id, read) = server.create_key("acme", &["read"]);
    let (_, admin) = server.create_key("acme", &["admin"]);
    assert!(
        read.starts_with("ek_live_") && read.len() == 8 + 48,
        "{read}"
    );

    // The list shows prefixes, never secrets.
    let list = server.get("/api/v1/tenants/acme/api-keys");
    assert_eq!(list.status, 200);
    assert!(!list.body.contains(&read) && !list.body.contains(&admin));
    let listed = list.json();
    let first = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == read_id.as_str())
        .cloned()
        .expect("listed");
    assert!(read.starts_with(first["prefix"].as_str().expect("prefix")));

    // Read scope reads, but cannot change settings; admin scope can. X-API-Key works too.
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/acme/settings", None, &read)
            .status,
        200
    );
    let denied = server.call_with_key(
        "PATCH",
        "/api/v1/tenants/acme/settings",
        Some(&json!({"k": 1})),
        &read,
    );
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_code(), "insufficient_scope");
    let allowed = server.call_with_key(
        "PATCH",
        "/api/v1/tenants/acme/settings",
        Some(&json!({"k": 1})),
        &admin,
    );
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let agent = agent();
    let via_header = agent
        .get(server.url("/api/v1/tenants/acme"))
        .header("x-api-key", &read)
        .call()
        .expect("call");
    assert_eq!(via_header.status().as_u16(), 200);

    // Another tenant does not exist for this key; system routes refuse keys.
    let foreign = server.call_with_key("GET", "/api/v1/tenants/globex", None, &admin);
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.error_code(), "tenant_not_found");
    for path in ["/api/v1/users", "/api/v1/tenants", "/api/v1/system/info"] {
        let reply = server.call_with_key("GET", path, None, &admin);
        assert_eq!(reply.status, 403, "{path}");
        assert_eq!(reply.error_code(), "forbidden", "{path}");
    }
    let bogus = server.call_with_key("GET", "/api/v1/tenants/acme", None, "ek_live_0000");
    assert_eq!(bogus.status, 401);
    assert_eq!(bogus.error_code(), "invalid_api_key");

    // last_used_at is recorded.
    let keys = server.get("/api/v1/tenants/acme/api-keys").json();
    let used = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == read_id.as_str())
        .cloned()
        .expect("key");
    assert!(used["last_used_at"].as_i64().is_some(), "{used}");

    // Revoked keys stop at once.
    let revoked = server.call(
        "DELETE",
        &format!("/api/v1/tenants/acme/api-keys/{read_id}"),
        None,
        server.admin.as_ref(),
    );
    assert_eq!(revoked.status, 200);
    let after = server.call_with_key("GET", "/api/v1/tenants/acme", None, &read);
    assert_eq!(after.status, 401);
    assert_eq!(after.error_code(), "api_key_revoked");
    // A tenant cannot touch another tenant's key.
    let cross = server.call(
        "DELETE",
        &format!("/api/v1/tenants/globex/api-keys/{read_id}"),
        None,
        server.admin.as_ref(),
    );
    assert_eq!(cross.error_code(), "api_key_not_found");
}

#[test]
fn rotation_keeps_the_old_key_for_the_overlap_then_ends_it() {
    let server = Server::start();
    server.create_tenant("acme");
    let (old_id, old) = server.create_key("acme", &["write"]);
    let rotated = server.call(
        "POST",
        &format!("/api/v1/tenants/acme/api-keys/{old_id}/rotate"),
        Some(&json!({})),
        server.admin.as_ref(),
    );
    assert_eq!(rotated.status, 201, "{}", rotated.body);
    let new = rotated.json()["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let new_id = rotated.json()["key"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_ne!(new, old);
    assert_eq!(rotated.json()["key"]["scopes"], json!(["write"]));
    // Both work during the default 24 h overlap.
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/acme", None, &old)
            .status,
        200
    );
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/acme", None, &new)
            .status,
        200
    );
    // Rotating the new key with no overlap ends it at once.
    let again = server.call(
        "POST",
        &format!("/api/v1/tenants/acme/api-keys/{new_id}/rotate"),
        Some(&json!({"overlap_hours": 0})),
        server.admin.as_ref(),
    );
    assert_eq!(again.status, 201);
    let expired = server.call_with_key("GET", "/api/v1/tenants/acme", None, &new);
    assert_eq!(expired.status, 401);
    assert_eq!(expired.error_code(), "api_key_expired");
    // A viewer cannot manage keys.
    let viewer = server.user("vic");
    server.call(
        "PUT",
        "/api/v1/tenants/acme/members/vic",
        Some(&json!({"role": "viewer"})),
        server.admin.as_ref(),
    );
    let denied = server.get_as("/api/v1/tenants/acme/api-keys", Some(&viewer));
    assert_eq!(denied.status, 403);
}

#[test]
fn every_tenant_route_answers_404_to_another_tenants_key_and_member() {
    let server = Server::start();
    server.create_tenant("acme");
    server.create_tenant("globex");
    let (_, acme_admin_key) = server.create_key("acme", &["admin"]);
    let (globex_key_id, _) = server.create_key("globex", &["read"]);
    let acme_owner = server.user("ann");
    server.call(
        "PUT",
        "/api/v1/tenants/acme/members/ann",
        Some(&json!({"role": "owner"})),
        server.admin.as_ref(),
    );

    let doc = server.get("/api/openapi.json").json();
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        if !template.contains("{tenant}") {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let path = template
                .replace("{tenant}", "globex")
                .replace("{username}", "ann")
                .replace("{key}", &globex_key_id)
                .replace("{invitation}", "0123456789abcdef");
            let body = (method != "get" && method != "delete").then(|| json!({}));
            let by_key = server.call_with_key(
                &method.to_uppercase(),
                &path,
                body.as_ref(),
                &acme_admin_key,
            );
            assert_eq!(
                by_key.status, 404,
                "{method} {path} with acme's key: {}",
                by_key.body
            );
            assert_eq!(by_key.error_code(), "tenant_not_found");
            let by_member = server.call(
                &method.to_uppercase(),
                &path,
                body.as_ref(),
                Some(&acme_owner),
            );
            assert_eq!(
                by_member.status, 404,
                "{method} {path} as acme's owner: {}",
                by_member.body
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} tenant routes were checked");
    // And nothing of globex changed.
    assert_eq!(
        server.get("/api/v1/tenants/globex/settings").json(),
        json!({"settings": {}})
    );
    assert_eq!(
        server.get("/api/v1/tenants/globex/api-keys").json()["keys"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn cli_issues_keys_that_work_over_http() {
    let server = Server::start();
    server.create_tenant("acme");
    let data = server.data_dir.to_str().expect("utf8").to_string();
    let (code, out, err) = run(
        server.cwd.path(),
        &[
            "--data-dir",
            &data,
            "key",
            "create",
            "--tenant",
            "acme",
            "--name",
            "cron",
            "--scopes",
            "read,write",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let secret = out.trim();
    assert!(secret.starts_with("ek_live_"), "{out}");
    assert!(err.contains("It is shown once"), "{err}");
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/acme", None, secret)
            .status,
        200
    );
    let (code, out, _) = run(
        server.cwd.path(),
        &["--data-dir", &data, "key", "list", "--tenant", "acme"],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("read,write") && out.contains("active") && !out.contains(secret),
        "{out}"
    );
    let (code, _, err) = run(
        server.cwd.path(),
        &[
            "--data-dir",
            &data,
            "key",
            "create",
            "--tenant",
            "nope",
            "--name",
            "x",
            "--scopes",
            "read",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("tenant nope does not exist"), "{err}");
    let (code, _, err) = run(
        server.cwd.path(),
        &[
            "--data-dir",
            &data,
            "key",
            "create",
            "--tenant",
            "acme",
            "--name",
            "x",
            "--scopes",
            "root",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("invalid scope"), "{err}");
}

#[test]
fn a_key_revoked_from_the_cli_stops_working_within_a_second_and_at_once_over_http() {
    let server = Server::start();
    server.create_tenant("acme");
    let (id, key) = server.create_key("acme", &["read"]);
    // Used just now: its authentication is remembered for up to a second.
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/acme", None, &key)
            .status,
        200
    );
    let data = server.data_dir.to_str().expect("utf8").to_string();
    let (code, out, err) = run(
        server.cwd.path(),
        &[
            "--data-dir",
            &data,
            "key",
            "revoke",
            "--tenant",
            "acme",
            &id,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let after = server.call_with_key("GET", "/api/v1/tenants/acme", None, &key);
    assert_eq!(after.status, 401, "{}", after.body);
    assert_eq!(after.error_code(), "api_key_revoked");

    // Over HTTP the server forgets the key at once.
    let (id, key) = server.create_key("acme", &["read"]);
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/acme", None, &key)
            .status,
        200
    );
    let revoked = server.call(
        "DELETE",
        &format!("/api/v1/tenants/acme/api-keys/{id}"),
        None,
        server.admin.as_ref(),
    );
    assert_eq!(revoked.status, 200);
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/acme", None, &key)
            .status,
        401
    );
}
