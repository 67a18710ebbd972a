//! Upgrading an installation's databases to this binary's schemas, safely.
//!
//! `enclave serve` and `enclave migrate` come here before anything else opens a database. When an
//! existing installation has migrations to apply (a new binary on old data), the order is:
//! 1. a **pre-upgrade backup** (kind `pre-upgrade`, never pruned) into the configured backup directory,
//!    unless the caller names one it has just taken (`migrate --backup-taken`, used by install.sh) or
//!    the operator explicitly skips it (`migrate --no-backup`); without a backup passphrase the upgrade
//!    is refused rather than run unprotected;
//! 2. a **trial** of every pending migration of every database, each rolled back, so that a migration
//!    failing on one tenant cannot leave the system database and the other tenants migrated;
//! 3. the migrations, database by database (system first), each in its own transaction.
//!
//! A failure in step 2 leaves every database exactly as it was; the error says so and names the
//! backup. A failure in step 3 (disk full, I/O) can leave some databases migrated: the error names the
//! pre-upgrade backup to restore. A fresh data directory (no `system.db`) is created, not upgraded.

use std::path::{Path, PathBuf};

use crate::backup::{self, BackupError, Kind};
use crate::config::BackupConfig;
use crate::db::migrate::{MigrateError, MigrationReport, MigrationSet};
use crate::db::system::system_db_path;
use crate::db::{open_connection, DbError, DbOptions, OpenMode};
use crate::tenancy::{tenant_db_path, TenantId};

