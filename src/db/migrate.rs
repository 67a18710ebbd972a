//! Embedded, ordered SQL migrations for the system database and for every tenant database.
//!
//! Files live in `migrations/system/` and `migrations/tenant/` as `NNNN_description.sql`, numbered from
//! 0001 without gaps, and are compiled into the binary. Rules:
//! - All pending migrations of a database run in one `BEGIN IMMEDIATE` transaction, each followed by
//!   the bump of `PRAGMA user_version` and a row in `_migrations` (version, name, SHA-256, app version,
//!   time). If any step fails, nothing is applied: the database stays exactly as it was. Migrations must
//!   therefore be transactional SQL (no `VACUUM`, no `PRAGMA journal_mode`).
//! - A database whose `user_version` is newer than this binary knows is refused with a clear message:
//!   no silent downgrade.
//! - Migrations are append-only: a file already applied whose text changed is reported, not re-run.

use std::borrow::Cow;
use std::path::Path;

use ring::digest;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "migrations/system/"]
#[include = "*.sql"]
struct SystemFiles;

#[derive(RustEmbed)]
#[folder = "migrations/tenant/"]
#[include = "*.sql"]
struct TenantFiles;

/// Upgrade-test builds (never released) carry one or two more migrations per kind, numbered after the
/// real ones: `upgrade/{kind}.sql`, and with `test-failing-migration` also `failing/{kind}.sql`.
#[cfg(feature = "test-upgrade-migration")]
#[derive(RustEmbed)]
#[folder = "tests/fixtures/migrations/"]
#[include = "*.sql"]
struct UpgradeTestFiles;

/// One migration step.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: u32,
    pub name: String,
    pub sql: Cow<'static, str>,
}

impl Migration {
    fn checksum(&self) -> String {
        hex::encode(digest::digest(&digest::SHA256, self.sql.as_bytes()))
    }
}

/// Why migrating failed. Each message names the database.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "database {db} has schema version {found}, but this Enclave {app} knows {kind} schema versions up to {supported}; \
         run the newer Enclave that wrote it, or restore a backup taken before the upgrade"
    )]
    SchemaTooNew {
        db: String,
        kind: &'static str,
        found: u32,
        supported: u32,
        app: &'static str,
    },
    #[error(
        "{kind} migration {version:04} ({name}) failed on database {db}; nothing was applied, the database is unchanged at version {at}: {cause}"
    )]
    Failed {
        db: String,
        kind: &'static str,
        version: u32,
        name: String,
        at: u32,
        cause: String,
    },
    #[error(
        "database {db}: {kind} migration {version:04} was applied with different SQL than this binary carries; migrations are append-only"
    )]
    Changed {
        db: String,
        kind: &'static str,
        version: u32,
    },
    #[error("database {db}: cannot read its schema version: {cause}")]
    Unreadable { db: String, cause: String },
    #[error("embedded {kind} migrations are malformed: {detail}")]
    BadSet { kind: &'static str, detail: String },
}

/// An ordered set of migrations for one kind of database.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    kind: &'static str,
    migrations: Vec<Migration>,
}

/// What [`MigrationSet::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub from: u32,
    pub to: u32,
    pub applied: Vec<(u32, String)>,
}

impl MigrationReport {
    /// The report of a database already at the latest schema of `set`.
    pub fn current(set: &MigrationSet) -> MigrationReport {
        MigrationReport {
            from: set.latest(),
            to: set.latest(),
            applied: Vec::new(),
        }
    }
}

impl MigrationSet {
    /// The migrations of `system.db`.
    pub fn system() -> Result<MigrationSet, MigrateError> {
        Self::from_embedded::<SystemFiles>("system")
    }

    /// The migrations of every `tenant.db`.
    pub fn tenant() -> Result<MigrationSet, MigrateError> {
        Self::from_embedded::<TenantFiles>("tenant")
    }

