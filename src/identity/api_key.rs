//! API keys: per-tenant secrets for automation, with scopes, expiry, revocation and rotation.
//!
//! - A key reads `ek_live_<48 hex characters>` (192 random bits). It is shown once, at creation or
//!   rotation; the database keeps only its SHA-256 (`secret_hash`, looked up by hash, so there is no timing
//!   oracle on the secret) and a display prefix (`ek_live_a1b2c3`).
//! - Scopes are `read`, `write`, `admin`, `inference`, `datasets:read` and `datasets:write`. A key acts inside its own tenant only, with
//!   the role its widest scope maps to (read → viewer, write → editor, admin → admin), so the one
//!   permission matrix (`Role::allows`) governs keys and people alike. `inference` opens the
//!   OpenAI-compatible `/v1` API and nothing else; `datasets:read` and `datasets:write` open the
//!   knowledge-base routes and nothing else; `app:{app id}` (an app key) opens one chat app's chat,
//!   conversations and feedback and the OpenAI-compatible route with `model: "app:{id}"`; the other
//!   scopes open the tenant's REST API. Keys never reach system-administration routes.
//! - `last_used_at` is written at most once a minute per key, not on every request.
//! - Rotation issues a new key with the same name and scopes and lets the old one keep working until the
//!   end of an overlap window (default 24 hours), after which it expires.

use ring::digest;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::{IdentityError, Role};
use crate::audit::{Actor, Event};
use crate::db::system::SystemDb;

/// The prefix every key starts with.
pub const KEY_PREFIX: &str = "ek_live_";
/// The scopes a key can hold.
pub const SCOPES: [&str; 6] = [
    "read",
    "write",
    "admin",
    "inference",
    "datasets:read",
    "datasets:write",
];
const TOUCH_EVERY_SECS: i64 = 60;

/// A key as the API shows it (never the secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// For a rotated key: the id of the key that replaces it.
    pub replaced_by: Option<String>,
    /// The key's own requests-per-minute limit (`null`: the plan's default).
    pub rate_limit_per_minute: Option<u32>,
}

/// A key together with its secret, returned once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    pub key: ApiKey,
    /// The secret: store it now, it is never shown again.
    pub secret: String,
}

/// What an authenticated key may do.
#[derive(Debug, Clone)]
pub struct KeyPrincipal {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// The key's own requests-per-minute limit, if a tenant admin set one.
    pub rate_limit_per_minute: Option<u32>,
    /// When the key stops working (Unix seconds), if it expires.
    pub expires_at: Option<i64>,
}

/// How long a successful key authentication is remembered. Changes made through this server (revoke,
/// rotate, rate limit, tenant deletion or suspension) clear the cache at once; changes made by the CLI
/// from another process take effect within this time.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Recently authenticated keys by secret hash, so a busy integration does not cost a database read and
/// a trip to the blocking pool per request.
#[derive(Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<
        std::collections::HashMap<SecretDigest, (std::sync::Arc<KeyPrincipal>, std::time::Instant)>,
    >,
}

/// SHA-256 of a presented secret: the cache's key (raw bytes; no hex string per request).
type SecretDigest = [u8; 32];

fn secret_digest(secret: &str) -> SecretDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, secret.as_bytes()).as_ref());
    out
}

impl KeyCache {
    /// The principal of `secret` if authenticated within the TTL and not expired since.
    pub fn get(&self, secret: &str) -> Option<std::sync::Arc<KeyPrincipal>> {
        let hash = secret_digest(secret);
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (key, at) = entries.get(&hash)?;
        let fresh = at.elapsed() < KEY_CACHE_TTL;
        let unexpired = key.expires_at.is_none_or(|t| t > now_unix());
        (fresh && unexpired).then(|| key.clone())
    }

    pub fn put(&self, secret: &str, key: &std::sync::Arc<KeyPrincipal>) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        entries.insert(
            secret_digest(secret),
            (key.clone(), std::time::Instant::now()),
        );
    }

    /// Forgets everything (after any change to keys or tenants).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

impl KeyPrincipal {
    /// Whether the key may use the OpenAI-compatible inference API.
    pub fn can_infer(&self) -> bool {
        self.scopes.iter().any(|s| s == "inference")
    }

    /// Whether the key may use the tenant's REST API (`read`, `write` or `admin`).
    pub fn can_use_tenant_api(&self) -> bool {
        self.scopes.iter().any(|s| s != "inference")
    }

    /// Whether the key is an app key (holds an `app:{id}` scope).
    pub fn has_app_scope(&self) -> bool {
        self.scopes.iter().any(|s| s.starts_with("app:"))
    }

    /// Whether the key holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the key has one of the tenant-wide scopes (`read`, `write`, `admin`); keys with only
    /// `inference` or `datasets:*` scopes reach only their own part of the API.
    pub fn has_general_scope(&self) -> bool {
        self.scopes
            .iter()
            .any(|s| matches!(s.as_str(), "read" | "write" | "admin"))
    }

