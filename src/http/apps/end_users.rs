//! End users of an app (admins): the list, a GDPR export of everything stored of one, and erasure.
//! The audit log records a hash of the end-user id, never the id (the log outlives an erasure).

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::audit_event;
use crate::apps::{store, AppError, EndUser};
use crate::audit::Actor;
use crate::error::ApiResult;
use crate::identity::principal::ClientInfo;
use crate::identity::Action;
use crate::tenancy::extract::TenantCtx;

#[derive(Serialize, utoipa::ToSchema)]
pub struct EndUserList {
    pub end_users: Vec<EndUser>,
}

/// The people and systems that used an app (admins).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/end-users", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    responses((status = 200, body = EndUserList)))]
pub async fn list_end_users(
    ctx: TenantCtx,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<EndUserList>> {
    ctx.require(Action::Manage)?;
    let (_, app_id) = path.into_inner();
    let end_users = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::get_app(&conn, &app_id)?;
            store::list_end_users(&conn, &app_id)
        })
        .await?;
    Ok(web::Json(EndUserList { end_users }))
}

/// Everything stored of one end user (GDPR access), as a JSON file.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/end-users/{user}/export", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("user" = String, Path, description = "end user id")),
    responses((status = 200, description = "the end user's conversations, messages and citations"),
        (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn export_end_user(
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    ctx.require(Action::Manage)?;
    let (_, app_id, user) = path.into_inner();
    let actor = Actor::of(&ctx.caller, &client);
    let tenant_id = ctx.id().to_string();
    let body = ctx
        .run(move |db| {
            let data = {
                let conn = db.connection()?;
                store::export_end_user(&conn, &app_id, &user)?
            };
            db.write(|tx| {
                crate::audit::append(
                    tx,
                    &actor,
                    &audit_event(
                        "app.end_user_export",
                        &app_id,
                        &tenant_id,
                        serde_json::json!({ "end_user_sha256": end_user_hash(&user) }),
                    ),
                )
                .map_err(AppError::from)
            })?;
            Ok::<_, AppError>(data)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"end-user-export.json\"",
        ))
        .json(body))
}

/// The hash the audit log records instead of an end-user id (the log outlives an erasure).
fn end_user_hash(id: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, id.as_bytes()))
}

/// Erases one end user of an app (GDPR): their conversations, messages, citations and feedback.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/apps/{app}/end-users/{user}", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("user" = String, Path, description = "end user id")),
    responses((status = 204), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn erase_end_user(
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    ctx.require(Action::Manage)?;
    ctx.ensure_writable()?;
    let (_, app_id, user) = path.into_inner();
    let actor = Actor::of(&ctx.caller, &client);
    let tenant_id = ctx.id().to_string();
    ctx.run(move |db| {
        db.write(|tx| {
            let erased = store::erase_end_user(tx, &app_id, &user)?;
            crate::audit::append(
                tx,
                &actor,
                &audit_event(
                    "app.end_user_erase",
                    &app_id,
                    &tenant_id,
                    serde_json::json!({ "end_user_sha256": end_user_hash(&user), "conversations": erased.conversations, "messages": erased.messages }),
                ),
            )?;
            Ok::<_, AppError>(())
        })?;
        // Deleted rows were overwritten in the database pages (secure_delete); the checkpoint moves
        // them out of the write-ahead log too.
        db.checkpoint()?;
        Ok::<_, AppError>(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
