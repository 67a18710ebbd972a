//! The system database (`<data>/system.db`): the installation record and the tenant catalogue.
//! (Users, sessions, licence and the system audit log join it with later migrations.)

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::migrate::{MigrationReport, MigrationSet};
use super::{open_connection, Database, DbError, DbOptions, OpenMode};
use crate::time_util::now_rfc3339;

/// File name of the system database inside the data directory.
pub const SYSTEM_DB_FILE: &str = "system.db";

/// The installation record.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub installation_id: String,
    pub created_at: String,
    pub last_started_at: String,
    pub last_seen_at: String,
}

/// A tenant as recorded in the system database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TenantRecord {
    /// Stable id, a lowercase slug; also the name of the tenant's directory.
    #[schema(example = "acme")]
    pub id: String,
    /// Display name.
    #[schema(example = "Acme Corp")]
    pub name: String,
    /// `active`, `suspended` (read-only) or `deleting`.
    #[schema(example = "active")]
    pub status: String,
    #[schema(example = "2026-11-22T14:00:00Z")]
    pub created_at: String,
    /// For a tenant being deleted: when it will be purged (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<i64>,
}

impl TenantRecord {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TenantRecord> {
        Ok(TenantRecord {
            id: row.get(0)?,
            name: row.get(1)?,
            status: row.get(2)?,
            created_at: row.get(3)?,
            delete_after: row.get(4)?,
        })
    }
}

/// Path of the system database in a data directory.
pub fn system_db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SYSTEM_DB_FILE)
}

/// Creates (if needed) and migrates the system database; returns what was applied.
pub fn migrate_system(
    data_dir: &Path,
    options: &DbOptions,
    dry_run: bool,
) -> Result<MigrationReport, DbError> {
    let path = system_db_path(data_dir);
    let set = MigrationSet::system()?;
    if dry_run {
        if !path.exists() {
            return Ok(MigrationReport {
                from: 0,
                to: set.latest(),
                applied: pending_names(&set, None, &path)?,
            });
        }
        let conn = open_connection(&path, OpenMode::MustExist, options.busy_timeout)?;
        let from = MigrationSet::current_version(&conn, &path.display().to_string())?;
        return Ok(MigrationReport {
            from,
            to: set.latest(),
            applied: pending_names(&set, Some(&conn), &path)?,
        });
    }
    let mut conn = open_connection(&path, OpenMode::CreateIfMissing, options.busy_timeout)?;
    Ok(set.apply(&mut conn, &path)?)
}

/// The names of pending migrations, for `--dry-run` (all of them for a database that does not exist).
pub fn pending_names(
    set: &MigrationSet,
    conn: Option<&Connection>,
    path: &Path,
) -> Result<Vec<(u32, String)>, DbError> {
    let empty;
    let conn = match conn {
        Some(c) => c,
        None => {
            empty = Connection::open_in_memory()?;
            &empty
        }
    };
    Ok(set
        .pending(conn, path)?
        .into_iter()
        .map(|m| (m.version, m.name.clone()))
        .collect())
}

/// The system database, open and migrated.
#[derive(Debug)]
pub struct SystemDb {
    pub db: Database,
}

impl SystemDb {
    /// Opens the migrated system database.
    pub fn open(data_dir: &Path, options: &DbOptions) -> Result<SystemDb, DbError> {
        Ok(SystemDb {
            db: Database::open(&system_db_path(data_dir), options)?,
        })
    }

