//! Tenants: list, create, inspect, and tenant settings.
//!
//! Settings are a small JSON document per tenant (one JSON value per key) stored in the tenant's own
//! database; later features keep their tenant-level options here.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::db::system::TenantRecord;
use crate::db::{run_blocking, Database, DbError};
use crate::error::{ApiError, ApiResult, Code};
use crate::identity::principal::{ClientInfo, CurrentUser, SystemAdmin};
use crate::identity::{self, Action, IdentityError, Role};
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
    );
}

/// Routes inside `/api/v1/tenants/{tenant}` (mounted by `http::configure` behind `resolve_tenant`).
pub fn configure_tenant_scope(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("").route(web::get().to(show)))
        .service(super::resource("/members").route(web::get().to(list_members)))
        .service(
            super::resource("/members/{username}")
                .route(web::put().to(put_member))
                .route(web::delete().to(delete_member)),
        )
        .service(
            super::resource("/settings")
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
    /// Username of an account to make the tenant's first owner (optional).
    pub owner: Option<String>,
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

/// Lists the tenants the caller can see: all of them for a system administrator, else those it belongs to.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", responses(
    (status = 200, description = "tenants, ordered by id", body = TenantList),
    (status = 401, description = "not signed in", body = crate::http::openapi::ErrorResponse)))]
pub async fn list(
    caller: CurrentUser,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<TenantList>> {
    let system = state.system.clone();
    let user = caller.user().clone();
    let tenants = run_blocking(move || {
        let all = system.list_tenants()?;
        if user.is_system_admin {
            return Ok::<_, IdentityError>(all);
        }
        let mine: std::collections::HashSet<String> = system
            .db
            .read(|c| identity::memberships_of(c, &user.id))?
            .into_iter()
            .map(|m| m.tenant_id)
            .collect();
        Ok(all.into_iter().filter(|t| mine.contains(&t.id)).collect())
    })
    .await?;
    Ok(web::Json(TenantList { tenants }))
}

/// Creates a tenant with its own database (system administrators).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant, responses(
    (status = 201, description = "the tenant was created; `Location` names it", body = TenantRecord),
    (status = 400, description = "invalid id or name", body = crate::http::openapi::ErrorResponse),
    (status = 403, description = "not a system administrator", body = crate::http::openapi::ErrorResponse),
    (status = 404, description = "the owner account does not exist", body = crate::http::openapi::ErrorResponse),
    (status = 409, description = "a tenant with this id exists", body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    admin: SystemAdmin,
    client: ClientInfo,
    state: web::Data<AppState>,
    body: web::Json<CreateTenant>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let id = match body.id.as_deref() {
        Some(id) => TenantId::parse(id)?,
        None => TenantId::from_name(&body.name)?,
    };
    let registry = state.tenants.clone();
    let system = state.system.clone();
    let actor = crate::audit::Actor::person(&admin.user().username, &client, true);
    let plan = state.license.plan();
    let record = run_blocking(move || {
        let owner = match body.owner.as_deref() {
            Some(name) => {
                let name = identity::validate_username(name)?;
                let found = system
                    .db
                    .read(|c| identity::find_user_for_login(c, &name))?;
                Some(found.ok_or(IdentityError::UserNotFound(name))?.0)
            }
            None => None,
        };
        let record = registry.create(&id, &body.name, &actor, &plan)?;
        if let Some(owner) = owner {
            system.db.write(|tx| {
                identity::set_membership(tx, &record.id, &owner.id, Role::Owner, &plan)?;
                audit_membership(tx, &actor, &record.id, &owner.username, Some(Role::Owner))
                    .map_err(IdentityError::from)
            })?;
        }
        Ok::<_, ApiError>(record)
    })
    .await?;
    tracing::info!(tenant = %record.id, "tenant created");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/tenants/{}", record.id)))
        .json(record))
}

