//! LDAP and Active Directory sign-in (a licensed feature, `ldap`).
//!
//! - [`settings`]: what an administrator configures per directory; several directories are tried in
//!   order of `priority` (lowest first).
//! - [`client`]: the ldap3 side — failover over URLs, TLS (LDAPS or StartTLS, system roots plus a CA
//!   bundle), timeouts on every step, and the sign-in sequence: refuse an empty password before any
//!   traffic (RFC 4513 unauthenticated bind), escape the login (RFC 4515), service bind, search with size
//!   limit 2, exactly one entry, bind as that DN on a fresh connection, read attributes and groups.
//! - this module: storage of directories (the service password sealed with the instance key), and
//!   **provisioning**: the local account is created or updated keyed by the directory's stable id
//!   (`entryUUID` / `objectGUID`, never e-mail), and its memberships are set from the group mappings
//!   (highest role per tenant wins; memberships of directory accounts are managed by the directory).
//! - [`sync`]: the scheduled synchronisation and its safety stops.
//!
//! Local accounts are tried first, so the break-glass administrator signs in when every directory is
//! down; a local account and a directory account never share a username.

pub mod client;
pub mod settings;
pub mod sync;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::db::system::SystemDb;
use crate::error::{Code, ErrorCode};
use crate::identity::{Role, User};
use crate::license::Evaluation;
use client::{DirectoryUser, Trace};
use settings::Settings;

/// What can go wrong with a directory.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("invalid directory settings: {0}")]
    InvalidSettings(String),
    #[error("no directory server could be reached: {0}")]
    Unavailable(String),
    #[error("the directory service account {0} could not bind (check its DN and password)")]
    ServiceBindFailed(String),
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("the user filter matched more than one entry")]
    Ambiguous,
    #[error("{0}")]
    Denied(String),
    #[error("no directory with id {0}")]
    NotFound(String),
    #[error("a synchronisation of directory {0} is already running")]
    SyncRunning(String),
    #[error("the username {0:?} is already used by a local account or another directory")]
    UsernameTaken(String),
    #[error("the directory's service password cannot be read: {0}")]
    Secret(String),
    #[error(transparent)]
    Plan(#[from] crate::license::enforce::PlanError),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
}

impl From<crate::license::enforce::CheckError> for DirectoryError {
    fn from(e: crate::license::enforce::CheckError) -> Self {
        match e {
            crate::license::enforce::CheckError::Plan(p) => DirectoryError::Plan(p),
            crate::license::enforce::CheckError::Db(d) => DirectoryError::Db(d),
        }
    }
}

impl ErrorCode for DirectoryError {
    fn code(&self) -> Code {
        match self {
            DirectoryError::InvalidSettings(_) => Code::InvalidRequest,
            DirectoryError::Unavailable(_)
            | DirectoryError::ServiceBindFailed(_)
            | DirectoryError::Secret(_) => Code::DirectoryUnavailable,
            DirectoryError::InvalidCredentials | DirectoryError::Ambiguous => {
                Code::InvalidCredentials
            }
            DirectoryError::Denied(_) => Code::DirectoryAccessDenied,
            DirectoryError::NotFound(_) => Code::DirectoryNotFound,
            DirectoryError::SyncRunning(_) => Code::DirectorySyncRunning,
            DirectoryError::UsernameTaken(_) => Code::UserExists,
            DirectoryError::Plan(p) => p.code(),
            DirectoryError::Db(_) | DirectoryError::Database(_) => Code::DatabaseUnavailable,
        }
    }

    fn public_message(&self) -> String {
        match self {
            // Sign-in never says whether the user exists or the filter was ambiguous.
            DirectoryError::InvalidCredentials | DirectoryError::Ambiguous => {
                "wrong username or password".into()
            }
            DirectoryError::Unavailable(_) | DirectoryError::ServiceBindFailed(_) | DirectoryError::Secret(_) => {
                "the company directory cannot be reached right now; try again later or ask your administrator (local accounts still work)".into()
            }
            DirectoryError::Plan(p) => p.public_message(),
            DirectoryError::Db(_) | DirectoryError::Database(_) => {
                "the database is busy; retry shortly".into()
            }
            other => other.to_string(),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            DirectoryError::Plan(p) => p.details(),
            _ => None,
        }
    }
}

