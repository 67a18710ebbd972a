//! Durable allowances: how the meter acknowledges a busy principal's requests without waiting for
//! one disk flush per batch, and still loses no acknowledged count when the machine loses power.
//!
//! The rule, kept by the meter's writer thread (the only writer of usage):
//! - A batch is committed with `synchronous=NORMAL` ([`crate::db::Database::write_unsynced`]), which
//!   survives a crash of the process but not yet one of the machine.
//! - Before the batch is acknowledged, every day count it touched must be at most a bound already on
//!   the disk: a row of `usage_allowance` (`through`). When a count would pass its bound, the same
//!   transaction raises the bound (by a chunk that doubles while the principal stays busy, up to
//!   [`Metric::allowance_cap`]) and the log is flushed ([`crate::db::Database::sync_wal`]) before
//!   anyone is answered. Metrics without an allowance flush every batch.
//! - When the meter has been idle for [`SETTLE_AFTER`], when the UTC day changes and at shutdown, the
//!   rows are deleted in a `FULL` commit (which also flushes everything before it): counts are exact
//!   and on the disk, and no bound is left.
//!
//! At start-up ([`recover`]), before a tenant is served, rows left behind are settled. If they were
//! written during this boot of the operating system (same `boot_id`), only the process died: the page
//! cache kept every commit, the counts are exact, and the rows are deleted. If the machine restarted,
//! commits after the last flush may be gone: each count is raised to its bound, so every acknowledged
//! event is still counted, at the price of counting at most one chunk per principal and day that never
//! happened; the raise is written to the tenant's audit log.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::Connection;

use super::Metric;
use crate::tenancy::TenantDb;

/// After this long without events the writer settles every allowance.
pub const SETTLE_AFTER: Duration = Duration::from_secs(1);

/// This boot of the operating system (`/proc/sys/kernel/random/boot_id`); `unknown` where the kernel
/// does not say, which [`recover`] treats as a different boot every time (it then raises, never loses).
pub fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into())
    })
}

/// A day count: tenant database (by handle), day, principal, metric.
type Key = (*const TenantDb, String, String, Metric);

#[derive(Debug, Clone, Copy)]
struct Bound {
    through: u64,
    chunk: u64,
}

/// What a batch must do for one count it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cover {
    /// The count is within its bound on the disk: nothing to flush for it.
    Covered,
    /// Write this bound in the batch's transaction and flush before acknowledging.
    Raise { through: u64, chunk: u64 },
    /// The metric has no allowance: flush before acknowledging.
    Flush,
}

/// The writer's record of the bounds on the disk. Lives in the writer thread only.
#[derive(Default)]
pub struct Allowances {
    bounds: HashMap<Key, Bound>,
    /// Holding the handle keeps the pointer in [`Key`] from being reused by another database.
    tenants: HashMap<*const TenantDb, Arc<TenantDb>>,
    /// The UTC day of the newest event seen; a new day settles everything.
    day: String,
}

impl Allowances {
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// What a batch that brought `tenant`'s count of (`day`, `principal`, `metric`) to `total`, `added`
    /// of it in this batch, must do before it is acknowledged.
    pub fn cover(
        &self,
        tenant: &Arc<TenantDb>,
        day: &str,
        principal: &str,
        metric: Metric,
        total: u64,
        added: u64,
    ) -> Cover {
        let cap = metric.allowance_cap();
        if cap == 0 {
            return Cover::Flush;
        }
        let key = (
            Arc::as_ptr(tenant),
            day.to_string(),
            principal.to_string(),
            metric,
        );
        let previous = self.bounds.get(&key).copied();
        if previous.is_some_and(|b| total <= b.through) {
            return Cover::Covered;
        }
        // The chunk starts at this batch's size and doubles each time a busy count runs through it.
        let chunk = previous
            .map_or(added, |b| b.chunk.saturating_mul(2).max(added))
            .clamp(1, cap);
        Cover::Raise {
            through: total.saturating_add(chunk),
            chunk,
        }
    }

    /// Records bounds once the transaction that wrote them is on the disk.
    pub fn raised(
        &mut self,
        tenant: &Arc<TenantDb>,
        raised: impl IntoIterator<Item = (String, String, Metric, u64, u64)>,
    ) {
        let pointer = Arc::as_ptr(tenant);
        let mut any = false;
        for (day, principal, metric, through, chunk) in raised {
            self.bounds
                .insert((pointer, day, principal, metric), Bound { through, chunk });
            any = true;
        }
        if any {
            self.tenants
                .entry(pointer)
                .or_insert_with(|| tenant.clone());
        }
    }

    /// Notes the day of a batch's newest event; true when it starts a new UTC day (settle after it).
    pub fn day_changes_to(&mut self, day: &str) -> bool {
        if self.day.as_str() >= day {
            return false;
        }
        let first = self.day.is_empty();
        self.day = day.to_string();
        !first
    }

