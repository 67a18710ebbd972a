//! Tenant lifecycle for system administrators: rename, suspend or reactivate, delete (two-step) and
//! restore. These routes sit outside the tenant scope so they also reach a tenant being deleted.

use actix_web::web;
use serde::Deserialize;

use crate::audit::Actor;
use crate::db::run_blocking;
use crate::db::system::TenantRecord;
use crate::error::ApiResult;
use crate::identity::principal::{ClientInfo, SystemAdmin};
use crate::state::AppState;
use crate::tenancy::{lifecycle, TenantError, TenantId};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/admin/tenants/{id}")
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(super::resource("/api/v1/admin/tenants/{id}/restore").route(web::post().to(restore)));
}

/// A change to a tenant.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    /// New display name.
    pub name: Option<String>,
    /// `active` or `suspended` (read-only: everything can be read, nothing changed).
    pub status: Option<String>,
}

/// Renames, suspends or reactivates a tenant (system administrators).
#[utoipa::path(patch, path = "/api/v1/admin/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "tenant id")), request_body = TenantUpdate,
    responses((status = 200, description = "the tenant after the change", body = TenantRecord),
        (status = 404, description = "no such tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn update(
    admin: SystemAdmin,
    client: ClientInfo,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<TenantUpdate>,
) -> ApiResult<web::Json<TenantRecord>> {
    let id = TenantId::parse(&path.into_inner())?;
    let actor = Actor::person(&admin.user().username, &client, true);
    let system = state.system.clone();
    let body = body.into_inner();
    let record = run_blocking(move || {
        let mut record = None;
        if let Some(name) = &body.name {
            record = Some(lifecycle::rename(&system, &id, name, &actor)?);
        }
        if let Some(status) = &body.status {
            record = Some(lifecycle::set_status(&system, &id, status, &actor)?);
        }
        match record {
            Some(r) => Ok(r),
            None => system.tenant(id.as_str())?.ok_or(TenantError::NotFound(id)),
        }
    })
    .await?;
    state.key_cache.clear();
    state.tenants.forget_recent();
    if record.status == "active" {
        // Ingestion pauses while a tenant is suspended; a reactivated tenant carries on.
        if let Ok(id) = TenantId::parse(&record.id) {
            state.ingest.wake(&id);
        }
    }
    Ok(web::Json(record))
}

/// Deletes a tenant in two steps: hidden at once, purged after `storage.tenant_purge_grace_hours`.
#[utoipa::path(delete, path = "/api/v1/admin/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, description = "marked for deletion; `delete_after` is the purge time", body = TenantRecord),
        (status = 404, description = "no such tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn delete(
    admin: SystemAdmin,
    client: ClientInfo,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<web::Json<TenantRecord>> {
    let id = TenantId::parse(&path.into_inner())?;
    let actor = Actor::person(&admin.user().username, &client, true);
    let system = state.system.clone();
    let grace = state.config.storage.tenant_purge_grace_hours as i64 * 3600;
    let record =
        run_blocking(move || lifecycle::mark_for_deletion(&system, &id, grace, &actor)).await?;
    tracing::info!(tenant = %record.id, purge_at = ?record.delete_after, "tenant marked for deletion");
    state.key_cache.clear();
    state.tenants.forget_recent();
    Ok(web::Json(record))
}

/// Cancels a pending deletion (system administrators).
#[utoipa::path(post, path = "/api/v1/admin/tenants/{id}/restore", tag = "tenants",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, description = "active again", body = TenantRecord),
        (status = 404, description = "no such tenant (or already purged)", body = crate::http::openapi::ErrorResponse)))]
pub async fn restore(
    admin: SystemAdmin,
    client: ClientInfo,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<web::Json<TenantRecord>> {
    let id = TenantId::parse(&path.into_inner())?;
    let actor = Actor::person(&admin.user().username, &client, true);
    let system = state.system.clone();
    let plan = state.license.plan();
    let record = run_blocking(move || lifecycle::restore(&system, &id, &actor, &plan)).await?;
    state.key_cache.clear();
    state.tenants.forget_recent();
    Ok(web::Json(record))
}
