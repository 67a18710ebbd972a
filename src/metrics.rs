//! Prometheus metrics, rendered as text at `/metrics`.
//!
//! Counters live in one process-wide registry ([`global`]) so that deep layers (the database) can count
//! errors without carrying state around. Route labels are route *templates* (`/api/v1/tenants/{tenant}`),
//! never raw paths, so label cardinality stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of the request latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The registry of counters and histograms.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    db_errors: AtomicU64,
}

/// Gauges read from the live server when `/metrics` is rendered.
pub struct Gauges {
    pub tenant_pools_open: usize,
    pub tenant_pools_high_water: usize,
    pub tenant_pools_cap: usize,
    pub tenants: u64,
    pub uptime: Duration,
    pub ready: bool,
    pub backup: BackupGauges,
}

/// The state of backups, for alerting rules (e.g. no successful backup for 26 hours).
#[derive(Debug, Default, Clone)]
pub struct BackupGauges {
    /// When the newest finished backup in the backup directory was made (Unix seconds).
    pub newest_unix: Option<i64>,
    pub count: usize,
    /// Whether the last run since start succeeded; `None` before the first.
    pub last_run_ok: Option<bool>,
    pub last_failure_unix: Option<i64>,
    /// Whether the last restore drill since start succeeded, and when it ran.
    pub last_drill_ok: Option<bool>,
    pub last_drill_unix: Option<i64>,
}

/// The process-wide registry.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// Records one finished request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        {
            let mut requests = self
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *requests
                .entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        let mut latency = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = latency.entry(route.to_string()).or_default();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts one database error (busy, full, corrupt, pool timeout, ...).
    pub fn db_error(&self) {
        self.db_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders everything in the Prometheus text exposition format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(out, "# HELP enclave_http_requests_total HTTP requests by method, route template and status.");
        let _ = writeln!(out, "# TYPE enclave_http_requests_total counter");
        {
            let requests = self
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for ((method, route, status), n) in requests.iter() {
                let _ = writeln!(
                    out,
                    "enclave_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP enclave_http_request_duration_seconds HTTP request latency by route template."
        );
        let _ = writeln!(
            out,
            "# TYPE enclave_http_request_duration_seconds histogram"
        );
        {
            let latency = self
                .latency
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (route, h) in latency.iter() {
                let route = escape(route);
                for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "enclave_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                        h.buckets[i]
                    );
                }
                let _ = writeln!(out, "enclave_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(
                    out,
                    "enclave_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "enclave_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        let scalar = |out: &mut String, name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        scalar(
            &mut out,
            "enclave_db_errors_total",
            "counter",
            "Database errors (busy, full, corrupt, pool timeouts).",
            self.db_errors.load(Ordering::Relaxed).to_string(),
        );
        scalar(
            &mut out,
            "enclave_tenant_pools_open",
            "gauge",
            "Tenant databases open now.",
            gauges.tenant_pools_open.to_string(),
        );
        scalar(
            &mut out,
            "enclave_tenant_pools_open_max",
            "gauge",
            "Most tenant databases open at once since start.",
            gauges.tenant_pools_high_water.to_string(),
        );
        scalar(
            &mut out,
            "enclave_tenant_pools_limit",
            "gauge",
            "Configured cap on open tenant databases.",
            gauges.tenant_pools_cap.to_string(),
        );
        scalar(
            &mut out,
            "enclave_tenants",
            "gauge",
            "Tenants in the system database.",
            gauges.tenants.to_string(),
        );
        scalar(
            &mut out,
            "enclave_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            gauges.uptime.as_secs().to_string(),
        );
        scalar(
            &mut out,
            "enclave_ready",
            "gauge",
            "1 when the server is ready to serve, 0 while starting or stopping.",
            u8::from(gauges.ready).to_string(),
        );
        let backup = &gauges.backup;
        let optional = [
            (
                "enclave_backup_newest_timestamp_seconds",
                "When the newest finished backup was made (Unix time).",
                backup.newest_unix,
            ),
            (
                "enclave_backup_last_run_success",
                "1 if the last backup run since start succeeded, 0 if it failed.",
                backup.last_run_ok.map(i64::from),
            ),
            (
                "enclave_backup_last_failure_timestamp_seconds",
                "When the last failed backup run since start ended (Unix time).",
                backup.last_failure_unix,
            ),
            (
                "enclave_backup_drill_last_success",
                "1 if the last restore drill since start verified the newest backup, 0 if not.",
                backup.last_drill_ok.map(i64::from),
            ),
            (
                "enclave_backup_drill_last_timestamp_seconds",
                "When the last restore drill since start ended (Unix time).",
                backup.last_drill_unix,
            ),
        ];
        for (name, help, value) in optional {
            if let Some(value) = value {
                scalar(&mut out, name, "gauge", help, value.to_string());
            }
        }
        scalar(
            &mut out,
            "enclave_backups",
            "gauge",
            "Finished backups in the backup directory.",
            backup.count.to_string(),
        );
        let _ = writeln!(out, "# HELP enclave_build_info Build information.");
        let _ = writeln!(out, "# TYPE enclave_build_info gauge");
        let _ = writeln!(
            out,
            "enclave_build_info{{version=\"{}\"}} 1",
            crate::VERSION
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_request("GET", "/a", 200, Duration::from_millis(3));
        m.observe_request("GET", "/a", 200, Duration::from_millis(300));
        let text = m.render(&Gauges {
            tenant_pools_open: 1,
            tenant_pools_high_water: 2,
            tenant_pools_cap: 3,
            tenants: 4,
            uptime: Duration::from_secs(5),
            ready: true,
            backup: BackupGauges::default(),
        });
        assert!(text
            .contains("enclave_http_requests_total{method=\"GET\",route=\"/a\",status=\"200\"} 2"));
        assert!(text
            .contains("enclave_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.005\"} 1"));
        assert!(text
            .contains("enclave_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.5\"} 2"));
        assert!(text.contains("enclave_tenant_pools_open_max 2"));
    }
}
