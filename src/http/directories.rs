//! Directory (LDAP / Active Directory) administration: settings, "test connection", "test login",
//! "sync now" and sync history. System administrators only; changes need the `ldap` licence feature.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::db::run_blocking;
use crate::directory::client::{self, Trace};
use crate::directory::sync::SyncRun;
use crate::directory::{self, Directory, DirectoryError, DirectoryInput};
use crate::error::ApiResult;
use crate::identity::principal::{ClientInfo, SystemAdmin};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/directories")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        super::resource("/api/v1/directories/{id}")
            .route(web::get().to(show))
            .route(web::put().to(replace))
            .route(web::delete().to(remove)),
    )
    .service(
        super::resource("/api/v1/directories/{id}/test-connection")
            .route(web::post().to(test_connection)),
    )
    .service(
        super::resource("/api/v1/directories/{id}/test-login").route(web::post().to(test_login)),
    )
    .service(
        super::resource("/api/v1/directories/{id}/sync")
            .route(web::post().to(sync_now))
            .route(web::get().to(sync_history)),
    );
}

/// Every directory, in the order sign-in tries them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryList {
    pub directories: Vec<Directory>,
}

fn licensed(state: &AppState, writing: bool) -> Result<(), DirectoryError> {
    crate::license::enforce::require_feature(
        &state.license.plan(),
        crate::license::Feature::Ldap,
        writing,
    )
    .map_err(DirectoryError::from)
}

async fn load(state: &AppState, id: String) -> ApiResult<Directory> {
    let system = state.system.clone();
    run_blocking(move || directory::find(&system, &id)).await
}

/// Lists the directories (system administrators).
#[utoipa::path(get, path = "/api/v1/directories", tag = "directories", responses(
    (status = 200, description = "directories by priority", body = DirectoryList)))]
pub async fn list(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<DirectoryList>> {
    let system = state.system.clone();
    let directories = run_blocking(move || system.db.read(directory::list)).await?;
    Ok(web::Json(DirectoryList { directories }))
}

/// Adds a directory.
#[utoipa::path(post, path = "/api/v1/directories", tag = "directories", request_body = DirectoryInput, responses(
    (status = 201, description = "created", body = Directory),
    (status = 400, description = "settings that cannot work", body = crate::http::openapi::ErrorResponse),
    (status = 403, description = "the licence does not include ldap", body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    body: web::Json<DirectoryInput>,
) -> ApiResult<HttpResponse> {
    licensed(&state, true)?;
    let actor = Actor::person(&admin.user().username, &client, true);
    let (system, data_dir) = (state.system.clone(), state.config.storage.data_dir.clone());
    let input = body.into_inner();
    let saved =
        run_blocking(move || directory::save(&system, &data_dir, None, &input, &actor)).await?;
    directory::sync::reschedule(&state, &saved).await;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/directories/{}", saved.id)))
        .json(saved))
}

/// One directory.
#[utoipa::path(get, path = "/api/v1/directories/{id}", tag = "directories", responses(
    (status = 200, description = "the directory", body = Directory),
    (status = 404, description = "no such directory", body = crate::http::openapi::ErrorResponse)))]
pub async fn show(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<Directory>> {
    Ok(web::Json(load(&state, id.into_inner()).await?))
}

/// Replaces a directory's settings (omit `bind_password` to keep the stored one).
#[utoipa::path(put, path = "/api/v1/directories/{id}", tag = "directories", request_body = DirectoryInput, responses(
    (status = 200, description = "saved", body = Directory),
    (status = 404, description = "no such directory", body = crate::http::openapi::ErrorResponse)))]
pub async fn replace(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    id: web::Path<String>,
    body: web::Json<DirectoryInput>,
) -> ApiResult<web::Json<Directory>> {
    licensed(&state, true)?;
    let id = load(&state, id.into_inner()).await?.id;
    let actor = Actor::person(&admin.user().username, &client, true);
    let (system, data_dir) = (state.system.clone(), state.config.storage.data_dir.clone());
    let input = body.into_inner();
    let saved =
        run_blocking(move || directory::save(&system, &data_dir, Some(&id), &input, &actor))
            .await?;
    directory::sync::reschedule(&state, &saved).await;
    Ok(web::Json(saved))
}

/// Removes a directory; its accounts are deactivated (sessions ended, API keys revoked).
#[utoipa::path(delete, path = "/api/v1/directories/{id}", tag = "directories", responses(
    (status = 204, description = "removed"),
    (status = 404, description = "no such directory", body = crate::http::openapi::ErrorResponse)))]
