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
            "[backup]\npassphrase_file = \"{}\"\nschedule = \"*/3 * * * * *\"\nkeep_daily = 1\nkeep_weekly = 1\n",
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
}
