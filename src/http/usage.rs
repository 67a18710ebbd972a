//! Usage over HTTP: a tenant's time series (day or month, by metric and optionally by key/user, JSON
//! or CSV), its quotas with this month's usage, quota settings, and the system-wide monthly overview.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::db::run_blocking;
use crate::error::{ApiError, ApiResult, Code};
use crate::identity::principal::{ClientInfo, SystemAdmin};
use crate::identity::Action;
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;
use crate::usage::{effective_quota, Metric};

pub fn configure_tenant_scope(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/usage").route(web::get().to(series)))
        .service(
            super::resource("/quotas")
                .route(web::get().to(quotas))
                .route(web::put().to(set_quotas)),
        )
        .service(super::resource("/rate-limit").route(web::put().to(set_rate_limit)))
        .service(super::resource("/alert-webhook").route(web::put().to(set_alert_webhook)))
        .service(super::resource("/statements").route(web::get().to(statements)))
        .service(super::resource("/statements/{month}").route(web::get().to(statement)));
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/usage").route(web::get().to(overview)))
        .service(
            super::resource("/api/v1/billing/prices")
                .route(web::get().to(get_prices))
                .route(web::put().to(put_prices)),
        );
}

use crate::usage::statements::{self, PriceList, Statement};

/// The internal price list (system administrators; every tenant admin sees the prices in statements).
#[utoipa::path(get, path = "/api/v1/billing/prices", tag = "usage", responses((status = 200, body = PriceList)))]
pub async fn get_prices(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<PriceList>> {
    let system = state.system.clone();
    let list = run_blocking(move || system.db.read(statements::prices)).await?;
    Ok(web::Json(list))
}

/// A price as people write it: `{"unit_size": 1000, "unit_price": "0.50"}` (decimal text, at most six
/// decimals: 0.50 per 1,000 units).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    pub unit_size: u64,
    pub unit_price: String,
}

/// Changes to the price list.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceUpdate {
    /// ISO 4217 code or any short label (`EUR`, `USD`, `credits`).
    pub currency: Option<String>,
    /// metric → price, or `null` to remove a metric's price.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub prices: std::collections::BTreeMap<String, Option<PriceInput>>,
}

/// Sets internal prices (system administrators). Closed statements keep the prices of their month.
#[utoipa::path(put, path = "/api/v1/billing/prices", tag = "usage", request_body = PriceUpdate,
    responses((status = 200, body = PriceList), (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn put_prices(
    admin: SystemAdmin,
    client: ClientInfo,
    state: web::Data<AppState>,
    body: web::Json<PriceUpdate>,
) -> ApiResult<web::Json<PriceList>> {
    let update = body.into_inner();
    let invalid = |m: String| ApiError::new(Code::InvalidRequest, m);
    if let Some(c) = &update.currency {
        if c.trim().is_empty() || c.len() > 8 || !c.chars().all(|ch| ch.is_ascii_alphanumeric()) {
            return Err(invalid(format!(
                "currency {c:?}: use up to 8 letters or digits, e.g. EUR"
            )));
        }
    }
    let mut changes = std::collections::BTreeMap::new();
    for (name, price) in update.prices {
        let metric = Metric::parse(&name)
            .filter(|m| *m != Metric::StorageBytes)
            .ok_or_else(|| invalid(format!("unknown metric {name:?}")))?;
        let price = match price {
            None => None,
            Some(p) => {
                if !(1..=1_000_000_000).contains(&p.unit_size) {
                    return Err(invalid(format!(
                        "the unit size of {name} must be between 1 and 1,000,000,000"
                    )));
                }
                let micros = statements::parse_amount(&p.unit_price).ok_or_else(|| {
                    invalid(format!(
                        "the price of {name} must be a decimal such as 0.50 (at most six decimals, not negative), not {:?}",
                        p.unit_price
                    ))
                })?;
                Some(statements::Price {
                    unit_size: p.unit_size,
                    unit_price_micros: micros,
                })
            }
        };
        changes.insert(metric, price);
    }
    let actor = crate::audit::Actor::person(&admin.user().username, &client, true);
    let system = state.system.clone();
    let list = run_blocking(move || {
        system.db.write(|tx| {
            statements::set_prices(tx, update.currency.as_deref(), &changes, &actor)?;
            statements::prices(tx).map_err(crate::db::DbError::from)
        })
    })
    .await?;
    Ok(web::Json(list))
}

/// A tenant's statements: the closed months and this month's preview.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatementIndex {
    /// Months with a closed statement, newest first.
    pub closed_months: Vec<String>,
    /// This month so far (not final).
    pub current: Statement,
}

/// Lists a tenant's statements (tenant admins).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/statements", tag = "usage",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, body = StatementIndex)))]
pub async fn statements(
    state: web::Data<AppState>,
    tenant: TenantCtx,
) -> ApiResult<web::Json<StatementIndex>> {
    tenant.require(Action::Manage)?;
    let (_, month) = crate::usage::meter::day_and_month(crate::time_util::business_now());
    let system = state.system.clone();
    let id = tenant.id().to_string();
    let name = tenant.record.name.clone();
    let index = tenant
        .run(move |db| {
            let quantities = db.read(|c| statements::month_quantities(c, &month))?;
            let (list, closed_months) = system
                .db
                .read(|c| Ok((statements::prices(c)?, statements::closed_months(c, &id)?)))?;
            Ok::<_, crate::db::DbError>(StatementIndex {
                closed_months,
                current: statements::compute(&id, &name, &month, &quantities, &list, false),
            })
        })
        .await?;
    Ok(web::Json(index))
}

/// Output format of a statement.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// `json` (default), `csv`, or `html` (a printable page).
    pub format: Option<String>,
}

