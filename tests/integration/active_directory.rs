//! Directory sign-in against a real Samba Active Directory domain controller started on loopback
//! (tests/integration/common/samba.rs): sAMAccountName and userPrincipalName logins with the AD
//! defaults (no filter or attributes configured), nested groups through LDAP_MATCHING_RULE_IN_CHAIN,
//! a required group reached only through nesting, a disabled account, LDAPS and StartTLS with a
//! generated CA, AD's refusal of simple binds without TLS, and a synchronisation that deactivates an
//! account disabled in AD. One test: the DC's ports are fixed, so DCs cannot run side by side.

use serde_json::{json, Value};

use crate::common::samba::{SambaDc, BASE_DN, USERS_DN};
use crate::common::*;
use crate::directory::{login_reply, memberships};

fn settings(dc: &SambaDc, url: String, security: &str) -> Value {
    json!({
        "kind": "active_directory",
        "urls": [url],
        "security": security,
        "ca_pem": dc.ca_pem(),
        "connect_timeout_secs": 2,
        "operation_timeout_secs": 5,
        "bind_dn": dc.service_upn(),
        "user_base": USERS_DN,
        "group_base": BASE_DN,
        "required_group": dc.dn("staff"),
        "mappings": [
            {"group": dc.dn("engineers"), "tenant": "eng", "role": "editor"},
            {"group": dc.dn("sales"), "tenant": "sales", "role": "editor"},
            {"group": dc.dn("sales"), "tenant": "eng", "role": "viewer"}
        ],
        "sync_schedule": "",
        "sync_max_deactivate_percent": 50,
    })
}

fn is_guid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn active_directory_logins_nested_groups_disabled_accounts_and_sync_against_samba() {
    let dc = SambaDc::start();
    let server = Server::start();
    for tenant in ["eng", "sales"] {
        assert_eq!(server.create_tenant(tenant).status, 201);
    }
    let created = server.post_json(
        "/api/v1/directories",
        &json!({"name": "Samba AD", "settings": settings(&dc, dc.ldaps_url(), "ldaps"),
                "bind_password": dc.service_password()}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().expect("id").to_string();
    let put = |body: Value| {
        let reply = server.put_json(
            &format!("/api/v1/directories/{id}"),
            &json!({"name": "Samba AD", "settings": body}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    let connection = server.post_json(
        &format!("/api/v1/directories/{id}/test-connection"),
        &json!({}),
    );
    assert_eq!(
        connection.json()["ok"],
        true,
        "{}\n{}",
        connection.body,
        dc.log()
    );

    // alice signs in with her pre-Windows 2000 name, then with her user principal name: one account.
    let alice = login_reply(&server, "alice", "Alice-Pass-1");
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(memberships(&alice), vec![("eng".into(), "editor".into())]);
    assert_eq!(alice.json()["user"]["email"], "alice@enclave.test");
    let by_upn = login_reply(&server, "alice@enclave.test", "Alice-Pass-1");
    assert_eq!(by_upn.status, 200, "{}", by_upn.body);
    assert_eq!(by_upn.json()["user"]["id"], alice.json()["user"]["id"]);

    // erin is in platform, a member of engineers: the in-chain rule finds engineers and, through
    // engineers, the required group staff.
    let erin = login_reply(&server, "erin", "Erin-Pass-1");
    assert_eq!(erin.status, 200, "{}", erin.body);
    assert_eq!(memberships(&erin), vec![("eng".into(), "editor".into())]);
    // bob: sales maps to sales/editor and eng/viewer.
    let bob = login_reply(&server, "bob", "Bob-Pass-1");
    assert_eq!(bob.status, 200, "{}", bob.body);
    assert_eq!(
        memberships(&bob),
        vec![
            ("eng".into(), "viewer".into()),
            ("sales".into(), "editor".into())
        ]
    );
    // frank is in no group: outside staff, a clear refusal naming the group.
    let frank = login_reply(&server, "frank", "Frank-Pass-1");
    assert_eq!(frank.status, 403, "{}", frank.body);
    assert_eq!(frank.error_code(), "directory_access_denied");
    assert!(frank.body.contains("CN=staff"), "{}", frank.body);
    // dave is disabled in AD: refused even with his password, and nothing reveals the account.
    for (user, password) in [
        ("dave", "Dave-Pass-1"),
        ("dave", "wrong"),
        ("alice", "wrong"),
        ("alice", ""),
        ("*", "Alice-Pass-1"),
        ("alice)(sAMAccountName=*", "Alice-Pass-1"),
        ("al*", "Alice-Pass-1"),
    ] {
        let reply = login_reply(&server, user, password);
        assert_eq!(reply.status, 401, "{user:?}/{password:?}: {}", reply.body);
        assert_eq!(reply.error_code(), "invalid_credentials");
    }

    // "Test login" shows the administrator the AD filter, the in-chain group query and the
    // objectGUID as AD tools print it; for dave, that AD said the account is disabled.
    let test = server.post_json(
        &format!("/api/v1/directories/{id}/test-login"),
        &json!({"username": "erin", "password": "Erin-Pass-1"}),
    );
    let body = test.json();
    assert_eq!(body["ok"], true, "{}", test.body);
    let steps = body["steps"].to_string();
    assert!(
        steps.contains("(sAMAccountName=erin)(userPrincipalName=erin)"),
        "{steps}"
    );
    assert!(
        steps.contains("member:1.2.840.113556.1.4.1941:="),
        "{steps}"
    );
    assert!(
        is_guid(body["user"]["external_id"].as_str().unwrap_or_default()),
        "{}",
        test.body
    );
    assert!(!test.body.contains("Erin-Pass-1") && !test.body.contains(dc.service_password()));
    let test = server.post_json(
        &format!("/api/v1/directories/{id}/test-login"),
        &json!({"username": "dave", "password": "Dave-Pass-1"}),
    );
    assert_eq!(test.json()["ok"], false);
    assert!(test.body.contains("account disabled"), "{}", test.body);

    // StartTLS on 389 works the same; plain LDAP is refused by AD itself: the user is told the
    // directory is unavailable, the administrator's test says why.
    put(settings(&dc, dc.ldap_url(), "starttls"));
    assert_eq!(login_reply(&server, "bob", "Bob-Pass-1").status, 200);
    put(settings(&dc, dc.ldap_url(), "none"));
    let plain = login_reply(&server, "bob", "Bob-Pass-1");
    assert_eq!(plain.status, 503, "{}", plain.body);
    assert_eq!(plain.error_code(), "directory_unavailable");
    let why = server.post_json(
        &format!("/api/v1/directories/{id}/test-connection"),
        &json!({}),
    );
    assert_eq!(why.json()["ok"], false);
    assert!(why.body.contains("only over TLS"), "{}", why.body);
    put(settings(&dc, dc.ldaps_url(), "ldaps"));

    // erin's account is disabled in AD: the next sync deactivates her and ends her session; the
    // others keep theirs.
    let erin_session = session_from(&erin);
    let alice_session = session_from(&alice);
    dc.tool(&["user", "disable", "erin"]);
    let run = server.post_json(&format!("/api/v1/directories/{id}/sync"), &json!({}));
    assert_eq!(run.status, 200, "{}", run.body);
    let run = run.json();
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["deactivated"], 1, "{run}");
    assert!(run["message"].as_str().unwrap_or_default().contains("erin"));
    assert_eq!(
        server
            .get_as("/api/v1/auth/session", Some(&erin_session))
            .status,
        401
    );
    assert_eq!(
        server
            .get_as("/api/v1/auth/session", Some(&alice_session))
            .status,
        200
    );
}
