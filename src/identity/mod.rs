//! Identity: local accounts, tenant memberships with roles, and the permission matrix.
//!
//! Accounts are global (system database); a person reaches a tenant through a membership that carries
//! one role. [`Role::allows`] is the permission matrix (documented in `docs/permissions.md`) and the only
//! place that decides what a role may do. System administrators manage tenants and users and act in
//! every tenant with the `admin` role.
//!
//! Submodules: [`password`] (argon2id and policy), [`session`] (browser sessions, cookies, CSRF),
//! [`throttle`] (login rate limits), [`principal`] (the extractors that authenticate a request).

pub mod api_key;
pub mod invitation;
pub mod password;
pub mod principal;
pub mod session;
pub mod throttle;
pub mod totp;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::db::system::SystemDb;
use crate::db::DbError;
use crate::error::{Code, ErrorCode};
use crate::time_util::now_rfc3339;

/// A role in one tenant, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Owner,
}

/// Something a caller may want to do inside a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the tenant, its settings and its content.
    Read,
    /// Create and change content (documents, apps, conversations: later features).
    Write,
    /// Change tenant settings, members (except owners) and API keys.
    Manage,
    /// Add or remove owners, rename or delete the tenant.
    Own,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// The permission matrix.
    pub fn allows(self, action: Action) -> bool {
        let needed = match action {
            Action::Read => Role::Viewer,
            Action::Write => Role::Editor,
            Action::Manage => Role::Admin,
            Action::Own => Role::Owner,
        };
        self >= needed
    }
}

/// Account states. Only `active` accounts can sign in; suspending or deactivating ends every session.
pub const USER_STATES: [&str; 3] = ["active", "suspended", "deactivated"];

/// An account as the API shows it (never with its password hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// `active`, `suspended` or `deactivated`.
    pub state: String,
    pub is_system_admin: bool,
    /// Set for the bootstrap administrator and after a reset: the next sign-in must choose a new password.
    pub must_change_password: bool,
    pub created_at: String,
}

/// A membership of the current user, for the tenant switcher.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Membership {
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: Role,
}

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("sign in first")]
    Unauthenticated,
    #[error("the session expired; sign in again")]
    SessionExpired,
    #[error("the password must be changed before anything else")]
    PasswordChangeRequired,
    #[error(
        "missing or wrong CSRF token: send the X-CSRF-Token header from GET /api/v1/auth/session"
    )]
    CsrfFailed,
    #[error("only system administrators may do this")]
    NotSystemAdmin,
    #[error("your role in this tenant does not allow this")]
    RoleTooLow,
    #[error("too many failed sign-in attempts; retry in {0} seconds")]
    Throttled(u64),
    #[error("{0}")]
    WeakPassword(#[from] password::PolicyError),
    #[error("invalid username {0:?}: use 2-64 characters a-z, 0-9, '.', '_', '-', '@'")]
    InvalidUsername(String),
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("user {0} does not exist")]
    UserNotFound(String),
    #[error("invalid role {0:?}: use owner, admin, editor or viewer")]
    InvalidRole(String),
    #[error("invalid account state {0:?}: use active, suspended or deactivated")]
    InvalidState(String),
    #[error(
        "you cannot suspend, deactivate or demote your own account; ask another administrator"
    )]
    SelfLockout,
    #[error("invalid scope {0:?}: give one or more of read, write, admin, inference")]
    InvalidScope(String),
    #[error("an API key needs a name of 1-100 characters")]
    InvalidKeyName,
    #[error("the expiry must be in the future")]
    InvalidExpiry,
    #[error("a rate limit must be between 1 and 10,000,000 requests a minute (or null for the plan's default)")]
    InvalidRateLimit,
    #[error("API key {0} does not exist in this tenant")]
    KeyNotFound(String),
    #[error("the API key is not valid")]
    InvalidApiKey,
    #[error("the API key has expired")]
    ApiKeyExpired,
    #[error("the API key has been revoked")]
    ApiKeyRevoked,
    #[error("the API key's scopes do not allow this")]
    InsufficientScope,
    #[error("this API key lacks the inference scope, which the /v1 API needs")]
    NoInferenceScope,
    #[error(
        "this API key has only the inference scope: it works with the /v1 API, not the tenant API"
    )]
    InferenceOnlyKey,
    #[error("API keys cannot be used for this; sign in as a person")]
    KeyNotAllowed,
    #[error("enter the code from your authenticator app (or a recovery code)")]
    TotpRequired,
    #[error("the authentication code is not valid")]
    InvalidTotp,
    #[error("two-factor authentication is already enabled; disable it first")]
    TotpAlreadyEnabled,
    #[error("start the two-factor setup first")]
    TotpNotStarted,
    #[error("this invitation link is not valid (unknown, already used or revoked)")]
    InvitationInvalid,
    #[error("this invitation has expired; ask for a new one")]
    InvitationExpired,
    #[error("this invitation is for another account; sign in as the person invited")]
    InvitationNotForYou,
    #[error("you have no session with this id (it may have ended already)")]
    SessionNotFound,
    #[error(transparent)]
    Plan(#[from] crate::license::enforce::PlanError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<crate::license::enforce::CheckError> for IdentityError {
    fn from(e: crate::license::enforce::CheckError) -> Self {
        match e {
            crate::license::enforce::CheckError::Plan(p) => IdentityError::Plan(p),
            crate::license::enforce::CheckError::Db(d) => IdentityError::from(d),
        }
    }
}