/// One tenant, with its database's schema version and size.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, description = "the tenant", body = TenantDetail), (status = 404, description = "no such tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn show(tenant: TenantCtx) -> ApiResult<web::Json<TenantDetail>> {
    let schema_version = tenant.schema_version();
    let database_bytes = tenant.handle().database_bytes();
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
    // The usage gate's own settings have their own routes; the webhook URL may carry a token, so
    // neither is shown to every member here.
    Ok(rows
        .into_iter()
        .filter(|(k, _)| {
            k != crate::usage::RATE_LIMIT_SETTING && k != crate::usage::webhook::WEBHOOK_SETTING
        })
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
pub async fn get_settings(tenant: TenantCtx) -> ApiResult<web::Json<Settings>> {
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
        (status = 403, description = "the caller's role is below admin", body = crate::http::openapi::ErrorResponse),
        (status = 409, description = "tenant suspended", body = crate::http::openapi::ErrorResponse)))]
pub async fn patch_settings(
    tenant: TenantCtx,
    client: ClientInfo,
    body: web::Json<BTreeMap<String, serde_json::Value>>,
) -> ApiResult<web::Json<Settings>> {
    tenant.require(Action::Manage)?;
    let actor = Actor::of(&tenant.caller, &client);
    let tenant_id = tenant.id().to_string();
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
        if key == crate::usage::RATE_LIMIT_SETTING || key == crate::usage::webhook::WEBHOOK_SETTING
        {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("{key} has its own route: PUT /api/v1/tenants/{{tenant}}/rate-limit or /alert-webhook"),
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
                let keys: Vec<&str> = encoded.iter().map(|(k, _)| k.as_str()).collect();
                crate::audit::append(
                    tx,
                    &actor,
                    &crate::audit::Event {
                        action: "settings.update",
                        target: "settings",
                        tenant_id: &tenant_id,
                        success: true,
                        detail: serde_json::json!({ "keys": keys }),
                    },
                )
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

/// A member of a tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Member {
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

/// The members of a tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberList {
    pub members: Vec<Member>,
}

fn members_of(system: &crate::db::system::SystemDb, tenant: &str) -> Result<Vec<Member>, DbError> {
    system.db.read(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT u.username, u.display_name, m.role FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.tenant_id = ?1 ORDER BY u.username",
        )?;
        let rows = stmt.query_map([tenant], |r| {
            let role: String = r.get(2)?;
            Ok(Member {
                username: r.get(0)?,
                display_name: r.get(1)?,
                role: Role::parse(&role).unwrap_or(Role::Viewer),
            })
        })?;
        rows.collect()
    })
}

/// Lists the members of a tenant (any member may see them).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/members", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, description = "members by username", body = MemberList),
        (status = 404, description = "no such tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn list_members(
    state: web::Data<AppState>,
    tenant: TenantCtx,
) -> ApiResult<web::Json<MemberList>> {
    tenant.require(Action::Read)?;
    let system = state.system.clone();
    let id = tenant.id().to_string();
    let members = run_blocking(move || members_of(&system, &id)).await?;
    Ok(web::Json(MemberList { members }))
}

/// The role to give.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// `owner`, `admin`, `editor` or `viewer`.
    pub role: String,
}

fn check_role_change(
    tenant: &TenantCtx,
    new_role: Option<Role>,
    current: Option<Role>,
) -> Result<(), IdentityError> {
    tenant.require(Action::Manage)?;
    // Only owners (and system administrators) may create or remove owners.
    let touches_owner = new_role == Some(Role::Owner) || current == Some(Role::Owner);
    if touches_owner && !tenant.role.allows(Action::Own) && !tenant.caller.is_system_admin() {
        return Err(IdentityError::RoleTooLow);
    }
    Ok(())
}

/// Adds a member or changes a member's role (admins; owners for the owner role).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/members/{username}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id"), ("username" = String, Path, description = "account")),
    request_body = RoleChange,
    responses((status = 200, description = "the members after the change", body = MemberList),
        (status = 403, description = "role too low", body = crate::http::openapi::ErrorResponse),
        (status = 404, description = "no such tenant or account", body = crate::http::openapi::ErrorResponse)))]
