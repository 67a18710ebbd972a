//! Configuration: one typed [`Config`], merged in a fixed order of precedence.
//!
//! **embedded defaults < TOML file < `ENCLAVE_*` environment variables < command-line flags.**
//!
//! - With no file at all Enclave runs on the embedded defaults (listen on `127.0.0.1:8080`, data in `./data`).
//! - The file is `--config PATH` (or `ENCLAVE_CONFIG`); a path given explicitly must exist. Without it,
//!   `./enclave.toml` is read when present. The packaged service uses `/etc/enclave/enclave.toml`.
//! - Unknown keys in the file are an error naming the key and the file; unknown `ENCLAVE_*` variables
//!   are reported as warnings (they are usually typos).
//! - Relative paths are relative to the current working directory.
//!
//! [`SAMPLE_CONFIG`] is the fully commented file that `enclave init` writes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "enclave.toml";

/// Environment variables understood by Enclave. Each overrides the file and is overridden by its flag.
pub mod env {
    pub const CONFIG: &str = "ENCLAVE_CONFIG";
    pub const DATA_DIR: &str = "ENCLAVE_DATA_DIR";
    pub const LISTEN: &str = "ENCLAVE_LISTEN";
    pub const LOG_LEVEL: &str = "ENCLAVE_LOG_LEVEL";
    pub const LOG_FORMAT: &str = "ENCLAVE_LOG_FORMAT";
    pub const MAX_BODY_BYTES: &str = "ENCLAVE_MAX_BODY_BYTES";
    pub const WORKERS: &str = "ENCLAVE_WORKERS";
    pub const SHUTDOWN_TIMEOUT_SECS: &str = "ENCLAVE_SHUTDOWN_TIMEOUT_SECS";
    pub const MAX_OPEN_TENANT_POOLS: &str = "ENCLAVE_MAX_OPEN_TENANT_POOLS";
    pub const TENANT_POOL_SIZE: &str = "ENCLAVE_TENANT_POOL_SIZE";
    pub const BUSY_TIMEOUT_MS: &str = "ENCLAVE_BUSY_TIMEOUT_MS";
    pub const TENANT_PURGE_GRACE_HOURS: &str = "ENCLAVE_TENANT_PURGE_GRACE_HOURS";
    pub const SESSION_IDLE_MINUTES: &str = "ENCLAVE_SESSION_IDLE_MINUTES";
    pub const SESSION_MAX_HOURS: &str = "ENCLAVE_SESSION_MAX_HOURS";
    pub const TRUST_PROXY: &str = "ENCLAVE_TRUST_PROXY";
    pub const AUDIT_RETENTION_DAYS: &str = "ENCLAVE_AUDIT_RETENTION_DAYS";
    pub const WEBHOOK_ALLOW_PRIVATE: &str = "ENCLAVE_WEBHOOK_ALLOW_PRIVATE";
    /// The backup passphrase (read by `enclave backup`, never part of the configuration).
    pub const BACKUP_PASSPHRASE: &str = "ENCLAVE_BACKUP_PASSPHRASE";

    /// Every variable above; anything else starting with `ENCLAVE_` earns a warning.
    pub const ALL: &[&str] = &[
        CONFIG,
        DATA_DIR,
        LISTEN,
        LOG_LEVEL,
        LOG_FORMAT,
        MAX_BODY_BYTES,
        WORKERS,
        SHUTDOWN_TIMEOUT_SECS,
        MAX_OPEN_TENANT_POOLS,
        TENANT_POOL_SIZE,
        BUSY_TIMEOUT_MS,
        TENANT_PURGE_GRACE_HOURS,
        SESSION_IDLE_MINUTES,
        SESSION_MAX_HOURS,
        TRUST_PROXY,
        AUDIT_RETENTION_DAYS,
        WEBHOOK_ALLOW_PRIVATE,
        BACKUP_PASSPHRASE,
    ];
}

/// The whole configuration of one Enclave instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub audit: AuditConfig,
    pub usage: UsageConfig,
    pub inference: InferenceConfig,
    pub knowledge: KnowledgeConfig,
    pub backup: BackupConfig,
    pub log: LogConfig,
}

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// Largest request body accepted by JSON endpoints, in bytes.
    pub max_body_bytes: usize,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before they are cut off.
    pub shutdown_timeout_secs: u64,
}

