//! Tenants: list, create, inspect, and tenant settings.
//!
//! Settings are a small JSON document per tenant (one JSON value per key) stored in the tenant's own
//! database; later features keep their tenant-level options here.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::guard::LocalAdmin;
use crate::db::system::TenantRecord;
use crate::db::{run_blocking, Database, DbError};
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;
use crate::tenancy::TenantId;

/// At most this many settings keys per tenant.
pub const MAX_SETTINGS: usize = 100;
/// At most this many bytes of JSON per setting value.
pub const MAX_SETTING_BYTES: usize = 16 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/tenants")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(super::resource("/api/v1/tenants/{tenant}").route(web::get().to(show)))
    .service(
        super::resource("/api/v1/tenants/{tenant}/settings")
            .route(web::get().to(get_settings))
            .route(web::patch().to(patch_settings)),
    );
}

/// All tenants.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantRecord>,
}

/// A new tenant.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Display name, 1–200 characters.
    #[schema(example = "Acme Corp")]
    pub name: String,
    /// Optional id (2–63 of `a-z`, `0-9`, `-`); derived from the name when absent.
    #[schema(example = "acme")]
    pub id: Option<String>,
}

/// A tenant with facts about its database.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: TenantRecord,
    /// Schema version of the tenant database.
    pub schema_version: u32,
    /// Size of the tenant database file, in bytes.
    pub database_bytes: u64,
}

/// A tenant's settings: one JSON value per key.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settings {
    #[schema(value_type = Object)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// Lists every tenant.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", responses(
    (status = 200, description = "every tenant, ordered by id", body = TenantList),
    (status = 403, body = crate::http::openapi::ErrorResponse)))]
pub async fn list(
    _admin: LocalAdmin,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<TenantList>> {
    let system = state.system.clone();
    let tenants = run_blocking(move || system.list_tenants()).await?;
    Ok(web::Json(TenantList { tenants }))
}

/// Creates a tenant with its own database.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant, responses(
    (status = 201, description = "the tenant was created; `Location` names it", body = TenantRecord),
    (status = 400, description = "invalid id or name", body = crate::http::openapi::ErrorResponse),
    (status = 409, description = "a tenant with this id exists", body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    _admin: LocalAdmin,
    state: web::Data<AppState>,
    body: web::Json<CreateTenant>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let id = match body.id.as_deref() {
        Some(id) => TenantId::parse(id)?,
        None => TenantId::from_name(&body.name)?,
    };
    let registry = state.tenants.clone();
    let record = run_blocking(move || registry.create(&id, &body.name)).await?;
    tracing::info!(tenant = %record.id, "tenant created");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/tenants/{}", record.id)))
        .json(record))
}

/// One tenant, with its database's schema version and size.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, description = "the tenant", body = TenantDetail), (status = 404, description = "no such tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn show(_admin: LocalAdmin, tenant: TenantCtx) -> ApiResult<web::Json<TenantDetail>> {
    let schema_version = tenant
        .run(|db| db.read(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))))
        .await?;
    let database_bytes = std::fs::metadata(tenant.db().path())
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(web::Json(TenantDetail {
        tenant: tenant.record.clone(),
        schema_version,
        database_bytes,
    }))
}

fn read_settings(db: &Database) -> Result<BTreeMap<String, serde_json::Value>, DbError> {
    let rows: Vec<(String, String)> = db.read(|c| {
        let mut stmt = c.prepare_cached("SELECT key, value FROM settings ORDER BY key")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    })?;
    Ok(rows
        .into_iter()
        .map(|(k, v)| {
            let value = serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v));
            (k, value)
        })
        .collect())
}

/// The tenant's settings.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/settings", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, description = "all settings of the tenant", body = Settings), (status = 404, description = "no such tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn get_settings(_admin: LocalAdmin, tenant: TenantCtx) -> ApiResult<web::Json<Settings>> {
    let settings = tenant.run(read_settings).await?;
    Ok(web::Json(Settings { settings }))
}

fn valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// Merges settings: each key is set to its value, a `null` value removes the key. Returns all settings.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/settings", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id")),
    request_body(content = Object, description = "keys to set; null removes a key"),
    responses(
        (status = 200, description = "all settings after the change", body = Settings),
        (status = 400, description = "invalid key or value too large", body = crate::http::openapi::ErrorResponse),
        (status = 404, description = "no such tenant", body = crate::http::openapi::ErrorResponse),
        (status = 409, description = "tenant suspended", body = crate::http::openapi::ErrorResponse)))]
pub async fn patch_settings(
    _admin: LocalAdmin,
    tenant: TenantCtx,
    body: web::Json<BTreeMap<String, serde_json::Value>>,
) -> ApiResult<web::Json<Settings>> {
    tenant.ensure_writable()?;
    let changes = body.into_inner();
    let mut encoded = Vec::with_capacity(changes.len());
    for (key, value) in changes {
        if !valid_key(&key) {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!(
                    "invalid settings key {key:?}: use 1-64 characters a-z, 0-9, '_', '.', '-'"
                ),
            ));
        }
        let json = (!value.is_null()).then(|| value.to_string());
        if json.as_ref().is_some_and(|j| j.len() > MAX_SETTING_BYTES) {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("the value of {key:?} is larger than {MAX_SETTING_BYTES} bytes"),
            ));
        }
        encoded.push((key, json));
    }
    let settings = tenant
        .run(move |db| {
            db.write(|tx| {
                let now = crate::time_util::now_rfc3339();
                for (key, json) in &encoded {
                    match json {
                        Some(json) => tx.execute(
                            "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                            rusqlite::params![key, json, now],
                        ),
                        None => tx.execute("DELETE FROM settings WHERE key = ?1", [key]),
                    }
                    .map_err(|e| db.fail(e))?;
                }
                let count: i64 = tx
                    .query_row("SELECT count(*) FROM settings", [], |r| r.get(0))
                    .map_err(|e| db.fail(e))?;
                if count as usize > MAX_SETTINGS {
                    return Err(ApiError::new(
                        Code::InvalidRequest,
                        format!("a tenant has at most {MAX_SETTINGS} settings"),
                    ));
                }
                Ok(())
            })?;
            read_settings(db).map_err(ApiError::from)
        })
        .await?;
    Ok(web::Json(Settings { settings }))
}
