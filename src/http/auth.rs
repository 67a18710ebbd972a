//! Sign-in, sign-out, the current session, and password changes.
//!
//! `POST /api/v1/auth/login` checks the throttle first, then the password (argon2, bounded concurrency;
//! an unknown or inactive user costs the same time and gets the same answer as a wrong password), then
//! issues a new session cookie, ending any session the browser presented. The answer carries the CSRF
//! token the browser must send with every change.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor, Event};
use crate::db::run_blocking;
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::{session_token, Authenticated, ClientInfo};
use crate::identity::{self, password, session, IdentityError, Membership, User};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/auth/login").route(web::post().to(login)))
        .service(super::resource("/api/v1/auth/logout").route(web::post().to(logout)))
        .service(super::resource("/api/v1/auth/logout-all").route(web::post().to(logout_all)))
        .service(super::resource("/api/v1/auth/session").route(web::get().to(current_session)))
        .service(super::resource("/api/v1/auth/password").route(web::post().to(change_password)));
}

/// Credentials for a local account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The signed-in user, the CSRF token for changes, and the tenants the user belongs to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub user: User,
    /// Send as `X-CSRF-Token` with every POST/PUT/PATCH/DELETE made with the session cookie.
    pub csrf_token: String,
    pub memberships: Vec<Membership>,
}

fn session_info(
    state: &AppState,
    user: User,
    csrf_token: String,
) -> impl FnOnce() -> Result<SessionInfo, IdentityError> {
    let system = state.system.clone();
    move || {
        let memberships = system.db.read(|c| identity::memberships_of(c, &user.id))?;
        Ok(SessionInfo {
            user,
            csrf_token,
            memberships,
        })
    }
}

/// Signs in with a username and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, description = "signed in; the `enclave_session` cookie is set", body = SessionInfo),
    (status = 401, description = "invalid username or password", body = crate::http::openapi::ErrorResponse),
    (status = 429, description = "too many failed attempts; see `Retry-After`", body = crate::http::openapi::ErrorResponse)))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: ClientInfo,
    body: web::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let LoginRequest { username, password } = body.into_inner();
    state
        .login_throttle
        .check(&username, &client.ip)
        .map_err(IdentityError::Throttled)?;
    let _permit = state
        .password_hashes
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("password hashing closed"))?;
    let system = state.system.clone();
    let name = username.clone();
    let verified = run_blocking(move || {
        let found = system
            .db
            .read(|c| identity::find_user_for_login(c, &name))?;
        Ok::<_, IdentityError>(match found {
            Some((user, Some(hash)))
                if password::verify(&password, &hash) && user.state == "active" =>
            {
                Some(user)
            }
            Some((_, Some(_))) => None,
            _ => {
                password::verify_dummy(&password);
                None
            }
        })
    })
    .await?;
    drop(_permit);
    let Some(user) = verified else {
        state.login_throttle.failure(&username, &client.ip);
        record_system(
            &state,
            Actor::person(&username, &client, false),
            "auth.login",
            false,
        )
        .await?;
        tracing::info!(username = %username.chars().take(64).collect::<String>(), ip = %client.ip, "sign-in failed");
        return Err(IdentityError::InvalidCredentials.into());
    };
    state.login_throttle.success(&username);
    let system = state.system.clone();
    let (user_id, replaces, policy) =
        (user.id.clone(), session_token(&req), state.session_policy());
    let (ip, agent) = (client.ip.clone(), client.user_agent.clone());
    let new = run_blocking(move || {
        session::create(&system, &user_id, replaces.as_deref(), &ip, &agent, policy)
    })
    .await?;
    tracing::info!(user = %user.username, ip = %client.ip, "signed in");
    record_system(
        &state,
        Actor::person(&user.username, &client, true),
        "auth.login",
        true,
    )
    .await?;
    let info = run_blocking(session_info(&state, user, new.csrf_token)).await?;
    Ok(HttpResponse::Ok()
        .cookie(session::cookie(new.token, client.https))
        .json(info))
}

/// Signs out of this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses(
    (status = 204, description = "signed out; the cookie is removed"),
    (status = 401, body = crate::http::openapi::ErrorResponse)))]
pub async fn logout(
    auth: Authenticated,
    state: web::Data<AppState>,
    client: ClientInfo,
) -> ApiResult<HttpResponse> {
    let system = state.system.clone();
    let id_hash = auth.session.id_hash.clone();
    run_blocking(move || session::revoke(&system, &id_hash)).await?;
    record_system(
        &state,
        Actor::person(&auth.user().username, &client, true),
        "auth.logout",
        true,
    )
    .await?;
    Ok(HttpResponse::NoContent()
        .cookie(session::removal_cookie(client.https))
        .finish())
}

