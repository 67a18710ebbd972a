//! The backup settings a system administrator can change in the browser (schedules, retention, alert
//! URL), stored in `system.db` (`backup_settings`, one row). Saved settings take precedence over the
//! configuration file's `[backup]` values; the directory and the passphrase file stay in the
//! configuration, as paths on the server are not for a web form.

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::config::BackupConfig;

/// The settings that can be saved from the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Editable {
    /// When scheduled backups run: six cron fields (sec min hour day month weekday), UTC; empty: never.
    pub schedule: String,
    /// Scheduled backups kept: the newest of each of this many days…
    pub keep_daily: usize,
    /// …and of each of this many ISO weeks.
    pub keep_weekly: usize,
    /// When the restore drill verifies the newest backup (six cron fields, UTC); empty: never.
    pub drill_schedule: String,
    /// Where failed backups and drills are reported (JSON POST); null: nowhere.
    pub alert_webhook_url: Option<String>,
}

/// Why settings are refused; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Editable {
    /// The values of the configuration file.
    pub fn from_config(config: &BackupConfig) -> Editable {
        Editable {
            schedule: config.schedule.trim().to_string(),
            keep_daily: config.keep_daily,
            keep_weekly: config.keep_weekly,
            drill_schedule: config.drill_schedule.trim().to_string(),
            alert_webhook_url: config.alert_webhook_url.clone(),
        }
    }

    /// Checks every field (the same rules as the configuration file).
    pub fn validate(mut self) -> Result<Editable, Invalid> {
        self.schedule = self.schedule.trim().to_string();
        self.drill_schedule = self.drill_schedule.trim().to_string();
        for (field, expression) in [
            ("schedule", &self.schedule),
            ("drill_schedule", &self.drill_schedule),
        ] {
            if !expression.is_empty() {
                crate::scheduler::parse(expression).map_err(|e| Invalid {
                    field,
                    message: format!(
                        "not a six-field cron expression (sec min hour day month weekday, UTC): {e}"
                    ),
                })?;
            }
        }
        if self.keep_daily > 366 || self.keep_weekly > 520 {
            return Err(Invalid {
                field: "keep_daily",
                message: "keep at most 366 daily and 520 weekly backups".into(),
            });
        }
        if self.keep_daily + self.keep_weekly == 0 {
            return Err(Invalid {
                field: "keep_daily",
                message: "keep at least one scheduled backup (keep_daily or keep_weekly above 0)"
                    .into(),
            });
        }
        self.alert_webhook_url = self
            .alert_webhook_url
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty());
        if let Some(url) = &self.alert_webhook_url {
            crate::usage::webhook::parse_target(url).map_err(|e| Invalid {
                field: "alert_webhook_url",
                message: e.to_string(),
            })?;
        }
        Ok(self)
    }

    /// `config` with these values in place of its own.
    pub fn apply_to(&self, config: &BackupConfig) -> BackupConfig {
        BackupConfig {
            schedule: self.schedule.clone(),
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            drill_schedule: self.drill_schedule.clone(),
            alert_webhook_url: self.alert_webhook_url.clone(),
            ..config.clone()
        }
    }
}

/// The saved settings, if any were saved.
pub fn load(conn: &rusqlite::Connection) -> rusqlite::Result<Option<Editable>> {
    conn.query_row(
        "SELECT schedule, keep_daily, keep_weekly, drill_schedule, alert_webhook_url FROM backup_settings WHERE id = 1",
        [],
        |r| {
            Ok(Editable {
                schedule: r.get(0)?,
                keep_daily: r.get::<_, i64>(1)?.max(0) as usize,
                keep_weekly: r.get::<_, i64>(2)?.max(0) as usize,
                drill_schedule: r.get(3)?,
                alert_webhook_url: r.get(4)?,
            })
        },
    )
    .optional()
}

/// Saves validated settings.
pub fn save(tx: &rusqlite::Transaction, settings: &Editable, by: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO backup_settings (id, schedule, keep_daily, keep_weekly, drill_schedule, alert_webhook_url, updated_at, updated_by)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET schedule = excluded.schedule, keep_daily = excluded.keep_daily,
           keep_weekly = excluded.keep_weekly, drill_schedule = excluded.drill_schedule,
           alert_webhook_url = excluded.alert_webhook_url, updated_at = excluded.updated_at,
           updated_by = excluded.updated_by",
        rusqlite::params![
            settings.schedule,
            settings.keep_daily as i64,
            settings.keep_weekly as i64,
            settings.drill_schedule,
            settings.alert_webhook_url,
            crate::time_util::now_rfc3339(),
            by,
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Editable {
        Editable::from_config(&BackupConfig::default())
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let mut s = sample();
        s.schedule = "every night".into();
        assert_eq!(s.validate().expect_err("bad cron").field, "schedule");
        let mut s = sample();
        s.drill_schedule = "0 0 3 * *".into();
        assert_eq!(
            s.validate().expect_err("five fields").field,
            "drill_schedule"
        );
        let mut s = sample();
        (s.keep_daily, s.keep_weekly) = (0, 0);
        assert_eq!(s.validate().expect_err("keeps none").field, "keep_daily");
        let mut s = sample();
        s.alert_webhook_url = Some("ftp://alerts.example.com/".into());
        assert_eq!(
            s.validate().expect_err("not http").field,
            "alert_webhook_url"
        );
        let mut s = sample();
        s.alert_webhook_url = Some("  ".into());
        s.schedule = " 0 15 2 * * * ".into();
        let ok = s.validate().expect("valid");
        assert_eq!(ok.alert_webhook_url, None);
        assert_eq!(ok.schedule, "0 15 2 * * *");
    }
}
