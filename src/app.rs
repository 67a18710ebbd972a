//! Building and running the server: data directory, start-up migrations, the actix `App`, and
//! graceful shutdown.
//!
//! Start-up order: lock the data directory (one server per directory) → migrate `system.db` → record
//! the start → migrate every tenant database → settle the usage meter's bounds left by a previous
//! run (`usage::allowance::recover`) → bind → mark ready → notify systemd. Shutdown, on the
//! future passed to [`serve`] (SIGTERM/SIGINT in production): mark not ready (`/readyz` answers 503),
//! stop accepting, let in-flight requests finish within `shutdown_timeout_secs`, then checkpoint and
//! close every database.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Compress, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use nix::fcntl::{Flock, FlockArg};

use crate::config::{Config, ConfigError};
use crate::db::system::SystemDb;
use crate::db::{DbError, DbOptions};
use crate::state::AppState;
use crate::tenancy::{TenantError, TenantRegistry};

/// The Content-Security-Policy of every response: the UI loads nothing from elsewhere and runs no inline code.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

/// Why the server (or a command) could not start. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("data directory {path} is not usable: {detail}")]
    DataDir { path: PathBuf, detail: String },
    #[error("data directory {path} is in use by another Enclave process (lock file {lock}); stop it first")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("cannot listen on {addr}: {detail}")]
    Bind { addr: String, detail: String },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Upgrade(Box<crate::upgrade::UpgradeError>),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<crate::upgrade::UpgradeError> for StartupError {
    fn from(e: crate::upgrade::UpgradeError) -> Self {
        StartupError::Upgrade(Box::new(e))
    }
}

/// Creates the data directory (mode 0750) if needed and checks that it is a writable directory.
pub fn prepare_data_dir(dir: &Path) -> Result<(), StartupError> {
    use std::os::unix::fs::DirBuilderExt;
    let fail = |detail: String| StartupError::DataDir {
        path: dir.to_path_buf(),
        detail,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(fail("it exists but is not a directory".into()));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| fail(format!("cannot create it: {e}")))?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| fail(format!("it is not writable: {e}")))?;
    std::fs::remove_file(&probe).map_err(|e| fail(format!("it is not writable: {e}")))?;
    Ok(())
}

/// An exclusive lock on the data directory, held for the life of the process.
pub struct DataDirLock {
    _lock: Flock<std::fs::File>,
}

/// Takes the data directory's lock, failing at once if another process holds it.
pub fn lock_data_dir(dir: &Path) -> Result<DataDirLock, StartupError> {
    let path = dir.join("enclave.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StartupError::DataDir {
            path: dir.to_path_buf(),
            detail: format!("cannot open lock file {}: {e}", path.display()),
        })?;
    let lock =
        Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| StartupError::Locked {
            path: dir.to_path_buf(),
            lock: path.clone(),
        })?;
    Ok(DataDirLock { _lock: lock })
}

/// The database options the configuration asks for.
pub fn db_options(config: &Config) -> DbOptions {
    DbOptions::new(
        config.storage.busy_timeout_ms,
        config.storage.tenant_pool_size,
    )
}