    /// The role the key's widest scope maps to.
    pub fn role(&self) -> Role {
        if self.scopes.iter().any(|s| s == "admin") {
            Role::Admin
        } else if self.scopes.iter().any(|s| s == "write") {
            Role::Editor
        } else {
            Role::Viewer
        }
    }
}

fn now_unix() -> i64 {
    crate::time_util::now_utc().unix_timestamp()
}

fn secret_hash(secret: &str) -> String {
    hex::encode(secret_digest(secret))
}

/// Whether `scope` is an app key's scope: `app:` and an app id (1–64 of `[0-9a-z]`).
fn is_app_scope(scope: &str) -> bool {
    scope.strip_prefix("app:").is_some_and(|id| {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// Parses and checks a scope list.
pub fn parse_scopes(scopes: &[String]) -> Result<Vec<String>, IdentityError> {
    let mut out: Vec<String> = Vec::new();
    for scope in scopes {
        let scope = scope.trim().to_lowercase();
        if !SCOPES.contains(&scope.as_str()) && !is_app_scope(&scope) {
            return Err(IdentityError::InvalidScope(scope));
        }
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    if out.is_empty() {
        return Err(IdentityError::InvalidScope(String::new()));
    }
    Ok(out)
}

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    let scopes: String = r.get("scopes")?;
    Ok(ApiKey {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        name: r.get("name")?,
        prefix: r.get("prefix")?,
        scopes: scopes.split(' ').map(str::to_string).collect(),
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        revoked_at: r.get("revoked_at")?,
        last_used_at: r.get("last_used_at")?,
        replaced_by: r.get("replaced_by")?,
        rate_limit_per_minute: r.get("rate_limit_per_minute")?,
    })
}

const KEY_COLUMNS: &str =
    "id, tenant_id, name, prefix, scopes, created_at, expires_at, revoked_at, last_used_at, replaced_by, rate_limit_per_minute";

fn insert_key(
    conn: &Connection,
    tenant_id: &str,
    name: &str,
    scopes: &[String],
    expires_at: Option<i64>,
    created_by: Option<&str>,
) -> rusqlite::Result<IssuedKey> {
    let secret = format!(
        "{KEY_PREFIX}{}",
        hex::encode(crate::tenancy::random_bytes::<24>())
    );
    let id = hex::encode(crate::tenancy::random_bytes::<8>());
    let prefix: String = secret.chars().take(KEY_PREFIX.len() + 6).collect();
    conn.execute(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, scopes, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        rusqlite::params![
            id,
            tenant_id,
            name,
            prefix,
            secret_hash(&secret),
            scopes.join(" "),
            created_by,
            now_unix(),
            expires_at
        ],
    )?;
    let key = conn.query_row(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
        [&id],
        key_from_row,
    )?;
    Ok(IssuedKey { key, secret })
}

/// Creates a key for a tenant.
pub fn create(
    system: &SystemDb,
    tenant_id: &str,
    name: &str,
    scopes: &[String],
    expires_at: Option<i64>,
    created_by: Option<&str>,
    actor: &Actor,
) -> Result<IssuedKey, IdentityError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(IdentityError::InvalidKeyName);
    }
    let scopes = parse_scopes(scopes)?;
    if expires_at.is_some_and(|t| t <= now_unix()) {
        return Err(IdentityError::InvalidExpiry);
    }
    system.db.write(|tx| {
        let issued = insert_key(tx, tenant_id, name, &scopes, expires_at, created_by)?;
        audit_key(tx, actor, "api_key.create", &issued.key)?;
        Ok(issued)
    })
}

fn audit_key(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    key: &ApiKey,
) -> rusqlite::Result<i64> {
    crate::audit::append(
        conn,
        actor,
        &Event {
            action,
            target: &key.id,
            tenant_id: &key.tenant_id,
            success: true,
            detail: serde_json::json!({
                "name": key.name, "prefix": key.prefix, "scopes": key.scopes, "expires_at": key.expires_at
            }),
        },
    )
}

/// The keys of a tenant, newest first.
pub fn list(system: &SystemDb, tenant_id: &str) -> Result<Vec<ApiKey>, IdentityError> {
    Ok(system.db.read(|c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at DESC, id"
        ))?;
        let rows = stmt.query_map([tenant_id], key_from_row)?;
        rows.collect()
    })?)
}

fn find(conn: &Connection, tenant_id: &str, id: &str) -> rusqlite::Result<Option<ApiKey>> {
    conn.query_row(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1 AND tenant_id = ?2"),
        [id, tenant_id],
        key_from_row,
    )
    .optional()
}

/// Revokes a key of a tenant at once. A key of another tenant is "not found".
pub fn revoke(
    system: &SystemDb,
    tenant_id: &str,
    id: &str,
    actor: &Actor,
) -> Result<ApiKey, IdentityError> {
    system.db.write(|tx| {
        tx.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?1) WHERE id = ?2 AND tenant_id = ?3",
            rusqlite::params![now_unix(), id, tenant_id],
        )?;
        let key = find(tx, tenant_id, id)?.ok_or_else(|| IdentityError::KeyNotFound(id.to_string()))?;
        audit_key(tx, actor, "api_key.revoke", &key)?;
        Ok(key)
    })
}