/// Where and how data is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The data directory: `system.db`, `tenants/<id>/`, `models/`.
    pub data_dir: PathBuf,
    /// At most this many tenant databases are open at once; the least recently used idle one is closed first.
    pub max_open_tenant_pools: usize,
    /// Connections per open tenant database.
    pub tenant_pool_size: u32,
    /// How long a database call waits for a lock held by another connection before it fails, in ms.
    pub busy_timeout_ms: u64,
    /// A deleted tenant is purged (its files removed for good) this many hours after the deletion.
    pub tenant_purge_grace_hours: u64,
}

/// Sign-in and sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A browser session ends after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// A browser session ends this many hours after sign-in, however active.
    pub session_max_hours: u64,
    /// Trust `X-Forwarded-For` / `X-Forwarded-Proto` from a reverse proxy in front of Enclave
    /// (client address for throttling and audit; `Secure` cookies when the proxy speaks HTTPS).
    pub trust_proxy: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_idle_minutes: 30,
            session_max_hours: 12,
            trust_proxy: false,
        }
    }
}

/// The audit logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Entries older than this many days are pruned (daily); 0 keeps them forever.
    pub retention_days: u32,
}

/// Usage accounting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// Let quota alert webhooks reach loopback and link-local addresses (off: refused, SSRF guard).
    pub webhook_allow_private: bool,
}

/// Local inference: the models in `<data>/models`, run on this machine's CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceConfig {
    /// CPU threads the models use (candle's pool and rayon's); 0 means candle's default (one per
    /// physical core) and rayon's (one per logical CPU).
    pub threads: usize,
    /// Chat generations that run at the same time, per chat model (each uses every inference thread).
    pub chat_concurrency: usize,
    /// Chat requests that may wait for a free slot; beyond that, 503 with Retry-After.
    pub chat_queue: usize,
    /// Embedding requests that may wait; beyond that, 503 with Retry-After.
    pub embedding_queue: usize,
    /// A request (waiting and running) is cut off after this many seconds.
    pub request_timeout_secs: u64,
    /// The largest `max_tokens` a request may ask for.
    pub max_tokens_limit: usize,
    /// Inputs accepted by one embeddings request.
    pub max_embedding_inputs: usize,
    /// The chat model used when a request names none.
    pub default_chat_model: String,
    /// The embedding model used when a request names none.
    pub default_embedding_model: String,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            threads: 0,
            chat_concurrency: 1,
            chat_queue: 16,
            embedding_queue: 64,
            request_timeout_secs: 300,
            max_tokens_limit: 4096,
            max_embedding_inputs: 256,
            default_chat_model: "SmolLM2-135M-Instruct".into(),
            default_embedding_model: "all-MiniLM-L6-v2".into(),
        }
    }
}

/// Knowledge bases: uploads and their ingestion (docs/knowledge.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// The largest file an upload accepts, in bytes.
    pub max_file_bytes: u64,
    /// Files one upload request may carry.
    pub max_files_per_upload: usize,
    /// The most bytes a DOCX may unpack to (it is refused as an archive bomb beyond that).
    pub max_unpacked_bytes: u64,
    /// Segments one document may produce.
    pub max_segments_per_document: usize,
    /// Segments embedded together in one batch during ingestion.
    pub embedding_batch: usize,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            max_file_bytes: 50 * 1024 * 1024,
            max_files_per_upload: 100,
            max_unpacked_bytes: 200 * 1024 * 1024,
            max_segments_per_document: 20_000,
            embedding_batch: 32,
        }
    }
}

/// Scheduled backups (docs/backup.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where backups are written [default: <data>/backups].
    pub dir: Option<PathBuf>,
    /// A file holding the backup passphrase; without it (or `ENCLAVE_BACKUP_PASSPHRASE`) the server
    /// takes no scheduled backups.
    pub passphrase_file: Option<PathBuf>,
    /// When scheduled backups run: six cron fields, UTC (`sec min hour day month weekday`); empty: never.
    pub schedule: String,
    /// Scheduled backups kept: the newest of each of this many days…
    pub keep_daily: usize,
    /// …and of each of this many ISO weeks. Manual and pre-upgrade backups are never pruned.
    pub keep_weekly: usize,
    /// When the restore drill verifies the newest backup (six cron fields, UTC); empty: never.
    pub drill_schedule: String,
    /// Where a failed backup or drill is reported (JSON POST), if anywhere. SSRF-guarded like the
    /// usage alert webhook (`usage.webhook_allow_private`).
    pub alert_webhook_url: Option<String>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: None,
            passphrase_file: None,
            schedule: "0 0 3 * * *".into(),
            keep_daily: 7,
            keep_weekly: 4,
            drill_schedule: "0 30 4 * * 0".into(),
            alert_webhook_url: None,
        }
    }
}

