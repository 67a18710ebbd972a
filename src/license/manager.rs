//! The licence at run time: what is installed, its state now, and everything that changes it.
//!
//! [`LicenseManager`] keeps the current [`Snapshot`] (the verified licence, if any, and its
//! [`Evaluation`]) behind a lock, so checks in the request path are a pointer copy. It is refreshed
//! every minute by the server (and at once after an install), which also moves the clock high-water
//! mark forward and records clock anomalies in `license_clock`. A licence installed through the CLI
//! while the server runs is picked up by that refresh.
//!
//! Installing verifies the file against the keys compiled into this build, checks that it is for this
//! installation and in force now, and only then replaces the stored licence, in one transaction with
//! its audit entry. A refused file leaves the previous licence in place; the refusal is audited too.
//!
//! The instance key (Ed25519, `<data>/instance-key.pk8`, mode 0600) signs activation requests and usage
//! reports; it is created the first time one is needed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use time::OffsetDateTime;

use super::activation::{sign_usage_report, ActivationCounts, ActivationRequest, InstanceKey};
use super::enforce;
use super::format::{parse_and_verify, LicenseError, LicensePayload, MAX_LICENSE_BYTES};
use super::keys::TrustedKeys;
use super::state::{evaluate, Evaluation, LicenseInput, LicenseState, StateInput};
use crate::audit::{self, Actor, Event};
use crate::db::system::SystemDb;
use crate::db::DbError;
use crate::error::{Code, ErrorCode};
use crate::time_util::{format_rfc3339, parse_rfc3339};

/// The file holding the instance key, in the data directory.
pub const INSTANCE_KEY_FILE: &str = "instance-key.pk8";

/// A licence issued more than this far in the future means the vendor's or our clock is wrong.
const ISSUED_AHEAD_TOLERANCE: time::Duration = time::Duration::hours(1);

/// The licence clock: [`crate::time_util::business_now`] (the system clock; shiftable in test builds).
pub fn now() -> OffsetDateTime {
    crate::time_util::business_now()
}

pub use crate::time_util::TEST_CLOCK_OFFSET_ENV;

/// The installed licence and its state at the last refresh.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The verified licence, when one is installed and its signature checks out.
    pub license: Option<LicensePayload>,
    pub key_id: Option<String>,
    pub evaluation: Evaluation,
    pub evaluated_at: OffsetDateTime,
}

/// Why an upload was refused. The previous licence stays active in every case.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Invalid(#[from] LicenseError),
    #[error("this licence was issued for installation {licensed}, but this is installation {ours}: send the vendor this installation's activation request")]
    OtherInstallation { licensed: String, ours: String },
    #[error("this licence expired on {0}; the current licence stays active")]
    Expired(String),
    #[error("this licence is not valid before {0}; install it on or after that date")]
    NotYetValid(String),
    #[error("this licence was issued at {0}, which is in the future for this server: check the server's clock")]
    IssuedInFuture(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ErrorCode for InstallError {
    fn code(&self) -> Code {
        match self {
            InstallError::Invalid(LicenseError::TooLarge { .. }) => Code::PayloadTooLarge,
            InstallError::Db(e) => e.code(),
            _ => Code::LicenseInvalid,
        }
    }
    fn public_message(&self) -> String {
        match self {
            InstallError::Db(e) => e.public_message(),
            other => format!("the licence was not installed: {other}"),
        }
    }
}

impl ErrorCode for LicenseError {
    fn code(&self) -> Code {
        match self {
            LicenseError::TooLarge { .. } => Code::PayloadTooLarge,
            LicenseError::BadKey(_) | LicenseError::Random => Code::Internal,
            _ => Code::LicenseInvalid,
        }
    }
}

/// Counts of what the installation has now, against the licence's limits.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct CurrentUsage {
    /// Active accounts (each takes a seat).
    pub users: u64,
    /// Accounts that signed in or used a session in the last 30 days.
    pub active_users_30d: u64,
    pub tenants: u64,
    /// Bytes under the tenants' directories (databases, indexes, files).
    pub storage_bytes: u64,
    /// The largest tenant membership (against `users_per_tenant`).
    pub largest_tenant_members: u64,
}