impl From<rusqlite::Error> for IdentityError {
    fn from(e: rusqlite::Error) -> Self {
        IdentityError::Db(DbError::from(e))
    }
}

impl ErrorCode for IdentityError {
    fn code(&self) -> Code {
        match self {
            IdentityError::InvalidCredentials => Code::InvalidCredentials,
            IdentityError::Unauthenticated => Code::Unauthenticated,
            IdentityError::SessionExpired => Code::SessionExpired,
            IdentityError::PasswordChangeRequired => Code::PasswordChangeRequired,
            IdentityError::CsrfFailed => Code::CsrfFailed,
            IdentityError::NotSystemAdmin | IdentityError::RoleTooLow => Code::Forbidden,
            IdentityError::Throttled(_) => Code::TooManyRequests,
            IdentityError::WeakPassword(_) => Code::WeakPassword,
            IdentityError::InvalidUsername(_)
            | IdentityError::InvalidRole(_)
            | IdentityError::InvalidScope(_)
            | IdentityError::InvalidState(_)
            | IdentityError::SelfLockout
            | IdentityError::InvalidKeyName
            | IdentityError::InvalidExpiry
            | IdentityError::InvalidRateLimit => Code::InvalidRequest,
            IdentityError::KeyNotFound(_) => Code::ApiKeyNotFound,
            IdentityError::InvalidApiKey => Code::InvalidApiKey,
            IdentityError::ApiKeyExpired => Code::ApiKeyExpired,
            IdentityError::ApiKeyRevoked => Code::ApiKeyRevoked,
            IdentityError::InsufficientScope
            | IdentityError::NoInferenceScope
            | IdentityError::InferenceOnlyKey => Code::InsufficientScope,
            IdentityError::KeyNotAllowed => Code::Forbidden,
            IdentityError::InvitationInvalid => Code::InvitationInvalid,
            IdentityError::SessionNotFound => Code::SessionNotFound,
            IdentityError::TotpRequired => Code::TotpRequired,
            IdentityError::InvalidTotp => Code::InvalidTotp,
            IdentityError::TotpAlreadyEnabled | IdentityError::TotpNotStarted => {
                Code::InvalidRequest
            }
            IdentityError::InvitationExpired => Code::InvitationExpired,
            IdentityError::InvitationNotForYou => Code::InvitationNotForYou,
            IdentityError::UserExists(_) => Code::UserExists,
            IdentityError::UserNotFound(_) => Code::UserNotFound,
            IdentityError::Db(db) => db.code(),
            IdentityError::Plan(p) => p.code(),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            IdentityError::Plan(p) => p.details(),
            _ => None,
        }
    }

