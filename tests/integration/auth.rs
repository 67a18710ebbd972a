//! Accounts, sign-in, sessions, CSRF, throttling, and role checks over HTTP.

use crate::common::*;

#[test]
fn bootstrap_admin_must_change_the_one_time_password_first() {
    let server = Server::start_with(Options {
        sign_in: false,
        ..Default::default()
    });
    let notice = server.data_dir.join("bootstrap-admin.txt");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&notice).expect("notice").permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "the notice is readable by the service user only"
    );
    let password =
        bootstrap_password(&std::fs::read_to_string(&notice).expect("read")).expect("password");
    assert!(!server.stderr().contains(&password), "never in the log");

    let session = server.login("admin", &password).expect("first sign-in");
    let info = server.get_as("/api/v1/auth/session", Some(&session)).json();
    assert_eq!(info["user"]["must_change_password"], true);
    assert_eq!(info["user"]["is_system_admin"], true);
    let blocked = server.get_as("/api/v1/tenants", Some(&session));
    assert_eq!(blocked.status, 403);
    assert_eq!(blocked.error_code(), "password_change_required");

    let changed = server.change_password(&session, &password, "the new admin passphrase");
    assert!(
        !notice.exists(),
        "the notice is removed once the password is changed"
    );
    assert_eq!(server.get_as("/api/v1/tenants", Some(&changed)).status, 200);
    assert!(
        server.login("admin", &password).is_err(),
        "the one-time password is spent"
    );
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_answer() {
    let server = Server::start();
    server.user("alice");
    let wrong = server
        .login("alice", "not the right password")
        .expect_err("wrong password");
    let unknown = server
        .login("nobody-here", "not the right password")
        .expect_err("unknown user");
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.error_code(), "invalid_credentials");
    assert_eq!(
        wrong.json()["error"]["message"],
        unknown.json()["error"]["message"]
    );
    assert!(wrong.header("set-cookie").is_none());
    let log = server.stderr();
    assert!(
        !log.contains("not the right password"),
        "passwords are never logged"
    );
}

#[test]
fn repeated_failures_are_throttled_with_retry_after() {
    let server = Server::start();
    server.user("bob");
    for _ in 0..10 {
        let reply = server.login("bob", "guess guess guess").expect_err("wrong");
        assert_eq!(reply.status, 401);
    }
    let throttled = server
        .login("bob", "bob long enough password")
        .expect_err("throttled even with the right password");
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.error_code(), "too_many_requests");
    let retry: u64 = throttled
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry > 0 && retry <= 900, "{retry}");
    // Another account from the same machine is not locked out by bob's failures.
    server.user("carol");
}

#[test]
fn csrf_token_is_required_for_cookie_authenticated_changes() {
    let server = Server::start();
    let admin = server.admin.clone().expect("admin");
    let no_token = Session {
        cookie: admin.cookie.clone(),
        csrf: String::new(),
    };
    let reply = server.post_json_as("/api/v1/tenants", &json!({"name": "Acme"}), Some(&no_token));
    assert_eq!(reply.status, 403);
    assert_eq!(reply.error_code(), "csrf_failed");
    let wrong = Session {
        cookie: admin.cookie.clone(),
        csrf: "0".repeat(32),
    };
    assert_eq!(
        server
            .post_json_as("/api/v1/tenants", &json!({"name": "Acme"}), Some(&wrong))
            .error_code(),
        "csrf_failed"
    );
    // Reads need no token; nothing was created.
    assert_eq!(
        server.get_as("/api/v1/tenants", Some(&no_token)).json()["tenants"],
        json!([])
    );
}

