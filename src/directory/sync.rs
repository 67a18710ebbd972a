//! Directory synchronisation: refreshes the attributes and roles of the accounts a directory already
//! has here, and deactivates those it no longer lists — never all at once. A run that finds no entry
//! at all, or that would deactivate more than `sync_max_deactivate_percent` of the directory's active
//! accounts, changes nothing and is recorded as `refused` with the reason. Deactivation ends sessions
//! and revokes the account's API keys at once. Every run is recorded (`directory_sync_runs`) and audited.
//!
//! Runs come from the schedule (a cron expression per directory, a job of [`crate::scheduler`] kept in
//! step with the settings by [`reschedule`]) or from "sync now"; two runs of one directory never overlap.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;

use super::client::{self, Trace};
use super::{Directory, DirectoryError};
use crate::state::AppState;

/// Parses a cron expression (`sec min hour day-of-month month day-of-week`, UTC).
pub fn parse_schedule(expression: &str) -> Result<crate::scheduler::Schedule, DirectoryError> {
    crate::scheduler::parse(expression).map_err(|e| {
        DirectoryError::InvalidSettings(format!(
            "sync_schedule: {e} (six fields: sec min hour day month weekday, in UTC, e.g. \"0 0 * * * *\" hourly)"
        ))
    })
}

/// The scheduler key of a directory's synchronisation job.
fn job_key(directory_id: &str) -> String {
    format!("directory:{directory_id}")
}

/// Makes the scheduler run `directory`'s synchronisation on its current schedule (none when the
/// directory is disabled or its schedule is empty). Called at start-up and after every change.
pub async fn reschedule(state: &AppState, directory: &Directory) {
    let expression = if directory.enabled {
        directory.settings.sync_schedule.as_str()
    } else {
        ""
    };
    let (job_state, id) = (state.clone(), directory.id.clone());
    let scheduled = state
        .scheduler
        .schedule(&job_key(&directory.id), expression, move || {
            let (state, id) = (job_state.clone(), id.clone());
            async move {
                match run(&state, &id, "schedule").await {
                    Ok(_) => {}
                    Err(e) if e.code == crate::error::Code::DirectorySyncRunning => {
                        tracing::info!(directory = %id, "previous synchronisation still running: this one is skipped")
                    }
                    Err(e) => {
                        tracing::warn!(directory = %id, error = %e.message, "scheduled directory sync failed")
                    }
                }
            }
        })
        .await;
    if let Err(e) = scheduled {
        tracing::warn!(directory = %directory.id, error = %e, "cannot schedule the directory's synchronisation");
    }
}

/// Removes a deleted directory's job.
pub async fn unschedule(state: &AppState, directory_id: &str) {
    if let Err(e) = state.scheduler.unschedule(&job_key(directory_id)).await {
        tracing::warn!(directory = %directory_id, error = %e, "cannot remove the directory's sync job");
    }
}

/// Schedules every directory's synchronisation (at start-up).
pub async fn schedule_all(state: &AppState) {
    let system = state.system.clone();
    match crate::db::run_blocking(move || system.db.read(super::list)).await {
        Ok(directories) => {
            for directory in &directories {
                reschedule(state, directory).await;
            }
        }
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot read directories to schedule their synchronisation")
        }
    }
}

/// Directories with a run in progress.
static RUNNING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Marks a directory's run in progress until dropped.
struct RunGuard(String);

impl RunGuard {
    fn take(directory_id: &str) -> Option<RunGuard> {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        running
            .get_or_insert_with(HashSet::new)
            .insert(directory_id.to_string())
            .then(|| RunGuard(directory_id.to_string()))
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = running.as_mut() {
            set.remove(&self.0);
        }
    }
}

/// One recorded run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncRun {
    pub id: i64,
    pub directory_id: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// `running`, `ok`, `refused` (safety stop: nothing changed) or `failed`.
    pub status: String,
    pub checked: i64,
    pub updated: i64,
    pub deactivated: i64,
    pub message: String,
}

