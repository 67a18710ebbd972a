//! Usage accounting over HTTP: rate limits with their headers, monthly quotas at the boundary and
//! across a month's end, the usage series and overview, and no acknowledged request lost to `kill -9`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

fn header(reply: &Reply, name: &str) -> String {
    reply.header(name).unwrap_or_default()
}

fn api_requests_this_month(server: &Server, tenant: &str) -> u64 {
    let quotas = server
        .get(&format!("/api/v1/tenants/{tenant}/quotas"))
        .json();
    quotas["quotas"]
        .as_array()
        .expect("quotas")
        .iter()
        .find(|q| q["metric"] == "api_requests")
        .and_then(|q| q["used_this_month"].as_u64())
        .expect("api_requests")
}

#[test]
fn a_business_licence_brings_its_catalogue_limits_and_300_requests_a_minute() {
    let server = Server::start_with(Options {
        enterprise_license: false,
        ..Options::default()
    });
    let here = server.installation_id();
    let licence = issue_license(&["--installation-id", &here, "--edition", "business"]);
    let installed = server.install_license(&licence);
    assert_eq!(installed.status, 200, "{}", installed.body);
    let status = server.get("/api/v1/license").json();
    assert_eq!(status["license"]["edition"], "business", "{status}");
    assert_eq!(status["edition"], "Business", "{status}");
    assert_eq!(status["limits"]["tenants"], 25, "{status}");
    assert_eq!(status["limits"]["api_requests"], 1_000_000, "{status}");
    assert!(
        status["features"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("ldap"))),
        "{status}"
    );
    server.create_tenant("acme");
    let (_, key) = server.create_key("acme", &["read"]);
    let reply = server.call_with_key("GET", "/api/v1/tenants/acme", None, &key);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(header(&reply, "ratelimit-limit"), "300");
}

#[test]
fn rate_limit_admits_the_plan_rate_then_refuses_with_standard_headers() {
    // The community plan: 10 requests a minute per key and per tenant.
    let server = Server::start_with(Options {
        enterprise_license: false,
        ..Options::default()
    });
    server.create_tenant("acme");
    let (_, key) = server.create_key("acme", &["read"]);
    for i in 0..10u32 {
        let reply = server.call_with_key("GET", "/api/v1/tenants/acme", None, &key);
        assert_eq!(reply.status, 200, "request {i}: {}", reply.body);
        assert_eq!(header(&reply, "ratelimit-limit"), "10");
        assert_eq!(header(&reply, "ratelimit-remaining"), (9 - i).to_string());
        let reset: u64 = header(&reply, "ratelimit-reset").parse().expect("reset");
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    let refused = server.call_with_key("GET", "/api/v1/tenants/acme", None, &key);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.error_code(), "rate_limited");
    let retry: u64 = header(&refused, "retry-after")
        .parse()
        .expect("retry-after");
    assert!((1..=6).contains(&retry), "one request every 6 s: {retry}");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    // A tenant admin raises this key's limit: the tenant's own bucket (10) still holds...
    let keys = server.get("/api/v1/tenants/acme/api-keys").json();
    let id = keys["keys"][0]["id"].as_str().expect("key id").to_string();
    let raised = server.put_json(
        &format!("/api/v1/tenants/acme/api-keys/{id}/rate-limit"),
        &json!({"per_minute": 600}),
    );
    assert_eq!(raised.status, 200, "{}", raised.body);
    assert_eq!(raised.json()["rate_limit_per_minute"], 600);
    let still = server.call_with_key("GET", "/api/v1/tenants/acme", None, &key);
    assert_eq!(still.status, 429);
    assert_eq!(
        header(&still, "ratelimit-limit"),
        "10",
        "the tenant bucket refuses"
    );
    // ...until the tenant's limit is raised too. Out-of-range settings are refused.
    for bad in [json!({"per_minute": 0}), json!({"per_minute": 20_000_000})] {
        let reply = server.put_json("/api/v1/tenants/acme/rate-limit", &bad);
        assert_eq!(reply.status, 400, "{bad}");
    }
    let tenant_raised = server.put_json(
        "/api/v1/tenants/acme/rate-limit",
        &json!({"per_minute": 600}),
    );
    assert_eq!(tenant_raised.status, 200, "{}", tenant_raised.body);
    let admitted = server.call_with_key("GET", "/api/v1/tenants/acme", None, &key);
    assert_eq!(admitted.status, 200, "{}", admitted.body);
    assert_eq!(header(&admitted, "ratelimit-limit"), "600");

    // People in the browser are not rate limited.
    for _ in 0..15 {
        assert_eq!(server.get("/api/v1/tenants/acme").status, 200);
    }
    // Only the eleven admitted requests were counted.
    assert_eq!(api_requests_this_month(&server, "acme"), 11);
}

