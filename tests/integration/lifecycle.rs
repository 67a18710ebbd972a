//! Start-up failures, graceful shutdown under load, restarts, and schema versions.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

/// Starts a server expected to fail; returns its stderr.
fn start_fails(cwd: tempfile::TempDir, data_dir: std::path::PathBuf, options: Options) -> String {
    match Server::try_spawn(cwd, data_dir, options) {
        Ok(server) => panic!(
            "server started but should have failed:\n{}",
            server.stderr()
        ),
        Err((stderr, status)) => {
            let status = status.expect("it exited rather than hanging");
            assert!(!status.success());
            stderr
        }
    }
}

/// The one-line `enclave: error: ...` message at the end of stderr.
fn error_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("enclave: error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    line.to_string()
}

#[test]
fn sigterm_during_load_lets_in_flight_requests_finish_and_exits_zero() {
    let server = Server::start();
    server.create_tenant("acme");

    // A request that is in flight when the signal arrives: headers and half the body sent.
    let body = br#"{"during": "shutdown", "pad": "0123456789012345678901234567890123456789"}"#;
    let addr = server.base.trim_start_matches("http://").to_string();
    let admin = server.admin.clone().expect("admin session");
    let mut slow = TcpStream::connect(&addr).expect("connect");
    write!(
        slow,
        "PATCH /api/v1/tenants/acme/settings HTTP/1.1\r\nHost: {addr}\r\nCookie: {}\r\nX-CSRF-Token: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        admin.cookie,
        admin.csrf,
        body.len()
    )
    .expect("headers");
    slow.write_all(&body[..20]).expect("half body");
    slow.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));

    // Load from 4 threads, running across the signal.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let base = server.base.clone();
    let loaders: Vec<_> = (0..4)
        .map(|i| {
            let (stop, ok, base, admin) = (stop.clone(), ok.clone(), base.clone(), admin.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let url = format!("{base}/api/v1/tenants/acme/settings");
                    let request = agent
                        .patch(&url)
                        .header("cookie", &admin.cookie)
                        .header("x-csrf-token", &admin.csrf);
                    match request.send_json(json!({ format!("load-{i}"): n })) {
                        // A response that arrives must be a proper answer: 200, or 503 while draining.
                        Ok(res) => {
                            let status = res.status().as_u16();
                            assert!(
                                status == 200 || status == 503,
                                "status {status} during shutdown"
                            );
                            if status == 200 {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // Once the listener is closed, new connections are refused: that is expected.
                        Err(_) => break,
                    }
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.pid();
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));

    // The in-flight request completes after the signal.
    slow.write_all(&body[20..]).expect("rest of body");
    let mut response = String::new();
    slow.read_to_string(&mut response).expect("response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight request was cut off: {response}"
    );
    assert!(response.contains("\"during\":\"shutdown\""), "{response}");

    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.join().expect("loader thread");
    }
    assert!(ok.load(Ordering::Relaxed) > 10, "the load did not run");
    let (status, stderr, cwd) = server.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("server stopped cleanly"), "{stderr}");

    // Everything acknowledged is there after a restart, and the databases are intact.
    let data_dir = cwd.path().join("data");
    let server = Server::spawn(cwd, data_dir, Options::default());
    let settings = server.get("/api/v1/tenants/acme/settings").json();
    assert_eq!(settings["settings"]["during"], "shutdown");
    let (code, out, _) = run(
        server.cwd.path(),
        &[
            "--data-dir",
            server.data_dir.to_str().expect("utf8"),
            "doctor",
        ],
    );
    assert!(out.contains("[ok  ] system.db"), "{out}");
    assert!(out.contains("1 tenant database(s): integrity ok"), "{out}");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    let stderr = start_fails(
        cwd,
        data,
        Options {
            env: vec![("ENCLAVE_LISTEN".into(), addr.clone())],
            ..Default::default()
        },
    );
    let line = error_line(&stderr);
    assert!(
        line.contains(&addr) && line.contains("already in use"),
        "{line}"
    );
}

