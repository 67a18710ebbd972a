//! The SQL of chat apps in the tenant database: apps and prompt versions, conversations, messages with
//! their citations, feedback, annotations, end users and the admins' logs.
//!
//! Reads take a `Connection`, writes a `Transaction` (through `Database::write`), so callers decide
//! what is atomic and append their audit entries in the same transaction.

use std::collections::HashMap;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, Transaction};

use super::history::Turn;
use super::{
    Annotation, AnnotationRef, App, AppConfig, AppError, Citation, Conversation, EndUser, LogEntry,
    Message, MessageUsage, Prompt, PromptVersion, Source,
};

fn now() -> String {
    crate::time_util::now_rfc3339()
}

fn config_from(text: &str) -> rusqlite::Result<AppConfig> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

// ---------------------------------------------------------------------------------------------
// Apps and prompt versions

const APP_COLUMNS: &str =
    "a.id, a.name, a.description, a.published, a.prompt_version, v.system_template,
    v.user_template, a.config, a.created_by, a.created_at, a.updated_at";
const APP_FROM: &str =
    "apps a JOIN app_prompt_versions v ON v.app_id = a.id AND v.version = a.prompt_version";

fn app_from(r: &Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        published: r.get::<_, i64>(3)? != 0,
        prompt_version: r.get(4)?,
        prompt: Prompt {
            system: r.get(5)?,
            user: r.get(6)?,
        },
        config: config_from(&r.get::<_, String>(7)?)?,
        created_by: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

pub fn get_app(conn: &Connection, id: &str) -> Result<App, AppError> {
    conn.query_row(
        &format!("SELECT {APP_COLUMNS} FROM {APP_FROM} WHERE a.id = ?1"),
        [id],
        app_from,
    )
    .optional()?
    .ok_or_else(|| AppError::NotFound(id.to_string()))
}

pub fn list_apps(conn: &Connection, published_only: bool) -> Result<Vec<App>, AppError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {APP_COLUMNS} FROM {APP_FROM} WHERE a.published = 1 OR ?1 = 0
         ORDER BY a.name COLLATE NOCASE"
    ))?;
    let rows = stmt.query_map([published_only], app_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Fails with `app_exists` when another app has this name.
fn check_name_free(conn: &Connection, name: &str, except: &str) -> Result<(), AppError> {
    let taken: Option<String> = conn
        .query_row(
            "SELECT id FROM apps WHERE name = ?1 COLLATE NOCASE AND id <> ?2",
            params![name, except],
            |r| r.get(0),
        )
        .optional()?;
    match taken {
        Some(_) => Err(AppError::Exists(name.to_string())),
        None => Ok(()),
    }
}

/// Whether an app with this name exists.
pub fn name_taken(conn: &Connection, name: &str) -> Result<bool, AppError> {
    Ok(check_name_free(conn, name, "").is_err())
}

/// A new app's values.
pub struct NewApp<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub config: &'a AppConfig,
    pub prompt: &'a Prompt,
    pub note: &'a str,
    pub created_by: &'a str,
}

/// Creates an app with its first prompt version (unpublished).
pub fn insert_app(tx: &Transaction, app: &NewApp<'_>) -> Result<App, AppError> {
    check_name_free(tx, app.name, "")?;
    let id = super::new_id();
    let at = now();
    tx.execute(
        "INSERT INTO apps (id, name, description, config, prompt_version, published, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 1, 0, ?5, ?6, ?6)",
        params![id, app.name, app.description, to_json(app.config), app.created_by, at],
    )?;
    tx.execute(
        "INSERT INTO app_prompt_versions (app_id, version, system_template, user_template, note, created_by, created_at)
         VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6)",
        params![id, app.prompt.system, app.prompt.user, app.note, app.created_by, at],
    )?;
    get_app(tx, &id)
}

/// Changes an app's name, description, settings and published state.
pub fn update_app(
    tx: &Transaction,
    id: &str,
    name: &str,
    description: &str,
    config: &AppConfig,
    published: bool,
) -> Result<App, AppError> {
    check_name_free(tx, name, id)?;
    let changed = tx.execute(
        "UPDATE apps SET name = ?2, description = ?3, config = ?4, published = ?5, updated_at = ?6 WHERE id = ?1",
        params![id, name, description, to_json(config), published, now()],
    )?;
    if changed == 0 {
        return Err(AppError::NotFound(id.to_string()));
    }
    get_app(tx, id)
}