    /// Deletes every bound in a `FULL` commit per tenant: all counts so far are then on the disk and
    /// exact. A tenant whose settling fails keeps its bounds (they are still correct upper bounds on
    /// the disk) and is tried again at the next settling.
    pub fn settle(&mut self) {
        for (pointer, tenant) in std::mem::take(&mut self.tenants) {
            let settled = tenant.db().write(|tx| {
                tx.execute("DELETE FROM usage_allowance", [])
                    .map_err(crate::db::DbError::from)
            });
            match settled {
                Ok(_) => self.bounds.retain(|key, _| key.0 != pointer),
                Err(e) => {
                    tracing::error!(tenant = %tenant.id(), error = %e, "usage allowances not settled; retrying later");
                    self.tenants.insert(pointer, tenant);
                }
            }
        }
    }
}

/// Writes (or raises) the bound of one count, inside the batch's transaction.
pub fn write_bound(
    tx: &Connection,
    day: &str,
    principal: &str,
    metric: Metric,
    through: u64,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO usage_allowance (day, principal, metric, through, boot_id) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (day, principal, metric) DO UPDATE SET through = excluded.through, boot_id = excluded.boot_id",
    )?;
    stmt.execute(rusqlite::params![
        day,
        principal,
        metric.as_str(),
        i64::try_from(through).unwrap_or(i64::MAX),
        boot_id()
    ])?;
    Ok(())
}

/// What [`recover`] did to one tenant database.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Bounds from this boot, deleted (the counts were exact).
    pub settled: usize,
    /// Counts raised to their bound after a restart of the machine: (day, principal, metric, by).
    pub raised: Vec<(String, String, String, u64)>,
}