    fn public_message(&self) -> String {
        match self {
            IdentityError::Db(db) => db.public_message(),
            other => other.to_string(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            IdentityError::Throttled(secs) => Some(*secs),
            _ => None,
        }
    }
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get("id")?,
        username: r.get("username")?,
        display_name: r.get("display_name")?,
        email: r.get("email")?,
        state: r.get("state")?,
        is_system_admin: r.get("is_system_admin")?,
        must_change_password: r.get("must_change_password")?,
        created_at: r.get("created_at")?,
    })
}

const USER_COLUMNS: &str =
    "id, username, display_name, email, state, is_system_admin, must_change_password, created_at";

/// Validates a username: 2-64 characters of `a-z 0-9 . _ - @`, compared case-insensitively.
pub fn validate_username(name: &str) -> Result<String, IdentityError> {
    let lower = name.trim().to_lowercase();
    let ok = (2..=64).contains(&lower.len())
        && lower.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@')
        });
    if ok {
        Ok(lower)
    } else {
        Err(IdentityError::InvalidUsername(
            name.chars().take(80).collect(),
        ))
    }
}

/// A new local account.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub display_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub is_system_admin: bool,
    pub must_change_password: bool,
}

/// Creates a local account (the password is checked against the policy and hashed here).
pub fn create_user(
    system: &SystemDb,
    new: &NewUser<'_>,
    actor: &crate::audit::Actor,
    plan: &crate::license::Evaluation,
) -> Result<User, IdentityError> {
    let username = validate_username(new.username)?;
    password::check_policy(new.password, &username)?;
    let hash = password::hash(new.password);
    let id = hex::encode(crate::tenancy::random_bytes::<16>());
    let display = new
        .display_name
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or(&username)
        .to_string();
    system.db.write(|tx| {
        let exists: bool = tx
            .query_row("SELECT 1 FROM users WHERE username = ?1", [&username], |_| Ok(true))
            .optional()?
            .unwrap_or(false);
        if exists {
            return Err(IdentityError::UserExists(username.clone()));
        }
        crate::license::enforce::check_new_user(tx, plan)?;
        let now = now_rfc3339();
        tx.execute(
            "INSERT INTO users (id, username, display_name, email, password_hash, state, is_system_admin,
                                must_change_password, password_changed_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?8, ?8, ?8)",
            rusqlite::params![
                id,
                username,
                display,
                new.email.map(str::trim).filter(|e| !e.is_empty()),
                hash,
                new.is_system_admin,
                new.must_change_password,
                now
            ],
        )?;
        crate::audit::append(
            tx,
            actor,
            &crate::audit::Event {
                action: "user.create",
                target: &username,
                tenant_id: "",
                success: true,
                detail: serde_json::json!({"system_admin": new.is_system_admin}),
            },
        )?;
        find_user_by_id(tx, &id)?.ok_or_else(|| IdentityError::UserNotFound(username.clone()))
    })
}

/// Looks a user up by id on any connection.
pub fn find_user_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id],
        user_from_row,
    )
    .optional()
}

/// Looks a user up by username (case-insensitive) with the stored password hash.
pub fn find_user_for_login(
    conn: &Connection,
    username: &str,
) -> rusqlite::Result<Option<(User, Option<String>)>> {
    conn.query_row(
        &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?1"),
        [username.trim().to_lowercase()],
        |r| Ok((user_from_row(r)?, r.get("password_hash")?)),
    )
    .optional()
}

/// All accounts, by username.
pub fn list_users(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY username"
    ))?;
    let rows = stmt.query_map([], user_from_row)?;
    rows.collect()
}

/// Number of accounts.
pub fn count_users(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
}

