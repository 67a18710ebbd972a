//! The meter: one way for every feature to count usage, durably, without a write per request.
//!
//! Events carry the open database of their tenant (the request's own: the meter never looks a tenant
//! up) and go through a channel to one writer thread, which **group-commits**: it takes every event that
//! queued up while the previous batch was being committed (at most [`MAX_BATCH`]), adds them to `usage_daily` of each tenant
//! in one transaction per tenant, and only then answers each event's sender. A metered request awaits
//! that answer before it sends its 2xx, so every acknowledged request is counted even after `kill -9`;
//! if the commit fails the request fails too. Against power loss, a batch is flushed to the disk before
//! it is answered unless every count it touched is within a bound already on the disk
//! ([`super::allowance`]).
//!
//! Quotas need "used so far this month" on every metered request. The writer thread is the only
//! writer of usage, so it also keeps the month totals in memory: it loads a `(tenant, month, metric)`
//! total from the database the first time one is asked for and adds to it after each commit. Requests
//! **reserve** what they are about to use ([`Meter::reserve`]) under the same lock, so the check
//! "committed + reserved + this ≤ quota" is exact even under concurrency; a reservation is settled
//! with the actual quantity ([`Reservation::commit`]) or released when the work fails.
//!
//! Days and months are UTC, from [`crate::time_util::business_now`] at the moment the event is
//! recorded: a clock change never moves an event already counted, and a month starts from zero only
//! when the calendar says so.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};

use time::OffsetDateTime;

use super::allowance::{self, Allowances, Cover};
use super::Metric;
use crate::db::DbError;
use crate::error::{Code, ErrorCode};
use crate::tenancy::{TenantDb, TenantId};

/// A batch holds at most this many events.
pub const MAX_BATCH: usize = 512;

/// Why usage could not be counted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MeterError {
    #[error("usage could not be recorded: {0}")]
    Storage(String),
    #[error("the meter has stopped (the server is shutting down)")]
    Stopped,
}

impl ErrorCode for MeterError {
    fn code(&self) -> Code {
        match self {
            MeterError::Storage(_) => Code::DatabaseUnavailable,
            MeterError::Stopped => Code::NotReady,
        }
    }
    fn public_message(&self) -> String {
        match self {
            MeterError::Storage(_) => {
                "usage could not be recorded; the request was not completed. Retry shortly".into()
            }
            MeterError::Stopped => self.to_string(),
        }
    }
}

/// `YYYY-MM-DD` and `YYYY-MM` of a time (UTC).
pub fn day_and_month(at: OffsetDateTime) -> (String, String) {
    let day = format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    );
    let month = day[..7].to_string();
    (day, month)
}

/// Seconds from `at` until the next calendar month starts (UTC): when a monthly quota resets.
pub fn seconds_until_next_month(at: OffsetDateTime) -> u64 {
    let (year, month) = match at.month() {
        time::Month::December => (at.year() + 1, time::Month::January),
        m => (at.year(), m.next()),
    };
    let next = time::Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(at);
    u64::try_from((next - at).whole_seconds().max(1)).unwrap_or(1)
}

type TotalKey = (String, String, Metric);

/// Month totals known to the writer, and what requests have reserved but not yet committed.
#[derive(Default)]
struct Totals {
    committed: HashMap<TotalKey, u64>,
    reserved: HashMap<TotalKey, u64>,
}

impl Totals {
    fn used(&self, key: &TotalKey) -> Option<u64> {
        self.committed
            .get(key)
            .map(|c| c + self.reserved.get(key).copied().unwrap_or(0))
    }
    fn unreserve(&mut self, key: &TotalKey, quantity: u64) {
        if let Some(r) = self.reserved.get_mut(key) {
            *r = r.saturating_sub(quantity);
            if *r == 0 {
                self.reserved.remove(key);
            }
        }
    }
}

struct Event {
    tenant: Arc<TenantDb>,
    principal: String,
    metric: Metric,
    quantity: u64,
    day: String,
    month: String,
    /// Reserved quantity this event settles (moved from reserved to committed).
    settles: u64,
    ack: tokio::sync::oneshot::Sender<Result<(), MeterError>>,
}

