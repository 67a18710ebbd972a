//! Invitations: a tenant admin invites a person, named by username or e-mail, with a role. The invitation
//! is a single-use link with an expiry (no mail server needed: the link is shown to copy and send). The
//! invited person, signed in with the matching account, accepts it and becomes a member.

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::{set_membership, IdentityError, Role, User};
use crate::audit::{self, Actor, Event};
use crate::db::system::SystemDb;

/// Longest validity of an invitation.
pub const MAX_HOURS: u32 = 30 * 24;

/// An invitation as the API lists it (never the token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub id: String,
    pub tenant_id: String,
    /// Username or e-mail of the person invited.
    pub invitee: String,
    pub role: Role,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub accepted_by: Option<String>,
    pub revoked_at: Option<i64>,
}

/// A new invitation with its link, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedInvitation {
    pub invitation: Invitation,
    /// Path of the link to send (prefix it with this server's address): `/invite/<token>`.
    pub link: String,
}

fn now_unix() -> i64 {
    crate::time_util::now_utc().unix_timestamp()
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Invitation> {
    let role: String = r.get("role")?;
    Ok(Invitation {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        invitee: r.get("invitee")?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        accepted_at: r.get("accepted_at")?,
        accepted_by: r.get("accepted_by")?,
        revoked_at: r.get("revoked_at")?,
    })
}

const COLUMNS: &str =
    "id, tenant_id, invitee, role, created_at, expires_at, accepted_at, accepted_by, revoked_at";

fn audit_invitation(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    inv: &Invitation,
) -> rusqlite::Result<i64> {
    audit::append(
        conn,
        actor,
        &Event {
            action,
            target: &inv.invitee,
            tenant_id: &inv.tenant_id,
            success: true,
            detail: serde_json::json!({ "invitation": inv.id, "role": inv.role.as_str() }),
        },
    )
}

/// Creates an invitation valid for `hours`.
pub fn create(
    system: &SystemDb,
    tenant_id: &str,
    invitee: &str,
    role: Role,
    hours: u32,
    created_by: &str,
    actor: &Actor,
) -> Result<IssuedInvitation, IdentityError> {
    let invitee = invitee.trim().to_lowercase();
    if invitee.len() < 2 || invitee.len() > 254 || invitee.chars().any(char::is_whitespace) {
        return Err(IdentityError::InvalidUsername(invitee));
    }
    if hours == 0 || hours > MAX_HOURS {
        return Err(IdentityError::InvalidExpiry);
    }
    let token = hex::encode(crate::tenancy::random_bytes::<24>());
    let id = hex::encode(crate::tenancy::random_bytes::<8>());
    let now = now_unix();
    system.db.write(|tx| {
        tx.execute(
            "INSERT INTO invitations (id, token_hash, tenant_id, invitee, role, created_by, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                id,
                super::session::token_hash(&token),
                tenant_id,
                invitee,
                role.as_str(),
                created_by,
                now,
                now + i64::from(hours) * 3600
            ],
        )?;
        let invitation = tx.query_row(
            &format!("SELECT {COLUMNS} FROM invitations WHERE id = ?1"),
            [&id],
            from_row,
        )?;
        audit_invitation(tx, actor, "invitation.create", &invitation)?;
        Ok(IssuedInvitation {
            invitation,
            link: format!("/invite/{token}"),
        })
    })
}

/// The invitations of a tenant, newest first.
pub fn list(system: &SystemDb, tenant_id: &str) -> Result<Vec<Invitation>, IdentityError> {
    Ok(system.db.read(|c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM invitations WHERE tenant_id = ?1 ORDER BY created_at DESC, id"
        ))?;
        let rows = stmt.query_map([tenant_id], from_row)?;
        rows.collect()
    })?)
}

/// Revokes an open invitation of a tenant.
pub fn revoke(
    system: &SystemDb,
    tenant_id: &str,
    id: &str,
    actor: &Actor,
) -> Result<Invitation, IdentityError> {
    system.db.write(|tx| {
        tx.execute(
            "UPDATE invitations SET revoked_at = coalesce(revoked_at, ?1) WHERE id = ?2 AND tenant_id = ?3",
            rusqlite::params![now_unix(), id, tenant_id],
        )?;
        let inv = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM invitations WHERE id = ?1 AND tenant_id = ?2"),
                [id, tenant_id],
                from_row,
            )
            .optional()?
            .ok_or(IdentityError::InvitationInvalid)?;
        audit_invitation(tx, actor, "invitation.revoke", &inv)?;
        Ok(inv)
    })
}

/// Accepts an invitation for `user`: the token must be known, open, unexpired, for this user (username
/// or e-mail), and the tenant not being deleted. Single use.
pub fn accept(
    system: &SystemDb,
    token: &str,
    user: &User,
    actor: &Actor,
    plan: &crate::license::Evaluation,
) -> Result<Invitation, IdentityError> {
    let hash = super::session::token_hash(token.trim());
    system.db.write(|tx| {
        let inv = tx
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM invitations i WHERE token_hash = ?1
                     AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = i.tenant_id AND t.status != 'deleting')"
                ),
                [&hash],
                from_row,
            )
            .optional()?
            .ok_or(IdentityError::InvitationInvalid)?;
        if inv.accepted_at.is_some() || inv.revoked_at.is_some() {
            return Err(IdentityError::InvitationInvalid);
        }
        if inv.expires_at <= now_unix() {
            return Err(IdentityError::InvitationExpired);
        }
        let matches = inv.invitee.eq_ignore_ascii_case(&user.username)
            || user.email.as_deref().is_some_and(|e| inv.invitee.eq_ignore_ascii_case(e));
        if !matches {
            return Err(IdentityError::InvitationNotForYou);
        }
        // Accepting never lowers a role someone already has.
        let current = super::role_in(tx, &user.id, &inv.tenant_id)?;
        if current.is_none_or(|r| r < inv.role) {
            set_membership(tx, &inv.tenant_id, &user.id, inv.role, plan)?;
        }
        tx.execute(
            "UPDATE invitations SET accepted_at = ?1, accepted_by = ?2 WHERE id = ?3",
            rusqlite::params![now_unix(), user.username, inv.id],
        )?;
        audit_invitation(tx, actor, "invitation.accept", &inv)?;
        Ok(inv)
    })
}
