//! The licence over HTTP: its state for every signed-in user (for the banner), the details, upload and
//! removal for system administrators, the activation request (text and QR code) and the signed usage
//! report for true-up.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::db::run_blocking;
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::{ClientInfo, CurrentUser, SystemAdmin};
use crate::license::manager::{Banner, CurrentUsage, PeriodMax, Snapshot};
use crate::state::AppState;
use crate::time_util::format_rfc3339;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/license")
            .route(web::get().to(show))
            .route(web::post().to(install))
            .route(web::delete().to(remove)),
    )
    .service(super::resource("/api/v1/license/status").route(web::get().to(status)))
    .service(
        super::resource("/api/v1/license/activation-request")
            .route(web::get().to(activation_request)),
    )
    .service(super::resource("/api/v1/license/usage-report").route(web::get().to(usage_report)));
}

/// What every signed-in user may know: the edition, the state and the banner to show.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LicenseStatus {
    /// `Community`, `Pro`, `Pro (trial)`, `Enterprise`.
    pub edition: String,
    /// `{"state": "valid"}`, `{"state": "expiring", "days_left": 12}`, `{"state": "grace", ...}`,
    /// `{"state": "restricted"}`, `{"state": "invalid", "reason": ...}`, `{"state": "clock_anomaly", ...}`,
    /// `{"state": "community"}`.
    #[schema(value_type = Object)]
    pub state: crate::license::LicenseState,
    /// New users, tenants and licensed changes are refused.
    pub restricted: bool,
    pub banner: Option<Banner>,
}

/// The installed licence's signed facts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LicenseFacts {
    pub license_id: String,
    pub customer: String,
    pub edition: String,
    pub trial: bool,
    pub issued_at: String,
    pub starts_at: String,
    pub expires_at: String,
    pub grace_days: u32,
    /// `null` for a site licence.
    pub installation_id: Option<String>,
    pub key_id: String,
}

/// The licence in full, with usage against the limits.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LicenseInfo {
    #[serde(flatten)]
    pub status: LicenseStatus,
    pub installation_id: String,
    /// `null` without a licence (community plan).
    pub license: Option<LicenseFacts>,
    /// Limits in force (`null` = unlimited): tenants, users, users_per_tenant, storage_gb and the
    /// monthly quotas.
    #[schema(value_type = Object)]
    pub limits: crate::license::Limits,
    /// Features in force.
    pub features: Vec<String>,
    pub usage: CurrentUsage,
    /// The largest daily counts since the licence period started, today's current counts included
    /// (seat counting for true-up).
    pub period_max: PeriodMax,
    pub evaluated_at: String,
}

fn status_of(snapshot: &Snapshot) -> LicenseStatus {
    LicenseStatus {
        edition: snapshot.evaluation.entitlements.edition_label.clone(),
        state: snapshot.evaluation.state.clone(),
        restricted: snapshot.evaluation.restricted,
        banner: crate::license::manager::banner_for(&snapshot.evaluation.state),
    }
}

/// Builds the full view (blocking: counts storage).
pub fn info_of(
    manager: &crate::license::manager::LicenseManager,
    snapshot: &Snapshot,
) -> Result<LicenseInfo, crate::db::DbError> {
    let usage = manager.usage()?;
    Ok(LicenseInfo {
        status: status_of(snapshot),
        installation_id: manager.installation_id().to_string(),
        license: snapshot.license.as_ref().map(|l| LicenseFacts {
            license_id: l.license_id.clone(),
            customer: l.customer.clone(),
            edition: l.edition.as_str().to_string(),
            trial: l.trial,
            issued_at: format_rfc3339(l.issued_at),
            starts_at: format_rfc3339(l.starts_at),
            expires_at: format_rfc3339(l.expires_at),
            grace_days: l.grace_days,
            installation_id: l.installation_id.clone(),
            key_id: snapshot.key_id.clone().unwrap_or_default(),
        }),
        limits: snapshot.evaluation.entitlements.limits,
        features: snapshot
            .evaluation
            .entitlements
            .features
            .iter()
            .cloned()
            .collect(),
        period_max: manager.period_max()?.with_current(&usage),
        usage,
        evaluated_at: format_rfc3339(snapshot.evaluated_at),
    })
}

/// The licence state and banner (any signed-in user).
#[utoipa::path(get, path = "/api/v1/license/status", tag = "license", responses(
    (status = 200, body = LicenseStatus), (status = 401, body = crate::http::openapi::ErrorResponse)))]