enum Command {
    Record(Event),
    Load {
        tenant: Arc<TenantDb>,
        key: TotalKey,
        ack: tokio::sync::oneshot::Sender<Result<(), MeterError>>,
    },
}

/// The meter. Cheap to clone (shared).
#[derive(Clone)]
pub struct Meter {
    sender: Arc<Mutex<Option<mpsc::Sender<Command>>>>,
    totals: Arc<Mutex<Totals>>,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// Usage reserved ahead of the work; commit it with the actual quantity, or drop it to release it.
pub struct Reservation {
    meter: Meter,
    tenant: Arc<TenantDb>,
    principal: String,
    metric: Metric,
    quantity: u64,
    month: String,
    day: String,
    settled: bool,
}

impl Reservation {
    /// The reserved quantity.
    pub fn quantity(&self) -> u64 {
        self.quantity
    }

    /// Records `actual` (at most what was reserved is released; more is recorded as used) and waits
    /// until it is committed.
    pub async fn commit(mut self, actual: u64) -> Result<(), MeterError> {
        self.settled = true;
        let (ack, done) = tokio::sync::oneshot::channel();
        let event = Event {
            tenant: self.tenant.clone(),
            principal: std::mem::take(&mut self.principal),
            metric: self.metric,
            quantity: actual,
            day: std::mem::take(&mut self.day),
            month: self.month.clone(),
            settles: self.quantity,
            ack,
        };
        if let Err(e) = self.meter.send(Command::Record(event)) {
            self.meter
                .release(self.tenant.id(), &self.month, self.metric, self.quantity);
            return Err(e);
        }
        done.await.unwrap_or(Err(MeterError::Stopped))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.meter
                .release(self.tenant.id(), &self.month, self.metric, self.quantity);
        }
    }
}

/// What [`Meter::reserve`] found when the quota does not allow the request.
#[derive(Debug, Clone, Copy)]
pub struct OverQuota {
    pub used: u64,
    pub limit: u64,
}

impl Meter {
    /// Starts the writer thread.
    pub fn start() -> Meter {
        let (sender, receiver) = mpsc::channel();
        let totals = Arc::new(Mutex::new(Totals::default()));
        let writer_totals = totals.clone();
        let writer = std::thread::Builder::new()
            .name("usage-meter".into())
            .spawn(move || write_loop(&receiver, &writer_totals))
            .ok();
        if writer.is_none() {
            tracing::error!("could not start the usage meter thread; metered requests will fail");
        }
        Meter {
            sender: Arc::new(Mutex::new(Some(sender))),
            totals,
            writer: Arc::new(Mutex::new(writer)),
        }
    }

