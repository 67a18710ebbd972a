//! Browser sessions: opaque random tokens in an HttpOnly cookie, stored only as SHA-256 hashes.
//!
//! - A token is 32 random bytes (256 bits), hex-encoded; the database keeps its SHA-256, so a copy of
//!   the database does not yield usable sessions.
//! - A new token is issued at every sign-in and password change (the old one ends), never reused.
//! - Idle timeout (`auth.session_idle_minutes`) and absolute lifetime (`auth.session_max_hours`);
//!   `last_seen_at` is written at most once a minute per session, not on every request.
//! - Each session has a CSRF token. Cookie-authenticated requests other than GET/HEAD/OPTIONS must send
//!   it in `X-CSRF-Token` (synchronizer token); the cookie is also `SameSite=Lax`.
//! - Cookie: `HttpOnly`, `SameSite=Lax`, `Path=/`; `Secure` with the `__Host-` name prefix when the
//!   request arrived over HTTPS through a trusted proxy (`auth.trust_proxy`).

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use ring::digest;
use rusqlite::OptionalExtension;

use super::{find_user_by_id, IdentityError, User};
use crate::db::system::SystemDb;

/// Cookie name over plain HTTP.
pub const COOKIE: &str = "enclave_session";
/// Cookie name over HTTPS (the `__Host-` prefix pins it to this host and path `/`).
pub const SECURE_COOKIE: &str = "__Host-enclave_session";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// `last_seen_at` is refreshed at most this often.
const TOUCH_EVERY_SECS: i64 = 60;

/// Session timeouts.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub absolute: Duration,
}

/// A freshly created session: the secrets go to the client once.
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
}

/// A valid session with its user.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub id_hash: String,
    pub csrf_token: String,
    pub user: User,
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

fn now_unix() -> i64 {
    crate::time_util::now_utc().unix_timestamp()
}

/// Creates a session for a user; `replaces` (a token the client presented) is ended at the same time.
pub fn create(
    system: &SystemDb,
    user_id: &str,
    replaces: Option<&str>,
    ip: &str,
    user_agent: &str,
    policy: SessionPolicy,
) -> Result<NewSession, IdentityError> {
    let token = hex::encode(crate::tenancy::random_bytes::<32>());
    let csrf_token = hex::encode(crate::tenancy::random_bytes::<16>());
    let now = now_unix();
    let expires = now + policy.absolute.as_secs() as i64;
    let agent: String = user_agent.chars().take(300).collect();
    system.db.write(|tx| {
        if let Some(old) = replaces {
            tx.execute("DELETE FROM sessions WHERE id_hash = ?1", [token_hash(old)])?;
        }
        // Housekeeping: sessions past their absolute lifetime are gone for good.
        tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
        tx.execute(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)",
            rusqlite::params![token_hash(&token), user_id, csrf_token, now, expires, ip, agent],
        )?;
        tx.execute(
            "UPDATE users SET last_active_at = ?1 WHERE id = ?2",
            rusqlite::params![crate::time_util::now_rfc3339(), user_id],
        )?;
        Ok::<_, IdentityError>(())
    })?;
    Ok(NewSession { token, csrf_token })
}

/// Finds the live session for a token: the user must be active, the session neither idle too long nor
/// past its absolute lifetime. An expired session is deleted and reported as such.
pub fn lookup(
    system: &SystemDb,
    token: &str,
    policy: SessionPolicy,
) -> Result<ActiveSession, IdentityError> {
    let id_hash = token_hash(token);
    let now = now_unix();
    let row: Option<(String, String, i64, i64)> = system.db.read(|c| {
        c.query_row(
            "SELECT user_id, csrf_token, last_seen_at, expires_at FROM sessions WHERE id_hash = ?1",
            [&id_hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
    })?;
    let Some((user_id, csrf_token, last_seen, expires_at)) = row else {
        return Err(IdentityError::Unauthenticated);
    };
    if now >= expires_at || now - last_seen > policy.idle.as_secs() as i64 {
        revoke(system, &id_hash)?;
        return Err(IdentityError::SessionExpired);
    }
    let user = system
        .db
        .read(|c| find_user_by_id(c, &user_id))?
        .filter(|u| u.state == "active")
        .ok_or(IdentityError::Unauthenticated)?;
    if now - last_seen >= TOUCH_EVERY_SECS {
        system.db.write(|tx| {
            tx.execute(
                "UPDATE sessions SET last_seen_at = ?1 WHERE id_hash = ?2",
                rusqlite::params![now, id_hash],
            )?;
            tx.execute(
                "UPDATE users SET last_active_at = ?1 WHERE id = ?2",
                rusqlite::params![crate::time_util::now_rfc3339(), user_id],
            )
            .map_err(IdentityError::from)
        })?;
    }
    Ok(ActiveSession {
        id_hash,
        csrf_token,
        user,
    })
}

/// Ends one session.
pub fn revoke(system: &SystemDb, id_hash: &str) -> Result<(), IdentityError> {
    system.db.write(|tx| {
        tx.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])
            .map_err(IdentityError::from)
    })?;
    Ok(())
}

