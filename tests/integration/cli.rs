//! The command line: init, version, tenant create/list, doctor, help.

use crate::common::*;

#[test]
fn init_writes_a_commented_config_that_serve_accepts() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let dir = cwd.path();
    let (code, out, err) = run(dir, &["init"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Wrote enclave.toml"), "{out}");
    let text = std::fs::read_to_string(dir.join("enclave.toml")).expect("config");
    assert!(text.contains("# listen = \"127.0.0.1:8080\""));
    assert!(dir.join("data/system.db").is_file());
    let (code, _, err) = run(dir, &["init"]);
    assert_ne!(code, 0);
    assert!(err.contains("already exists; use --force"), "{err}");

    // The written file is read from the working directory by default.
    let data = dir.join("data");
    let server = Server::spawn(
        cwd,
        data,
        Options {
            explicit_data_dir: false,
            ..Default::default()
        },
    );
    assert!(
        server.stderr().contains("configuration loaded"),
        "{}",
        server.stderr()
    );
    assert_eq!(server.get("/readyz").status, 200);
}

#[test]
fn tenant_commands_and_version() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let dir = cwd.path();
    let (code, _, err) = run(dir, &["tenant", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("no Enclave data in ./data"), "{err}");

    run(dir, &["init"]);
    // The community plan has one tenant; a Pro licence (activated offline) allows more.
    let (code, out, err) = activate_via_cli(dir, &[], &["--edition", "pro"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(dir, &["tenant", "create", "Sales Team"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Created tenant sales-team"), "{out}");
    let (code, _, err) = run(dir, &["tenant", "create", "Sales Team"]);
    assert_ne!(code, 0);
    assert!(err.contains("tenant sales-team already exists"), "{err}");
    let (code, _, err) = run(dir, &["tenant", "create", "X", "--id", "Bad Id"]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid tenant id"), "{err}");
    let (_, out, _) = run(dir, &["tenant", "create", "Research", "--id", "rnd"]);
    assert!(out.contains("Created tenant rnd"));

    let (code, out, _) = run(dir, &["tenant", "list", "--json"]);
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).expect("json");
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["rnd", "sales-team"]);

    let (code, out, _) = run(dir, &["version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("enclave {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let expected = format!(
        "schema: system {}, tenant {}",
        schema_version("system"),
        schema_version("tenant")
    );
    assert!(out.contains(&expected), "{out}");
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["init", "--help"],
        vec!["migrate", "--help"],
        vec!["doctor", "--help"],
        vec!["version", "--help"],
        vec!["tenant", "create", "--help"],
        vec!["tenant", "list", "--help"],
    ] {
        let (code, out, _) = run(dir.path(), &args);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage: enclave"), "{args:?}: {out}");
    }
    let (_, out, _) = run(dir.path(), &["serve", "--help"]);
    assert!(
        out.contains("ENCLAVE_LISTEN") && out.contains("ENCLAVE_DATA_DIR"),
        "{out}"
    );
}

#[test]
fn doctor_reports_a_damaged_tenant_database_and_missing_models() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let dir = cwd.path();
    run(dir, &["init"]);
    let (code, out, err) = activate_via_cli(dir, &[], &["--edition", "pro"]);
    assert_eq!(code, 0, "{out}{err}");
    run(dir, &["tenant", "create", "Good"]);
    run(dir, &["tenant", "create", "Broken"]);
    let (code, out, _) = run(dir, &["doctor"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("[ok  ] tenants") && out.contains("2 tenant database(s)"),
        "{out}"
    );
    assert!(
        out.contains("[WARN] model all-MiniLM-L6-v2 (embedding)")
            && out.contains("fetch-models.sh"),
        "{out}"
    );
    assert!(
        out.contains("[ok  ] free disk") && out.contains("[ok  ] clock"),
        "{out}"
    );

    // Damage a page in the middle of the broken tenant's database.
    let path = dir.join("data/tenants/broken/tenant.db");
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() >= 8192, "database too small to damage");
    for b in &mut bytes[4096..8192] {
        *b = 0xa5;
    }
    std::fs::write(&path, bytes).expect("write");
    let (code, out, _) = run(dir, &["doctor"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[FAIL] tenants") && out.contains("broken:"),
        "{out}"
    );
    assert!(!out.contains("good:"), "{out}");
}