    fn from_embedded<F: RustEmbed>(kind: &'static str) -> Result<MigrationSet, MigrateError> {
        let mut set = Self::from_files::<F>(kind)?;
        set.append_test_migrations();
        Ok(set)
    }

    fn from_files<F: RustEmbed>(kind: &'static str) -> Result<MigrationSet, MigrateError> {
        let mut migrations = Vec::new();
        for file in F::iter() {
            let bad = |detail: String| MigrateError::BadSet { kind, detail };
            let (number, rest) = file
                .split_once('_')
                .ok_or_else(|| bad(format!("{file}: expected NNNN_name.sql")))?;
            let version: u32 = number
                .parse()
                .map_err(|_| bad(format!("{file}: expected a number before '_'")))?;
            let content = F::get(&file).ok_or_else(|| bad(format!("{file}: missing")))?;
            let sql = String::from_utf8(content.data.into_owned())
                .map_err(|_| bad(format!("{file}: not UTF-8")))?;
            migrations.push(Migration {
                version,
                name: rest.trim_end_matches(".sql").to_string(),
                sql: Cow::Owned(sql),
            });
        }
        Self::from_parts(kind, migrations)
    }

    /// Builds a set from explicit steps (tests use this to exercise failures). Versions must run 1..=N.
    pub fn from_parts(
        kind: &'static str,
        mut migrations: Vec<Migration>,
    ) -> Result<MigrationSet, MigrateError> {
        migrations.sort_by_key(|m| m.version);
        for (index, m) in migrations.iter().enumerate() {
            let expected = index as u32 + 1;
            if m.version != expected {
                return Err(MigrateError::BadSet {
                    kind,
                    detail: format!("expected version {expected:04}, found {:04}", m.version),
                });
            }
        }
        Ok(MigrationSet { kind, migrations })
    }

    #[cfg(not(feature = "test-upgrade-migration"))]
    fn append_test_migrations(&mut self) {}

    #[cfg(feature = "test-upgrade-migration")]
    fn append_test_migrations(&mut self) {
        let mut variants = vec!["upgrade"];
        if cfg!(feature = "test-failing-migration") {
            variants.push("failing");
        }
        for variant in variants {
            if let Some(file) = UpgradeTestFiles::get(&format!("{variant}/{}.sql", self.kind)) {
                self.migrations.push(Migration {
                    version: self.latest() + 1,
                    name: format!("test_{variant}"),
                    sql: Cow::Owned(String::from_utf8_lossy(&file.data).into_owned()),
                });
            }
        }
    }