/// The latest runs of a directory, newest first.
pub fn history(
    conn: &rusqlite::Connection,
    directory_id: &str,
    limit: u32,
) -> rusqlite::Result<Vec<SyncRun>> {
    let mut stmt = conn.prepare(
        "SELECT id, directory_id, started_at, finished_at, trigger, status, checked, updated, deactivated, message
         FROM directory_sync_runs WHERE directory_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![directory_id, limit], |r| {
        Ok(SyncRun {
            id: r.get(0)?,
            directory_id: r.get(1)?,
            started_at: r.get(2)?,
            finished_at: r.get(3)?,
            trigger: r.get(4)?,
            status: r.get(5)?,
            checked: r.get(6)?,
            updated: r.get(7)?,
            deactivated: r.get(8)?,
            message: r.get(9)?,
        })
    })?;
    rows.collect()
}

struct Known {
    id: String,
    external_id: String,
    username: String,
}

enum Outcome {
    Ok {
        checked: i64,
        updated: i64,
        deactivated: i64,
        message: String,
    },
    Refused {
        checked: i64,
        message: String,
    },
}

/// Runs one synchronisation of `directory_id` and records it. Returns the recorded run.
pub async fn run(
    state: &AppState,
    directory_id: &str,
    trigger: &str,
) -> Result<SyncRun, crate::error::ApiError> {
    let Some(_running) = RunGuard::take(directory_id) else {
        return Err(DirectoryError::SyncRunning(directory_id.to_string()).into());
    };
    let system = state.system.clone();
    let id = directory_id.to_string();
    let directory = crate::db::run_blocking(move || super::find(&system, &id)).await?;
    let started_at = crate::time_util::now_rfc3339();
    let outcome = sync_once(state, &directory).await;
    let (status, checked, updated, deactivated, message) = match &outcome {
        Ok(Outcome::Ok {
            checked,
            updated,
            deactivated,
            message,
        }) => ("ok", *checked, *updated, *deactivated, message.clone()),
        Ok(Outcome::Refused { checked, message }) => ("refused", *checked, 0, 0, message.clone()),
        Err(e) => ("failed", 0, 0, 0, e.to_string()),
    };
    if status != "ok" {
        tracing::warn!(directory = %directory.id, status, message = %message, "directory sync did not complete");
    }
    let system = state.system.clone();
    let (dir_id, trigger) = (directory.id.clone(), trigger.to_string());
    crate::db::run_blocking(move || {
        system.db.write(|tx| {
            let finished = crate::time_util::now_rfc3339();
            tx.execute(
                "INSERT INTO directory_sync_runs (directory_id, started_at, finished_at, trigger, status, checked, updated, deactivated, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![dir_id, started_at, finished, trigger, status, checked, updated, deactivated, message],
            )?;
            let run_id = tx.last_insert_rowid();
            crate::audit::append(
                tx,
                &crate::audit::Actor::cli(),
                &crate::audit::Event {
                    action: "directory.sync",
                    target: &dir_id,
                    tenant_id: "",
                    success: status == "ok",
                    detail: serde_json::json!({
                        "run": run_id, "trigger": trigger, "status": status, "checked": checked,
                        "updated": updated, "deactivated": deactivated, "message": message,
                    }),
                },
            )?;
            Ok::<_, DirectoryError>(history(tx, &dir_id, 1)?.into_iter().next())
        })
    })
    .await?
    .ok_or_else(|| crate::error::ApiError::internal("sync run not recorded"))
}

