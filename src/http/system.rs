//! `GET /api/v1/system/info`: what an administrator sees on the overview page; `GET /api/v1/models`:
//! the installed models with their state, for the models page.

use actix_web::web;
use serde::Serialize;

use crate::db::run_blocking;
use crate::error::ApiResult;
use crate::identity::principal::CurrentUser;
use crate::models::ModelStatus;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/system/info").route(web::get().to(info)))
        .service(super::resource("/api/v1/models").route(web::get().to(models)));
}

/// Facts about the running instance.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SystemInfo {
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    pub installation_id: String,
    #[schema(example = "2026-11-22T14:00:00Z")]
    pub started_at: String,
    pub uptime_seconds: u64,
    pub tenants: u64,
    pub open_tenant_pools: usize,
    pub max_open_tenant_pools: usize,
    pub models: Vec<ModelStatus>,
}

/// Version, uptime, tenant count, open tenant databases and model status.
#[utoipa::path(get, path = "/api/v1/system/info", tag = "system", responses(
    (status = 200, description = "facts about the running instance", body = SystemInfo),
    (status = 401, description = "not signed in", body = crate::http::openapi::ErrorResponse)))]
pub async fn info(
    _user: CurrentUser,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<SystemInfo>> {
    let system = state.system.clone();
    let data_dir = state.config.storage.data_dir.clone();
    let (tenants, models) = run_blocking(move || {
        let tenants = system.count_tenants()?;
        Ok::<_, crate::db::DbError>((tenants, crate::models::quick_status(&data_dir)))
    })
    .await?;
    Ok(web::Json(SystemInfo {
        version: crate::VERSION,
        installation_id: state.instance.installation_id.clone(),
        started_at: state.instance.last_started_at.clone(),
        uptime_seconds: state.started.elapsed().as_secs(),
        tenants,
        open_tenant_pools: state.tenants.live(),
        max_open_tenant_pools: state.tenants.cap(),
        models,
    }))
}

/// The installed models.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InstalledModels {
    pub models: Vec<crate::inference::service::ModelInfo>,
    pub default_chat_model: String,
    pub default_embedding_model: String,
}

/// Every installed model with its kind, size, shape and state (`loading`, `ready`, `failed`).
#[utoipa::path(get, path = "/api/v1/models", tag = "system", responses(
    (status = 200, description = "installed models", body = InstalledModels),
    (status = 401, description = "not signed in", body = crate::http::openapi::ErrorResponse)))]
pub async fn models(
    _user: CurrentUser,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<InstalledModels>> {
    let config = state.inference.config();
    Ok(web::Json(InstalledModels {
        models: state.inference.models(),
        default_chat_model: config.default_chat_model.clone(),
        default_embedding_model: config.default_embedding_model.clone(),
    }))
}