/// A configured directory, as stored (without its password).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Directory {
    pub id: String,
    pub name: String,
    pub priority: i64,
    pub enabled: bool,
    pub settings: Settings,
    /// Whether a service password is stored (it is never shown).
    pub bind_password_set: bool,
    /// When the scheduled synchronisation runs next (UTC); none when disabled or unscheduled.
    pub next_sync_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    bind_password_sealed: Option<String>,
}

fn directory_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Directory> {
    let text: String = r.get("settings")?;
    let settings: Settings = serde_json::from_str(&text).unwrap_or_default();
    let sealed: Option<String> = r.get("bind_password_sealed")?;
    let enabled = r.get::<_, i64>("enabled")? == 1;
    let next_sync_at = if enabled && !settings.sync_schedule.trim().is_empty() {
        crate::scheduler::parse(&settings.sync_schedule)
            .ok()
            .and_then(|schedule| crate::scheduler::next_run(&schedule))
    } else {
        None
    };
    Ok(Directory {
        id: r.get("id")?,
        name: r.get("name")?,
        priority: r.get("priority")?,
        enabled,
        settings,
        bind_password_set: sealed.is_some(),
        next_sync_at,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        bind_password_sealed: sealed,
    })
}

/// Every directory, in the order they are tried.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<Directory>> {
    let mut stmt = conn.prepare(
        "SELECT id, name, priority, enabled, settings, bind_password_sealed, created_at, updated_at
         FROM directories ORDER BY priority, name",
    )?;
    let rows = stmt.query_map([], directory_from_row)?;
    rows.collect()
}

pub fn get(conn: &Connection, id: &str) -> Result<Directory, DirectoryError> {
    conn.query_row(
        "SELECT id, name, priority, enabled, settings, bind_password_sealed, created_at, updated_at
         FROM directories WHERE id = ?1",
        [id],
        directory_from_row,
    )
    .optional()?
    .ok_or_else(|| DirectoryError::NotFound(id.to_string()))
}

/// Reads one directory from the system database (blocking).
pub fn find(system: &SystemDb, id: &str) -> Result<Directory, DirectoryError> {
    system.db.read(|c| Ok(get(c, id)))?
}

impl Directory {
    /// The service password: from `bind_password_file` when set, else the sealed copy.
    pub fn service_password(&self, data_dir: &std::path::Path) -> Result<String, DirectoryError> {
        if let Some(file) = self
            .settings
            .bind_password_file
            .as_deref()
            .filter(|f| !f.is_empty())
        {
            return std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| DirectoryError::Secret(format!("{file}: {e}")));
        }
        match &self.bind_password_sealed {
            None => Ok(String::new()),
            Some(sealed) => crate::secrets::open_sealed(data_dir, sealed)
                .map_err(|e| DirectoryError::Secret(e.to_string())),
        }
    }
}

/// What an administrator sends to create or change a directory.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct DirectoryInput {
    pub name: String,
    #[serde(default = "default_priority")]
    pub priority: i64,
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub settings: Settings,
    /// The service password; omitted on a change keeps the stored one, `""` removes it.
    pub bind_password: Option<String>,
}

fn default_priority() -> i64 {
    100
}
fn default_true() -> bool {
    true
}

/// Creates (`id` None) or replaces a directory; audited.
pub fn save(
    system: &SystemDb,
    data_dir: &std::path::Path,
    id: Option<&str>,
    input: &DirectoryInput,
    actor: &crate::audit::Actor,
) -> Result<Directory, DirectoryError> {
    let name = input.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(DirectoryError::InvalidSettings(
            "name: 1 to 100 characters".into(),
        ));
    }
    input.settings.validate()?;
    let sealed = crate::secrets::seal_change(data_dir, input.bind_password.as_deref())
        .map_err(|e| DirectoryError::Secret(e.to_string()))?;
    let settings_json = serde_json::to_string(&input.settings)
        .map_err(|e| DirectoryError::InvalidSettings(e.to_string()))?;
    let now = crate::time_util::now_rfc3339();
    let id = id.map_or_else(
        || hex::encode(crate::tenancy::random_bytes::<8>()),
        str::to_string,
    );
    system.db.write(|tx| {
        let exists = tx
            .query_row("SELECT 1 FROM directories WHERE id = ?1", [&id], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            tx.execute(
                "UPDATE directories SET name = ?2, priority = ?3, enabled = ?4, settings = ?5, updated_at = ?6
                 WHERE id = ?1",
                rusqlite::params![id, name, input.priority, input.enabled, settings_json, now],
            )?;
        } else {
            tx.execute(
                "INSERT INTO directories (id, name, priority, enabled, settings, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                rusqlite::params![id, name, input.priority, input.enabled, settings_json, now],
            )?;
        }
        if let Some(sealed) = &sealed {
            tx.execute(
                "UPDATE directories SET bind_password_sealed = ?2 WHERE id = ?1",
                rusqlite::params![id, sealed],
            )?;
        }
        crate::audit::append(
            tx,
            actor,
            &crate::audit::Event {
                action: if exists { "directory.update" } else { "directory.create" },
                target: &id,
                tenant_id: "",
                success: true,
                detail: serde_json::json!({
                    "name": name, "urls": input.settings.urls, "security": input.settings.security,
                    "skip_tls_verify": input.settings.skip_tls_verify,
                    "password_changed": sealed.is_some(),
                }),
            },
        )?;
        get(tx, &id)
    })
}

