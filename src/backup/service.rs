//! Backups inside the server: scheduled runs (a job of [`crate::scheduler`] on the backup schedule),
//! runs asked for through the API, retention of scheduled backups, the weekly restore drill (the
//! newest backup decrypted and checked in full), and the last outcomes for the API and `/metrics`.
//! One run at a time (the backup directory's lock); every run and drill is audited in `system.db`; a
//! failed one is logged as an error and posted to the alert webhook, if one is set.
//!
//! The settings in effect are the configuration's `[backup]` with the ones saved from the browser
//! ([`super::settings`]) on top: [`effective`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::{BackupError, Kind, Listed};
use crate::config::BackupConfig;
use crate::state::AppState;

/// How a run ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunReport {
    /// `manual` or `scheduled`.
    pub kind: String,
    pub started_at: String,
    pub finished_at: String,
    pub ok: bool,
    pub file: Option<String>,
    pub bytes: Option<u64>,
    pub duration_ms: u64,
    /// Why it failed.
    #[serde(serialize_with = "error_text")]
    #[schema(value_type = Option<String>)]
    pub error: Option<std::sync::Arc<BackupError>>,
    /// Scheduled backups removed by retention after this run.
    pub pruned: Vec<String>,
}

fn error_text<S: serde::Serializer>(
    error: &Option<std::sync::Arc<BackupError>>,
    out: S,
) -> Result<S::Ok, S::Error> {
    match error {
        Some(e) => out.serialize_some(&e.to_string()),
        None => out.serialize_none(),
    }
}

/// How a restore drill ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DrillReport {
    pub started_at: String,
    pub finished_at: String,
    pub ok: bool,
    /// The backup verified (the newest one).
    pub file: Option<String>,
    pub duration_ms: u64,
    pub files_checked: Option<usize>,
    pub databases_checked: Option<usize>,
    /// Why it failed (also: no backup to verify).
    pub error: Option<String>,
}

/// The outcome of the latest runs, for the API and `/metrics`.
#[derive(Default)]
pub struct Status {
    last: Mutex<Option<RunReport>>,
    last_failure: Mutex<Option<RunReport>>,
    last_success: Mutex<Option<RunReport>>,
    last_drill: Mutex<Option<DrillReport>>,
}

/// Reads a slot of [`Status`], whatever a panicking writer left.
fn read<T: Clone>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn write<T>(slot: &Mutex<Option<T>>, value: T) {
    *slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(value);
}

impl Status {
    pub fn last_success(&self) -> Option<RunReport> {
        read(&self.last_success)
    }

    pub fn last_drill(&self) -> Option<DrillReport> {
        read(&self.last_drill)
    }

    pub fn last(&self) -> Option<RunReport> {
        read(&self.last)
    }

    pub fn last_failure(&self) -> Option<RunReport> {
        read(&self.last_failure)
    }

    fn record(&self, report: &RunReport) {
        write(&self.last, report.clone());
        if report.ok {
            write(&self.last_success, report.clone());
        } else {
            write(&self.last_failure, report.clone());
        }
    }

    fn record_drill(&self, report: &DrillReport) {
        write(&self.last_drill, report.clone());
    }
}

/// The backup settings in effect: the configuration's, with those saved from the browser on top.
pub fn effective(config: &BackupConfig, system: &crate::db::system::SystemDb) -> BackupConfig {
    match system.db.read(super::settings::load) {
        Ok(Some(saved)) => saved.apply_to(config),
        Ok(None) => config.clone(),
        Err(e) => {
            tracing::warn!(error = %e, "the saved backup settings cannot be read; using the configuration's");
            config.clone()
        }
    }
}

