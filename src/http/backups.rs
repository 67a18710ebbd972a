//! `/api/v1/backups` (system administrators): the backups in the backup directory, the settings in
//! effect (schedules, retention, alert URL; editable) and the last runs and drill, a backup now, a
//! restore drill now, verifying one, downloading one. See docs/backup.md.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::audit::Actor;
use crate::backup::service::{DrillReport, RunReport};
use crate::backup::settings::Editable;
use crate::backup::{self, BackupError, Kind};
use crate::db::run_blocking;
use crate::error::{ApiError, ApiResult, Code};
use crate::identity::principal::{ClientInfo, SystemAdmin};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/backups")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(super::resource("/api/v1/backups/settings").route(web::put().to(save_settings)))
    .service(super::resource("/api/v1/backups/drill").route(web::post().to(drill)))
    .service(super::resource("/api/v1/backups/{file}").route(web::get().to(download)))
    .service(super::resource("/api/v1/backups/{file}/verify").route(web::post().to(verify)));
}

/// One finished backup.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BackupItem {
    pub file: String,
    pub bytes: u64,
    pub created_at: Option<String>,
    /// `manual`, `scheduled` or `pre-upgrade`.
    pub kind: Option<String>,
    pub app_version: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BackupOverview {
    pub dir: String,
    /// The settings in effect.
    pub settings: Editable,
    /// `saved` (changed on this page) or `config` (the configuration file's).
    pub settings_source: &'static str,
    /// When the next scheduled backup runs; null when none will (no schedule or no passphrase).
    pub next_run: Option<String>,
    /// When the next restore drill runs; null when none will.
    pub next_drill: Option<String>,
    /// Whether a passphrase is configured (scheduled and API backups need one).
    pub passphrase_configured: bool,
    pub last_run: Option<RunReport>,
    pub last_failure: Option<RunReport>,
    pub last_drill: Option<DrillReport>,
    pub backups: Vec<BackupItem>,
}

/// When a schedule fires next, if backups can run at all.
fn next(expression: &str, usable: bool) -> Option<String> {
    if !usable || expression.trim().is_empty() {
        return None;
    }
    crate::scheduler::parse(expression)
        .ok()
        .and_then(|s| crate::scheduler::next_run(&s))
}

fn backup_error(e: &BackupError) -> ApiError {
    let code = match e {
        BackupError::WrongPassphrase
        | BackupError::Damaged(_)
        | BackupError::Truncated(_)
        | BackupError::NotABackup
        | BackupError::TooNew { .. } => Code::BackupInvalid,
        BackupError::Busy(_) => Code::BackupBusy,
        BackupError::NoSpace { .. } | BackupError::DiskFull(_) => Code::StorageFull,
        BackupError::Invalid(_) => Code::InvalidRequest,
        BackupError::Crypto(_) | BackupError::Io(_) => Code::Internal,
    };
    if code == Code::Internal {
        ApiError::internal(e.to_string())
    } else {
        ApiError::new(code, e.to_string())
    }
}

/// The backup file named in the path: a plain file name of a finished backup in the backup directory.
fn backup_path(state: &AppState, file: &str) -> ApiResult<std::path::PathBuf> {
    let ok = file.ends_with(backup::SUFFIX)
        && !file.contains('/')
        && !file.contains('\\')
        && !file.starts_with('.');
    let path = state
        .config
        .backup
        .dir_for(&state.config.storage.data_dir)
        .join(file);
    if !ok || !path.is_file() {
        return Err(ApiError::new(
            Code::BackupNotFound,
            format!("no backup named {file:?} in the backup directory"),
        ));
    }
    Ok(path)
}

/// The backups, the schedule and the last runs.
#[utoipa::path(get, path = "/api/v1/backups", tag = "backups", responses(
    (status = 200, body = BackupOverview)))]
pub async fn list(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
) -> ApiResult<web::Json<BackupOverview>> {
    let (configured, system) = (state.config.backup.clone(), state.system.clone());
    let dir = configured.dir_for(&state.config.storage.data_dir);
    let listing = dir.clone();
    let (saved, listed) = run_blocking(move || {
        let saved = system.db.read(backup::settings::load)?;
        let listed = backup::list(&listing).map_err(|e| backup_error(&e))?;
        Ok::<_, ApiError>((saved, listed))
    })
    .await?;
    let settings_source = if saved.is_some() { "saved" } else { "config" };
    let settings = saved.unwrap_or_else(|| Editable::from_config(&configured));
    let passphrase_configured = backup::service::passphrase(&configured).is_ok();
    Ok(web::Json(BackupOverview {
        dir: dir.display().to_string(),
        next_run: next(&settings.schedule, passphrase_configured),
        next_drill: next(&settings.drill_schedule, passphrase_configured),
        settings,
        settings_source,
        passphrase_configured,
        last_run: state.backups.last(),
        last_failure: state.backups.last_failure(),
        last_drill: state.backups.last_drill(),
        backups: listed
            .into_iter()
            .map(|b| BackupItem {
                file: b
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
                bytes: b.bytes,
                created_at: b.header.as_ref().map(|h| h.created_at.clone()),
                kind: b.header.as_ref().map(|h| h.kind.clone()),
                app_version: b.header.as_ref().map(|h| h.app_version.clone()),
            })
            .collect(),
    }))
}

