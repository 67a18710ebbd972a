//! Chargeback statements: a tenant's usage of one calendar month priced with the internal prices the
//! system administrators set.
//!
//! Money is kept in integer millionths of the currency ("micros"), never floating point: a line is
//! `quantity × unit_price_micros / unit_size`, rounded half up to a micro; the total is the sum of the
//! lines. The statement of the current month is a preview computed on demand. Once a month is over
//! its statement is **closed**: computed once with that moment's prices, stored in `system.db`
//! (`usage_statements`) and never changed; closing is audited. The server closes last month's
//! statements every day, and a tenant about to be purged gets its open months closed first, so its
//! statements outlive it.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::Metric;
use crate::audit::{self, Actor, Event};
use crate::db::system::SystemDb;
use crate::db::DbError;

/// A price: `unit_price_micros` for every `unit_size` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Price {
    pub unit_size: u64,
    pub unit_price_micros: u64,
}

/// The price list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PriceList {
    pub currency: String,
    /// metric → price.
    pub prices: BTreeMap<String, Price>,
}

/// One line of a statement.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatementLine {
    pub metric: String,
    pub quantity: u64,
    /// The price applied (`null`: no price set, the line costs nothing).
    pub price: Option<Price>,
    pub amount_micros: u64,
}

/// A tenant's statement of one month.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Statement {
    pub tenant_id: String,
    pub tenant_name: String,
    /// `YYYY-MM`.
    pub month: String,
    pub currency: String,
    pub lines: Vec<StatementLine>,
    pub total_micros: u64,
    /// Closed statements are final; an open one (this month) is a preview.
    pub closed: bool,
    pub generated_at: String,
}

/// Parses a decimal amount such as `0.50` or `12` into micros, exactly (at most 6 decimals).
pub fn parse_amount(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
        || whole.len() > 12
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_micros: u64 = format!("{frac:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(frac_micros)
}

/// Formats micros as a decimal with at least two decimals (`1.5` → `1.50`, `0.123456`).
pub fn format_amount(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let frac = format!("{:06}", micros % 1_000_000);
    let trimmed = frac.trim_end_matches('0');
    let decimals = if trimmed.len() < 2 {
        &frac[..2]
    } else {
        trimmed
    };
    format!("{whole}.{decimals}")
}

/// `quantity × price / unit`, rounded half up, in micros.
pub fn line_amount(quantity: u64, price: Price) -> u64 {
    let numerator = u128::from(quantity) * u128::from(price.unit_price_micros);
    let unit = u128::from(price.unit_size.max(1));
    u64::try_from((numerator + unit / 2) / unit).unwrap_or(u64::MAX)
}

/// The current price list.
pub fn prices(conn: &Connection) -> rusqlite::Result<PriceList> {
    let currency: Option<String> = conn
        .query_row(
            "SELECT currency FROM billing_settings WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let mut stmt = conn
        .prepare("SELECT metric, unit_size, unit_price_micros FROM usage_prices ORDER BY metric")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Price {
                unit_size: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(1),
                unit_price_micros: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            },
        ))
    })?;
    Ok(PriceList {
        currency: currency.unwrap_or_else(|| "EUR".into()),
        prices: rows.collect::<Result<_, _>>()?,
    })
}

/// Replaces the price list (audited); `None` removes a metric's price.
pub fn set_prices(
    conn: &Connection,
    currency: Option<&str>,
    changes: &BTreeMap<Metric, Option<Price>>,
    actor: &Actor,
) -> rusqlite::Result<()> {
    if let Some(currency) = currency {
        conn.execute(
            "INSERT INTO billing_settings (id, currency) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET currency = excluded.currency",
            [currency],
        )?;
    }
    for (metric, price) in changes {
        match price {
            Some(p) => conn.execute(
                "INSERT INTO usage_prices (metric, unit_size, unit_price_micros, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (metric) DO UPDATE SET unit_size = excluded.unit_size,
                     unit_price_micros = excluded.unit_price_micros, updated_at = excluded.updated_at",
                rusqlite::params![
                    metric.as_str(),
                    i64::try_from(p.unit_size).unwrap_or(i64::MAX),
                    i64::try_from(p.unit_price_micros).unwrap_or(i64::MAX),
                    crate::time_util::now_rfc3339()
                ],
            )?,
            None => conn.execute("DELETE FROM usage_prices WHERE metric = ?1", [metric.as_str()])?,
        };
    }
    let detail: serde_json::Map<String, serde_json::Value> = changes
        .iter()
        .map(|(m, p)| (m.as_str().to_string(), serde_json::json!(p)))
        .collect();
    audit::append(
        conn,
        actor,
        &Event {
            action: "billing.prices_set",
            target: "prices",
            tenant_id: "",
            success: true,
            detail: serde_json::json!({ "currency": currency, "prices": detail }),
        },
    )?;
    Ok(())
}