#[test]
fn unknown_config_key_names_the_key_and_the_file() {
    let cwd = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        cwd.path().join("enclave.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body = 5\n",
    )
    .expect("write");
    let data = cwd.path().join("data");
    let stderr = start_fails(cwd, data, Options::default());
    let line = error_line(&stderr);
    assert!(
        line.contains("enclave.toml") && line.contains("max_body") && line.contains("line 3"),
        "{line}"
    );
}

#[test]
fn unusable_data_dir_is_a_clear_error() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    std::fs::write(&data, b"I am a file").expect("write");
    let stderr = start_fails(cwd, data, Options::default());
    assert!(
        error_line(&stderr).contains("is not a directory"),
        "{stderr}"
    );
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let first = Server::start();
    let cwd = tempfile::tempdir().expect("tempdir");
    let stderr = start_fails(cwd, first.data_dir.clone(), Options::default());
    assert!(
        error_line(&stderr).contains("in use by another Enclave process"),
        "{stderr}"
    );
    assert_eq!(first.get("/readyz").status, 200);
}

#[test]
fn corrupt_system_database_is_a_clear_error() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("system.db"), vec![0x5au8; 16384]).expect("garbage");
    let stderr = start_fails(cwd, data, Options::default());
    let line = error_line(&stderr);
    assert!(
        line.contains("system.db") && line.contains("corrupt"),
        "{line}"
    );
}

#[test]
fn newer_tenant_schema_is_refused_and_left_untouched() {
    let server = Server::start();
    server.create_tenant("acme");
    let (status, _, cwd) = server.terminate();
    assert!(status.success());
    let data = cwd.path().join("data");
    let db = data.join("tenants/acme/tenant.db");
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);

    let elsewhere = tempfile::tempdir().expect("tempdir");
    let stderr = start_fails(elsewhere, data.clone(), Options::default());
    let line = error_line(&stderr);
    assert!(
        line.contains("tenants/acme/tenant.db") && line.contains("schema version 99"),
        "{line}"
    );
    let conn = rusqlite::Connection::open(&db).expect("open");
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, 99, "a newer database is never downgraded");
}

#[test]
fn migrate_dry_run_then_apply_then_noop() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let dir = cwd.path();
    let (code, out, err) = run(dir, &["--data-dir", "d", "migrate", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("system.db: would apply 0001_instance_and_tenants"),
        "{out}"
    );
    assert!(!dir.join("d/system.db").exists(), "dry run created nothing");

    let (code, out, err) = run(dir, &["--data-dir", "d", "migrate"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("system.db: applied 0001_instance_and_tenants"),
        "{out}"
    );
    let (code, _, err) = run(dir, &["--data-dir", "d", "tenant", "create", "Acme Corp"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(dir, &["--data-dir", "d", "migrate"]);
    assert_eq!(code, 0);
    let current = format!("system.db: schema {} is current", schema_version("system"));
    assert!(out.contains(&current), "{out}");
    assert!(
        out.contains("1 tenant database(s): 1 already current"),
        "{out}"
    );
}

#[test]
fn systemd_notify_ready_watchdog_and_stopping() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let socket_path = cwd.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let data = cwd.path().join("data");
    let server = Server::spawn(
        cwd,
        data,
        Options {
            env: vec![
                ("ENCLAVE_LISTEN".into(), "127.0.0.1:0".into()),
                ("NOTIFY_SOCKET".into(), socket_path.display().to_string()),
                ("WATCHDOG_USEC".into(), "400000".into()),
            ],
            ..Default::default()
        },
    );
    let mut buf = [0u8; 512];
    let mut messages = Vec::new();
    let mut read = |messages: &mut Vec<String>| {
        let n = socket.recv(&mut buf).expect("notification");
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    };
    // READY=1 first, then watchdog pings every 200 ms.
    read(&mut messages);
    assert!(messages[0].contains("READY=1"), "{messages:?}");
    assert!(
        messages[0].contains("STATUS=listening on http://127.0.0.1:"),
        "{messages:?}"
    );
    read(&mut messages);
    read(&mut messages);
    assert!(
        messages[1..].iter().all(|m| m.contains("WATCHDOG=1")),
        "{messages:?}"
    );

    let (status, stderr, _cwd) = server.terminate();
    assert!(status.success(), "{stderr}");
    let mut stopping = false;
    while let Ok(n) = socket.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1 notification");
}
