//! Tenants: ids, creation of their directories and databases, and the bounded registry of open pools.
//!
//! Layout: `<data>/tenants/<id>/tenant.db` (later also the tenant's index and files). A tenant exists
//! when its row is in `system.db` *and* its directory is in place; creation makes both appear together:
//! the directory is built under `tenants/.staging/`, fsynced, then renamed into place inside the
//! system-DB transaction that inserts the row. A directory left without a row by a crash is moved to
//! `tenants/.orphaned/` the next time that id is created.
//!
//! [`TenantRegistry`] keeps at most `max_open_tenant_pools` tenant databases open. States of a tenant
//! database in the registry:
//! - *closed*: not in the cache, no [`TenantDb`] alive;
//! - *open*: in the LRU cache (and possibly in use by requests);
//! - *evicted*: dropped from the cache to make room, still alive while a request holds it, closed when the
//!   last holder drops it.
//!
//! Architecture Invariant: the number of live [`TenantDb`]s (open + evicted) never exceeds the cap; a
//! request that needs a new one when all slots are held waits briefly and then gets `503`.

pub mod extract;
pub mod lifecycle;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use lru::LruCache;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::OptionalExtension;

use crate::db::migrate::{MigrationReport, MigrationSet};
use crate::db::system::{insert_tenant, SystemDb, TenantRecord};
use crate::db::{fsync_dir, open_connection, Database, DbError, DbOptions, OpenMode};
use crate::error::{Code, ErrorCode};
use crate::knowledge::TenantKnowledge;

/// Name of the directory holding all tenants inside the data directory.
pub const TENANTS_DIR: &str = "tenants";
/// File name of a tenant database inside its directory.
pub const TENANT_DB_FILE: &str = "tenant.db";
const STAGING_DIR: &str = ".staging";
const ORPHANED_DIR: &str = ".orphaned";
/// How long a request waits for a tenant-pool slot before it gets 503.
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// Cryptographically random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG only fails if the OS has no entropy source at all, which Enclave cannot run without.
    if SystemRandom::new().fill(&mut buf).is_err() {
        panic!("the operating system's random number generator is unavailable");
    }
    buf
}

/// A tenant id: 2–63 characters of `a-z`, `0-9` and `-`, starting and ending with a letter or digit.
/// It names the tenant's directory, so this validation is also what keeps paths inside `tenants/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(text: &str) -> Result<TenantId, TenantError> {
        let ok_len = (2..=63).contains(&text.len());
        let ok_chars = text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = !text.starts_with('-') && !text.ends_with('-');
        if ok_len && ok_chars && ok_ends {
            Ok(TenantId(text.to_string()))
        } else {
            Err(TenantError::InvalidId(text.chars().take(80).collect()))
        }
    }

    /// Derives an id from a display name: `Acme Corp.` → `acme-corp`.
    pub fn from_name(name: &str) -> Result<TenantId, TenantError> {
        let mut slug = String::new();
        for c in name.trim().chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        slug.truncate(63);
        let slug = slug.trim_end_matches('-');
        TenantId::parse(slug).map_err(|_| TenantError::NameNeedsId(name.chars().take(80).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a tenant operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("invalid tenant id {0:?}: use 2-63 characters a-z, 0-9 and '-', starting and ending with a letter or digit")]
    InvalidId(String),
    #[error("cannot derive a tenant id from the name {0:?}; give one explicitly")]
    NameNeedsId(String),
    #[error("invalid tenant name: {0}")]
    InvalidName(String),
    #[error("tenant {0} does not exist")]
    NotFound(TenantId),
    #[error("tenant {0} already exists")]
    Exists(TenantId),
    #[error("tenant {0} is suspended and cannot be changed")]
    Suspended(TenantId),
    #[error("all {0} tenant database slots are in use; retry shortly")]
    PoolsExhausted(usize),
    #[error(
        "tenant directory {path} belongs to tenant {found:?}, not {expected}; refusing to serve it"
    )]
    WrongOwner {
        path: PathBuf,
        expected: TenantId,
        found: String,
    },
    #[error("tenant storage error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Plan(#[from] crate::license::enforce::PlanError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<crate::license::enforce::CheckError> for TenantError {
    fn from(e: crate::license::enforce::CheckError) -> Self {
        match e {
            crate::license::enforce::CheckError::Plan(p) => TenantError::Plan(p),
            crate::license::enforce::CheckError::Db(d) => TenantError::Db(DbError::from(d)),
        }
    }
}