/// Deletes an app and everything of it (conversations, messages, citations, annotations, end users).
pub fn delete_app(tx: &Transaction, id: &str) -> Result<App, AppError> {
    let app = get_app(tx, id)?;
    // Messages hang off conversations (cascade); citations off messages (cascade).
    tx.execute("DELETE FROM conversations WHERE app_id = ?1", [id])?;
    tx.execute("DELETE FROM apps WHERE id = ?1", [id])?;
    Ok(app)
}

fn version_from(r: &Row<'_>) -> rusqlite::Result<PromptVersion> {
    Ok(PromptVersion {
        version: r.get(0)?,
        system: r.get(1)?,
        user: r.get(2)?,
        note: r.get(3)?,
        created_by: r.get(4)?,
        created_at: r.get(5)?,
        pinned: r.get::<_, i64>(6)? != 0,
    })
}

const VERSION_COLUMNS: &str =
    "v.version, v.system_template, v.user_template, v.note, v.created_by, v.created_at,
    v.version = a.prompt_version";

pub fn list_versions(conn: &Connection, app_id: &str) -> Result<Vec<PromptVersion>, AppError> {
    get_app(conn, app_id)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {VERSION_COLUMNS} FROM app_prompt_versions v JOIN apps a ON a.id = v.app_id
         WHERE v.app_id = ?1 ORDER BY v.version DESC"
    ))?;
    let rows = stmt.query_map([app_id], version_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_version(
    conn: &Connection,
    app_id: &str,
    version: i64,
) -> Result<PromptVersion, AppError> {
    get_app(conn, app_id)?;
    conn.query_row(
        &format!(
            "SELECT {VERSION_COLUMNS} FROM app_prompt_versions v JOIN apps a ON a.id = v.app_id
             WHERE v.app_id = ?1 AND v.version = ?2"
        ),
        params![app_id, version],
        version_from,
    )
    .optional()?
    .ok_or(AppError::VersionNotFound(version))
}

/// Saves a prompt as a new version and pins it; the same text as the pinned version makes none.
/// Returns the pinned version and whether it is new.
pub fn add_version(
    tx: &Transaction,
    app_id: &str,
    prompt: &Prompt,
    note: &str,
    created_by: &str,
) -> Result<(PromptVersion, bool), AppError> {
    let app = get_app(tx, app_id)?;
    if app.prompt == *prompt {
        return Ok((get_version(tx, app_id, app.prompt_version)?, false));
    }
    let next: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) + 1 FROM app_prompt_versions WHERE app_id = ?1",
        [app_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO app_prompt_versions (app_id, version, system_template, user_template, note, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![app_id, next, prompt.system, prompt.user, note, created_by, now()],
    )?;
    pin_version(tx, app_id, next)?;
    Ok((get_version(tx, app_id, next)?, true))
}

/// Makes the app answer with `version` (a rollback when it is older).
pub fn pin_version(tx: &Transaction, app_id: &str, version: i64) -> Result<App, AppError> {
    get_version(tx, app_id, version)?;
    tx.execute(
        "UPDATE apps SET prompt_version = ?2, updated_at = ?3 WHERE id = ?1",
        params![app_id, version, now()],
    )?;
    get_app(tx, app_id)
}

// ---------------------------------------------------------------------------------------------
// Conversations

const CONVERSATION_COLUMNS: &str =
    "id, app_id, end_user, source, name, message_count, created_at, updated_at";

fn conversation_from(r: &Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        app_id: r.get(1)?,
        end_user: r.get(2)?,
        source: r.get(3)?,
        name: r.get(4)?,
        message_count: r.get::<_, i64>(5)? as u64,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

/// A conversation of this app and this end user; any other is `conversation_not_found`.
pub fn get_conversation(
    conn: &Connection,
    app_id: &str,
    id: &str,
    end_user: &str,
) -> Result<Conversation, AppError> {
    conn.query_row(
        &format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1 AND app_id = ?2 AND end_user = ?3"
        ),
        params![id, app_id, end_user],
        conversation_from,
    )
    .optional()?
    .ok_or_else(|| AppError::ConversationNotFound(id.to_string()))
}

/// The end user's conversations with an app, newest first; the editors' debug conversations and those
/// whose first answer is not stored yet (or never was: the client left before it opened) only when
/// `with_all`.
pub fn list_conversations(
    conn: &Connection,
    app_id: &str,
    end_user: &str,
    with_all: bool,
) -> Result<Vec<Conversation>, AppError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations
         WHERE app_id = ?1 AND end_user = ?2 AND (source <> 'debug' OR ?3)
             AND (message_count > 0 OR ?3)
         ORDER BY updated_at DESC, created_at DESC, id LIMIT 500"
    ))?;
    let rows = stmt.query_map(params![app_id, end_user, with_all], conversation_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Starts a conversation (and records the end user's visit).
pub fn create_conversation(
    tx: &Transaction,
    app_id: &str,
    end_user: &str,
    source: Source,
    name: &str,
) -> Result<Conversation, AppError> {
    let id = super::new_id();
    let at = now();
    tx.execute(
        "INSERT INTO conversations (id, app_id, end_user, source, name, message_count, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6)",
        params![id, app_id, end_user, source.as_str(), name, at],
    )?;
    tx.execute(
        "INSERT INTO app_end_users (app_id, end_user, first_seen, last_seen, message_count)
         VALUES (?1, ?2, ?3, ?3, 0)
         ON CONFLICT (app_id, end_user) DO UPDATE SET last_seen = excluded.last_seen",
        params![app_id, end_user, at],
    )?;
    get_conversation(tx, app_id, &id, end_user)
}

pub fn rename_conversation(
    tx: &Transaction,
    app_id: &str,
    id: &str,
    end_user: &str,
    name: &str,
) -> Result<Conversation, AppError> {
    get_conversation(tx, app_id, id, end_user)?;
    tx.execute(
        "UPDATE conversations SET name = ?2 WHERE id = ?1",
        params![id, name],
    )?;
    get_conversation(tx, app_id, id, end_user)
}

pub fn delete_conversation(
    tx: &Transaction,
    app_id: &str,
    id: &str,
    end_user: &str,
) -> Result<Conversation, AppError> {
    let conversation = get_conversation(tx, app_id, id, end_user)?;
    tx.execute("DELETE FROM conversations WHERE id = ?1", [id])?;
    Ok(conversation)
}

/// The conversation's last `limit` answered turns, oldest first (failed ones are left out).
pub fn history(
    conn: &Connection,
    conversation_id: &str,
    limit: usize,
) -> Result<Vec<Turn>, AppError> {
    let mut stmt = conn.prepare(
        "SELECT query, answer FROM messages
         WHERE conversation_id = ?1 AND status <> 'failed' AND answer <> ''
         ORDER BY rowid DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![conversation_id, limit as i64], |r| {
        Ok(Turn {
            query: r.get(0)?,
            answer: r.get(1)?,
        })
    })?;
    let mut turns = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    turns.reverse();
    Ok(turns)
}

// ---------------------------------------------------------------------------------------------
// Messages

const MESSAGE_COLUMNS: &str = "m.id, m.conversation_id, m.query, m.answer, m.inputs, m.status, m.error,
    m.annotation_id, an.question, m.rating, m.comment, m.prompt_tokens, m.completion_tokens, m.model,
    m.prompt_version, m.latency_ms, m.created_at, m.app_id, m.end_user, m.rowid";
const MESSAGE_FROM: &str = "messages m LEFT JOIN annotations an ON an.id = m.annotation_id";

fn message_from(r: &Row<'_>) -> rusqlite::Result<Message> {
    let annotation_id: Option<String> = r.get(7)?;
    let annotation_question: Option<String> = r.get(8)?;
    Ok(Message {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        query: r.get(2)?,
        answer: r.get(3)?,
        inputs: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
        status: r.get(5)?,
        error: r.get(6)?,
        citations: Vec::new(),
        annotation: annotation_id.map(|id| AnnotationRef {
            id,
            question: annotation_question.unwrap_or_default(),
        }),
        rating: r.get(9)?,
        comment: r.get(10)?,
        usage: MessageUsage {
            prompt_tokens: r.get::<_, i64>(11)? as u64,
            completion_tokens: r.get::<_, i64>(12)? as u64,
        },
        model: r.get(13)?,
        prompt_version: r.get(14)?,
        latency_ms: r.get::<_, i64>(15)? as u64,
        created_at: r.get(16)?,
    })
}

/// Fills in each message's citations.
fn attach_citations(conn: &Connection, messages: &mut [Message]) -> Result<(), AppError> {
    let mut by_id: HashMap<String, Vec<Citation>> = HashMap::new();
    for chunk in messages.chunks(200) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare(&format!(
            "SELECT message_id, n, segment_id, dataset_id, document_id, document_title, heading_path, page, text, score
             FROM message_citations WHERE message_id IN ({marks}) ORDER BY message_id, n"
        ))?;
        let rows = stmt.query_map(params_from_iter(chunk.iter().map(|m| &m.id)), |r| {
            Ok((
                r.get::<_, String>(0)?,
                Citation {
                    n: r.get::<_, i64>(1)? as u32,
                    segment_id: r.get(2)?,
                    dataset_id: r.get(3)?,
                    document_id: r.get(4)?,
                    document_title: r.get(5)?,
                    heading_path: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                    page: r.get::<_, Option<i64>>(7)?.map(|p| p as u32),
                    text: r.get(8)?,
                    score: r.get::<_, f64>(9)? as f32,
                },
            ))
        })?;
        for row in rows {
            let (id, citation) = row?;
            by_id.entry(id).or_default().push(citation);
        }
    }
    for m in messages.iter_mut() {
        m.citations = by_id.remove(&m.id).unwrap_or_default();
    }
    Ok(())
}

/// The messages of a conversation, oldest first, with their citations.
pub fn list_messages(conn: &Connection, conversation_id: &str) -> Result<Vec<Message>, AppError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM} WHERE m.conversation_id = ?1 ORDER BY m.rowid"
    ))?;
    let rows = stmt.query_map([conversation_id], message_from)?;
    let mut messages = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    attach_citations(conn, &mut messages)?;
    Ok(messages)
}

