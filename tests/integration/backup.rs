//! `enclave backup` against a running server: a backup taken while a client keeps writing, verified,
//! restored into a fresh directory, and served again — every change acknowledged before the backup
//! began is there, and the rebuilt search index finds the uploaded document. Then each kind of damage
//! (wrong passphrase, a flipped byte, truncation, bytes appended, not a backup at all) is refused with
//! its own message, and a restore into a directory that is not empty is refused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::models::fetched_models;

const PASSPHRASE: &str = "backup test passphrase 2026";

/// Runs `enclave` with the backup passphrase in the environment; returns (exit code, stdout, stderr).
fn backup_cli(cwd: &std::path::Path, args: &[&str], passphrase: &str) -> (i32, String, String) {
    let out = enclave(cwd)
        .env("ENCLAVE_BACKUP_PASSPHRASE", passphrase)
        .args(args)
        .output()
        .expect("run enclave");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_backup_taken_under_writes_restores_into_a_working_installation_and_damage_is_refused() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::os::unix::fs::symlink(fetched_models(), data.join("models")).expect("link models");
    let server = Server::spawn(cwd, data.clone(), Options::default());
    assert_eq!(server.create_tenant("acme").status, 201);
    // A knowledge base with a document, so that the restored index has something to find.
    let deadline = Instant::now() + Duration::from_secs(180);
    let dataset = loop {
        let reply = server.post_json(
            "/api/v1/tenants/acme/datasets",
            &json!({"name": "Handbook"}),
        );
        if reply.status == 201 {
            break reply.json()["id"].as_str().expect("id").to_string();
        }
        assert!(Instant::now() < deadline, "{}", reply.body);
        std::thread::sleep(Duration::from_millis(300));
    };
    let boundary = "----backup-test";
    let body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"ferry.md\"\r\nContent-Type: text/markdown\r\n\r\n# Ferry\n\nThe staff ferry to the quarantine island leaves pier QX-9 at dawn.\r\n--{boundary}--\r\n");
    let reply = server.post_raw(
        &format!("/api/v1/tenants/acme/datasets/{dataset}/documents"),
        &format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    loop {
        let docs = server
            .get(&format!(
                "/api/v1/tenants/acme/datasets/{dataset}/documents"
            ))
            .json();
        if docs["documents"][0]["status"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "{docs}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A client creates apps (tenant database) and API keys (system database) without pause.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let writer = {
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        let base = server.base.clone();
        let admin = server.admin.clone().expect("admin session");
        std::thread::spawn(move || {
            let agent = agent();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let name = format!("app-{n}");
                let reply = agent
                    .post(&format!("{base}/api/v1/tenants/acme/apps"))
                    .header("cookie", &admin.cookie)
                    .header("x-csrf-token", &admin.csrf)
                    .header("content-type", "application/json")
                    .send(json!({"name": name}).to_string());
                if reply.is_ok_and(|r| r.status().as_u16() == 201) {
                    acknowledged
                        .lock()
                        .expect("lock")
                        .push((Instant::now(), name));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let backup_started = Instant::now();
    let data_arg = data.display().to_string();
    let (code, out, err) = backup_cli(
        server.cwd.path(),
        &["--data-dir", &data_arg, "backup", "now"],
        PASSPHRASE,
    );
    assert_eq!(code, 0, "{out}{err}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let before: Vec<String> = acknowledged
        .lock()
        .expect("lock")
        .iter()
        .filter(|(at, _)| *at < backup_started)
        .map(|(_, name)| name.clone())
        .collect();
    assert!(
        before.len() > 3,
        "the writer wrote before the backup: {before:?}"
    );
    let file = out
        .split("backup written: ")
        .nth(1)
        .and_then(|rest| rest.split(" (").next())
        .expect("the backup's path")
        .to_string();
    assert!(file.ends_with(".enclave-backup"), "{out}");
    let (code, listed, _) = backup_cli(
        server.cwd.path(),
        &["--data-dir", &data_arg, "backup", "list"],
        PASSPHRASE,
    );
    assert_eq!(code, 0);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("manual"), "{listed}");

    let (code, out, err) = backup_cli(server.cwd.path(), &["backup", "verify", &file], PASSPHRASE);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("backup OK") && out.contains("2 databases"),
        "{out}"
    );

    // Restore into a new directory and serve it.
    let restored_cwd = tempfile::tempdir().expect("tempdir");
    let restored = restored_cwd.path().join("data");
    let restored_arg = restored.display().to_string();
    let (code, out, err) = backup_cli(
        restored_cwd.path(),
        &["backup", "restore", &file, "--into", &restored_arg],
        PASSPHRASE,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("index of acme rebuilt: 1 segment"), "{out}");
    let (code, _, err) = backup_cli(
        restored_cwd.path(),
        &["backup", "restore", &file, "--into", &restored_arg],
        PASSPHRASE,
    );
    assert_eq!(code, 1);
    assert!(err.contains("is not empty"), "{err}");
    assert!(
        !restored.join("instance-key.pk8").exists(),
        "secrets are not in data backups"
    );
    // The original stops (its directory, with the backup file, stays until the end of the test).
    let (status, stderr, original) = server.terminate();
    assert!(status.success(), "{stderr}");
    let again = Server::spawn(restored_cwd, restored, Options::default());
    let apps = again.get("/api/v1/tenants/acme/apps").json();
    let names: Vec<&str> = apps["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    for name in &before {
        assert!(
            names.contains(&name.as_str()),
            "{name} was acknowledged before the backup and is missing"
        );
    }
    let found = again.post_json(
        "/api/v1/tenants/acme/datasets/search",
        &json!({"query": "quarantine ferry pier", "dataset_ids": [dataset], "mode": "keyword"}),
    );
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(
        found.json()["hits"][0]["filename"],
        "ferry.md",
        "{}",
        found.body
    );
    let file_download = again.get(&format!(
        "/api/v1/tenants/acme/datasets/{dataset}/documents/{}/file",
        found.json()["hits"][0]["document_id"]
            .as_str()
            .expect("document")
    ));
    assert!(
        file_download.body.contains("pier QX-9"),
        "the uploaded file is restored"
    );

    // Damage, each with its own message; nothing is restored from a damaged file.
    let scratch = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(&file).expect("read backup");
    let verify = |name: &str, content: &[u8], passphrase: &str| {
        let path = scratch.path().join(name);
        std::fs::write(&path, content).expect("write");
        let (code, out, err) = backup_cli(
            scratch.path(),
            &["backup", "verify", &path.display().to_string()],
            passphrase,
        );
        assert_eq!(code, 1, "{name}: {out}");
        err
    };
    assert!(
        verify("wrong.enclave-backup", &bytes, "not the passphrase at all")
            .contains("passphrase does not open")
    );
    let mut flipped = bytes.clone();
    let at = flipped.len() * 2 / 3;
    flipped[at] ^= 0x01;
    assert!(verify("flipped.enclave-backup", &flipped, PASSPHRASE).contains("damaged"));
    let truncated = &bytes[..bytes.len() - 100];
    let err = verify("truncated.enclave-backup", truncated, PASSPHRASE);
    assert!(
        err.contains("damaged") || err.contains("incomplete"),
        "{err}"
    );
    let mut appended = bytes.clone();
    appended.extend_from_slice(b"extra");
    assert!(verify("appended.enclave-backup", &appended, PASSPHRASE).contains("appended"));
    assert!(
        verify("plain.enclave-backup", b"just some text", PASSPHRASE)
            .contains("not an Enclave backup")
    );
    let into = scratch.path().join("from-damaged");
    let (code, _, _) = backup_cli(
        scratch.path(),
        &[
            "backup",
            "restore",
            &scratch
                .path()
                .join("flipped.enclave-backup")
                .display()
                .to_string(),
            "--into",
            &into.display().to_string(),
        ],
        PASSPHRASE,
    );
    assert_eq!(code, 1);
    assert!(std::fs::read_dir(&into)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true));
    // A short passphrase is refused for new backups.
    let again_data = again.data_dir.display().to_string();
    let (code, _, err) = backup_cli(
        again.cwd.path(),
        &["--data-dir", &again_data, "backup", "now"],
        "short",
    );
    assert_eq!(code, 1);
    assert!(err.contains("at least 12"), "{err}");
    drop(original);
}

#[test]
fn the_server_takes_scheduled_backups_prunes_them_and_admins_back_up_verify_and_download() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    let passphrase_file = cwd.path().join("backup-passphrase");
    std::fs::write(&passphrase_file, format!("{PASSPHRASE}\n")).expect("write");
    let config = cwd.path().join("enclave.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\npassphrase_file = \"{}\"\nschedule = \"*/3 * * * * *\"\nkeep_daily = 1\nkeep_weekly = 1\n\n[usage]\nwebhook_allow_private = true\n",
            passphrase_file.display()
        ),
    )
    .expect("write config");
    let options = Options {
        args: vec!["--config".into(), config.display().to_string()],
        ..Options::default()
    };
    let server = Server::spawn(cwd, data, options);
    assert_eq!(server.create_tenant("acme").status, 201);

    // Scheduled runs: several within the same day, of which retention keeps the newest.
    let deadline = Instant::now() + Duration::from_secs(60);
    let overview = loop {
        let overview = server.get("/api/v1/backups").json();
        let pruned = overview["last_run"]["pruned"]
            .as_array()
            .map_or(0, Vec::len);
        if overview["last_run"]["ok"] == true && pruned > 0 {
            break overview;
        }
        assert!(
            Instant::now() < deadline,
            "no pruned scheduled run: {overview}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(overview["last_run"]["kind"], "scheduled", "{overview}");
    assert_eq!(overview["passphrase_configured"], true);
    assert!(overview["next_run"].is_string(), "{overview}");
    let scheduled = overview["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .filter(|b| b["kind"] == "scheduled")
        .count();
    assert!(
        scheduled <= 2,
        "retention keeps one (a run may be finishing): {overview}"
    );

    // A manual backup (retried while a scheduled one holds the lock).
    let mut tries = 0;
    let created = loop {
        let reply = server.post_json("/api/v1/backups", &json!({}));
        if reply.status == 409 && tries < 10 {
            assert_eq!(reply.error_code(), "backup_busy");
            tries += 1;
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        assert_eq!(reply.status, 201, "{}", reply.body);
        break reply.json();
    };
    assert_eq!(created["kind"], "manual");
    let file = created["file"].as_str().expect("file").to_string();
    // Manual backups survive later scheduled runs.
    std::thread::sleep(Duration::from_secs(7));
    let overview = server.get("/api/v1/backups").json();
    assert!(
        overview["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .any(|b| b["file"] == file.as_str() && b["kind"] == "manual"),
        "{overview}"
    );
    let verified = server.post_json(&format!("/api/v1/backups/{file}/verify"), &json!({}));
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.json()["databases"], 2, "{}", verified.body);
    let admin = server.admin.clone().expect("admin");
    let mut response = agent()
        .get(&server.url(&format!("/api/v1/backups/{file}")))
        .header("cookie", &admin.cookie)
        .call()
        .expect("download");
    assert_eq!(response.status(), 200);
    let downloaded = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .expect("body");
    let on_disk = std::fs::read(server.data_dir.join("backups").join(&file)).expect("file");
    assert!(downloaded.starts_with(b"ENCLBAK1"));
    assert_eq!(downloaded, on_disk);
    for bad in ["nothing.enclave-backup", "..%2Fsystem.db", "system.db"] {
        let reply = server.post_json(&format!("/api/v1/backups/{bad}/verify"), &json!({}));
        assert_eq!(reply.status, 404, "{bad}: {}", reply.body);
    }
    // Only system administrators.
    let someone = server.user("someone");
    assert_eq!(server.get_as("/api/v1/backups", Some(&someone)).status, 403);
    // Audited: the scheduler's runs and the administrator's.
    let audit = server.get("/api/v1/audit?action=backup.create").json();
    let actors: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert!(
        actors.contains(&"scheduler") && actors.contains(&"admin"),
        "{audit}"
    );
    let metrics = server.get("/metrics").body;
    assert_eq!(
        metric(&metrics, "enclave_backup_last_run_success"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "enclave_backups").is_some_and(|n| n >= 2.0),
        "{metrics}"
    );
    let newest = metric(&metrics, "enclave_backup_newest_timestamp_seconds").expect("newest");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - newest).abs() < 120.0, "{metrics}");

    // Settings from the browser: checked, saved, applied at once (scheduled backups off, the restore
    // drill every two seconds, failures posted to a local alert hook).
    let (hook_url, alerts) = alert_hook();
    let settings = json!({
        "schedule": "0 3 * *", "keep_daily": 3, "keep_weekly": 2,
        "drill_schedule": "*/2 * * * * *", "alert_webhook_url": hook_url,
    });
    let reply = server.put_json("/api/v1/backups/settings", &settings);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"]["param"], "schedule", "{}", reply.body);
    let mut settings = settings;
    settings["schedule"] = json!("");
    let reply = server.put_json("/api/v1/backups/settings", &settings);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let overview = server.get("/api/v1/backups").json();
    assert_eq!(overview["settings_source"], "saved", "{overview}");
    assert_eq!(overview["settings"]["keep_daily"], 3, "{overview}");
    assert!(overview["next_run"].is_null(), "{overview}");
    assert!(overview["next_drill"].is_string(), "{overview}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let drilled = loop {
        let overview = server.get("/api/v1/backups").json();
        if overview["last_drill"]["ok"] == true {
            break overview;
        }
        assert!(Instant::now() < deadline, "no scheduled drill: {overview}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let newest_file = drilled["backups"][0]["file"]
        .as_str()
        .expect("file")
        .to_string();
    assert_eq!(
        drilled["last_drill"]["file"],
        newest_file.as_str(),
        "{drilled}"
    );
    assert_eq!(drilled["last_drill"]["databases_checked"], 2, "{drilled}");

    // A damaged newest backup fails the drill: reported in the API, /metrics, the audit log and the hook.
    let path = server.data_dir.join("backups").join(&newest_file);
    let mut bytes = std::fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, bytes).expect("write");
    let reply = server.post_json("/api/v1/backups/drill", &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let report = reply.json();
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("damaged")),
        "{report}"
    );
    let alert = alerts
        .recv_timeout(Duration::from_secs(20))
        .expect("an alert was posted");
    assert_eq!(alert["event"], "backup.drill_failed", "{alert}");
    assert_eq!(alert["file"], newest_file.as_str(), "{alert}");
    let metrics = server.get("/metrics").body;
    assert_eq!(
        metric(&metrics, "enclave_backup_drill_last_success"),
        Some(0.0),
        "{metrics}"
    );
    let audit = server.get("/api/v1/audit?action=backup.drill").json();
    assert!(
        audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["result"] == "failure"),
        "{audit}"
    );
    let audit = server.get("/api/v1/audit?action=backup.settings").json();
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(1),
        "{audit}"
    );
}

/// A local HTTP endpoint that takes alert POSTs; their JSON bodies arrive on the channel.
fn alert_hook() -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/hooks/enclave",
        listener.local_addr().expect("addr")
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            if let Ok(value) = serde_json::from_slice(&body) {
                let _ = tx.send(value);
            }
        }
    });
    (url, rx)
}