/// A tenant's month totals per metric, from its database.
pub fn month_quantities(
    tenant_db: &Connection,
    month: &str,
) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut stmt = tenant_db.prepare(
        "SELECT metric, sum(quantity) FROM usage_daily WHERE day LIKE ?1 GROUP BY metric ORDER BY metric",
    )?;
    let rows = stmt.query_map([format!("{month}-%")], |r| {
        Ok((
            r.get::<_, String>(0)?,
            u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        ))
    })?;
    rows.collect()
}

/// Prices the quantities.
pub fn compute(
    tenant_id: &str,
    tenant_name: &str,
    month: &str,
    quantities: &BTreeMap<String, u64>,
    list: &PriceList,
    closed: bool,
) -> Statement {
    let lines: Vec<StatementLine> = Metric::ALL
        .iter()
        .filter(|m| **m != Metric::StorageBytes)
        .map(|m| {
            let quantity = quantities.get(m.as_str()).copied().unwrap_or(0);
            let price = list.prices.get(m.as_str()).copied();
            StatementLine {
                metric: m.as_str().to_string(),
                quantity,
                price,
                amount_micros: price.map_or(0, |p| line_amount(quantity, p)),
            }
        })
        .collect();
    Statement {
        tenant_id: tenant_id.to_string(),
        tenant_name: tenant_name.to_string(),
        month: month.to_string(),
        currency: list.currency.clone(),
        total_micros: lines.iter().map(|l| l.amount_micros).sum(),
        lines,
        closed,
        generated_at: crate::time_util::now_rfc3339(),
    }
}

/// A stored (closed) statement.
pub fn stored(
    system: &Connection,
    tenant_id: &str,
    month: &str,
) -> rusqlite::Result<Option<Statement>> {
    system
        .query_row(
            "SELECT tenant_name, currency, lines, total_micros, generated_at FROM usage_statements
             WHERE tenant_id = ?1 AND month = ?2",
            [tenant_id, month],
            |r| {
                let lines: String = r.get(2)?;
                Ok(Statement {
                    tenant_id: tenant_id.to_string(),
                    tenant_name: r.get(0)?,
                    month: month.to_string(),
                    currency: r.get(1)?,
                    lines: serde_json::from_str(&lines).unwrap_or_default(),
                    total_micros: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    closed: true,
                    generated_at: r.get(4)?,
                })
            },
        )
        .optional()
}

/// Months with a closed statement for a tenant, newest first.
pub fn closed_months(system: &Connection, tenant_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = system
        .prepare("SELECT month FROM usage_statements WHERE tenant_id = ?1 ORDER BY month DESC")?;
    let rows = stmt.query_map([tenant_id], |r| r.get(0))?;
    rows.collect()
}