/// A message of this app, with the end user it belongs to.
pub fn get_message(
    conn: &Connection,
    app_id: &str,
    id: &str,
) -> Result<(Message, String), AppError> {
    let found = conn
        .query_row(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM} WHERE m.id = ?1 AND m.app_id = ?2"
            ),
            params![id, app_id],
            |r| Ok((message_from(r)?, r.get::<_, String>(18)?)),
        )
        .optional()?;
    let (message, end_user) = found.ok_or_else(|| AppError::MessageNotFound(id.to_string()))?;
    let mut one = [message];
    attach_citations(conn, &mut one)?;
    let [message] = one;
    Ok((message, end_user))
}

/// A finished (or stopped, or failed) exchange to store.
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub conversation_id: &'a str,
    pub app_id: &'a str,
    pub end_user: &'a str,
    pub query: &'a str,
    pub answer: &'a str,
    pub inputs: &'a serde_json::Value,
    pub status: &'a str,
    pub error: Option<&'a str>,
    pub model: &'a str,
    pub prompt_version: i64,
    pub usage: MessageUsage,
    pub latency_ms: u64,
    pub annotation_id: Option<&'a str>,
    pub citations: &'a [Citation],
}

/// Stores an exchange with its citations, and counts it for the conversation, the end user and the
/// annotation it came from.
pub fn insert_message(tx: &Transaction, m: &NewMessage<'_>) -> Result<(), AppError> {
    let at = now();
    tx.execute(
        "INSERT INTO messages (id, conversation_id, app_id, end_user, query, answer, inputs, status, error,
             model, prompt_version, prompt_tokens, completion_tokens, latency_ms, annotation_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            m.id,
            m.conversation_id,
            m.app_id,
            m.end_user,
            m.query,
            m.answer,
            m.inputs.to_string(),
            m.status,
            m.error,
            m.model,
            m.prompt_version,
            m.usage.prompt_tokens as i64,
            m.usage.completion_tokens as i64,
            m.latency_ms as i64,
            m.annotation_id,
            at
        ],
    )?;
    let mut stmt = tx.prepare(
        "INSERT INTO message_citations (message_id, n, segment_id, dataset_id, document_id, document_title, heading_path, page, text, score)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for c in m.citations {
        stmt.execute(params![
            m.id,
            c.n,
            c.segment_id,
            c.dataset_id,
            c.document_id,
            c.document_title,
            to_json(&c.heading_path),
            c.page,
            c.text,
            f64::from(c.score)
        ])?;
    }
    tx.execute(
        "UPDATE conversations SET message_count = message_count + 1, updated_at = ?2 WHERE id = ?1",
        params![m.conversation_id, at],
    )?;
    tx.execute(
        "UPDATE app_end_users SET message_count = message_count + 1, last_seen = ?3
         WHERE app_id = ?1 AND end_user = ?2",
        params![m.app_id, m.end_user, at],
    )?;
    if let Some(annotation) = m.annotation_id {
        tx.execute(
            "UPDATE annotations SET hit_count = hit_count + 1 WHERE id = ?1",
            [annotation],
        )?;
    }
    Ok(())
}

