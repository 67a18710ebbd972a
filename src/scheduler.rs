//! Recurring jobs on cron expressions, run by tokio-cron-scheduler: each directory's synchronisation
//! and the scheduled backups. A job is known by its owner's key (`directory:<id>`, `backup`):
//! [`Scheduler::schedule`] replaces the key's job when its expression changes and
//! [`Scheduler::unschedule`] removes it, so a schedule saved through the API applies at once, without
//! a restart. Expressions have six fields (`sec min hour day-of-month month day-of-week`, UTC) and are
//! checked with [`parse`] before they are saved, with the same parser the scheduler uses.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{Mutex, OnceCell};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// A parsed cron expression.
pub type Schedule = croner::Cron;

/// Parses a six-field cron expression the way the scheduler does (seconds required; when both
/// day-of-month and day-of-week are restricted, both must match).
pub fn parse(expression: &str) -> Result<Schedule, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expression.trim())
        .map_err(|e| format!("{e}"))
}

/// When a schedule fires next after now (UTC, RFC 3339), if ever.
pub fn next_run(schedule: &Schedule) -> Option<String> {
    schedule
        .find_next_occurrence(&chrono::Utc::now(), false)
        .ok()
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

type Task = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The running scheduler and the job of each key.
#[derive(Default)]
pub struct Scheduler {
    inner: OnceCell<JobScheduler>,
    /// key → (expression, job id)
    jobs: Mutex<HashMap<String, (String, uuid::Uuid)>>,
}

impl Scheduler {
    /// Starts the scheduler's loop on the current runtime (the server's); jobs may be added from any
    /// worker afterwards.
    pub async fn start(&self) -> Result<(), JobSchedulerError> {
        let scheduler = self.inner.get_or_try_init(JobScheduler::new).await?;
        scheduler.start().await
    }

    /// Runs `task` on `expression` under `key`, replacing the key's previous job; an empty
    /// expression removes it. Nothing changes when the key already runs on this expression.
    pub async fn schedule<F, Fut>(&self, key: &str, expression: &str, task: F) -> Result<(), String>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let expression = expression.trim();
        let mut jobs = self.jobs.lock().await;
        if jobs.get(key).is_some_and(|(e, _)| e == expression) {
            return Ok(());
        }
        if !expression.is_empty() {
            parse(expression)?;
        }
        let scheduler = self.inner.get().ok_or("the scheduler is not started")?;
        if let Some((_, id)) = jobs.remove(key) {
            scheduler.remove(&id).await.map_err(|e| e.to_string())?;
        }
        if expression.is_empty() {
            return Ok(());
        }
        let task: Task = Arc::new(move || Box::pin(task()));
        let job = Job::new_async(expression, move |_id, _scheduler| task())
            .map_err(|e| format!("{expression}: {e}"))?;
        let id = scheduler.add(job).await.map_err(|e| e.to_string())?;
        jobs.insert(key.to_string(), (expression.to_string(), id));
        Ok(())
    }

    /// Removes the key's job, if any.
    pub async fn unschedule(&self, key: &str) -> Result<(), String> {
        self.schedule(key, "", || async {}).await
    }

    /// The keys with a job and their expressions (for diagnostics and tests).
    pub async fn scheduled(&self) -> Vec<(String, String)> {
        let mut out: Vec<_> = self
            .jobs
            .lock()
            .await
            .iter()
            .map(|(k, (e, _))| (k.clone(), e.clone()))
            .collect();
        out.sort();
        out
    }

    /// Stops firing jobs (at server shutdown).
    pub async fn shutdown(&self) {
        if let Some(scheduler) = self.inner.get() {
            let mut scheduler = scheduler.clone();
            if let Err(e) = scheduler.shutdown().await {
                tracing::warn!(error = %e, "stopping the job scheduler failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn six_fields_are_required() {
        assert!(parse("0 0 * * * *").is_ok());
        assert!(parse("*/5 * * * * *").is_ok());
        assert!(parse("0 * * * *").is_err(), "five fields");
        assert!(parse("every hour").is_err());
        let next = next_run(&parse("0 0 3 * * *").expect("parse")).expect("next");
        assert!(next.ends_with("T03:00:00Z"), "{next}");
    }

    #[tokio::test]
    async fn jobs_fire_and_are_replaced_and_removed() {
        let scheduler = Scheduler::default();
        scheduler.start().await.expect("start");
        let fired = Arc::new(AtomicUsize::new(0));
        let counter = fired.clone();
        scheduler
            .schedule("k", "* * * * * *", move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            })
            .await
            .expect("schedule");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while fired.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            fired.load(Ordering::SeqCst) > 0,
            "an every-second job fired"
        );
        assert_eq!(
            scheduler.scheduled().await,
            vec![("k".to_string(), "* * * * * *".to_string())]
        );
        // An invalid expression is refused and leaves the running job alone.
        assert!(scheduler
            .schedule("k", "not cron", || async {})
            .await
            .is_err());
        assert_eq!(scheduler.scheduled().await.len(), 1);
        scheduler.unschedule("k").await.expect("unschedule");
        assert!(scheduler.scheduled().await.is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let after = fired.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(
            fired.load(Ordering::SeqCst),
            after,
            "a removed job no longer fires"
        );
        scheduler.shutdown().await;
    }
}