    /// Records a start: creates the installation record on first start, updates the start time otherwise.
    pub fn record_start(&self) -> Result<Instance, DbError> {
        self.db.write(|tx| {
            let now = now_rfc3339();
            let existing: Option<String> = tx
                .query_row("SELECT installation_id FROM instance WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()?;
            if existing.is_none() {
                tx.execute(
                    "INSERT INTO instance (id, installation_id, created_at, last_started_at, last_seen_at)
                     VALUES (1, ?1, ?2, ?2, ?2)",
                    rusqlite::params![new_installation_id(), now],
                )?;
            } else {
                tx.execute(
                    "UPDATE instance SET last_started_at = ?1, last_seen_at = max(last_seen_at, ?1) WHERE id = 1",
                    [&now],
                )?;
            }
            read_instance(tx)?.ok_or_else(|| DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
        })
    }

    /// The installation record, created (with a new installation id) if the server never started:
    /// CLI commands that need the id (licence requests) work on a freshly initialised data directory.
    pub fn ensure_instance(&self) -> Result<Instance, DbError> {
        self.db.write(|tx| {
            let now = now_rfc3339();
            tx.execute(
                "INSERT INTO instance (id, installation_id, created_at, last_started_at, last_seen_at)
                 VALUES (1, ?1, ?2, ?2, ?2) ON CONFLICT (id) DO NOTHING",
                rusqlite::params![new_installation_id(), now],
            )?;
            read_instance(tx)?.ok_or_else(|| DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
        })
    }

    /// The installation record, if the instance has ever started.
    pub fn instance(&self) -> Result<Option<Instance>, DbError> {
        self.db.read(read_instance)
    }

    /// Every tenant, ordered by id.
    pub fn list_tenants(&self) -> Result<Vec<TenantRecord>, DbError> {
        self.db.read(list_tenants)
    }

    /// One tenant.
    pub fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, DbError> {
        self.db.read(|c| {
            c.query_row(
                "SELECT id, name, status, created_at, delete_after FROM tenants WHERE id = ?1",
                [id],
                TenantRecord::from_row,
            )
            .optional()
        })
    }

    /// Number of tenants.
    pub fn count_tenants(&self) -> Result<u64, DbError> {
        self.db
            .read(|c| c.query_row("SELECT count(*) FROM tenants", [], |r| r.get::<_, i64>(0)))
            .map(|n| n.max(0) as u64)
    }

    /// A trivial query, for readiness and the watchdog.
    pub fn ping(&self) -> Result<(), DbError> {
        self.db.read(|c| c.query_row("SELECT 1", [], |_| Ok(())))
    }
}

/// Reads the installation record on any connection.
pub fn read_instance(conn: &Connection) -> rusqlite::Result<Option<Instance>> {
    conn.query_row(
        "SELECT installation_id, created_at, last_started_at, last_seen_at FROM instance WHERE id = 1",
        [],
        |r| {
            Ok(Instance {
                installation_id: r.get(0)?,
                created_at: r.get(1)?,
                last_started_at: r.get(2)?,
                last_seen_at: r.get(3)?,
            })
        },
    )
    .optional()
}

/// Lists tenants on any connection (the CLI uses a plain connection, the server its pool).
pub fn list_tenants(conn: &Connection) -> rusqlite::Result<Vec<TenantRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, status, created_at, delete_after FROM tenants ORDER BY id",
    )?;
    let rows = stmt.query_map([], TenantRecord::from_row)?;
    rows.collect()
}

/// Inserts a tenant row inside a caller's transaction.
pub fn insert_tenant(conn: &Connection, id: &str, name: &str) -> rusqlite::Result<TenantRecord> {
    let now = now_rfc3339();
    conn.execute(
        "INSERT INTO tenants (id, name, status, created_at, updated_at) VALUES (?1, ?2, 'active', ?3, ?3)",
        rusqlite::params![id, name, now],
    )?;
    Ok(TenantRecord {
        id: id.to_string(),
        name: name.to_string(),
        status: "active".into(),
        created_at: now,
        delete_after: None,
    })
}

fn new_installation_id() -> String {
    let bytes: [u8; 16] = crate::tenancy::random_bytes();
    // Formatted like a UUID v4 so that people and licence tools recognise it.
    let mut b = bytes;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installation_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = DbOptions::new(1000, 2);
        migrate_system(dir.path(), &options, false).expect("migrate");
        let sys = SystemDb::open(dir.path(), &options).expect("open");
        let first = sys.record_start().expect("first start");
        let second = sys.record_start().expect("second start");
        assert_eq!(first.installation_id, second.installation_id);
        assert_eq!(first.installation_id.len(), 36);
        assert_eq!(&first.installation_id[14..15], "4");
    }

    #[test]
    fn dry_run_lists_everything_for_a_missing_database_and_touches_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = DbOptions::new(1000, 2);
        let report = migrate_system(dir.path(), &options, true).expect("dry run");
        assert_eq!(report.applied.len() as u32, report.to);
        assert!(!system_db_path(dir.path()).exists());
    }
}
