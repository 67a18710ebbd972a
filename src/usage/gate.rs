//! The usage gate around every API-key request to a tenant: rate limit, monthly quota, metering.
//!
//! Before the handler runs: the key's and the tenant's per-minute buckets must both admit the request
//! (`429 rate_limited` with `Retry-After` otherwise), and one `api_requests` is reserved against the
//! effective monthly quota (`429 quota_exceeded` with the metric, limit, used and `Retry-After` until
//! the month resets). After the handler: a 2xx is sent only once its `api_requests` is committed by the
//! meter; any other answer releases the reservation (it is not counted). Every answer to an API key
//! carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
//!
//! Browser sessions (people using the UI) are not rate limited or counted as API requests; the features
//! they use meter their own metrics (tokens, messages, documents).

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpResponse;

use super::meter::{seconds_until_next_month, Reservation};
use super::rate_limit::Decision;
use super::{effective_quota, plan_rate_per_minute, Metric};
use crate::error::{ApiError, Code};
use crate::identity::principal::Caller;
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;
use crate::tenancy::TenantDb;

/// A request let through: what to settle afterwards and the headers to add.
pub struct Admission {
    reservation: Reservation,
    decision: Decision,
    quota: Option<u64>,
}

/// Soft alert thresholds, in percent of the quota.
pub const ALERT_THRESHOLDS: [u8; 2] = [80, 100];

fn rate_headers(response: &mut HttpResponse, decision: &Decision) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", u64::from(decision.limit)),
        ("ratelimit-remaining", u64::from(decision.remaining)),
        ("ratelimit-reset", decision.reset_secs),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

fn refusal(error: ApiError, decision: &Decision) -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&error);
    rate_headers(&mut response, decision);
    response
}

/// Admits an API-key request or answers it. Session requests pass untouched (`Ok(None)`).
pub async fn admit(state: &AppState, ctx: &TenantCtx) -> Result<Option<Admission>, HttpResponse> {
    let Caller::Key(key) = &ctx.caller else {
        return Ok(None);
    };
    let licence = state.license.current();
    let plan = &licence.evaluation;
    let default_rate = plan_rate_per_minute(plan.entitlements.plan);
    let usage = state.usage.clone();
    let tenant_id = ctx.id().clone();
    let own = match usage.cached_limits(&tenant_id) {
        Some(own) => own,
        None => {
            let tenant_id = tenant_id.clone();
            ctx.run(move |db| usage.tenant_limits(&tenant_id, db))
                .await
                .map_err(|e| actix_web::ResponseError::error_response(&e))?
        }
    };
    let key_bucket = format!("key:{}", key.id);
    let tenant_bucket = format!("tenant:{}", ctx.id());
    let decision = state.usage.limiter.check(
        &[
            (
                key_bucket.as_str(),
                key.rate_limit_per_minute.unwrap_or(default_rate),
            ),
            (
                tenant_bucket.as_str(),
                own.rate_per_minute.unwrap_or(default_rate),
            ),
        ],
        std::time::Instant::now(),
    );
    if !decision.allowed {
        let error = ApiError::new(
            Code::RateLimited,
            format!(
                "more than {} requests a minute; retry in {} s",
                decision.limit, decision.retry_after_secs
            ),
        )
        .with_retry_after(decision.retry_after_secs);
        return Err(refusal(error, &decision));
    }

    let metric = Metric::ApiRequests;
    let quota = effective_quota(
        own.quotas.get(&metric).copied(),
        metric.licence_limit(&plan.entitlements.limits),
    );
    let principal = format!("key:{}", key.id);
    let reserved = state
        .usage
        .meter
        .reserve(ctx.handle(), &principal, metric, 1, quota)
        .await
        .map_err(|e| refusal(ApiError::from(e), &decision))?;
    match reserved {
        Ok(reservation) => Ok(Some(Admission {
            reservation,
            decision,
            quota,
        })),
        Err(over) => Err(refusal(quota_error(metric, over), &decision)),
    }
}

/// The `429 quota_exceeded` answer for a metric whose monthly quota is used up.
pub fn quota_error(metric: Metric, over: super::meter::OverQuota) -> ApiError {
    let retry = seconds_until_next_month(crate::time_util::business_now());
    let mut error = ApiError::new(
        Code::QuotaExceeded,
        format!(
            "the monthly quota of {} is used up ({} of {}); it resets at the start of next month (UTC)",
            metric.as_str(),
            over.used,
            over.limit
        ),
    )
    .with_retry_after(retry);
    error.details = Some(serde_json::json!({
        "metric": metric.as_str(), "limit": over.limit, "used": over.used
    }));
    error
}

/// Who the meter counts a request against: `key:<id>` or `user:<name>`.
pub fn principal(ctx: &TenantCtx) -> String {
    match &ctx.caller {
        Caller::Key(key) => format!("key:{}", key.id),
        Caller::User(current) => format!("user:{}", current.user().username),
    }
}

/// The effective monthly quota of `metric` in the request's tenant (`None`: unlimited).
pub async fn quota_of(
    state: &AppState,
    ctx: &TenantCtx,
    metric: Metric,
) -> Result<Option<u64>, ApiError> {
    tenant_quota(state, ctx.handle(), metric).await
}

/// The effective monthly quota of `metric` in `tenant` (its own setting capped by the licence), for
/// work that runs outside a request too (knowledge-base ingestion).
pub async fn tenant_quota(
    state: &AppState,
    tenant: &Arc<TenantDb>,
    metric: Metric,
) -> Result<Option<u64>, ApiError> {
    let usage = state.usage.clone();
    let own = match usage.cached_limits(tenant.id()) {
        Some(own) => own,
        None => {
            let tenant = tenant.clone();
            crate::db::run_blocking(move || usage.tenant_limits(tenant.id(), tenant.db())).await?
        }
    };
    let licence = state.license.current();
    Ok(effective_quota(
        own.quotas.get(&metric).copied(),
        metric.licence_limit(&licence.evaluation.entitlements.limits),
    ))
}