/// One month's statement (tenant admins). A past month is closed on first request (stored, final,
/// audited); the current month is a preview.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/statements/{month}", tag = "usage",
    params(("tenant" = String, Path, description = "tenant id"), ("month" = String, Path, description = "YYYY-MM"), StatementQuery),
    responses((status = 200, body = Statement), (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn statement(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    query: web::Query<StatementQuery>,
) -> ApiResult<HttpResponse> {
    tenant.require(Action::Manage)?;
    let (_, month) = path.into_inner();
    parse_day("month", &format!("{month}-01"))?;
    if month.len() != 7 {
        return Err(bad("month must look like 2026-11"));
    }
    let (_, current) = crate::usage::meter::day_and_month(crate::time_util::business_now());
    if month > current {
        return Err(bad(format!("{month} has not started yet")));
    }
    let system = state.system.clone();
    let id = tenant.id().to_string();
    let name = tenant.record.name.clone();
    let actor = crate::audit::Actor::of(&tenant.caller, &client);
    let month_q = month.clone();
    let statement = tenant
        .run(move |db| {
            let conn = db.connection()?;
            if month_q == current {
                let quantities = statements::month_quantities(&conn, &month_q)?;
                let list = system.db.read(statements::prices)?;
                Ok(statements::compute(
                    &id,
                    &name,
                    &month_q,
                    &quantities,
                    &list,
                    false,
                ))
            } else {
                statements::close(&system, &conn, &id, &name, &month_q, &actor)
            }
        })
        .await?;
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(HttpResponse::Ok().json(statement)),
        "csv" => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!(
                    "attachment; filename=\"statement-{}-{month}.csv\"",
                    tenant.id()
                ),
            ))
            .body(statements::to_csv(&statement))),
        "html" => Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            // A standalone page: its own styles, no scripts, nothing from elsewhere.
            .insert_header((
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'",
            ))
            .body(statements::to_html(&statement))),
        other => Err(bad(format!("format {other:?} is not json, csv or html"))),
    }
}

/// Which usage to return.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// `day` (default) or `month`.
    pub granularity: Option<String>,
    /// First day, `YYYY-MM-DD` (default: 30 days ago; for months, the start of that month).
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today).
    pub to: Option<String>,
    /// Only this metric (e.g. `api_requests`).
    pub metric: Option<String>,
    /// `true`: one row per key/user as well.
    pub by_principal: Option<bool>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// One point of a series.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsagePoint {
    /// `YYYY-MM-DD` or `YYYY-MM`.
    pub period: String,
    pub metric: String,
    /// `key:<id>` or `user:<name>`; absent unless `by_principal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    pub quantity: u64,
}