impl BackupConfig {
    /// The backup directory of `data_dir`.
    pub fn dir_for(&self, data_dir: &std::path::Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("backups"))
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a filter such as `info,enclave=debug`.
    pub level: String,
    /// `pretty` for a terminal, `json` for log collectors.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".to_string(),
            max_body_bytes: 1024 * 1024,
            workers: 0,
            shutdown_timeout_secs: 30,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            max_open_tenant_pools: 256,
            tenant_pool_size: 4,
            busy_timeout_ms: 5000,
            tenant_purge_grace_hours: 72,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: LogFormat::Pretty,
        }
    }
}

/// Values given on the command line (or through their `ENCLAVE_*` variable, which clap reads for us).
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
}

/// A configuration together with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Things worth telling the operator (unknown variables, ...), logged once the logger is up.
    pub warnings: Vec<String>,
}

/// Why a configuration could not be loaded. Each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} cannot be read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?} is invalid: {message}")]
    BadEnv {
        name: &'static str,
        value: String,
        message: String,
    },
    #[error("invalid setting {key} = {value:?}: {message}")]
    BadValue {
        key: &'static str,
        value: String,
        message: String,
    },
}

impl Config {
    /// Loads the configuration: defaults, then the file, then the environment (`lookup`), then `flags`.
    ///
    /// `explicit_file` is `--config`/`ENCLAVE_CONFIG`; when absent `./enclave.toml` is used if it exists.
    pub fn load(
        explicit_file: Option<&Path>,
        flags: &FlagOverrides,
        lookup: &dyn Fn(&str) -> Option<String>,
        all_env_names: impl Iterator<Item = String>,
    ) -> Result<LoadedConfig, ConfigError> {
        let mut warnings = Vec::new();
        let file = match explicit_file {
            Some(path) => Some(path.to_path_buf()),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                default.is_file().then_some(default)
            }
        };
        let mut config = match &file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(lookup)?;
        for name in all_env_names {
            // The licence test clock exists only in test builds (see `license::manager::now`).
            let test_only = cfg!(feature = "test-license-key")
                && name == crate::license::manager::TEST_CLOCK_OFFSET_ENV;
            if name.starts_with("ENCLAVE_") && !env::ALL.contains(&name.as_str()) && !test_only {
                warnings.push(format!(
                    "unknown environment variable {name} is ignored (known: {})",
                    env::ALL.join(", ")
                ));
            }
        }
        config.apply_flags(flags);
        config.validate()?;
        Ok(LoadedConfig {
            config,
            file,
            warnings,
        })
    }

    /// Loads from the process environment, the usual entry point.
    pub fn load_from_process(
        explicit_file: Option<&Path>,
        flags: &FlagOverrides,
    ) -> Result<LoadedConfig, ConfigError> {
        Self::load(
            explicit_file,
            flags,
            &|name| std::env::var(name).ok(),
            std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()),
        )
    }

    /// Parses a TOML file on top of the embedded defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text; the error text names the offending key and its line.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str::<Config>(text).map_err(|e| {
            // toml's message spans several lines (with a caret under the key); keep it on one line.
            e.to_string()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && *l != "|")
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    fn apply_env(&mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.trim().parse::<T>().map_err(|e| ConfigError::BadEnv {
                name,
                message: e.to_string(),
                value,
            })
        }
        if let Some(v) = lookup(env::DATA_DIR) {
            self.storage.data_dir = PathBuf::from(v);
        }
        if let Some(v) = lookup(env::LISTEN) {
            self.server.listen = v;
        }
        if let Some(v) = lookup(env::LOG_LEVEL) {
            self.log.level = v;
        }
        if let Some(v) = lookup(env::LOG_FORMAT) {
            self.log.format = match v.trim() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::BadEnv {
                        name: env::LOG_FORMAT,
                        value: v,
                        message: "expected `pretty` or `json`".into(),
                    })
                }
            };
        }
        if let Some(v) = lookup(env::MAX_BODY_BYTES) {
            self.server.max_body_bytes = parse(env::MAX_BODY_BYTES, v)?;
        }
        if let Some(v) = lookup(env::WORKERS) {
            self.server.workers = parse(env::WORKERS, v)?;
        }
        if let Some(v) = lookup(env::SHUTDOWN_TIMEOUT_SECS) {
            self.server.shutdown_timeout_secs = parse(env::SHUTDOWN_TIMEOUT_SECS, v)?;
        }
        if let Some(v) = lookup(env::MAX_OPEN_TENANT_POOLS) {
            self.storage.max_open_tenant_pools = parse(env::MAX_OPEN_TENANT_POOLS, v)?;
        }
        if let Some(v) = lookup(env::TENANT_POOL_SIZE) {
            self.storage.tenant_pool_size = parse(env::TENANT_POOL_SIZE, v)?;
        }
        if let Some(v) = lookup(env::BUSY_TIMEOUT_MS) {
            self.storage.busy_timeout_ms = parse(env::BUSY_TIMEOUT_MS, v)?;
        }
        if let Some(v) = lookup(env::TENANT_PURGE_GRACE_HOURS) {
            self.storage.tenant_purge_grace_hours = parse(env::TENANT_PURGE_GRACE_HOURS, v)?;
        }
        if let Some(v) = lookup(env::SESSION_IDLE_MINUTES) {
            self.auth.session_idle_minutes = parse(env::SESSION_IDLE_MINUTES, v)?;
        }
        if let Some(v) = lookup(env::SESSION_MAX_HOURS) {
            self.auth.session_max_hours = parse(env::SESSION_MAX_HOURS, v)?;
        }
        if let Some(v) = lookup(env::TRUST_PROXY) {
            self.auth.trust_proxy = parse(env::TRUST_PROXY, v)?;
        }
        if let Some(v) = lookup(env::AUDIT_RETENTION_DAYS) {
            self.audit.retention_days = parse(env::AUDIT_RETENTION_DAYS, v)?;
        }
        if let Some(v) = lookup(env::WEBHOOK_ALLOW_PRIVATE) {
            self.usage.webhook_allow_private = parse(env::WEBHOOK_ALLOW_PRIVATE, v)?;
        }
        Ok(())
    }

    fn apply_flags(&mut self, flags: &FlagOverrides) {
        if let Some(dir) = &flags.data_dir {
            self.storage.data_dir = dir.clone();
        }
        if let Some(listen) = &flags.listen {
            self.server.listen = listen.clone();
        }
        if let Some(level) = &flags.log_level {
            self.log.level = level.clone();
        }
        if let Some(format) = flags.log_format {
            self.log.format = format;
        }
    }

    /// Checks every value; the error names the key, the value and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, value: String, message: &str| ConfigError::BadValue {
            key,
            value,
            message: message.to_string(),
        };
        if !self.backup.schedule.trim().is_empty() {
            if let Err(e) = crate::scheduler::parse(&self.backup.schedule) {
                return Err(bad(
                    "backup.schedule",
                    self.backup.schedule.clone(),
                    &format!(
                        "not a six-field cron expression (sec min hour day month weekday): {e}"
                    ),
                ));
            }
        }
        if !self.backup.drill_schedule.trim().is_empty() {
            if let Err(e) = crate::scheduler::parse(&self.backup.drill_schedule) {
                return Err(bad(
                    "backup.drill_schedule",
                    self.backup.drill_schedule.clone(),
                    &format!(
                        "not a six-field cron expression (sec min hour day month weekday): {e}"
                    ),
                ));
            }
        }
        if let Some(url) = &self.backup.alert_webhook_url {
            if let Err(e) = crate::usage::webhook::parse_target(url) {
                return Err(bad("backup.alert_webhook_url", url.clone(), &e.to_string()));
            }
        }
        if self.backup.keep_daily + self.backup.keep_weekly == 0 {
            return Err(bad(
                "backup.keep_daily",
                "0".into(),
                "keep at least one scheduled backup (keep_daily or keep_weekly above 0)",
            ));
        }
        self.listen_addr()?;
        if self.server.max_body_bytes < 1024 {
            return Err(bad(
                "server.max_body_bytes",
                self.server.max_body_bytes.to_string(),
                "must be at least 1024",
            ));
        }
        if self.server.workers > 512 {
            return Err(bad(
                "server.workers",
                self.server.workers.to_string(),
                "must be between 0 (one per core) and 512",
            ));
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(bad("storage.data_dir", String::new(), "must not be empty"));
        }
        if self.storage.max_open_tenant_pools == 0 {
            return Err(bad(
                "storage.max_open_tenant_pools",
                "0".into(),
                "must be at least 1",
            ));
        }
        if !(1..=64).contains(&self.storage.tenant_pool_size) {
            return Err(bad(
                "storage.tenant_pool_size",
                self.storage.tenant_pool_size.to_string(),
                "must be between 1 and 64",
            ));
        }
        if !(1..=7 * 24 * 60).contains(&self.auth.session_idle_minutes) {
            return Err(bad(
                "auth.session_idle_minutes",
                self.auth.session_idle_minutes.to_string(),
                "must be between 1 and 10080 (one week)",
            ));
        }
        if !(1..=30 * 24).contains(&self.auth.session_max_hours) {
            return Err(bad(
                "auth.session_max_hours",
                self.auth.session_max_hours.to_string(),
                "must be between 1 and 720 (30 days)",
            ));
        }
        if self.audit.retention_days != 0 && self.audit.retention_days < 30 {
            return Err(bad(
                "audit.retention_days",
                self.audit.retention_days.to_string(),
                "must be 0 (keep forever) or at least 30 days",
            ));
        }
        let inference = &self.inference;
        for (key, value, range) in [
            (
                "inference.chat_concurrency",
                inference.chat_concurrency,
                1..=64,
            ),
            ("inference.chat_queue", inference.chat_queue, 0..=10_000),
            (
                "inference.embedding_queue",
                inference.embedding_queue,
                1..=10_000,
            ),
            (
                "inference.max_tokens_limit",
                inference.max_tokens_limit,
                1..=1_000_000,
            ),
            (
                "inference.max_embedding_inputs",
                inference.max_embedding_inputs,
                1..=10_000,
            ),
        ] {
            if !range.contains(&value) {
                return Err(bad(
                    key,
                    value.to_string(),
                    &format!("must be between {} and {}", range.start(), range.end()),
                ));
            }
        }
        if !(1..=86_400).contains(&inference.request_timeout_secs) {
            return Err(bad(
                "inference.request_timeout_secs",
                inference.request_timeout_secs.to_string(),
                "must be between 1 and 86400",
            ));
        }
        let knowledge = &self.knowledge;
        for (key, value, range) in [
            (
                "knowledge.max_file_bytes",
                knowledge.max_file_bytes,
                1..=(4u64 << 30),
            ),
            (
                "knowledge.max_files_per_upload",
                knowledge.max_files_per_upload as u64,
                1..=10_000,
            ),
            (
                "knowledge.max_unpacked_bytes",
                knowledge.max_unpacked_bytes,
                1..=(16u64 << 30),
            ),
            (
                "knowledge.max_segments_per_document",
                knowledge.max_segments_per_document as u64,
                1..=1_000_000,
            ),
            (
                "knowledge.embedding_batch",
                knowledge.embedding_batch as u64,
                1..=1024,
            ),
        ] {
            if !range.contains(&value) {
                return Err(bad(
                    key,
                    value.to_string(),
                    &format!("must be between {} and {}", range.start(), range.end()),
                ));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(bad(
                "log.level",
                self.log.level.clone(),
                "expected error, warn, info, debug, trace or a filter like `info,enclave=debug`",
            ));
        }
        Ok(())
    }

    /// The socket address to bind, parsed from `server.listen`.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .listen
            .trim()
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::BadValue {
                key: "server.listen",
                value: self.server.listen.clone(),
                message: "expected IP:PORT, for example 127.0.0.1:8080 or 0.0.0.0:8080".into(),
            })
    }
}