/// Rotates a key: a new key with the same name and scopes; the old one expires after `overlap_secs`.
pub fn rotate(
    system: &SystemDb,
    tenant_id: &str,
    id: &str,
    overlap_secs: i64,
    created_by: Option<&str>,
    actor: &Actor,
) -> Result<IssuedKey, IdentityError> {
    system.db.write(|tx| {
        let old = find(tx, tenant_id, id)?
            .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|t| t > now_unix()))
            .ok_or_else(|| IdentityError::KeyNotFound(id.to_string()))?;
        let issued = insert_key(tx, tenant_id, &old.name, &old.scopes, old.expires_at, created_by)?;
        let until = now_unix() + overlap_secs.max(0);
        tx.execute(
            "UPDATE api_keys SET expires_at = min(coalesce(expires_at, ?1), ?1), replaced_by = ?2 WHERE id = ?3",
            rusqlite::params![until, issued.key.id, id],
        )?;
        audit_key(tx, actor, "api_key.rotate", &issued.key)?;
        Ok(issued)
    })
}

/// Authenticates a presented secret: it must exist, not be revoked, not be expired, and its tenant must
/// be active. Refreshes `last_used_at` at most once a minute.
pub fn authenticate(system: &SystemDb, secret: &str) -> Result<KeyPrincipal, IdentityError> {
    if !secret.starts_with(KEY_PREFIX) {
        return Err(IdentityError::InvalidApiKey);
    }
    let hash = secret_hash(secret);
    let now = now_unix();
    let key = system
        .db
        .read(|c| {
            c.query_row(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys k WHERE secret_hash = ?1
                     AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = k.tenant_id AND t.status != 'deleting')"
                ),
                [&hash],
                key_from_row,
            )
            .optional()
        })?
        .ok_or(IdentityError::InvalidApiKey)?;
    if key.revoked_at.is_some() {
        return Err(IdentityError::ApiKeyRevoked);
    }
    if key.expires_at.is_some_and(|t| t <= now) {
        return Err(IdentityError::ApiKeyExpired);
    }
    if key.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY_SECS) {
        system.db.write(|tx| {
            tx.execute(
                "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2",
                rusqlite::params![now, key.id],
            )
            .map_err(IdentityError::from)
        })?;
    }
    Ok(KeyPrincipal {
        id: key.id,
        tenant_id: key.tenant_id,
        name: key.name,
        scopes: key.scopes,
        rate_limit_per_minute: key.rate_limit_per_minute,
        expires_at: key.expires_at,
    })
}

/// Sets (or with `None` removes) a key's own requests-per-minute limit, audited.
pub fn set_rate_limit(
    system: &SystemDb,
    tenant_id: &str,
    key_id: &str,
    per_minute: Option<u32>,
    actor: &Actor,
) -> Result<ApiKey, IdentityError> {
    if per_minute.is_some_and(|n| !(1..=10_000_000).contains(&n)) {
        return Err(IdentityError::InvalidRateLimit);
    }
    system.db.write(|tx| {
        let changed = tx.execute(
            "UPDATE api_keys SET rate_limit_per_minute = ?1 WHERE id = ?2 AND tenant_id = ?3",
            rusqlite::params![per_minute, key_id, tenant_id],
        )?;
        if changed == 0 {
            return Err(IdentityError::KeyNotFound(key_id.to_string()));
        }
        let key = tx.query_row(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
            [key_id],
            key_from_row,
        )?;
        audit_key(tx, actor, "api_key.rate_limit", &key)?;
        Ok(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_map_to_roles_and_are_validated() {
        let key = |s: &[&str]| KeyPrincipal {
            id: String::new(),
            tenant_id: String::new(),
            name: String::new(),
            scopes: s.iter().map(|x| x.to_string()).collect(),
            rate_limit_per_minute: None,
            expires_at: None,
        };
        assert_eq!(key(&["read"]).role(), Role::Viewer);
        assert_eq!(key(&["read", "write"]).role(), Role::Editor);
        assert_eq!(key(&["admin"]).role(), Role::Admin);
        assert!(parse_scopes(&["read".into(), "root".into()]).is_err());
        assert_eq!(
            parse_scopes(&["app:5f0c1d".into()]).expect("an app scope"),
            vec!["app:5f0c1d".to_string()]
        );
        assert!(parse_scopes(&["app:".into()]).is_err());
        assert!(parse_scopes(&["app:../x".into()]).is_err());
        assert!(parse_scopes(&[]).is_err());
        assert_eq!(
            parse_scopes(&["Write".into(), "write".into()]).expect("ok"),
            vec!["write".to_string()]
        );
    }
}