impl ErrorCode for TenantError {
    fn code(&self) -> Code {
        match self {
            TenantError::InvalidId(_) | TenantError::NameNeedsId(_) => Code::InvalidTenantId,
            TenantError::InvalidName(_) => Code::InvalidRequest,
            TenantError::NotFound(_) => Code::TenantNotFound,
            TenantError::Exists(_) => Code::TenantExists,
            TenantError::Suspended(_) => Code::TenantSuspended,
            TenantError::PoolsExhausted(_) => Code::TenantPoolsExhausted,
            TenantError::Db(db) => db.code(),
            TenantError::Plan(p) => p.code(),
            TenantError::WrongOwner { .. } | TenantError::Io { .. } => Code::Internal,
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            TenantError::Plan(p) => p.details(),
            _ => None,
        }
    }

    fn public_message(&self) -> String {
        match self {
            TenantError::Db(db) => db.public_message(),
            TenantError::Plan(p) => p.public_message(),
            TenantError::WrongOwner { .. } | TenantError::Io { .. } => {
                "tenant storage error; the request id finds the details in the server log".into()
            }
            other => other.to_string(),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TenantError + '_ {
    move |source| TenantError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a tenant's files live.
pub fn tenant_dir(data_dir: &Path, id: &TenantId) -> PathBuf {
    data_dir.join(TENANTS_DIR).join(id.as_str())
}

/// Path of a tenant's database.
pub fn tenant_db_path(data_dir: &Path, id: &TenantId) -> PathBuf {
    tenant_dir(data_dir, id).join(TENANT_DB_FILE)
}

pub(crate) fn validate_name(name: &str) -> Result<String, TenantError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(TenantError::InvalidName(
            "a tenant name must be 1-200 printable characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// Creates a tenant: its row in `system.db` and its directory with a migrated, stamped database.
/// Either both appear or neither does (see the module doc).
pub fn create_tenant(
    system: &SystemDb,
    data_dir: &Path,
    id: &TenantId,
    name: &str,
    options: &DbOptions,
    actor: &crate::audit::Actor,
    plan: &crate::license::Evaluation,
) -> Result<TenantRecord, TenantError> {
    let name = validate_name(name)?;
    let tenants_root = data_dir.join(TENANTS_DIR);
    let staging_root = tenants_root.join(STAGING_DIR);
    std::fs::create_dir_all(&staging_root).map_err(io_error(&staging_root))?;
    system
        .db
        .write(|tx| {
            let exists: bool = tx
                .query_row("SELECT 1 FROM tenants WHERE id = ?1", [id.as_str()], |_| {
                    Ok(true)
                })
                .optional()
                .map_err(DbError::from)?
                .unwrap_or(false);
            if exists {
                return Err(TenantError::Exists(id.clone()));
            }
            crate::license::enforce::check_new_tenant(tx, plan)?;
            let final_dir = tenant_dir(data_dir, id);
            if final_dir.exists() {
                set_aside_orphan(&tenants_root, &final_dir, id)?;
            }
            let staging = staging_root.join(format!("{}-{}", id, hex::encode(random_bytes::<6>())));
            let built = build_tenant_dir(&staging, id, options)
                .and_then(|()| std::fs::rename(&staging, &final_dir).map_err(io_error(&final_dir)))
                .and_then(|()| fsync_dir(&tenants_root).map_err(io_error(&tenants_root)));
            if let Err(e) = built {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
            let inserted = insert_tenant(tx, id.as_str(), &name).and_then(|record| {
                crate::audit::append(
                    tx,
                    actor,
                    &crate::audit::Event {
                        action: "tenant.create",
                        target: id.as_str(),
                        tenant_id: id.as_str(),
                        success: true,
                        detail: serde_json::json!({ "name": record.name }),
                    },
                )?;
                Ok(record)
            });
            match inserted {
                Ok(record) => Ok(record),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&final_dir);
                    Err(TenantError::Db(DbError::from(e)))
                }
            }
        })
        .inspect_err(|_| {
            // The commit itself may have failed after the rename: then no row exists, so remove the directory.
            if system.tenant(id.as_str()).ok().flatten().is_none() {
                let _ = std::fs::remove_dir_all(tenant_dir(data_dir, id));
            }
        })
}

fn build_tenant_dir(dir: &Path, id: &TenantId, options: &DbOptions) -> Result<(), TenantError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let db_path = dir.join(TENANT_DB_FILE);
    let mut conn = open_connection(&db_path, OpenMode::CreateIfMissing, options.busy_timeout)?;
    MigrationSet::tenant()
        .map_err(DbError::from)?
        .apply(&mut conn, &db_path)
        .map_err(DbError::from)?;
    conn.execute(
        "INSERT INTO tenant_meta (id, tenant_id, created_at) VALUES (1, ?1, ?2)",
        rusqlite::params![id.as_str(), crate::time_util::now_rfc3339()],
    )
    .map_err(DbError::from)?;
    conn.close().map_err(|(_, e)| DbError::from(e))?;
    std::fs::File::open(&db_path)
        .and_then(|f| f.sync_all())
        .map_err(io_error(&db_path))?;
    fsync_dir(dir).map_err(io_error(dir))
}

fn set_aside_orphan(tenants_root: &Path, dir: &Path, id: &TenantId) -> Result<(), TenantError> {
    let orphaned = tenants_root.join(ORPHANED_DIR);
    std::fs::create_dir_all(&orphaned).map_err(io_error(&orphaned))?;
    let target = orphaned.join(format!(
        "{}-{}",
        id,
        crate::time_util::now_utc().unix_timestamp()
    ));
    tracing::warn!(tenant = %id, from = %dir.display(), to = %target.display(),
        "a tenant directory without a tenant record was found (left by an interrupted creation); moving it aside");
    std::fs::rename(dir, &target).map_err(io_error(dir))
}

/// Migrates every tenant database listed in the system database. Used at start-up and by `enclave migrate`.
pub fn migrate_all_tenants(
    data_dir: &Path,
    tenants: &[TenantRecord],
    options: &DbOptions,
    dry_run: bool,
) -> Result<Vec<(String, MigrationReport)>, TenantError> {
    let set = MigrationSet::tenant().map_err(DbError::from)?;
    let mut reports = Vec::with_capacity(tenants.len());
    for record in tenants {
        let id = TenantId::parse(&record.id)?;
        let path = tenant_db_path(data_dir, &id);
        let mut conn = open_connection(&path, OpenMode::MustExist, options.busy_timeout)?;
        let report = if dry_run {
            let from = MigrationSet::current_version(&conn, &path.display().to_string())
                .map_err(DbError::from)?;
            MigrationReport {
                from,
                to: set.latest(),
                applied: crate::db::system::pending_names(&set, Some(&conn), &path)?,
            }
        } else {
            set.apply(&mut conn, &path).map_err(DbError::from)?
        };
        reports.push((record.id.clone(), report));
    }
    Ok(reports)
}

/// An open tenant database. Holding one keeps it open; it closes when the last holder drops it.
#[derive(Debug)]
pub struct TenantDb {
    id: TenantId,
    /// Which incarnation of the tenant this is: the record's `created_at` and the database file's inode.
    /// A tenant deleted and created again under the same id is a different tenant and must never be
    /// served the old cached pool.
    generation: (String, u64),
    /// `PRAGMA user_version` when opened: migrations run before a tenant is served, never while open.
    schema_version: u32,
    /// The database file's size and when it was measured (see [`TenantDb::database_bytes`]).
    measured_size: Mutex<Option<(std::time::Instant, u64)>>,
    db: Database,
    /// The tenant's knowledge bases outside its database (index, vectors, files).
    knowledge: Arc<TenantKnowledge>,
    _slot: SlotGuard,
}

impl TenantDb {
    pub fn id(&self) -> &TenantId {
        &self.id
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The tenant's knowledge-base index, vectors and files.
    pub fn knowledge(&self) -> &Arc<TenantKnowledge> {
        &self.knowledge
    }

    /// The schema version of the tenant database (read when it was opened).
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The size of the database file in bytes, measured at most once a second: a `stat` on every
    /// request is a measurable share of a light API call, and a size a second old is as useful.
    pub fn database_bytes(&self) -> u64 {
        let mut measured = self
            .measured_size
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *measured {
            Some((at, bytes)) if at.elapsed() < std::time::Duration::from_secs(1) => bytes,
            _ => {
                let bytes = std::fs::metadata(self.db.path()).map_or(0, |m| m.len());
                *measured = Some((std::time::Instant::now(), bytes));
                bytes
            }
        }
    }
}

/// Counts live tenant databases; see the module doc for the invariant it upholds.
#[derive(Debug, Default)]
struct Slots {
    live: Mutex<usize>,
    freed: Condvar,
    high_water: AtomicUsize,
}

#[derive(Debug)]
struct SlotGuard(Arc<Slots>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut live = self
            .0
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *live = live.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

/// The bounded set of open tenant databases (an LRU keyed by tenant id).
pub struct TenantRegistry {
    data_dir: PathBuf,
    system: Arc<SystemDb>,
    options: DbOptions,
    cap: usize,
    cache: Mutex<LruCache<TenantId, Arc<TenantDb>>>,
    slots: Arc<Slots>,
    /// Tenants resolved within [`RECENT_TTL`]: their record and a weak handle on the open database, so a
    /// busy tenant is resolved without reading `system.db` (and without the blocking pool). Weak: it
    /// never keeps an evicted database open, so the live cap still holds.
    recent: Mutex<std::collections::HashMap<TenantId, RecentTenant>>,
    /// The knowledge-base state (index, vectors) of each open tenant incarnation, shared by every
    /// `TenantDb` of it (an evicted one still held by a request and its reopened successor), so there is
    /// one index writer and one vector cache per tenant. Weak: it lives as long as a `TenantDb` does.
    knowledge: Mutex<std::collections::HashMap<Incarnation, Weak<TenantKnowledge>>>,
}

/// How long a resolved tenant record is reused. Lifecycle changes made through this server clear it at
/// once ([`TenantRegistry::forget_recent`]); changes made by the CLI take effect within this time.
pub const RECENT_TTL: std::time::Duration = std::time::Duration::from_secs(1);

type RecentTenant = (TenantRecord, std::sync::Weak<TenantDb>, std::time::Instant);

/// A tenant id with its incarnation (record `created_at`, database inode).
type Incarnation = (TenantId, (String, u64));

impl TenantRegistry {
    pub fn new(
        data_dir: PathBuf,
        system: Arc<SystemDb>,
        options: DbOptions,
        cap: usize,
    ) -> TenantRegistry {
        let cap = cap.max(1);
        TenantRegistry {
            data_dir,
            system,
            options,
            cap,
            cache: Mutex::new(LruCache::new(NonZeroUsize::MIN.saturating_add(cap - 1))),
            recent: Mutex::new(std::collections::HashMap::new()),
            knowledge: Mutex::new(std::collections::HashMap::new()),
            slots: Arc::new(Slots::default()),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Tenant databases alive now (open in the cache or still held by a request).
    pub fn live(&self) -> usize {
        *self
            .slots
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most tenant databases ever alive at once since start.
    pub fn high_water(&self) -> usize {
        self.slots.high_water.load(Ordering::Relaxed)
    }

    pub fn system(&self) -> &SystemDb {
        &self.system
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<TenantId, Arc<TenantDb>>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn recent(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<TenantId, RecentTenant>> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A tenant resolved within [`RECENT_TTL`] whose database is still open: no I/O, safe on an async
    /// worker.
    pub fn get_recent(&self, id: &TenantId) -> Option<(TenantRecord, Arc<TenantDb>)> {
        let recent = self.recent();
        let (record, db, at) = recent.get(id)?;
        if at.elapsed() >= RECENT_TTL {
            return None;
        }
        Some((record.clone(), db.upgrade()?))
    }

    /// Forgets recently resolved tenants (after a lifecycle change: status, name, deletion).
    pub fn forget_recent(&self) {
        self.recent().clear();
    }

    /// The open database of tenant `id`, opening it (and closing the least recently used) if needed.
    /// Blocking: call through `run_blocking`.
    pub fn get(&self, id: &TenantId) -> Result<(TenantRecord, Arc<TenantDb>), TenantError> {
        let (record, db) = self.get_uncached(id)?;
        let mut recent = self.recent();
        if recent.len() >= 4 * self.cap {
            recent.retain(|_, (_, _, at)| at.elapsed() < RECENT_TTL);
        }
        recent.insert(
            id.clone(),
            (
                record.clone(),
                Arc::downgrade(&db),
                std::time::Instant::now(),
            ),
        );
        Ok((record, db))
    }

    fn get_uncached(&self, id: &TenantId) -> Result<(TenantRecord, Arc<TenantDb>), TenantError> {
        let record = self
            .system
            .tenant(id.as_str())?
            .filter(|r| r.status != "deleting")
            .ok_or_else(|| TenantError::NotFound(id.clone()))?;
        {
            let mut cache = self.cache();
            match cache.get(id) {
                Some(open) if open.generation == self.generation_of(id, &record) => {
                    return Ok((record, open.clone()));
                }
                Some(_) => drop(cache.pop(id)),
                None => {}
            }
        }
        let slot = self.reserve_slot()?;
        let opened = Arc::new(self.open(id, self.generation_of(id, &record), slot)?);
        let mut cache = self.cache();
        if let Some(raced) = cache.get(id).filter(|t| t.generation == opened.generation) {
            // Another request opened it meanwhile; use that one, ours closes as it drops.
            return Ok((record, raced.clone()));
        }
        let evicted = cache.push(id.clone(), opened.clone());
        drop(cache);
        drop(evicted);
        Ok((record, opened))
    }

    fn reserve_slot(&self) -> Result<SlotGuard, TenantError> {
        let deadline = std::time::Instant::now() + SLOT_WAIT;
        let mut live = self
            .slots
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if *live < self.cap {
                *live += 1;
                self.slots.high_water.fetch_max(*live, Ordering::Relaxed);
                return Ok(SlotGuard(self.slots.clone()));
            }
            // Make room: drop the least recently used entry from the cache. Its database closes now,
            // or when the last request holding it finishes. The cache lock is taken without holding
            // `live` to keep a single lock order (cache, then live) everywhere.
            drop(live);
            let evicted = self.cache().pop_lru();
            let evicted_any = evicted.is_some();
            drop(evicted);
            live = self
                .slots
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *live < self.cap || evicted_any {
                continue;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(TenantError::PoolsExhausted(self.cap));
            }
            live = self
                .slots
                .freed
                .wait_timeout(live, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn generation_of(&self, id: &TenantId, record: &TenantRecord) -> (String, u64) {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(tenant_db_path(&self.data_dir, id)).map_or(0, |m| m.ino());
        (record.created_at.clone(), inode)
    }

    fn open(
        &self,
        id: &TenantId,
        generation: (String, u64),
        slot: SlotGuard,
    ) -> Result<TenantDb, TenantError> {
        let path = tenant_db_path(&self.data_dir, id);
        let db = Database::open(&path, &self.options)?;
        let (owner, schema_version): (Option<String>, u32) = db.read(|c| {
            let owner = c
                .query_row("SELECT tenant_id FROM tenant_meta WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()?;
            let version = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok::<_, rusqlite::Error>((owner, version))
        })?;
        if owner.as_deref() != Some(id.as_str()) {
            return Err(TenantError::WrongOwner {
                path,
                expected: id.clone(),
                found: owner.unwrap_or_default(),
            });
        }
        tracing::debug!(tenant = %id, "tenant database opened");
        let knowledge = {
            let mut shared = self
                .knowledge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            shared.retain(|_, k| k.strong_count() > 0);
            let key = (id.clone(), generation.clone());
            match shared.get(&key).and_then(Weak::upgrade) {
                Some(k) => k,
                None => {
                    let k = Arc::new(TenantKnowledge::new(&tenant_dir(&self.data_dir, id)));
                    shared.insert(key, Arc::downgrade(&k));
                    k
                }
            }
        };
        Ok(TenantDb {
            id: id.clone(),
            knowledge,
            generation,
            schema_version,
            measured_size: Mutex::new(None),
            db,
            _slot: slot,
        })
    }

    /// Creates a tenant (see [`create_tenant`]).
    pub fn create(
        &self,
        id: &TenantId,
        name: &str,
        actor: &crate::audit::Actor,
        plan: &crate::license::Evaluation,
    ) -> Result<TenantRecord, TenantError> {
        create_tenant(
            &self.system,
            &self.data_dir,
            id,
            name,
            &self.options,
            actor,
            plan,
        )
    }

    /// Closes every cached tenant database, checkpointing its WAL. Called at shutdown.
    pub fn close_all(&self) {
        let drained: Vec<(TenantId, Arc<TenantDb>)> = {
            let mut cache = self.cache();
            let mut all = Vec::with_capacity(cache.len());
            while let Some(entry) = cache.pop_lru() {
                all.push(entry);
            }
            all
        };
        for (id, tenant) in drained {
            if let Err(e) = tenant.db.checkpoint() {
                tracing::warn!(tenant = %id, error = %e, "checkpoint at shutdown failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::system::migrate_system;
    use crate::license::enforce::unlimited_for_tests;

    fn setup(cap: usize) -> (tempfile::TempDir, TenantRegistry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = DbOptions::new(2000, 2);
        migrate_system(dir.path(), &options, false).expect("migrate");
        let system = Arc::new(SystemDb::open(dir.path(), &options).expect("open"));
        let registry = TenantRegistry::new(dir.path().to_path_buf(), system, options, cap);
        (dir, registry)
    }

    #[test]
    fn ids_are_validated_and_derived_from_names() {
        for good in ["ab", "acme", "acme-corp-2", &"a".repeat(63)] {
            TenantId::parse(good).expect(good);
        }
        for bad in [
            "a",
            "-ab",
            "ab-",
            "Acme",
            "a/b",
            "..",
            "a b",
            "",
            &"a".repeat(64),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(
            TenantId::from_name("  Acme Corp. (EU) ")
                .expect("slug")
                .as_str(),
            "acme-corp-eu"
        );
        assert!(TenantId::from_name("!!!").is_err());
    }

    #[test]
    fn create_then_duplicate_then_orphan_is_set_aside() {
        let (dir, registry) = setup(4);
        let id = TenantId::parse("acme").expect("id");
        let record = registry
            .create(
                &id,
                "Acme",
                &crate::audit::Actor::cli(),
                &unlimited_for_tests(),
            )
            .expect("create");
        assert_eq!(record.status, "active");
        assert!(tenant_db_path(dir.path(), &id).is_file());
        assert!(matches!(
            registry.create(
                &id,
                "Again",
                &crate::audit::Actor::cli(),
                &unlimited_for_tests()
            ),
            Err(TenantError::Exists(_))
        ));

        let ghost = TenantId::parse("ghost").expect("id");
        std::fs::create_dir_all(tenant_dir(dir.path(), &ghost)).expect("orphan");
        std::fs::write(tenant_dir(dir.path(), &ghost).join("junk"), b"x").expect("junk");
        registry
            .create(
                &ghost,
                "Ghost",
                &crate::audit::Actor::cli(),
                &unlimited_for_tests(),
            )
            .expect("create over orphan");
        assert!(!tenant_dir(dir.path(), &ghost).join("junk").exists());
        let orphans = std::fs::read_dir(dir.path().join(TENANTS_DIR).join(ORPHANED_DIR))
            .expect("orphaned dir")
            .count();
        assert_eq!(orphans, 1);
        let staging_left = std::fs::read_dir(dir.path().join(TENANTS_DIR).join(STAGING_DIR))
            .expect("staging")
            .count();
        assert_eq!(staging_left, 0);
    }

    #[test]
    fn registry_never_exceeds_its_cap_and_keeps_tenants_apart() {
        let (_dir, registry) = setup(3);
        let ids: Vec<TenantId> = (0..10)
            .map(|i| TenantId::parse(&format!("t{i:02}")).expect("id"))
            .collect();
        for id in &ids {
            registry
                .create(
                    id,
                    id.as_str(),
                    &crate::audit::Actor::cli(),
                    &unlimited_for_tests(),
                )
                .expect("create");
        }
        for round in 0..3 {
            for id in &ids {
                let (_, tenant) = registry.get(id).expect("get");
                tenant
                    .db()
                    .write(|tx| {
                        tx.execute(
                            "INSERT OR REPLACE INTO settings (key, value, updated_at) VALUES ('owner', json_quote(?1), '')",
                            [format!("{}-{round}", id)],
                        )
                        .map_err(DbError::from)
                    })
                    .expect("write");
                assert!(registry.live() <= 3);
            }
        }
        assert!(registry.high_water() <= 3);
        for id in &ids {
            let (_, tenant) = registry.get(id).expect("get");
            let owner: String = tenant
                .db()
                .read(|c| {
                    c.query_row(
                        "SELECT json_extract(value, '$') FROM settings WHERE key = 'owner'",
                        [],
                        |r| r.get(0),
                    )
                })
                .expect("read");
            assert_eq!(owner, format!("{id}-2"));
        }
    }

    #[test]
    fn held_pools_block_new_opens_until_released() {
        let (_dir, registry) = setup(1);
        let a = TenantId::parse("aa").expect("id");
        let b = TenantId::parse("bb").expect("id");
        registry
            .create(&a, "A", &crate::audit::Actor::cli(), &unlimited_for_tests())
            .expect("a");
        registry
            .create(&b, "B", &crate::audit::Actor::cli(), &unlimited_for_tests())
            .expect("b");
        let registry = Arc::new(registry);
        let (_, held) = registry.get(&a).expect("a open");
        let r2 = registry.clone();
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || r2.get(&b2).map(|(_, t)| t.id().clone()));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(registry.live(), 1, "b must wait while a is held");
        drop(held);
        let opened = waiter
            .join()
            .expect("join")
            .expect("b opened after a was released");
        assert_eq!(opened, b);
        assert_eq!(registry.high_water(), 1);
    }

    #[test]
    fn a_tenant_recreated_under_the_same_id_never_gets_the_old_pool() {
        let (dir, registry) = setup(4);
        let id = TenantId::parse("again").expect("id");
        registry
            .create(
                &id,
                "First",
                &crate::audit::Actor::cli(),
                &unlimited_for_tests(),
            )
            .expect("create");
        let (_, first) = registry.get(&id).expect("open");
        first
            .db()
            .write(|tx| {
                tx.execute("INSERT INTO settings VALUES ('who', '\"first\"', '')", [])
                    .map_err(DbError::from)
            })
            .expect("write");
        drop(first);
        // Purge and create again with the same id while the old pool is still cached.
        let actor = crate::audit::Actor::cli();
        lifecycle::mark_for_deletion(registry.system(), &id, 0, &actor).expect("mark");
        lifecycle::purge_due(registry.system(), dir.path(), &actor).expect("purge");
        registry
            .create(&id, "Second", &actor, &unlimited_for_tests())
            .expect("recreate");
        let (_, second) = registry.get(&id).expect("open");
        let rows: i64 = second
            .db()
            .read(|c| c.query_row("SELECT count(*) FROM settings", [], |r| r.get(0)))
            .expect("count");
        assert_eq!(rows, 0, "the new tenant must not see the old tenant's data");
    }

    #[test]
    fn a_database_stamped_for_another_tenant_is_refused() {
        let (dir, registry) = setup(2);
        let a = TenantId::parse("aa").expect("id");
        let b = TenantId::parse("bb").expect("id");
        registry
            .create(&a, "A", &crate::audit::Actor::cli(), &unlimited_for_tests())
            .expect("a");
        registry
            .create(&b, "B", &crate::audit::Actor::cli(), &unlimited_for_tests())
            .expect("b");
        std::fs::copy(
            tenant_db_path(dir.path(), &a),
            tenant_db_path(dir.path(), &b),
        )
        .expect("copy");
        assert!(matches!(
            registry.get(&b),
            Err(TenantError::WrongOwner { .. })
        ));
    }
}
