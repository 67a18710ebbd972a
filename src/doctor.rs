//! `enclave doctor`: checks an installation and says what to fix.
//!
//! Checks: the data directory (exists, is writable, is not readable by other users), `system.db` and
//! every tenant database (`PRAGMA integrity_check`, schema version against this binary, tenant
//! directories without a record and records without a directory), the default models (every file's
//! SHA-256), free disk space, and the clock (not before this release, not behind the last time the
//! installation saw). Read-only: it never changes anything, and runs while the server is up.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rusqlite::Connection;

use crate::config::Config;
use crate::db::migrate::MigrationSet;
use crate::db::system::{list_tenants, read_instance, system_db_path};
use crate::db::{open_connection, OpenMode};
use crate::tenancy::{tenant_db_path, TenantId, TENANTS_DIR};

/// Below this much free space on the data directory's file system, doctor warns.
const LOW_DISK_WARN_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Below this much, doctor fails: writes will soon fail.
const LOW_DISK_FAIL_BYTES: u64 = 200 * 1024 * 1024;
/// No clock reading before this date is plausible for this release.
const EARLIEST_PLAUSIBLE_UNIX: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
}

fn check(name: &str, outcome: Outcome, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        outcome,
        detail: detail.into(),
    }
}

/// Runs every check.
pub fn run(config: &Config, config_file: Option<&Path>) -> Vec<Check> {
    let mut checks = vec![check(
        "config",
        Outcome::Ok,
        match config_file {
            Some(f) => format!("loaded {}", f.display()),
            None => "no file; embedded defaults and environment".to_string(),
        },
    )];
    let data_dir = &config.storage.data_dir;
    let dir_ok = check_data_dir(data_dir, &mut checks);
    if dir_ok {
        check_databases(config, &mut checks);
        check_disk(data_dir, &mut checks);
    }
    for model in crate::models::verify(data_dir) {
        let outcome = match model.status.as_str() {
            "ok" => Outcome::Ok,
            "missing" => Outcome::Warn,
            _ => Outcome::Fail,
        };
        let detail = model
            .detail
            .unwrap_or_else(|| "all files match their SHA-256".into());
        checks.push(check(
            &format!("model {} ({})", model.name, model.kind),
            outcome,
            detail,
        ));
    }
    check_clock(data_dir, &mut checks);
    checks
}

fn check_data_dir(dir: &Path, checks: &mut Vec<Check>) -> bool {
    let meta = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            checks.push(check(
                "data dir",
                Outcome::Fail,
                format!("{} is not a directory", dir.display()),
            ));
            return false;
        }
        Err(e) => {
            checks.push(check(
                "data dir",
                Outcome::Fail,
                format!(
                    "{}: {e}; run `enclave init` or start the server once",
                    dir.display()
                ),
            ));
            return false;
        }
    };
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let writable = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe));
    if let Err(e) = writable {
        checks.push(check(
            "data dir",
            Outcome::Fail,
            format!("{} is not writable: {e}", dir.display()),
        ));
        return false;
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        checks.push(check(
            "data dir",
            Outcome::Warn,
            format!(
                "{} has mode {mode:o}: other users can read it; run chmod 750",
                dir.display()
            ),
        ));
    } else {
        checks.push(check(
            "data dir",
            Outcome::Ok,
            format!("{} (mode {mode:o}) is writable", dir.display()),
        ));
    }
    true
}

/// Integrity and schema version of one database file.
fn check_database(path: &Path, set: &MigrationSet, label: &str) -> Check {
    let conn = match open_connection(path, OpenMode::MustExist, std::time::Duration::from_secs(5)) {
        Ok(c) => c,
        Err(e) => return check(label, Outcome::Fail, e.to_string()),
    };
    let integrity: Result<Vec<String>, _> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect());
    match integrity {
        Ok(lines) if lines == ["ok"] => {}
        Ok(lines) => {
            return check(
                label,
                Outcome::Fail,
                format!(
                    "integrity check failed: {}; restore from a backup",
                    lines.join("; ")
                ),
            )
        }
        Err(e) => return check(label, Outcome::Fail, format!("integrity check failed: {e}")),
    }
    let version = match MigrationSet::current_version(&conn, &path.display().to_string()) {
        Ok(v) => v,
        Err(e) => return check(label, Outcome::Fail, e.to_string()),
    };
    let latest = set.latest();
    match version.cmp(&latest) {
        std::cmp::Ordering::Equal => check(label, Outcome::Ok, format!("integrity ok, schema {version}")),
        std::cmp::Ordering::Less => check(
            label,
            Outcome::Warn,
            format!("integrity ok, schema {version} < {latest}: run `enclave migrate` (the server does it at start)"),
        ),
        std::cmp::Ordering::Greater => check(
            label,
            Outcome::Fail,
            format!("schema {version} is newer than this binary knows ({latest}): use the newer Enclave"),
        ),
    }
}

