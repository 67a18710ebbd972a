//! Restoring one tenant in place, from a backup of this same installation, while the server is stopped.
//!
//! The tenant's files are written and checked in `tenants/.restoring-<id>` (same file system), then
//! swapped in with two renames: the live directory becomes `tenants/.replaced-<id>-<unix time>`, which
//! is kept until the next successful start ([`remove_replaced`]), and the restored one takes its
//! name. Other tenants and the system database are not touched. The caller migrates the restored
//! database forward and rebuilds its search index.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{check_database, read_records, safe_relative, BackupError, Checked};
use crate::tenancy::TenantId;

const RESTORING_PREFIX: &str = ".restoring-";
const REPLACED_PREFIX: &str = ".replaced-";

/// What an in-place restore did.
#[derive(Debug)]
pub struct TenantRestored {
    pub checked: Checked,
    /// Where the tenant's previous files are kept until the next successful start.
    pub replaced: PathBuf,
    /// Files of the tenant written (its database and documents).
    pub files: usize,
}

/// Restores tenant `id` of `data_dir` from `file`. The caller holds the data directory lock (the
/// server is stopped). Refuses a backup of another installation and a tenant this installation does
/// not have (restore the whole backup with `--into` for that).
pub fn restore_tenant(
    file: &Path,
    passphrase: &str,
    data_dir: &Path,
    id: &TenantId,
) -> Result<TenantRestored, BackupError> {
    let header = super::read_header(file)?;
    let system_db = crate::db::system::system_db_path(data_dir);
    let conn = rusqlite::Connection::open_with_flags(
        &system_db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let installation = crate::db::system::read_instance(&conn)?
        .map(|i| i.installation_id)
        .unwrap_or_default();
    if header.installation_id != installation {
        return Err(BackupError::Invalid(format!(
            "this backup was made by another installation ({}; this one is {installation}): restore it whole with --into DIR",
            header.installation_id
        )));
    }
    let known: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?1)",
        [id.as_str()],
        |r| r.get(0),
    )?;
    drop(conn);
    if !known {
        return Err(BackupError::Invalid(format!(
            "this installation has no tenant {id}: a deleted tenant comes back only with a whole restore (--into DIR)"
        )));
    }

    let tenants = data_dir.join("tenants");
    let live = tenants.join(id.as_str());
    let staging = tenants.join(format!("{RESTORING_PREFIX}{id}"));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    let prefix = format!("tenants/{id}/");
    let mut files = 0usize;
    let result = (|| {
        let checked = read_records(file, passphrase, |path, content| {
            match path.strip_prefix(&prefix) {
                Some(rest) => {
                    let target = staging.join(safe_relative(rest)?);
                    if let Some(parent) = target.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    let mut out = File::create(&target)?;
                    io::copy(content, &mut out)?;
                    out.sync_all()?;
                    files += 1;
                }
                // Every other entry is still read, so that its hash is checked too.
                None => {
                    io::copy(content, &mut io::sink())?;
                }
            }
            Ok(())
        })?;
        let db = format!("{prefix}tenant.db");
        let info = checked
            .manifest
            .databases
            .iter()
            .find(|d| d.path == db)
            .ok_or_else(|| {
                BackupError::Invalid(format!(
                    "this backup has no tenant {id} (it was made before the tenant existed)"
                ))
            })?;
        check_database(&staging.join("tenant.db"), info)?;
        Ok(checked)
    })();
    let checked = match result {
        Ok(checked) => checked,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // A restored database never comes with a write-ahead log; none may be picked up from elsewhere.
    for stale in ["tenant.db-wal", "tenant.db-shm", "tenant.db-journal"] {
        let _ = fs::remove_file(staging.join(stale));
    }
    let replaced = tenants.join(format!(
        "{REPLACED_PREFIX}{id}-{}",
        crate::time_util::now_utc().unix_timestamp()
    ));
    if live.exists() {
        fs::rename(&live, &replaced)?;
    }
    if let Err(e) = fs::rename(&staging, &live) {
        // Put the live tenant back rather than leave it missing.
        let _ = fs::rename(&replaced, &live);
        let _ = fs::remove_dir_all(&staging);
        return Err(e.into());
    }
    crate::db::fsync_dir(&tenants)?;
    Ok(TenantRestored {
        checked,
        replaced,
        files,
    })
}

/// Removes the tenant directories set aside by in-place restores (and staging left by an interrupted
/// one). Called once the server has started successfully on the restored data.
pub fn remove_replaced(data_dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let tenants = data_dir.join("tenants");
    let mut removed = Vec::new();
    if !tenants.is_dir() {
        return Ok(removed);
    }
    for entry in fs::read_dir(&tenants)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if (name.starts_with(REPLACED_PREFIX) || name.starts_with(RESTORING_PREFIX))
            && entry.file_type()?.is_dir()
        {
            fs::remove_dir_all(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}
