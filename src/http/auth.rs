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
use crate::identity::principal::CurrentUser;
use crate::identity::principal::{session_token, Authenticated, ClientInfo};
use crate::identity::{self, password, session, totp, IdentityError, Membership, User};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/auth/login").route(web::post().to(login)))
        .service(super::resource("/api/v1/auth/logout").route(web::post().to(logout)))
        .service(super::resource("/api/v1/auth/logout-all").route(web::post().to(logout_all)))
        .service(super::resource("/api/v1/auth/session").route(web::get().to(current_session)))
        .service(super::resource("/api/v1/auth/sessions").route(web::get().to(list_sessions)))
        .service(
            super::resource("/api/v1/auth/sessions/{session_id}")
                .route(web::delete().to(revoke_session)),
        )
        .service(super::resource("/api/v1/auth/password").route(web::post().to(change_password)))
        .service(super::resource("/api/v1/auth/totp/setup").route(web::post().to(totp_setup)))
        .service(super::resource("/api/v1/auth/totp/enable").route(web::post().to(totp_enable)))
        .service(super::resource("/api/v1/auth/totp/disable").route(web::post().to(totp_disable)));
}

/// Credentials for a local account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The 6-digit code from the authenticator app (or a recovery code), for accounts with two-factor
    /// authentication. Without it such an account gets `401 totp_required`.
    pub totp_code: Option<String>,
}

/// The signed-in user, the CSRF token for changes, and the tenants the user belongs to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub user: User,
    /// Send as `X-CSRF-Token` with every POST/PUT/PATCH/DELETE made with the session cookie.
    pub csrf_token: String,
    pub memberships: Vec<Membership>,
    /// Whether the account signs in with a second factor.
    pub totp_enabled: bool,
}

fn session_info(
    state: &AppState,
    user: User,
    csrf_token: String,
) -> impl FnOnce() -> Result<SessionInfo, IdentityError> {
    let system = state.system.clone();
    move || {
        let (memberships, totp_enabled) = system.db.read(|c| {
            Ok((
                identity::memberships_of(c, &user.id)?,
                totp::enabled(c, &user.id)?,
            ))
        })?;
        Ok(SessionInfo {
            user,
            csrf_token,
            memberships,
            totp_enabled,
        })
    }
}

/// What the local account table says about a sign-in.
enum LocalSignIn {
    Verified(identity::User),
    /// A local account whose password is wrong or which is not active.
    Refused,
    /// No local password for this name: a directory account or nobody.
    NotLocal,
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
    let LoginRequest {
        username,
        password,
        totp_code,
    } = body.into_inner();
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
    let login_password = password.clone();
    // Local accounts first (the break-glass administrator signs in when every directory is down);
    // a name without a local password goes to the directories.
    let local = run_blocking(move || {
        let found = system
            .db
            .read(|c| identity::find_user_for_login(c, &name))?;
        Ok::<_, IdentityError>(match found {
            Some((user, Some(hash))) => {
                if password::verify(&login_password, &hash) && user.state == "active" {
                    LocalSignIn::Verified(user)
                } else {
                    LocalSignIn::Refused
                }
            }
            _ => {
                password::verify_dummy(&login_password);
                LocalSignIn::NotLocal
            }
        })
    })
    .await?;
    drop(_permit);
    let verified = match local {
        LocalSignIn::Verified(user) => Some(user),
        LocalSignIn::Refused => None,
        LocalSignIn::NotLocal => {
            match crate::directory::sign_in(&state, &username, &password).await {
                Ok(found) => found,
                Err(e) if e.code == crate::error::Code::InvalidCredentials => None,
                Err(e) => {
                    state.login_throttle.failure(&username, &client.ip);
                    record_system(
                        &state,
                        Actor::person(&username, &client, false),
                        "auth.login_directory",
                        false,
                    )
                    .await?;
                    tracing::info!(username = %username.chars().take(64).collect::<String>(), ip = %client.ip, code = e.code.name(), "directory sign-in failed");
                    return Err(e);
                }
            }
        }
    };
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
    // Second factor, for accounts that have it.
    let system = state.system.clone();
    let (user_id, code) = (user.id.clone(), totp_code.clone());
    let second = run_blocking(move || {
        system.db.write(|tx| {
            if !totp::enabled(tx, &user_id)? {
                return Ok(());
            }
            match code.as_deref().filter(|c| !c.trim().is_empty()) {
                None => Err(IdentityError::TotpRequired),
                Some(code) => totp::check(
                    tx,
                    &user_id,
                    code,
                    crate::time_util::now_utc().unix_timestamp(),
                ),
            }
        })
    })
    .await;
    if let Err(e) = second {
        if e.code == crate::error::Code::InvalidTotp {
            state.login_throttle.failure(&username, &client.ip);
            record_system(
                &state,
                Actor::person(&username, &client, true),
                "auth.login_totp",
                false,
            )
            .await?;
        }
        return Err(e);
    }
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

/// The signed-in user's live sessions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionList {
    pub sessions: Vec<session::SessionSummary>,
}

/// Lists the current user's live browser sessions (where and when they signed in).
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", responses(
    (status = 200, body = SessionList), (status = 401, body = crate::http::openapi::ErrorResponse)))]