/// Verifies the newest backup in the backup directory in full (the restore drill), blocking.
pub fn drill(config: &BackupConfig, data_dir: &Path, status: &Status) -> DrillReport {
    let started = std::time::Instant::now();
    let mut report = DrillReport {
        started_at: crate::time_util::now_rfc3339(),
        finished_at: String::new(),
        ok: false,
        file: None,
        duration_ms: 0,
        files_checked: None,
        databases_checked: None,
        error: None,
    };
    let result = (|| {
        let passphrase = passphrase(config)?;
        let newest = super::list(&config.dir_for(data_dir))?
            .into_iter()
            .find(|b| {
                b.header
                    .as_ref()
                    .is_some_and(|h| h.kind != super::secrets::SECRETS_KIND)
            })
            .ok_or_else(|| BackupError::Invalid("there is no backup to verify".into()))?;
        report.file = newest
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string());
        super::verify(&newest.path, &passphrase)
    })();
    match result {
        Ok(checked) => {
            report.ok = true;
            report.files_checked = Some(checked.manifest.entries.len());
            report.databases_checked = Some(checked.manifest.databases.len());
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    report.finished_at = crate::time_util::now_rfc3339();
    report.duration_ms = started.elapsed().as_millis() as u64;
    status.record_drill(&report);
    report
}

/// Posts a failure to the alert webhook, if one is set (in the background).
fn alert(state: &AppState, config: &BackupConfig, event: &str, error: &str, file: Option<&str>) {
    if let Some(url) = &config.alert_webhook_url {
        crate::usage::webhook::send(
            "backup alert",
            url.clone(),
            state.config.usage.webhook_allow_private,
            serde_json::json!({
                "event": event,
                "error": error,
                "file": file,
                "at": crate::time_util::now_rfc3339(),
                "installation_id": state.instance.installation_id,
            }),
        );
    }
}

/// The passphrase of server-side backups: the configured file, else `ENCLAVE_BACKUP_PASSPHRASE`.
pub fn passphrase(config: &BackupConfig) -> Result<String, BackupError> {
    super::passphrase(config.passphrase_file.as_deref())
}

/// Runs one backup of `data_dir` (blocking), prunes scheduled backups after a scheduled run, and
/// records the outcome in `status`.
pub fn run(config: &BackupConfig, data_dir: &Path, kind: Kind, status: &Status) -> RunReport {
    let started = std::time::Instant::now();
    let started_at = crate::time_util::now_rfc3339();
    let dir = config.dir_for(data_dir);
    let result = passphrase(config).and_then(|p| super::create(data_dir, &dir, &p, kind));
    let mut report = RunReport {
        kind: kind.as_str().into(),
        started_at,
        finished_at: String::new(),
        ok: false,
        file: None,
        bytes: None,
        duration_ms: 0,
        error: None,
        pruned: Vec::new(),
    };
    match result {
        Ok(created) => {
            report.ok = true;
            report.file = created
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string());
            report.bytes = Some(created.bytes);
            if matches!(kind, Kind::Scheduled) {
                match super::list(&dir)
                    .map(|all| prune_list(&all, config.keep_daily, config.keep_weekly))
                {
                    Ok(doomed) => {
                        for path in doomed {
                            match std::fs::remove_file(&path) {
                                Ok(()) => report.pruned.push(
                                    path.file_name()
                                        .map(|n| n.to_string_lossy().to_string())
                                        .unwrap_or_default(),
                                ),
                                Err(e) => {
                                    tracing::warn!(file = %path.display(), error = %e, "an old backup could not be removed")
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "old backups could not be listed for pruning")
                    }
                }
            }
        }
        Err(e) => report.error = Some(std::sync::Arc::new(e)),
    }
    report.finished_at = crate::time_util::now_rfc3339();
    report.duration_ms = started.elapsed().as_millis() as u64;
    status.record(&report);
    report
}

/// Appends one backup event (`backup.create`, `backup.drill`, `backup.verify`) to the system audit log,
/// on the blocking pool.
pub async fn audit(
    state: &AppState,
    actor: crate::audit::Actor,
    action: &'static str,
    file: Option<String>,
    ok: bool,
    detail: serde_json::Value,
) -> Result<(), crate::error::ApiError> {
    let system = state.system.clone();
    crate::db::run_blocking(move || {
        system.db.write(|tx| {
            crate::audit::append(
                tx,
                &actor,
                &crate::audit::Event {
                    action,
                    target: file.as_deref().unwrap_or(""),
                    tenant_id: "",
                    success: ok,
                    detail,
                },
            )
            .map_err(crate::db::DbError::Sqlite)
        })
    })
    .await?;
    Ok(())
}

/// Runs a backup on the blocking pool and appends its outcome to the system audit log (`actor`: who
/// asked; the scheduler is `system`).
pub async fn run_and_audit(
    state: &AppState,
    kind: Kind,
    actor: crate::audit::Actor,
) -> Result<RunReport, crate::error::ApiError> {
    let (configured, system) = (state.config.backup.clone(), state.system.clone());
    let config = crate::db::run_blocking(move || {
        Ok::<_, crate::error::ApiError>(effective(&configured, &system))
    })
    .await?;
    let data_dir = state.config.storage.data_dir.clone();
    let status = state.backups.clone();
    let settings = config.clone();
    let report = crate::db::run_blocking(move || {
        Ok::<_, crate::error::ApiError>(run(&settings, &data_dir, kind, &status))
    })
    .await?;
    audit(
        state,
        actor,
        "backup.create",
        report.file.clone(),
        report.ok,
        serde_json::json!({
            "kind": report.kind, "bytes": report.bytes, "duration_ms": report.duration_ms,
            "error": report.error.as_ref().map(|e| e.to_string()), "pruned": report.pruned,
        }),
    )
    .await?;
    if !report.ok {
        if let Some(e) = &report.error {
            tracing::error!(kind = %report.kind, error = %e, "backup failed");
            alert(
                state,
                &config,
                "backup.failed",
                &e.to_string(),
                report.file.as_deref(),
            );
        }
    }
    Ok(report)
}

/// Runs the restore drill on the blocking pool, audits it (`backup.drill`) and alerts on failure.
pub async fn drill_and_audit(
    state: &AppState,
    actor: crate::audit::Actor,
) -> Result<DrillReport, crate::error::ApiError> {
    let (configured, system) = (state.config.backup.clone(), state.system.clone());
    let data_dir = state.config.storage.data_dir.clone();
    let status = state.backups.clone();
    let (config, report) = crate::db::run_blocking(move || {
        let config = effective(&configured, &system);
        let report = drill(&config, &data_dir, &status);
        Ok::<_, crate::error::ApiError>((config, report))
    })
    .await?;
    audit(
        state,
        actor,
        "backup.drill",
        report.file.clone(),
        report.ok,
        serde_json::json!({
            "duration_ms": report.duration_ms, "files_checked": report.files_checked,
            "databases_checked": report.databases_checked, "error": report.error,
        }),
    )
    .await?;
    if let Some(e) = report.error.as_deref() {
        tracing::error!(error = %e, file = ?report.file, "restore drill failed");
        alert(
            state,
            &config,
            "backup.drill_failed",
            e,
            report.file.as_deref(),
        );
    }
    Ok(report)
}

/// Puts the scheduled backup and the restore drill on the scheduler with the settings in effect, or
/// takes them off (no schedule, no passphrase). Called at start and whenever settings are saved.
pub async fn schedule(state: &AppState) {
    let (configured, system) = (state.config.backup.clone(), state.system.clone());
    let config = match crate::db::run_blocking(move || {
        Ok::<_, crate::error::ApiError>(effective(&configured, &system))
    })
    .await
    {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "backup settings unavailable; scheduled backups are off");
            return;
        }
    };
    let usable = match passphrase(&config) {
        Ok(_) => true,
        Err(e) => {
            if !config.schedule.trim().is_empty() {
                tracing::warn!("scheduled backups are off: {e}");
            }
            false
        }
    };
    let (backup_at, drill_at) = if usable {
        (config.schedule.clone(), config.drill_schedule.clone())
    } else {
        (String::new(), String::new())
    };
    let s = state.clone();
    let result = state
        .scheduler
        .schedule("backup", &backup_at, move || {
            let s = s.clone();
            async move {
                let _ = run_and_audit(&s, Kind::Scheduled, crate::audit::Actor::scheduler()).await;
            }
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "scheduled backups could not be put on the scheduler");
    }
    let s = state.clone();
    let result = state
        .scheduler
        .schedule("backup-drill", &drill_at, move || {
            let s = s.clone();
            async move {
                let _ = drill_and_audit(&s, crate::audit::Actor::scheduler()).await;
            }
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the restore drill could not be put on the scheduler");
    }
}

/// The scheduled backups retention removes: all but the newest one of each of the `keep_daily` most
/// recent days and of the `keep_weekly` most recent ISO weeks (UTC). Manual and pre-upgrade backups,
/// and files whose header cannot be read, are never chosen.
pub fn prune_list(listed: &[Listed], keep_daily: usize, keep_weekly: usize) -> Vec<PathBuf> {
    let mut scheduled: Vec<(&str, &PathBuf)> = listed
        .iter()
        .filter_map(|b| {
            let header = b.header.as_ref()?;
            (header.kind == "scheduled").then_some((header.created_at.as_str(), &b.path))
        })
        .collect();
    scheduled.sort_by(|a, b| b.0.cmp(a.0));
    let mut days: Vec<String> = Vec::new();
    let mut weeks: Vec<(i32, u8)> = Vec::new();
    let mut doomed = Vec::new();
    for (created_at, path) in scheduled {
        let day = created_at.get(..10).unwrap_or_default().to_string();
        let week = time::Date::parse(
            &day,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map(|d| d.to_iso_week_date())
        .map(|(year, week, _)| (year, week));
        let mut keep = false;
        if !days.contains(&day) && days.len() < keep_daily {
            days.push(day.clone());
            keep = true;
        }
        if let Ok(week) = week {
            if !weeks.contains(&week) && weeks.len() < keep_weekly {
                weeks.push(week);
                keep = true;
            }
        }
        if !keep {
            doomed.push(path.clone());
        }
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::archive::Header;

    fn listed(created_at: &str, kind: &str) -> Listed {
        Listed {
            path: PathBuf::from(format!("{created_at}-{kind}")),
            bytes: 1,
            header: Some(Header::new(created_at, "", kind)),
        }
    }

    #[test]
    fn retention_keeps_the_newest_of_each_day_and_week_and_never_manual_ones() {
        // Sixty days of nightly backups (2026-09-01 … 2026-10-30), two on the last day, and manual
        // and pre-upgrade backups among them.
        let mut all = Vec::new();
        let start = time::macros::date!(2026 - 09 - 01);
        for i in 0..60 {
            let day = start + time::Duration::days(i);
            all.push(listed(&format!("{day}T03:00:00Z"), "scheduled"));
        }
        all.push(listed("2026-10-30T15:00:00Z", "scheduled"));
        all.push(listed("2026-09-02T10:00:00Z", "manual"));
        all.push(listed("2026-09-03T10:00:00Z", "pre-upgrade"));
        let doomed = prune_list(&all, 7, 4);
        let mut kept: Vec<String> = all
            .iter()
            .filter(|b| !doomed.contains(&b.path))
            .map(|b| b.path.display().to_string())
            .collect();
        kept.sort();
        // Days: Oct 30 (15:00, the newest of that day) back to Oct 24; weeks: those of Oct 30 (W44),
        // Oct 25 (W43, a Sunday), Oct 18 (W42) and Oct 11 (W41) — the newest backup of each.
        let mut expected = vec![
            "2026-09-02T10:00:00Z-manual",
            "2026-09-03T10:00:00Z-pre-upgrade",
            "2026-10-11T03:00:00Z-scheduled",
            "2026-10-18T03:00:00Z-scheduled",
            "2026-10-24T03:00:00Z-scheduled",
            "2026-10-25T03:00:00Z-scheduled",
            "2026-10-26T03:00:00Z-scheduled",
            "2026-10-27T03:00:00Z-scheduled",
            "2026-10-28T03:00:00Z-scheduled",
            "2026-10-29T03:00:00Z-scheduled",
            "2026-10-30T15:00:00Z-scheduled",
        ];
        expected.sort();
        assert_eq!(kept, expected);
        assert_eq!(kept.len(), 11, "{kept:?}");
        assert!(doomed
            .iter()
            .any(|p| p.display().to_string() == "2026-10-30T03:00:00Z-scheduled"));
        assert_eq!(
            prune_list(&all, 7, 4).len(),
            all.len() - 11,
            "the same answer twice"
        );
    }
}
