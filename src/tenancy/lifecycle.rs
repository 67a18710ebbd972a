//! Tenant lifecycle: rename, suspend (read-only) and reactivate, and two-step deletion.
//!
//! Deletion marks the tenant `deleting` with a purge time (`storage.tenant_purge_grace_hours` later):
//! from that moment it is hidden from everyone (404) and its API keys stop working, but a system
//! administrator can still restore it. [`purge_due`] — run by the server every few minutes and by
//! `enclave tenant purge` — removes the directory of every tenant past its purge time, then its row
//! (memberships and keys go with it), and records `tenant.purge` in the system audit log.

use std::path::Path;

use super::{tenant_dir, validate_name, TenantError, TenantId, TENANTS_DIR};
use crate::audit::{self, Actor, Event};
use crate::db::system::{SystemDb, TenantRecord};
use crate::db::DbError;

fn now_unix() -> i64 {
    crate::time_util::now_utc().unix_timestamp()
}

fn load(tx: &rusqlite::Connection, id: &TenantId) -> Result<TenantRecord, TenantError> {
    tx.query_row(
        "SELECT id, name, status, created_at, delete_after FROM tenants WHERE id = ?1",
        [id.as_str()],
        |r| {
            Ok(TenantRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                status: r.get(2)?,
                created_at: r.get(3)?,
                delete_after: r.get(4)?,
            })
        },
    )
    .map_err(|e| match e {
        rusqlite::Error::QueryReturnedNoRows => TenantError::NotFound(id.clone()),
        other => TenantError::Db(DbError::from(other)),
    })
}

fn record(
    tx: &rusqlite::Connection,
    actor: &Actor,
    action: &str,
    id: &TenantId,
    detail: serde_json::Value,
) -> Result<(), TenantError> {
    audit::append(
        tx,
        actor,
        &Event {
            action,
            target: id.as_str(),
            tenant_id: id.as_str(),
            success: true,
            detail,
        },
    )
    .map_err(DbError::from)?;
    Ok(())
}

/// Renames a tenant (its id never changes).
pub fn rename(
    system: &SystemDb,
    id: &TenantId,
    name: &str,
    actor: &Actor,
) -> Result<TenantRecord, TenantError> {
    let name = validate_name(name)?;
    system.db.write(|tx| {
        let before = load(tx, id)?;
        if before.status == "deleting" {
            return Err(TenantError::NotFound(id.clone()));
        }
        tx.execute(
            "UPDATE tenants SET name = ?1, updated_at = ?2 WHERE id = ?3",
            rusqlite::params![name, crate::time_util::now_rfc3339(), id.as_str()],
        )
        .map_err(DbError::from)?;
        record(
            tx,
            actor,
            "tenant.rename",
            id,
            serde_json::json!({"from": before.name, "to": name}),
        )?;
        load(tx, id)
    })
}

/// Suspends (read-only) or reactivates a tenant.
pub fn set_status(
    system: &SystemDb,
    id: &TenantId,
    status: &str,
    actor: &Actor,
) -> Result<TenantRecord, TenantError> {
    if !matches!(status, "active" | "suspended") {
        return Err(TenantError::InvalidName(format!(
            "status must be active or suspended, not {status:?} (delete a tenant with DELETE)"
        )));
    }
    system.db.write(|tx| {
        let before = load(tx, id)?;
        if before.status == "deleting" {
            return Err(TenantError::NotFound(id.clone()));
        }
        tx.execute(
            "UPDATE tenants SET status = ?1, updated_at = ?2 WHERE id = ?3",
            rusqlite::params![status, crate::time_util::now_rfc3339(), id.as_str()],
        )
        .map_err(DbError::from)?;
        let action = if status == "suspended" {
            "tenant.suspend"
        } else {
            "tenant.activate"
        };
        record(tx, actor, action, id, serde_json::json!({}))?;
        load(tx, id)
    })
}

/// Marks a tenant for deletion; it is purged after `grace_secs`.
pub fn mark_for_deletion(
    system: &SystemDb,
    id: &TenantId,
    grace_secs: i64,
    actor: &Actor,
) -> Result<TenantRecord, TenantError> {
    system.db.write(|tx| {
        let before = load(tx, id)?;
        if before.status == "deleting" {
            return Ok(before);
        }
        let purge_at = now_unix() + grace_secs.max(0);
        tx.execute(
            "UPDATE tenants SET status = 'deleting', delete_after = ?1, updated_at = ?2 WHERE id = ?3",
            rusqlite::params![purge_at, crate::time_util::now_rfc3339(), id.as_str()],
        )
        .map_err(DbError::from)?;
        record(tx, actor, "tenant.delete", id, serde_json::json!({"purge_at": purge_at}))?;
        load(tx, id)
    })
}

/// Cancels a pending deletion; the tenant comes back active.
pub fn restore(
    system: &SystemDb,
    id: &TenantId,
    actor: &Actor,
    plan: &crate::license::Evaluation,
) -> Result<TenantRecord, TenantError> {
    system.db.write(|tx| {
        let before = load(tx, id)?;
        if before.status != "deleting" {
            return Ok(before);
        }
        // A tenant being deleted does not count against the licence; bringing it back does.
        crate::license::enforce::check_new_tenant(tx, plan)?;
        tx.execute(
            "UPDATE tenants SET status = 'active', delete_after = NULL, updated_at = ?1 WHERE id = ?2",
            rusqlite::params![crate::time_util::now_rfc3339(), id.as_str()],
        )
        .map_err(DbError::from)?;
        record(tx, actor, "tenant.restore", id, serde_json::json!({}))?;
        load(tx, id)
    })
}

/// Purges every tenant whose purge time has passed; returns their ids. The directory is moved out of
/// the way first and removed, then the row is deleted in a transaction that also records the purge.
pub fn purge_due(
    system: &SystemDb,
    data_dir: &Path,
    actor: &Actor,
) -> Result<Vec<String>, TenantError> {
    let due: Vec<String> = system.db.read(|c| {
        let mut stmt = c.prepare(
            "SELECT id FROM tenants WHERE status = 'deleting' AND delete_after IS NOT NULL AND delete_after <= ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([now_unix()], |r| r.get(0))?;
        rows.collect()
    })?;
    let mut purged = Vec::new();
    for raw in due {
        let id = TenantId::parse(&raw)?;
        let dir = tenant_dir(data_dir, &id);
        // Its chargeback statements outlive it: every month with usage gets its closed statement now.
        let name = load(&*system.db.connection()?, &id)?.name;
        crate::usage::statements::close_before_purge(
            system,
            &crate::tenancy::tenant_db_path(data_dir, &id),
            id.as_str(),
            &name,
            actor,
        )?;
        if dir.exists() {
            let trash = data_dir
                .join(TENANTS_DIR)
                .join(format!(".purging-{}-{}", id, now_unix()));
            std::fs::rename(&dir, &trash).map_err(|source| TenantError::Io {
                path: dir.clone(),
                source,
            })?;
            std::fs::remove_dir_all(&trash).map_err(|source| TenantError::Io {
                path: trash.clone(),
                source,
            })?;
        }
        system.db.write(|tx| {
            tx.execute(
                "DELETE FROM tenants WHERE id = ?1 AND status = 'deleting'",
                [id.as_str()],
            )
            .map_err(DbError::from)?;
            record(tx, actor, "tenant.purge", &id, serde_json::json!({}))
        })?;
        tracing::info!(tenant = %id, "tenant purged");
        purged.push(raw);
    }
    Ok(purged)
}