#[test]
fn sessions_rotate_at_sign_in_and_end_at_logout_and_password_change() {
    let server = Server::start();
    let first = server.user("dave");
    // Signing in again while presenting the old cookie replaces it (no session fixation).
    let reply = server.call(
        "POST",
        "/api/v1/auth/login",
        Some(&json!({"username": "dave", "password": "dave long enough password"})),
        Some(&first),
    );
    assert_eq!(reply.status, 200);
    let second = session_from(&reply);
    assert_ne!(first.cookie, second.cookie);
    assert_eq!(
        server.get_as("/api/v1/auth/session", Some(&first)).status,
        401
    );
    assert_eq!(
        server.get_as("/api/v1/auth/session", Some(&second)).json()["user"]["username"],
        "dave"
    );

    // Logout ends the session; replaying its cookie is refused.
    let logout = server.call("POST", "/api/v1/auth/logout", None, Some(&second));
    assert_eq!(logout.status, 204);
    assert!(logout
        .header("set-cookie")
        .unwrap_or_default()
        .contains("Max-Age=0"));
    let replay = server.get_as("/api/v1/auth/session", Some(&second));
    assert_eq!(replay.status, 401);
    assert_eq!(replay.error_code(), "unauthenticated");

    // A password change ends every other session and issues a new one.
    let a = server
        .login("dave", "dave long enough password")
        .expect("a");
    let b = server
        .login("dave", "dave long enough password")
        .expect("b");
    let weak = server.call(
        "POST",
        "/api/v1/auth/password",
        Some(&json!({"current_password": "dave long enough password", "new_password": "password"})),
        Some(&a),
    );
    assert_eq!(weak.status, 400);
    assert_eq!(weak.error_code(), "weak_password");
    let c = server.change_password(&a, "dave long enough password", "a brand new passphrase");
    assert_eq!(server.get_as("/api/v1/auth/session", Some(&a)).status, 401);
    assert_eq!(server.get_as("/api/v1/auth/session", Some(&b)).status, 401);
    assert_eq!(server.get_as("/api/v1/auth/session", Some(&c)).status, 200);
    assert!(server.login("dave", "dave long enough password").is_err());

    // Logout everywhere.
    let d = server.login("dave", "a brand new passphrase").expect("d");
    let ended = server.call("POST", "/api/v1/auth/logout-all", None, Some(&d));
    assert_eq!(ended.json()["sessions_ended"], 2);
    assert_eq!(server.get_as("/api/v1/auth/session", Some(&c)).status, 401);
}

#[test]
fn unauthenticated_requests_are_refused() {
    let server = Server::start();
    for path in [
        "/api/v1/tenants",
        "/api/v1/system/info",
        "/api/v1/users",
        "/api/v1/auth/session",
    ] {
        let reply = server.get_as(path, None);
        assert_eq!(reply.status, 401, "{path}");
        assert_eq!(reply.error_code(), "unauthenticated", "{path}");
    }
    assert_eq!(
        server.get_as("/healthz", None).status,
        200,
        "probes stay open"
    );
}