/// The commented configuration file written by `enclave init`. Every key is shown with its default.
pub const SAMPLE_CONFIG: &str = r#"# Enclave configuration.
#
# Precedence: built-in defaults < this file < ENCLAVE_* environment variables < command-line flags.
# Every key below is optional and shown with its default; uncomment a line to change it.
# Unknown keys are an error, so a typo is caught at start-up. Relative paths are relative to the
# directory Enclave is started from.

[server]
# Address and port to listen on. Use 0.0.0.0:8080 to accept connections from other machines.
# Env: ENCLAVE_LISTEN, flag: serve --listen
# listen = "127.0.0.1:8080"

# Largest request body accepted by JSON endpoints, in bytes (oversized requests get 413).
# Env: ENCLAVE_MAX_BODY_BYTES
# max_body_bytes = 1048576

# HTTP worker threads; 0 means one per CPU core. Env: ENCLAVE_WORKERS
# workers = 0

# On SIGTERM/SIGINT Enclave stops accepting connections and lets in-flight requests finish for
# at most this many seconds. Env: ENCLAVE_SHUTDOWN_TIMEOUT_SECS
# shutdown_timeout_secs = 30

[storage]
# The data directory: system.db, one directory per tenant under tenants/, models under models/.
# Env: ENCLAVE_DATA_DIR, flag: --data-dir
# data_dir = "./data"