/// A usage series.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageSeries {
    pub granularity: String,
    pub from: String,
    pub to: String,
    pub points: Vec<UsagePoint>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidParameter, message)
}

fn parse_day(name: &str, text: &str) -> ApiResult<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .map_err(|_| bad(format!("{name} must be a date such as 2026-11-01")))
}

/// A tenant's usage as a time series (tenant admins; API keys with `admin`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/usage", tag = "usage",
    params(("tenant" = String, Path, description = "tenant id"), SeriesQuery),
    responses((status = 200, body = UsageSeries), (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn series(tenant: TenantCtx, query: web::Query<SeriesQuery>) -> ApiResult<HttpResponse> {
    tenant.require(Action::Manage)?;
    let query = query.into_inner();
    let monthly = match query.granularity.as_deref().unwrap_or("day") {
        "day" => false,
        "month" => true,
        other => return Err(bad(format!("granularity {other:?} is not day or month"))),
    };
    let today = crate::time_util::business_now().date();
    let to = match &query.to {
        Some(t) => parse_day("to", t)?,
        None => today,
    };
    let mut from = match &query.from {
        Some(f) => parse_day("from", f)?,
        None => to - time::Duration::days(30),
    };
    if monthly {
        from = from.replace_day(1).unwrap_or(from);
    }
    if from > to {
        return Err(bad("from is after to"));
    }
    if (to - from).whole_days() > 3 * 366 {
        return Err(bad("at most three years at a time"));
    }
    let metric = match &query.metric {
        Some(m) => Some(
            Metric::parse(m)
                .ok_or_else(|| bad(format!("unknown metric {m:?}")))?
                .as_str(),
        ),
        None => None,
    };
    let by_principal = query.by_principal.unwrap_or(false);
    let (from_text, to_text) = (from.to_string(), to.to_string());
    let (from_q, to_q) = (from_text.clone(), to_text.clone());
    let points = tenant
        .run(move |db| {
            db.read(|c| {
                let period = if monthly { "substr(day, 1, 7)" } else { "day" };
                let principal = if by_principal { "principal" } else { "NULL" };
                let sql = format!(
                    "SELECT {period} AS p, metric, {principal} AS who, sum(quantity) FROM usage_daily
                     WHERE day >= ?1 AND day <= ?2 AND (?3 IS NULL OR metric = ?3)
                     GROUP BY p, metric, who ORDER BY p, metric, who"
                );
                let mut stmt = c.prepare(&sql)?;
                let rows = stmt.query_map(rusqlite::params![from_q, to_q, metric], |r| {
                    Ok(UsagePoint {
                        period: r.get(0)?,
                        metric: r.get(1)?,
                        principal: r.get(2)?,
                        quantity: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
        })
        .await?;
    let series = UsageSeries {
        granularity: if monthly { "month" } else { "day" }.into(),
        from: from_text,
        to: to_text,
        points,
    };
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(HttpResponse::Ok().json(series)),
        "csv" => {
            let mut body = String::from("period,metric,principal,quantity\n");
            for p in &series.points {
                body.push_str(&format!(
                    "{},{},{},{}\n",
                    p.period,
                    p.metric,
                    p.principal.as_deref().unwrap_or(""),
                    p.quantity
                ));
            }
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header((
                    "Content-Disposition",
                    format!("attachment; filename=\"enclave-usage-{}.csv\"", tenant.id()),
                ))
                .body(body))
        }
        other => Err(bad(format!("format {other:?} is not json or csv"))),
    }
}

/// A metric's quota and this month's use.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QuotaStatus {
    pub metric: Metric,
    /// Committed plus in-flight use this calendar month (UTC).
    pub used_this_month: u64,
    /// The tenant's own setting (`null`: none).
    pub tenant_limit: Option<u64>,
    /// The licence's limit (`null`: unlimited).
    pub licence_limit: Option<u64>,
    /// What is enforced: the smaller of the two (`null`: unlimited).
    pub effective_limit: Option<u64>,
    /// Soft alerts recorded this month (80 %, 100 %).
    pub alerts: Vec<u8>,
}

/// Quotas of a tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QuotaList {
    pub month: String,
    /// Seconds until the month resets.
    pub resets_in_seconds: u64,
    pub quotas: Vec<QuotaStatus>,
    /// The tenant's own requests-per-minute limit (`null`: the plan's default, `plan_rate_per_minute`).
    pub rate_limit_per_minute: Option<u32>,
    pub plan_rate_per_minute: u32,
    /// Whether quota alerts are posted to a webhook (the URL itself is not shown).
    pub alert_webhook: bool,
}

async fn quota_list(state: &AppState, tenant: &TenantCtx) -> ApiResult<QuotaList> {
    let usage = state.usage.clone();
    let id = tenant.id().clone();
    let now = crate::time_util::business_now();
    let (_, month) = crate::usage::meter::day_and_month(now);
    let month_q = month.clone();
    let (own, alerts) = tenant
        .run(move |db| {
            let own = usage.tenant_limits(&id, db)?;
            let alerts = db.read(|c| {
                let mut stmt = c.prepare(
                    "SELECT metric, threshold_percent FROM usage_alerts WHERE month = ?1 ORDER BY 2",
                )?;
                let rows = stmt.query_map([month_q], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, u8>(1)?))
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })?;
            Ok::<_, crate::db::DbError>((own, alerts))
        })
        .await?;
    let limits = state.license.plan().entitlements.limits;
    let mut quotas = Vec::new();
    for metric in Metric::ALL.iter().copied() {
        // Storage is a gauge: the bytes of uploaded files the tenant keeps now (its limit is not
        // monthly; the licence's storage_gb is for the whole installation).
        let (used, licence_limit) = if metric == Metric::StorageBytes {
            let stored = tenant
                .run(|db| db.read(crate::knowledge::store::stored_bytes))
                .await?;
            (stored, limits.storage_gb.map(|gb| gb << 30))
        } else {
            let used = state
                .usage
                .meter
                .used_this_month(tenant.handle(), metric)
                .await?;
            (used, metric.licence_limit(&limits))
        };
        let tenant_limit = own.quotas.get(&metric).copied();
        quotas.push(QuotaStatus {
            metric,
            used_this_month: used,
            tenant_limit,
            licence_limit,
            effective_limit: effective_quota(tenant_limit, licence_limit),
            alerts: alerts
                .iter()
                .filter(|(m, _)| m == metric.as_str())
                .map(|(_, p)| *p)
                .collect(),
        });
    }
    Ok(QuotaList {
        month,
        resets_in_seconds: crate::usage::meter::seconds_until_next_month(now),
        quotas,
        rate_limit_per_minute: own.rate_per_minute,
        plan_rate_per_minute: crate::usage::plan_rate_per_minute(
            state.license.plan().entitlements.plan,
        ),
        alert_webhook: own.webhook_url.is_some(),
    })
}

/// Quotas with this month's use (tenant admins).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/quotas", tag = "usage",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, body = QuotaList)))]
pub async fn quotas(
    state: web::Data<AppState>,
    tenant: TenantCtx,
) -> ApiResult<web::Json<QuotaList>> {
    tenant.require(Action::Manage)?;
    Ok(web::Json(quota_list(&state, &tenant).await?))
}

/// Sets the tenant's own monthly quotas: `{"api_requests": 5000, "messages": null}` (`null` removes a
/// setting). The licence's limit still caps them (tenant admins).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/quotas", tag = "usage",
    params(("tenant" = String, Path, description = "tenant id")),
    request_body(content = Object, description = "metric → monthly limit or null"),
    responses((status = 200, body = QuotaList), (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn set_quotas(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    body: web::Json<std::collections::BTreeMap<String, Option<i64>>>,
) -> ApiResult<web::Json<QuotaList>> {
    tenant.require(Action::Manage)?;
    tenant.ensure_writable()?;
    let mut changes = Vec::new();
    for (name, limit) in body.into_inner() {
        let metric = Metric::parse(&name).ok_or_else(|| {
            ApiError::new(Code::InvalidRequest, format!("unknown metric {name:?}"))
        })?;
        if let Some(n) = limit {
            if !(0..=1_000_000_000_000_000).contains(&n) {
                return Err(ApiError::new(
                    Code::InvalidRequest,
                    format!("the quota of {name} must be between 0 and 10^15, not {n}"),
                ));
            }
        }
        changes.push((metric, limit));
    }
    let actor = crate::audit::Actor::of(&tenant.caller, &client);
    let tenant_id = tenant.id().to_string();
    tenant
        .run(move |db| {
            db.write(|tx| {
                for (metric, limit) in &changes {
                    match limit {
                        Some(n) => tx.execute(
                            "INSERT INTO usage_quotas (metric, monthly_limit, updated_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT (metric) DO UPDATE SET monthly_limit = excluded.monthly_limit,
                                 updated_at = excluded.updated_at",
                            rusqlite::params![metric.as_str(), n, crate::time_util::now_rfc3339()],
                        )?,
                        None => tx.execute(
                            "DELETE FROM usage_quotas WHERE metric = ?1",
                            [metric.as_str()],
                        )?,
                    };
                }
                let detail: serde_json::Map<String, serde_json::Value> = changes
                    .iter()
                    .map(|(m, l)| (m.as_str().to_string(), serde_json::json!(l)))
                    .collect();
                crate::audit::append(
                    tx,
                    &actor,
                    &crate::audit::Event {
                        action: "usage.quotas_set",
                        target: &tenant_id,
                        tenant_id: &tenant_id,
                        success: true,
                        detail: serde_json::Value::Object(detail),
                    },
                )?;
                Ok::<_, crate::db::DbError>(())
            })
        })
        .await?;
    state.usage.forget_settings(tenant.id());
    Ok(web::Json(quota_list(&state, &tenant).await?))
}

/// The tenant's requests-per-minute limit for all its API keys together.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantRateLimit {
    /// 1-10,000,000, or `null` for the plan's default (free 10, pro 60, enterprise 1,000).
    pub per_minute: Option<u32>,
}

/// Sets the tenant-wide rate limit (tenant admins). Each key is also held to its own limit.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/rate-limit", tag = "usage",
    params(("tenant" = String, Path, description = "tenant id")), request_body = TenantRateLimit,
    responses((status = 200, body = TenantRateLimit), (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn set_rate_limit(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    body: web::Json<TenantRateLimit>,
) -> ApiResult<web::Json<TenantRateLimit>> {
    tenant.require(Action::Manage)?;
    tenant.ensure_writable()?;
    let setting = body.into_inner();
    if setting
        .per_minute
        .is_some_and(|n| !(1..=10_000_000).contains(&n))
    {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "a rate limit must be between 1 and 10,000,000 requests a minute, or null",
        ));
    }
    let per_minute = setting.per_minute;
    write_usage_setting(
        &state,
        &tenant,
        &client,
        crate::usage::RATE_LIMIT_SETTING,
        per_minute.map(|n| n.to_string()),
        "usage.rate_limit_set",
        serde_json::json!({ "per_minute": per_minute }),
    )
    .await?;
    Ok(web::Json(setting))
}

/// Writes (or with `None` removes) one of the tenant settings the usage gate reads, audits the change
/// with `detail`, and drops the gate's cached copy.
async fn write_usage_setting(
    state: &AppState,
    tenant: &TenantCtx,
    client: &ClientInfo,
    key: &'static str,
    value: Option<String>,
    action: &'static str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    let actor = crate::audit::Actor::of(&tenant.caller, client);
    let tenant_id = tenant.id().to_string();
    tenant
        .run(move |db| {
            db.write(|tx| {
                match &value {
                    Some(v) => tx.execute(
                        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        rusqlite::params![key, v, crate::time_util::now_rfc3339()],
                    )?,
                    None => tx.execute("DELETE FROM settings WHERE key = ?1", [key])?,
                };
                crate::audit::append(
                    tx,
                    &actor,
                    &crate::audit::Event {
                        action,
                        target: &tenant_id,
                        tenant_id: &tenant_id,
                        success: true,
                        detail,
                    },
                )?;
                Ok::<_, crate::db::DbError>(())
            })
        })
        .await?;
    state.usage.forget_settings(tenant.id());
    Ok(())
}

/// Where quota alerts are posted.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertWebhook {
    /// An `http(s)://` URL, or `null` for none. Loopback and link-local targets are refused unless
    /// `usage.webhook_allow_private` is set.
    pub url: Option<String>,
}

/// Sets the URL quota alerts are posted to as JSON (tenant admins).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/alert-webhook", tag = "usage",
    params(("tenant" = String, Path, description = "tenant id")), request_body = AlertWebhook,
    responses((status = 200, body = AlertWebhook), (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn set_alert_webhook(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    body: web::Json<AlertWebhook>,
) -> ApiResult<web::Json<AlertWebhook>> {
    tenant.require(Action::Manage)?;
    tenant.ensure_writable()?;
    let setting = body.into_inner();
    if let Some(url) = setting.url.clone() {
        let allow = state.config.usage.webhook_allow_private;
        run_blocking(move || crate::usage::webhook::check(&url, allow)).await?;
    }
    // The URL may carry a token: the audit records that it changed, not the URL.
    write_usage_setting(
        &state,
        &tenant,
        &client,
        crate::usage::webhook::WEBHOOK_SETTING,
        setting
            .url
            .as_ref()
            .map(|u| serde_json::json!(u).to_string()),
        "usage.alert_webhook_set",
        serde_json::json!({ "set": setting.url.is_some() }),
    )
    .await?;
    Ok(web::Json(setting))
}

/// The month to summarise.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    /// `YYYY-MM` (default: this month).
    pub month: Option<String>,
}

/// One tenant's monthly totals.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantUsage {
    pub tenant_id: String,
    pub name: String,
    /// metric → quantity.
    pub totals: std::collections::BTreeMap<String, u64>,
}

/// The system-wide overview.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageOverview {
    pub month: String,
    /// Tenants, most API requests first.
    pub tenants: Vec<TenantUsage>,
}

/// Every tenant's totals for a month (system administrators).
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", params(OverviewQuery),
    responses((status = 200, body = UsageOverview)))]