#[test]
fn roles_decide_what_members_may_do_and_outsiders_see_nothing() {
    let server = Server::start();
    server.create_tenant("acme");
    server.create_tenant("globex");
    let viewer = server.user("vera");
    let manager = server.user("adam");
    let outsider = server.user("olga");
    let put = |who: &str, role: &str| {
        server.call(
            "PUT",
            &format!("/api/v1/tenants/acme/members/{who}"),
            Some(&json!({"role": role})),
            server.admin.as_ref(),
        )
    };
    assert_eq!(put("vera", "viewer").status, 200);
    assert_eq!(put("adam", "admin").status, 200);
    assert_eq!(put("ghost", "viewer").error_code(), "user_not_found");
    assert_eq!(put("vera", "emperor").error_code(), "invalid_request");

    // Each sees only its own tenants.
    let list = |s: &Session| -> Vec<String> {
        server.get_as("/api/v1/tenants", Some(s)).json()["tenants"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(list(&viewer), ["acme"]);
    assert_eq!(list(&outsider), Vec::<String>::new());
    assert_eq!(
        list(server.admin.as_ref().expect("admin")),
        ["acme", "globex"]
    );

    // Outsiders get 404 for a tenant that exists, exactly as for one that does not.
    let foreign = server.get_as("/api/v1/tenants/acme", Some(&outsider));
    let missing = server.get_as("/api/v1/tenants/nope", Some(&outsider));
    assert_eq!((foreign.status, missing.status), (404, 404));
    assert_eq!(
        foreign.json()["error"]["code"],
        missing.json()["error"]["code"]
    );
    let foreign_globex = server.get_as("/api/v1/tenants/globex/settings", Some(&viewer));
    assert_eq!(foreign_globex.status, 404);

    // A viewer reads but cannot change settings; an admin can.
    assert_eq!(
        server
            .get_as("/api/v1/tenants/acme/settings", Some(&viewer))
            .status,
        200
    );
    let denied = server.call(
        "PATCH",
        "/api/v1/tenants/acme/settings",
        Some(&json!({"a": 1})),
        Some(&viewer),
    );
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_code(), "forbidden");
    let allowed = server.call(
        "PATCH",
        "/api/v1/tenants/acme/settings",
        Some(&json!({"a": 1})),
        Some(&manager),
    );
    assert_eq!(allowed.status, 200, "{}", allowed.body);

    // A tenant admin manages members but cannot create owners; system admins can.
    let as_manager = |who: &str, role: &str| {
        server.call(
            "PUT",
            &format!("/api/v1/tenants/acme/members/{who}"),
            Some(&json!({"role": role})),
            Some(&manager),
        )
    };
    assert_eq!(as_manager("olga", "editor").status, 200);
    assert_eq!(as_manager("olga", "owner").status, 403);
    assert_eq!(put("olga", "owner").status, 200);
    let removed = server.call(
        "DELETE",
        "/api/v1/tenants/acme/members/olga",
        None,
        Some(&manager),
    );
    assert_eq!(removed.status, 403, "an admin cannot remove an owner");

    // Only system administrators create tenants and accounts.
    assert_eq!(
        server
            .post_json_as("/api/v1/tenants", &json!({"name": "X"}), Some(&manager))
            .status,
        403
    );
    assert_eq!(server.get_as("/api/v1/users", Some(&manager)).status, 403);
    let members = server
        .get_as("/api/v1/tenants/acme/members", Some(&viewer))
        .json();
    let names: Vec<&str> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["username"].as_str())
        .collect();
    assert_eq!(names, ["adam", "olga", "vera"]);
}

#[test]
fn cli_creates_accounts_from_stdin_and_resets_passwords() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let dir = cwd.path();
    run(dir, &["migrate"]);
    let add = |args: &[&str], stdin: &str| {
        let mut child = enclave(dir)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), stdin.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = add(
        &["user", "add", "root", "--system-admin", "--password-stdin"],
        "a strong root passphrase\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Created system administrator root"), "{out}");
    let (code, _, err) = add(&["user", "add", "weak", "--password-stdin"], "123456\n");
    assert_ne!(code, Some(0));
    assert!(err.contains("at least 12 characters"), "{err}");
    let (code, _, err) = add(
        &["user", "add", "root", "--password-stdin"],
        "another strong passphrase\n",
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("user root already exists"), "{err}");
    let (code, _, _) = run(dir, &["user", "add", "nopass"]);
    assert_ne!(code, 0, "--password-stdin is required");

    let (code, out, _) = run(dir, &["user", "reset-password", "root"]);
    assert_eq!(code, 0);
    let temporary = out
        .lines()
        .last()
        .expect("password line")
        .trim()
        .to_string();
    assert_eq!(temporary.len(), 24);

    // No bootstrap admin on an installation that already has accounts; root must change the
    // temporary password before anything else.
    let data = dir.join("data");
    let server = Server::spawn(
        tempfile::tempdir().expect("tempdir"),
        data.clone(),
        Options {
            sign_in: false,
            ..Default::default()
        },
    );
    assert!(!data.join("bootstrap-admin.txt").exists());
    let root = server
        .login("root", &temporary)
        .expect("temporary password works");
    assert_eq!(
        server.get_as("/api/v1/users", Some(&root)).error_code(),
        "password_change_required"
    );
    let root = server.change_password(&root, &temporary, "root's own new passphrase");
    assert_eq!(server.get_as("/api/v1/users", Some(&root)).status, 200);
    let (_, list, _) = run(dir, &["user", "list", "--json"]);
    let users: Value = serde_json::from_str(&list).expect("json");
    assert_eq!(users.as_array().map(Vec::len), Some(1));
    assert_eq!(users[0]["must_change_password"], false);
}