# At most this many tenant databases are open at once; the least recently used one is closed
# when another is needed. Env: ENCLAVE_MAX_OPEN_TENANT_POOLS
# max_open_tenant_pools = 256

# SQLite connections per open tenant database. Env: ENCLAVE_TENANT_POOL_SIZE
# tenant_pool_size = 4

# How long a database call waits for a lock before failing, in milliseconds. Env: ENCLAVE_BUSY_TIMEOUT_MS
# busy_timeout_ms = 5000

# A deleted tenant is purged (its directory removed for good) this many hours after the deletion;
# until then a system administrator can restore it. Env: ENCLAVE_TENANT_PURGE_GRACE_HOURS
# tenant_purge_grace_hours = 72

[auth]
# A browser session ends after this many minutes without a request (1-10080).
# Env: ENCLAVE_SESSION_IDLE_MINUTES
# session_idle_minutes = 30

# A browser session ends this many hours after sign-in, however active (1-720).
# Env: ENCLAVE_SESSION_MAX_HOURS
# session_max_hours = 12

# Set to true when Enclave runs behind a reverse proxy on the same host: the client address comes
# from X-Forwarded-For, and cookies are marked Secure when X-Forwarded-Proto is https.
# Env: ENCLAVE_TRUST_PROXY
# trust_proxy = false