    /// The step that brings a database to `version`.
    pub fn step(&self, version: u32) -> Option<&Migration> {
        self.migrations.get(version.checked_sub(1)? as usize)
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The schema version this binary brings a database to.
    pub fn latest(&self) -> u32 {
        self.migrations.len() as u32
    }

    /// The version a database is at now.
    pub fn current_version(conn: &Connection, db: &str) -> Result<u32, MigrateError> {
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map(|v| v.max(0) as u32)
            .map_err(|e| MigrateError::Unreadable {
                db: db.to_string(),
                cause: e.to_string(),
            })
    }

    /// The migrations a database still needs, after checking it is not newer than this binary and
    /// that the steps it already has match the ones embedded here.
    pub fn pending(&self, conn: &Connection, db: &Path) -> Result<Vec<&Migration>, MigrateError> {
        let db_name = db.display().to_string();
        let current = Self::current_version(conn, &db_name)?;
        if current > self.latest() {
            return Err(MigrateError::SchemaTooNew {
                db: db_name,
                kind: self.kind,
                found: current,
                supported: self.latest(),
                app: crate::VERSION,
            });
        }
        self.check_applied_unchanged(conn, &db_name, current)?;
        Ok(self.migrations[current as usize..].iter().collect())
    }

    fn check_applied_unchanged(
        &self,
        conn: &Connection,
        db: &str,
        current: u32,
    ) -> Result<(), MigrateError> {
        let has_table: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| MigrateError::Unreadable {
                db: db.to_string(),
                cause: e.to_string(),
            })?;
        if !has_table {
            return Ok(());
        }
        for m in &self.migrations[..current as usize] {
            let stored: Option<String> = conn
                .query_row(
                    "SELECT sha256 FROM _migrations WHERE version = ?1",
                    [m.version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| MigrateError::Unreadable {
                    db: db.to_string(),
                    cause: e.to_string(),
                })?;
            if stored.is_some_and(|s| s != m.checksum()) {
                return Err(MigrateError::Changed {
                    db: db.to_string(),
                    kind: self.kind,
                    version: m.version,
                });
            }
        }
        Ok(())
    }

    /// Brings the database to [`Self::latest`] in one transaction: either every pending step is applied
    /// or, if one fails, none is and the database stays at the version it had. Re-running is a no-op.
    pub fn apply(&self, conn: &mut Connection, db: &Path) -> Result<MigrationReport, MigrateError> {
        self.run(conn, db, true)
    }

    /// Runs every pending step exactly as [`Self::apply`] would, then rolls the transaction back: the
    /// database is unchanged either way. An upgrade tries every database first, so that one failing
    /// database cannot leave the others migrated.
    pub fn trial(&self, conn: &mut Connection, db: &Path) -> Result<MigrationReport, MigrateError> {
        self.run(conn, db, false)
    }

    fn run(
        &self,
        conn: &mut Connection,
        db: &Path,
        commit: bool,
    ) -> Result<MigrationReport, MigrateError> {
        let db_name = db.display().to_string();
        let from = Self::current_version(conn, &db_name)?;
        let pending: Vec<Migration> = self.pending(conn, db)?.into_iter().cloned().collect();
        if pending.is_empty() {
            return Ok(MigrationReport {
                from,
                to: from,
                applied: Vec::new(),
            });
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| MigrateError::Unreadable {
                db: db_name.clone(),
                cause: e.to_string(),
            })?;
        let mut applied = Vec::new();
        for m in &pending {
            let failed = |cause: String| MigrateError::Failed {
                db: db_name.clone(),
                kind: self.kind,
                version: m.version,
                name: m.name.clone(),
                at: from,
                cause,
            };
            tx.execute_batch(&m.sql)
                .map_err(|e| failed(e.to_string()))?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS _migrations (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    sha256 TEXT NOT NULL,
                    app_version TEXT NOT NULL,
                    applied_at TEXT NOT NULL
                 )",
            )
            .map_err(|e| failed(e.to_string()))?;
            tx.execute(
                "INSERT INTO _migrations (version, name, sha256, app_version, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![m.version, m.name, m.checksum(), crate::VERSION, crate::time_util::now_rfc3339()],
            )
            .map_err(|e| failed(e.to_string()))?;
            tx.pragma_update(None, "user_version", m.version)
                .map_err(|e| failed(e.to_string()))?;
            applied.push((m.version, m.name.clone()));
        }
        let to = self.latest();
        if !commit {
            tx.rollback().map_err(|e| MigrateError::Unreadable {
                db: db_name.clone(),
                cause: e.to_string(),
            })?;
            return Ok(MigrationReport { from, to, applied });
        }
        tx.commit().map_err(|e| MigrateError::Failed {
            db: db_name.clone(),
            kind: self.kind,
            version: to,
            name: "commit".into(),
            at: from,
            cause: e.to_string(),
        })?;
        Ok(MigrationReport { from, to, applied })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(version: u32, sql: &'static str) -> Migration {
        Migration {
            version,
            name: format!("step{version}"),
            sql: Cow::Borrowed(sql),
        }
    }

    fn fresh() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let conn = Connection::open(&path).expect("open");
        (dir, path, conn)
    }

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
            .expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    #[test]
    fn embedded_sets_are_contiguous_and_apply_to_fresh_databases() {
        for set in [
            MigrationSet::system().expect("system"),
            MigrationSet::tenant().expect("tenant"),
        ] {
            assert!(set.latest() >= 1);
            let (_dir, path, mut conn) = fresh();
            let report = set.apply(&mut conn, &path).expect("apply");
            assert_eq!((report.from, report.to), (0, set.latest()));
            let again = set.apply(&mut conn, &path).expect("re-run");
            assert!(again.applied.is_empty(), "re-running is a no-op");
            let rows: i64 = conn
                .query_row("SELECT count(*) FROM _migrations", [], |r| r.get(0))
                .expect("count");
            assert_eq!(rows, i64::from(set.latest()));
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let set =
            MigrationSet::from_parts("system", vec![step(1, "CREATE TABLE a (x)")]).expect("set");
        let (_dir, path, mut conn) = fresh();
        conn.pragma_update(None, "user_version", 7).expect("bump");
        let err = set.apply(&mut conn, &path).expect_err("too new");
        assert!(matches!(
            err,
            MigrateError::SchemaTooNew {
                found: 7,
                supported: 1,
                ..
            }
        ));
        assert!(err.to_string().contains("schema version 7"));
        assert!(tables(&conn).is_empty(), "nothing was touched");
    }

    #[test]
    fn failing_migration_rolls_back_to_the_previous_version() {
        let good =
            MigrationSet::from_parts("tenant", vec![step(1, "CREATE TABLE a (x)")]).expect("set");
        let (_dir, path, mut conn) = fresh();
        good.apply(&mut conn, &path).expect("first");
        conn.execute("INSERT INTO a VALUES (42)", []).expect("row");

        let broken = MigrationSet::from_parts(
            "tenant",
            vec![
                step(1, "CREATE TABLE a (x)"),
                step(
                    2,
                    "CREATE TABLE b (y); INSERT INTO a VALUES (43); THIS IS NOT SQL;",
                ),
            ],
        )
        .expect("set");
        let err = broken.apply(&mut conn, &path).expect_err("fails");
        assert!(
            matches!(
                err,
                MigrateError::Failed {
                    version: 2,
                    at: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(MigrationSet::current_version(&conn, "m").expect("v"), 1);
        assert_eq!(
            tables(&conn),
            vec!["_migrations".to_string(), "a".to_string()]
        );
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 1, "the half-run migration's insert was rolled back");
    }

    #[test]
    fn a_failure_in_a_later_step_rolls_back_every_pending_step() {
        let set = MigrationSet::from_parts(
            "tenant",
            vec![
                step(1, "CREATE TABLE a (x)"),
                step(2, "CREATE TABLE b (y)"),
                step(3, "CREATE TABLE c (z); SELECT * FROM no_such_table;"),
            ],
        )
        .expect("set");
        let (_dir, path, mut conn) = fresh();
        let err = set.apply(&mut conn, &path).expect_err("fails");
        assert!(
            matches!(
                err,
                MigrateError::Failed {
                    version: 3,
                    at: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("nothing was applied"));
        assert_eq!(MigrationSet::current_version(&conn, "m").expect("v"), 0);
        assert!(tables(&conn).is_empty(), "{:?}", tables(&conn));
    }

    #[test]
    fn changed_applied_migration_is_reported() {
        let v1 =
            MigrationSet::from_parts("tenant", vec![step(1, "CREATE TABLE a (x)")]).expect("set");
        let (_dir, path, mut conn) = fresh();
        v1.apply(&mut conn, &path).expect("apply");
        let edited = MigrationSet::from_parts("tenant", vec![step(1, "CREATE TABLE a (x, y)")])
            .expect("set");
        assert!(matches!(
            edited.apply(&mut conn, &path),
            Err(MigrateError::Changed { version: 1, .. })
        ));
    }

    #[test]
    fn gaps_in_versions_are_rejected() {
        let err =
            MigrationSet::from_parts("tenant", vec![step(1, "SELECT 1"), step(3, "SELECT 1")])
                .expect_err("gap");
        assert!(err.to_string().contains("expected version 0002"));
    }
}