/// What protects the upgrade.
#[derive(Debug, Clone, Copy)]
pub enum PreUpgradeBackup<'a> {
    /// Take a backup with these settings (directory, passphrase file) when migrations are pending.
    Take(&'a BackupConfig),
    /// The caller has just taken this pre-upgrade backup of this installation.
    Taken(&'a Path),
    /// The data was just restored from this backup, which therefore covers it.
    RestoredFrom(&'a Path),
    /// The operator accepted running without one (`enclave migrate --no-backup`).
    Skip,
}

/// Why an upgrade did not happen (or did not finish). Every message says what state the data is in.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(
        "{pending} migration(s) are pending ({summary}) and an upgrade never runs without a backup, but no backup \
         passphrase is configured: set [backup] passphrase_file (or ENCLAVE_BACKUP_PASSPHRASE) and start again, or run \
         `enclave migrate --no-backup` to accept the risk; nothing was changed"
    )]
    NoPassphrase { pending: usize, summary: String },
    #[error("the pre-upgrade backup failed, so nothing was migrated: {0}")]
    Backup(BackupError),
    #[error("the pre-upgrade backup {path} cannot be used: {reason}; nothing was changed")]
    BadBackup { path: String, reason: String },
    #[error("{source}; the upgrade was stopped before changing anything: every database is as it was{}", backup_note(.backup))]
    Refused {
        source: MigrateError,
        backup: Option<PathBuf>,
    },
    #[error(
        "{source}; databases migrated before this one are at the new schema: stop Enclave and restore the pre-upgrade backup{}",
        backup_note(.backup)
    )]
    Interrupted {
        source: MigrateError,
        backup: Option<PathBuf>,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

fn backup_note(backup: &Option<PathBuf>) -> String {
    match backup {
        Some(path) => format!(" (pre-upgrade backup: {})", path.display()),
        None => " (no pre-upgrade backup was taken)".into(),
    }
}

impl From<MigrateError> for UpgradeError {
    fn from(e: MigrateError) -> Self {
        UpgradeError::Refused {
            source: e,
            backup: None,
        }
    }
}

/// What an upgrade did.
#[derive(Debug, Clone, Default)]
pub struct UpgradeReport {
    /// The system database's migrations.
    pub system: Option<MigrationReport>,
    /// The system database was created here (a fresh installation, nothing to back up).
    pub created: bool,
    pub tenants: Vec<(String, MigrationReport)>,
    /// The pre-upgrade backup, when migrations were applied.
    pub backup: Option<PathBuf>,
}

impl UpgradeReport {
    /// How many databases got new migrations.
    pub fn migrated(&self) -> usize {
        self.system
            .iter()
            .chain(self.tenants.iter().map(|(_, r)| r))
            .filter(|r| !r.applied.is_empty())
            .count()
    }
}

/// One database of the installation and the migrations it needs.
struct Pending {
    label: String,
    path: PathBuf,
    set: MigrationSet,
    count: usize,
}

/// Brings every database of `data_dir` to this binary's schemas (see the module doc). The caller
/// holds the data directory lock.
pub fn upgrade(
    data_dir: &Path,
    options: &DbOptions,
    protection: PreUpgradeBackup<'_>,
) -> Result<UpgradeReport, UpgradeError> {
    upgrade_with(
        data_dir,
        options,
        protection,
        MigrationSet::system()?,
        MigrationSet::tenant()?,
    )
}

/// [`upgrade`] with explicit migration sets (tests bring failing ones).
fn upgrade_with(
    data_dir: &Path,
    options: &DbOptions,
    protection: PreUpgradeBackup<'_>,
    system_set: MigrationSet,
    tenant_set: MigrationSet,
) -> Result<UpgradeReport, UpgradeError> {
    let system_path = system_db_path(data_dir);
    if !system_path.exists() {
        let report = crate::db::system::migrate_system(data_dir, options, false)?;
        tracing::info!(
            schema = report.to,
            "new installation: system database created"
        );
        return Ok(UpgradeReport {
            system: Some(report),
            created: true,
            ..UpgradeReport::default()
        });
    }
    let plan = plan(data_dir, options, system_set, tenant_set)?;
    let pending: usize = plan.iter().map(|p| p.count).sum();
    if pending == 0 {
        return Ok(UpgradeReport {
            system: Some(MigrationReport::current(&plan[0].set)),
            tenants: plan[1..]
                .iter()
                .map(|p| (p.label.clone(), MigrationReport::current(&p.set)))
                .collect(),
            backup: None,
            created: false,
        });
    }
    let summary = plan
        .iter()
        .filter(|p| p.count > 0)
        .map(|p| format!("{} {}", p.label, p.count))
        .collect::<Vec<_>>()
        .join(", ");
    tracing::info!(pending, databases = %summary, "migrations are pending: upgrading");

    let backup = match protection {
        PreUpgradeBackup::Take(config) => {
            let passphrase =
                backup::service::passphrase(config).map_err(|_| UpgradeError::NoPassphrase {
                    pending,
                    summary: summary.clone(),
                })?;
            let dir = config.dir_for(data_dir);
            tracing::info!(dir = %dir.display(), "taking the pre-upgrade backup");
            let created = backup::create(data_dir, &dir, &passphrase, Kind::PreUpgrade)
                .map_err(UpgradeError::Backup)?;
            tracing::info!(file = %created.path.display(), bytes = created.bytes, "pre-upgrade backup written");
            Some(created.path)
        }
        PreUpgradeBackup::Taken(path) => {
            check_taken(data_dir, path)?;
            Some(path.to_path_buf())
        }
        PreUpgradeBackup::RestoredFrom(path) => Some(path.to_path_buf()),
        PreUpgradeBackup::Skip => {
            tracing::warn!("upgrading without a pre-upgrade backup, as asked (--no-backup)");
            None
        }
    };

    // The trial: every database, every pending step, rolled back.
    for p in plan.iter().filter(|p| p.count > 0) {
        let mut conn = open_connection(&p.path, OpenMode::MustExist, options.busy_timeout)?;
        p.set
            .trial(&mut conn, &p.path)
            .map_err(|source| UpgradeError::Refused {
                source,
                backup: backup.clone(),
            })?;
    }

    let mut report = UpgradeReport {
        backup: backup.clone(),
        ..UpgradeReport::default()
    };
    for (index, p) in plan.iter().enumerate() {
        let applied = if p.count == 0 {
            MigrationReport::current(&p.set)
        } else {
            let mut conn = open_connection(&p.path, OpenMode::MustExist, options.busy_timeout)?;
            p.set
                .apply(&mut conn, &p.path)
                .map_err(|source| UpgradeError::Interrupted {
                    source,
                    backup: backup.clone(),
                })?
        };
        if index == 0 {
            report.system = Some(applied);
        } else {
            report.tenants.push((p.label.clone(), applied));
        }
    }
    Ok(report)
}

/// The system database first, then every tenant database it lists, with their pending counts.
fn plan(
    data_dir: &Path,
    options: &DbOptions,
    system_set: MigrationSet,
    tenant_set: MigrationSet,
) -> Result<Vec<Pending>, UpgradeError> {
    let system_path = system_db_path(data_dir);
    let conn = open_connection(&system_path, OpenMode::MustExist, options.busy_timeout)?;
    let count = system_set.pending(&conn, &system_path)?.len();
    // Only the `id` column: it exists at every schema version, whatever this upgrade adds.
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM tenants ORDER BY id")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .map_err(|e| DbError::classify(&system_path, e))?;
    drop(conn);
    let mut plan = vec![Pending {
        label: "system.db".into(),
        path: system_path,
        set: system_set,
        count,
    }];
    for id in ids {
        let Ok(tenant) = TenantId::parse(&id) else {
            tracing::warn!(tenant = %id, "a tenant id that does not parse is skipped");
            continue;
        };
        let path = tenant_db_path(data_dir, &tenant);
        let conn = open_connection(&path, OpenMode::MustExist, options.busy_timeout)?;
        let count = tenant_set.pending(&conn, &path)?.len();
        plan.push(Pending {
            label: format!("tenant {id}"),
            path,
            set: tenant_set.clone(),
            count,
        });
    }
    Ok(plan)
}

/// A backup named by `--backup-taken` must be a finished pre-upgrade backup of this installation.
fn check_taken(data_dir: &Path, path: &Path) -> Result<(), UpgradeError> {
    let bad = |reason: String| UpgradeError::BadBackup {
        path: path.display().to_string(),
        reason,
    };
    let header = backup::read_header(path).map_err(|e| bad(e.to_string()))?;
    if header.kind != Kind::PreUpgrade.as_str() {
        return Err(bad(format!(
            "it is a {} backup, not a pre-upgrade one",
            header.kind
        )));
    }
    let conn = rusqlite::Connection::open_with_flags(
        system_db_path(data_dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| bad(e.to_string()))?;
    let installation = crate::db::system::read_instance(&conn)
        .map_err(|e| bad(e.to_string()))?
        .map(|i| i.installation_id)
        .unwrap_or_default();
    if header.installation_id != installation {
        return Err(bad(format!(
            "it was made for installation {}, this is {installation}",
            header.installation_id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::migrate::Migration;
    use std::borrow::Cow;

    const PASSPHRASE: &str = "upgrade test passphrase";

    /// An installation at the current schemas with two tenants.
    fn installation() -> (tempfile::TempDir, DbOptions) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = DbOptions::new(2000, 2);
        let report =
            upgrade(dir.path(), &options, PreUpgradeBackup::Skip).expect("fresh installation");
        assert!(report.created, "created, not upgraded");
        assert!(report.backup.is_none());
        let system = crate::db::system::SystemDb::open(dir.path(), &options).expect("open");
        for id in ["acme", "beta"] {
            crate::tenancy::create_tenant(
                &system,
                dir.path(),
                &TenantId::parse(id).expect("id"),
                id,
                &options,
                &crate::audit::Actor::cli(),
                &crate::license::enforce::unlimited_for_tests(),
            )
            .expect("tenant");
        }
        (dir, options)
    }

    /// The embedded set with one more step.
    fn plus(set: MigrationSet, sql: &'static str) -> MigrationSet {
        let kind = set.kind();
        let mut steps: Vec<Migration> = (1..=set.latest())
            .map(|v| set.step(v).expect("step").clone())
            .collect();
        steps.push(Migration {
            version: set.latest() + 1,
            name: "next".into(),
            sql: Cow::Borrowed(sql),
        });
        MigrationSet::from_parts(kind, steps).expect("set")
    }

    fn versions(dir: &Path) -> Vec<u32> {
        let mut paths = vec![system_db_path(dir)];
        for id in ["acme", "beta"] {
            paths.push(tenant_db_path(dir, &TenantId::parse(id).expect("id")));
        }
        paths
            .iter()
            .map(|p| {
                let conn = rusqlite::Connection::open(p).expect("open");
                MigrationSet::current_version(&conn, "db").expect("version")
            })
            .collect()
    }

    fn backup_config(dir: &Path) -> (BackupConfig, PathBuf) {
        let file = dir.join("passphrase");
        std::fs::write(&file, PASSPHRASE).expect("write");
        let config = BackupConfig {
            passphrase_file: Some(file),
            dir: Some(dir.join("backups")),
            ..BackupConfig::default()
        };
        (config, dir.join("backups"))
    }

    #[test]
    fn a_migration_failing_on_one_tenant_leaves_every_database_as_it_was() {
        let (dir, options) = installation();
        let before = versions(dir.path());
        let (config, backups) = backup_config(dir.path());
        let system = plus(
            MigrationSet::system().expect("set"),
            "CREATE TABLE upgraded (x);",
        );
        let tenant = plus(
            MigrationSet::tenant().expect("set"),
            "CREATE TABLE upgraded (x); INSERT INTO missing_table VALUES (1);",
        );
        let error = upgrade_with(
            dir.path(),
            &options,
            PreUpgradeBackup::Take(&config),
            system,
            tenant,
        )
        .expect_err("the tenant migration fails");
        let message = error.to_string();
        assert!(
            matches!(
                error,
                UpgradeError::Refused {
                    backup: Some(_),
                    ..
                }
            ),
            "{message}"
        );
        assert!(message.contains("every database is as it was"), "{message}");
        assert!(message.contains("pre-upgrade backup:"), "{message}");
        // Nothing changed, the system database included, although its own step succeeded.
        assert_eq!(versions(dir.path()), before);
        let listed = crate::backup::list(&backups).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].header.as_ref().map(|h| h.kind.as_str()),
            Some("pre-upgrade")
        );
        crate::backup::verify(&listed[0].path, PASSPHRASE).expect("the backup is sound");
    }

    #[test]
    fn pending_migrations_need_a_backup_and_then_apply_everywhere() {
        let (dir, options) = installation();
        let before = versions(dir.path());
        let sets = || {
            (
                plus(
                    MigrationSet::system().expect("set"),
                    "CREATE TABLE upgraded (x);",
                ),
                plus(
                    MigrationSet::tenant().expect("set"),
                    "CREATE TABLE upgraded (x);",
                ),
            )
        };
        // No passphrase: refused before anything happens.
        let (system, tenant) = sets();
        let unprotected = BackupConfig {
            passphrase_file: Some(dir.path().join("no-such-file")),
            ..BackupConfig::default()
        };
        let error = upgrade_with(
            dir.path(),
            &options,
            PreUpgradeBackup::Take(&unprotected),
            system,
            tenant,
        )
        .expect_err("no passphrase");
        assert!(
            matches!(error, UpgradeError::NoPassphrase { pending: 3, .. }),
            "{error}"
        );
        assert_eq!(versions(dir.path()), before);
        // A backup named by the caller must be a pre-upgrade backup of this installation.
        let (config, backups) = backup_config(dir.path());
        let manual = crate::backup::create(
            dir.path(),
            &backups,
            PASSPHRASE,
            crate::backup::Kind::Manual,
        )
        .expect("manual backup");
        let (system, tenant) = sets();
        let error = upgrade_with(
            dir.path(),
            &options,
            PreUpgradeBackup::Taken(&manual.path),
            system,
            tenant,
        )
        .expect_err("not a pre-upgrade backup");
        assert!(matches!(error, UpgradeError::BadBackup { .. }), "{error}");
        // With the backup: every database gets the step.
        let (system, tenant) = sets();
        let report = upgrade_with(
            dir.path(),
            &options,
            PreUpgradeBackup::Take(&config),
            system,
            tenant,
        )
        .expect("upgrade");
        assert_eq!(report.migrated(), 3);
        assert!(report.backup.is_some());
        assert_eq!(
            versions(dir.path()),
            before.iter().map(|v| v + 1).collect::<Vec<_>>()
        );
    }
}
