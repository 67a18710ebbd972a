//! `enclave backup export-secrets | import-secrets`: the instance key, which data backups leave out,
//! in a file of its own — always encrypted, in the backup archive format with kind `secrets`.
//!
//! The instance key (`<data>/instance-key.pk8`) opens every secret sealed in the databases (directory
//! service passwords, provider API keys) and signs licence activation requests. Keeping it out of data
//! backups means a stolen data backup and its passphrase still do not reveal those secrets; keeping
//! this export somewhere else (a password manager, a safe) is what makes a full disaster recovery
//! possible. The licence itself is signed and bound to the installation id: it is restored with
//! `system.db` and needs no export.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::archive::{self, Header};
use super::{read_records, write_archive, BackupError, Checked};
use crate::license::manager::INSTANCE_KEY_FILE;

/// The `kind` in the header of a secrets export.
pub const SECRETS_KIND: &str = "secrets";

/// The installation id recorded in `data_dir`'s system database (empty when there is none).
fn installation_id(data_dir: &Path) -> Result<String, BackupError> {
    let path = crate::db::system::system_db_path(data_dir);
    if !path.is_file() {
        return Ok(String::new());
    }
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(crate::db::system::read_instance(&conn)?
        .map(|i| i.installation_id)
        .unwrap_or_default())
}

/// Writes `data_dir`'s secrets into the new file `out` (refused if it exists).
pub fn export(data_dir: &Path, out: &Path, passphrase: &str) -> Result<Checked, BackupError> {
    super::check_passphrase(passphrase)?;
    if !crate::db::system::system_db_path(data_dir).is_file() {
        return Err(BackupError::Invalid(format!(
            "{} holds no Enclave data (no system.db): point --data-dir at the installation",
            data_dir.display()
        )));
    }
    // The key is made on first use; exporting it before then fixes it for later use.
    crate::license::manager::load_or_create_instance_key(data_dir)
        .map_err(|e| BackupError::Invalid(format!("the instance key: {e}")))?;
    let key = data_dir.join(INSTANCE_KEY_FILE);
    if out.exists() {
        return Err(BackupError::Invalid(format!(
            "{} exists: choose a new file name",
            out.display()
        )));
    }
    let header = Header::new(
        &crate::time_util::now_rfc3339(),
        &installation_id(data_dir)?,
        SECRETS_KIND,
    );
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let written = write_archive(
        &partial,
        passphrase,
        header.clone(),
        archive::PBKDF2_ITERATIONS,
        vec![(INSTANCE_KEY_FILE.to_string(), key)],
        Vec::new(),
    );
    let (manifest, content_bytes) = match written {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    restrict(&partial)?;
    fs::rename(&partial, out)?;
    Ok(Checked {
        header,
        manifest,
        content_bytes,
    })
}

/// What [`import`] did with the instance key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    Written,
    AlreadyThere,
}

/// Puts the instance key of the export `file` into `data_dir` (mode 0600). An existing, different key
/// is replaced only with `replace` (it is what opens the secrets sealed by that installation).
pub fn import(
    file: &Path,
    passphrase: &str,
    data_dir: &Path,
    replace: bool,
) -> Result<Imported, BackupError> {
    let mut key: Option<Vec<u8>> = None;
    let checked = read_records(file, passphrase, |path, content| {
        let mut bytes = Vec::new();
        content.read_to_end(&mut bytes)?;
        if path == INSTANCE_KEY_FILE {
            key = Some(bytes);
        }
        Ok(())
    })?;
    if checked.header.kind != SECRETS_KIND {
        return Err(BackupError::Invalid(format!(
            "{} is a {} backup, not a secrets export",
            file.display(),
            checked.header.kind
        )));
    }
    let key = key.ok_or_else(|| BackupError::Invalid("the export holds no instance key".into()))?;
    let here = installation_id(data_dir)?;
    if !here.is_empty() && here != checked.header.installation_id {
        return Err(BackupError::Invalid(format!(
            "these secrets belong to installation {}, but {} is installation {here}",
            checked.header.installation_id,
            data_dir.display()
        )));
    }
    let target = data_dir.join(INSTANCE_KEY_FILE);
    if let Ok(existing) = fs::read(&target) {
        if existing == key {
            return Ok(Imported::AlreadyThere);
        }
        if !replace {
            return Err(BackupError::Invalid(format!(
                "{} already has a different instance key; pass --replace to overwrite it (secrets sealed with it will no longer open)",
                data_dir.display()
            )));
        }
    }
    fs::create_dir_all(data_dir)?;
    let temporary = data_dir.join(format!(".{INSTANCE_KEY_FILE}.import"));
    {
        let mut out = File::create(&temporary)?;
        restrict(&temporary)?;
        out.write_all(&key)?;
        out.sync_all()?;
    }
    fs::rename(&temporary, &target)?;
    crate::db::fsync_dir(data_dir)?;
    Ok(Imported::Written)
}

fn restrict(path: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}