/// Prepares everything the server needs before it binds: see the module doc for the order.
pub fn prepare(config: Config) -> Result<(AppState, DataDirLock), StartupError> {
    let data_dir = config.storage.data_dir.clone();
    prepare_data_dir(&data_dir)?;
    let lock = lock_data_dir(&data_dir)?;
    let options = db_options(&config);
    // Migrations, if this binary brings any, run behind a pre-upgrade backup and a trial run.
    let upgraded = crate::upgrade::upgrade(
        &data_dir,
        &options,
        crate::upgrade::PreUpgradeBackup::Take(&config.backup),
    )?;
    for (db, report) in upgraded
        .system
        .iter()
        .map(|r| ("system.db", r))
        .chain(upgraded.tenants.iter().map(|(id, r)| (id.as_str(), r)))
    {
        for (version, name) in &report.applied {
            tracing::info!(db, version, name = %name, "migration applied");
        }
    }
    let system = Arc::new(SystemDb::open(&data_dir, &options)?);
    // Before any tenant is served and before the meter starts: settle the usage bounds a previous
    // run left (exact after a process crash; raised after a machine restart, see `usage::allowance`).
    for record in system.list_tenants()? {
        // Ids that do not parse were skipped by the upgrade too, with a warning.
        let Ok(id) = crate::tenancy::TenantId::parse(&record.id) else {
            continue;
        };
        let path = crate::tenancy::tenant_db_path(&data_dir, &id);
        let mut conn = crate::db::open_connection(
            &path,
            crate::db::OpenMode::MustExist,
            options.busy_timeout,
        )?;
        let recovered =
            crate::usage::allowance::recover(&mut conn).map_err(|e| DbError::classify(&path, e))?;
        for (day, principal, metric, by) in &recovered.raised {
            tracing::warn!(tenant = %id, day, principal, metric, raised_by = by,
                "the machine restarted while usage was counted: count raised to its bound on the disk");
        }
    }
    let instance = system.record_start()?;
    if let Some(password) = crate::identity::bootstrap_admin(&system)? {
        let notice = crate::identity::write_bootstrap_notice(&data_dir, &password)?;
        // Printed once, to the console only (never to the log).
        println!("\n{notice}\n");
    }
    tracing::info!(
        tenants = upgraded.tenants.len(),
        migrated = upgraded.migrated(),
        pre_upgrade_backup = ?upgraded.backup,
        "databases checked"
    );
    let license = Arc::new(crate::license::manager::LicenseManager::load(
        system.clone(),
        &instance.installation_id,
        &data_dir,
    )?);
    let snapshot = license.current();
    tracing::info!(
        edition = %snapshot.evaluation.entitlements.edition_label,
        state = ?snapshot.evaluation.state,
        "licence"
    );
    if let Some(banner) = license.banner() {
        tracing::warn!("{}", banner.message);
    }
    if let Err(e) = license.take_seat_snapshot() {
        tracing::warn!(error = %e, "seat snapshot failed");
    }
    let registry = Arc::new(TenantRegistry::new(
        data_dir,
        system.clone(),
        options,
        config.storage.max_open_tenant_pools,
    ));
    Ok((
        AppState::new(Arc::new(config), system, registry, instance, license),
        lock,
    ))
}

/// The actix application: state, extractor limits, middleware, API routes and UI.
pub fn create_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (json, payload, path, query) =
        crate::http::extractor_configs(state.config.server.max_body_bytes);
    let security_headers = DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ));
    App::new()
        .app_data(web::Data::new(state))
        .app_data(json)
        .app_data(payload)
        .app_data(path)
        .app_data(query)
        .wrap(Compress::default())
        .wrap(security_headers)
        .wrap(from_fn(crate::telemetry::observe_request))
        .configure(crate::http::configure)
        .configure(crate::ui::configure)
        .default_service(web::to(crate::ui::fallback))
}

/// Binds the configured address with a clear error when it is taken or not allowed.
pub fn bind(config: &Config) -> Result<TcpListener, StartupError> {
    let addr = config.listen_addr()?;
    TcpListener::bind(addr).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the address is already in use (another Enclave or another program); choose another with --listen or ENCLAVE_LISTEN"
                    .to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges); use a port above 1024".to_string()
            }
            _ => e.to_string(),
        };
        StartupError::Bind {
            addr: addr.to_string(),
            detail: hint,
        }
    })
}

