//! Backups inside the server: scheduled runs (a job of [`crate::scheduler`] on `backup.schedule`),
//! runs asked for through the API, retention of scheduled backups, and the last run's outcome for the
//! API. One run at a time (the backup directory's lock); every run is audited in `system.db`.

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

/// The outcome of the latest runs, for the API.
#[derive(Default)]
pub struct Status {
    last: Mutex<Option<RunReport>>,
    last_failure: Mutex<Option<RunReport>>,
}

impl Status {
    pub fn last(&self) -> Option<RunReport> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn last_failure(&self) -> Option<RunReport> {
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn record(&self, report: &RunReport) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
        if !report.ok {
            *self
                .last_failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
        }
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

/// Runs a backup on the blocking pool and appends its outcome to the system audit log (`actor`: who
/// asked; the scheduler is `system`).
pub async fn run_and_audit(
    state: &AppState,
    kind: Kind,
    actor: crate::audit::Actor,
) -> Result<RunReport, crate::error::ApiError> {
    let config = state.config.backup.clone();
    let data_dir = state.config.storage.data_dir.clone();
    let status = state.backups.clone();
    let report = crate::db::run_blocking(move || {
        Ok::<_, crate::error::ApiError>(run(&config, &data_dir, kind, &status))
    })
    .await?;
    let system = state.system.clone();
    let audited = report.clone();
    crate::db::run_blocking(move || {
        system.db.write(|tx| {
            crate::audit::append(
                tx,
                &actor,
                &crate::audit::Event {
                    action: "backup.create",
                    target: audited.file.as_deref().unwrap_or(""),
                    tenant_id: "",
                    success: audited.ok,
                    detail: serde_json::json!({
                        "kind": audited.kind, "bytes": audited.bytes, "duration_ms": audited.duration_ms,
                        "error": audited.error.as_ref().map(|e| e.to_string()), "pruned": audited.pruned,
                    }),
                },
            )
            .map_err(crate::db::DbError::Sqlite)
        })
    })
    .await?;
    if !report.ok {
        if let Some(e) = &report.error {
            tracing::error!(kind = %report.kind, error = %e, "backup failed");
        }
    }
    Ok(report)
}

/// Puts the scheduled backup on the scheduler (when a passphrase is configured and a schedule set).
pub async fn schedule(state: &AppState) {
    let expression = state.config.backup.schedule.trim().to_string();
    if expression.is_empty() {
        return;
    }
    if let Err(e) = passphrase(&state.config.backup) {
        tracing::warn!("scheduled backups are off: {e}");
        return;
    }
    let s = state.clone();
    let result = state
        .scheduler
        .schedule("backup", &expression, move || {
            let s = s.clone();
            async move {
                let _ = run_and_audit(&s, Kind::Scheduled, crate::audit::Actor::scheduler()).await;
            }
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "scheduled backups could not be put on the scheduler");
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