/// Ends every session of a user; returns how many there were.
pub fn revoke_all(system: &SystemDb, user_id: &str) -> Result<usize, IdentityError> {
    system.db.write(|tx| {
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])
            .map_err(IdentityError::from)
    })
}

/// A session as its owner sees it in the profile (no secrets: `id` is a prefix of the token's hash).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SessionSummary {
    /// Handle for revoking this session.
    pub id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    pub ip: String,
    pub user_agent: String,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// Length of the public session handle (hex characters of the token hash).
const PUBLIC_ID_LEN: usize = 16;

fn unix_to_rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(crate::time_util::format_rfc3339)
        .unwrap_or_default()
}

/// The live sessions of a user, newest first.
pub fn list_for_user(
    system: &SystemDb,
    user_id: &str,
    current_id_hash: &str,
    policy: SessionPolicy,
) -> Result<Vec<SessionSummary>, IdentityError> {
    let now = now_unix();
    let idle_cutoff = now - policy.idle.as_secs() as i64;
    let list = system.db.read(|c| {
        let mut stmt = c.prepare(
            "SELECT id_hash, created_at, last_seen_at, expires_at, ip, user_agent FROM sessions
             WHERE user_id = ?1 AND expires_at > ?2 AND last_seen_at >= ?3 ORDER BY created_at DESC",
        )?;
        let rows = stmt.query_map(rusqlite::params![user_id, now, idle_cutoff], |r| {
            let id_hash: String = r.get(0)?;
            Ok(SessionSummary {
                id: id_hash.chars().take(PUBLIC_ID_LEN).collect(),
                created_at: unix_to_rfc3339(r.get(1)?),
                last_seen_at: unix_to_rfc3339(r.get(2)?),
                expires_at: unix_to_rfc3339(r.get(3)?),
                ip: r.get(4)?,
                user_agent: r.get(5)?,
                current: id_hash == current_id_hash,
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()
    })?;
    Ok(list)
}

/// Ends one of the user's own sessions by its public id; `false` when the user has no such session.
pub fn revoke_own(
    system: &SystemDb,
    user_id: &str,
    public_id: &str,
) -> Result<bool, IdentityError> {
    if public_id.len() != PUBLIC_ID_LEN || !public_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(false);
    }
    let pattern = format!("{}%", public_id.to_ascii_lowercase());
    let n = system.db.write(|tx| {
        tx.execute(
            "DELETE FROM sessions WHERE user_id = ?1 AND id_hash LIKE ?2",
            rusqlite::params![user_id, pattern],
        )
        .map_err(IdentityError::from)
    })?;
    Ok(n > 0)
}

/// The session cookie for a token.
pub fn cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build(if secure { SECURE_COOKIE } else { COOKIE }, token)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish()
}

/// A cookie that removes the session cookie from the browser.
pub fn removal_cookie(secure: bool) -> Cookie<'static> {
    let mut c = cookie(String::new(), secure);
    c.make_removal();
    c
}

/// Compares two secrets in constant time.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_lax_and_secure_with_host_prefix_over_tls() {
        let plain = cookie("t".into(), false).to_string();
        assert!(plain.starts_with("enclave_session=t;"), "{plain}");
        assert!(
            plain.contains("HttpOnly")
                && plain.contains("SameSite=Lax")
                && !plain.contains("Secure")
        );
        let tls = cookie("t".into(), true).to_string();
        assert!(
            tls.starts_with("__Host-enclave_session=t;")
                && tls.contains("Secure")
                && tls.contains("Path=/")
        );
        assert!(removal_cookie(false).to_string().contains("Max-Age=0"));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