async fn sync_once(state: &AppState, directory: &Directory) -> Result<Outcome, DirectoryError> {
    let settings = &directory.settings;
    let system = state.system.clone();
    let dir_id = directory.id.clone();
    let known: Vec<Known> = crate::db::run_blocking(move || {
        system.db.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, external_id, username FROM users
                 WHERE directory_id = ?1 AND state = 'active' AND external_id IS NOT NULL",
            )?;
            let rows = stmt.query_map([&dir_id], |r| {
                Ok(Known {
                    id: r.get(0)?,
                    external_id: r.get(1)?,
                    username: r.get(2)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })
    })
    .await
    .map_err(|e| DirectoryError::Unavailable(e.message))?;
    let password = directory.service_password(&state.config.storage.data_dir)?;
    let mut trace = Trace::default();
    let mut conn = client::service_connection(settings, &password, &mut trace).await?;
    // Everyone the sign-in filter would accept: the filter with `*` for the login.
    let filter = settings.user_filter_template().replace("{login}", "*");
    let entries = conn
        .search_all(
            &settings.user_base,
            &filter,
            &client::user_attributes(settings),
            settings.page_size,
        )
        .await;
    let entries = match entries {
        Ok(e) => e,
        Err(e) => {
            conn.close().await;
            return Err(e);
        }
    };
    if entries.is_empty() {
        conn.close().await;
        return Ok(Outcome::Refused {
            checked: 0,
            message: format!(
                "the directory returned no entries for {filter} under {}; nothing was changed (a wrong base or filter must not deactivate everyone)",
                settings.user_base
            ),
        });
    }
    let mut by_id: HashMap<String, client::DirectoryUser> = HashMap::new();
    for entry in &entries {
        if let Ok(user) = client::read_user(settings, entry) {
            by_id.insert(user.external_id.clone(), user);
        }
    }
    let mut refresh = Vec::new();
    let mut gone = Vec::new();
    for k in &known {
        match by_id.get(&k.external_id) {
            None => gone.push(k),
            Some(found) => {
                let mut found = found.clone();
                match client::groups_of(&mut conn, settings, &found.dn, &mut trace).await {
                    Ok(groups) => found.groups = groups,
                    Err(e) => {
                        conn.close().await;
                        return Err(e);
                    }
                }
                if settings.admits(&found.groups) {
                    refresh.push((k, found));
                } else {
                    gone.push(k);
                }
            }
        }
    }
    conn.close().await;
    let checked = i64::try_from(known.len()).unwrap_or(i64::MAX);
    let limit = (known.len() * usize::from(settings.sync_max_deactivate_percent)) / 100;
    if !gone.is_empty() && (gone.len() > limit || gone.len() == known.len()) {
        return Ok(Outcome::Refused {
            checked,
            message: format!(
                "{} of {} accounts would be deactivated, more than the allowed {} % ({}); nothing was changed. Check the directory, then raise sync_max_deactivate_percent or deactivate them by hand",
                gone.len(),
                known.len(),
                settings.sync_max_deactivate_percent,
                gone.iter().take(10).map(|k| k.username.as_str()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let plan = state.license.plan();
    let system = state.system.clone();
    let directory = directory.clone();
    let gone_ids: Vec<(String, String)> = gone
        .iter()
        .map(|k| (k.id.clone(), k.username.clone()))
        .collect();
    let refresh: Vec<client::DirectoryUser> = refresh.into_iter().map(|(_, u)| u).collect();
    crate::db::run_blocking(move || {
        system.db.write(|tx| {
            let mut updated = 0i64;
            let mut problems = Vec::new();
            for user in &refresh {
                match super::provision(tx, &directory, user, &plan, false) {
                    Ok(_) => updated += 1,
                    Err(e) => problems.push(format!("{}: {e}", user.username)),
                }
            }
            for (id, username) in &gone_ids {
                super::deactivate_user(tx, id)?;
                crate::audit::append(
                    tx,
                    &crate::audit::Actor::cli(),
                    &crate::audit::Event {
                        action: "directory.deactivate",
                        target: username,
                        tenant_id: "",
                        success: true,
                        detail: serde_json::json!({"directory": directory.id, "reason": "not found in the directory or not in the required group"}),
                    },
                )?;
            }
            let deactivated = i64::try_from(gone_ids.len()).unwrap_or(i64::MAX);
            let mut message = format!("{updated} refreshed, {deactivated} deactivated");
            if !gone_ids.is_empty() {
                message.push_str(&format!(
                    " ({})",
                    gone_ids.iter().map(|(_, u)| u.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
            if !problems.is_empty() {
                message.push_str(&format!("; not refreshed: {}", problems.join("; ")));
            }
            Ok::<_, DirectoryError>(Outcome::Ok { checked, updated, deactivated, message })
        })
    })
    .await
    .map_err(|e| DirectoryError::Unavailable(e.message))
}