/// Sets a new password; `must_change` marks it as temporary (a reset). Ends every session of the user.
pub fn set_password(
    system: &SystemDb,
    username: &str,
    new_password: &str,
    must_change: bool,
    actor: &crate::audit::Actor,
) -> Result<User, IdentityError> {
    let username = validate_username(username)?;
    password::check_policy(new_password, &username)?;
    let hash = password::hash(new_password);
    system.db.write(|tx| {
        let now = now_rfc3339();
        let changed = tx.execute(
            "UPDATE users SET password_hash = ?1, must_change_password = ?2, password_changed_at = ?3, updated_at = ?3
             WHERE username = ?4",
            rusqlite::params![hash, must_change, now, username],
        )?;
        if changed == 0 {
            return Err(IdentityError::UserNotFound(username.clone()));
        }
        let ended = tx.execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
            [&username],
        )?;
        crate::audit::append(
            tx,
            actor,
            &crate::audit::Event {
                action: if must_change { "user.password_reset" } else { "user.password_change" },
                target: &username,
                tenant_id: "",
                success: true,
                detail: serde_json::json!({"sessions_ended": ended}),
            },
        )?;
        let (user, _) = find_user_for_login(tx, &username)?
            .ok_or_else(|| IdentityError::UserNotFound(username.clone()))?;
        Ok(user)
    })
}

/// Changes to an account, by a system administrator.
#[derive(Debug, Default)]
pub struct UserUpdate {
    pub state: Option<String>,
    pub is_system_admin: Option<bool>,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// Updates an account. Suspending or deactivating it ends all its sessions at once. An administrator
/// cannot suspend, deactivate or demote their own account (so an installation never locks itself out).
pub fn update_user(
    system: &SystemDb,
    username: &str,
    change: &UserUpdate,
    acting_user_id: &str,
    actor: &crate::audit::Actor,
    plan: &crate::license::Evaluation,
) -> Result<User, IdentityError> {
    let username = validate_username(username)?;
    if let Some(state) = &change.state {
        if !USER_STATES.contains(&state.as_str()) {
            return Err(IdentityError::InvalidState(state.clone()));
        }
    }
    system.db.write(|tx| {
        let (user, _) = find_user_for_login(tx, &username)?
            .ok_or_else(|| IdentityError::UserNotFound(username.clone()))?;
        let demotes_self = user.id == acting_user_id
            && (change.state.as_deref().is_some_and(|s| s != "active") || change.is_system_admin == Some(false));
        if demotes_self {
            return Err(IdentityError::SelfLockout);
        }
        if change.state.as_deref() == Some("active") && user.state != "active" {
            // Reactivating an account takes a seat again.
            crate::license::enforce::check_new_user(tx, plan)?;
        }
        let now = now_rfc3339();
        tx.execute(
            "UPDATE users SET state = coalesce(?1, state), is_system_admin = coalesce(?2, is_system_admin),
                    display_name = coalesce(?3, display_name), email = coalesce(?4, email), updated_at = ?5
             WHERE id = ?6",
            rusqlite::params![
                change.state,
                change.is_system_admin,
                change.display_name.as_deref().map(str::trim).filter(|d| !d.is_empty()),
                change.email.as_deref().map(str::trim),
                now,
                user.id
            ],
        )?;
        let mut ended = 0;
        if change.state.as_deref().is_some_and(|s| s != "active") {
            ended = tx.execute("DELETE FROM sessions WHERE user_id = ?1", [&user.id])?;
        }
        crate::audit::append(
            tx,
            actor,
            &crate::audit::Event {
                action: "user.update",
                target: &username,
                tenant_id: "",
                success: true,
                detail: serde_json::json!({
                    "state": change.state, "is_system_admin": change.is_system_admin, "sessions_ended": ended
                }),
            },
        )?;
        find_user_by_id(tx, &user.id)?.ok_or_else(|| IdentityError::UserNotFound(username.clone()))
    })
}

/// The memberships of a user, by tenant id.
pub fn memberships_of(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<Membership>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.tenant_id, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
         WHERE m.user_id = ?1 AND t.status != 'deleting' ORDER BY m.tenant_id",
    )?;
    let rows = stmt.query_map([user_id], |r| {
        let role: String = r.get(2)?;
        Ok(Membership {
            tenant_id: r.get(0)?,
            tenant_name: r.get(1)?,
            role: Role::parse(&role).unwrap_or(Role::Viewer),
        })
    })?;
    rows.collect()
}

