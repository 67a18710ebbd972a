//! `/api/v1/providers`: external OpenAI-compatible inference endpoints (system administrators). See
//! [`crate::inference::providers`].

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::audit::Actor;
use crate::db::run_blocking;
use crate::error::ApiResult;
use crate::identity::principal::{ClientInfo, SystemAdmin};
use crate::inference::providers::{self, Provider, ProviderInput};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/providers")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        super::resource("/api/v1/providers/{id}")
            .route(web::get().to(show))
            .route(web::put().to(replace))
            .route(web::delete().to(remove)),
    );
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderList {
    pub providers: Vec<Provider>,
}

/// Re-reads the providers into the routing cache.
async fn refresh(state: &AppState) -> ApiResult<()> {
    let system = state.system.clone();
    let all = run_blocking(move || system.db.read(providers::list)).await?;
    state.inference.set_providers(all);
    Ok(())
}

/// Lists the external providers (keys never shown).
#[utoipa::path(get, path = "/api/v1/providers", tag = "inference", responses(
    (status = 200, description = "providers", body = ProviderList)))]
pub async fn list(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<ProviderList>> {
    let system = state.system.clone();
    let providers = run_blocking(move || system.db.read(providers::list)).await?;
    Ok(web::Json(ProviderList { providers }))
}

/// Registers a provider and the models it serves.
#[utoipa::path(post, path = "/api/v1/providers", tag = "inference", request_body = ProviderInput, responses(
    (status = 201, description = "registered", body = Provider),
    (status = 400, description = "invalid", body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    body: web::Json<ProviderInput>,
) -> ApiResult<HttpResponse> {
    let saved = save(&state, &admin, &client, None, body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/providers/{}", saved.id)))
        .json(saved))
}

async fn save(
    state: &AppState,
    admin: &SystemAdmin,
    client: &ClientInfo,
    id: Option<String>,
    input: ProviderInput,
) -> ApiResult<Provider> {
    let actor = Actor::person(&admin.user().username, client, true);
    let (system, data_dir) = (state.system.clone(), state.config.storage.data_dir.clone());
    let local = state.inference.local_names();
    let saved = run_blocking(move || {
        providers::save(&system, &data_dir, id.as_deref(), &input, &local, &actor)
    })
    .await?;
    refresh(state).await?;
    Ok(saved)
}

/// One provider.
#[utoipa::path(get, path = "/api/v1/providers/{id}", tag = "inference", responses(
    (status = 200, description = "the provider", body = Provider),
    (status = 404, description = "no such provider", body = crate::http::openapi::ErrorResponse)))]
pub async fn show(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<Provider>> {
    let system = state.system.clone();
    let id = id.into_inner();
    Ok(web::Json(
        run_blocking(move || providers::find(&system, &id)).await?,
    ))
}

/// Replaces a provider (omit `api_key` to keep the stored one).
#[utoipa::path(put, path = "/api/v1/providers/{id}", tag = "inference", request_body = ProviderInput, responses(
    (status = 200, description = "saved", body = Provider),
    (status = 404, description = "no such provider", body = crate::http::openapi::ErrorResponse)))]
pub async fn replace(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    id: web::Path<String>,
    body: web::Json<ProviderInput>,
) -> ApiResult<web::Json<Provider>> {
    let system = state.system.clone();
    let id = id.into_inner();
    let existing = run_blocking(move || providers::find(&system, &id)).await?;
    Ok(web::Json(
        save(
            &state,
            &admin,
            &client,
            Some(existing.id),
            body.into_inner(),
        )
        .await?,
    ))
}

/// Removes a provider; its models stop routing at once.
#[utoipa::path(delete, path = "/api/v1/providers/{id}", tag = "inference", responses(
    (status = 204, description = "removed"),
    (status = 404, description = "no such provider", body = crate::http::openapi::ErrorResponse)))]
pub async fn remove(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let actor = Actor::person(&admin.user().username, &client, true);
    let system = state.system.clone();
    let id = id.into_inner();
    run_blocking(move || providers::delete(&system, &id, &actor)).await?;
    refresh(&state).await?;
    Ok(HttpResponse::NoContent().finish())
}
