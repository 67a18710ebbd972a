//! The command line: `enclave serve | init | migrate | doctor | version | tenant | user | key | audit |
//! license | models`.
//!
//! Each command loads the configuration the same way (see [`crate::config`]), so `--config`,
//! `--data-dir` and the `ENCLAVE_*` variables mean the same thing everywhere.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app::{self, StartupError};
use crate::config::{self, Config, FlagOverrides, LoadedConfig, LogFormat};
use crate::db::system::{list_tenants, migrate_system, system_db_path, SystemDb};
use crate::db::{open_connection, OpenMode};
use crate::tenancy::{create_tenant, migrate_all_tenants, TenantId};

mod backup;
mod models;

/// Enclave: a private AI platform for your own network, in one binary.
///
/// Start with `enclave serve` (or `enclave init` to write a commented config file first), then open
/// the printed URL in a browser. Settings come from built-in defaults, then the config file, then
/// ENCLAVE_* environment variables, then flags.
#[derive(Debug, Parser)]
#[command(
    name = "enclave",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command understands.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file to read [default: ./enclave.toml if it exists; the service uses /etc/enclave/enclave.toml]
    #[arg(long, global = true, env = config::env::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (databases, tenant files, models) [default: ./data]
    #[arg(long, global = true, env = config::env::DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log level or filter, e.g. `info` or `info,enclave=debug` [default: info]
    #[arg(long, global = true, env = config::env::LOG_LEVEL, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format: `pretty` for a terminal, `json` for log collectors [default: pretty]
    #[arg(long, global = true, env = config::env::LOG_FORMAT, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (migrates databases first). Stops gracefully on SIGTERM or Ctrl-C.
    Serve {
        /// Address and port to listen on, e.g. 0.0.0.0:8080 [default: 127.0.0.1:8080]
        #[arg(long, env = config::env::LISTEN, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create the data directory and its database, and write a commented config file.
    Init {
        /// Where to write the config file [default: the --config path, else ./enclave.toml]
        #[arg(long, value_name = "FILE")]
        config_out: Option<PathBuf>,
        /// Overwrite an existing config file.
        #[arg(long)]
        force: bool,
        /// Only write the config file; do not create the data directory (used by install.sh).
        #[arg(long)]
        config_only: bool,
    },
    /// Apply pending database migrations to system.db and every tenant database.
    ///
    /// The server does this at start-up too; run it by hand to see what an upgrade will change.
    /// Stop the server first: migrate takes the data directory's lock.
    ///
    /// When migrations are pending on existing data, a pre-upgrade backup is taken first (configured
    /// [backup] dir and passphrase), and every migration of every database is tried and rolled back
    /// before any is applied: if one fails, nothing changes.
    Migrate {
        /// Only list the migrations that would run.
        #[arg(long)]
        dry_run: bool,
        /// A pre-upgrade backup of this installation that was just taken (`backup now
        /// --pre-upgrade`), instead of taking another.
        #[arg(long, value_name = "FILE", conflicts_with = "no_backup")]
        backup_taken: Option<PathBuf>,
        /// Migrate without a pre-upgrade backup (you accept the risk).
        #[arg(long)]
        no_backup: bool,
    },
    /// Check the installation (data directory, database integrity, models, disk, clock).
    ///
    /// Exits non-zero when a check fails. Read-only; safe while the server runs.
    Doctor,
    /// Print the version and the database schema versions this binary supports.
    Version,
    /// Manage tenants (each tenant has its own database under <data>/tenants/<id>/).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage local accounts. Works while the server runs.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys of a tenant. Works while the server runs.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Work with the audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The licence: show it, make an activation request, install a licence file, export usage.
    /// Works offline and while the server runs (the server picks a new licence up within a minute).
    #[command(subcommand)]
    License(LicenseCommand),
    /// The local models: list, import (with conversion to a fast format and a load test), verify, remove.
    /// Works without the server; a running server sees the change at its next start.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Encrypted backups: back up now (safe while the server runs), list, verify, restore into a new
    /// data directory. The passphrase comes from ENCLAVE_BACKUP_PASSPHRASE or --passphrase-file.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// The knowledge-base search index of a tenant. Stop the server first: it takes the data
    /// directory's lock.
    #[command(subcommand)]
    Index(IndexCommand),
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Rebuild the tenant's full-text index from its database (the ready documents' segments).
    Rebuild {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Show the edition, state, dates, limits against current usage and features.
    Show {
        /// Print JSON (the same document as GET /api/v1/license).
        #[arg(long)]
        json: bool,
    },
    /// Write a signed activation request to send to the vendor (by file or as a QR code).
    Request {
        /// Write the request to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also print the QR code to the terminal.
        #[arg(long)]
        qr: bool,
    },
    /// Verify and install a licence file. A refused file leaves the current licence active.
    Activate {
        /// The licence file from the vendor.
        file: PathBuf,
    },
    /// Remove the installed licence (the free community plan applies again).
    Remove,
    /// Forget the licence clock's high-water mark after the system clock was set into the future by
    /// mistake and corrected (otherwise that reads as a clock anomaly). Audited.
    ResetClock,
    /// Write the signed usage report (seat counts of the licence period) for true-up.
    UsageReport {
        /// Write the report to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chains of the system audit log and every tenant's audit log.
    ///
    /// Exits 1 and names the first broken entry when an entry was edited, deleted, or removed from the end.
    Verify,
    /// Remove entries older than the retention period now (the server does this daily when
    /// `audit.retention_days` is set). The removal is itself audited and the chain stays verifiable.
    Prune {
        /// Remove entries older than this many days (default: `audit.retention_days`).
        #[arg(long, value_name = "DAYS")]
        older_than_days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key and print it once (store it now: only its hash is kept).
    Create {
        /// Tenant id
        #[arg(long)]
        tenant: String,
        /// What the key is for, e.g. "nightly import"
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: read, write, admin
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Days until the key expires [default: never]
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List a tenant's API keys (never their secrets).
    List {
        /// Tenant id
        #[arg(long)]
        tenant: String,
    },
    /// Revoke an API key at once.
    Revoke {
        /// Tenant id
        #[arg(long)]
        tenant: String,
        /// Key id (from `enclave key list`)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a local account. The password is read from standard input (one line), never from an argument.
    Add {
        /// Username (2-64 of a-z, 0-9, '.', '_', '-', '@')
        name: String,
        /// Make the account a system administrator.
        #[arg(long)]
        system_admin: bool,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Display name [default: the username]
        #[arg(long)]
        display_name: Option<String>,
        /// E-mail address
        #[arg(long)]
        email: Option<String>,
        /// Make the person choose a new password at first sign-in.
        #[arg(long)]
        must_change_password: bool,
    },
    /// Set a new temporary password, print it once, and end the account's sessions.
    /// The person must choose a new password at the next sign-in.
    ResetPassword {
        /// Username
        name: String,
    },
    /// List accounts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant. Works while the server runs.
    Create {
        /// Display name, e.g. "Acme Corp"
        name: String,
        /// Tenant id (2-63 of a-z, 0-9, -) [default: derived from the name, e.g. acme-corp]
        #[arg(long)]
        id: Option<String>,
    },
    /// List tenants.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Purge now every deleted tenant whose grace period has passed (the server also does this every
    /// five minutes). Tenants still in their grace period are left alone.
    Purge,
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Usage(String),
}

// Domain errors reach the user through `StartupError`, whose messages say what to fix.
macro_rules! via_startup_error {
    ($($t:ty),+) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError::Startup(StartupError::from(e))
            }
        }
    )+};
}
via_startup_error!(
    crate::identity::IdentityError,
    crate::config::ConfigError,
    crate::db::DbError,
    crate::tenancy::TenantError,
    std::io::Error
);