pub async fn status(_user: CurrentUser, state: web::Data<AppState>) -> web::Json<LicenseStatus> {
    web::Json(status_of(&state.license.current()))
}

/// The licence: edition, dates, state, limits with current usage, features (system administrators).
#[utoipa::path(get, path = "/api/v1/license", tag = "license", responses(
    (status = 200, body = LicenseInfo), (status = 403, body = crate::http::openapi::ErrorResponse)))]
pub async fn show(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<LicenseInfo>> {
    let manager = state.license.clone();
    let info = run_blocking(move || info_of(&manager, &manager.current())).await?;
    Ok(web::Json(info))
}

/// A licence file to install.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseUpload {
    /// The whole licence file, `-----BEGIN ENCLAVE LICENSE-----` to `-----END ENCLAVE LICENSE-----`.
    pub license: String,
}

/// Installs a licence (system administrators). Refused files leave the current licence in place.
#[utoipa::path(post, path = "/api/v1/license", tag = "license", request_body = LicenseUpload, responses(
    (status = 200, description = "installed", body = LicenseInfo),
    (status = 400, description = "refused: `license_invalid` says why", body = crate::http::openapi::ErrorResponse),
    (status = 413, description = "larger than 64 KiB", body = crate::http::openapi::ErrorResponse)))]
pub async fn install(
    admin: SystemAdmin,
    client: ClientInfo,
    state: web::Data<AppState>,
    body: web::Json<LicenseUpload>,
) -> ApiResult<web::Json<LicenseInfo>> {
    let manager = state.license.clone();
    let actor = Actor::person(&admin.user().username, &client, true);
    let text = body.into_inner().license;
    let info = run_blocking(move || {
        let snapshot = manager.install(text.as_bytes(), &actor)?;
        Ok::<_, ApiError>(info_of(&manager, &snapshot)?)
    })
    .await?;
    Ok(web::Json(info))
}

/// Removes the installed licence: the community plan applies again (system administrators).
#[utoipa::path(delete, path = "/api/v1/license", tag = "license", responses(
    (status = 200, body = LicenseInfo), (status = 403, body = crate::http::openapi::ErrorResponse)))]
pub async fn remove(
    admin: SystemAdmin,
    client: ClientInfo,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<LicenseInfo>> {
    let manager = state.license.clone();
    let actor = Actor::person(&admin.user().username, &client, true);
    let info = run_blocking(move || {
        let snapshot = manager.remove(&actor)?;
        Ok::<_, ApiError>(info_of(&manager, &snapshot)?)
    })
    .await?;
    Ok(web::Json(info))
}

/// An activation request to send to the vendor.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivationRequestView {
    pub installation_id: String,
    /// The armoured request, to save as a file (`enclave-activation-request.txt`).
    pub request: String,
    /// The same request on one line, as encoded in the QR code.
    pub compact: String,
    /// An SVG image of the QR code of `compact`.
    pub qr_svg: String,
}

/// A signed activation request (installation id, hostname, version, counts), as text and QR code
/// (system administrators).
#[utoipa::path(get, path = "/api/v1/license/activation-request", tag = "license", responses(
    (status = 200, body = ActivationRequestView), (status = 403, body = crate::http::openapi::ErrorResponse)))]
pub async fn activation_request(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<ActivationRequestView>> {
    let manager = state.license.clone();
    let view = run_blocking(move || {
        let (request, compact) = manager.activation_request()?;
        let qr_svg = crate::license::qr::svg(&compact).map_err(ApiError::internal)?;
        Ok::<_, ApiError>(ActivationRequestView {
            installation_id: manager.installation_id().to_string(),
            request,
            compact,
            qr_svg,
        })
    })
    .await?;
    Ok(web::Json(view))
}

/// The signed usage report for true-up: current counts, the period maxima and daily seat snapshots
/// (system administrators). Served as a text file.
#[utoipa::path(get, path = "/api/v1/license/usage-report", tag = "license", responses(
    (status = 200, description = "`-----BEGIN ENCLAVE USAGE REPORT-----` ...", content_type = "text/plain"),
    (status = 403, body = crate::http::openapi::ErrorResponse)))]
pub async fn usage_report(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let manager = state.license.clone();
    let report = run_blocking(move || manager.usage_report()).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"enclave-usage-report.txt\"",
        ))
        .body(report))
}
