//! The audit log: who did what, to what, from where, with what result — hash-chained so that an edit,
//! a deletion or a truncation is detected.
//!
//! - System events (sign-ins, accounts, tenants) go to `system.db`; tenant events (settings, members,
//!   API keys) to that tenant's `tenant.db`. Both use the same table and the same chain.
//! - Entry `n` stores `prev_hash` (the hash of entry `n-1`, or 64 zeros for the first) and `hash` =
//!   SHA-256 over the previous hash and every field, length-prefixed so no two entries serialise alike.
//!   `audit_head` holds the newest `(seq, hash)`; it is written in the same transaction as the entry.
//! - [`append`] runs inside the caller's write transaction, so an audited change and its entry commit
//!   together or not at all. [`verify`] recomputes the chain and names the first broken entry.
//!
//! Tamper-evident, not tamper-proof: someone who can write the database can rebuild the whole chain;
//! exporting the head hash elsewhere (e.g. in backups) makes that visible too.

use ring::digest;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::identity::principal::{Caller, ClientInfo};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who acted, and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `user`, `key`, `system` or `anonymous`.
    pub kind: &'static str,
    /// Username, `key:<id>`, `cli`, `scheduler`, or the name a failed sign-in tried.
    pub name: String,
    pub ip: String,
    pub user_agent: String,
    pub request_id: String,
}

impl Actor {
    /// The actor of an HTTP request.
    pub fn of(caller: &Caller, client: &ClientInfo) -> Actor {
        let (kind, name) = match caller {
            Caller::User(u) => ("user", u.user().username.clone()),
            Caller::Key(k) => ("key", format!("key:{}", k.id)),
        };
        Actor {
            kind,
            name,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            request_id: crate::error::current_request_id().unwrap_or_default(),
        }
    }

    /// A person identified by username (sign-in, before a session exists).
    pub fn person(username: &str, client: &ClientInfo, known: bool) -> Actor {
        Actor {
            kind: if known { "user" } else { "anonymous" },
            name: username.chars().take(64).collect(),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            request_id: crate::error::current_request_id().unwrap_or_default(),
        }
    }

    /// The server's own scheduled jobs.
    pub fn scheduler() -> Actor {
        Actor::server_itself("scheduler")
    }

    /// The server itself while it starts, before it serves anyone.
    pub fn startup() -> Actor {
        Actor::server_itself("startup")
    }

    /// The command line on the server itself.
    pub fn cli() -> Actor {
        Actor::server_itself("cli")
    }

    /// A `system` actor acting locally, named for what part of the server acted.
    fn server_itself(name: &str) -> Actor {
        Actor {
            kind: "system",
            name: name.into(),
            ip: "local".into(),
            user_agent: String::new(),
            request_id: String::new(),
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: &'a str,
    pub target: &'a str,
    pub tenant_id: &'a str,
    pub success: bool,
    /// Extra facts as JSON (never secrets).
    pub detail: serde_json::Value,
}

/// A stored entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    pub actor_type: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub tenant_id: String,
    pub ip: String,
    pub user_agent: String,
    pub request_id: String,
    /// `success` or `failure`.
    pub result: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub hash: String,
}

fn entry_hash(prev: &str, seq: i64, fields: &[&str]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"enclave-audit-v1\n");
    ctx.update(prev.as_bytes());
    ctx.update(&seq.to_be_bytes());
    for field in fields {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    hex::encode(ctx.finish())
}

/// Appends an event inside the caller's transaction (system or tenant database).
pub fn append(conn: &Connection, actor: &Actor, event: &Event<'_>) -> rusqlite::Result<i64> {
    let head: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (prev_seq, prev_hash) = head.unwrap_or((0, GENESIS.to_string()));
    let seq = prev_seq + 1;
    let at = crate::time_util::now_rfc3339();
    let result = if event.success { "success" } else { "failure" };
    let detail = event.detail.to_string();
    let fields = [
        at.as_str(),
        actor.kind,
        &actor.name,
        event.action,
        event.target,
        event.tenant_id,
        &actor.ip,
        &actor.user_agent,
        &actor.request_id,
        result,
        &detail,
    ];
    let hash = entry_hash(&prev_hash, seq, &fields);
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor_type, actor, action, target, tenant_id, ip, user_agent,
                                request_id, result, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        rusqlite::params![
            seq,
            at,
            actor.kind,
            actor.name,
            event.action,
            event.target,
            event.tenant_id,
            actor.ip,
            actor.user_agent,
            actor.request_id,
            result,
            detail,
            prev_hash,
            hash
        ],
    )?;
    conn.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        rusqlite::params![seq, hash],
    )?;
    Ok(seq)
}