/// Closes a month: stores its statement if none is stored yet (audited) and returns the stored one.
pub fn close(
    system: &SystemDb,
    tenant_db: &Connection,
    tenant_id: &str,
    tenant_name: &str,
    month: &str,
    actor: &Actor,
) -> Result<Statement, DbError> {
    let quantities = month_quantities(tenant_db, month)?;
    system.db.write(|tx| {
        if let Some(existing) = stored(tx, tenant_id, month)? {
            return Ok(existing);
        }
        let statement = compute(tenant_id, tenant_name, month, &quantities, &prices(tx)?, true);
        tx.execute(
            "INSERT INTO usage_statements (tenant_id, month, tenant_name, currency, lines, total_micros, generated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                tenant_id,
                month,
                tenant_name,
                statement.currency,
                serde_json::to_string(&statement.lines).unwrap_or_else(|_| "[]".into()),
                i64::try_from(statement.total_micros).unwrap_or(i64::MAX),
                statement.generated_at
            ],
        )?;
        audit::append(
            tx,
            actor,
            &Event {
                action: "usage.statement_close",
                target: month,
                tenant_id,
                success: true,
                detail: serde_json::json!({
                    "currency": statement.currency,
                    "total": format_amount(statement.total_micros),
                }),
            },
        )?;
        Ok::<_, DbError>(statement)
    })
}

/// The month before `month` (`YYYY-MM`).
pub fn previous_month(month: &str) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    Some(if m <= 1 {
        format!("{:04}-12", y - 1)
    } else {
        format!("{y:04}-{:02}", m - 1)
    })
}

/// Closes last month's statement of every tenant that has none (blocking; the daily job).
pub fn close_last_month(
    system: &SystemDb,
    tenants: &crate::tenancy::TenantRegistry,
) -> Result<usize, DbError> {
    let (_, this_month) = super::meter::day_and_month(crate::time_util::business_now());
    let Some(last) = previous_month(&this_month) else {
        return Ok(0);
    };
    let mut closed = 0;
    for record in system.list_tenants()? {
        if system.db.read(|c| stored(c, &record.id, &last))?.is_some() {
            continue;
        }
        let Ok(id) = crate::tenancy::TenantId::parse(&record.id) else {
            continue;
        };
        match tenants.get(&id) {
            Ok((_, db)) => {
                let conn = db.db().connection()?;
                close(
                    system,
                    &conn,
                    &record.id,
                    &record.name,
                    &last,
                    &Actor::cli(),
                )?;
                closed += 1;
            }
            Err(e) => {
                tracing::warn!(tenant = %record.id, error = %e, "statement not closed; will retry")
            }
        }
    }
    Ok(closed)
}

/// Before a tenant's directory is purged: closes every month with usage that has no statement yet,
/// the current one included, so the statements outlive the tenant (blocking).
pub fn close_before_purge(
    system: &SystemDb,
    tenant_db_path: &Path,
    tenant_id: &str,
    tenant_name: &str,
    actor: &Actor,
) -> Result<usize, DbError> {
    if !tenant_db_path.exists() {
        return Ok(0);
    }
    let conn = rusqlite::Connection::open_with_flags(
        tenant_db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| DbError::classify(tenant_db_path, e))?;
    let months: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT DISTINCT substr(day, 1, 7) FROM usage_daily ORDER BY 1")
            .map_err(|e| DbError::classify(tenant_db_path, e))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| DbError::classify(tenant_db_path, e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| DbError::classify(tenant_db_path, e))?
    };
    let mut closed = 0;
    for month in months {
        if system.db.read(|c| stored(c, tenant_id, &month))?.is_none() {
            close(system, &conn, tenant_id, tenant_name, &month, actor)?;
            closed += 1;
        }
    }
    Ok(closed)
}

