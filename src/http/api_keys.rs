//! API keys of a tenant: create (the secret is shown once), list, revoke, rotate. Tenant admins
//! (or keys with the `admin` scope) manage them.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::db::run_blocking;
use crate::error::ApiResult;
use crate::identity::api_key::{self, ApiKey, IssuedKey};
use crate::identity::principal::{Caller, ClientInfo};
use crate::identity::{Action, IdentityError};
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;

/// Default overlap during which a rotated key keeps working.
pub const DEFAULT_OVERLAP_HOURS: i64 = 24;

/// Routes inside `/api/v1/tenants/{tenant}`.
pub fn configure_tenant_scope(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api-keys")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(super::resource("/api-keys/{key}").route(web::delete().to(revoke)))
    .service(super::resource("/api-keys/{key}/rotate").route(web::post().to(rotate)))
    .service(super::resource("/api-keys/{key}/rate-limit").route(web::put().to(set_rate_limit)));
}

/// A key's own rate limit.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSetting {
    /// Requests per minute (1-10,000,000), or `null` for the plan's default.
    pub per_minute: Option<u32>,
}

/// Sets a key's own requests-per-minute limit, higher or lower than the plan's default (tenant admins).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/api-keys/{key}/rate-limit", tag = "api-keys",
    params(("tenant" = String, Path, description = "tenant id"), ("key" = String, Path, description = "key id")),
    request_body = RateLimitSetting,
    responses((status = 200, body = ApiKey),
        (status = 400, body = crate::http::openapi::ErrorResponse),
        (status = 404, description = "no such key in this tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn set_rate_limit(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    body: web::Json<RateLimitSetting>,
) -> ApiResult<web::Json<ApiKey>> {
    tenant.require(Action::Manage)?;
    tenant.ensure_writable()?;
    let (_, key_id) = path.into_inner();
    let system = state.system.clone();
    let id = tenant.id().to_string();
    let actor = Actor::of(&tenant.caller, &client);
    let per_minute = body.into_inner().per_minute;
    let key =
        run_blocking(move || api_key::set_rate_limit(&system, &id, &key_id, per_minute, &actor))
            .await?;
    state.key_cache.clear();
    Ok(web::Json(key))
}

/// The keys of a tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKey>,
}

/// A new key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for, e.g. "nightly import".
    pub name: String,
    /// One or more of `read`, `write`, `admin`.
    pub scopes: Vec<String>,
    /// Days until the key expires; no expiry when absent.
    pub expires_in_days: Option<u32>,
}

/// How long the old key keeps working after a rotation.
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// Hours the old key stays valid (default 24; 0 ends it now).
    pub overlap_hours: Option<u32>,
}

fn created_by(caller: &Caller) -> String {
    match caller {
        Caller::User(u) => u.user().id.clone(),
        Caller::Key(k) => format!("key:{}", k.id),
    }
}

/// Lists the tenant's keys, newest first (never their secrets).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/api-keys", tag = "api-keys",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, description = "the keys", body = KeyList),
        (status = 403, description = "role or scope below admin", body = crate::http::openapi::ErrorResponse),
        (status = 404, description = "no such tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn list(state: web::Data<AppState>, tenant: TenantCtx) -> ApiResult<web::Json<KeyList>> {
    tenant.require(Action::Manage)?;
    let system = state.system.clone();
    let id = tenant.id().to_string();
    let keys = run_blocking(move || api_key::list(&system, &id)).await?;
    Ok(web::Json(KeyList { keys }))
}

/// Creates a key. The answer holds the secret, shown this once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/api-keys", tag = "api-keys",
    params(("tenant" = String, Path, description = "tenant id")), request_body = CreateKey,
    responses((status = 201, description = "created; `secret` is shown only now", body = IssuedKey),
        (status = 400, description = "bad name, scope or expiry", body = crate::http::openapi::ErrorResponse),
        (status = 403, description = "role or scope below admin", body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    body: web::Json<CreateKey>,
) -> ApiResult<HttpResponse> {
    tenant.require(Action::Manage)?;
    tenant.ensure_writable()?;
    let body = body.into_inner();
    let expires_at = body
        .expires_in_days
        .map(|d| crate::time_util::now_utc().unix_timestamp() + i64::from(d) * 86_400);
    if body.expires_in_days == Some(0) {
        return Err(IdentityError::InvalidExpiry.into());
    }
    let system = state.system.clone();
    let (id, by) = (tenant.id().to_string(), created_by(&tenant.caller));
    let actor = Actor::of(&tenant.caller, &client);
    let issued = run_blocking(move || {
        api_key::create(
            &system,
            &id,
            &body.name,
            &body.scopes,
            expires_at,
            Some(&by),
            &actor,
        )
    })
    .await?;
    tracing::info!(tenant = %tenant.id(), key = %issued.key.id, by = %tenant.caller.label(), "API key created");
    Ok(HttpResponse::Created().json(issued))
}

/// Revokes a key at once.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/api-keys/{key}", tag = "api-keys",
    params(("tenant" = String, Path, description = "tenant id"), ("key" = String, Path, description = "key id")),
    responses((status = 200, description = "revoked", body = ApiKey),
        (status = 404, description = "no such key in this tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn revoke(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<ApiKey>> {
    tenant.require(Action::Manage)?;
    let (_, key_id) = path.into_inner();
    let system = state.system.clone();
    let id = tenant.id().to_string();
    let actor = Actor::of(&tenant.caller, &client);
    let key = run_blocking(move || api_key::revoke(&system, &id, &key_id, &actor)).await?;
    state.key_cache.clear();
    tracing::info!(tenant = %tenant.id(), key = %key.id, by = %tenant.caller.label(), "API key revoked");
    Ok(web::Json(key))
}

/// Rotates a key: returns a new key (secret shown once); the old one works until the overlap ends.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/api-keys/{key}/rotate", tag = "api-keys",
    params(("tenant" = String, Path, description = "tenant id"), ("key" = String, Path, description = "key id")),
    request_body = Rotation,
    responses((status = 201, description = "the new key; `secret` is shown only now", body = IssuedKey),
        (status = 404, description = "no such active key in this tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn rotate(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    body: Option<web::Json<Rotation>>,
) -> ApiResult<HttpResponse> {
    tenant.require(Action::Manage)?;
    tenant.ensure_writable()?;
    let (_, key_id) = path.into_inner();
    let overlap_hours = body
        .and_then(|b| b.into_inner().overlap_hours)
        .map_or(DEFAULT_OVERLAP_HOURS, i64::from);
    let system = state.system.clone();
    let (id, by) = (tenant.id().to_string(), created_by(&tenant.caller));
    let actor = Actor::of(&tenant.caller, &client);
    let issued = run_blocking(move || {
        api_key::rotate(
            &system,
            &id,
            &key_id,
            overlap_hours * 3600,
            Some(&by),
            &actor,
        )
    })
    .await?;
    state.key_cache.clear();
    tracing::info!(tenant = %tenant.id(), key = %issued.key.id, by = %tenant.caller.label(), "API key rotated");
    Ok(HttpResponse::Created().json(issued))
}
