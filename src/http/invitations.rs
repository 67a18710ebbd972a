//! Invitations over HTTP: tenant admins create, list and revoke them; the invited person accepts with the
//! link's token while signed in.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::db::run_blocking;
use crate::error::ApiResult;
use crate::identity::invitation::{self, Invitation, IssuedInvitation};
use crate::identity::principal::{Caller, ClientInfo, CurrentUser};
use crate::identity::{Action, IdentityError, Role};
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/invitations/accept").route(web::post().to(accept)));
}

/// Routes inside `/api/v1/tenants/{tenant}`.
pub fn configure_tenant_scope(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/invitations")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(super::resource("/invitations/{invitation}").route(web::delete().to(revoke)));
}

/// A new invitation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    /// Username or e-mail of the person to invite.
    pub invitee: String,
    /// `owner`, `admin`, `editor` or `viewer`.
    pub role: String,
    /// Hours until the link expires (default 72, at most 720).
    pub expires_in_hours: Option<u32>,
}

/// The invitations of a tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationList {
    pub invitations: Vec<Invitation>,
}

/// The token from an invitation link (`/invite/<token>`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    pub token: String,
}

/// Invites a person (tenant admins; owners to invite an owner). The link is shown once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/invitations", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id")), request_body = CreateInvitation,
    responses((status = 201, description = "created; `link` is shown only now", body = IssuedInvitation),
        (status = 400, description = "bad invitee, role or expiry", body = crate::http::openapi::ErrorResponse),
        (status = 403, description = "role too low", body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    body: web::Json<CreateInvitation>,
) -> ApiResult<HttpResponse> {
    tenant.require(Action::Manage)?;
    tenant.ensure_writable()?;
    let body = body.into_inner();
    let role =
        Role::parse(&body.role).ok_or_else(|| IdentityError::InvalidRole(body.role.clone()))?;
    if role == Role::Owner && !tenant.role.allows(Action::Own) && !tenant.caller.is_system_admin() {
        return Err(IdentityError::RoleTooLow.into());
    }
    let actor = Actor::of(&tenant.caller, &client);
    let by = match &tenant.caller {
        Caller::User(u) => u.user().username.clone(),
        Caller::Key(k) => format!("key:{}", k.id),
    };
    let system = state.system.clone();
    let id = tenant.id().to_string();
    let hours = body.expires_in_hours.unwrap_or(72);
    let issued = run_blocking(move || {
        invitation::create(&system, &id, &body.invitee, role, hours, &by, &actor)
    })
    .await?;
    Ok(HttpResponse::Created().json(issued))
}

/// Lists a tenant's invitations (tenant admins).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/invitations", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, description = "newest first", body = InvitationList)))]
pub async fn list(
    state: web::Data<AppState>,
    tenant: TenantCtx,
) -> ApiResult<web::Json<InvitationList>> {
    tenant.require(Action::Manage)?;
    let system = state.system.clone();
    let id = tenant.id().to_string();
    let invitations = run_blocking(move || invitation::list(&system, &id)).await?;
    Ok(web::Json(InvitationList { invitations }))
}

/// Revokes an open invitation (tenant admins).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/invitations/{invitation}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id"), ("invitation" = String, Path, description = "invitation id")),
    responses((status = 200, description = "revoked", body = Invitation),
        (status = 404, description = "no such invitation in this tenant", body = crate::http::openapi::ErrorResponse)))]
pub async fn revoke(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<Invitation>> {
    tenant.require(Action::Manage)?;
    let (_, invitation_id) = path.into_inner();
    let actor = Actor::of(&tenant.caller, &client);
    let system = state.system.clone();
    let id = tenant.id().to_string();
    let inv =
        run_blocking(move || invitation::revoke(&system, &id, &invitation_id, &actor)).await?;
    Ok(web::Json(inv))
}

/// Accepts an invitation as the signed-in person it names; they become a member with its role.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "tenants", request_body = Acceptance,
    responses((status = 200, description = "accepted; the caller is now a member", body = Invitation),
        (status = 403, description = "the invitation names another account", body = crate::http::openapi::ErrorResponse),
        (status = 404, description = "unknown, used or revoked", body = crate::http::openapi::ErrorResponse),
        (status = 410, description = "expired", body = crate::http::openapi::ErrorResponse)))]
pub async fn accept(
    caller: CurrentUser,
    client: ClientInfo,
    state: web::Data<AppState>,
    body: web::Json<Acceptance>,
) -> ApiResult<web::Json<Invitation>> {
    let user = caller.user().clone();
    let actor = Actor::person(&user.username, &client, true);
    let system = state.system.clone();
    let token = body.into_inner().token;
    let plan = state.license.plan();
    let inv =
        run_blocking(move || invitation::accept(&system, &token, &user, &actor, &plan)).await?;
    Ok(web::Json(inv))
}