pub async fn remove(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let actor = Actor::person(&admin.user().username, &client, true);
    let system = state.system.clone();
    let id = id.into_inner();
    let removed = id.clone();
    run_blocking(move || directory::delete(&system, &id, &actor)).await?;
    directory::sync::unschedule(&state, &removed).await;
    Ok(HttpResponse::NoContent().finish())
}

/// The outcome of a test: the steps taken (filters, DNs, servers; never a password) and the result.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestResult {
    pub ok: bool,
    /// The error code and message when it failed.
    pub error: Option<String>,
    pub steps: Vec<String>,
    /// `skip_tls_verify` is on: certificates are not checked.
    pub tls_verification_disabled: bool,
    /// Test login: the user found, with groups.
    pub user: Option<client::DirectoryUser>,
    /// Test login: the roles the mappings give, per tenant.
    pub roles: Vec<RoleGrant>,
}

/// A role in a tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleGrant {
    pub tenant: String,
    pub role: String,
}

fn result(
    directory: &Directory,
    trace: Trace,
    outcome: Result<Option<client::DirectoryUser>, DirectoryError>,
) -> TestResult {
    let (ok, error, user) = match outcome {
        Ok(user) => (true, None, user),
        Err(e) => (
            false,
            Some(format!("{}: {e}", crate::error::ErrorCode::code(&e).name())),
            None,
        ),
    };
    let roles = user
        .as_ref()
        .map(|u| {
            directory::settings::roles_for(&directory.settings.mappings, &u.groups)
                .into_iter()
                .map(|(tenant, role)| RoleGrant {
                    tenant,
                    role: role.as_str().into(),
                })
                .collect()
        })
        .unwrap_or_default();
    TestResult {
        ok,
        error,
        steps: trace.steps,
        tls_verification_disabled: directory.settings.skip_tls_verify,
        user,
        roles,
    }
}

/// Connects and binds as the service account.
#[utoipa::path(post, path = "/api/v1/directories/{id}/test-connection", tag = "directories", responses(
    (status = 200, description = "the steps and the outcome", body = TestResult)))]
pub async fn test_connection(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<TestResult>> {
    let directory = load(&state, id.into_inner()).await?;
    let mut trace = Trace::default();
    let outcome = match directory.service_password(&state.config.storage.data_dir) {
        Ok(password) => {
            match client::service_connection(&directory.settings, &password, &mut trace).await {
                Ok(conn) => {
                    conn.close().await;
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    Ok(web::Json(result(&directory, trace, outcome)))
}

/// A login to try.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TestLogin {
    pub username: String,
    pub password: String,
}

/// Runs the whole sign-in sequence for a user without signing in or changing anything.
#[utoipa::path(post, path = "/api/v1/directories/{id}/test-login", tag = "directories", request_body = TestLogin, responses(
    (status = 200, description = "the steps, the user's groups and the roles they would get", body = TestResult)))]
pub async fn test_login(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<TestLogin>,
) -> ApiResult<web::Json<TestResult>> {
    let directory = load(&state, id.into_inner()).await?;
    let mut trace = Trace::default();
    let outcome = match directory.service_password(&state.config.storage.data_dir) {
        Ok(password) => client::authenticate(
            &directory.settings,
            &password,
            &body.username,
            &body.password,
            &mut trace,
        )
        .await
        .map(Some),
        Err(e) => Err(e),
    };
    Ok(web::Json(result(&directory, trace, outcome)))
}

/// Synchronises now.
#[utoipa::path(post, path = "/api/v1/directories/{id}/sync", tag = "directories", responses(
    (status = 200, description = "the recorded run (status ok, refused or failed)", body = SyncRun),
    (status = 409, description = "a run of this directory is already in progress", body = crate::http::openapi::ErrorResponse)))]
pub async fn sync_now(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<SyncRun>> {
    licensed(&state, false)?;
    let directory = load(&state, id.into_inner()).await?;
    Ok(web::Json(
        directory::sync::run(&state, &directory.id, "manual").await?,
    ))
}

/// Recent synchronisation runs.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SyncHistory {
    pub runs: Vec<SyncRun>,
}

/// The last 50 runs, newest first.
#[utoipa::path(get, path = "/api/v1/directories/{id}/sync", tag = "directories", responses(
    (status = 200, description = "runs", body = SyncHistory)))]
pub async fn sync_history(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<SyncHistory>> {
    let directory = load(&state, id.into_inner()).await?;
    let system = state.system.clone();
    let runs = run_blocking(move || {
        system
            .db
            .read(|c| directory::sync::history(c, &directory.id, 50))
    })
    .await?;
    Ok(web::Json(SyncHistory { runs }))
}
