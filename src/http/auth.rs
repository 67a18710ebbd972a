//! Sign-in. The browser's login page is wired to `POST /api/v1/auth/login`; accounts, sessions and
//! directory login arrive with the identity feature, until then the endpoint says so plainly.

use actix_web::web;
use serde::Deserialize;

use crate::error::{ApiError, Code};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/auth/login").route(web::post().to(login)));
}

/// Credentials for a local or directory account.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Signs in. Not available in this version: answers `501 not_implemented`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 501, description = "sign-in is not available yet", body = crate::http::openapi::ErrorResponse)))]
pub async fn login(body: web::Json<LoginRequest>) -> Result<actix_web::HttpResponse, ApiError> {
    // The body is parsed so that malformed requests are reported the same way they will be later;
    // the credentials themselves are never logged.
    let _ = (&body.username, &body.password);
    Err(ApiError::new(
        Code::NotImplemented,
        "sign-in is not available in this version of Enclave yet: accounts arrive with the identity feature",
    ))
}