#[test]
fn quota_refuses_one_over_the_limit_alerts_and_resets_with_the_month() {
    let server = Server::start();
    server.create_tenant("acme");
    let (key_id, key) = server.create_key("acme", &["read"]);

    // Bad settings are refused at the boundary.
    for (body, what) in [
        (json!({"api_requests": -1}), "negative"),
        (json!({"api_requests": 10_000_000_000_000_000u64}), "absurd"),
        (json!({"bogus": 5}), "unknown metric"),
    ] {
        let reply = server.put_json("/api/v1/tenants/acme/quotas", &body);
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
    }
    let set = server.put_json("/api/v1/tenants/acme/quotas", &json!({"api_requests": 5}));
    assert_eq!(set.status, 200, "{}", set.body);

    // A failed request is not counted.
    let missing = server.call_with_key("GET", "/api/v1/tenants/acme/nothing-here", None, &key);
    assert_eq!(missing.status, 404);
    for i in 0..5 {
        let reply = server.call_with_key("GET", "/api/v1/tenants/acme", None, &key);
        assert_eq!(reply.status, 200, "request {i}: {}", reply.body);
    }
    let over = server.call_with_key("GET", "/api/v1/tenants/acme", None, &key);
    assert_eq!(over.status, 429);
    assert_eq!(over.error_code(), "quota_exceeded");
    assert_eq!(
        over.json()["error"]["details"],
        json!({"metric": "api_requests", "limit": 5, "used": 5})
    );
    let retry: u64 = header(&over, "retry-after").parse().expect("retry-after");
    assert!(
        retry > 0 && retry <= 31 * 86_400,
        "until the month resets: {retry}"
    );
    assert!(!header(&over, "ratelimit-limit").is_empty());

    let quotas = server.get("/api/v1/tenants/acme/quotas").json();
    let api = quotas["quotas"]
        .as_array()
        .expect("quotas")
        .iter()
        .find(|q| q["metric"] == "api_requests")
        .cloned()
        .expect("api_requests");
    assert_eq!(api["used_this_month"], 5);
    assert_eq!(api["effective_limit"], 5);
    assert_eq!(api["alerts"], json!([80, 100]), "{quotas}");
    let alerts = server
        .get("/api/v1/tenants/acme/audit?action=usage.quota_alert")
        .json();
    assert_eq!(alerts["entries"].as_array().expect("entries").len(), 2);

    // The series: today's five, by key, also as CSV.
    let series = server
        .get("/api/v1/tenants/acme/usage?metric=api_requests&by_principal=true")
        .json();
    let points = series["points"].as_array().expect("points");
    assert_eq!(points.len(), 1, "{series}");
    assert_eq!(points[0]["quantity"], 5);
    assert_eq!(points[0]["principal"], format!("key:{key_id}"));
    let csv = server.get("/api/v1/tenants/acme/usage?format=csv");
    assert!(
        csv.body.starts_with("period,metric,principal,quantity\n"),
        "{}",
        csv.body
    );
    for bad in [
        "granularity=week",
        "metric=bogus",
        "from=2026-13-01",
        "from=2026-02-01&to=2026-01-01",
    ] {
        let reply = server.get(&format!("/api/v1/tenants/acme/usage?{bad}"));
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
    }
    let overview = server.get("/api/v1/usage").json();
    assert_eq!(overview["tenants"][0]["tenant_id"], "acme", "{overview}");
    assert_eq!(overview["tenants"][0]["totals"]["api_requests"], 5);

    // At the start of the next month (a shifted test clock) the quota is fresh; last month stays.
    let month_end: i64 = over
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("secs");
    let server = server.restart_with_clock_offset(month_end + 120);
    for _ in 0..2 {
        let reply = server.call_with_key("GET", "/api/v1/tenants/acme", None, &key);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(api_requests_this_month(&server, "acme"), 2);
    let months = server
        .get("/api/v1/tenants/acme/usage?granularity=month&metric=api_requests&from=2025-01-01")
        .json();
    let quantities: Vec<u64> = months["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p["quantity"].as_u64())
        .collect();
    assert_eq!(quantities, [5, 2], "{months}");
}

/// Four clients calling the metered `url` with `key` until `stop`, counting the 2xx they saw.
struct Load {
    acknowledged: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str, key: &str) -> Load {
        let acknowledged = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..4)
            .map(|_| {
                let (url, key, acknowledged, stop) = (
                    url.to_string(),
                    key.to_string(),
                    acknowledged.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(5)))
                        .build()
                        .into();
                    while !stop.load(Ordering::SeqCst) {
                        let reply = agent
                            .get(&url)
                            .header("authorization", &format!("Bearer {key}"))
                            .call();
                        match reply {
                            Ok(r) if r.status().is_success() => {
                                acknowledged.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(_) => {}
                            Err(_) => break, // the server is gone
                        }
                    }
                })
            })
            .collect();
        Load {
            acknowledged,
            stop,
            workers,
        }
    }

    fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Waits until `at_least` requests were acknowledged (10 s at most).
    fn wait_for(&self, at_least: u64) {
        let started = Instant::now();
        while self.acknowledged() < at_least && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the clients (each finishes the call it is in) and returns the 2xx count.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            let _ = w.join();
        }
        self.acknowledged.load(Ordering::SeqCst)
    }
}