pub async fn overview(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
    query: web::Query<OverviewQuery>,
) -> ApiResult<web::Json<UsageOverview>> {
    let month = match query.into_inner().month {
        Some(m) => {
            parse_day("month", &format!("{m}-01"))?;
            m
        }
        None => crate::usage::meter::day_and_month(crate::time_util::business_now()).1,
    };
    let registry = state.tenants.clone();
    let system = state.system.clone();
    let month_q = month.clone();
    let mut tenants = run_blocking(move || {
        let mut out = Vec::new();
        for record in system.list_tenants()? {
            let Ok(id) = crate::tenancy::TenantId::parse(&record.id) else {
                continue;
            };
            let Ok((_, db)) = registry.get(&id) else {
                continue;
            };
            let pattern = format!("{month_q}-%");
            let totals = db.db().read(|c| {
                let mut stmt = c.prepare(
                    "SELECT metric, sum(quantity) FROM usage_daily WHERE day LIKE ?1 GROUP BY metric",
                )?;
                let rows = stmt.query_map([&pattern], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    ))
                })?;
                rows.collect::<Result<std::collections::BTreeMap<_, _>, _>>()
            })?;
            out.push(TenantUsage {
                tenant_id: record.id,
                name: record.name,
                totals,
            });
        }
        Ok::<_, crate::db::DbError>(out)
    })
    .await?;
    tenants.sort_by_key(|t| std::cmp::Reverse(t.totals.get("api_requests").copied().unwrap_or(0)));
    Ok(web::Json(UsageOverview { month, tenants }))
}