impl Cli {
    fn load_config(&self, listen: Option<String>) -> Result<LoadedConfig, CliError> {
        let flags = FlagOverrides {
            data_dir: self.global.data_dir.clone(),
            listen,
            log_level: self.global.log_level.clone(),
            log_format: self.global.log_format,
        };
        Ok(Config::load_from_process(
            self.global.config.as_deref(),
            &flags,
        )?)
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match &cli.command {
        Command::Serve { listen } => serve(cli.load_config(listen.clone())?),
        Command::Init {
            config_out,
            force,
            config_only,
        } => {
            let out = config_out
                .clone()
                .or_else(|| cli.global.config.clone())
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG_FILE));
            init(&cli, &out, *force, *config_only)
        }
        Command::Migrate {
            dry_run,
            backup_taken,
            no_backup,
        } => {
            let protection = match (backup_taken, no_backup) {
                (Some(file), _) => Protection::Taken(file.clone()),
                (None, true) => Protection::Skip,
                (None, false) => Protection::Take,
            };
            migrate(cli.load_config(None)?, *dry_run, protection)
        }
        Command::Doctor => {
            let loaded = cli.load_config(None)?;
            init_cli_logging(&loaded);
            let checks = crate::doctor::run(&loaded.config, loaded.file.as_deref());
            let failed = crate::doctor::print(&checks);
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Version => {
            version();
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant(TenantCommand::Create { name, id }) => {
            tenant_create(cli.load_config(None)?, name, id.as_deref())
        }
        Command::Tenant(TenantCommand::List { json }) => tenant_list(cli.load_config(None)?, *json),
        Command::Tenant(TenantCommand::Purge) => {
            let loaded = cli.load_config(None)?;
            init_cli_logging(&loaded);
            let system = open_system_for_cli(&loaded.config)?;
            let purged = crate::tenancy::lifecycle::purge_due(
                &system,
                &loaded.config.storage.data_dir,
                &crate::audit::Actor::cli(),
            )?;
            println!(
                "{} tenant(s) purged{}",
                purged.len(),
                if purged.is_empty() {
                    String::new()
                } else {
                    format!(": {}", purged.join(", "))
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::User(command) => user_command(cli.load_config(None)?, command),
        Command::Key(command) => key_command(cli.load_config(None)?, command),
        Command::Audit(AuditCommand::Verify) => audit_verify(cli.load_config(None)?),
        Command::Audit(AuditCommand::Prune { older_than_days }) => {
            audit_prune(cli.load_config(None)?, *older_than_days)
        }
        Command::License(command) => license_command(cli.load_config(None)?, command),
        Command::Models(command) => models::run(cli.load_config(None)?, command),
        Command::Backup(command) => backup::run(cli.load_config(None)?, command),
        Command::Index(IndexCommand::Rebuild { tenant }) => {
            index_rebuild(cli.load_config(None)?, tenant)
        }
    }
}

fn index_rebuild(loaded: LoadedConfig, tenant: &str) -> Result<ExitCode, CliError> {
    init_cli_logging(&loaded);
    let data_dir = &loaded.config.storage.data_dir;
    let _lock = app::lock_data_dir(data_dir)?;
    let system = std::sync::Arc::new(open_system_for_cli(&loaded.config)?);
    let id = crate::tenancy::TenantId::parse(tenant)?;
    let registry = crate::tenancy::TenantRegistry::new(
        data_dir.clone(),
        system,
        app::db_options(&loaded.config),
        1,
    );
    let (_, db) = registry.get(&id)?;
    let started = std::time::Instant::now();
    let added = crate::knowledge::ingest::rebuild_index(&db)
        .map_err(|e| CliError::Usage(format!("the index of {id} could not be rebuilt: {e}")))?;
    println!(
        "index of {id} rebuilt: {added} segment(s) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_or_print(out: Option<&PathBuf>, text: &str) -> Result<(), CliError> {
    match out {
        Some(path) => {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", path.display())))?;
            file.write_all(text.as_bytes())?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn license_command(loaded: LoadedConfig, command: &LicenseCommand) -> Result<ExitCode, CliError> {
    init_cli_logging(&loaded);
    let system = std::sync::Arc::new(open_system_for_cli(&loaded.config)?);
    let license = cli_license(&system, &loaded.config)?;
    let license_error = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
    match command {
        LicenseCommand::Show { json } => {
            let info = crate::http::license::info_of(&license, &license.current())?;
            if *json {
                let text = serde_json::to_string_pretty(&info).map_err(|e| license_error(&e))?;
                println!("{text}");
            } else {
                print_license(&info);
            }
        }
        LicenseCommand::Request { out, qr } => {
            let (armored, compact) = license
                .activation_request()
                .map_err(|e| license_error(&e))?;
            write_or_print(out.as_ref(), &armored)?;
            if *qr {
                let code = qrcode::QrCode::with_error_correction_level(
                    compact.as_bytes(),
                    qrcode::EcLevel::L,
                )
                .map_err(|e| license_error(&e))?;
                let image = code
                    .render::<qrcode::render::unicode::Dense1x2>()
                    .quiet_zone(true)
                    .build();
                eprintln!("{image}");
            }
        }
        LicenseCommand::Activate { file } => {
            let text = std::fs::read(file)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let snapshot = license
                .install(&text, &crate::audit::Actor::cli())
                .map_err(|e| license_error(&e))?;
            let info = crate::http::license::info_of(&license, &snapshot)?;
            println!("licence installed");
            print_license(&info);
        }
        LicenseCommand::Remove => {
            let snapshot = license.remove(&crate::audit::Actor::cli())?;
            let info = crate::http::license::info_of(&license, &snapshot)?;
            println!("licence removed");
            print_license(&info);
        }
        LicenseCommand::ResetClock => {
            let snapshot = license.reset_clock(&crate::audit::Actor::cli())?;
            let info = crate::http::license::info_of(&license, &snapshot)?;
            println!("licence clock reset to now");
            print_license(&info);
        }
        LicenseCommand::UsageReport { out } => {
            let report = license.usage_report().map_err(|e| license_error(&e))?;
            write_or_print(out.as_ref(), &report)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_license(info: &crate::http::license::LicenseInfo) {
    let state = serde_json::to_value(&info.status.state)
        .ok()
        .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_string))
        .unwrap_or_default();
    println!("edition:          {}", info.status.edition);
    println!("state:            {state}");
    if let Some(banner) = &info.status.banner {
        println!("                  {}", banner.message);
    }
    println!("installation id:  {}", info.installation_id);
    if let Some(l) = &info.license {
        println!("licence id:       {}", l.license_id);
        println!("customer:         {}", l.customer);
        println!(
            "valid:            {} to {} (+{} days grace)",
            l.starts_at, l.expires_at, l.grace_days
        );
        println!(
            "bound to:         {}",
            l.installation_id
                .as_deref()
                .unwrap_or("any installation (site licence)")
        );
    }
    let limit = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
    println!(
        "users:            {} of {}",
        info.usage.users,
        limit(info.limits.users)
    );
    println!(
        "tenants:          {} of {}",
        info.usage.tenants,
        limit(info.limits.tenants)
    );
    println!(
        "storage:          {:.2} GB of {}",
        info.usage.storage_bytes as f64 / 1e9,
        info.limits
            .storage_gb
            .map_or("unlimited".to_string(), |n| format!("{n} GB"))
    );
    println!(
        "features:         {}",
        if info.features.is_empty() {
            "none".to_string()
        } else {
            info.features.join(", ")
        }
    );
}

fn init_cli_logging(loaded: &LoadedConfig) {
    // Commands other than serve log warnings only, unless asked for more.
    let level = if loaded.config.log.level == "info" {
        "warn"
    } else {
        &loaded.config.log.level
    };
    crate::telemetry::init(level, loaded.config.log.format);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
}

fn serve(loaded: LoadedConfig) -> Result<ExitCode, CliError> {
    // candle sizes its CPU thread pool from this variable when a model first runs. Set here, while
    // this is the only thread of the process.
    if loaded.config.inference.threads > 0 {
        std::env::set_var(
            "CANDLE_NUM_THREADS",
            loaded.config.inference.threads.to_string(),
        );
    }
    crate::telemetry::init(&loaded.config.log.level, loaded.config.log.format);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    // The embedding encoder and the Q8_0 chat forward pass run on rayon's global pool.
    if loaded.config.inference.threads > 0 {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(loaded.config.inference.threads)
            .build_global()
        {
            tracing::warn!("inference.threads not applied to the model thread pool: {e}");
        }
    }
    match &loaded.file {
        Some(f) => tracing::info!(file = %f.display(), "configuration loaded"),
        None => tracing::info!("no config file; using embedded defaults and environment"),
    }
    let listener = app::bind(&loaded.config)?;
    let (state, _lock) = app::prepare(loaded.config)?;
    actix_web::rt::System::new().block_on(app::serve(
        listener,
        state,
        app::termination_signal(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn init(
    cli: &Cli,
    out: &std::path::Path,
    force: bool,
    config_only: bool,
) -> Result<ExitCode, CliError> {
    if out.exists() && !force {
        return Err(CliError::Usage(format!(
            "{} already exists; use --force to overwrite it",
            out.display()
        )));
    }
    // The data directory comes from flags/env/defaults, not from the file being written.
    let flags = FlagOverrides {
        data_dir: cli.global.data_dir.clone(),
        ..Default::default()
    };
    let loaded = Config::load(
        None,
        &flags,
        &|name| std::env::var(name).ok(),
        std::iter::empty(),
    )?;
    init_cli_logging(&loaded);
    let data_dir = &loaded.config.storage.data_dir;
    if !config_only {
        app::prepare_data_dir(data_dir)?;
        let _lock = app::lock_data_dir(data_dir)?;
        migrate_system(data_dir, &app::db_options(&loaded.config), false)?;
    }
    let mut text = config::SAMPLE_CONFIG.to_string();
    if flags.data_dir.is_some() || std::env::var_os(config::env::DATA_DIR).is_some() {
        text = text.replace(
            "# data_dir = \"./data\"",
            &format!("data_dir = {:?}", data_dir.display().to_string()),
        );
    }
    std::fs::write(out, text).map_err(StartupError::Io)?;
    println!(
        "Wrote {} (every setting commented, with its default).",
        out.display()
    );
    if !config_only {
        println!("Data directory {} is ready.", data_dir.display());
        println!("Next: `enclave serve --config {}`", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(label: &str, report: &crate::db::migrate::MigrationReport, dry_run: bool) {
    if report.applied.is_empty() {
        println!("{label}: schema {} is current", report.from);
        return;
    }
    let verb = if dry_run { "would apply" } else { "applied" };
    for (version, name) in &report.applied {
        println!("{label}: {verb} {version:04}_{name}");
    }
}

/// How `enclave migrate` protects an upgrade (see [`crate::upgrade::PreUpgradeBackup`]).
#[derive(Debug, Clone)]
pub(crate) enum Protection {
    Take,
    Taken(PathBuf),
    RestoredFrom(PathBuf),
    Skip,
}

fn migrate(
    loaded: LoadedConfig,
    dry_run: bool,
    protection: Protection,
) -> Result<ExitCode, CliError> {
    init_cli_logging(&loaded);
    let config = &loaded.config;
    let data_dir = &config.storage.data_dir;
    let options = app::db_options(config);
    if dry_run {
        return migrate_dry_run(data_dir, &options);
    }
    app::prepare_data_dir(data_dir)?;
    let _lock = app::lock_data_dir(data_dir)?;
    let protection = match &protection {
        Protection::Take => crate::upgrade::PreUpgradeBackup::Take(&config.backup),
        Protection::Taken(file) => crate::upgrade::PreUpgradeBackup::Taken(file),
        Protection::RestoredFrom(file) => crate::upgrade::PreUpgradeBackup::RestoredFrom(file),
        Protection::Skip => crate::upgrade::PreUpgradeBackup::Skip,
    };
    let report =
        crate::upgrade::upgrade(data_dir, &options, protection).map_err(StartupError::from)?;
    if let (
        Some(path),
        crate::upgrade::PreUpgradeBackup::Take(_) | crate::upgrade::PreUpgradeBackup::Taken(_),
    ) = (&report.backup, protection)
    {
        println!("pre-upgrade backup: {}", path.display());
    }
    if let Some(system) = &report.system {
        print_report("system.db", system, false);
    }
    let mut current = 0;
    for (id, report) in &report.tenants {
        if report.applied.is_empty() {
            current += 1;
        } else {
            print_report(id, report, false);
        }
    }
    println!(
        "{} tenant database(s): {current} already current",
        report.tenants.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn migrate_dry_run(data_dir: &Path, options: &crate::db::DbOptions) -> Result<ExitCode, CliError> {
    let report = migrate_system(data_dir, options, true)?;
    print_report("system.db", &report, true);
    if !system_db_path(data_dir).exists() {
        return Ok(ExitCode::SUCCESS);
    }
    let conn = open_connection(
        &system_db_path(data_dir),
        OpenMode::MustExist,
        options.busy_timeout,
    )?;
    let tenants = list_tenants(&conn).map_err(crate::db::DbError::from)?;
    drop(conn);
    let reports = migrate_all_tenants(data_dir, &tenants, options, true)?;
    let mut current = 0;
    for (id, report) in &reports {
        if report.applied.is_empty() {
            current += 1;
        } else {
            print_report(&format!("tenant {id}"), report, true);
        }
    }
    println!(
        "{} tenant database(s): {current} already current",
        reports.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn version() {
    use std::io::Write;
    let system = crate::db::migrate::MigrationSet::system()
        .map(|s| s.latest())
        .unwrap_or(0);
    let tenant = crate::db::migrate::MigrationSet::tenant()
        .map(|s| s.latest())
        .unwrap_or(0);
    // Written without panicking when the reader goes away early (`enclave version | head -n 1`).
    let text = format!(
        "enclave {}\nschema: system {system}, tenant {tenant}\ntarget: {}-{}\n",
        crate::VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS
    );
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn open_system_for_cli(config: &Config) -> Result<SystemDb, CliError> {
    let data_dir = &config.storage.data_dir;
    if !system_db_path(data_dir).exists() {
        return Err(CliError::Usage(format!(
            "no Enclave data in {}: run `enclave init` or start the server once (or pass --data-dir)",
            data_dir.display()
        )));
    }
    let options = app::db_options(config);
    let system = SystemDb::open(data_dir, &options)?;
    // Refuse to work on a schema this binary does not know.
    let set = crate::db::migrate::MigrationSet::system().map_err(crate::db::DbError::from)?;
    let path = system_db_path(data_dir);
    let conn = open_connection(&path, OpenMode::MustExist, options.busy_timeout)?;
    if !set
        .pending(&conn, &path)
        .map_err(crate::db::DbError::from)?
        .is_empty()
    {
        return Err(CliError::Usage(format!(
            "{} needs migrations first: run `enclave migrate`",
            path.display()
        )));
    }
    Ok(system)
}

fn tenant_create(loaded: LoadedConfig, name: &str, id: Option<&str>) -> Result<ExitCode, CliError> {
    init_cli_logging(&loaded);
    let config = &loaded.config;
    let system = std::sync::Arc::new(open_system_for_cli(config)?);
    let id = match id {
        Some(id) => TenantId::parse(id)?,
        None => TenantId::from_name(name)?,
    };
    let license = cli_license(&system, config)?;
    let record = create_tenant(
        &system,
        &config.storage.data_dir,
        &id,
        name,
        &app::db_options(config),
        &crate::audit::Actor::cli(),
        &license.plan(),
    )?;
    println!("Created tenant {} ({})", record.id, record.name);
    Ok(ExitCode::SUCCESS)
}

fn tenant_list(loaded: LoadedConfig, json: bool) -> Result<ExitCode, CliError> {
    init_cli_logging(&loaded);
    let system = open_system_for_cli(&loaded.config)?;
    let tenants = system.list_tenants()?;
    if json {
        let text =
            serde_json::to_string_pretty(&tenants).map_err(|e| CliError::Usage(e.to_string()))?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<24} {:<10} {:<22} NAME", "ID", "STATUS", "CREATED");
    for t in &tenants {
        println!(
            "{:<24} {:<10} {:<22} {}",
            t.id, t.status, t.created_at, t.name
        );
    }
    println!("{} tenant(s)", tenants.len());
    Ok(ExitCode::SUCCESS)
}

fn read_password_line() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| {
        CliError::Usage(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password).to_string();
    if password.is_empty() {
        return Err(CliError::Usage("no password on standard input".into()));
    }
    Ok(password)
}

/// The licence as the CLI sees it (the same stored licence and rules as the server).
fn cli_license(
    system: &std::sync::Arc<SystemDb>,
    config: &Config,
) -> Result<crate::license::manager::LicenseManager, CliError> {
    let instance = system.ensure_instance()?;
    Ok(crate::license::manager::LicenseManager::load(
        system.clone(),
        &instance.installation_id,
        &config.storage.data_dir,
    )?)
}

fn user_command(loaded: LoadedConfig, command: &UserCommand) -> Result<ExitCode, CliError> {
    init_cli_logging(&loaded);
    let system = std::sync::Arc::new(open_system_for_cli(&loaded.config)?);
    match command {
        UserCommand::Add {
            name,
            system_admin,
            password_stdin: _,
            display_name,
            email,
            must_change_password,
        } => {
            let password = read_password_line()?;
            let user = crate::identity::create_user(
                &system,
                &crate::identity::NewUser {
                    username: name,
                    password: &password,
                    display_name: display_name.as_deref(),
                    email: email.as_deref(),
                    is_system_admin: *system_admin,
                    must_change_password: *must_change_password,
                },
                &crate::audit::Actor::cli(),
                &cli_license(&system, &loaded.config)?.plan(),
            )?;
            let kind = if user.is_system_admin {
                "system administrator"
            } else {
                "account"
            };
            println!("Created {kind} {}", user.username);
        }
        UserCommand::ResetPassword { name } => {
            let password = crate::identity::password::generate();
            let user = crate::identity::set_password(
                &system,
                name,
                &password,
                true,
                &crate::audit::Actor::cli(),
            )?;
            println!(
                "Temporary password for {} (shown once; to be changed at next sign-in):",
                user.username
            );
            println!("{password}");
        }
        UserCommand::List { json } => {
            let users = system.db.read(crate::identity::list_users)?;
            if *json {
                let text = serde_json::to_string_pretty(&users)
                    .map_err(|e| CliError::Usage(e.to_string()))?;
                println!("{text}");
            } else {
                println!("{:<24} {:<12} {:<6} NAME", "USERNAME", "STATE", "ADMIN");
                for u in &users {
                    println!(
                        "{:<24} {:<12} {:<6} {}",
                        u.username,
                        u.state,
                        if u.is_system_admin { "yes" } else { "" },
                        u.display_name
                    );
                }
                println!("{} account(s)", users.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn key_command(loaded: LoadedConfig, command: &KeyCommand) -> Result<ExitCode, CliError> {
    use crate::identity::api_key;
    init_cli_logging(&loaded);
    let system = open_system_for_cli(&loaded.config)?;
    let tenant_of = |id: &str| -> Result<String, CliError> {
        let id = TenantId::parse(id)?;
        system
            .tenant(id.as_str())?
            .map(|t| t.id)
            .ok_or_else(|| CliError::from(crate::tenancy::TenantError::NotFound(id)))
    };
    match command {
        KeyCommand::Create {
            tenant,
            name,
            scopes,
            expires_days,
        } => {
            let tenant = tenant_of(tenant)?;
            let expires_at = expires_days
                .map(|d| crate::time_util::now_utc().unix_timestamp() + i64::from(d) * 86_400);
            let issued = api_key::create(
                &system,
                &tenant,
                name,
                scopes,
                expires_at,
                Some("cli"),
                &crate::audit::Actor::cli(),
            )?;
            eprintln!(
                "Created API key {} ({}) for tenant {tenant} with scopes {}. It is shown once:",
                issued.key.id,
                issued.key.name,
                issued.key.scopes.join(",")
            );
            println!("{}", issued.secret);
        }
        KeyCommand::List { tenant } => {
            let tenant = tenant_of(tenant)?;
            println!(
                "{:<18} {:<16} {:<18} {:<10} NAME",
                "ID", "PREFIX", "SCOPES", "STATE"
            );
            let now = crate::time_util::now_utc().unix_timestamp();
            for k in api_key::list(&system, &tenant)? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|t| t <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<18} {:<16} {:<18} {:<10} {}",
                    k.id,
                    k.prefix,
                    k.scopes.join(","),
                    state,
                    k.name
                );
            }
        }
        KeyCommand::Revoke { tenant, id } => {
            let tenant = tenant_of(tenant)?;
            let key = api_key::revoke(&system, &tenant, id, &crate::audit::Actor::cli())?;
            println!("Revoked API key {} ({})", key.id, key.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_prune(loaded: LoadedConfig, older_than_days: Option<u32>) -> Result<ExitCode, CliError> {
    init_cli_logging(&loaded);
    let days = older_than_days.unwrap_or(loaded.config.audit.retention_days);
    if older_than_days.is_none() && days == 0 {
        return Err(CliError::Usage(
            "audit.retention_days is 0 (keep forever): pass --older-than-days DAYS to prune anyway"
                .into(),
        ));
    }
    let system = std::sync::Arc::new(open_system_for_cli(&loaded.config)?);
    let registry = crate::tenancy::TenantRegistry::new(
        loaded.config.storage.data_dir.clone(),
        system.clone(),
        app::db_options(&loaded.config),
        4,
    );
    let cutoff = crate::time_util::format_rfc3339(
        crate::time_util::now_utc() - time::Duration::days(i64::from(days)),
    );
    let removed = crate::audit::prune_everywhere(&system, &registry, &cutoff)?;
    println!("removed {removed} audit entries recorded before {cutoff}");
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(loaded: LoadedConfig) -> Result<ExitCode, CliError> {
    use crate::audit::{verify, Verdict};
    init_cli_logging(&loaded);
    let system = open_system_for_cli(&loaded.config)?;
    let data_dir = &loaded.config.storage.data_dir;
    let mut logs = vec![("system".to_string(), system_db_path(data_dir))];
    for tenant in system.list_tenants()? {
        let id = TenantId::parse(&tenant.id)?;
        logs.push((
            format!("tenant {}", tenant.id),
            crate::tenancy::tenant_db_path(data_dir, &id),
        ));
    }
    let mut broken = 0;
    for (label, path) in logs {
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .map_err(|e| crate::db::DbError::classify(&path, e))?;
        match verify(&conn).map_err(|e| crate::db::DbError::classify(&path, e))? {
            Verdict::Intact(n) => println!("{label}: ok, {n} entries"),
            Verdict::Broken { seq, reason } => {
                broken += 1;
                println!("{label}: BROKEN at entry {seq}: {reason}");
            }
        }
    }
    Ok(if broken > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