fn check_databases(config: &Config, checks: &mut Vec<Check>) {
    let data_dir = &config.storage.data_dir;
    let system_path = system_db_path(data_dir);
    if !system_path.exists() {
        checks.push(check(
            "system.db",
            Outcome::Warn,
            "not created yet: start the server or run `enclave migrate`",
        ));
        return;
    }
    let (Ok(system_set), Ok(tenant_set)) = (MigrationSet::system(), MigrationSet::tenant()) else {
        checks.push(check(
            "migrations",
            Outcome::Fail,
            "embedded migrations are malformed",
        ));
        return;
    };
    let system_check = check_database(&system_path, &system_set, "system.db");
    let system_failed = system_check.outcome == Outcome::Fail;
    checks.push(system_check);
    if system_failed {
        return;
    }
    let tenants = match Connection::open(&system_path).and_then(|c| list_tenants(&c)) {
        Ok(t) => t,
        Err(e) => {
            checks.push(check(
                "tenants",
                Outcome::Fail,
                format!("cannot list tenants: {e}"),
            ));
            return;
        }
    };
    let mut bad = Vec::new();
    let mut warn = Vec::new();
    for record in &tenants {
        let Ok(id) = TenantId::parse(&record.id) else {
            bad.push(format!("{}: invalid id", record.id));
            continue;
        };
        let result = check_database(&tenant_db_path(data_dir, &id), &tenant_set, &record.id);
        match result.outcome {
            Outcome::Ok => {}
            Outcome::Warn => warn.push(format!("{}: {}", record.id, result.detail)),
            Outcome::Fail => bad.push(format!("{}: {}", record.id, result.detail)),
        }
    }
    let known: std::collections::HashSet<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    let stray: Vec<String> = std::fs::read_dir(data_dir.join(TENANTS_DIR))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| !name.starts_with('.') && !known.contains(name.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if !stray.is_empty() {
        warn.push(format!(
            "directories without a tenant record under tenants/: {} (left by an interrupted creation; safe to move away)",
            stray.join(", ")
        ));
    }
    let summary = format!("{} tenant database(s)", tenants.len());
    let outcome = if !bad.is_empty() {
        Outcome::Fail
    } else if !warn.is_empty() {
        Outcome::Warn
    } else {
        Outcome::Ok
    };
    let mut detail = match outcome {
        Outcome::Ok => format!("{summary}: integrity ok, schemas current"),
        _ => summary,
    };
    for line in bad.iter().chain(warn.iter()).take(20) {
        detail.push_str("\n    ");
        detail.push_str(line);
    }
    checks.push(check("tenants", outcome, detail));
}

fn check_disk(dir: &Path, checks: &mut Vec<Check>) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(stat) => {
            let free = stat.blocks_available() * stat.fragment_size();
            let gib = free as f64 / (1024.0 * 1024.0 * 1024.0);
            let outcome = if free < LOW_DISK_FAIL_BYTES {
                Outcome::Fail
            } else if free < LOW_DISK_WARN_BYTES {
                Outcome::Warn
            } else {
                Outcome::Ok
            };
            checks.push(check(
                "free disk",
                outcome,
                format!("{gib:.1} GiB free on the data directory's file system"),
            ));
        }
        Err(e) => checks.push(check(
            "free disk",
            Outcome::Warn,
            format!("cannot read: {e}"),
        )),
    }
}

fn check_clock(data_dir: &Path, checks: &mut Vec<Check>) {
    let now = crate::time_util::now_utc();
    if now.unix_timestamp() < EARLIEST_PLAUSIBLE_UNIX {
        checks.push(check(
            "clock",
            Outcome::Fail,
            format!(
                "the system clock says {}, before this release; set the time (NTP)",
                crate::time_util::format_rfc3339(now)
            ),
        ));
        return;
    }
    let last_seen = Connection::open_with_flags(
        system_db_path(data_dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()
    .and_then(|c| read_instance(&c).ok().flatten())
    .and_then(|i| crate::time_util::parse_rfc3339(&i.last_seen_at));
    match last_seen {
        Some(seen) if seen > now + time::Duration::minutes(5) => checks.push(check(
            "clock",
            Outcome::Warn,
            format!(
                "the clock ({}) is behind the last time this installation saw ({}); check NTP",
                crate::time_util::format_rfc3339(now),
                crate::time_util::format_rfc3339(seen)
            ),
        )),
        _ => checks.push(check(
            "clock",
            Outcome::Ok,
            format!("{} UTC", crate::time_util::format_rfc3339(now)),
        )),
    }
}

/// Prints the report; returns whether any check failed.
pub fn print(checks: &[Check]) -> bool {
    for c in checks {
        let tag = match c.outcome {
            Outcome::Ok => "ok  ",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
        };
        println!("[{tag}] {:<36} {}", c.name, c.detail);
    }
    let failed = checks.iter().filter(|c| c.outcome == Outcome::Fail).count();
    let warned = checks.iter().filter(|c| c.outcome == Outcome::Warn).count();
    println!(
        "{} checks: {failed} failed, {warned} warnings",
        checks.len()
    );
    failed > 0
}
