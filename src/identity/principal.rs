//! The extractors that authenticate a request; every handler states what it needs by its arguments:
//!
//! - [`Authenticated`]: a valid session, even one that must still change its password (used by the
//!   session, password-change and sign-out endpoints only);
//! - [`CurrentUser`]: a valid session whose password is settled — what almost every route takes;
//! - [`SystemAdmin`]: a `CurrentUser` who is a system administrator;
//! - [`Caller`]: a `CurrentUser` or an API key (`Authorization: Bearer ek_live_…` or `X-API-Key`), for
//!   tenant-scoped routes (through `TenantCtx`). Routes that take the user extractors refuse API keys.
//!
//! For requests other than GET/HEAD/OPTIONS the session's CSRF token must arrive in `X-CSRF-Token`.
//! [`ClientInfo`] is the caller's address (the peer, or with `auth.trust_proxy` the last
//! `X-Forwarded-For` hop) and user agent, and whether it came over HTTPS.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpRequest};

use super::api_key::{self, KeyPrincipal};
use super::session::{self, ActiveSession, SessionPolicy};
use super::{IdentityError, User};
use crate::db::run_blocking;
use crate::error::ApiError;
use crate::state::AppState;

/// Where a request comes from.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
    /// The request reached the proxy over HTTPS (only trusted with `auth.trust_proxy`).
    pub https: bool,
}

impl ClientInfo {
    pub fn of(req: &HttpRequest, trust_proxy: bool) -> ClientInfo {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let forwarded = trust_proxy
            .then(|| header("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_string());
        let ip = forwarded
            .or_else(|| req.peer_addr().map(|a| a.ip().to_string()))
            .unwrap_or_else(|| "unknown".into());
        ClientInfo {
            ip,
            user_agent: header("user-agent")
                .unwrap_or("")
                .chars()
                .take(300)
                .collect(),
            https: trust_proxy
                && header("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")),
        }
    }
}

impl FromRequest for ClientInfo {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let trust = req
            .app_data::<web::Data<AppState>>()
            .is_some_and(|s| s.config.auth.trust_proxy);
        std::future::ready(Ok(ClientInfo::of(req, trust)))
    }
}

/// The session token a request carries, if any.
pub fn session_token(req: &HttpRequest) -> Option<String> {
    req.cookie(session::SECURE_COOKIE)
        .or_else(|| req.cookie(session::COOKIE))
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A valid session (see the module doc).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub session: ActiveSession,
}

impl Authenticated {
    pub fn user(&self) -> &User {
        &self.session.user
    }
}

/// The API key a request presents, if any.
pub fn presented_key(req: &HttpRequest) -> Option<String> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| header("x-api-key"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

async fn authenticate(req: HttpRequest) -> Result<Authenticated, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let Some(token) = session_token(&req) else {
        return Err(if presented_key(&req).is_some() {
            IdentityError::KeyNotAllowed
        } else {
            IdentityError::Unauthenticated
        }
        .into());
    };
    let policy: SessionPolicy = state.session_policy();
    let system = state.system.clone();
    let session = run_blocking(move || session::lookup(&system, &token, policy)).await?;
    if !is_safe(req.method()) {
        let sent = req
            .headers()
            .get(session::CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !session::constant_time_eq(sent, session.csrf_token.as_bytes()) {
            return Err(IdentityError::CsrfFailed.into());
        }
    }
    Ok(Authenticated { session })
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// A signed-in user whose password is settled.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Authenticated);

impl CurrentUser {
    pub fn user(&self) -> &User {
        self.0.user()
    }
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = authenticate(req).await?;
            if auth.user().must_change_password {
                return Err(IdentityError::PasswordChangeRequired.into());
            }
            Ok(CurrentUser(auth))
        })
    }
}

/// A signed-in system administrator.
#[derive(Debug, Clone)]
pub struct SystemAdmin(pub CurrentUser);

impl SystemAdmin {
    pub fn user(&self) -> &User {
        self.0.user()
    }
}

impl FromRequest for SystemAdmin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let current = CurrentUser::from_request(req, payload);
        Box::pin(async move {
            let current = current.await?;
            if !current.user().is_system_admin {
                return Err(IdentityError::NotSystemAdmin.into());
            }
            Ok(SystemAdmin(current))
        })
    }
}

/// A person with a session, or an API key: whoever may act on a tenant.
#[derive(Debug, Clone)]
pub enum Caller {
    User(CurrentUser),
    /// Shared with the key cache: a request does not copy the key's record.
    Key(Arc<KeyPrincipal>),
}

impl Caller {
    pub fn is_system_admin(&self) -> bool {
        matches!(self, Caller::User(u) if u.user().is_system_admin)
    }

    /// Who acted, for logs and records: a username, or `key:<id>`.
    pub fn label(&self) -> String {
        match self {
            Caller::User(u) => u.user().username.clone(),
            Caller::Key(k) => format!("key:{}", k.id),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        match presented_key(req) {
            // A request that presents a key is judged by the key alone (no cookie, so no CSRF).
            Some(secret) => {
                let state = req.app_data::<web::Data<AppState>>().cloned();
                Box::pin(async move {
                    let state =
                        state.ok_or_else(|| ApiError::internal("application state missing"))?;
                    if let Some(key) = state.key_cache.get(&secret) {
                        return Ok(Caller::Key(key));
                    }
                    let system = state.system.clone();
                    let cache = state.key_cache.clone();
                    let key = run_blocking(move || {
                        let key = Arc::new(api_key::authenticate(&system, &secret)?);
                        cache.put(&secret, &key);
                        Ok::<_, IdentityError>(key)
                    })
                    .await?;
                    Ok(Caller::Key(key))
                })
            }
            None => {
                let user = CurrentUser::from_request(req, payload);
                Box::pin(async move { Ok(Caller::User(user.await?)) })
            }
        }
    }
}
