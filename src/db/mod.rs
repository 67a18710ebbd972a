//! SQLite databases: opening with the house PRAGMAs, a connection pool, and the write discipline.
//!
//! Every database Enclave opens (`system.db` and each `tenants/<id>/tenant.db`) is a [`Database`]:
//! - WAL journal mode (set once, persistent in the file), `synchronous=FULL` (a commit survives power
//!   loss: usage and audit data live here; the meter's [`Database::write_unsynced`] is the one exception,
//!   made safe by `usage::allowance`), `foreign_keys=ON` and `busy_timeout` on every connection.
//! - Reads go through an r2d2 pool. Writes go through [`Database::write`], which takes the database's
//!   writer mutex and runs the closure in a `BEGIN IMMEDIATE` transaction, so writers queue in-process
//!   instead of spinning on `SQLITE_BUSY`, and a read-then-write never fails half-way on a lock upgrade.
//! - These calls block: async code calls them through [`run_blocking`], never on an async worker.
//!
//! Pools of many databases share one maintenance thread pool ([`maintenance_threads`]); r2d2 would
//! otherwise start three threads per pool.

pub mod migrate;
pub mod system;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use scheduled_thread_pool::ScheduledThreadPool;

use crate::error::{ApiError, Code, ErrorCode};

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path} could not be opened: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {path} is corrupt or is not an SQLite database ({detail}); restore it from a backup")]
    Corrupt { path: PathBuf, detail: String },
    #[error("database {path} does not exist")]
    Missing { path: PathBuf },
    #[error("database is busy: {0}")]
    Busy(String),
    #[error("the disk holding the database is full: {0}")]
    Full(String),
    #[error("no database connection became free in time: {0}")]
    PoolTimeout(String),
    #[error("database {path} could not be flushed to the disk: {detail}")]
    Sync { path: PathBuf, detail: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
}

impl DbError {
    /// Classifies an SQLite error: busy, full and corrupt have their own variants and codes.
    pub fn classify(path: &Path, e: rusqlite::Error) -> DbError {
        use rusqlite::ffi::ErrorCode as E;
        match e.sqlite_error_code() {
            Some(E::DatabaseBusy) | Some(E::DatabaseLocked) => DbError::Busy(e.to_string()),
            Some(E::DiskFull) => DbError::Full(e.to_string()),
            Some(E::DatabaseCorrupt) | Some(E::NotADatabase) => DbError::Corrupt {
                path: path.to_path_buf(),
                detail: e.to_string(),
            },
            _ => DbError::Sqlite(e),
        }
    }
}

impl ErrorCode for DbError {
    fn code(&self) -> Code {
        match self {
            DbError::Busy(_) | DbError::PoolTimeout(_) => Code::DatabaseUnavailable,
            DbError::Full(_) => Code::StorageFull,
            _ => Code::Internal,
        }
    }

    fn public_message(&self) -> String {
        match self.code() {
            Code::DatabaseUnavailable => "the database is busy; retry shortly".into(),
            Code::StorageFull => {
                "the server's disk is full; changes cannot be saved until space is freed".into()
            }
            _ => "a database error occurred; the request id finds the details in the server log"
                .into(),
        }
    }
}

/// Settings applied to every connection.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub busy_timeout: Duration,
    pub pool_size: u32,
    /// Idle connections above zero are closed after this long.
    pub idle_timeout: Duration,
}

impl DbOptions {
    pub fn new(busy_timeout_ms: u64, pool_size: u32) -> Self {
        DbOptions {
            busy_timeout: Duration::from_millis(busy_timeout_ms),
            pool_size,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// The thread pool that all r2d2 pools share for their housekeeping.
pub fn maintenance_threads() -> Arc<ScheduledThreadPool> {
    static THREADS: OnceLock<Arc<ScheduledThreadPool>> = OnceLock::new();
    THREADS
        .get_or_init(|| {
            Arc::new(
                ScheduledThreadPool::builder()
                    .num_threads(2)
                    .thread_name_pattern("db-maintenance-{}")
                    .build(),
            )
        })
        .clone()
}

fn configure_connection(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA journal_size_limit = 67108864;",
    )
}

/// When a write transaction's commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// Before the commit returns (`synchronous=FULL`, the house setting).
    OnCommit,
    /// At the next `fdatasync` of the log ([`Database::sync_wal`] or a later `FULL` commit).
    Later,
}

/// Whether to create the file when it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    CreateIfMissing,
    MustExist,
}

/// Opens one connection with the house PRAGMAs and WAL on. Used for migrations, checks and creation.
pub fn open_connection(
    path: &Path,
    mode: OpenMode,
    busy_timeout: Duration,
) -> Result<Connection, DbError> {
    if mode == OpenMode::MustExist && !path.is_file() {
        return Err(DbError::Missing {
            path: path.to_path_buf(),
        });
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if mode == OpenMode::CreateIfMissing {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|source| DbError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    configure_connection(&conn, busy_timeout).map_err(|e| DbError::classify(path, e))?;
    // Reading the journal mode touches the header: a file that is not a database fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| DbError::classify(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Open {
            path: path.to_path_buf(),
            source: rusqlite::Error::InvalidQuery,
        });
    }
    Ok(conn)
}

/// One SQLite database: a read pool plus a writer mutex.
pub struct Database {
    path: PathBuf,
    pool: Pool<SqliteConnectionManager>,
    writer: Mutex<()>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .finish()
    }
}