/// Settles the bounds a previous run left in a tenant database (see the module doc), in one `FULL`
/// transaction. Runs at start-up, before the tenant is served and before the meter starts, and on every
/// backup's copy of a tenant database (a copy of a live database is exact; one taken after a machine
/// restart, before the server started again, needs the raise as much as the original).
pub fn recover(conn: &mut Connection) -> rusqlite::Result<Recovered> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let tenant_id: String = tx.query_row(
        "SELECT coalesce((SELECT tenant_id FROM tenant_meta WHERE id = 1), '')",
        [],
        |r| r.get(0),
    )?;
    let rows: Vec<(String, String, String, i64, String)> = {
        let mut stmt =
            tx.prepare("SELECT day, principal, metric, through, boot_id FROM usage_allowance")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut recovered = Recovered::default();
    let this_boot = boot_id();
    for (day, principal, metric, through, boot) in rows {
        if boot == this_boot && this_boot != "unknown" {
            recovered.settled += 1;
            continue;
        }
        let counted: i64 = tx
            .query_row(
                "SELECT quantity FROM usage_daily WHERE day = ?1 AND principal = ?2 AND metric = ?3",
                rusqlite::params![day, principal, metric],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(0),
                e => Err(e),
            })?;
        if through > counted {
            tx.execute(
                "INSERT INTO usage_daily (day, principal, metric, quantity) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (day, principal, metric) DO UPDATE SET quantity = excluded.quantity",
                rusqlite::params![day, principal, metric, through],
            )?;
            recovered.raised.push((
                day,
                principal,
                metric,
                u64::try_from(through - counted).unwrap_or(0),
            ));
        }
    }
    if !recovered.raised.is_empty() {
        let detail: Vec<serde_json::Value> = recovered
            .raised
            .iter()
            .map(|(day, principal, metric, by)| {
                serde_json::json!({ "day": day, "principal": principal, "metric": metric, "raised_by": by })
            })
            .collect();
        crate::audit::append(
            &tx,
            &crate::audit::Actor::startup(),
            &crate::audit::Event {
                action: "usage.recovered_after_restart",
                target: "usage",
                tenant_id: &tenant_id,
                success: true,
                detail: serde_json::json!({
                    "reason": "the machine restarted while usage was being counted; counts were raised to their last bound on the disk so that no acknowledged request is lost",
                    "counts": detail,
                }),
            },
        )?;
    }
    tx.execute("DELETE FROM usage_allowance", [])?;
    tx.commit()?;
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tenant.db");
        let mut conn = crate::db::open_connection(
            &path,
            crate::db::OpenMode::CreateIfMissing,
            Duration::from_secs(5),
        )
        .expect("open");
        crate::db::migrate::MigrationSet::tenant()
            .expect("set")
            .apply(&mut conn, &path)
            .expect("migrate");
        (dir, conn)
    }

    fn count(conn: &Connection, principal: &str) -> i64 {
        conn.query_row(
            "SELECT quantity FROM usage_daily WHERE principal = ?1",
            [principal],
            |r| r.get(0),
        )
        .expect("count")
    }

    #[test]
    fn after_a_machine_restart_counts_rise_to_their_bound_and_the_raise_is_audited() {
        let (_dir, mut conn) = tenant_db();
        conn.execute_batch(
            "INSERT INTO usage_daily VALUES ('2026-11-26', 'key:a', 'api_requests', 100);
             INSERT INTO usage_daily VALUES ('2026-11-26', 'key:b', 'api_requests', 50);
             INSERT INTO usage_allowance VALUES ('2026-11-26', 'key:a', 'api_requests', 164, 'an-earlier-boot');",
        )
        .expect("seed");
        conn.execute(
            "INSERT INTO usage_allowance VALUES ('2026-11-26', 'key:b', 'api_requests', 80, ?1)",
            [boot_id()],
        )
        .expect("seed this boot");
        conn.execute(
            "INSERT INTO tenant_meta (id, tenant_id, created_at) VALUES (1, 'acme', '2026-11-01T00:00:00Z')",
            [],
        )
        .expect("meta");
        let recovered = recover(&mut conn).expect("recover");
        assert_eq!(
            recovered.raised,
            vec![(
                "2026-11-26".to_string(),
                "key:a".to_string(),
                "api_requests".to_string(),
                64
            )]
        );
        // From this boot only the process died: the count is exact and stays.
        assert_eq!(recovered.settled, usize::from(boot_id() != "unknown"));
        assert_eq!(count(&conn, "key:a"), 164);
        assert_eq!(
            count(&conn, "key:b"),
            if boot_id() == "unknown" { 80 } else { 50 }
        );
        let left: i64 = conn
            .query_row("SELECT count(*) FROM usage_allowance", [], |r| r.get(0))
            .expect("left");
        assert_eq!(left, 0);
        let action: String = conn
            .query_row(
                "SELECT action FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("audit");
        assert_eq!(action, "usage.recovered_after_restart");
        // Nothing left to do the second time.
        assert_eq!(recover(&mut conn).expect("again"), Recovered::default());
    }

    fn open_tenant() -> (tempfile::TempDir, Arc<TenantDb>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = crate::db::DbOptions::new(2000, 2);
        crate::db::system::migrate_system(dir.path(), &options, false).expect("migrate");
        let system =
            Arc::new(crate::db::system::SystemDb::open(dir.path(), &options).expect("open"));
        let registry =
            crate::tenancy::TenantRegistry::new(dir.path().to_path_buf(), system, options, 4);
        let id = crate::tenancy::TenantId::parse("acme").expect("id");
        registry
            .create(
                &id,
                "Acme",
                &crate::audit::Actor::cli(),
                &crate::license::enforce::unlimited_for_tests(),
            )
            .expect("create");
        let (_, tenant) = registry.get(&id).expect("get");
        (dir, tenant)
    }

    #[test]
    fn bounds_start_at_the_batch_and_double_up_to_the_cap_and_settling_removes_them() {
        let (_dir, tenant) = open_tenant();
        let mut allowances = Allowances::default();
        let day = "2026-11-26";
        // A count seen for the first time is raised by its batch.
        assert_eq!(
            allowances.cover(&tenant, day, "key:a", Metric::ApiRequests, 10, 10),
            Cover::Raise {
                through: 20,
                chunk: 10
            }
        );
        allowances.raised(
            &tenant,
            [(day.into(), "key:a".into(), Metric::ApiRequests, 20, 10)],
        );
        assert!(!allowances.is_empty());
        assert_eq!(
            allowances.cover(&tenant, day, "key:a", Metric::ApiRequests, 20, 10),
            Cover::Covered
        );
        // One over the bound: a new bound, with the chunk doubled.
        assert_eq!(
            allowances.cover(&tenant, day, "key:a", Metric::ApiRequests, 21, 1),
            Cover::Raise {
                through: 41,
                chunk: 20
            }
        );
        allowances.raised(
            &tenant,
            [(day.into(), "key:a".into(), Metric::ApiRequests, 1_000, 200)],
        );
        let cap = Metric::ApiRequests.allowance_cap();
        assert_eq!(
            allowances.cover(&tenant, day, "key:a", Metric::ApiRequests, 1_001, 1),
            Cover::Raise {
                through: 1_001 + cap,
                chunk: cap
            }
        );
        // Tokens have no allowance: every batch is flushed.
        assert_eq!(
            allowances.cover(&tenant, day, "key:a", Metric::ChatTokensIn, 5, 5),
            Cover::Flush
        );
        // Another day is another count.
        assert!(!allowances.day_changes_to(day));
        assert!(allowances.day_changes_to("2026-11-27"));
        assert!(!allowances.day_changes_to("2026-11-26"));

        // Settling deletes the rows on the disk and forgets the bounds.
        tenant
            .db()
            .write(|tx| {
                write_bound(tx, day, "key:a", Metric::ApiRequests, 1_000)
                    .map_err(crate::db::DbError::from)
            })
            .expect("bound");
        let rows = |t: &TenantDb| -> i64 {
            t.db()
                .read(|c| c.query_row("SELECT count(*) FROM usage_allowance", [], |r| r.get(0)))
                .expect("rows")
        };
        assert_eq!(rows(&tenant), 1);
        allowances.settle();
        assert!(allowances.is_empty());
        assert_eq!(rows(&tenant), 0);
    }
}
