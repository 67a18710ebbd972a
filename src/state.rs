//! `AppState`: what every request handler can reach, built once at start-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::db::system::{Instance, SystemDb};
use crate::identity::session::SessionPolicy;
use crate::identity::throttle::LoginThrottle;
use crate::tenancy::TenantRegistry;

/// At most this many password hashes are computed at once (each takes 19 MiB and tens of ms of CPU).
pub const CONCURRENT_PASSWORD_HASHES: usize = 2;

/// Shared, cheaply cloned state of a running server.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub system: Arc<SystemDb>,
    pub tenants: Arc<TenantRegistry>,
    pub instance: Arc<Instance>,
    /// Recently authenticated API keys (cleared on every key or tenant change made here).
    pub key_cache: Arc<crate::identity::api_key::KeyCache>,
    /// Usage accounting: the meter, rate limits and quota settings.
    pub usage: Arc<crate::usage::Usage>,
    /// The installed licence and its state; enforcement reads [`LicenseManager::plan`].
    pub license: Arc<crate::license::manager::LicenseManager>,
    pub started: Instant,
    /// Local models and the threads that run them.
    pub inference: Arc<crate::inference::service::Inference>,
    /// Recurring jobs (directory synchronisation); started by `app::serve`.
    pub scheduler: Arc<crate::scheduler::Scheduler>,
    /// The knowledge-base ingestion queue (its worker is started by `app::serve`).
    pub ingest: Arc<crate::knowledge::ingest::Ingestor>,
    /// The outcome of the latest backup runs (scheduled or asked for through the API).
    pub backups: Arc<crate::backup::service::Status>,
    /// Failed sign-in counters.
    pub login_throttle: Arc<LoginThrottle>,
    /// Bounds concurrent argon2 work so sign-in storms cannot exhaust memory or CPU.
    pub password_hashes: Arc<tokio::sync::Semaphore>,
    /// Set once start-up finished (migrations applied); cleared when shutdown begins.
    ready: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        system: Arc<SystemDb>,
        tenants: Arc<TenantRegistry>,
        instance: Instance,
        license: Arc<crate::license::manager::LicenseManager>,
    ) -> AppState {
        let usage = Arc::new(crate::usage::Usage::new(crate::usage::meter::Meter::start()));
        let inference = crate::inference::service::Inference::start(
            &config.inference,
            &config.storage.data_dir,
        );
        AppState {
            key_cache: Arc::new(crate::identity::api_key::KeyCache::default()),
            usage,
            config,
            system,
            tenants,
            license,
            instance: Arc::new(instance),
            started: Instant::now(),
            inference,
            scheduler: Arc::new(crate::scheduler::Scheduler::default()),
            ingest: Arc::new(crate::knowledge::ingest::Ingestor::default()),
            backups: Arc::new(crate::backup::service::Status::default()),
            login_throttle: Arc::new(LoginThrottle::default()),
            password_hashes: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_PASSWORD_HASHES)),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Session timeouts from the configuration.
    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy {
            idle: std::time::Duration::from_secs(self.config.auth.session_idle_minutes * 60),
            absolute: std::time::Duration::from_secs(self.config.auth.session_max_hours * 3600),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}