[audit]
# Audit entries older than this many days are removed once a day; 0 keeps them forever. The removal
# is itself audited, and `enclave audit verify` checks the rest of the chain from that point.
# Minimum 30. Env: ENCLAVE_AUDIT_RETENTION_DAYS
# retention_days = 0

[usage]
# Quota alert webhooks may not reach loopback or link-local addresses (such as 127.0.0.1 or the cloud
# metadata address 169.254.169.254); set to true to allow them. Private ranges (10/8, 192.168/16, ...)
# are always allowed. Env: ENCLAVE_WEBHOOK_ALLOW_PRIVATE
# webhook_allow_private = false

[inference]
# CPU threads the models use; 0 means one per core.
# threads = 0

# Chat generations that run at the same time, per chat model; each uses every inference thread, so
# 1 is right for most CPUs.
# chat_concurrency = 1

# Chat requests that may wait for a free generation slot, per chat model; more get 503 with
# Retry-After.
# chat_queue = 16

# Embedding requests that may wait (concurrent ones are batched together); more get 503.
# embedding_queue = 64

# A request (waiting and generating) is cut off after this many seconds.
# request_timeout_secs = 300

# The largest max_tokens a request may ask for (also capped by the model's context window).
# max_tokens_limit = 4096

# Inputs accepted by one embeddings request.
# max_embedding_inputs = 256

# The models used when a request names none (names as in `enclave models list`).
# default_chat_model = "SmolLM2-135M-Instruct"
# default_embedding_model = "all-MiniLM-L6-v2"

[knowledge]
# The largest file an upload accepts, in bytes (50 MiB).
# max_file_bytes = 52428800

# Files one upload request may carry.
# max_files_per_upload = 100

# The most a DOCX may unpack to, in bytes (200 MiB); beyond that (or past 100x its compressed size)
# it is refused as an archive bomb.
# max_unpacked_bytes = 209715200

# Segments one document may produce; a larger document fails with too_many_segments.
# max_segments_per_document = 20000

# Segments embedded together in one batch during ingestion.
# embedding_batch = 32