/// The role of a user in a tenant, if a member.
pub fn role_in(
    conn: &Connection,
    user_id: &str,
    tenant_id: &str,
) -> rusqlite::Result<Option<Role>> {
    conn.query_row(
        "SELECT role FROM memberships WHERE user_id = ?1 AND tenant_id = ?2",
        [user_id, tenant_id],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map(|role| role.as_deref().and_then(Role::parse))
}

/// Adds or changes a membership.
pub fn set_membership(
    conn: &Connection,
    tenant_id: &str,
    user_id: &str,
    role: Role,
    plan: &crate::license::Evaluation,
) -> Result<(), IdentityError> {
    if role_in(conn, user_id, tenant_id)?.is_none() {
        crate::license::enforce::check_new_member(conn, plan, tenant_id)?;
    }
    conn.execute(
        "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
        rusqlite::params![tenant_id, user_id, role.as_str(), now_rfc3339()],
    )?;
    Ok(())
}

/// File in the data directory holding the bootstrap administrator's one-time password (mode 0600),
/// removed when that password is changed.
pub const BOOTSTRAP_FILE: &str = "bootstrap-admin.txt";

/// Writes the bootstrap notice file (0600) and returns the text printed to the console.
pub fn write_bootstrap_notice(
    data_dir: &std::path::Path,
    password: &str,
) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = format!(
        "Enclave first start: sign in as `admin` with the one-time password\n\n    {password}\n\n\
         You must choose a new password at first sign-in. This file is deleted when you do.\n"
    );
    let path = data_dir.join(BOOTSTRAP_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(format!("{text}(also written to {})", path.display()))
}

/// Reads the bootstrap password back from its notice file (used by tests and scripts).
pub fn read_bootstrap_password(data_dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(BOOTSTRAP_FILE)).ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| l.len() == 24 && !l.contains(' '))
        .map(str::to_string)
}

/// Creates the first system administrator on a fresh installation: username `admin`, a random password
/// that must be changed at first sign-in. Returns the password, or `None` when accounts already exist.
pub fn bootstrap_admin(system: &SystemDb) -> Result<Option<String>, IdentityError> {
    if system.db.read(count_users)? > 0 {
        return Ok(None);
    }
    let password = password::generate();
    create_user(
        system,
        &NewUser {
            username: "admin",
            password: &password,
            display_name: Some("Administrator"),
            email: None,
            is_system_admin: true,
            must_change_password: true,
        },
        &crate::audit::Actor::cli(),
        // The first account is always allowed (every plan has at least one seat).
        &crate::license::state::evaluate(&crate::license::StateInput {
            license: crate::license::LicenseInput::None,
            installation_id: "",
            now: crate::time_util::now_utc(),
            high_water: None,
            anomaly_since: None,
        }),
    )?;
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_matrix() {
        use Action::*;
        let table = [
            (Role::Viewer, [true, false, false, false]),
            (Role::Editor, [true, true, false, false]),
            (Role::Admin, [true, true, true, false]),
            (Role::Owner, [true, true, true, true]),
        ];
        for (role, expected) in table {
            let actual = [Read, Write, Manage, Own].map(|a| role.allows(a));
            assert_eq!(actual, expected, "{role:?}");
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(
            validate_username(" Alice.Smith@corp ").expect("ok"),
            "alice.smith@corp"
        );
        for bad in ["a", "with space", "semi;colon", &"x".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }
}