/// Records (or clears, with `rating: None`) the end user's feedback on an answer.
pub fn set_feedback(
    tx: &Transaction,
    app_id: &str,
    id: &str,
    end_user: Option<&str>,
    rating: Option<&str>,
    comment: Option<&str>,
) -> Result<Message, AppError> {
    let (_, owner) = get_message(tx, app_id, id)?;
    if end_user.is_some_and(|u| u != owner) {
        return Err(AppError::MessageNotFound(id.to_string()));
    }
    tx.execute(
        "UPDATE messages SET rating = ?2, comment = ?3 WHERE id = ?1",
        params![id, rating, comment],
    )?;
    Ok(get_message(tx, app_id, id)?.0)
}

// ---------------------------------------------------------------------------------------------
// Logs

/// Which messages the admins' logs show.
#[derive(Debug, Default, Clone)]
pub struct LogFilter {
    pub app_id: Option<String>,
    /// `like`, `dislike` or `none` (no rating).
    pub rating: Option<String>,
    /// Inclusive UTC days `YYYY-MM-DD`.
    pub from: Option<String>,
    pub to: Option<String>,
    pub end_user: Option<String>,
    pub limit: usize,
    /// Only messages older than this cursor (from `next_before`).
    pub before: Option<i64>,
}

/// Messages matching `filter`, newest first, and the cursor of the next page.
pub fn logs(
    conn: &Connection,
    filter: &LogFilter,
) -> Result<(Vec<LogEntry>, Option<i64>), AppError> {
    let mut clauses = vec!["1 = 1".to_string()];
    if filter.rating.as_deref() == Some("none") {
        clauses.push("m.rating IS NULL".into());
    }
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |clause: &str, value: rusqlite::types::Value| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(app) = &filter.app_id {
        push("m.app_id = ?", app.clone().into());
    }
    if let Some(r) = filter.rating.as_deref().filter(|r| *r != "none") {
        push("m.rating = ?", r.to_string().into());
    }
    if let Some(from) = &filter.from {
        push("m.created_at >= ?", from.clone().into());
    }
    if let Some(to) = &filter.to {
        // Inclusive: everything of that day.
        push("m.created_at < ?", format!("{to}T99").into());
    }
    if let Some(user) = &filter.end_user {
        push("m.end_user = ?", user.clone().into());
    }
    if let Some(before) = filter.before {
        push("m.rowid < ?", before.into());
    }
    let limit = filter.limit.clamp(1, 500);
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS}, a.name, c.source FROM {MESSAGE_FROM}
         JOIN apps a ON a.id = m.app_id JOIN conversations c ON c.id = m.conversation_id
         WHERE {} ORDER BY m.rowid DESC LIMIT {}",
        clauses.join(" AND "),
        limit + 1
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(values.iter()), |r| {
        Ok((
            message_from(r)?,
            r.get::<_, String>(17)?,
            r.get::<_, String>(18)?,
            r.get::<_, i64>(19)?,
            r.get::<_, String>(20)?,
            r.get::<_, String>(21)?,
        ))
    })?;
    let mut found = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let next = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|row| row.3)
    } else {
        None
    };
    let mut messages: Vec<Message> = found.iter().map(|row| row.0.clone()).collect();
    attach_citations(conn, &mut messages)?;
    let entries = found
        .into_iter()
        .zip(messages)
        .map(
            |((_, app_id, end_user, _, app_name, source), message)| LogEntry {
                message,
                app_id,
                app_name,
                end_user,
                source,
            },
        )
        .collect();
    Ok((entries, next))
}

