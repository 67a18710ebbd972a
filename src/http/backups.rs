//! `/api/v1/backups` (system administrators): the backups in the backup directory, the schedule and
//! the last runs, a backup now, verifying one, downloading one. See docs/backup.md.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::audit::Actor;
use crate::backup::service::RunReport;
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
    /// The cron expression (six fields, UTC); empty: no scheduled backups.
    pub schedule: String,
    /// When the next scheduled backup runs; null when none will (no schedule or no passphrase).
    pub next_run: Option<String>,
    /// Whether a passphrase is configured (scheduled and API backups need one).
    pub passphrase_configured: bool,
    pub keep_daily: usize,
    pub keep_weekly: usize,
    pub last_run: Option<RunReport>,
    pub last_failure: Option<RunReport>,
    pub backups: Vec<BackupItem>,
}

fn backup_error(e: &BackupError) -> ApiError {
    let code = match e {
        BackupError::WrongPassphrase
        | BackupError::Damaged(_)
        | BackupError::Truncated(_)
        | BackupError::NotABackup
        | BackupError::TooNew { .. } => Code::BackupInvalid,
        BackupError::Busy(_) => Code::BackupBusy,
        BackupError::NoSpace { .. } => Code::StorageFull,
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
    let config = state.config.backup.clone();
    let dir = config.dir_for(&state.config.storage.data_dir);
    let listing = dir.clone();
    let listed = run_blocking(move || backup::list(&listing).map_err(|e| backup_error(&e))).await?;
    let passphrase_configured = backup::service::passphrase(&config).is_ok();
    let next_run = if passphrase_configured && !config.schedule.trim().is_empty() {
        crate::scheduler::parse(&config.schedule)
            .ok()
            .and_then(|s| crate::scheduler::next_run(&s))
    } else {
        None
    };
    Ok(web::Json(BackupOverview {
        dir: dir.display().to_string(),
        schedule: config.schedule.clone(),
        next_run,
        passphrase_configured,
        keep_daily: config.keep_daily,
        keep_weekly: config.keep_weekly,
        last_run: state.backups.last(),
        last_failure: state.backups.last_failure(),
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
    let system = state.system.clone();
    let (target, ok, detail) = (
        file.clone(),
        checked.is_ok(),
        checked.as_ref().err().map(|e| e.message.clone()),
    );
    run_blocking(move || {
        system.db.write(|tx| {
            crate::audit::append(
                tx,
                &actor,
                &crate::audit::Event {
                    action: "backup.verify",
                    target: &target,
                    tenant_id: "",
                    success: ok,
                    detail: serde_json::json!({ "error": detail }),
                },
            )
            .map_err(crate::db::DbError::Sqlite)
        })
    })
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