pub async fn put_member(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    body: web::Json<RoleChange>,
) -> ApiResult<web::Json<MemberList>> {
    let (_, username) = path.into_inner();
    let role =
        Role::parse(&body.role).ok_or_else(|| IdentityError::InvalidRole(body.role.clone()))?;
    let username = identity::validate_username(&username)?;
    let system = state.system.clone();
    let tenant_id = tenant.id().to_string();
    let lookup = (system.clone(), tenant_id.clone(), username.clone());
    let (user, current) = run_blocking(move || {
        let (system, tenant_id, username) = lookup;
        let (user, _) = system
            .db
            .read(|c| identity::find_user_for_login(c, &username))?
            .ok_or(IdentityError::UserNotFound(username))?;
        let current = system
            .db
            .read(|c| identity::role_in(c, &user.id, &tenant_id))?;
        Ok::<_, IdentityError>((user, current))
    })
    .await?;
    check_role_change(&tenant, Some(role), current)?;
    tenant.ensure_writable()?;
    let actor = Actor::of(&tenant.caller, &client);
    let plan = state.license.plan();
    let members = run_blocking(move || {
        system
            .db
            .write(|tx| {
                identity::set_membership(tx, &tenant_id, &user.id, role, &plan)?;
                audit_membership(tx, &actor, &tenant_id, &user.username, Some(role))
                    .map_err(IdentityError::from)
            })
            .map_err(ApiError::from)?;
        Ok::<_, ApiError>(members_of(&system, &tenant_id)?)
    })
    .await?;
    Ok(web::Json(MemberList { members }))
}

/// Removes a member (admins; owners to remove an owner).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/members/{username}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id"), ("username" = String, Path, description = "account")),
    responses((status = 200, description = "the members after the change", body = MemberList),
        (status = 403, description = "role too low", body = crate::http::openapi::ErrorResponse),
        (status = 404, description = "no such tenant or member", body = crate::http::openapi::ErrorResponse)))]
pub async fn delete_member(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<MemberList>> {
    let (_, username) = path.into_inner();
    let username = identity::validate_username(&username)?;
    let system = state.system.clone();
    let tenant_id = tenant.id().to_string();
    let lookup = (system.clone(), tenant_id.clone(), username.clone());
    let (user_id, current) = run_blocking(move || {
        let (system, tenant_id, username) = lookup;
        let found = system
            .db
            .read(|c| identity::find_user_for_login(c, &username))?;
        let Some((user, _)) = found else {
            return Err(IdentityError::UserNotFound(username));
        };
        let current = system
            .db
            .read(|c| identity::role_in(c, &user.id, &tenant_id))?;
        Ok((user.id, current))
    })
    .await?;
    if current.is_none() {
        return Err(IdentityError::UserNotFound(username).into());
    }
    check_role_change(&tenant, None, current)?;
    tenant.ensure_writable()?;
    let actor = Actor::of(&tenant.caller, &client);
    let members = run_blocking(move || {
        system.db.write(|tx| {
            tx.execute(
                "DELETE FROM memberships WHERE tenant_id = ?1 AND user_id = ?2",
                [&tenant_id, &user_id],
            )?;
            audit_membership(tx, &actor, &tenant_id, &username, None).map_err(DbError::from)
        })?;
        members_of(&system, &tenant_id)
    })
    .await?;
    Ok(web::Json(MemberList { members }))
}

/// Records a membership change in the system audit log (memberships live in `system.db`).
fn audit_membership(
    conn: &rusqlite::Connection,
    actor: &Actor,
    tenant_id: &str,
    username: &str,
    role: Option<Role>,
) -> rusqlite::Result<i64> {
    crate::audit::append(
        conn,
        actor,
        &crate::audit::Event {
            action: if role.is_some() {
                "member.set"
            } else {
                "member.remove"
            },
            target: username,
            tenant_id,
            success: true,
            detail: serde_json::json!({ "role": role.map(Role::as_str) }),
        },
    )
}
