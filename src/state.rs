//! `AppState`: what every request handler can reach, built once at start-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::db::system::{Instance, SystemDb};
use crate::tenancy::TenantRegistry;

/// Shared, cheaply cloned state of a running server.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub system: Arc<SystemDb>,
    pub tenants: Arc<TenantRegistry>,
    pub instance: Arc<Instance>,
    pub started: Instant,
    /// Set once start-up finished (migrations applied); cleared when shutdown begins.
    ready: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        system: Arc<SystemDb>,
        tenants: Arc<TenantRegistry>,
        instance: Instance,
    ) -> AppState {
        AppState {
            config,
            system,
            tenants,
            instance: Arc::new(instance),
            started: Instant::now(),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}
