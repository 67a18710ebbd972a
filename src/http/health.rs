//! Probes: `/healthz` (the process is alive), `/readyz` (databases open, migrations done, not stopping)
//! and `/metrics` (Prometheus text).

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::db::run_blocking;
use crate::error::{ApiError, ApiResult, Code};
use crate::metrics::Gauges;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/healthz").route(web::get().to(healthz)))
        .service(super::resource("/readyz").route(web::get().to(readyz)))
        .service(super::resource("/metrics").route(web::get().to(metrics)));
}

/// Probe answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, description = "alive", body = Status)))]
pub async fn healthz() -> web::Json<Status> {
    web::Json(Status { status: "ok" })
}

/// Readiness: the system database answers, migrations are done and the server is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses(
    (status = 200, description = "ready to serve", body = Status),
    (status = 503, description = "starting, stopping or database unavailable", body = crate::http::openapi::ErrorResponse)))]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<web::Json<Status>> {
    if !state.is_ready() {
        return Err(
            ApiError::new(Code::NotReady, "the server is starting or shutting down")
                .with_retry_after(1),
        );
    }
    let system = state.system.clone();
    run_blocking(move || system.ping()).await?;
    Ok(web::Json(Status { status: "ready" }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "probes", responses((status = 200, description = "metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let system = state.system.clone();
    let tenants = run_blocking(move || system.count_tenants())
        .await
        .unwrap_or(0);
    let dir = state.config.backup.dir_for(&state.config.storage.data_dir);
    let listed = run_blocking(move || {
        crate::backup::list(&dir).map_err(|e| crate::error::ApiError::internal(e.to_string()))
    })
    .await
    .unwrap_or_default();
    let unix = |at: &str| crate::time_util::parse_rfc3339(at).map(|t| t.unix_timestamp());
    let backup = crate::metrics::BackupGauges {
        newest_unix: listed
            .iter()
            .filter_map(|b| b.header.as_ref())
            .filter(|h| h.kind != crate::backup::secrets::SECRETS_KIND)
            .filter_map(|h| unix(&h.created_at))
            .max(),
        count: listed.len(),
        last_run_ok: state.backups.last().map(|r| r.ok),
        last_failure_unix: state
            .backups
            .last_failure()
            .and_then(|r| unix(&r.finished_at)),
        last_drill_ok: state.backups.last_drill().map(|r| r.ok),
        last_drill_unix: state
            .backups
            .last_drill()
            .and_then(|r| unix(&r.finished_at)),
    };
    let gauges = Gauges {
        tenant_pools_open: state.tenants.live(),
        tenant_pools_high_water: state.tenants.high_water(),
        tenant_pools_cap: state.tenants.cap(),
        tenants,
        uptime: state.started.elapsed(),
        ready: state.is_ready(),
        backup,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::global().render(&gauges)))
}