/// Reserves as much of `wanted` as this month's quota of `metric` still allows (all of it when there
/// is no quota), for work whose size can shrink to fit: a generation's `max_tokens`. `429
/// quota_exceeded` when nothing is left. The reservation's quantity is what was granted.
pub async fn reserve_up_to(
    state: &AppState,
    ctx: &TenantCtx,
    metric: Metric,
    wanted: u64,
) -> Result<Reservation, ApiError> {
    let quota = quota_of(state, ctx, metric).await?;
    let granted = match quota {
        None => wanted,
        Some(limit) => {
            let used = state
                .usage
                .meter
                .used_this_month(ctx.handle(), metric)
                .await?;
            let left = limit.saturating_sub(used);
            if left == 0 {
                return Err(quota_error(metric, super::meter::OverQuota { used, limit }));
            }
            wanted.min(left)
        }
    };
    match state
        .usage
        .meter
        .reserve(ctx.handle(), &principal(ctx), metric, granted, quota)
        .await?
    {
        Ok(reservation) => Ok(reservation),
        Err(over) => Err(quota_error(metric, over)),
    }
}

/// Reserves `quantity` of `metric` before work starts, against the effective quota: `429
/// quota_exceeded` when it does not fit. Commit the reservation with the actual quantity afterwards
/// (then [`after_commit`] records quota alerts); dropping it releases it.
pub async fn reserve(
    state: &AppState,
    ctx: &TenantCtx,
    metric: Metric,
    quantity: u64,
) -> Result<Reservation, ApiError> {
    let quota = quota_of(state, ctx, metric).await?;
    match state
        .usage
        .meter
        .reserve(ctx.handle(), &principal(ctx), metric, quantity, quota)
        .await?
    {
        Ok(reservation) => Ok(reservation),
        Err(over) => Err(quota_error(metric, over)),
    }
}

/// After usage of `metric` was committed: records the 80 % / 100 % alerts if a quota is set.
pub async fn after_commit(state: &AppState, ctx: &TenantCtx, metric: Metric) {
    if let Ok(Some(quota)) = quota_of(state, ctx, metric).await {
        record_alerts(state, ctx, metric, quota).await;
    }
}

/// Settles an admitted request: counts a 2xx (waiting for the commit) and adds the rate headers.
pub async fn settle(
    state: &AppState,
    ctx: &TenantCtx,
    admission: Admission,
    mut response: HttpResponse,
) -> HttpResponse {
    let Admission {
        reservation,
        decision,
        quota,
    } = admission;
    if response.status().is_success() {
        if let Err(e) = reservation.commit(1).await {
            response = actix_web::ResponseError::error_response(&ApiError::from(e));
        } else if let Some(quota) = quota {
            record_alerts(state, ctx, Metric::ApiRequests, quota).await;
        }
    }
    rate_headers(&mut response, &decision);
    response
}

/// Records the 80 % and 100 % alerts the first time a month's usage reaches them (audited).
async fn record_alerts(state: &AppState, ctx: &TenantCtx, metric: Metric, quota: u64) {
    if quota == 0 {
        return;
    }
    let Ok(used) = state
        .usage
        .meter
        .used_this_month(ctx.handle(), metric)
        .await
    else {
        return;
    };
    let (_, month) = super::meter::day_and_month(crate::time_util::business_now());
    for percent in ALERT_THRESHOLDS {
        let threshold = (quota * u64::from(percent)).div_ceil(100);
        if used < threshold {
            continue;
        }
        let key = (
            ctx.id().as_str().to_string(),
            month.clone(),
            metric,
            percent,
        );
        if !state.usage.first_alert(key) {
            continue;
        }
        let month = month.clone();
        let tenant = ctx.id().to_string();
        let webhook_url = state
            .usage
            .cached_limits(ctx.id())
            .and_then(|l| l.webhook_url.clone());
        let allow_private = state.config.usage.webhook_allow_private;
        let written = ctx
            .run(move |db| {
                db.write(|tx| {
                    let inserted = tx.execute(
                        "INSERT OR IGNORE INTO usage_alerts (month, metric, threshold_percent, used, quota, at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        rusqlite::params![
                            month,
                            metric.as_str(),
                            percent,
                            i64::try_from(used).unwrap_or(i64::MAX),
                            i64::try_from(quota).unwrap_or(i64::MAX),
                            crate::time_util::now_rfc3339()
                        ],
                    )?;
                    if inserted > 0 {
                        if let Some(url) = webhook_url.clone() {
                            crate::usage::webhook::send(
                                "quota alert",
                                url,
                                allow_private,
                                serde_json::json!({
                                    "event": "quota_alert", "tenant": tenant, "metric": metric.as_str(),
                                    "month": month, "percent": percent, "used": used, "quota": quota,
                                }),
                            );
                        }
                        crate::audit::append(
                            tx,
                            &crate::audit::Actor::cli(),
                            &crate::audit::Event {
                                action: "usage.quota_alert",
                                target: metric.as_str(),
                                tenant_id: &tenant,
                                success: true,
                                detail: serde_json::json!({
                                    "month": month, "percent": percent, "used": used, "quota": quota
                                }),
                            },
                        )?;
                    }
                    Ok::<_, crate::db::DbError>(())
                })
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "quota alert not recorded");
        }
    }
}
