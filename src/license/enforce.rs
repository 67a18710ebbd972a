//! Plan enforcement: the one place that decides whether the licence allows a new user, a new tenant,
//! a new tenant member or a licensed feature.
//!
//! Every check runs inside the write transaction that makes the change (counts are read with the
//! database's write lock held), so two concurrent requests cannot both take the last seat. Checks
//! only ever refuse *new* things: existing users keep signing in and existing data stays readable and
//! exportable whatever the licence says (a shrinking limit never locks anyone out).
//!
//! Counted as a user ("billable"): an account in state `active`. Suspended and deactivated accounts
//! free their seat; turning one back to active takes a seat again and is checked like a new account.

use rusqlite::Connection;

use super::plan::Feature;
use super::state::Evaluation;
use crate::error::{Code, ErrorCode};

/// Why the licence refuses a change.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    #[error("the licence allows {allowed} {what}; this installation has {current}. Ask your vendor for a licence with a higher limit")]
    LimitReached {
        /// The limit's name as in the licence (`users`, `tenants`, `users_per_tenant`).
        limit: &'static str,
        what: &'static str,
        current: u64,
        allowed: u64,
    },
    #[error("the feature `{0}` is not included in this installation's licence")]
    FeatureNotLicensed(&'static str),
    #[error("the licence has expired past its grace period (or the clock is not trustworthy): {0} cannot be added until a valid licence is installed; existing data stays available")]
    Restricted(&'static str),
}

impl ErrorCode for PlanError {
    fn code(&self) -> Code {
        match self {
            PlanError::LimitReached { .. } => Code::PlanLimitReached,
            PlanError::FeatureNotLicensed(_) => Code::FeatureNotLicensed,
            PlanError::Restricted(_) => Code::LicenseRestricted,
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            PlanError::LimitReached {
                limit,
                current,
                allowed,
                ..
            } => {
                Some(serde_json::json!({ "limit": limit, "current": current, "allowed": allowed }))
            }
            PlanError::FeatureNotLicensed(feature) => {
                Some(serde_json::json!({ "feature": feature }))
            }
            PlanError::Restricted(_) => None,
        }
    }
}

fn count(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<u64> {
    conn.query_row(sql, params, |r| r.get::<_, i64>(0))
        .map(|n| u64::try_from(n).unwrap_or(0))
}

/// Accounts that take a seat.
pub fn billable_users(conn: &Connection) -> rusqlite::Result<u64> {
    count(
        conn,
        "SELECT count(*) FROM users WHERE state = 'active'",
        &[],
    )
}

/// Tenants that count against the licence (a tenant being deleted no longer does).
pub fn counted_tenants(conn: &Connection) -> rusqlite::Result<u64> {
    count(
        conn,
        "SELECT count(*) FROM tenants WHERE status != 'deleting'",
        &[],
    )
}

/// Active members of one tenant.
pub fn tenant_members(conn: &Connection, tenant_id: &str) -> rusqlite::Result<u64> {
    count(
        conn,
        "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = ?1 AND u.state = 'active'",
        &[&tenant_id],
    )
}

/// The error an enforcement check returns: a refusal, or the database failing to answer.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

fn within(
    limit: &'static str,
    what: &'static str,
    allowed: Option<u64>,
    current: u64,
) -> Result<(), PlanError> {
    match allowed {
        Some(allowed) if current >= allowed => Err(PlanError::LimitReached {
            limit,
            what,
            current,
            allowed,
        }),
        _ => Ok(()),
    }
}

/// May one more account become active? Run inside the transaction that activates it.
pub fn check_new_user(conn: &Connection, plan: &Evaluation) -> Result<(), CheckError> {
    if plan.restricted {
        return Err(PlanError::Restricted("new users").into());
    }
    let current = billable_users(conn)?;
    within(
        "users",
        "active users",
        plan.entitlements.limits.users,
        current,
    )?;
    Ok(())
}

/// May one more tenant be created (or restored)? Run inside the transaction that adds it.
pub fn check_new_tenant(conn: &Connection, plan: &Evaluation) -> Result<(), CheckError> {
    if plan.restricted {
        return Err(PlanError::Restricted("new tenants").into());
    }
    let current = counted_tenants(conn)?;
    within(
        "tenants",
        "tenants",
        plan.entitlements.limits.tenants,
        current,
    )?;
    Ok(())
}

/// May `tenant_id` gain one more member? Changing an existing member's role is not a new member.
pub fn check_new_member(
    conn: &Connection,
    plan: &Evaluation,
    tenant_id: &str,
) -> Result<(), CheckError> {
    let current = tenant_members(conn, tenant_id)?;
    within(
        "users_per_tenant",
        "members in one tenant",
        plan.entitlements.limits.users_per_tenant,
        current,
    )?;
    Ok(())
}

/// Is a licensed feature in force? For changes to that feature's settings, `restricted` also refuses.
pub fn require_feature(
    plan: &Evaluation,
    feature: Feature,
    writing: bool,
) -> Result<(), PlanError> {
    if !plan.entitlements.has(feature) {
        return Err(PlanError::FeatureNotLicensed(feature.as_str()));
    }
    if writing && plan.restricted {
        return Err(PlanError::Restricted("changes to licensed features"));
    }
    Ok(())
}

/// For unit tests elsewhere: an evaluation with no limits and every feature.
#[cfg(test)]
pub(crate) fn unlimited_for_tests() -> Evaluation {
    let mut entitlements = super::plan::EffectiveEntitlements::community();
    entitlements.limits = super::plan::Limits::UNLIMITED;
    entitlements.features = Feature::ALL
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    Evaluation {
        state: super::state::LicenseState::Valid,
        entitlements,
        restricted: false,
        anomaly_since: None,
        high_water: crate::time_util::now_utc(),
    }
}
