//! Usage accounting: what each tenant uses, counted durably ([`meter`]), capped by monthly quotas and
//! per-minute rate limits ([`rate_limit`]), enforced around API-key requests ([`gate`]).
//!
//! Metrics are counted per tenant, per principal (`key:<id>` or `user:<name>`), per UTC day; months
//! are sums of days. The effective monthly quota of a metric is the tenant's own setting (set by its
//! admins) capped by the licence's limit; either may be absent (unlimited).

pub mod allowance;
pub mod gate;
pub mod meter;
pub mod rate_limit;
pub mod statements;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::license::{Limits, Plan};
use crate::tenancy::TenantId;

/// What is metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    ApiRequests,
    ChatTokensIn,
    ChatTokensOut,
    EmbeddingTokens,
    Messages,
    DocumentsIngested,
    /// A gauge: the bytes a tenant stores, not a count of events.
    StorageBytes,
    WorkflowRuns,
}

impl Metric {
    pub const ALL: &'static [Metric] = &[
        Metric::ApiRequests,
        Metric::ChatTokensIn,
        Metric::ChatTokensOut,
        Metric::EmbeddingTokens,
        Metric::Messages,
        Metric::DocumentsIngested,
        Metric::StorageBytes,
        Metric::WorkflowRuns,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::ApiRequests => "api_requests",
            Metric::ChatTokensIn => "chat_tokens_in",
            Metric::ChatTokensOut => "chat_tokens_out",
            Metric::EmbeddingTokens => "embedding_tokens",
            Metric::Messages => "messages",
            Metric::DocumentsIngested => "documents_ingested",
            Metric::StorageBytes => "storage_bytes",
            Metric::WorkflowRuns => "workflow_runs",
        }
    }

    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.iter().copied().find(|m| m.as_str() == name)
    }

    /// The largest durable allowance of this metric (see [`allowance`]): how far a busy principal's day
    /// count may run ahead of the last disk flush, and so how much a power loss can over-count it.
    /// Only API requests, the one metric counted on every call, have one; every other metric's
    /// batches are flushed before they are acknowledged.
    pub fn allowance_cap(self) -> u64 {
        match self {
            Metric::ApiRequests => 256,
            _ => 0,
        }
    }

    /// The licence's monthly limit for this metric (`chat_tokens` covers input and output together;
    /// the licence has no monthly limit for documents or storage here: storage is `storage_gb`).
    pub fn licence_limit(self, limits: &Limits) -> Option<u64> {
        match self {
            Metric::ApiRequests => limits.api_requests,
            Metric::ChatTokensIn | Metric::ChatTokensOut => limits.chat_tokens,
            Metric::EmbeddingTokens => limits.embedding_tokens,
            Metric::Messages => limits.messages,
            Metric::WorkflowRuns => limits.workflow_runs,
            Metric::DocumentsIngested | Metric::StorageBytes => None,
        }
    }
}

/// Default requests per minute, per API key and per tenant, by plan (the ladder: free 10, pro 60,
/// business 300, enterprise 1,000).
pub fn plan_rate_per_minute(plan: Plan) -> u32 {
    match plan {
        Plan::Community => 10,
        Plan::Pro => 60,
        Plan::Business => 300,
        Plan::Enterprise => 1000,
    }
}

/// The shared usage machinery, in the application state.
pub struct Usage {
    pub meter: meter::Meter,
    pub limiter: rate_limit::RateLimiter,
    /// The tenants' own settings, loaded on first use and forgotten when changed.
    settings: Mutex<HashMap<String, Arc<TenantLimits>>>,
    /// Alerts this process already recorded, so a month past 80 % is not re-checked on every request.
    alerted: Mutex<std::collections::HashSet<AlertKey>>,
}

/// `(tenant, month, metric, percent)` of a soft quota alert.
pub type AlertKey = (String, String, Metric, u8);

impl Usage {
    pub fn new(meter: meter::Meter) -> Usage {
        Usage {
            meter,
            limiter: rate_limit::RateLimiter::default(),
            settings: Mutex::new(HashMap::new()),
            alerted: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// True the first time this process sees an alert (the database insert ignores repeats anyway).
    pub fn first_alert(&self, key: AlertKey) -> bool {
        self.alerted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key)
    }

    /// The tenant's own quotas and rate limit (blocking on first use: reads the tenant database).
    pub fn tenant_limits(
        &self,
        tenant: &TenantId,
        db: &crate::db::Database,
    ) -> Result<Arc<TenantLimits>, crate::db::DbError> {
        if let Some(q) = self
            .settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant.as_str())
        {
            return Ok(q.clone());
        }
        let loaded = Arc::new(TenantLimits {
            quotas: read_quotas(db)?,
            rate_per_minute: read_setting(db, RATE_LIMIT_SETTING)?
                .and_then(|v| v.trim().parse::<u32>().ok()),
            webhook_url: read_setting(db, webhook::WEBHOOK_SETTING)?
                .and_then(|v| serde_json::from_str::<String>(&v).ok()),
        });
        self.settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tenant.as_str().to_string(), loaded.clone());
        Ok(loaded)
    }

    /// The tenant's limits if already cached (no database access, so no trip to the blocking pool).
    pub fn cached_limits(&self, tenant: &TenantId) -> Option<Arc<TenantLimits>> {
        self.settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant.as_str())
            .cloned()
    }

    /// Forgets the cached settings of a tenant (after a change).
    pub fn forget_settings(&self, tenant: &TenantId) {
        self.settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(tenant.as_str());
    }
}

/// A tenant's own limits.
#[derive(Debug, Default)]
pub struct TenantLimits {
    /// Monthly quotas set by the tenant's admins.
    pub quotas: HashMap<Metric, u64>,
    /// Requests per minute for the tenant as a whole (all its keys); `None`: the plan's default.
    pub rate_per_minute: Option<u32>,
    /// Where quota alerts are posted, if anywhere.
    pub webhook_url: Option<String>,
}

/// The tenant settings key of its requests-per-minute limit.
pub const RATE_LIMIT_SETTING: &str = "rate_limit_per_minute";

fn read_setting(db: &crate::db::Database, key: &str) -> Result<Option<String>, crate::db::DbError> {
    use rusqlite::OptionalExtension;
    db.read(|c| {
        c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()
    })
}

/// The tenant's own quota settings from its database.
pub fn read_quotas(db: &crate::db::Database) -> Result<HashMap<Metric, u64>, crate::db::DbError> {
    db.read(|c| {
        let mut stmt = c.prepare("SELECT metric, monthly_limit FROM usage_quotas")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = HashMap::new();
        for row in rows {
            let (metric, limit) = row?;
            if let Some(metric) = Metric::parse(&metric) {
                out.insert(metric, u64::try_from(limit).unwrap_or(0));
            }
        }
        Ok(out)
    })
}

/// The effective monthly quota: the tenant's own setting capped by the licence's limit.
pub fn effective_quota(own: Option<u64>, licence: Option<u64>) -> Option<u64> {
    match (own, licence) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_setting_is_capped_by_the_licence() {
        assert_eq!(effective_quota(Some(500), Some(1000)), Some(500));
        assert_eq!(effective_quota(Some(5000), Some(1000)), Some(1000));
        assert_eq!(effective_quota(None, Some(1000)), Some(1000));
        assert_eq!(effective_quota(Some(7), None), Some(7));
        assert_eq!(effective_quota(None, None), None);
    }

    #[test]
    fn metric_names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.as_str()), Some(*m));
        }
        assert_eq!(Metric::parse("bogus"), None);
    }
}
