//! Accounts, for system administrators: list and create.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::db::run_blocking;
use crate::error::ApiResult;
use crate::identity::principal::{ClientInfo, SystemAdmin};
use crate::identity::{self, NewUser, User};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/users")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    );
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
        )
    })
    .await?;
    tracing::info!(user = %user.username, by = %admin.user().username, "account created");
    Ok(HttpResponse::Created().json(user))
}