/// Runs the server on `listener` until `shutdown` completes, then drains and closes everything.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), StartupError> {
    let local = listener.local_addr()?;
    let workers = match state.config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        n => n,
    };
    let app_state = state.clone();
    let server = HttpServer::new(move || create_app(app_state.clone()))
        .workers(workers)
        .shutdown_timeout(state.config.server.shutdown_timeout_secs)
        .disable_signals()
        .listen(listener)?
        .run();
    let handle = server.handle();
    state.set_ready(true);

    let url = format!("http://{local}/");
    println!("Enclave is listening on {url}");
    tracing::info!(%url, version = crate::VERSION, data_dir = %state.config.storage.data_dir.display(), "server started");
    crate::notify::ready(&format!("listening on {url}"));
    // A successful start on restored data: the tenant directories an in-place restore set aside go.
    match crate::backup::in_place::remove_replaced(&state.config.storage.data_dir) {
        Ok(removed) => {
            for dir in removed {
                tracing::info!(dir = %dir.display(), "removed the files replaced by a tenant restore");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "the files replaced by a tenant restore could not be removed")
        }
    }

    let watchdog_state = state.clone();
    let watchdog = crate::notify::watchdog_interval().map(|every| {
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let system = watchdog_state.system.clone();
                // Ping only while the system database answers: a wedged server gets restarted.
                if matches!(
                    tokio::task::spawn_blocking(move || system.ping()).await,
                    Ok(Ok(()))
                ) {
                    crate::notify::watchdog_ping();
                }
            }
        })
    });

    // External inference providers, cached for routing.
    let system = state.system.clone();
    match tokio::task::spawn_blocking(move || system.db.read(crate::inference::providers::list))
        .await
    {
        Ok(Ok(providers)) => state.inference.set_providers(providers),
        Ok(Err(e)) => tracing::error!(error = %e, "cannot read the inference providers"),
        Err(e) => tracing::error!(error = %e, "cannot read the inference providers"),
    }

    // The installed models load on their own thread; requests that need one meanwhile are told it is
    // still loading.
    let loading = state.clone();
    if let Err(e) = std::thread::Builder::new()
        .name("model-loader".into())
        .spawn(move || loading.inference.load_all(&loading.config.storage.data_dir))
    {
        tracing::error!(error = %e, "could not start the model loader: no model will be available");
    }

    // Cron jobs: each directory's synchronisation on its own schedule.
    if let Err(e) = state.scheduler.start().await {
        tracing::error!(error = %e, "the job scheduler did not start: directory synchronisation and backups will not run on schedule");
    }
    crate::directory::sync::schedule_all(&state).await;
    crate::backup::service::schedule(&state).await;

    // Knowledge-base ingestion: resumes unfinished documents, then takes new uploads.
    crate::knowledge::ingest::Ingestor::start(state.clone());

    // Purge tenants whose deletion grace period has passed: now, then every five minutes.
    let s = state.clone();
    let purger = spawn_periodic(
        "tenant purge",
        Duration::ZERO,
        Duration::from_secs(300),
        move || {
            crate::tenancy::lifecycle::purge_due(
                &s.system,
                &s.config.storage.data_dir,
                &crate::audit::Actor::cli(),
            )
            .map(drop)
        },
    );

    // The licence: re-evaluated every minute (expiry, clock, a licence installed through the CLI), with
    // a seat snapshot once a day.
    let s = state.clone();
    let last_snapshot = std::sync::Mutex::new(std::time::Instant::now());
    let minute = Duration::from_secs(60);
    let licensing = spawn_periodic("licence refresh", minute, minute, move || {
        s.license.refresh()?;
        let mut last = last_snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() >= Duration::from_secs(24 * 3600) {
            *last = std::time::Instant::now();
            s.license.take_seat_snapshot()?;
        }
        Ok::<_, crate::db::DbError>(())
    });

    // Chargeback: close last month's statements (idempotent) at start and every six hours.
    let s = state.clone();
    let closing = spawn_periodic(
        "closing statements",
        Duration::ZERO,
        Duration::from_secs(6 * 3600),
        move || {
            let n = crate::usage::statements::close_last_month(&s.system, &s.tenants)?;
            if n > 0 {
                tracing::info!(statements = n, "closed last month's statements");
            }
            Ok::<_, crate::db::DbError>(())
        },
    );

    // Audit retention (`audit.retention_days`): an hour after start, then daily.
    let s = state.clone();
    let days = state.config.audit.retention_days;
    let retention = (days > 0).then(|| {
        spawn_periodic(
            "audit retention",
            Duration::from_secs(3600),
            Duration::from_secs(24 * 3600),
            move || crate::audit::apply_retention(&s.system, &s.tenants, days).map(drop),
        )
    });

    let stopping_state = state.clone();
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: finishing in-flight requests");
        stopping_state.set_ready(false);
        crate::notify::stopping();
        handle.stop(true).await;
    });

    server.await?;
    if let Some(task) = watchdog {
        task.abort();
    }
    purger.abort();
    if let Some(task) = retention {
        task.abort();
    }
    licensing.abort();
    closing.abort();
    state.scheduler.shutdown().await;
    // Every metered request already waited for its commit; this only stops the writer thread.
    let meter = state.usage.meter.clone();
    tokio::task::spawn_blocking(move || meter.shutdown())
        .await
        .map_err(|e| StartupError::Io(std::io::Error::other(e.to_string())))?;
    state.set_ready(false);
    let closing = state.clone();
    tokio::task::spawn_blocking(move || {
        closing.tenants.close_all();
        if let Err(e) = closing.system.db.checkpoint() {
            tracing::warn!(error = %e, "checkpoint of system.db at shutdown failed");
        }
    })
    .await
    .map_err(|e| StartupError::Io(std::io::Error::other(e.to_string())))?;
    tracing::info!("server stopped cleanly");
    Ok(())
}

/// Runs `job` on the blocking pool after `first`, then every `every`, until aborted; a failure is logged
/// (as `what`) and the job runs again at the next tick.
fn spawn_periodic<E: std::fmt::Display + Send + 'static>(
    what: &'static str,
    first: Duration,
    every: Duration,
    job: impl Fn() -> Result<(), E> + Send + Sync + 'static,
) -> actix_web::rt::task::JoinHandle<()> {
    let job = Arc::new(job);
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
        loop {
            tick.tick().await;
            let job = job.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || job()).await {
                tracing::warn!(error = %e, "{what} failed; will retry");
            }
        }
    })
}

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