/// Removes a directory. Its accounts stay (deactivated) so their history keeps its names.
pub fn delete(
    system: &SystemDb,
    id: &str,
    actor: &crate::audit::Actor,
) -> Result<(), DirectoryError> {
    system.db.write(|tx| {
        get(tx, id)?;
        let users: Vec<String> = {
            let mut stmt = tx.prepare("SELECT id FROM users WHERE directory_id = ?1")?;
            let rows = stmt.query_map([id], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for user in &users {
            deactivate_user(tx, user)?;
        }
        tx.execute("DELETE FROM directories WHERE id = ?1", [id])?;
        crate::audit::append(
            tx,
            actor,
            &crate::audit::Event {
                action: "directory.delete",
                target: id,
                tenant_id: "",
                success: true,
                detail: serde_json::json!({ "accounts_deactivated": users.len() }),
            },
        )?;
        Ok(())
    })
}

/// Deactivates an account and ends its access at once: sessions deleted, its API keys revoked.
pub fn deactivate_user(conn: &Connection, user_id: &str) -> rusqlite::Result<()> {
    let now = crate::time_util::now_rfc3339();
    conn.execute(
        "UPDATE users SET state = 'deactivated', updated_at = ?2 WHERE id = ?1",
        rusqlite::params![user_id, now],
    )?;
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
    conn.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE created_by = ?1 AND revoked_at IS NULL",
        rusqlite::params![user_id, crate::time_util::now_utc().unix_timestamp()],
    )?;
    Ok(())
}

/// The local account for a directory user after sign-in or sync: created or updated by stable id;
/// memberships set from the mappings (tenants that do not exist are skipped).
pub fn provision(
    conn: &Connection,
    directory: &Directory,
    user: &DirectoryUser,
    plan: &Evaluation,
    reactivate: bool,
) -> Result<User, DirectoryError> {
    let username = user.username.trim().to_lowercase();
    if username.chars().count() < 2 || username.len() > 64 || username.chars().any(char::is_control)
    {
        return Err(DirectoryError::Denied(format!(
            "the directory username {:?} cannot be used here (2 to 64 characters)",
            user.username
        )));
    }
    let now = crate::time_util::now_rfc3339();
    let existing: Option<(String, String)> = conn
        .query_row(
            "SELECT id, state FROM users WHERE directory_id = ?1 AND external_id = ?2",
            [&directory.id, &user.external_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let taken_by_other: Option<String> = conn
        .query_row(
            "SELECT id FROM users WHERE username = ?1",
            [&username],
            |r| r.get(0),
        )
        .optional()?;
    let display = user
        .display_name
        .clone()
        .unwrap_or_else(|| user.username.clone());
    let id = match existing {
        Some((id, state)) => {
            if taken_by_other.as_deref().is_some_and(|other| other != id) {
                return Err(DirectoryError::UsernameTaken(username));
            }
            if state == "suspended" {
                return Err(DirectoryError::Denied(
                    "this account is suspended in Enclave; ask your administrator".into(),
                ));
            }
            if state == "deactivated" && !reactivate {
                return Err(DirectoryError::Denied("this account is deactivated".into()));
            }
            if state == "deactivated" {
                crate::license::enforce::check_new_user(conn, plan)?;
            }
            conn.execute(
                "UPDATE users SET username = ?2, display_name = ?3, email = ?4, directory_dn = ?5,
                        state = 'active', updated_at = ?6
                 WHERE id = ?1",
                rusqlite::params![id, username, display, user.email, user.dn, now],
            )?;
            id
        }
        None => {
            if taken_by_other.is_some() {
                return Err(DirectoryError::UsernameTaken(username));
            }
            crate::license::enforce::check_new_user(conn, plan)?;
            let id = hex::encode(crate::tenancy::random_bytes::<16>());
            conn.execute(
                "INSERT INTO users (id, username, display_name, email, password_hash, state, is_system_admin,
                                    must_change_password, created_at, updated_at, directory_id, external_id, directory_dn)
                 VALUES (?1, ?2, ?3, ?4, NULL, 'active', 0, 0, ?5, ?5, ?6, ?7, ?8)",
                rusqlite::params![id, username, display, user.email, now, directory.id, user.external_id, user.dn],
            )?;
            id
        }
    };
    set_memberships(
        conn,
        &id,
        &settings::roles_for(&directory.settings.mappings, &user.groups),
        plan,
    )?;
    crate::identity::find_user_by_id(conn, &id)?.ok_or_else(|| {
        DirectoryError::Unavailable("the account vanished while it was saved".into())
    })
}

fn set_memberships(
    conn: &Connection,
    user_id: &str,
    roles: &[(String, Role)],
    plan: &Evaluation,
) -> Result<(), DirectoryError> {
    let current: Vec<(String, String)> = {
        let mut stmt =
            conn.prepare("SELECT tenant_id, role FROM memberships WHERE user_id = ?1")?;
        let rows = stmt.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (tenant, _) in &current {
        if !roles.iter().any(|(t, _)| t == tenant) {
            conn.execute(
                "DELETE FROM memberships WHERE user_id = ?1 AND tenant_id = ?2",
                [user_id, tenant],
            )?;
        }
    }
    let now = crate::time_util::now_rfc3339();
    for (tenant, role) in roles {
        let live: bool = conn
            .query_row(
                "SELECT 1 FROM tenants WHERE id = ?1 AND status != 'deleted'",
                [tenant],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false);
        if !live {
            continue;
        }
        match current.iter().find(|(t, _)| t == tenant) {
            Some((_, r)) if r == role.as_str() => {}
            Some(_) => {
                conn.execute(
                    "UPDATE memberships SET role = ?3 WHERE user_id = ?1 AND tenant_id = ?2",
                    rusqlite::params![user_id, tenant, role.as_str()],
                )?;
            }
            None => {
                crate::license::enforce::check_new_member(conn, plan, tenant)?;
                conn.execute(
                    "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![tenant, user_id, role.as_str(), now],
                )?;
            }
        }
    }
    Ok(())
}

/// Signs a user in through the enabled directories, in priority order: the first directory that
/// knows the login decides. `Ok(None)` when no directory is configured.
pub async fn sign_in(
    state: &crate::state::AppState,
    login: &str,
    password: &str,
) -> Result<Option<User>, crate::error::ApiError> {
    let system = state.system.clone();
    let directories = crate::db::run_blocking(move || system.db.read(list)).await?;
    let enabled: Vec<Directory> = directories.into_iter().filter(|d| d.enabled).collect();
    if enabled.is_empty() {
        return Ok(None);
    }
    let plan = state.license.plan();
    crate::license::enforce::require_feature(&plan, crate::license::Feature::Ldap, false)
        .map_err(DirectoryError::from)?;
    let mut unavailable = None;
    for directory in enabled {
        let password_of_service = directory.service_password(&state.config.storage.data_dir)?;
        let mut trace = Trace::default();
        match client::authenticate(
            &directory.settings,
            &password_of_service,
            login,
            password,
            &mut trace,
        )
        .await
        {
            Ok(found) => {
                let system = state.system.clone();
                let plan = plan.clone();
                let user = crate::db::run_blocking(move || {
                    system.db.write(|tx| {
                        let user = provision(tx, &directory, &found, &plan, true)?;
                        crate::audit::append(
                            tx,
                            &crate::audit::Actor::cli(),
                            &crate::audit::Event {
                                action: "directory.login_provision",
                                target: &user.username,
                                tenant_id: "",
                                success: true,
                                detail: serde_json::json!({"directory": directory.id, "dn": found.dn, "groups": found.groups.len()}),
                            },
                        )?;
                        Ok::<_, DirectoryError>(user)
                    })
                })
                .await?;
                return Ok(Some(user));
            }
            Err(DirectoryError::InvalidCredentials) => {}
            Err(e @ (DirectoryError::Unavailable(_) | DirectoryError::ServiceBindFailed(_))) => {
                tracing::warn!(directory = %directory.id, error = %e, "directory unavailable at sign-in");
                unavailable = Some(e);
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(unavailable
        .unwrap_or(DirectoryError::InvalidCredentials)
        .into())
}
