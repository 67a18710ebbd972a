//! Directory sign-in against a real OpenLDAP `slapd` started on loopback (tests/integration/common/
//! slapd.rs): StartTLS and LDAPS with a generated CA, group mappings with nesting and a required group,
//! injection attempts, a server that is down, failover, a wrong CA, and synchronisation that deactivates
//! a leaver (ending their session and revoking their key) but refuses to deactivate everyone.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::slapd::{dead_url, Slapd};
use crate::common::*;

const PEOPLE: &str = "ou=people,dc=example,dc=org";
const GROUPS: &str = "ou=groups,dc=example,dc=org";

fn group(cn: &str) -> String {
    format!("cn={cn},{GROUPS}")
}

fn settings(slapd: &Slapd, urls: Vec<String>, security: &str) -> Value {
    json!({
        "kind": "openldap",
        "urls": urls,
        "security": security,
        "ca_pem": slapd.ca_pem(),
        "connect_timeout_secs": 2,
        "operation_timeout_secs": 3,
        "bind_dn": slapd.service_dn(),
        "user_base": PEOPLE,
        "user_filter": "(&(objectClass=inetOrgPerson)(uid={login})(!(employeeType=disabled)))",
        "group_base": GROUPS,
        "required_group": group("staff"),
        "mappings": [
            {"group": group("engineers"), "tenant": "eng", "role": "editor"},
            {"group": group("sales"), "tenant": "eng", "role": "admin"},
            {"group": group("sales"), "tenant": "sales", "role": "editor"},
            {"group": "*", "tenant": "everyone", "role": "viewer"}
        ],
        "sync_schedule": "",
    })
}