/// How many sessions ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ended {
    pub sessions_ended: usize,
}

/// Signs out everywhere: ends every session of the current user, this one included.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", responses(
    (status = 200, body = Ended), (status = 401, body = crate::http::openapi::ErrorResponse)))]
pub async fn logout_all(
    auth: Authenticated,
    state: web::Data<AppState>,
    client: ClientInfo,
) -> ApiResult<HttpResponse> {
    let system = state.system.clone();
    let user_id = auth.user().id.clone();
    let sessions_ended = run_blocking(move || session::revoke_all(&system, &user_id)).await?;
    record_system(
        &state,
        Actor::person(&auth.user().username, &client, true),
        "auth.logout_all",
        true,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .cookie(session::removal_cookie(client.https))
        .json(Ended { sessions_ended }))
}

/// The current session: user, CSRF token, memberships.
#[utoipa::path(get, path = "/api/v1/auth/session", tag = "auth", responses(
    (status = 200, body = SessionInfo), (status = 401, description = "not signed in or session ended", body = crate::http::openapi::ErrorResponse)))]
pub async fn current_session(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<SessionInfo>> {
    let info = run_blocking(session_info(
        &state,
        auth.session.user.clone(),
        auth.session.csrf_token.clone(),
    ))
    .await?;
    Ok(web::Json(info))
}

/// A password change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the password. Every session of the user ends; this browser gets a new one.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange, responses(
    (status = 200, description = "changed; a new session cookie is set", body = SessionInfo),
    (status = 400, description = "the new password does not meet the policy", body = crate::http::openapi::ErrorResponse),
    (status = 401, description = "the current password is wrong", body = crate::http::openapi::ErrorResponse)))]
pub async fn change_password(
    auth: Authenticated,
    state: web::Data<AppState>,
    client: ClientInfo,
    body: web::Json<PasswordChange>,
) -> ApiResult<HttpResponse> {
    let PasswordChange {
        current_password,
        new_password,
    } = body.into_inner();
    let user = auth.user().clone();
    password::check_policy(&new_password, &user.username).map_err(IdentityError::from)?;
    if current_password == new_password {
        return Err(ApiError::new(
            crate::error::Code::WeakPassword,
            "the new password must differ from the current one",
        ));
    }
    let _permit = state
        .password_hashes
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("password hashing closed"))?;
    let system = state.system.clone();
    let (policy, ip, agent) = (
        state.session_policy(),
        client.ip.clone(),
        client.user_agent.clone(),
    );
    let data_dir = state.config.storage.data_dir.clone();
    let actor = Actor::person(&user.username, &client, true);
    let new = run_blocking(move || {
        let stored = system
            .db
            .read(|c| identity::find_user_for_login(c, &user.username))?;
        let ok =
            matches!(&stored, Some((_, Some(hash))) if password::verify(&current_password, hash));
        if !ok {
            return Err(IdentityError::InvalidCredentials);
        }
        identity::set_password(&system, &user.username, &new_password, false, &actor)?;
        // The one-time bootstrap password is useless now; remove its file.
        if user.is_system_admin {
            let _ = std::fs::remove_file(data_dir.join(identity::BOOTSTRAP_FILE));
        }
        let new = session::create(&system, &user.id, None, &ip, &agent, policy)?;
        let user = system
            .db
            .read(|c| identity::find_user_by_id(c, &user.id))?
            .ok_or(IdentityError::Unauthenticated)?;
        Ok((new, user))
    })
    .await?;
    let (new, user) = new;
    tracing::info!(user = %user.username, "password changed; other sessions ended");
    let info = run_blocking(session_info(&state, user, new.csrf_token)).await?;
    Ok(HttpResponse::Ok()
        .cookie(session::cookie(new.token, client.https))
        .json(info))
}

/// Records a sign-in event in the system audit log.
async fn record_system(
    state: &AppState,
    actor: Actor,
    action: &'static str,
    success: bool,
) -> ApiResult<()> {
    let system = state.system.clone();
    run_blocking(move || {
        let target = actor.name.clone();
        audit::record(
            &system.db,
            &actor,
            &Event {
                action,
                target: &target,
                tenant_id: "",
                success,
                detail: serde_json::json!({}),
            },
        )
    })
    .await
}
