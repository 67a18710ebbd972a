//! The audit log over HTTP: the system log for system administrators, a tenant's log for its admins,
//! with filters, paging, and export as CSV or JSON Lines.
//!
//! A tenant's view joins the entries of its own database (changes to its content and settings) with the
//! system entries about it (members, API keys, its creation), newest first.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Entry, Filter};
use crate::db::run_blocking;
use crate::error::{ApiError, ApiResult, Code};
use crate::identity::principal::SystemAdmin;
use crate::identity::Action;
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/audit").route(web::get().to(system_log)));
}

/// Routes inside `/api/v1/tenants/{tenant}`.
pub fn configure_tenant_scope(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/audit").route(web::get().to(tenant_log)));
}

/// Query parameters of the audit endpoints.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries by this actor (username or `key:<id>`).
    pub actor: Option<String>,
    /// Only this action, e.g. `auth.login`.
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339).
    pub until: Option<String>,
    /// Text to find in actor, action, target or detail.
    pub q: Option<String>,
    /// Entries older than this sequence number (system log paging).
    pub before: Option<i64>,
    /// At most this many entries (1-1000, default 100).
    pub limit: Option<u32>,
    /// `json` (default), `csv` or `jsonl` (downloads).
    pub format: Option<String>,
}

/// A page of entries.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<Entry>,
}

impl AuditQuery {
    fn filter(&self) -> Result<Filter, ApiError> {
        for (name, value) in [("since", &self.since), ("until", &self.until)] {
            if let Some(v) = value {
                if crate::time_util::parse_rfc3339(v).is_none() {
                    return Err(ApiError::new(
                        Code::InvalidParameter,
                        format!("{name} must be an RFC 3339 time such as 2026-11-22T00:00:00Z"),
                    ));
                }
            }
        }
        Ok(Filter {
            actor: self.actor.clone(),
            action: self.action.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            text: self.q.clone().filter(|q| !q.is_empty()),
            before: self.before,
            limit: self.limit.unwrap_or(100),
        })
    }
}

/// Export (CSV, JSON Lines) is the licensed feature `audit_export`; viewing in the UI or as JSON is not.
fn check_export_licensed(state: &AppState, format: Option<&str>) -> ApiResult<()> {
    if matches!(format, Some("csv" | "jsonl")) {
        crate::license::enforce::require_feature(
            &state.license.plan(),
            crate::license::Feature::AuditExport,
            false,
        )?;
    }
    Ok(())
}

fn respond(entries: Vec<Entry>, format: Option<&str>, name: &str) -> ApiResult<HttpResponse> {
    match format.unwrap_or("json") {
        "json" => Ok(HttpResponse::Ok().json(AuditPage { entries })),
        "csv" => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{name}.csv\""),
            ))
            .body(audit::to_csv(&entries))),
        "jsonl" => {
            let mut body = String::new();
            for e in &entries {
                body.push_str(&serde_json::to_string(e).map_err(ApiError::internal)?);
                body.push('\n');
            }
            Ok(HttpResponse::Ok()
                .content_type("application/x-ndjson")
                .insert_header((
                    "Content-Disposition",
                    format!("attachment; filename=\"{name}.jsonl\""),
                ))
                .body(body))
        }
        other => Err(ApiError::new(
            Code::InvalidParameter,
            format!("format {other:?} is not one of json, csv, jsonl"),
        )),
    }
}

/// The system audit log: sign-ins, accounts, tenants, members, API keys (system administrators).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery), responses(
    (status = 200, description = "entries, newest first", body = AuditPage),
    (status = 403, description = "not a system administrator", body = crate::http::openapi::ErrorResponse)))]
pub async fn system_log(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let filter = query.filter()?;
    check_export_licensed(&state, query.format.as_deref())?;
    let system = state.system.clone();
    let entries = run_blocking(move || system.db.read(|c| audit::query(c, &filter))).await?;
    respond(entries, query.format.as_deref(), "enclave-audit-system")
}

/// A tenant's audit log: its own changes and the system entries about it (tenant admins).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/audit", tag = "audit",
    params(("tenant" = String, Path, description = "tenant id"), AuditQuery),
    responses((status = 200, description = "entries, newest first", body = AuditPage),
        (status = 403, description = "role or scope below admin", body = crate::http::openapi::ErrorResponse)))]
pub async fn tenant_log(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    query: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    tenant.require(Action::Manage)?;
    let mut filter = query.filter()?;
    check_export_licensed(&state, query.format.as_deref())?;
    // Sequence numbers belong to one database each; page the joined view by time (`until`).
    filter.before = None;
    let limit = filter.limit.clamp(1, 1000) as usize;
    let system = state.system.clone();
    let tenant_id = tenant.id().to_string();
    let own = {
        let filter = filter.clone();
        tenant
            .run(move |db| db.read(|c| audit::query(c, &filter)))
            .await?
    };
    let about = run_blocking(move || {
        system.db.read(|c| {
            let mut all = audit::query(
                c,
                &Filter {
                    limit: 1000,
                    ..filter.clone()
                },
            )?;
            all.retain(|e| e.tenant_id == tenant_id);
            Ok(all)
        })
    })
    .await?;
    let mut entries: Vec<Entry> = own.into_iter().chain(about).collect();
    entries.sort_by(|a, b| b.at.cmp(&a.at));
    entries.truncate(limit);
    respond(
        entries,
        query.format.as_deref(),
        &format!("enclave-audit-{}", tenant.id()),
    )
}