/// Records an event in its own transaction, for events with no other write to join (a failed sign-in,
/// a sign-out).
pub fn record(
    db: &crate::db::Database,
    actor: &Actor,
    event: &Event<'_>,
) -> Result<(), crate::db::DbError> {
    db.write(|tx| {
        append(tx, actor, event)
            .map(drop)
            .map_err(crate::db::DbError::from)
    })
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry checks out; the count of entries.
    Intact(i64),
    /// The first entry that does not: its sequence number and why.
    Broken { seq: i64, reason: String },
}

/// Recomputes the chain of one database.
pub fn verify(conn: &Connection) -> rusqlite::Result<Verdict> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor_type, actor, action, target, tenant_id, ip, user_agent, request_id, result,
                detail, prev_hash, hash FROM audit_log ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let anchor = read_anchor(conn)?;
    if let Some((anchor_seq, anchor_hash)) = &anchor {
        if let Some(reason) = check_anchor_against_prune_entry(conn, *anchor_seq, anchor_hash)? {
            return Ok(Verdict::Broken {
                seq: anchor_seq + 1,
                reason,
            });
        }
    }
    let (mut expected_seq, mut expected_prev) = match anchor {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1i64, GENESIS.to_string()),
    };
    let first_seq = expected_seq;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let text: Vec<String> = (1..=13)
            .map(|i| r.get::<_, String>(i))
            .collect::<Result<_, _>>()?;
        let stored_hash: String = r.get(13)?;
        if seq != expected_seq {
            return Ok(Verdict::Broken {
                seq: expected_seq,
                reason: format!("entry {expected_seq} is missing (next is {seq})"),
            });
        }
        if text[11] != expected_prev {
            return Ok(Verdict::Broken {
                seq,
                reason: "its prev_hash does not match the previous entry".into(),
            });
        }
        let fields: Vec<&str> = text[..11].iter().map(String::as_str).collect();
        if entry_hash(&expected_prev, seq, &fields) != stored_hash {
            return Ok(Verdict::Broken {
                seq,
                reason: "its content does not match its hash (edited)".into(),
            });
        }
        expected_prev = stored_hash;
        expected_seq += 1;
    }
    let last = expected_seq - 1;
    let count = expected_seq - first_seq;
    let head: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match head {
        None if last == 0 => Ok(Verdict::Intact(0)),
        Some((seq, hash)) if seq == last && hash == expected_prev => Ok(Verdict::Intact(count)),
        Some((seq, _)) => Ok(Verdict::Broken {
            seq: last + 1,
            reason: format!("the log ends at entry {last} but its head says {seq} (entries removed from the end)"),
        }),
        None => Ok(Verdict::Broken {
            seq: 1,
            reason: "entries exist but the chain head is missing".into(),
        }),
    }
}