impl Database {
    /// Opens an existing database (after migrations have run). WAL must already be on, which
    /// [`open_connection`] guarantees for every file Enclave creates.
    pub fn open(path: &Path, options: &DbOptions) -> Result<Database, DbError> {
        // Validate the file once with a direct connection, so a corrupt file fails with a clear error.
        drop(open_connection(
            path,
            OpenMode::MustExist,
            options.busy_timeout,
        )?);
        let busy = options.busy_timeout;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |conn| configure_connection(conn, busy));
        let pool = Pool::builder()
            .max_size(options.pool_size)
            .min_idle(Some(0))
            .idle_timeout(Some(options.idle_timeout))
            .connection_timeout(options.busy_timeout.max(Duration::from_secs(1)))
            .thread_pool(maintenance_threads())
            .build(manager)
            .map_err(|e| DbError::PoolTimeout(e.to_string()))?;
        Ok(Database {
            path: path.to_path_buf(),
            pool,
            writer: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A pooled connection for reads outside [`Database::read`] (e.g. handing one to a function that
    /// takes a `&Connection`). Writes go through [`Database::write`].
    pub fn connection(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, DbError> {
        self.pool.get().map_err(|e| {
            crate::metrics::global().db_error();
            DbError::PoolTimeout(e.to_string())
        })
    }

    /// Runs read-only work on a pooled connection.
    pub fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, DbError> {
        let conn = self.connection()?;
        work(&conn).map_err(|e| self.fail(e))
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction, committed if it returns `Ok`, rolled back otherwise.
    /// The commit returns once it is on the disk (`synchronous=FULL`).
    pub fn write<T, E>(&self, work: impl FnOnce(&Transaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.write_with(Flush::OnCommit, work)
    }

    /// Like [`Database::write`], but the commit does not wait for the disk (`synchronous=NORMAL` for
    /// this one transaction): it survives a crash of the process at once, and a crash of the machine
    /// only after the next [`Database::sync_wal`] (or any later `FULL` commit). Only the usage meter
    /// uses this, under the rule in `usage::allowance`.
    pub fn write_unsynced<T, E>(
        &self,
        work: impl FnOnce(&Transaction) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.write_with(Flush::Later, work)
    }

    fn write_with<T, E>(
        &self,
        flush: Flush,
        work: impl FnOnce(&Transaction) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut conn = self.connection()?;
        if flush == Flush::Later {
            conn.execute_batch("PRAGMA synchronous = NORMAL")
                .map_err(|e| self.fail(e))?;
        }
        let outcome = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => match work(&tx) {
                Ok(value) => tx.commit().map(|()| value).map_err(|e| self.fail(e).into()),
                Err(e) => Err(e),
            },
            Err(e) => Err(self.fail(e).into()),
        };
        // The connection goes back to the pool: back to the house setting whatever happened.
        if flush == Flush::Later {
            if let Err(e) = conn.execute_batch("PRAGMA synchronous = FULL") {
                tracing::error!(db = %self.path.display(), error = %e, "could not restore synchronous=FULL");
                return Err(self.fail(e).into());
            }
        }
        outcome
    }

    /// Puts every committed transaction on the disk: `fdatasync` of the write-ahead log, or of the
    /// database file when SQLite has checkpointed the log into it and removed it.
    pub fn sync_wal(&self) -> Result<(), DbError> {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let file = match std::fs::File::open(&wal) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::File::open(&self.path),
            opened => opened,
        };
        file.and_then(|f| f.sync_data()).map_err(|e| {
            crate::metrics::global().db_error();
            DbError::Sync {
                path: self.path.clone(),
                detail: e.to_string(),
            }
        })
    }

    /// Classifies and counts a failure.
    pub fn fail(&self, e: rusqlite::Error) -> DbError {
        crate::metrics::global().db_error();
        DbError::classify(&self.path, e)
    }

    /// Checkpoints the WAL into the main file; called when a database is closed at shutdown.
    pub fn checkpoint(&self) -> Result<(), DbError> {
        let conn = self.connection()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.fail(e))
    }
}

/// Runs blocking database (or other CPU/disk) work off the async workers.
/// A panic in `work` becomes an internal error instead of taking the worker down.
pub async fn run_blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Into::into),
        Err(join) => Err(ApiError::internal(format!("blocking task failed: {join}"))),
    }
}

/// Fsyncs a directory so that a rename or file creation inside it survives a crash.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sets_wal_and_pragmas_and_write_commits_or_rolls_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = open_connection(&path, OpenMode::CreateIfMissing, Duration::from_secs(1))
            .expect("create");
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .expect("table");
        drop(conn);
        let db = Database::open(&path, &DbOptions::new(1000, 2)).expect("open");
        let (mode, fk, sync): (String, i64, i64) = db
            .read(|c| {
                Ok((
                    c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                    c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
                    c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                ))
            })
            .expect("read");
        assert_eq!((mode.as_str(), fk, sync), ("wal", 1, 2));

        db.write(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])
                .map_err(DbError::from)
        })
        .expect("commit");
        let failed: Result<(), DbError> = db.write(|tx| {
            tx.execute("INSERT INTO t VALUES (2)", [])?;
            tx.execute("INSERT INTO t VALUES (NULL)", [])?;
            Ok(())
        });
        assert!(failed.is_err());
        let count: i64 = db
            .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .expect("count");
        assert_eq!(count, 1, "the failed transaction left nothing behind");
    }

    #[test]
    fn garbage_file_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.db");
        std::fs::write(&path, vec![0x42u8; 8192]).expect("write");
        let err = open_connection(&path, OpenMode::MustExist, Duration::from_secs(1))
            .expect_err("corrupt");
        assert!(matches!(err, DbError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("restore it from a backup"));
    }
}