#[test]
fn suspending_an_account_ends_its_sessions_and_blocks_sign_in() {
    let server = Server::start();
    let frank = server.user("frank");
    assert_eq!(
        server.get_as("/api/v1/auth/session", Some(&frank)).status,
        200
    );
    let patch = |who: &str, body: Value| {
        server.call(
            "PATCH",
            &format!("/api/v1/users/{who}"),
            Some(&body),
            server.admin.as_ref(),
        )
    };
    let reply = patch("frank", json!({"state": "suspended"}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["state"], "suspended");
    assert_eq!(
        server.get_as("/api/v1/auth/session", Some(&frank)).status,
        401,
        "session ended at once"
    );
    let refused = server
        .login("frank", "frank long enough password")
        .expect_err("suspended");
    assert_eq!(
        refused.error_code(),
        "invalid_credentials",
        "same answer as a wrong password"
    );
    assert_eq!(patch("frank", json!({"state": "active"})).status, 200);
    assert!(server.login("frank", "frank long enough password").is_ok());

    assert_eq!(
        patch("frank", json!({"state": "gone"})).error_code(),
        "invalid_request"
    );
    assert_eq!(
        patch("nobody", json!({"state": "active"})).error_code(),
        "user_not_found"
    );
    let own = patch("admin", json!({"is_system_admin": false}));
    assert_eq!(own.status, 400);
    assert!(own.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("your own account"));
    let audit = server.get("/api/v1/audit?action=user.update").json();
    assert_eq!(audit["entries"].as_array().map(Vec::len), Some(2));
}

#[test]
fn invitations_are_single_use_personal_and_expire() {
    let server = Server::start();
    server.create_tenant("acme");
    let gail = server.user("gail");
    let hank = server.user("hank");
    let invite = |who: &str, role: &str| {
        server.post_json(
            "/api/v1/tenants/acme/invitations",
            &json!({"invitee": who, "role": role}),
        )
    };
    let created = invite("gail", "editor");
    assert_eq!(created.status, 201, "{}", created.body);
    let link = created.json()["link"].as_str().expect("link").to_string();
    let token = link.trim_start_matches("/invite/").to_string();
    assert!(link.starts_with("/invite/") && token.len() == 48, "{link}");
    let listed = server.get("/api/v1/tenants/acme/invitations");
    assert!(!listed.body.contains(&token), "tokens are never listed");

    // Only the invited person can accept it, once.
    let wrong = server.post_json_as(
        "/api/v1/invitations/accept",
        &json!({"token": token}),
        Some(&hank),
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.error_code(), "invitation_not_for_you");
    let ok = server.post_json_as(
        "/api/v1/invitations/accept",
        &json!({"token": token}),
        Some(&gail),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let session = server.get_as("/api/v1/auth/session", Some(&gail)).json();
    assert_eq!(session["memberships"][0]["tenant_id"], "acme");
    assert_eq!(session["memberships"][0]["role"], "editor");
    let again = server.post_json_as(
        "/api/v1/invitations/accept",
        &json!({"token": token}),
        Some(&gail),
    );
    assert_eq!(again.status, 404);
    assert_eq!(again.error_code(), "invitation_invalid");
    let anonymous =
        server.post_json_as("/api/v1/invitations/accept", &json!({"token": token}), None);
    assert_eq!(anonymous.status, 401);

    // Revoked invitations cannot be used; expiry is bounded; an editor cannot invite.
    let second = invite("hank", "viewer").json();
    let id = second["invitation"]["id"].as_str().expect("id").to_string();
    let token2 = second["link"]
        .as_str()
        .expect("link")
        .trim_start_matches("/invite/")
        .to_string();
    assert_eq!(
        server
            .call(
                "DELETE",
                &format!("/api/v1/tenants/acme/invitations/{id}"),
                None,
                server.admin.as_ref()
            )
            .status,
        200
    );
    let revoked = server.post_json_as(
        "/api/v1/invitations/accept",
        &json!({"token": token2}),
        Some(&hank),
    );
    assert_eq!(revoked.error_code(), "invitation_invalid");
    let too_long = server.post_json(
        "/api/v1/tenants/acme/invitations",
        &json!({"invitee": "x@y.z", "role": "viewer", "expires_in_hours": 10000}),
    );
    assert_eq!(too_long.error_code(), "invalid_request");
    let by_editor = server.post_json_as(
        "/api/v1/tenants/acme/invitations",
        &json!({"invitee": "hank", "role": "viewer"}),
        Some(&gail),
    );
    assert_eq!(by_editor.status, 403);

    // An expired invitation says so (the clock is moved by editing the stored expiry).
    let third = invite("hank", "viewer").json();
    let id3 = third["invitation"]["id"].as_str().expect("id").to_string();
    let token3 = third["link"]
        .as_str()
        .expect("link")
        .trim_start_matches("/invite/")
        .to_string();
    let db = rusqlite::Connection::open(server.data_dir.join("system.db")).expect("open");
    db.execute(
        "UPDATE invitations SET expires_at = 1 WHERE id = ?1",
        [&id3],
    )
    .expect("expire");
    drop(db);
    let expired = server.post_json_as(
        "/api/v1/invitations/accept",
        &json!({"token": token3}),
        Some(&hank),
    );
    assert_eq!(expired.status, 410);
    assert_eq!(expired.error_code(), "invitation_expired");
    let actions: Vec<String> = server.get("/api/v1/tenants/acme/audit").json()["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_string))
        .collect();
    for expected in [
        "invitation.create",
        "invitation.accept",
        "invitation.revoke",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected}: {actions:?}"
        );
    }
}

fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.chars() {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".find(c).expect("base32") as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

fn totp_now(secret: &[u8], offset_steps: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let step = enclave::identity::totp::step_of(now) + offset_steps;
    format!("{:06}", enclave::identity::totp::code_at_step(secret, step))
}

#[test]
fn totp_second_factor_with_single_use_codes_and_recovery_codes() {
    let server = Server::start();
    let ivy = server.user("ivy");
    let setup = server.call(
        "POST",
        "/api/v1/auth/totp/setup",
        Some(&json!({})),
        Some(&ivy),
    );
    assert_eq!(setup.status, 200, "{}", setup.body);
    let secret = base32_decode(setup.json()["secret"].as_str().expect("secret"));
    assert_eq!(secret.len(), 20);
    assert!(setup.json()["otpauth_uri"]
        .as_str()
        .unwrap_or_default()
        .starts_with("otpauth://totp/Enclave:ivy?secret="));
    let wrong = server.call(
        "POST",
        "/api/v1/auth/totp/enable",
        Some(&json!({"code": "000000"})),
        Some(&ivy),
    );
    assert_eq!(wrong.error_code(), "invalid_totp");
    let enabled = server.call(
        "POST",
        "/api/v1/auth/totp/enable",
        Some(&json!({"code": totp_now(&secret, -1)})),
        Some(&ivy),
    );
    assert_eq!(enabled.status, 200, "{}", enabled.body);
    let recovery: Vec<String> = enabled.json()["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    assert_eq!(recovery.len(), 10);

    let password = "ivy long enough password";
    let login = |code: Option<&str>| {
        let mut body = json!({"username": "ivy", "password": password});
        if let Some(c) = code {
            body["totp_code"] = json!(c);
        }
        server.call("POST", "/api/v1/auth/login", Some(&body), None)
    };
    let needs = login(None);
    assert_eq!(needs.status, 401);
    assert_eq!(needs.error_code(), "totp_required");
    assert!(needs.header("set-cookie").is_none());
    assert_eq!(login(Some("123456")).error_code(), "invalid_totp");
    let code = totp_now(&secret, 0);
    assert_eq!(login(Some(&code)).status, 200);
    assert_eq!(
        login(Some(&code)).error_code(),
        "invalid_totp",
        "a code works once"
    );
    assert_eq!(login(Some(&recovery[0])).status, 200, "recovery code");
    assert_eq!(
        login(Some(&recovery[0])).error_code(),
        "invalid_totp",
        "recovery codes work once"
    );
    let next = totp_now(&secret, 1);
    let session = session_from(&login(Some(&next)));

    let bad = server.call(
        "POST",
        "/api/v1/auth/totp/disable",
        Some(&json!({"password": "nope nope nope"})),
        Some(&session),
    );
    assert_eq!(bad.error_code(), "invalid_credentials");
    let off = server.call(
        "POST",
        "/api/v1/auth/totp/disable",
        Some(&json!({"password": password})),
        Some(&session),
    );
    assert_eq!(off.status, 204);
    assert_eq!(login(None).status, 200);
    let audit = server.get("/api/v1/audit?actor=ivy").json();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"user.totp_enable")
            && actions.contains(&"user.totp_disable")
            && actions.contains(&"auth.login_totp"),
        "{actions:?}"
    );
}

#[test]
fn idle_and_absolute_session_timeouts_end_sessions() {
    let server = Server::start();
    let idle = server.user("kim");
    let old = server
        .login("kim", "kim long enough password")
        .expect("second session");
    let db = rusqlite::Connection::open(server.data_dir.join("system.db")).expect("open");
    // Idle for longer than the 30-minute default.
    db.execute(
        "UPDATE sessions SET last_seen_at = last_seen_at - 31 * 60 WHERE id_hash = (SELECT id_hash FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = 'kim') ORDER BY created_at LIMIT 1)",
        [],
    )
    .expect("age");
    // Past the absolute lifetime, however active.
    db.execute(
        "UPDATE sessions SET expires_at = 1 WHERE user_id = (SELECT id FROM users WHERE username = 'kim') AND last_seen_at > strftime('%s','now') - 60",
        [],
    )
    .expect("expire");
    drop(db);
    for session in [&idle, &old] {
        let reply = server.get_as("/api/v1/auth/session", Some(session));
        assert_eq!(reply.status, 401);
        assert_eq!(reply.error_code(), "session_expired");
        // An ended session stays ended.
        assert_eq!(
            server
                .get_as("/api/v1/auth/session", Some(session))
                .error_code(),
            "unauthenticated"
        );
    }
}

#[test]
fn a_user_lists_their_sessions_and_ends_one_elsewhere() {
    let server = Server::start();
    let laptop = server.user("fiona");
    let phone = server
        .login("fiona", "fiona long enough password")
        .expect("second sign-in");
    let other = server.user("gary");

    let list = server.get_as("/api/v1/auth/sessions", Some(&laptop)).json();
    let sessions = list["sessions"].as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 2, "{list}");
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list}");
    let phone_id = sessions
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("the other session")
        .to_string();
    assert!(
        !list.to_string().contains(&phone.cookie),
        "no secrets listed"
    );

    // Someone else cannot end it: it is not theirs (404, no existence leak).
    let foreign = server.call(
        "DELETE",
        &format!("/api/v1/auth/sessions/{phone_id}"),
        None,
        Some(&other),
    );
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.error_code(), "session_not_found");
    assert_eq!(
        server.get_as("/api/v1/auth/session", Some(&phone)).status,
        200
    );

    // The owner ends the phone's session from the laptop.
    let ended = server.call(
        "DELETE",
        &format!("/api/v1/auth/sessions/{phone_id}"),
        None,
        Some(&laptop),
    );
    assert_eq!(ended.status, 204);
    assert_eq!(
        server.get_as("/api/v1/auth/session", Some(&phone)).status,
        401
    );
    assert_eq!(
        server.get_as("/api/v1/auth/session", Some(&laptop)).status,
        200
    );
    let again = server.call(
        "DELETE",
        &format!("/api/v1/auth/sessions/{phone_id}"),
        None,
        Some(&laptop),
    );
    assert_eq!(again.status, 404);
    let audit = server
        .get("/api/v1/audit?action=auth.session_revoke")
        .json();
    assert_eq!(audit["entries"][0]["actor"], "fiona", "{audit}");
}