/// The pruning anchor: the seq and hash of the last entry removed by retention, if any were.
fn read_anchor(conn: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    conn.query_row("SELECT seq, hash FROM audit_anchor WHERE id = 1", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

/// The newest `audit.prune` entry must name the anchor; otherwise the anchor was moved by hand.
fn check_anchor_against_prune_entry(
    conn: &Connection,
    anchor_seq: i64,
    anchor_hash: &str,
) -> rusqlite::Result<Option<String>> {
    let detail: Option<String> = conn
        .query_row(
            "SELECT detail FROM audit_log WHERE action = ?1 ORDER BY seq DESC LIMIT 1",
            [PRUNE_ACTION],
            |r| r.get(0),
        )
        .optional()?;
    let Some(detail) = detail else {
        return Ok(Some(format!(
            "entries up to {anchor_seq} were removed but no `{PRUNE_ACTION}` entry records it"
        )));
    };
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
    let named_seq = detail
        .get("through_seq")
        .and_then(serde_json::Value::as_i64);
    let named_hash = detail
        .get("through_hash")
        .and_then(serde_json::Value::as_str);
    if named_seq == Some(anchor_seq) && named_hash == Some(anchor_hash) {
        Ok(None)
    } else {
        Ok(Some(format!(
            "the pruning anchor (entry {anchor_seq}) does not match the last `{PRUNE_ACTION}` entry (entries removed by hand)"
        )))
    }
}

/// The action recorded when retention removes old entries.
pub const PRUNE_ACTION: &str = "audit.prune";

/// Removes entries recorded before `cutoff` (RFC 3339), keeping the chain verifiable: the anchor takes
/// the seq and hash of the last removed entry, and an `audit.prune` entry naming them is appended in
/// the same transaction. Returns how many entries were removed.
pub fn prune_before(
    conn: &Connection,
    cutoff: &str,
    actor: &Actor,
    tenant_id: &str,
) -> rusqlite::Result<u64> {
    let last_old: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM audit_log WHERE at < ?1 ORDER BY seq DESC LIMIT 1",
            [cutoff],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((through_seq, through_hash)) = last_old else {
        return Ok(0);
    };
    let removed = conn.execute("DELETE FROM audit_log WHERE seq <= ?1", [through_seq])? as u64;
    conn.execute(
        "INSERT INTO audit_anchor (id, seq, hash, pruned_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, pruned_at = excluded.pruned_at",
        rusqlite::params![through_seq, through_hash, crate::time_util::now_rfc3339()],
    )?;
    append(
        conn,
        actor,
        &Event {
            action: PRUNE_ACTION,
            target: "audit_log",
            tenant_id,
            success: true,
            detail: serde_json::json!({
                "through_seq": through_seq,
                "through_hash": through_hash,
                "removed": removed,
                "cutoff": cutoff,
            }),
        },
    )?;
    Ok(removed)
}

/// Applies `audit.retention_days` to the system log and every tenant's log; returns entries removed.
/// Blocking. A tenant that cannot be opened is skipped with a warning and tried again next time.
pub fn apply_retention(
    system: &crate::db::system::SystemDb,
    tenants: &crate::tenancy::TenantRegistry,
    retention_days: u32,
) -> Result<u64, crate::db::DbError> {
    if retention_days == 0 {
        return Ok(0);
    }
    let cutoff = crate::time_util::format_rfc3339(
        crate::time_util::now_utc() - time::Duration::days(i64::from(retention_days)),
    );
    prune_everywhere(system, tenants, &cutoff)
}

/// Removes entries recorded before `cutoff` from the system log and every tenant's log (blocking).
pub fn prune_everywhere(
    system: &crate::db::system::SystemDb,
    tenants: &crate::tenancy::TenantRegistry,
    cutoff: &str,
) -> Result<u64, crate::db::DbError> {
    let actor = Actor::cli();
    let mut removed = system
        .db
        .write(|tx| prune_before(tx, cutoff, &actor, "").map_err(crate::db::DbError::from))?;
    for record in system.list_tenants()? {
        let Ok(id) = crate::tenancy::TenantId::parse(&record.id) else {
            continue;
        };
        match tenants.get(&id) {
            Ok((_, tenant)) => {
                removed += tenant.db().write(|tx| {
                    prune_before(tx, cutoff, &actor, id.as_str()).map_err(crate::db::DbError::from)
                })?;
            }
            Err(e) => {
                tracing::warn!(tenant = %record.id, error = %e, "audit retention skipped a tenant")
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, cutoff, "audit retention removed old entries");
    }
    Ok(removed)
}

/// Filters for [`query`].
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub text: Option<String>,
    /// Entries with `seq` below this (for paging backwards); newest first.
    pub before: Option<i64>,
    pub limit: u32,
}

/// Entries matching the filter, newest first.
pub fn query(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<Entry>> {
    let mut sql = String::from(
        "SELECT seq, at, actor_type, actor, action, target, tenant_id, ip, user_agent, request_id, result,
                detail, hash FROM audit_log WHERE 1 = 1",
    );
    let mut params: Vec<rusqlite::types::Value> = Vec::new();
    let mut add = |clause: &str, value: rusqlite::types::Value| {
        params.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", params.len())));
    };
    if let Some(v) = &filter.actor {
        add(" AND actor = ?", v.clone().into());
    }
    if let Some(v) = &filter.action {
        add(" AND action = ?", v.clone().into());
    }
    if let Some(v) = &filter.since {
        add(" AND at >= ?", v.clone().into());
    }
    if let Some(v) = &filter.until {
        add(" AND at < ?", v.clone().into());
    }
    if let Some(v) = &filter.text {
        let like = format!(
            "%{}%",
            v.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        params.push(like.into());
        let n = params.len();
        sql.push_str(&format!(
            " AND (actor LIKE ?{n} ESCAPE '\\' OR action LIKE ?{n} ESCAPE '\\' OR target LIKE ?{n} ESCAPE '\\' OR detail LIKE ?{n} ESCAPE '\\')"
        ));
    }
    if let Some(v) = filter.before {
        params.push(v.into());
        sql.push_str(&format!(" AND seq < ?{}", params.len()));
    }
    params.push(i64::from(filter.limit.clamp(1, 1000)).into());
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", params.len()));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
        let detail: String = r.get(11)?;
        Ok(Entry {
            seq: r.get(0)?,
            at: r.get(1)?,
            actor_type: r.get(2)?,
            actor: r.get(3)?,
            action: r.get(4)?,
            target: r.get(5)?,
            tenant_id: r.get(6)?,
            ip: r.get(7)?,
            user_agent: r.get(8)?,
            request_id: r.get(9)?,
            result: r.get(10)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
            hash: r.get(12)?,
        })
    })?;
    rows.collect()
}

/// Entries as CSV (RFC 4180 quoting), header first.
pub fn to_csv(entries: &[Entry]) -> String {
    fn field(text: &str) -> String {
        // Cells starting with = + - @ are prefixed with ' so spreadsheets do not run them as formulas.
        let text = if text.starts_with(['=', '+', '-', '@']) {
            format!("'{text}")
        } else {
            text.to_string()
        };
        format!("\"{}\"", text.replace('"', "\"\""))
    }
    let mut out = String::from("seq,at,actor_type,actor,action,target,tenant_id,ip,user_agent,request_id,result,detail,hash\n");
    for e in entries {
        let cells = [
            e.seq.to_string(),
            e.at.clone(),
            e.actor_type.clone(),
            e.actor.clone(),
            e.action.clone(),
            e.target.clone(),
            e.tenant_id.clone(),
            e.ip.clone(),
            e.user_agent.clone(),
            e.request_id.clone(),
            e.result.clone(),
            e.detail.to_string(),
            e.hash.clone(),
        ];
        out.push_str(&cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().expect("db");
        conn.execute_batch(include_str!("../migrations/system/0004_audit_log.sql"))
            .expect("schema");
        conn.execute_batch(include_str!("../migrations/system/0008_audit_anchor.sql"))
            .expect("anchor schema");
        conn
    }

    fn record(conn: &Connection, action: &str) {
        append(
            conn,
            &Actor::cli(),
            &Event {
                action,
                target: "t",
                tenant_id: "",
                success: true,
                detail: serde_json::json!({"n": action}),
            },
        )
        .expect("append");
    }

    #[test]
    fn chain_detects_edits_deletions_and_truncation() {
        let conn = db();
        assert_eq!(verify(&conn).expect("verify"), Verdict::Intact(0));
        for a in ["a", "b", "c", "d"] {
            record(&conn, a);
        }
        assert_eq!(verify(&conn).expect("verify"), Verdict::Intact(4));

        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", [])
            .expect("edit");
        assert!(matches!(
            verify(&conn).expect("v"),
            Verdict::Broken { seq: 2, .. }
        ));
        conn.execute("UPDATE audit_log SET actor = 'cli' WHERE seq = 2", [])
            .expect("undo");
        assert_eq!(verify(&conn).expect("verify"), Verdict::Intact(4));

        conn.execute("DELETE FROM audit_log WHERE seq = 3", [])
            .expect("delete");
        assert!(matches!(
            verify(&conn).expect("v"),
            Verdict::Broken { seq: 3, .. }
        ));
    }

    #[test]
    fn removing_the_newest_entries_is_detected() {
        let conn = db();
        for a in ["a", "b", "c"] {
            record(&conn, a);
        }
        conn.execute("DELETE FROM audit_log WHERE seq = 3", [])
            .expect("truncate");
        assert!(matches!(
            verify(&conn).expect("v"),
            Verdict::Broken { seq: 3, .. }
        ));
    }

    #[test]
    fn retention_prunes_old_entries_and_the_rest_still_verifies() {
        let conn = db();
        for a in ["a", "b", "c", "d"] {
            record(&conn, a);
        }
        // Age the first three entries.
        conn.execute(
            "UPDATE audit_log SET at = '2020-01-01T00:00:00Z' WHERE seq <= 3",
            [],
        )
        .expect("age");
        // Editing `at` broke those entries' hashes, so rebuild them as if recorded in 2020.
        let rows: Vec<(i64, Vec<String>)> = {
            let mut stmt = conn
                .prepare("SELECT seq, at, actor_type, actor, action, target, tenant_id, ip, user_agent, request_id, result, detail FROM audit_log ORDER BY seq")
                .expect("prepare");
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        (1..=11)
                            .map(|i| r.get(i))
                            .collect::<Result<Vec<String>, _>>()?,
                    ))
                })
                .expect("query");
            rows.collect::<Result<_, _>>().expect("rows")
        };
        let mut prev = GENESIS.to_string();
        for (seq, fields) in rows {
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            let hash = entry_hash(&prev, seq, &refs);
            conn.execute(
                "UPDATE audit_log SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
                rusqlite::params![prev, hash, seq],
            )
            .expect("rehash");
            conn.execute(
                "UPDATE audit_head SET hash = ?1, seq = ?2",
                rusqlite::params![hash, seq],
            )
            .expect("head");
            prev = hash;
        }
        assert_eq!(verify(&conn).expect("verify"), Verdict::Intact(4));

        let removed =
            prune_before(&conn, "2021-01-01T00:00:00Z", &Actor::cli(), "").expect("prune");
        assert_eq!(removed, 3);
        // Entry 4 and the prune entry (5) remain and verify from the anchor.
        assert_eq!(verify(&conn).expect("verify"), Verdict::Intact(2));
        assert_eq!(
            prune_before(&conn, "2021-01-01T00:00:00Z", &Actor::cli(), "").expect("again"),
            0
        );

        // Deleting the oldest remaining entry is still detected...
        conn.execute("DELETE FROM audit_log WHERE seq = 4", [])
            .expect("delete");
        assert!(matches!(
            verify(&conn).expect("v"),
            Verdict::Broken { seq: 4, .. }
        ));
    }

    #[test]
    fn moving_the_pruning_anchor_by_hand_is_detected() {
        let conn = db();
        for a in ["a", "b", "c"] {
            record(&conn, a);
        }
        let far_future = "2999-01-01T00:00:00Z";
        prune_before(&conn, far_future, &Actor::cli(), "").expect("prune");
        assert_eq!(verify(&conn).expect("verify"), Verdict::Intact(1));
        // Someone removes old entries without the prune entry: anchor without a matching record.
        let conn = db();
        for a in ["a", "b", "c"] {
            record(&conn, a);
        }
        let (seq, hash): (i64, String) = conn
            .query_row("SELECT seq, hash FROM audit_log WHERE seq = 2", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("row");
        conn.execute("DELETE FROM audit_log WHERE seq <= 2", [])
            .expect("delete");
        conn.execute(
            "INSERT INTO audit_anchor (id, seq, hash, pruned_at) VALUES (1, ?1, ?2, 'x')",
            rusqlite::params![seq, hash],
        )
        .expect("forge anchor");
        assert!(matches!(
            verify(&conn).expect("v"),
            Verdict::Broken { seq: 3, .. }
        ));
    }

    #[test]
    fn query_filters_and_csv_quotes() {
        let conn = db();
        for a in ["auth.login", "tenant.create", "auth.login"] {
            record(&conn, a);
        }
        let logins = query(
            &conn,
            &Filter {
                action: Some("auth.login".into()),
                limit: 50,
                ..Default::default()
            },
        )
        .expect("query");
        assert_eq!(logins.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 1]);
        let page = query(
            &conn,
            &Filter {
                before: Some(3),
                limit: 1,
                ..Default::default()
            },
        )
        .expect("page");
        assert_eq!(page[0].seq, 2);
        let text = query(
            &conn,
            &Filter {
                text: Some("tenant".into()),
                limit: 50,
                ..Default::default()
            },
        )
        .expect("text");
        assert_eq!(text.len(), 1);
        let csv = to_csv(&logins);
        assert!(csv.starts_with("seq,at,"));
        assert!(csv.contains("\"{\"\"n\"\":\"\"auth.login\"\"}\""), "{csv}");
        let mut evil = logins[0].clone();
        evil.target = "=HYPERLINK(\"x\")".into();
        assert!(to_csv(&[evil]).contains("\"'=HYPERLINK(\"\"x\"\")\""));
    }
}