/// Backs up now (a manual backup, never pruned); answers when it is written and synced.
#[utoipa::path(post, path = "/api/v1/backups", tag = "backups", responses(
    (status = 201, body = RunReport),
    (status = 400, description = "no passphrase configured, or no space", body = crate::http::openapi::ErrorResponse),
    (status = 409, description = "another backup is running", body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
) -> ApiResult<HttpResponse> {
    let actor = Actor::person(&admin.user().username, &client, true);
    let report = backup::service::run_and_audit(&state, Kind::Manual, actor).await?;
    if let Some(error) = report.error {
        return Err(backup_error(&error));
    }
    Ok(HttpResponse::Created().json(report))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub file: String,
    pub ok: bool,
    pub entries: usize,
    pub databases: usize,
    pub content_bytes: u64,
    pub created_at: String,
    pub installation_id: String,
}

/// Decrypts a backup and checks every hash and database, without touching live data.
#[utoipa::path(post, path = "/api/v1/backups/{file}/verify", tag = "backups",
    params(("file" = String, Path, description = "backup file name")),
    responses((status = 200, body = VerifyReport),
        (status = 400, description = "damaged, or the passphrase does not open it", body = crate::http::openapi::ErrorResponse)))]
pub async fn verify(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    path: web::Path<String>,
) -> ApiResult<web::Json<VerifyReport>> {
    let file = path.into_inner();
    let backup_file = backup_path(&state, &file)?;
    let passphrase =
        backup::service::passphrase(&state.config.backup).map_err(|e| backup_error(&e))?;
    let checked = run_blocking(move || {
        backup::verify(&backup_file, &passphrase).map_err(|e| backup_error(&e))
    })
    .await;
    let actor = Actor::person(&admin.user().username, &client, true);
    backup::service::audit(
        &state,
        actor,
        "backup.verify",
        Some(file.clone()),
        checked.is_ok(),
        serde_json::json!({ "error": checked.as_ref().err().map(|e| e.message.clone()) }),
    )
    .await?;
    let checked = checked?;
    Ok(web::Json(VerifyReport {
        file,
        ok: true,
        entries: checked.manifest.entries.len(),
        databases: checked.manifest.databases.len(),
        content_bytes: checked.content_bytes,
        created_at: checked.header.created_at,
        installation_id: checked.header.installation_id,
    }))
}

/// Downloads a backup file (it is encrypted; keep a copy off the machine).
#[utoipa::path(get, path = "/api/v1/backups/{file}", tag = "backups",
    params(("file" = String, Path, description = "backup file name")),
    responses((status = 200, content_type = "application/octet-stream", description = "the backup file"),
        (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn download(
    _admin: SystemAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let file = path.into_inner();
    let backup_file = backup_path(&state, &file)?;
    let body = file_stream(&backup_file)?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{file}\""),
        ))
        .streaming(body))
}

/// The file as a stream of 256 KiB pieces read on the blocking pool (memory independent of its size).
fn file_stream(
    path: &std::path::Path,
) -> ApiResult<impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>>> {
    let file = std::fs::File::open(path).map_err(ApiError::internal)?;
    Ok(futures_util::stream::unfold(
        Some(file),
        |file| async move {
            let mut file = file?;
            let read = run_blocking(move || {
                use std::io::Read;
                let mut buf = vec![0u8; 256 * 1024];
                let n = file.read(&mut buf).map_err(ApiError::internal)?;
                buf.truncate(n);
                Ok::<_, ApiError>((buf, file))
            })
            .await;
            match read {
                Ok((buf, _)) if buf.is_empty() => None,
                Ok((buf, file)) => Some((Ok(web::Bytes::from(buf)), Some(file))),
                Err(e) => Some((
                    Err(actix_web::error::ErrorInternalServerError(e.message)),
                    None,
                )),
            }
        },
    ))
}

/// Saves the backup settings (validated; they take precedence over the configuration file) and
/// applies the schedules at once.
#[utoipa::path(put, path = "/api/v1/backups/settings", tag = "backups", request_body = Editable,
    responses((status = 200, body = Editable),
        (status = 400, description = "a field is not valid (named in the message)", body = crate::http::openapi::ErrorResponse)))]
pub async fn save_settings(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
    body: web::Json<Editable>,
) -> ApiResult<web::Json<Editable>> {
    let settings = body
        .into_inner()
        .validate()
        .map_err(|e| ApiError::new(Code::InvalidRequest, e.to_string()).with_param(e.field))?;
    let actor = Actor::person(&admin.user().username, &client, true);
    let system = state.system.clone();
    let saved = settings.clone();
    run_blocking(move || {
        system.db.write(|tx| {
            backup::settings::save(tx, &saved, &actor.name).map_err(crate::db::DbError::Sqlite)?;
            crate::audit::append(
                tx,
                &actor,
                &crate::audit::Event {
                    action: "backup.settings",
                    target: "",
                    tenant_id: "",
                    success: true,
                    detail: serde_json::json!({
                        "schedule": saved.schedule, "keep_daily": saved.keep_daily,
                        "keep_weekly": saved.keep_weekly, "drill_schedule": saved.drill_schedule,
                        "alert_webhook": saved.alert_webhook_url.is_some(),
                    }),
                },
            )
            .map_err(crate::db::DbError::Sqlite)
        })
    })
    .await?;
    backup::service::schedule(&state).await;
    Ok(web::Json(settings))
}

/// Runs the restore drill now: the newest backup decrypted and checked in full. Answers 200 with the
/// outcome, failed or not (a failure is also audited and alerted).
#[utoipa::path(post, path = "/api/v1/backups/drill", tag = "backups",
    responses((status = 200, body = DrillReport)))]
pub async fn drill(
    admin: SystemAdmin,
    state: web::Data<AppState>,
    client: ClientInfo,
) -> ApiResult<web::Json<DrillReport>> {
    let actor = Actor::person(&admin.user().username, &client, true);
    Ok(web::Json(
        backup::service::drill_and_audit(&state, actor).await?,
    ))
}