/// The names of a tenant's apps, through the API.
fn app_names(server: &Server, tenant: &str) -> Vec<String> {
    let reply = server.get(&format!("/api/v1/tenants/{tenant}/apps"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut names: Vec<String> = reply.json()["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn create_app(server: &Server, tenant: &str, name: &str) {
    let reply = server.post_json(
        &format!("/api/v1/tenants/{tenant}/apps"),
        &json!({ "name": name }),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[test]
fn one_tenant_is_restored_in_place_leaving_the_others_untouched_and_secrets_travel_apart() {
    let options = Options {
        env: vec![
            ("ENCLAVE_LISTEN".into(), "127.0.0.1:0".into()),
            ("ENCLAVE_BACKUP_PASSPHRASE".into(), PASSPHRASE.into()),
        ],
        ..Options::default()
    };
    let server = Server::start_with(options.clone());
    for tenant in ["acme", "beta"] {
        assert_eq!(server.create_tenant(tenant).status, 201);
        create_app(&server, tenant, &format!("{tenant} before"));
    }
    let created = server.post_json("/api/v1/backups", &json!({}));
    assert_eq!(created.status, 201, "{}", created.body);
    let file = server
        .data_dir
        .join("backups")
        .join(created.json()["file"].as_str().expect("file"));
    // After the backup: both tenants change.
    create_app(&server, "acme", "acme after");
    create_app(&server, "beta", "beta after");

    // Not while the server runs: it holds the tenant's database open.
    let cwd = server.cwd.path().to_path_buf();
    let data = server.data_dir.display().to_string();
    let file_arg = file.display().to_string();
    let restore = |tenant: &str| {
        backup_cli(
            &cwd,
            &[
                "--data-dir",
                &data,
                "backup",
                "restore",
                &file_arg,
                "--tenant",
                tenant,
            ],
            PASSPHRASE,
        )
    };
    let (code, _, err) = restore("acme");
    assert_eq!(code, 1);
    assert!(err.contains("in use by another Enclave process"), "{err}");

    let (status, stderr, cwd_dir) = server.terminate();
    assert!(status.success(), "{stderr}");
    let data_dir = cwd_dir.path().join("data");
    // A tenant this installation does not have, and a backup of another installation, are refused.
    let (code, _, err) = restore("gamma");
    assert_eq!(code, 1);
    assert!(err.contains("has no tenant gamma"), "{err}");
    let other = cwd_dir.path().join("other");
    assert_eq!(
        run(
            cwd_dir.path(),
            &["--data-dir", other.to_str().expect("utf8"), "migrate"]
        )
        .0,
        0
    );
    let (code, out, err) = backup_cli(
        cwd_dir.path(),
        &["--data-dir", other.to_str().expect("utf8"), "backup", "now"],
        PASSPHRASE,
    );
    assert_eq!(code, 0, "{err}");
    let other_file = out
        .strip_prefix("backup written: ")
        .and_then(|rest| rest.split(" (").next())
        .expect("path")
        .to_string();
    let (code, _, err) = backup_cli(
        cwd_dir.path(),
        &[
            "--data-dir",
            &data,
            "backup",
            "restore",
            &other_file,
            "--tenant",
            "acme",
        ],
        PASSPHRASE,
    );
    assert_eq!(code, 1);
    assert!(err.contains("another installation"), "{err}");

    let (code, out, err) = restore("acme");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("restored tenant acme"), "{out}");
    let kept = |prefix: &str| {
        std::fs::read_dir(data_dir.join("tenants"))
            .expect("tenants")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .count()
    };
    assert_eq!(kept(".replaced-acme-"), 1, "the replaced files are kept");
    assert!(!data_dir.join("tenants/acme/tenant.db-wal").exists());

    // Secrets: the instance key leaves only in its own encrypted file.
    let secrets = cwd_dir.path().join("secrets.enclave-secrets");
    let secrets_arg = secrets.display().to_string();
    let (code, _, err) = backup_cli(
        cwd_dir.path(),
        &[
            "--data-dir",
            &data,
            "backup",
            "export-secrets",
            "--out",
            &secrets_arg,
        ],
        PASSPHRASE,
    );
    assert_eq!(code, 0, "{err}");
    let key = std::fs::read(data_dir.join("instance-key.pk8")).expect("instance key");
    let exported = std::fs::read(&secrets).expect("export");
    assert!(exported.starts_with(b"ENCLBAK1"));
    assert!(
        !exported.windows(key.len()).any(|w| w == key.as_slice()),
        "encrypted"
    );
    let fresh = cwd_dir.path().join("fresh");
    let (code, _, err) = backup_cli(
        cwd_dir.path(),
        &[
            "--data-dir",
            fresh.to_str().expect("utf8"),
            "backup",
            "import-secrets",
            &secrets_arg,
        ],
        "a wrong passphrase here",
    );
    assert_eq!(code, 1);
    assert!(err.contains("passphrase does not open"), "{err}");
    let (code, _, err) = backup_cli(
        cwd_dir.path(),
        &[
            "--data-dir",
            fresh.to_str().expect("utf8"),
            "backup",
            "import-secrets",
            &secrets_arg,
        ],
        PASSPHRASE,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(fresh.join("instance-key.pk8")).expect("key"),
        key
    );

    // Started again: acme is as it was at the backup, beta kept its later change, and the replaced
    // files are gone after this successful start.
    let server = Server::spawn(cwd_dir, data_dir.clone(), options);
    assert_eq!(app_names(&server, "acme"), vec!["acme before"]);
    assert_eq!(
        app_names(&server, "beta"),
        vec!["beta after", "beta before"]
    );
    assert_eq!(kept(".replaced-"), 0);
}

/// Writes `bytes` of incompressible data to `path` (xorshift; fast and not zstd-compressible).
fn write_random(path: &std::path::Path, bytes: usize) {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..bytes / block.len() {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        out.write_all(&block).expect("write");
    }
    out.flush().expect("flush");
}

/// A tmpfs of `megabytes` mounted on a new directory, unmounted when dropped. Needs root (CI runs the
/// suite as root); `None` otherwise.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u64) -> Option<SmallDisk> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIPPED: mounting a small file system needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs");
        Some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_disk_filling_up_during_a_backup_removes_the_partial_file_and_the_server_keeps_serving() {
    // The free-space check passes (about 200 MB needed of 320 MB); then another program fills the
    // disk while the archive is being written.
    let Some(disk) = SmallDisk::mount(320) else {
        return;
    };
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    let config = cwd.path().join("enclave.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\ndir = \"{}\"\nschedule = \"\"\n",
            disk.dir.path().display()
        ),
    )
    .expect("config");
    let options = Options {
        args: vec!["--config".into(), config.display().to_string()],
        env: vec![
            ("ENCLAVE_LISTEN".into(), "127.0.0.1:0".into()),
            ("ENCLAVE_BACKUP_PASSPHRASE".into(), PASSPHRASE.into()),
        ],
        ..Options::default()
    };
    let server = Server::spawn(cwd, data.clone(), options);
    assert_eq!(server.create_tenant("acme").status, 201);
    write_random(&data.join("tenants/acme/files/large.bin"), 180 << 20);

    let target = disk.dir.path().to_path_buf();
    let filler = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let writing = names_in(&target).iter().any(|n| n.ends_with(".partial"));
            if writing {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the backup never started writing"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=1M", "status=none"])
            .arg(format!("of={}", target.join("filler").display()))
            .status();
    });
    let reply = server.post_json("/api/v1/backups", &json!({}));
    filler.join().expect("filler");
    assert_eq!(reply.status, 507, "{}", reply.body);
    assert_eq!(reply.error_code(), "storage_full", "{}", reply.body);
    assert!(
        reply.body.contains("filled up during the backup"),
        "{}",
        reply.body
    );
    // Nothing half-written is left or listed, and the server serves on.
    assert_eq!(names_in(disk.dir.path()), vec![".lock", "filler"]);
    let overview = server.get("/api/v1/backups").json();
    assert_eq!(
        overview["backups"].as_array().map(Vec::len),
        Some(0),
        "{overview}"
    );
    assert_eq!(overview["last_failure"]["ok"], false, "{overview}");
    assert_eq!(server.get("/readyz").status, 200);
    assert_eq!(server.create_tenant("beta").status, 201);
    // With room again, the next backup works.
    std::fs::remove_file(disk.dir.path().join("filler")).expect("free");
    let reply = server.post_json("/api/v1/backups", &json!({}));
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[test]
fn a_backup_killed_midway_is_never_listed_and_the_next_one_cleans_up() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    let d = data.display().to_string();
    assert_eq!(run(cwd.path(), &["--data-dir", &d, "migrate"]).0, 0);
    assert_eq!(
        run(cwd.path(), &["--data-dir", &d, "tenant", "create", "Acme"]).0,
        0
    );
    write_random(&data.join("tenants/acme/files/large.bin"), 400 << 20);
    let backups = data.join("backups");
    let mut child = enclave(cwd.path())
        .env("ENCLAVE_BACKUP_PASSPHRASE", PASSPHRASE)
        .args(["--data-dir", &d, "backup", "now"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let partial = names_in(&backups)
            .into_iter()
            .find(|n| n.ends_with(".partial"))
            .and_then(|n| std::fs::metadata(backups.join(n)).ok())
            .is_some_and(|m| m.len() > (4 << 20));
        if partial {
            break;
        }
        assert!(Instant::now() < deadline, "the backup never got going");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished too soon"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(child.id() as i32, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    let left = names_in(&backups);
    assert!(left.iter().any(|n| n.ends_with(".partial")), "{left:?}");
    let (code, out, err) = backup_cli(
        cwd.path(),
        &["--data-dir", &d, "backup", "list"],
        PASSPHRASE,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("no backups"), "{out}");
    // The next backup removes what the killed one left and is itself complete.
    let (code, _, err) = backup_cli(cwd.path(), &["--data-dir", &d, "backup", "now"], PASSPHRASE);
    assert_eq!(code, 0, "{err}");
    let left = names_in(&backups);
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[0], ".lock");
    assert!(left[1].ends_with("-manual.enclave-backup"), "{left:?}");
    let file = backups.join(&left[1]).display().to_string();
    let (code, _, err) = backup_cli(
        cwd.path(),
        &["--data-dir", &d, "backup", "verify", &file],
        PASSPHRASE,
    );
    assert_eq!(code, 0, "{err}");
}