/// One day's seat count.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SeatSnapshot {
    pub day: String,
    pub billable_users: u64,
    pub active_users_30d: u64,
    pub tenants: u64,
    pub storage_bytes: u64,
    pub taken_at: String,
}

/// The licence at run time. See the module doc.
pub struct LicenseManager {
    system: Arc<SystemDb>,
    installation_id: String,
    data_dir: PathBuf,
    keys: TrustedKeys,
    current: RwLock<Arc<Snapshot>>,
}

impl LicenseManager {
    /// Loads the stored licence and evaluates it (blocking).
    pub fn load(
        system: Arc<SystemDb>,
        installation_id: &str,
        data_dir: &Path,
    ) -> Result<LicenseManager, DbError> {
        let placeholder = Snapshot {
            license: None,
            key_id: None,
            evaluation: evaluate(&StateInput {
                license: LicenseInput::None,
                installation_id,
                now: now(),
                high_water: None,
                anomaly_since: None,
            }),
            evaluated_at: now(),
        };
        let manager = LicenseManager {
            system,
            installation_id: installation_id.to_string(),
            data_dir: data_dir.to_path_buf(),
            keys: TrustedKeys::builtin(),
            current: RwLock::new(Arc::new(placeholder)),
        };
        manager.refresh()?;
        Ok(manager)
    }

    /// The state at the last refresh.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The evaluation enforcement uses.
    pub fn plan(&self) -> Evaluation {
        self.current().evaluation.clone()
    }

    pub fn installation_id(&self) -> &str {
        &self.installation_id
    }

    /// Re-reads the stored licence, evaluates it at [`now`], persists the clock state (blocking).
    pub fn refresh(&self) -> Result<Arc<Snapshot>, DbError> {
        let at = now();
        let installation_id = self.installation_id.clone();
        let keys = &self.keys;
        let snapshot = self.system.db.write(|tx| {
            let stored: Option<String> = tx
                .query_row("SELECT armored FROM license WHERE id = 1", [], |r| r.get(0))
                .optional()?;
            let clock: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT high_water, anomaly_since FROM license_clock WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (high_water, anomaly_since) = match &clock {
                Some((hw, since)) => (
                    parse_rfc3339(hw),
                    since.as_deref().and_then(parse_rfc3339),
                ),
                None => (None, None),
            };
            let verified = stored
                .as_deref()
                .map(|text| parse_and_verify(text.as_bytes(), keys));
            let rejection = match &verified {
                Some(Err(e)) => Some(format!("the installed licence is not valid: {e}")),
                _ => None,
            };
            let license = match &verified {
                Some(Ok(v)) => LicenseInput::Verified(&v.payload),
                Some(Err(_)) => LicenseInput::Rejected(rejection.as_deref().unwrap_or("")),
                None => LicenseInput::None,
            };
            let evaluation = evaluate(&StateInput {
                license,
                installation_id: &installation_id,
                now: at,
                high_water,
                anomaly_since,
            });
            if evaluation.anomaly_since.is_some() && anomaly_since.is_none() {
                tracing::warn!(
                    now = %format_rfc3339(at),
                    high_water = %high_water.map(format_rfc3339).unwrap_or_default(),
                    "licence clock anomaly: the system clock is behind the newest time this installation has seen"
                );
            }
            tx.execute(
                "INSERT INTO license_clock (id, high_water, anomaly_since) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET high_water = excluded.high_water, anomaly_since = excluded.anomaly_since",
                rusqlite::params![
                    format_rfc3339(evaluation.high_water),
                    evaluation.anomaly_since.map(format_rfc3339)
                ],
            )?;
            let (license, key_id) = match verified {
                Some(Ok(v)) => (Some(v.payload), Some(v.key_id)),
                _ => (None, None),
            };
            Ok::<_, DbError>(Snapshot {
                license,
                key_id,
                evaluation,
                evaluated_at: at,
            })
        })?;
        let snapshot = Arc::new(snapshot);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = snapshot.clone();
        Ok(snapshot)
    }

