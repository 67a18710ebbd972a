//! The admins' logs: everyone's messages with every app, filtered by app, rating, day and end user,
//! as JSON pages or CSV (cells that a spreadsheet would read as formulas are quoted).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::apps::store::{self, LogFilter};
use crate::apps::LogEntry;
use crate::error::{ApiError, ApiResult, Code};
use crate::identity::Action;
use crate::tenancy::extract::TenantCtx;

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub rating: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub before: Option<i64>,
}

fn is_day(text: &str) -> bool {
    time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .is_ok()
}

impl LogQuery {
    fn filter(self, default_limit: usize) -> ApiResult<LogFilter> {
        if let Some(r) = self.rating.as_deref() {
            if !matches!(r, "like" | "dislike" | "none") {
                return Err(
                    ApiError::new(Code::InvalidRequest, "rating is like, dislike or none")
                        .with_param("rating"),
                );
            }
        }
        for (param, day) in [("from", &self.from), ("to", &self.to)] {
            if day.as_deref().is_some_and(|d| !is_day(d)) {
                return Err(ApiError::new(
                    Code::InvalidRequest,
                    format!("{param} is a day: YYYY-MM-DD"),
                )
                .with_param(param));
            }
        }
        Ok(LogFilter {
            app_id: self.app_id.filter(|a| !a.is_empty()),
            rating: self.rating,
            from: self.from,
            to: self.to,
            end_user: self.user.filter(|u| !u.is_empty()),
            limit: self.limit.unwrap_or(default_limit),
            before: self.before,
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LogPage {
    pub messages: Vec<LogEntry>,
    /// Pass as `before` for the next (older) page; `null` at the end.
    pub next_before: Option<i64>,
}

/// Everyone's messages with every app, newest first, filtered (admins).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/logs", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"),
        ("app_id" = Option<String>, Query, description = "one app"), ("rating" = Option<String>, Query, description = "like, dislike or none"),
        ("from" = Option<String>, Query, description = "first day (UTC)"), ("to" = Option<String>, Query, description = "last day (UTC)"),
        ("user" = Option<String>, Query, description = "end user"), ("limit" = Option<usize>, Query, description = "page size (≤ 500)"),
        ("before" = Option<i64>, Query, description = "cursor from next_before")),
    responses((status = 200, body = LogPage)))]
pub async fn logs(ctx: TenantCtx, query: web::Query<LogQuery>) -> ApiResult<web::Json<LogPage>> {
    ctx.require(Action::Manage)?;
    let filter = query.into_inner().filter(50)?;
    let (messages, next_before) = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::logs(&conn, &filter)
        })
        .await?;
    Ok(web::Json(LogPage {
        messages,
        next_before,
    }))
}

/// The same messages as CSV (up to 10,000 per file; page with `before`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/logs.csv", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, content_type = "text/csv", description = "one row per message")))]
pub async fn logs_csv(ctx: TenantCtx, query: web::Query<LogQuery>) -> ApiResult<HttpResponse> {
    ctx.require(Action::Manage)?;
    let mut filter = query.into_inner().filter(10_000)?;
    filter.limit = filter.limit.min(10_000);
    let body = ctx
        .run(move |db| {
            let conn = db.connection()?;
            let mut out = Vec::new();
            let mut before = filter.before;
            let mut left = filter.limit;
            let mut writer = csv::Writer::from_writer(&mut out);
            let header = [
                "created_at",
                "app",
                "end_user",
                "source",
                "conversation_id",
                "message_id",
                "query",
                "answer",
                "status",
                "rating",
                "comment",
                "prompt_tokens",
                "completion_tokens",
                "annotation_id",
                "citations",
            ];
            writer.write_record(header).map_err(ApiError::internal)?;
            loop {
                let page = LogFilter {
                    limit: left.min(500),
                    before,
                    ..filter.clone()
                };
                let (entries, next) = store::logs(&conn, &page)?;
                for e in &entries {
                    let citations = e
                        .message
                        .citations
                        .iter()
                        .map(|c| format!("[{}] {}", c.n, c.document_title))
                        .collect::<Vec<_>>()
                        .join("; ");
                    writer
                        .write_record([
                            e.message.created_at.as_str(),
                            &e.app_name,
                            &csv_safe(&e.end_user),
                            &e.source,
                            &e.message.conversation_id,
                            &e.message.id,
                            &csv_safe(&e.message.query),
                            &csv_safe(&e.message.answer),
                            &e.message.status,
                            e.message.rating.as_deref().unwrap_or(""),
                            &csv_safe(e.message.comment.as_deref().unwrap_or("")),
                            &e.message.usage.prompt_tokens.to_string(),
                            &e.message.usage.completion_tokens.to_string(),
                            e.message.annotation.as_ref().map_or("", |a| a.id.as_str()),
                            &csv_safe(&citations),
                        ])
                        .map_err(ApiError::internal)?;
                }
                left = left.saturating_sub(entries.len());
                match next {
                    Some(next) if left > 0 => before = Some(next),
                    _ => break,
                }
            }
            writer.flush().map_err(ApiError::internal)?;
            drop(writer);
            Ok::<_, ApiError>(out)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"app-logs.csv\"",
        ))
        .body(body))
}

/// Keeps a spreadsheet from reading a cell as a formula (CSV injection).
fn csv_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}