/// A server with tenants eng, sales and everyone, and the directory configured; returns its id.
fn setup(slapd: &Slapd, urls: Vec<String>, security: &str) -> (Server, String) {
    let server = Server::start();
    for tenant in ["eng", "sales", "everyone"] {
        assert_eq!(server.create_tenant(tenant).status, 201);
    }
    let reply = server.post_json(
        "/api/v1/directories",
        &json!({"name": "Example LDAP", "settings": settings(slapd, urls, security),
                "bind_password": slapd.service_password()}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["id"].as_str().expect("id").to_string();
    (server, id)
}

pub(crate) fn memberships(session_reply: &Reply) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = session_reply.json()["memberships"]
        .as_array()
        .expect("memberships")
        .iter()
        .map(|m| {
            (
                m["tenant_id"]
                    .as_str()
                    .or(m["tenant"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                m["role"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

pub(crate) fn login_reply(server: &Server, username: &str, password: &str) -> Reply {
    server.call(
        "POST",
        "/api/v1/auth/login",
        Some(&json!({"username": username, "password": password})),
        None,
    )
}

#[test]
fn directory_users_sign_in_over_starttls_with_mapped_roles() {
    let slapd = Slapd::start();
    let (server, id) = setup(&slapd, vec![slapd.ldap_url()], "starttls");

    // The service password is stored sealed, never returned.
    let shown = server.get(&format!("/api/v1/directories/{id}"));
    assert_eq!(shown.json()["bind_password_set"], true);
    assert!(!shown.body.contains(slapd.service_password()));
    let db = std::fs::read(server.data_dir.join("system.db")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&db).contains(slapd.service_password()));

    // alice: engineers -> eng editor, plus the * mapping.
    let alice = login_reply(&server, "alice", "alice-pass-1");
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(
        memberships(&alice),
        vec![
            ("eng".into(), "editor".into()),
            ("everyone".into(), "viewer".into())
        ]
    );
    assert_eq!(alice.json()["user"]["email"], "alice@example.org");
    // A second sign-in finds the same account (keyed by entryUUID).
    let again = login_reply(&server, "ALICE", "alice-pass-1");
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["user"]["id"], alice.json()["user"]["id"]);

    // bob: engineers (editor) and sales (admin) both map eng: the highest role wins.
    let bob = login_reply(&server, "bob", "bob-pass-1");
    assert_eq!(bob.status, 200, "{}", bob.body);
    assert_eq!(
        memberships(&bob),
        vec![
            ("eng".into(), "admin".into()),
            ("everyone".into(), "viewer".into()),
            ("sales".into(), "editor".into())
        ]
    );
    // erin is in platform, nested in engineers.
    let erin = login_reply(&server, "erin", "erin-pass-1");
    assert_eq!(erin.status, 200, "{}", erin.body);
    assert!(memberships(&erin).contains(&("eng".into(), "editor".into())));
    // The user whose name holds filter metacharacters signs in with exactly that name.
    let star = login_reply(&server, "star*(x)\\y", "star-pass-1");
    assert_eq!(star.status, 200, "{}", star.body);

    // carol is outside the required group: a clear refusal, not "wrong password".
    let carol = login_reply(&server, "carol", "carol-pass-1");
    assert_eq!(carol.status, 403, "{}", carol.body);
    assert_eq!(carol.error_code(), "directory_access_denied");
    assert!(carol.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("cn=staff"));
    // dave is disabled (the filter excludes him): he cannot sign in.
    assert_eq!(login_reply(&server, "dave", "dave-pass-1").status, 401);

    // Wrong and empty passwords, and injection attempts, are all "wrong username or password".
    for (user, password) in [
        ("alice", "wrong"),
        ("alice", ""),
        ("alice", "   "),
        ("*", "alice-pass-1"),
        ("admin)(uid=*", "alice-pass-1"),
        ("alice)(|(uid=*", "alice-pass-1"),
        ("al*", "alice-pass-1"),
        ("alice\u{0}", "alice-pass-1"),
    ] {
        let reply = login_reply(&server, user, password);
        assert_eq!(reply.status, 401, "{user:?}/{password:?}: {}", reply.body);
        assert_eq!(reply.error_code(), "invalid_credentials");
    }
    // The signed-in directory user reaches the tenant its group maps to.
    let session = session_from(&alice);
    assert_eq!(
        server.get_as("/api/v1/tenants/eng", Some(&session)).status,
        200
    );
    assert_eq!(
        server
            .get_as("/api/v1/tenants/sales", Some(&session))
            .status,
        404
    );
}

#[test]
fn test_login_shows_filters_and_groups_without_secrets() {
    let slapd = Slapd::start();
    let (server, id) = setup(&slapd, vec![slapd.ldaps_url()], "ldaps");
    let reply = server.post_json(
        &format!("/api/v1/directories/{id}/test-login"),
        &json!({"username": "admin)(uid=*", "password": "x"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["ok"], false);
    let steps = body["steps"].to_string();
    assert!(
        steps.contains("uid=admin\\\\29\\\\28uid=\\\\2a"),
        "escaped filter shown: {steps}"
    );

    let reply = server.post_json(
        &format!("/api/v1/directories/{id}/test-login"),
        &json!({"username": "bob", "password": "bob-pass-1"}),
    );
    let body = reply.json();
    assert_eq!(body["ok"], true, "{}", reply.body);
    assert!(!reply.body.contains("bob-pass-1") && !reply.body.contains(slapd.service_password()));
    assert!(body["roles"].to_string().contains("\"admin\""));
    assert!(body["user"]["groups"].to_string().contains("cn=sales"));

    let ok = server.post_json(
        &format!("/api/v1/directories/{id}/test-connection"),
        &json!({}),
    );
    assert_eq!(ok.json()["ok"], true, "{}", ok.body);
}

#[test]
fn a_wrong_ca_gives_a_clear_tls_error_and_a_dead_server_fails_fast() {
    let slapd = Slapd::start();
    let (server, id) = setup(&slapd, vec![slapd.ldaps_url()], "ldaps");
    let mut wrong = settings(&slapd, vec![slapd.ldaps_url()], "ldaps");
    wrong["ca_pem"] = json!(slapd.other_ca_pem());
    let reply = server.put_json(
        &format!("/api/v1/directories/{id}"),
        &json!({"name": "Example LDAP", "settings": wrong}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let test = server.post_json(
        &format!("/api/v1/directories/{id}/test-connection"),
        &json!({}),
    );
    let body = test.json();
    assert_eq!(body["ok"], false);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not trusted"),
        "{}",
        test.body
    );
    let reply = login_reply(&server, "alice", "alice-pass-1");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.error_code(), "directory_unavailable");

    // Every server down: an answer within the timeouts, and the local administrator still signs in.
    let down = settings(&slapd, vec![dead_url()], "starttls");
    server.put_json(
        &format!("/api/v1/directories/{id}"),
        &json!({"name": "Down", "settings": down}),
    );
    let started = Instant::now();
    let reply = login_reply(&server, "alice", "alice-pass-1");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(server.login("admin", ADMIN_PASSWORD).is_ok());

    // Failover: a dead first URL, then the real one.
    let failover = settings(&slapd, vec![dead_url(), slapd.ldap_url()], "starttls");
    server.put_json(
        &format!("/api/v1/directories/{id}"),
        &json!({"name": "Failover", "settings": failover}),
    );
    let reply = login_reply(&server, "alice", "alice-pass-1");
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn sync_deactivates_a_leaver_and_refuses_to_deactivate_everyone() {
    let slapd = Slapd::start();
    let (server, id) = setup(&slapd, vec![slapd.ldap_url()], "starttls");
    let mut body = settings(&slapd, vec![slapd.ldap_url()], "starttls");
    body["sync_max_deactivate_percent"] = json!(50);
    server.put_json(
        &format!("/api/v1/directories/{id}"),
        &json!({"name": "Example LDAP", "settings": body.clone()}),
    );
    let mut sessions = Vec::new();
    for (user, password) in [
        ("alice", "alice-pass-1"),
        ("bob", "bob-pass-1"),
        ("erin", "erin-pass-1"),
    ] {
        let reply = login_reply(&server, user, password);
        assert_eq!(reply.status, 200, "{}", reply.body);
        sessions.push(session_from(&reply));
    }
    // erin makes an API key in eng (she is an editor there; keys need admin, so bob makes one).
    let bob = &sessions[1];
    let key = server.post_json_as(
        "/api/v1/tenants/eng/api-keys",
        &json!({"name": "bob's", "scopes": ["read"]}),
        Some(bob),
    );
    assert_eq!(key.status, 201, "{}", key.body);
    let secret = key.json()["secret"].as_str().expect("secret").to_string();
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/eng", None, &secret)
            .status,
        200
    );

    // bob leaves the company.
    slapd.delete("uid=bob,ou=people,dc=example,dc=org");
    let run = server.post_json(&format!("/api/v1/directories/{id}/sync"), &json!({}));
    assert_eq!(run.status, 200, "{}", run.body);
    let run = run.json();
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["deactivated"], 1);
    assert!(run["message"].as_str().unwrap_or_default().contains("bob"));
    // His session and key stop working at once; the others keep theirs.
    assert_eq!(server.get_as("/api/v1/auth/session", Some(bob)).status, 401);
    std::thread::sleep(Duration::from_millis(1100)); // the key cache keeps an answer for at most 1 s
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/eng", None, &secret)
            .status,
        401
    );
    assert_eq!(
        server
            .get_as("/api/v1/auth/session", Some(&sessions[0]))
            .status,
        200
    );

    // A filter that matches nobody must not deactivate everyone.
    body["user_filter"] = json!("(&(uid={login})(employeeType=nobody-has-this))");
    server.put_json(
        &format!("/api/v1/directories/{id}"),
        &json!({"name": "Example LDAP", "settings": body.clone()}),
    );
    let run = server
        .post_json(&format!("/api/v1/directories/{id}/sync"), &json!({}))
        .json();
    assert_eq!(run["status"], "refused", "{run}");
    // Neither may a run that would deactivate more than the allowed share (alice and erin: 100 %).
    body["user_filter"] = json!("(&(uid={login})(!(uid=alice))(!(uid=erin)))");
    server.put_json(
        &format!("/api/v1/directories/{id}"),
        &json!({"name": "Example LDAP", "settings": body}),
    );
    let run = server
        .post_json(&format!("/api/v1/directories/{id}/sync"), &json!({}))
        .json();
    assert_eq!(run["status"], "refused", "{run}");
    assert_eq!(
        server
            .get_as("/api/v1/auth/session", Some(&sessions[0]))
            .status,
        200
    );

    let history = server.get(&format!("/api/v1/directories/{id}/sync")).json();
    assert_eq!(history["runs"].as_array().map(Vec::len), Some(3));
    let audit = server.get("/api/v1/audit?action=directory.sync").body;
    assert!(audit.contains("directory.sync"), "{audit}");
}

/// How many recorded runs of the directory the schedule started.
fn scheduled_runs(server: &Server, id: &str) -> usize {
    server.get(&format!("/api/v1/directories/{id}/sync")).json()["runs"]
        .as_array()
        .map(|runs| runs.iter().filter(|r| r["trigger"] == "schedule").count())
        .unwrap_or(0)
}

#[test]
fn a_saved_schedule_runs_the_sync_without_a_restart_and_an_empty_one_stops_it() {
    let slapd = Slapd::start();
    let (server, id) = setup(&slapd, vec![slapd.ldap_url()], "starttls");
    assert_eq!(login_reply(&server, "alice", "alice-pass-1").status, 200);
    let shown = server.get(&format!("/api/v1/directories/{id}")).json();
    assert_eq!(shown["next_sync_at"], Value::Null, "no schedule: {shown}");

    let mut body = settings(&slapd, vec![slapd.ldap_url()], "starttls");
    body["sync_schedule"] = json!("*/2 * * * * *");
    let saved = server.put_json(
        &format!("/api/v1/directories/{id}"),
        &json!({"name": "Example LDAP", "settings": body.clone()}),
    );
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(
        saved.json()["next_sync_at"].as_str().is_some(),
        "{}",
        saved.body
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while scheduled_runs(&server, &id) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        scheduled_runs(&server, &id) > 0,
        "a scheduled run within 10 s"
    );

    // After a restart the schedule is picked up again from the saved settings.
    let server = server.restart_with_clock_offset(0);
    let before = scheduled_runs(&server, &id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while scheduled_runs(&server, &id) == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        scheduled_runs(&server, &id) > before,
        "scheduled runs resume after a restart"
    );

    body["sync_schedule"] = json!("");
    server.put_json(
        &format!("/api/v1/directories/{id}"),
        &json!({"name": "Example LDAP", "settings": body.clone()}),
    );
    std::thread::sleep(Duration::from_millis(2500)); // a run already started may still finish
    let settled = scheduled_runs(&server, &id);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        scheduled_runs(&server, &id),
        settled,
        "no scheduled runs after the schedule was cleared"
    );

    // A schedule that is not cron is refused with the field named.
    body["sync_schedule"] = json!("0 * * * *");
    let refused = server.put_json(
        &format!("/api/v1/directories/{id}"),
        &json!({"name": "Example LDAP", "settings": body}),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("sync_schedule"), "{}", refused.body);
}
