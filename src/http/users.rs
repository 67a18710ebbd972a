//! Accounts, for system administrators: list and create.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::db::run_blocking;
use crate::error::ApiResult;
use crate::identity::principal::{ClientInfo, SystemAdmin};
use crate::identity::{self, NewUser, User, UserUpdate};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/users")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(super::resource("/api/v1/users/{username}").route(web::patch().to(update)));
}

/// Every account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

/// Lists every account (system administrators).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses(
    (status = 200, description = "accounts by username", body = UserList),
    (status = 403, description = "not a system administrator", body = crate::http::openapi::ErrorResponse)))]
pub async fn list(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<UserList>> {
    let system = state.system.clone();
    let users = run_blocking(move || system.db.read(identity::list_users)).await?;
    Ok(web::Json(UserList { users }))
}

/// A new local account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    /// An initial password; the person must change it at first sign-in unless `must_change_password` is false.
    pub password: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub is_system_admin: bool,
    pub must_change_password: Option<bool>,
}

/// Creates a local account (system administrators).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, responses(
    (status = 201, description = "created", body = User),
    (status = 400, description = "invalid username or weak password", body = crate::http::openapi::ErrorResponse),
    (status = 409, description = "the username is taken", body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    body: web::Json<CreateUser>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let actor = Actor::person(&admin.user().username, &client, true);
    let _permit = state.password_hashes.clone().acquire_owned().await;
    let system = state.system.clone();
    let plan = state.license.plan();
    let user = run_blocking(move || {
        identity::create_user(
            &system,
            &NewUser {
                username: &body.username,
                password: &body.password,
                display_name: body.display_name.as_deref(),
                email: body.email.as_deref(),
                is_system_admin: body.is_system_admin,
                must_change_password: body.must_change_password.unwrap_or(true),
            },
            &actor,
            &plan,
        )
    })
    .await?;
    tracing::info!(user = %user.username, by = %admin.user().username, "account created");
    Ok(HttpResponse::Created().json(user))
}

/// Changes to an account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// `active`, `suspended` or `deactivated`; anything but active ends the account's sessions at once.
    pub state: Option<String>,
    pub is_system_admin: Option<bool>,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// Changes an account: state, system administrator flag, name, e-mail (system administrators).
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path, description = "account")), request_body = UpdateUser,
    responses((status = 200, description = "the account after the change", body = User),
        (status = 400, description = "invalid state, or a change that would lock yourself out", body = crate::http::openapi::ErrorResponse),
        (status = 404, description = "no such account", body = crate::http::openapi::ErrorResponse)))]
pub async fn update(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    path: web::Path<String>,
    body: web::Json<UpdateUser>,
) -> ApiResult<web::Json<User>> {
    let body = body.into_inner();
    let change = UserUpdate {
        state: body.state,
        is_system_admin: body.is_system_admin,
        display_name: body.display_name,
        email: body.email,
    };
    let actor = Actor::person(&admin.user().username, &client, true);
    let acting = admin.user().id.clone();
    let system = state.system.clone();
    let username = path.into_inner();
    let plan = state.license.plan();
    let user = run_blocking(move || {
        identity::update_user(&system, &username, &change, &acting, &actor, &plan)
    })
    .await?;
    Ok(web::Json(user))
}