[backup]
# dir: where backups are written, e.g. "/var/backups/enclave" (default: <data>/backups).

# passphrase_file: a file (mode 0600) holding the backup passphrase, e.g.
# "/etc/enclave/backup-passphrase". Without it, or ENCLAVE_BACKUP_PASSPHRASE, the server takes no
# scheduled backups; `enclave backup now` still works.

# When scheduled backups run: six cron fields, UTC (sec min hour day month weekday); "" turns them off.
# schedule = "0 0 3 * * *"

# Scheduled backups kept: the newest of each of the last keep_daily days and keep_weekly ISO weeks.
# Manual and pre-upgrade backups are never pruned.
# keep_daily = 7
# keep_weekly = 4

# The restore drill: when the newest backup is decrypted and checked in full (six cron fields, UTC;
# default Sundays 04:30); "" turns it off.
# drill_schedule = "0 30 4 * * 0"

# alert_webhook_url: where a failed backup or restore drill is reported (a JSON POST), e.g.
# "https://alerts.example.com/hooks/enclave" (default: nowhere).

# The schedules, retention and alert URL can also be changed on the Backups page; saved there, they
# take precedence over this file.

[log]
# error, warn, info, debug, trace, or a filter such as "info,enclave=debug".
# Env: ENCLAVE_LOG_LEVEL, flag: --log-level
# level = "info"

# "pretty" for a terminal, "json" for journald/log collectors. Env: ENCLAVE_LOG_FORMAT, flag: --log-format
# format = "pretty"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn embedded_defaults_listen_on_loopback_8080_with_data_in_cwd() {
        let c = Config::default();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.storage.data_dir, PathBuf::from("./data"));
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn sample_config_parses_to_the_defaults() {
        let parsed = Config::from_toml(SAMPLE_CONFIG).expect("sample parses");
        assert_eq!(parsed, Config::default());
        let uncommented: String = SAMPLE_CONFIG
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| {
                        r.split_once(" = ").is_some_and(|(key, _)| {
                            key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        })
                    })
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = Config::from_toml(&uncommented).expect("uncommented sample parses");
        assert_eq!(
            parsed,
            Config::default(),
            "the sample shows the true defaults"
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
            .expect_err("unknown key");
        assert!(err.contains("lisen"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("e.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:1000\"\nworkers = 3\n[storage]\ndata_dir = \"/from/file\"\n",
        )
        .expect("write");
        let env = |name: &str| match name {
            env::LISTEN => Some("127.0.0.1:2000".to_string()),
            env::DATA_DIR => Some("/from/env".to_string()),
            _ => None,
        };
        let flags = FlagOverrides {
            data_dir: Some(PathBuf::from("/from/flag")),
            ..Default::default()
        };
        let loaded = Config::load(Some(&file), &flags, &env, std::iter::empty()).expect("load");
        assert_eq!(loaded.config.server.workers, 3, "file beats default");
        assert_eq!(
            loaded.config.server.listen, "127.0.0.1:2000",
            "env beats file"
        );
        assert_eq!(
            loaded.config.storage.data_dir,
            PathBuf::from("/from/flag"),
            "flag beats env"
        );
    }

    #[test]
    fn explicit_missing_file_is_an_error_naming_it() {
        let err = Config::load(
            Some(Path::new("/nonexistent/enclave.toml")),
            &FlagOverrides::default(),
            &no_env,
            std::iter::empty(),
        )
        .expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/enclave.toml"));
    }

    #[test]
    fn bad_values_and_unknown_env_are_reported() {
        let env = |name: &str| (name == env::WORKERS).then(|| "many".to_string());
        let err = Config::load(None, &FlagOverrides::default(), &env, std::iter::empty())
            .expect_err("bad env");
        assert!(err.to_string().contains("ENCLAVE_WORKERS"), "{err}");

        let flags = FlagOverrides {
            listen: Some("localhost".into()),
            ..Default::default()
        };
        let err = Config::load(None, &flags, &no_env, std::iter::empty()).expect_err("bad listen");
        assert!(err.to_string().contains("server.listen"), "{err}");

        let loaded = Config::load(
            None,
            &FlagOverrides::default(),
            &no_env,
            ["ENCLAVE_LISTN".to_string(), "PATH".to_string()].into_iter(),
        )
        .expect("load");
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("ENCLAVE_LISTN"));
    }
}