    fn send(&self, command: Command) -> Result<(), MeterError> {
        let guard = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match guard.as_ref() {
            Some(sender) => sender.send(command).map_err(|_| MeterError::Stopped),
            None => Err(MeterError::Stopped),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn release(&self, tenant: &TenantId, month: &str, metric: Metric, quantity: u64) {
        let key = (tenant.as_str().to_string(), month.to_string(), metric);
        self.lock().unreserve(&key, quantity);
    }

    async fn ensure_loaded(
        &self,
        tenant: &Arc<TenantDb>,
        key: &TotalKey,
    ) -> Result<(), MeterError> {
        if self.lock().committed.contains_key(key) {
            return Ok(());
        }
        let (ack, done) = tokio::sync::oneshot::channel();
        self.send(Command::Load {
            tenant: tenant.clone(),
            key: key.clone(),
            ack,
        })?;
        done.await.unwrap_or(Err(MeterError::Stopped))
    }

    /// This month's usage of `metric` in `tenant`: committed plus reserved.
    pub async fn used_this_month(
        &self,
        tenant: &Arc<TenantDb>,
        metric: Metric,
    ) -> Result<u64, MeterError> {
        let (_, month) = day_and_month(crate::time_util::business_now());
        let key = (tenant.id().as_str().to_string(), month, metric);
        self.ensure_loaded(tenant, &key).await?;
        Ok(self.lock().used(&key).unwrap_or(0))
    }

    /// Reserves `quantity` of `metric` for work about to start. With a `limit`, refuses when this
    /// month's committed + reserved usage plus `quantity` would exceed it.
    pub async fn reserve(
        &self,
        tenant: &Arc<TenantDb>,
        principal: &str,
        metric: Metric,
        quantity: u64,
        limit: Option<u64>,
    ) -> Result<Result<Reservation, OverQuota>, MeterError> {
        let (day, month) = day_and_month(crate::time_util::business_now());
        let key = (tenant.id().as_str().to_string(), month.clone(), metric);
        if limit.is_some() {
            self.ensure_loaded(tenant, &key).await?;
        }
        {
            let mut totals = self.lock();
            if let Some(limit) = limit {
                let used = totals.used(&key).unwrap_or(0);
                if used.saturating_add(quantity) > limit {
                    return Ok(Err(OverQuota { used, limit }));
                }
            }
            *totals.reserved.entry(key).or_insert(0) += quantity;
        }
        Ok(Ok(Reservation {
            meter: self.clone(),
            tenant: tenant.clone(),
            principal: principal.to_string(),
            metric,
            quantity,
            month,
            day,
            settled: false,
        }))
    }

    /// Records usage that needs no quota check, waiting until it is committed.
    pub async fn record(
        &self,
        tenant: &Arc<TenantDb>,
        principal: &str,
        metric: Metric,
        quantity: u64,
    ) -> Result<(), MeterError> {
        match self.reserve(tenant, principal, metric, 0, None).await? {
            Ok(reservation) => reservation.commit(quantity).await,
            Err(_) => Ok(()),
        }
    }

    /// Stops accepting events, commits everything already sent, and joins the writer (blocking).
    pub fn shutdown(&self) {
        self.sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn write_loop(receiver: &mpsc::Receiver<Command>, totals: &Mutex<Totals>) {
    let mut allowances = Allowances::default();
    loop {
        // While bounds are out, a quiet second settles them (see `allowance`).
        let first = if allowances.is_empty() {
            receiver.recv().map_err(|_| ())
        } else {
            match receiver.recv_timeout(allowance::SETTLE_AFTER) {
                Ok(command) => Ok(command),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    allowances.settle();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
            }
        };
        let Ok(first) = first else { break };
        // Group commit without a fixed wait: take everything that queued up while the previous batch
        // was committing. Under load batches grow by themselves; an idle server commits at once.
        // (Waiting a little longer for requests about to finish was measured: no gain.)
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        // One transaction per open tenant database (by handle, not by id: a tenant deleted and created
        // again under the same id is another database).
        let mut by_tenant: HashMap<*const TenantDb, Vec<Event>> = HashMap::new();
        let mut newest_day: Option<&str> = None;
        for command in &batch {
            if let Command::Record(event) = command {
                if newest_day.is_none_or(|d| d < event.day.as_str()) {
                    newest_day = Some(event.day.as_str());
                }
            }
        }
        // A new UTC day settles every bound once this batch is in (yesterday's counts are then exact
        // on the disk, whatever today's load).
        let new_day = newest_day.is_some_and(|day| allowances.day_changes_to(day));
        for command in batch {
            match command {
                Command::Record(event) => by_tenant
                    .entry(Arc::as_ptr(&event.tenant))
                    .or_default()
                    .push(event),
                Command::Load { tenant, key, ack } => {
                    let _ = ack.send(load(&tenant, totals, &key));
                }
            }
        }
        for (_, events) in by_tenant {
            commit_tenant(totals, &mut allowances, events);
        }
        if new_day {
            allowances.settle();
        }
    }
    allowances.settle();
    tracing::info!("usage meter stopped; every recorded event is committed");
}

/// Loads a month total from the database into the cache (writer thread only).
fn load(tenant: &TenantDb, totals: &Mutex<Totals>, key: &TotalKey) -> Result<(), MeterError> {
    let lock = || {
        totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if lock().committed.contains_key(key) {
        return Ok(());
    }
    let db = tenant;
    let pattern = format!("{}-%", key.1);
    let sum: i64 = db
        .db()
        .read(|c| {
            c.query_row(
                "SELECT coalesce(sum(quantity), 0) FROM usage_daily WHERE metric = ?1 AND day LIKE ?2",
                rusqlite::params![key.2.as_str(), pattern],
                |r| r.get(0),
            )
        })
        .map_err(|e: DbError| MeterError::Storage(e.to_string()))?;
    lock()
        .committed
        .insert(key.clone(), u64::try_from(sum).unwrap_or(0));
    Ok(())
}

/// Commits one tenant's events in one transaction, then updates the totals and answers the senders.
///
/// The transaction does not wait for the disk; before anyone is answered, every count it touched is
/// either within its durable bound or the log is flushed (the rule in [`allowance`]).
fn commit_tenant(totals: &Mutex<Totals>, allowances: &mut Allowances, events: Vec<Event>) {
    let Some(tenant) = events.first().map(|e| e.tenant.clone()) else {
        return;
    };
    // One upsert per (day, principal, metric) of the batch, not per event.
    let mut sums: HashMap<(&str, &str, Metric), u64> = HashMap::new();
    for e in events.iter().filter(|e| e.quantity > 0) {
        let sum = sums
            .entry((e.day.as_str(), e.principal.as_str(), e.metric))
            .or_insert(0);
        *sum = sum.saturating_add(e.quantity);
    }
    let mut raised = Vec::new();
    let committed = tenant.db().write_unsynced(|tx| {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO usage_daily (day, principal, metric, quantity) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (day, principal, metric) DO UPDATE SET quantity = quantity + excluded.quantity
             RETURNING quantity",
        )?;
        let mut flush = false;
        for (&(day, principal, metric), &quantity) in &sums {
            let total: i64 = stmt.query_row(
                rusqlite::params![
                    day,
                    principal,
                    metric.as_str(),
                    i64::try_from(quantity).unwrap_or(i64::MAX)
                ],
                |r| r.get(0),
            )?;
            let total = u64::try_from(total).unwrap_or(0);
            match allowances.cover(&tenant, day, principal, metric, total, quantity) {
                Cover::Covered => {}
                Cover::Flush => flush = true,
                Cover::Raise { through, chunk } => {
                    allowance::write_bound(tx, day, principal, metric, through)?;
                    raised.push((
                        day.to_string(),
                        principal.to_string(),
                        metric,
                        through,
                        chunk,
                    ));
                    flush = true;
                }
            }
        }
        Ok::<_, DbError>(flush)
    });
    // Committed counts are in the database (and in the totals) even if the flush then fails; the
    // senders are answered with the failure, so nothing not on the disk is acknowledged.
    let in_database = committed.is_ok();
    let result = committed
        .and_then(|flush| {
            if flush {
                tenant.db().sync_wal()?;
            }
            Ok(())
        })
        .map_err(|e| MeterError::Storage(e.to_string()));
    if result.is_ok() {
        allowances.raised(&tenant, raised);
    }
    {
        let mut t = totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for e in &events {
            let key = (
                e.tenant.id().as_str().to_string(),
                e.month.clone(),
                e.metric,
            );
            t.unreserve(&key, e.settles);
            if in_database {
                if let Some(committed) = t.committed.get_mut(&key) {
                    *committed = committed.saturating_add(e.quantity);
                }
            }
        }
    }
    if let Err(e) = &result {
        tracing::error!(tenant = %tenant.id(), error = %e, events = events.len(), "usage batch not committed");
    }
    for e in events {
        let _ = e.ack.send(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_reset_at_the_first_of_the_next_month_utc() {
        let at = time::macros::datetime!(2026-12-31 23:59:30 UTC);
        assert_eq!(seconds_until_next_month(at), 30);
        assert_eq!(
            day_and_month(at),
            ("2026-12-31".to_string(), "2026-12".to_string())
        );
        let at = time::macros::datetime!(2026-02-01 00:00:00 UTC);
        assert_eq!(seconds_until_next_month(at), 28 * 86_400);
    }
}