/// Starts a server killed with SIGKILL again on the same data directory.
fn restart_killed(server: Server) -> Server {
    let mut server = server;
    let _ = wait_timeout(&mut server.child, Duration::from_secs(10));
    let cwd = std::mem::replace(&mut server.cwd, tempfile::tempdir().expect("tempdir"));
    drop(server);
    let data_dir = cwd.path().join("data");
    Server::spawn(
        cwd,
        data_dir,
        Options {
            enterprise_license: false,
            ..Options::default()
        },
    )
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_request() {
    let server = Server::start();
    server.create_tenant("acme");
    let (_, key) = server.create_key("acme", &["read"]);
    let load = Load::start(&server.url("/api/v1/tenants/acme"), &key);
    load.wait_for(300);
    // Kill while the load is running: no flush, no graceful anything.
    signal(server.pid(), nix::sys::signal::Signal::SIGKILL);
    let acked = load.stop();
    assert!(acked >= 300, "load ran: {acked}");
    let restarted = restart_killed(server);
    let counted = api_requests_this_month(&restarted, "acme");
    // Every 2xx the clients saw is counted; at most the requests in flight at the kill (one per
    // worker) were counted without their answer arriving.
    println!(
        "acknowledged {acked}, counted {counted}, lost: {}",
        acked.saturating_sub(counted)
    );
    assert!(
        counted >= acked,
        "lost {} acknowledged requests",
        acked - counted
    );
    assert!(
        counted <= acked + 4,
        "counted {counted} for {acked} acknowledged"
    );
}

/// The tenant's usage database, read directly (the server keeps it in WAL mode; readers do not block it).
fn usage_db(server: &Server) -> rusqlite::Connection {
    rusqlite::Connection::open(server.data_dir.join("tenants/acme/tenant.db")).expect("tenant db")
}

/// Every `api_requests` count with its bound on the disk, if it has one.
fn counts_and_bounds(conn: &rusqlite::Connection) -> Vec<(i64, Option<i64>)> {
    let mut stmt = conn
        .prepare(
            "SELECT d.quantity, a.through FROM usage_daily d
             LEFT JOIN usage_allowance a USING (day, principal, metric)
             WHERE d.metric = 'api_requests'",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// Busy counts are acknowledged before the disk has them, but never beyond a bound the disk has:
/// under load every count is within its bound; a quiet second settles the bounds (exact counts, none
/// left); and when the machine, not only the process, went down (simulated: the bounds are marked as
/// written in an earlier boot), start-up raises each count to its bound, so none of the acknowledged
/// requests is lost, and says so in the tenant's audit log.
#[test]
fn usage_runs_ahead_of_the_disk_only_within_a_bound_the_disk_has() {
    let server = Server::start();
    server.create_tenant("acme");
    let (_, key) = server.create_key("acme", &["read"]);
    let url = server.url("/api/v1/tenants/acme");

    let load = Load::start(&url, &key);
    let mut bounded = 0;
    let started = Instant::now();
    while (load.acknowledged() < 400 || bounded == 0) && started.elapsed() < Duration::from_secs(15)
    {
        let conn = usage_db(&server);
        for (count, bound) in counts_and_bounds(&conn) {
            if let Some(bound) = bound {
                assert!(count <= bound, "count {count} beyond its bound {bound}");
                bounded += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let acked = load.stop();
    assert!(bounded > 0, "no bound seen under load ({acked} requests)");
    let settled = Instant::now();
    let remaining = |server: &Server| -> i64 {
        usage_db(server)
            .query_row("SELECT count(*) FROM usage_allowance", [], |r| r.get(0))
            .expect("bounds")
    };
    while remaining(&server) > 0 && settled.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(remaining(&server), 0, "bounds left after a quiet second");
    assert_eq!(api_requests_this_month(&server, "acme"), acked);

    // Load again, then the machine "loses power": kill -9, and the bounds left on the disk are marked
    // as written during an earlier boot of the operating system.
    let load = Load::start(&url, &key);
    let started = Instant::now();
    while (load.acknowledged() < 300 || remaining(&server) == 0)
        && started.elapsed() < Duration::from_secs(15)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(server.pid(), nix::sys::signal::Signal::SIGKILL);
    let acked = acked + load.stop();
    let mut server = server;
    let _ = wait_timeout(&mut server.child, Duration::from_secs(10));
    let (counted, bound) = {
        let conn = usage_db(&server);
        conn.execute("UPDATE usage_allowance SET boot_id = 'an-earlier-boot'", [])
            .expect("earlier boot");
        let rows = counts_and_bounds(&conn);
        assert_eq!(rows.len(), 1, "one key, one day: {rows:?}");
        (rows[0].0, rows[0].1.expect("a bound was left by the kill"))
    };
    assert!(bound >= counted, "bound {bound} below count {counted}");
    let restarted = restart_killed(server);
    let after = api_requests_this_month(&restarted, "acme");
    println!("acknowledged {acked}, counted at the kill {counted}, bound {bound}, counted after start-up {after}");
    assert_eq!(after, u64::try_from(bound).expect("bound"));
    assert!(
        after >= acked,
        "lost {} acknowledged requests",
        acked - after
    );
    assert!(
        after <= acked + 4 + 256,
        "over-counted by more than one chunk: {after} for {acked}"
    );
    assert_eq!(remaining(&restarted), 0);
    let audit = restarted
        .get("/api/v1/tenants/acme/audit?action=usage.recovered_after_restart")
        .json();
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(
        entries[0]["detail"]["counts"][0]["raised_by"].as_i64(),
        Some(bound - counted)
    );
}

#[test]
fn statements_price_the_month_exactly_close_when_it_ends_and_outlive_the_tenant() {
    let server = Server::start();
    server.create_tenant("acme");
    let (_, key) = server.create_key("acme", &["read"]);
    // Prices: bad ones are refused; 0.50 per 1,000 API requests... and a round number per request.
    for (body, what) in [
        (
            json!({"prices": {"api_requests": {"unit_size": 1000, "unit_price": "-1"}}}),
            "negative",
        ),
        (
            json!({"prices": {"api_requests": {"unit_size": 0, "unit_price": "1"}}}),
            "zero unit",
        ),
        (
            json!({"prices": {"api_requests": {"unit_size": 1, "unit_price": "0.1234567"}}}),
            "7 decimals",
        ),
        (
            json!({"prices": {"bogus": {"unit_size": 1, "unit_price": "1"}}}),
            "unknown metric",
        ),
        (json!({"currency": "€ uro"}), "currency"),
    ] {
        let reply = server.put_json("/api/v1/billing/prices", &body);
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
    }
    let set = server.put_json("/api/v1/billing/prices", &json!({"currency": "EUR", "prices": {"api_requests": {"unit_size": 3, "unit_price": "0.10"}}}));
    assert_eq!(set.status, 200, "{}", set.body);
    for _ in 0..7 {
        assert_eq!(
            server
                .call_with_key("GET", "/api/v1/tenants/acme", None, &key)
                .status,
            200
        );
    }
    let index = server.get("/api/v1/tenants/acme/statements").json();
    let current = &index["current"];
    assert_eq!(current["closed"], false);
    let api = current["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["metric"] == "api_requests")
        .cloned()
        .expect("line");
    assert_eq!(api["quantity"], 7);
    // 7 × 0.10 / 3 = 0.233333… → 233 333 micros (half up), and the total is the sum of the lines.
    assert_eq!(api["amount_micros"], 233_333);
    let sum: u64 = current["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["amount_micros"].as_u64())
        .sum();
    assert_eq!(current["total_micros"], sum);
    let month = current["month"].as_str().expect("month").to_string();
    let html = server.get(&format!(
        "/api/v1/tenants/acme/statements/{month}?format=html"
    ));
    assert!(
        html.body.contains("<td class=n>0.233333</td>"),
        "{}",
        html.body
    );
    assert!(html.body.contains("preview"));
    let csv = server.get(&format!(
        "/api/v1/tenants/acme/statements/{month}?format=csv"
    ));
    assert!(
        csv.body
            .contains(&format!("acme,{month},total,,,,0.233333,EUR")),
        "{}",
        csv.body
    );
    assert_eq!(
        server.get("/api/v1/tenants/acme/statements/2999-01").status,
        400,
        "a future month"
    );

    // Next month (test clock): the past month's statement is closed and final, even after a price change.
    let server = server.restart_with_clock_offset(32 * 86_400);
    let closed = server
        .get(&format!("/api/v1/tenants/acme/statements/{month}"))
        .json();
    assert_eq!(closed["closed"], true, "{closed}");
    assert_eq!(closed["total_micros"], 233_333);
    server.put_json(
        "/api/v1/billing/prices",
        &json!({"prices": {"api_requests": {"unit_size": 1, "unit_price": "100"}}}),
    );
    let again = server
        .get(&format!("/api/v1/tenants/acme/statements/{month}"))
        .json();
    assert_eq!(
        again["total_micros"], 233_333,
        "closed statements never change"
    );
    let log = server
        .get("/api/v1/tenants/acme/audit?action=usage.statement_close")
        .json();
    assert_eq!(
        log["entries"].as_array().expect("entries").len(),
        1,
        "{log}"
    );

    // A tenant deleted mid-month: purged after its grace period, its statements stay.
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/acme", None, &key)
            .status,
        200
    );
    let deleted = server.call(
        "DELETE",
        "/api/v1/admin/tenants/acme",
        None,
        server.admin.as_ref(),
    );
    assert!(deleted.status < 300, "{}", deleted.body);
    let system = rusqlite::Connection::open(server.data_dir.join("system.db")).expect("open");
    system
        .execute("UPDATE tenants SET delete_after = 0 WHERE id = 'acme'", [])
        .expect("grace over");
    drop(system);
    let data_arg = server.data_dir.to_str().expect("utf8").to_string();
    let (code, out, err) = run(
        server.cwd.path(),
        &["--data-dir", &data_arg, "tenant", "purge"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let system = rusqlite::Connection::open(server.data_dir.join("system.db")).expect("open");
    let months: Vec<String> = system
        .prepare("SELECT month FROM usage_statements WHERE tenant_id = 'acme' ORDER BY month")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        months.len(),
        2,
        "last month and the partial month of the deletion: {months:?}"
    );
}

#[test]
fn quota_alerts_reach_the_webhook_and_internal_targets_are_refused() {
    use std::io::{Read, Write};
    // A loopback receiver: refused by default (SSRF guard)...
    let server = Server::start();
    server.create_tenant("acme");
    let refused = server.put_json(
        "/api/v1/tenants/acme/alert-webhook",
        &json!({"url": "http://127.0.0.1:9/hook"}),
    );
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("loopback"), "{}", refused.body);
    for bad in [
        "ftp://example.com/",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let reply = server.put_json("/api/v1/tenants/acme/alert-webhook", &json!({ "url": bad }));
        assert_eq!(reply.status, 400, "{bad}");
    }
    drop(server);

    // ...allowed when the administrator says so; the alert arrives as JSON.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut buf = vec![0u8; 16 * 1024];
            let mut got = Vec::new();
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let _ = tx.send(body.to_string());
                        break;
                    }
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let mut options = Options::default();
    options
        .env
        .push(("ENCLAVE_WEBHOOK_ALLOW_PRIVATE".into(), "true".into()));
    let server = Server::start_with(options);
    server.create_tenant("acme");
    let (_, key) = server.create_key("acme", &["read"]);
    let set = server.put_json(
        "/api/v1/tenants/acme/alert-webhook",
        &json!({ "url": format!("http://127.0.0.1:{port}/hook?token=secret") }),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    server.put_json("/api/v1/tenants/acme/quotas", &json!({"api_requests": 5}));
    for _ in 0..4 {
        assert_eq!(
            server
                .call_with_key("GET", "/api/v1/tenants/acme", None, &key)
                .status,
            200
        );
    }
    let body = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the 80 % alert was posted");
    let alert: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(alert["event"], "quota_alert");
    assert_eq!(alert["tenant"], "acme");
    assert_eq!(alert["metric"], "api_requests");
    assert_eq!(alert["percent"], 80);
    assert_eq!(alert["used"], 4);
    assert!(
        !server.stderr().contains("token=secret"),
        "the URL's token never reaches the log"
    );
}