    /// Verifies and installs a licence file (blocking). On any refusal the previous licence stays.
    pub fn install(&self, text: &[u8], actor: &Actor) -> Result<Arc<Snapshot>, InstallError> {
        let outcome = self.check_upload(text);
        let previous = self
            .current()
            .license
            .as_ref()
            .map(|l| l.license_id.clone());
        match outcome {
            Ok(verified) => {
                self.system.db.write(|tx| {
                    tx.execute(
                        "INSERT INTO license (id, armored, license_id, installed_at, installed_by)
                         VALUES (1, ?1, ?2, ?3, ?4)
                         ON CONFLICT (id) DO UPDATE SET armored = excluded.armored,
                             license_id = excluded.license_id, installed_at = excluded.installed_at,
                             installed_by = excluded.installed_by",
                        rusqlite::params![
                            verified.armored,
                            verified.payload.license_id,
                            crate::time_util::now_rfc3339(),
                            actor.name
                        ],
                    )?;
                    audit::append(
                        tx,
                        actor,
                        &Event {
                            action: "license.install",
                            target: &verified.payload.license_id,
                            tenant_id: "",
                            success: true,
                            detail: serde_json::json!({
                                "edition": verified.payload.edition.as_str(),
                                "trial": verified.payload.trial,
                                "customer": verified.payload.customer,
                                "expires_at": format_rfc3339(verified.payload.expires_at),
                                "key_id": verified.key_id,
                                "replaces": previous,
                            }),
                        },
                    )?;
                    Ok::<_, DbError>(())
                })?;
                tracing::info!(license = %verified.payload.license_id, edition = verified.payload.edition.as_str(), "licence installed");
                Ok(self.refresh()?)
            }
            Err(e) => {
                let reason = e.to_string();
                audit::record(
                    &self.system.db,
                    actor,
                    &Event {
                        action: "license.install",
                        target: "",
                        tenant_id: "",
                        success: false,
                        detail: serde_json::json!({ "reason": reason, "kept": previous }),
                    },
                )?;
                Err(e)
            }
        }
    }

    fn check_upload(&self, text: &[u8]) -> Result<super::VerifiedLicense, InstallError> {
        if text.len() > MAX_LICENSE_BYTES {
            return Err(LicenseError::TooLarge {
                size: text.len(),
                limit: MAX_LICENSE_BYTES,
            }
            .into());
        }
        let verified = parse_and_verify(text, &self.keys)?;
        let payload = &verified.payload;
        if let Some(bound) = &payload.installation_id {
            if bound != &self.installation_id {
                return Err(InstallError::OtherInstallation {
                    licensed: bound.clone(),
                    ours: self.installation_id.clone(),
                });
            }
        }
        let at = now();
        if payload.issued_at > at + ISSUED_AHEAD_TOLERANCE {
            return Err(InstallError::IssuedInFuture(format_rfc3339(
                payload.issued_at,
            )));
        }
        if at >= payload.expires_at {
            return Err(InstallError::Expired(format_rfc3339(payload.expires_at)));
        }
        if at < payload.starts_at {
            return Err(InstallError::NotYetValid(format_rfc3339(payload.starts_at)));
        }
        Ok(verified)
    }

    /// Removes the installed licence (back to the community plan), audited (blocking).
    pub fn remove(&self, actor: &Actor) -> Result<Arc<Snapshot>, DbError> {
        let previous = self
            .current()
            .license
            .as_ref()
            .map(|l| l.license_id.clone());
        self.system.db.write(|tx| {
            tx.execute("DELETE FROM license WHERE id = 1", [])?;
            audit::append(
                tx,
                actor,
                &Event {
                    action: "license.remove",
                    target: previous.as_deref().unwrap_or(""),
                    tenant_id: "",
                    success: true,
                    detail: serde_json::json!({}),
                },
            )?;
            Ok::<_, DbError>(())
        })?;
        self.refresh()
    }