/// A statement as CSV.
pub fn to_csv(s: &Statement) -> String {
    let mut out =
        String::from("tenant,month,metric,quantity,unit_size,unit_price,amount,currency\n");
    for l in &s.lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            s.tenant_id,
            s.month,
            l.metric,
            l.quantity,
            l.price.map_or(String::new(), |p| p.unit_size.to_string()),
            l.price
                .map_or(String::new(), |p| format_amount(p.unit_price_micros)),
            format_amount(l.amount_micros),
            s.currency
        ));
    }
    out.push_str(&format!(
        "{},{},total,,,,{},{}\n",
        s.tenant_id,
        s.month,
        format_amount(s.total_micros),
        s.currency
    ));
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A statement as a self-contained printable HTML page (prints cleanly to PDF).
pub fn to_html(s: &Statement) -> String {
    let mut rows = String::new();
    for l in &s.lines {
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>\n",
            escape(&l.metric),
            l.quantity,
            l.price.map_or("—".to_string(), |p| format!(
                "{} / {}",
                format_amount(p.unit_price_micros),
                p.unit_size
            )),
            format_amount(l.amount_micros)
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Statement {month} · {name}</title>
<style>
body {{ font: 14px/1.5 system-ui, sans-serif; color: #111; margin: 2.5rem; }}
h1 {{ font-size: 1.4rem; margin: 0 0 .25rem; }}
p.meta {{ color: #555; margin: 0 0 1.5rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; }}
td.n, th.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
tfoot td {{ font-weight: 700; border-top: 2px solid #111; border-bottom: none; }}
@media print {{ body {{ margin: 0; }} @page {{ margin: 2cm; }} }}
</style></head>
<body>
<h1>Usage statement — {name}</h1>
<p class="meta">Tenant <code>{id}</code> · {month} (UTC) · {status} · generated {generated} · currency {currency}</p>
<table>
<thead><tr><th>Metric</th><th class=n>Quantity</th><th class=n>Price ({currency} per units)</th><th class=n>Amount ({currency})</th></tr></thead>
<tbody>
{rows}</tbody>
<tfoot><tr><td colspan=3>Total</td><td class=n>{total}</td></tr></tfoot>
</table>
</body></html>
"#,
        month = escape(&s.month),
        name = escape(&s.tenant_name),
        id = escape(&s.tenant_id),
        status = if s.closed {
            "closed"
        } else {
            "preview: the month is not over"
        },
        generated = escape(&s.generated_at),
        currency = escape(&s.currency),
        rows = rows,
        total = format_amount(s.total_micros),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimals() {
        assert_eq!(parse_amount("0.50"), Some(500_000));
        assert_eq!(parse_amount("12"), Some(12_000_000));
        assert_eq!(parse_amount(".000001"), Some(1));
        assert_eq!(parse_amount("1.0000001"), None, "at most six decimals");
        assert_eq!(parse_amount("-1"), None);
        assert_eq!(parse_amount("1e3"), None);
        assert_eq!(parse_amount(""), None);
        assert_eq!(format_amount(1_500_000), "1.50");
        assert_eq!(format_amount(123_456), "0.123456");
        assert_eq!(format_amount(0), "0.00");
    }

    #[test]
    fn lines_round_half_up_and_the_total_is_their_sum() {
        let price = Price {
            unit_size: 1000,
            unit_price_micros: 500_000,
        };
        assert_eq!(line_amount(1, price), 500, "0.0005 per token");
        assert_eq!(line_amount(2_500, price), 1_250_000);
        let third = Price {
            unit_size: 3,
            unit_price_micros: 1,
        };
        assert_eq!(line_amount(1, third), 0);
        assert_eq!(line_amount(2, third), 1, "2/3 rounds up");
        let mut list = PriceList {
            currency: "EUR".into(),
            prices: BTreeMap::new(),
        };
        list.prices.insert("api_requests".into(), price);
        list.prices.insert(
            "messages".into(),
            Price {
                unit_size: 1,
                unit_price_micros: 10_000,
            },
        );
        let quantities = BTreeMap::from([
            ("api_requests".to_string(), 2_500),
            ("messages".to_string(), 7),
            ("embedding_tokens".to_string(), 99),
        ]);
        let s = compute("acme", "Acme", "2026-11", &quantities, &list, false);
        assert_eq!(s.total_micros, 1_250_000 + 70_000);
        assert_eq!(
            s.lines.iter().map(|l| l.amount_micros).sum::<u64>(),
            s.total_micros
        );
        assert!(to_csv(&s).contains("acme,2026-11,total,,,,1.32,EUR"));
        assert!(to_html(&s).contains("<td class=n>1.32</td>"));
    }

    #[test]
    fn the_month_before() {
        assert_eq!(previous_month("2027-01").as_deref(), Some("2026-12"));
        assert_eq!(previous_month("2026-11").as_deref(), Some("2026-10"));
    }
}