pub async fn list_sessions(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<SessionList>> {
    let system = state.system.clone();
    let user_id = auth.user().id.clone();
    let current = auth.session.id_hash.clone();
    let policy = state.session_policy();
    let sessions =
        run_blocking(move || session::list_for_user(&system, &user_id, &current, policy)).await?;
    Ok(web::Json(SessionList { sessions }))
}

/// Ends one of the current user's sessions (another browser, a lost laptop). Ending the current one
/// signs this browser out.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{session_id}", tag = "auth",
    params(("session_id" = String, Path, description = "`id` from the session list")),
    responses((status = 204, description = "ended"),
    (status = 404, description = "no such session of yours", body = crate::http::openapi::ErrorResponse)))]
pub async fn revoke_session(
    auth: Authenticated,
    state: web::Data<AppState>,
    client: ClientInfo,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let public_id = path.into_inner();
    let system = state.system.clone();
    let user_id = auth.user().id.clone();
    let is_current = auth
        .session
        .id_hash
        .starts_with(&public_id.to_ascii_lowercase());
    let id = public_id.clone();
    let ended = run_blocking(move || session::revoke_own(&system, &user_id, &id)).await?;
    if !ended {
        return Err(IdentityError::SessionNotFound.into());
    }
    let system = state.system.clone();
    let actor = Actor::person(&auth.user().username, &client, true);
    run_blocking(move || {
        audit::record(
            &system.db,
            &actor,
            &Event {
                action: "auth.session_revoke",
                target: &actor.name,
                tenant_id: "",
                success: true,
                detail: serde_json::json!({ "session": public_id }),
            },
        )
    })
    .await?;
    let mut response = HttpResponse::NoContent();
    if is_current {
        response.cookie(session::removal_cookie(client.https));
    }
    Ok(response.finish())
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

/// A secret to add to an authenticator app.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// Base32 secret, to type in by hand.
    pub secret: String,
    /// `otpauth://` URI, for apps that take a link or a QR code.
    pub otpauth_uri: String,
}

/// A code from the authenticator app.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

/// Recovery codes, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    /// Each works once in place of a TOTP code. Store them somewhere safe.
    pub recovery_codes: Vec<String>,
}

/// The current password, to confirm a sensitive change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    pub password: String,
}

/// Starts two-factor setup: returns a new secret; nothing changes until it is confirmed.
#[utoipa::path(post, path = "/api/v1/auth/totp/setup", tag = "auth", responses(
    (status = 200, body = TotpSetup), (status = 400, description = "already enabled", body = crate::http::openapi::ErrorResponse)))]
pub async fn totp_setup(
    caller: CurrentUser,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<TotpSetup>> {
    let system = state.system.clone();
    let user = caller.user().clone();
    let (secret, otpauth_uri) = run_blocking(move || {
        system
            .db
            .write(|tx| totp::begin_setup(tx, &user.id, &user.username))
    })
    .await?;
    Ok(web::Json(TotpSetup {
        secret,
        otpauth_uri,
    }))
}

/// Confirms setup with a current code; two-factor sign-in is on from now. Returns the recovery codes once.
#[utoipa::path(post, path = "/api/v1/auth/totp/enable", tag = "auth", request_body = TotpCode, responses(
    (status = 200, body = RecoveryCodes),
    (status = 401, description = "wrong code", body = crate::http::openapi::ErrorResponse)))]
pub async fn totp_enable(
    caller: CurrentUser,
    client: ClientInfo,
    state: web::Data<AppState>,
    body: web::Json<TotpCode>,
) -> ApiResult<web::Json<RecoveryCodes>> {
    let system = state.system.clone();
    let user = caller.user().clone();
    let actor = Actor::person(&user.username, &client, true);
    let code = body.into_inner().code;
    let recovery_codes = run_blocking(move || {
        system.db.write(|tx| {
            let codes = totp::confirm_setup(
                tx,
                &user.id,
                &code,
                crate::time_util::now_utc().unix_timestamp(),
            )?;
            audit::append(
                tx,
                &actor,
                &Event {
                    action: "user.totp_enable",
                    target: &user.username,
                    tenant_id: "",
                    success: true,
                    detail: serde_json::json!({}),
                },
            )?;
            Ok::<_, IdentityError>(codes)
        })
    })
    .await?;
    Ok(web::Json(RecoveryCodes { recovery_codes }))
}

/// Turns two-factor sign-in off (the password confirms it).
#[utoipa::path(post, path = "/api/v1/auth/totp/disable", tag = "auth", request_body = PasswordConfirmation, responses(
    (status = 204, description = "off"),
    (status = 401, description = "wrong password", body = crate::http::openapi::ErrorResponse)))]
pub async fn totp_disable(
    caller: CurrentUser,
    client: ClientInfo,
    state: web::Data<AppState>,
    body: web::Json<PasswordConfirmation>,
) -> ApiResult<HttpResponse> {
    let _permit = state
        .password_hashes
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("password hashing closed"))?;
    let system = state.system.clone();
    let user = caller.user().clone();
    let actor = Actor::person(&user.username, &client, true);
    let password_given = body.into_inner().password;
    run_blocking(move || {
        let stored = system
            .db
            .read(|c| identity::find_user_for_login(c, &user.username))?;
        if !matches!(&stored, Some((_, Some(hash))) if password::verify(&password_given, hash)) {
            return Err(IdentityError::InvalidCredentials);
        }
        system.db.write(|tx| {
            totp::disable(tx, &user.id)?;
            audit::append(
                tx,
                &actor,
                &Event {
                    action: "user.totp_disable",
                    target: &user.username,
                    tenant_id: "",
                    success: true,
                    detail: serde_json::json!({}),
                },
            )?;
            Ok(())
        })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