    /// Forgets the clock high-water mark and any anomaly (blocking), for a clock that was set into the
    /// future by mistake and corrected. Only from the command line (shell access to the server), audited.
    pub fn reset_clock(&self, actor: &Actor) -> Result<Arc<Snapshot>, DbError> {
        let at = now();
        self.system.db.write(|tx| {
            tx.execute(
                "INSERT INTO license_clock (id, high_water, anomaly_since) VALUES (1, ?1, NULL)
                 ON CONFLICT (id) DO UPDATE SET high_water = excluded.high_water, anomaly_since = NULL",
                [format_rfc3339(at)],
            )?;
            audit::append(
                tx,
                actor,
                &Event {
                    action: "license.reset_clock",
                    target: "",
                    tenant_id: "",
                    success: true,
                    detail: serde_json::json!({ "high_water": format_rfc3339(at) }),
                },
            )?;
            Ok::<_, DbError>(())
        })?;
        self.refresh()
    }

    /// What the installation has now (blocking: walks the tenants' directories for storage).
    pub fn usage(&self) -> Result<CurrentUsage, DbError> {
        let storage_bytes = dir_size(&self.data_dir.join("tenants"));
        self.system.db.read(|c| {
            Ok(CurrentUsage {
                users: enforce::billable_users(c)?,
                active_users_30d: active_users_30d(c)?,
                tenants: enforce::counted_tenants(c)?,
                storage_bytes,
                largest_tenant_members: c.query_row(
                    "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM memberships m
                     JOIN users u ON u.id = m.user_id WHERE u.state = 'active' GROUP BY m.tenant_id)",
                    [],
                    |r| r.get::<_, i64>(0).map(|n| u64::try_from(n).unwrap_or(0)),
                )?,
            })
        })
    }

    /// Records today's seat count (replacing an earlier one of the same day), blocking.
    pub fn take_seat_snapshot(&self) -> Result<SeatSnapshot, DbError> {
        let usage = self.usage()?;
        let at = now();
        let snapshot = SeatSnapshot {
            day: format_rfc3339(at).chars().take(10).collect(),
            billable_users: usage.users,
            active_users_30d: usage.active_users_30d,
            tenants: usage.tenants,
            storage_bytes: usage.storage_bytes,
            taken_at: format_rfc3339(at),
        };
        let row = snapshot.clone();
        self.system.db.write(|tx| {
            tx.execute(
                "INSERT INTO seat_snapshots (day, billable_users, active_users_30d, tenants, storage_bytes, taken_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (day) DO UPDATE SET billable_users = max(billable_users, excluded.billable_users),
                     active_users_30d = max(active_users_30d, excluded.active_users_30d),
                     tenants = max(tenants, excluded.tenants),
                     storage_bytes = max(storage_bytes, excluded.storage_bytes),
                     taken_at = excluded.taken_at",
                rusqlite::params![
                    row.day,
                    row.billable_users as i64,
                    row.active_users_30d as i64,
                    row.tenants as i64,
                    row.storage_bytes as i64,
                    row.taken_at
                ],
            )
            .map_err(DbError::from)
        })?;
        Ok(snapshot)
    }

    /// Daily snapshots since `since` (a date or time, RFC 3339), oldest first.
    pub fn seat_snapshots(&self, since: &str) -> Result<Vec<SeatSnapshot>, DbError> {
        let since_day: String = since.chars().take(10).collect();
        self.system.db.read(|c| {
            let mut stmt = c.prepare(
                "SELECT day, billable_users, active_users_30d, tenants, storage_bytes, taken_at
                 FROM seat_snapshots WHERE day >= ?1 ORDER BY day",
            )?;
            let rows = stmt.query_map([since_day], |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
                Ok(SeatSnapshot {
                    day: r.get(0)?,
                    billable_users: n(1)?,
                    active_users_30d: n(2)?,
                    tenants: n(3)?,
                    storage_bytes: n(4)?,
                    taken_at: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The start of the current licence period: the licence's `starts_at`, or 365 days back without one.
    pub fn period_start(&self) -> OffsetDateTime {
        self.current()
            .license
            .as_ref()
            .map(|l| l.starts_at)
            .unwrap_or_else(|| now() - time::Duration::days(365))
    }

    /// The largest daily counts in the licence period.
    pub fn period_max(&self) -> Result<PeriodMax, DbError> {
        let snapshots = self.seat_snapshots(&format_rfc3339(self.period_start()))?;
        Ok(PeriodMax::of(&snapshots))
    }

    fn instance_key(&self) -> Result<InstanceKey, LicenseError> {
        load_or_create_instance_key(&self.data_dir)
    }

    /// A signed activation request: (armoured text, single-line form for a QR code). Blocking.
    pub fn activation_request(&self) -> Result<(String, String), ActivationError> {
        let key = self.instance_key()?;
        let usage = self.usage()?;
        let request = ActivationRequest::new(
            &self.installation_id,
            &hostname(),
            crate::VERSION,
            ActivationCounts {
                tenants: usage.tenants,
                users: usage.users,
                storage_bytes: usage.storage_bytes,
            },
            now(),
            &key,
        );
        Ok((request.to_armored(&key)?, request.to_compact(&key)?))
    }

    /// The signed usage report for true-up (blocking): current counts, the period maxima and every
    /// daily snapshot of the licence period.
    pub fn usage_report(&self) -> Result<String, ActivationError> {
        self.take_seat_snapshot()?;
        let key = self.instance_key()?;
        let snapshot = self.current();
        let period_start = self.period_start();
        let daily = self.seat_snapshots(&format_rfc3339(period_start))?;
        let report = serde_json::json!({
            "format": 1,
            "installation_id": self.installation_id,
            "license_id": snapshot.license.as_ref().map(|l| l.license_id.clone()),
            "customer": snapshot.license.as_ref().map(|l| l.customer.clone()),
            "edition": snapshot.evaluation.entitlements.edition_label,
            "generated_at": format_rfc3339(now()),
            "period_start": format_rfc3339(period_start),
            "current": self.usage()?,
            "period_max": PeriodMax::of(&daily),
            "limits": snapshot.evaluation.entitlements.limits,
            "daily": daily,
        });
        let bytes = serde_json::to_vec_pretty(&report)
            .map_err(|e| ActivationError::Key(LicenseError::BadPayload(e.to_string())))?;
        Ok(sign_usage_report(&bytes, &key))
    }

    /// A one-line text for banners, or `None` when all is well (valid or community).
    pub fn banner(&self) -> Option<Banner> {
        banner_for(&self.current().evaluation.state)
    }
}

/// Why an activation request or usage report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("the instance key: {0}")]
    Key(#[from] LicenseError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ErrorCode for ActivationError {
    fn code(&self) -> Code {
        match self {
            ActivationError::Key(_) => Code::Internal,
            ActivationError::Db(e) => e.code(),
        }
    }
}

/// The largest daily counts over a period.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct PeriodMax {
    pub billable_users: u64,
    pub active_users_30d: u64,
    pub tenants: u64,
    pub storage_bytes: u64,
}

impl PeriodMax {
    fn of(snapshots: &[SeatSnapshot]) -> PeriodMax {
        snapshots
            .iter()
            .fold(PeriodMax::default(), |m, s| PeriodMax {
                billable_users: m.billable_users.max(s.billable_users),
                active_users_30d: m.active_users_30d.max(s.active_users_30d),
                tenants: m.tenants.max(s.tenants),
                storage_bytes: m.storage_bytes.max(s.storage_bytes),
            })
    }

    /// These maxima, raised to the current counts: today is part of the period, but its snapshot may
    /// be older than the latest accounts and tenants (snapshots are taken at start, daily and for the
    /// usage report).
    pub fn with_current(self, usage: &CurrentUsage) -> PeriodMax {
        PeriodMax {
            billable_users: self.billable_users.max(usage.users),
            active_users_30d: self.active_users_30d.max(usage.active_users_30d),
            tenants: self.tenants.max(usage.tenants),
            storage_bytes: self.storage_bytes.max(usage.storage_bytes),
        }
    }
}

/// A licence banner for the UI: `warning` (expiring, clock anomaly) or `error` (grace, restricted,
/// invalid).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Banner {
    pub level: &'static str,
    pub message: String,
}

/// The banner for a state, shared by the UI and `enclave license show`.
pub fn banner_for(state: &LicenseState) -> Option<Banner> {
    let (level, message) = match state {
        LicenseState::Community | LicenseState::Valid => return None,
        LicenseState::Expiring { days_left } => (
            "warning",
            format!("The licence expires in {days_left} day(s). Install a renewed licence to keep every feature."),
        ),
        LicenseState::Grace { days_left } => (
            "error",
            format!("The licence has expired. Everything keeps working for {days_left} more day(s) of grace; then no new users, tenants or licensed changes are possible until a renewed licence is installed."),
        ),
        LicenseState::Restricted => (
            "error",
            "The licence has expired and its grace period is over: no new users, tenants or licensed changes. Sign-in, reading, export and backup keep working. Install a renewed licence.".to_string(),
        ),
        LicenseState::Invalid { reason } => (
            "error",
            format!("The installed licence does not apply ({reason}); the free community plan is in force."),
        ),
        LicenseState::ClockAnomaly { since, treated_as_expired } => (
            if *treated_as_expired { "error" } else { "warning" },
            if *treated_as_expired {
                format!("The server clock went back (since {}) and was not corrected within 72 hours: the licence is treated as expired. Fix the clock.", format_rfc3339(*since))
            } else {
                format!("The server clock is behind the newest time this installation has seen (since {}). Fix the clock within 72 hours or the licence is treated as expired.", format_rfc3339(*since))
            },
        ),
    };
    Some(Banner { level, message })
}

fn active_users_30d(conn: &Connection) -> rusqlite::Result<u64> {
    let cutoff = format_rfc3339(now() - time::Duration::days(30));
    conn.query_row(
        "SELECT count(*) FROM users WHERE state = 'active' AND last_active_at >= ?1",
        [cutoff],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| u64::try_from(n).unwrap_or(0))
}

/// Total size of the files under `dir` (0 when it does not exist; unreadable entries are skipped).
/// The bytes of the files under `dir` (recursively).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_size(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Loads `<data>/instance-key.pk8`, creating it (mode 0600) on first use.
pub fn load_or_create_instance_key(data_dir: &Path) -> Result<InstanceKey, LicenseError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(INSTANCE_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => InstanceKey::from_pkcs8(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Written whole to a private temporary file, then linked into place: the link fails if
            // another request created the key meanwhile (then that key is used), and nobody ever reads
            // a half-written key.
            let pkcs8 = InstanceKey::generate()?;
            let tmp = data_dir.join(format!(
                ".{INSTANCE_KEY_FILE}.{}",
                hex::encode(crate::tenancy::random_bytes::<6>())
            ));
            let key_error = |what: &str, e: std::io::Error| {
                LicenseError::BadKey(format!("cannot {what} {}: {e}", path.display()))
            };
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .and_then(|mut file| file.write_all(&pkcs8).and_then(|()| file.sync_all()));
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(key_error("write", e));
            }
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let bytes = std::fs::read(&path).map_err(|e| key_error("read", e))?;
                    return InstanceKey::from_pkcs8(&bytes);
                }
                Err(e) => return Err(key_error("create", e)),
            }
            InstanceKey::from_pkcs8(&pkcs8)
        }
        Err(e) => Err(LicenseError::BadKey(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod period_max_tests {
    use super::{CurrentUsage, PeriodMax};

    #[test]
    fn the_period_maximum_is_never_below_the_current_counts() {
        let snapshots = PeriodMax {
            billable_users: 7,
            active_users_30d: 2,
            tenants: 1,
            storage_bytes: 10,
        };
        let now = CurrentUsage {
            users: 5,
            active_users_30d: 4,
            tenants: 3,
            storage_bytes: 10,
            largest_tenant_members: 2,
        };
        let m = snapshots.with_current(&now);
        assert_eq!(
            (
                m.billable_users,
                m.active_users_30d,
                m.tenants,
                m.storage_bytes
            ),
            (7, 4, 3, 10)
        );
    }
}