// ---------------------------------------------------------------------------------------------
// Annotations

const ANNOTATION_COLUMNS: &str =
    "id, app_id, question, answer, message_id, hit_count, created_by, created_at, updated_at";

fn annotation_from(r: &Row<'_>) -> rusqlite::Result<Annotation> {
    Ok(Annotation {
        id: r.get(0)?,
        app_id: r.get(1)?,
        question: r.get(2)?,
        answer: r.get(3)?,
        message_id: r.get(4)?,
        hit_count: r.get::<_, i64>(5)? as u64,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

pub fn list_annotations(conn: &Connection, app_id: &str) -> Result<Vec<Annotation>, AppError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE app_id = ?1 ORDER BY updated_at DESC"
    ))?;
    let rows = stmt.query_map([app_id], annotation_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_annotation(conn: &Connection, app_id: &str, id: &str) -> Result<Annotation, AppError> {
    conn.query_row(
        &format!("SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE id = ?1 AND app_id = ?2"),
        params![id, app_id],
        annotation_from,
    )
    .optional()?
    .ok_or_else(|| AppError::AnnotationNotFound(id.to_string()))
}

/// Little-endian bytes of a vector.
pub fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vector_from(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// An annotation's question with its embedding.
pub struct NewAnnotation<'a> {
    pub question: &'a str,
    pub answer: &'a str,
    pub vector: &'a [f32],
    pub embedding_model: &'a str,
    pub message_id: Option<&'a str>,
    pub created_by: &'a str,
}

pub fn insert_annotation(
    tx: &Transaction,
    app_id: &str,
    a: &NewAnnotation<'_>,
) -> Result<Annotation, AppError> {
    get_app(tx, app_id)?;
    if let Some(message) = a.message_id {
        get_message(tx, app_id, message)?;
    }
    let id = super::new_id();
    let at = now();
    tx.execute(
        "INSERT INTO annotations (id, app_id, question, answer, vector, embedding_model, message_id, hit_count, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?9)",
        params![id, app_id, a.question, a.answer, vector_bytes(a.vector), a.embedding_model, a.message_id, a.created_by, at],
    )?;
    get_annotation(tx, app_id, &id)
}

/// Changes an annotation (with the new question's embedding when the question changed).
pub fn update_annotation(
    tx: &Transaction,
    app_id: &str,
    id: &str,
    question: &str,
    answer: &str,
    embedding: Option<(&[f32], &str)>,
) -> Result<Annotation, AppError> {
    get_annotation(tx, app_id, id)?;
    tx.execute(
        "UPDATE annotations SET question = ?2, answer = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, question, answer, now()],
    )?;
    if let Some((vector, model)) = embedding {
        tx.execute(
            "UPDATE annotations SET vector = ?2, embedding_model = ?3 WHERE id = ?1",
            params![id, vector_bytes(vector), model],
        )?;
    }
    get_annotation(tx, app_id, id)
}

pub fn delete_annotation(tx: &Transaction, app_id: &str, id: &str) -> Result<Annotation, AppError> {
    let annotation = get_annotation(tx, app_id, id)?;
    tx.execute("DELETE FROM annotations WHERE id = ?1", [id])?;
    Ok(annotation)
}

/// How many annotations the app has (0: no need to embed questions for them).
pub fn annotation_count(conn: &Connection, app_id: &str) -> Result<u64, AppError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM annotations WHERE app_id = ?1",
        [app_id],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// The annotation most similar to `vector` (dot product of unit vectors), among those embedded with
/// `model`, if any reaches `threshold`.
pub fn best_annotation(
    conn: &Connection,
    app_id: &str,
    model: &str,
    vector: &[f32],
    threshold: f32,
) -> Result<Option<(Annotation, f32)>, AppError> {
    let mut stmt = conn
        .prepare("SELECT id, vector FROM annotations WHERE app_id = ?1 AND embedding_model = ?2")?;
    let rows = stmt.query_map(params![app_id, model], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut best: Option<(String, f32)> = None;
    for row in rows {
        let (id, bytes) = row?;
        let other = vector_from(&bytes);
        if other.len() != vector.len() {
            continue;
        }
        let score: f32 = other.iter().zip(vector).map(|(a, b)| a * b).sum();
        if score >= threshold && best.as_ref().is_none_or(|(_, s)| score > *s) {
            best = Some((id, score));
        }
    }
    match best {
        Some((id, score)) => Ok(Some((get_annotation(conn, app_id, &id)?, score))),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// End users

pub fn list_end_users(conn: &Connection, app_id: &str) -> Result<Vec<EndUser>, AppError> {
    let mut stmt = conn.prepare(
        "SELECT u.end_user, u.first_seen, u.last_seen, u.message_count,
             (SELECT count(*) FROM conversations c WHERE c.app_id = u.app_id AND c.end_user = u.end_user)
         FROM app_end_users u WHERE u.app_id = ?1 ORDER BY u.last_seen DESC LIMIT 1000",
    )?;
    let rows = stmt.query_map([app_id], |r| {
        Ok(EndUser {
            id: r.get(0)?,
            first_seen: r.get(1)?,
            last_seen: r.get(2)?,
            message_count: r.get::<_, i64>(3)? as u64,
            conversation_count: r.get::<_, i64>(4)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_end_user(conn: &Connection, app_id: &str, end_user: &str) -> Result<EndUser, AppError> {
    list_end_users(conn, app_id)?
        .into_iter()
        .find(|u| u.id == end_user)
        .ok_or_else(|| AppError::EndUserNotFound(end_user.to_string()))
}

/// Everything stored of an end user: their conversations with all messages and citations.
pub fn export_end_user(
    conn: &Connection,
    app_id: &str,
    end_user: &str,
) -> Result<serde_json::Value, AppError> {
    let user = get_end_user(conn, app_id, end_user)?;
    let mut conversations = Vec::new();
    for conversation in list_conversations(conn, app_id, end_user, true)? {
        let messages = list_messages(conn, &conversation.id)?;
        conversations
            .push(serde_json::json!({ "conversation": conversation, "messages": messages }));
    }
    Ok(serde_json::json!({ "app_id": app_id, "end_user": user, "conversations": conversations }))
}

/// What an erasure removed.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Erased {
    pub conversations: u64,
    pub messages: u64,
}

/// Erases an end user of an app: conversations, messages, stored citations, feedback and the record
/// of them; annotations made from their messages keep their (admin-written) text but lose the link.
pub fn erase_end_user(tx: &Transaction, app_id: &str, end_user: &str) -> Result<Erased, AppError> {
    get_end_user(tx, app_id, end_user)?;
    let messages: i64 = tx.query_row(
        "SELECT count(*) FROM messages WHERE app_id = ?1 AND end_user = ?2",
        params![app_id, end_user],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE annotations SET message_id = NULL WHERE message_id IN
             (SELECT id FROM messages WHERE app_id = ?1 AND end_user = ?2)",
        params![app_id, end_user],
    )?;
    tx.execute(
        "DELETE FROM messages WHERE app_id = ?1 AND end_user = ?2",
        params![app_id, end_user],
    )?;
    let conversations = tx.execute(
        "DELETE FROM conversations WHERE app_id = ?1 AND end_user = ?2",
        params![app_id, end_user],
    )?;
    tx.execute(
        "DELETE FROM app_end_users WHERE app_id = ?1 AND end_user = ?2",
        params![app_id, end_user],
    )?;
    Ok(Erased {
        conversations: conversations as u64,
        messages: messages as u64,
    })
}
