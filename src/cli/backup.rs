//! `enclave backup now|list|verify|restore`: encrypted backups from the command line (see
//! [`crate::backup`]). `now` is safe while the server runs (SQLite's online backup); `restore` writes a
//! new data directory, migrates it forward and rebuilds its search indexes, ready for `enclave serve
//! --data-dir`.
//!
//! The passphrase comes from `ENCLAVE_BACKUP_PASSPHRASE` or `--passphrase-file`, never from the
//! command line (where `ps` and shell histories would keep it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;
use crate::backup::{self, BackupError, Kind};
use crate::config::{BackupConfig, LoadedConfig};

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up the data directory now: every database (consistent while the server runs), the
    /// tenants' files, and a manifest, compressed and encrypted into one file.
    Now {
        /// Where to write it [default: the configured [backup] dir, else <data>/backups].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// A file holding the passphrase [default: $ENCLAVE_BACKUP_PASSPHRASE, else the configured
        /// [backup] passphrase_file].
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Label it a pre-upgrade backup (never pruned; what install.sh takes before an upgrade).
        #[arg(long)]
        pre_upgrade: bool,
    },
    /// List the finished backups in a directory, newest first.
    List {
        /// The directory [default: the configured [backup] dir, else <data>/backups].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt a backup and check every file's SHA-256 and every database's integrity, without
    /// touching live data.
    Verify {
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Write the instance key (left out of data backups; it opens the secrets sealed in the
    /// databases) into a separate encrypted file. Keep it apart from the backups.
    ExportSecrets {
        /// The file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Put the instance key from a secrets export into the data directory (after a restore).
    ImportSecrets {
        file: PathBuf,
        /// Replace a different instance key already there.
        #[arg(long)]
        replace: bool,
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Restore a backup: the whole installation into a new (or empty) data directory (`--into`), or
    /// one tenant of this installation in place (`--tenant`, with the server stopped). Decrypts,
    /// verifies, writes, migrates forward and rebuilds the search indexes.
    Restore {
        file: PathBuf,
        /// The data directory to create (disaster recovery). Start it with `enclave serve --data-dir DIR`.
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "tenant",
            conflicts_with = "tenant"
        )]
        into: Option<PathBuf>,
        /// Restore only this tenant, in place, from a backup of this installation. The tenant's
        /// current files are kept aside until the next successful start; other tenants are untouched.
        #[arg(long, value_name = "ID")]
        tenant: Option<String>,
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
}

fn failed(e: BackupError) -> CliError {
    CliError::Usage(e.to_string())
}

/// The passphrase: `--passphrase-file`, else `ENCLAVE_BACKUP_PASSPHRASE`, else the configured file.
fn passphrase(flag: Option<&Path>, config: &BackupConfig) -> Result<String, CliError> {
    let from_env = std::env::var_os(crate::config::env::BACKUP_PASSPHRASE).is_some();
    let file = match (flag, &config.passphrase_file) {
        (Some(flag), _) => Some(flag),
        (None, Some(configured)) if !from_env => Some(configured.as_path()),
        _ => None,
    };
    backup::passphrase(file).map_err(failed)
}

pub fn run(loaded: LoadedConfig, command: &BackupCommand) -> Result<ExitCode, CliError> {
    super::init_cli_logging(&loaded);
    let data_dir = loaded.config.storage.data_dir.clone();
    let settings = &loaded.config.backup;
    match command {
        BackupCommand::Now {
            out,
            passphrase_file,
            pre_upgrade,
        } => {
            let passphrase = passphrase(passphrase_file.as_deref(), settings)?;
            let out = out.clone().unwrap_or_else(|| settings.dir_for(&data_dir));
            let kind = if *pre_upgrade {
                Kind::PreUpgrade
            } else {
                Kind::Manual
            };
            let started = std::time::Instant::now();
            let created = backup::create(&data_dir, &out, &passphrase, kind).map_err(failed)?;
            println!(
                "backup written: {} ({} bytes from {} bytes in {} files, {} databases) in {:.1} s",
                created.path.display(),
                created.bytes,
                created.content_bytes,
                created.entries,
                created.databases,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::List { dir, json } => {
            let dir = dir.clone().unwrap_or_else(|| settings.dir_for(&data_dir));
            let listed = backup::list(&dir).map_err(failed)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&listed).unwrap_or_default()
                );
            } else if listed.is_empty() {
                println!("no backups in {}", dir.display());
            } else {
                for b in &listed {
                    let (at, kind) = b.header.as_ref().map_or(("?", "unreadable"), |h| {
                        (h.created_at.as_str(), h.kind.as_str())
                    });
                    println!(
                        "{at}  {kind:<11}  {:>12} bytes  {}",
                        b.bytes,
                        b.path.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Verify {
            file,
            passphrase_file,
        } => {
            let passphrase = passphrase(passphrase_file.as_deref(), settings)?;
            let checked = backup::verify(file, &passphrase).map_err(failed)?;
            println!(
                "backup OK: {} files ({} bytes), {} databases pass their integrity check; made {} by Enclave {} for installation {}",
                checked.manifest.entries.len(),
                checked.content_bytes,
                checked.manifest.databases.len(),
                checked.header.created_at,
                checked.header.app_version,
                checked.header.installation_id
            );
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::ExportSecrets {
            out,
            passphrase_file,
        } => {
            let passphrase = passphrase(passphrase_file.as_deref(), settings)?;
            backup::secrets::export(&data_dir, out, &passphrase).map_err(failed)?;
            println!(
                "secrets written: {} (encrypted with the backup passphrase; keep it apart from the backups)",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::ImportSecrets {
            file,
            replace,
            passphrase_file,
        } => {
            let passphrase = passphrase(passphrase_file.as_deref(), settings)?;
            crate::app::prepare_data_dir(&data_dir)?;
            let _lock = crate::app::lock_data_dir(&data_dir)?;
            match backup::secrets::import(file, &passphrase, &data_dir, *replace).map_err(failed)? {
                backup::secrets::Imported::Written => println!(
                    "instance key written to {}",
                    data_dir
                        .join(crate::license::manager::INSTANCE_KEY_FILE)
                        .display()
                ),
                backup::secrets::Imported::AlreadyThere => {
                    println!("this instance key is already in place")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Restore {
            file,
            into,
            tenant,
            passphrase_file,
        } => {
            let passphrase = passphrase(passphrase_file.as_deref(), settings)?;
            match (into, tenant) {
                (Some(into), _) => restore_whole(loaded.clone(), file, &passphrase, into),
                (None, Some(tenant)) => restore_tenant(loaded.clone(), file, &passphrase, tenant),
                (None, None) => Err(CliError::Usage(
                    "give --into DIR (a whole installation) or --tenant ID (one tenant in place)"
                        .into(),
                )),
            }
        }
    }
}

fn restore_whole(
    loaded: LoadedConfig,
    file: &Path,
    passphrase: &str,
    into: &Path,
) -> Result<ExitCode, CliError> {
    let checked = backup::restore(file, passphrase, into).map_err(failed)?;
    println!(
        "restored {} files ({} bytes) of the backup made {} into {}",
        checked.manifest.entries.len(),
        checked.content_bytes,
        checked.header.created_at,
        into.display()
    );
    let mut restored = loaded;
    restored.config.storage.data_dir = into.to_path_buf();
    // Older schemas are brought forward now, so the indexes can be rebuilt from them.
    super::migrate(
        restored.clone(),
        false,
        super::Protection::RestoredFrom(file.to_path_buf()),
    )?;
    for info in checked
        .manifest
        .databases
        .iter()
        .filter(|d| d.kind == "tenant")
    {
        let id = info
            .path
            .trim_start_matches("tenants/")
            .trim_end_matches("/tenant.db");
        super::index_rebuild(restored.clone(), id)?;
    }
    println!(
        "ready: enclave serve --data-dir {} (the models and secrets are not in backups: copy the models directory, and restore the secrets with `enclave backup import-secrets`)",
        into.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn restore_tenant(
    loaded: LoadedConfig,
    file: &Path,
    passphrase: &str,
    tenant: &str,
) -> Result<ExitCode, CliError> {
    let id = crate::tenancy::TenantId::parse(tenant)?;
    let data_dir = loaded.config.storage.data_dir.clone();
    let restored = {
        // The server must be stopped: it would keep the replaced database open.
        let _lock = crate::app::lock_data_dir(&data_dir)?;
        backup::in_place::restore_tenant(file, passphrase, &data_dir, &id).map_err(failed)?
    };
    println!(
        "restored tenant {id} ({} files) from the backup made {}; its previous files are kept in {} until the next successful start",
        restored.files,
        restored.checked.header.created_at,
        restored.replaced.display()
    );
    super::migrate(
        loaded.clone(),
        false,
        super::Protection::RestoredFrom(file.to_path_buf()),
    )?;
    super::index_rebuild(loaded, id.as_str())?;
    println!("ready: start the server again");
    Ok(ExitCode::SUCCESS)
}
