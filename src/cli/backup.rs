//! `enclave backup now|list|verify|restore`: encrypted backups from the command line (see
//! [`crate::backup`]). `now` is safe while the server runs (SQLite's online backup); `restore` writes a
//! new data directory, migrates it forward and rebuilds its search indexes, ready for `enclave serve
//! --data-dir`.
//!
//! The passphrase comes from `ENCLAVE_BACKUP_PASSPHRASE` or `--passphrase-file`, never from the
//! command line (where `ps` and shell histories would keep it).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;
use crate::backup::{self, BackupError, Kind};
use crate::config::LoadedConfig;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up the data directory now: every database (consistent while the server runs), the
    /// tenants' files, and a manifest, compressed and encrypted into one file.
    Now {
        /// Where to write it [default: <data>/backups].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// A file holding the passphrase [default: $ENCLAVE_BACKUP_PASSPHRASE].
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// List the finished backups in a directory, newest first.
    List {
        /// The directory [default: <data>/backups].
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
    /// Restore a backup into a new (or empty) data directory: decrypt, verify, write, migrate
    /// forward, rebuild the search indexes. Then start with `enclave serve --data-dir DIR`.
    Restore {
        file: PathBuf,
        /// The data directory to create.
        #[arg(long, value_name = "DIR")]
        into: PathBuf,
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
}

fn failed(e: BackupError) -> CliError {
    CliError::Usage(e.to_string())
}

pub fn run(loaded: LoadedConfig, command: &BackupCommand) -> Result<ExitCode, CliError> {
    super::init_cli_logging(&loaded);
    let data_dir = loaded.config.storage.data_dir.clone();
    match command {
        BackupCommand::Now {
            out,
            passphrase_file,
        } => {
            let passphrase = backup::passphrase(passphrase_file.as_deref()).map_err(failed)?;
            let out = out.clone().unwrap_or_else(|| data_dir.join("backups"));
            let started = std::time::Instant::now();
            let created =
                backup::create(&data_dir, &out, &passphrase, Kind::Manual).map_err(failed)?;
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
            let dir = dir.clone().unwrap_or_else(|| data_dir.join("backups"));
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
            let passphrase = backup::passphrase(passphrase_file.as_deref()).map_err(failed)?;
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
        BackupCommand::Restore {
            file,
            into,
            passphrase_file,
        } => {
            let passphrase = backup::passphrase(passphrase_file.as_deref()).map_err(failed)?;
            let checked = backup::restore(file, &passphrase, into).map_err(failed)?;
            println!(
                "restored {} files ({} bytes) of the backup made {} into {}",
                checked.manifest.entries.len(),
                checked.content_bytes,
                checked.header.created_at,
                into.display()
            );
            let mut restored = loaded;
            restored.config.storage.data_dir = into.clone();
            // Older schemas are brought forward now, so the indexes can be rebuilt from them.
            super::migrate(restored.clone(), false)?;
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
                "ready: enclave serve --data-dir {} (the models and secrets are not in backups: copy the models directory and the instance key if you have them)",
                into.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
