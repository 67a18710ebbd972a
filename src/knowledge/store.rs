//! The SQL of knowledge bases in the tenant database: datasets, documents, segments and jobs.
//!
//! Functions take a `Connection` (reads) or a `Transaction` (writes, through `Database::write`), so the
//! callers decide what happens atomically; audit entries are appended by the callers in the same
//! transaction.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    ChunkSettings, Dataset, Document, DocumentError, DocumentStatus, Job, KnowledgeError, Segment,
    PENDING_STATES_SQL,
};

const DATASET_COLUMNS: &str = "d.id, d.name, d.description, d.embedding_model, d.chunk_max_tokens,
    d.chunk_overlap_tokens, d.created_at, d.updated_at,
    (SELECT count(*) FROM documents x WHERE x.dataset_id = d.id),
    (SELECT count(*) FROM documents x WHERE x.dataset_id = d.id AND x.status = 'ready'),
    (SELECT coalesce(sum(x.segments_total), 0) FROM documents x WHERE x.dataset_id = d.id AND x.status = 'ready'),
    (SELECT coalesce(sum(x.size_bytes), 0) FROM documents x WHERE x.dataset_id = d.id)";

fn dataset_from(r: &Row<'_>) -> rusqlite::Result<Dataset> {
    Ok(Dataset {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        embedding_model: r.get(3)?,
        chunking: ChunkSettings {
            max_tokens: r.get::<_, i64>(4)? as usize,
            overlap_tokens: r.get::<_, i64>(5)? as usize,
        },
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        document_count: r.get::<_, i64>(8)? as u64,
        ready_count: r.get::<_, i64>(9)? as u64,
        segment_count: r.get::<_, i64>(10)? as u64,
        size_bytes: r.get::<_, i64>(11)? as u64,
    })
}

pub fn list_datasets(conn: &Connection) -> rusqlite::Result<Vec<Dataset>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {DATASET_COLUMNS} FROM datasets d ORDER BY d.name COLLATE NOCASE"
    ))?;
    let rows = stmt.query_map([], dataset_from)?;
    rows.collect()
}

pub fn get_dataset(conn: &Connection, id: &str) -> Result<Dataset, KnowledgeError> {
    conn.query_row(
        &format!("SELECT {DATASET_COLUMNS} FROM datasets d WHERE d.id = ?1"),
        [id],
        dataset_from,
    )
    .optional()?
    .ok_or_else(|| KnowledgeError::DatasetNotFound(id.to_string()))
}

/// The embedding model of a dataset (what a search needs, without the counts `get_dataset` adds).
pub fn embedding_model_of(conn: &Connection, id: &str) -> Result<String, KnowledgeError> {
    conn.query_row(
        "SELECT embedding_model FROM datasets WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| KnowledgeError::DatasetNotFound(id.to_string()))
}

/// Those of `ids` that name a dataset of this tenant, in the order given.
pub fn existing_dataset_ids(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM datasets WHERE id = ?1")?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if stmt.exists([id])? {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// Fails with `dataset_exists` when another dataset has this name.
fn check_name_free(conn: &Connection, name: &str, except: &str) -> Result<(), KnowledgeError> {
    let taken: Option<String> = conn
        .query_row(
            "SELECT id FROM datasets WHERE name = ?1 COLLATE NOCASE AND id <> ?2",
            params![name, except],
            |r| r.get(0),
        )
        .optional()?;
    match taken {
        Some(_) => Err(KnowledgeError::DatasetExists(name.to_string())),
        None => Ok(()),
    }
}

pub struct NewDataset<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub embedding_model: &'a str,
    pub chunking: ChunkSettings,
    pub created_by: &'a str,
}

pub fn insert_dataset(conn: &Connection, new: &NewDataset<'_>) -> Result<Dataset, KnowledgeError> {
    check_name_free(conn, new.name, "")?;
    let id = super::new_id();
    let now = crate::time_util::now_rfc3339();
    conn.execute(
        "INSERT INTO datasets (id, name, description, embedding_model, chunk_max_tokens, chunk_overlap_tokens,
                               created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            id,
            new.name,
            new.description,
            new.embedding_model,
            new.chunking.max_tokens as i64,
            new.chunking.overlap_tokens as i64,
            new.created_by,
            now
        ],
    )?;
    get_dataset(conn, &id)
}

pub fn update_dataset(
    conn: &Connection,
    id: &str,
    name: Option<&str>,
    description: Option<&str>,
    chunking: Option<ChunkSettings>,
) -> Result<Dataset, KnowledgeError> {
    let current = get_dataset(conn, id)?;
    if let Some(name) = name {
        check_name_free(conn, name, id)?;
    }
    let chunking = chunking.unwrap_or(current.chunking);
    conn.execute(
        "UPDATE datasets SET name = ?2, description = ?3, chunk_max_tokens = ?4, chunk_overlap_tokens = ?5,
                updated_at = ?6 WHERE id = ?1",
        params![
            id,
            name.unwrap_or(&current.name),
            description.unwrap_or(&current.description),
            chunking.max_tokens as i64,
            chunking.overlap_tokens as i64,
            crate::time_util::now_rfc3339()
        ],
    )?;
    get_dataset(conn, id)
}

/// Deletes a dataset with its documents, segments and jobs (cascade).
pub fn delete_dataset(conn: &Connection, id: &str) -> Result<Dataset, KnowledgeError> {
    let dataset = get_dataset(conn, id)?;
    conn.execute("DELETE FROM datasets WHERE id = ?1", [id])?;
    Ok(dataset)
}

const DOCUMENT_COLUMNS: &str = "id, dataset_id, job_id, title, filename, mime_type, size_bytes, checksum,
    status, error_code, error_message, segments_total, segments_done, token_count, created_by, created_at, updated_at";

fn document_from(r: &Row<'_>) -> rusqlite::Result<Document> {
    let status: String = r.get(8)?;
    let code: Option<String> = r.get(9)?;
    let message: Option<String> = r.get(10)?;
    Ok(Document {
        id: r.get(0)?,
        dataset_id: r.get(1)?,
        job_id: r.get(2)?,
        title: r.get(3)?,
        filename: r.get(4)?,
        mime_type: r.get(5)?,
        size_bytes: r.get::<_, i64>(6)? as u64,
        checksum: r.get(7)?,
        status: DocumentStatus::parse(&status).unwrap_or(DocumentStatus::Failed),
        error: code.map(|code| DocumentError {
            code,
            message: message.unwrap_or_default(),
        }),
        segments_total: r.get::<_, i64>(11)? as u64,
        segments_done: r.get::<_, i64>(12)? as u64,
        token_count: r.get::<_, i64>(13)? as u64,
        created_by: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
    })
}

pub fn get_document(
    conn: &Connection,
    dataset_id: &str,
    id: &str,
) -> Result<Document, KnowledgeError> {
    conn.query_row(
        &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1 AND dataset_id = ?2"),
        params![id, dataset_id],
        document_from,
    )
    .optional()?
    .ok_or_else(|| KnowledgeError::DocumentNotFound(id.to_string()))
}

/// A page of a dataset's documents (newest first) and the total.
pub fn list_documents(
    conn: &Connection,
    dataset_id: &str,
    status: Option<DocumentStatus>,
    limit: u32,
    offset: u32,
) -> rusqlite::Result<(Vec<Document>, u64)> {
    let status = status.map(DocumentStatus::as_str);
    let mut stmt = conn.prepare(&format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE dataset_id = ?1 AND (?2 IS NULL OR status = ?2)
         ORDER BY created_at DESC, filename LIMIT ?3 OFFSET ?4"
    ))?;
    let rows = stmt.query_map(params![dataset_id, status, limit, offset], document_from)?;
    let documents = rows.collect::<Result<Vec<_>, _>>()?;
    let total: i64 = conn.query_row(
        "SELECT count(*) FROM documents WHERE dataset_id = ?1 AND (?2 IS NULL OR status = ?2)",
        params![dataset_id, status],
        |r| r.get(0),
    )?;
    Ok((documents, total as u64))
}

/// The document of this dataset with this checksum, if any.
pub fn find_by_checksum(
    conn: &Connection,
    dataset_id: &str,
    checksum: &str,
) -> rusqlite::Result<Option<Document>> {
    conn.query_row(
        &format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE dataset_id = ?1 AND checksum = ?2"
        ),
        params![dataset_id, checksum],
        document_from,
    )
    .optional()
}

pub struct NewDocument<'a> {
    pub id: &'a str,
    pub dataset_id: &'a str,
    pub job_id: &'a str,
    pub title: &'a str,
    pub filename: &'a str,
    pub mime_type: &'a str,
    pub size_bytes: u64,
    pub checksum: &'a str,
    pub chunking: ChunkSettings,
    pub created_by: &'a str,
}

pub fn insert_document(
    conn: &Connection,
    new: &NewDocument<'_>,
) -> Result<Document, KnowledgeError> {
    let now = crate::time_util::now_rfc3339();
    conn.execute(
        "INSERT INTO documents (id, dataset_id, job_id, title, filename, mime_type, size_bytes, checksum, status,
                                chunk_max_tokens, chunk_overlap_tokens, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?10, ?11, ?12, ?12)",
        params![
            new.id,
            new.dataset_id,
            new.job_id,
            new.title,
            new.filename,
            new.mime_type,
            new.size_bytes as i64,
            new.checksum,
            new.chunking.max_tokens as i64,
            new.chunking.overlap_tokens as i64,
            new.created_by,
            now
        ],
    )?;
    get_document(conn, new.dataset_id, new.id)
}

pub fn insert_job(
    conn: &Connection,
    dataset_id: &str,
    created_by: &str,
) -> rusqlite::Result<String> {
    let id = super::new_id();
    conn.execute(
        "INSERT INTO ingest_jobs (id, dataset_id, status, created_by, created_at) VALUES (?1, ?2, 'running', ?3, ?4)",
        params![id, dataset_id, created_by, crate::time_util::now_rfc3339()],
    )?;
    Ok(id)
}

fn job_from(conn: &Connection, r: &Row<'_>) -> rusqlite::Result<Job> {
    let id: String = r.get(0)?;
    let stored_status: String = r.get(2)?;
    let (total, ready, failed, cancelled, pending, seg_total, seg_done): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = conn.query_row(
        &format!(
            "SELECT count(*),
                    coalesce(sum(status = 'ready'), 0), coalesce(sum(status = 'failed'), 0),
                    coalesce(sum(status = 'cancelled'), 0), coalesce(sum(status IN {PENDING_STATES_SQL}), 0),
                    coalesce(sum(segments_total), 0), coalesce(sum(segments_done), 0)
             FROM documents WHERE job_id = ?1"
        ),
        [&id],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    )?;
    let status = if pending > 0 {
        "running"
    } else if stored_status == "cancelled" {
        "cancelled"
    } else {
        "done"
    };
    Ok(Job {
        id,
        dataset_id: r.get(1)?,
        status: status.into(),
        documents_total: total as u64,
        documents_ready: ready as u64,
        documents_failed: failed as u64,
        documents_cancelled: cancelled as u64,
        segments_total: seg_total as u64,
        segments_done: seg_done as u64,
        created_by: r.get(3)?,
        created_at: r.get(4)?,
        finished_at: if pending > 0 { None } else { r.get(5)? },
    })
}

pub fn get_job(conn: &Connection, id: &str) -> Result<Job, KnowledgeError> {
    let mut stmt = conn.prepare(
        "SELECT id, dataset_id, status, created_by, created_at, finished_at FROM ingest_jobs WHERE id = ?1",
    )?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => Ok(job_from(conn, row)?),
        None => Err(KnowledgeError::JobNotFound(id.to_string())),
    }
}

pub fn list_jobs(conn: &Connection, dataset_id: Option<&str>) -> rusqlite::Result<Vec<Job>> {
    let mut stmt = conn.prepare(
        "SELECT id, dataset_id, status, created_by, created_at, finished_at FROM ingest_jobs
         WHERE (?1 IS NULL OR dataset_id = ?1) ORDER BY created_at DESC, id LIMIT 50",
    )?;
    let mut rows = stmt.query([dataset_id])?;
    let mut jobs = Vec::new();
    while let Some(row) = rows.next()? {
        jobs.push(job_from(conn, row)?);
    }
    Ok(jobs)
}

/// Records when a job's last document finished (once).
pub fn finish_job_if_done(conn: &Connection, job_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "UPDATE ingest_jobs SET finished_at = ?2, status = CASE status WHEN 'cancelled' THEN 'cancelled' ELSE 'done' END
             WHERE id = ?1 AND finished_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM documents WHERE job_id = ?1 AND status IN {PENDING_STATES_SQL})"
        ),
        params![job_id, crate::time_util::now_rfc3339()],
    )?;
    Ok(())
}

/// Records when the job of document `id` finished, if this was its last unfinished document.
pub fn finish_job_of_document(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    let job: Option<String> = conn
        .query_row("SELECT job_id FROM documents WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    match job {
        Some(job) => finish_job_if_done(conn, &job),
        None => Ok(()),
    }
}

/// A page of a document's segments and their total.
pub fn list_segments(
    conn: &Connection,
    document_id: &str,
    limit: u32,
    offset: u32,
) -> rusqlite::Result<(Vec<Segment>, u64)> {
    let mut stmt = conn.prepare(
        "SELECT id, document_id, position, text, heading_path, token_count, page FROM segments
         WHERE document_id = ?1 ORDER BY position LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt.query_map(params![document_id, limit, offset], segment_from)?;
    let segments = rows.collect::<Result<Vec<_>, _>>()?;
    let total: i64 = conn.query_row(
        "SELECT count(*) FROM segments WHERE document_id = ?1",
        [document_id],
        |r| r.get(0),
    )?;
    Ok((segments, total as u64))
}

fn segment_from(r: &Row<'_>) -> rusqlite::Result<Segment> {
    let headings: String = r.get(4)?;
    Ok(Segment {
        id: r.get(0)?,
        document_id: r.get(1)?,
        position: r.get::<_, i64>(2)? as u32,
        text: r.get(3)?,
        heading_path: decode_headings(&headings),
        token_count: r.get::<_, i64>(5)? as u64,
        page: r.get::<_, Option<i64>>(6)?.map(|p| p as u32),
    })
}

/// Heading paths are stored as a JSON array.
pub fn encode_headings(path: &[String]) -> String {
    serde_json::to_string(path).unwrap_or_else(|_| "[]".into())
}

pub fn decode_headings(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The bytes of uploaded files a tenant keeps.
pub fn stored_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT coalesce(sum(size_bytes), 0) FROM documents",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// Marks a dataset's ready set as shrunk (the vector cache reloads it).
pub fn bump_removal(conn: &Connection, dataset_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE datasets SET removal_version = removal_version + 1 WHERE id = ?1",
        [dataset_id],
    )?;
    Ok(())
}

/// Deletes a document and its segments; returns it.
pub fn delete_document(
    conn: &Connection,
    dataset_id: &str,
    id: &str,
) -> Result<Document, KnowledgeError> {
    let document = get_document(conn, dataset_id, id)?;
    conn.execute("DELETE FROM documents WHERE id = ?1", [id])?;
    if document.status == DocumentStatus::Ready {
        bump_removal(conn, dataset_id)?;
    }
    Ok(document)
}

/// Queues a failed or cancelled document again (its segments are dropped: it starts over).
pub fn requeue(conn: &Connection, dataset_id: &str, id: &str) -> Result<Document, KnowledgeError> {
    let document = get_document(conn, dataset_id, id)?;
    if !matches!(
        document.status,
        DocumentStatus::Failed | DocumentStatus::Cancelled
    ) {
        return Err(KnowledgeError::StateConflict(format!(
            "only failed or cancelled documents can be retried; this one is {}",
            document.status.as_str()
        )));
    }
    conn.execute("DELETE FROM segments WHERE document_id = ?1", [id])?;
    conn.execute(
        "UPDATE documents SET status = 'queued', error_code = NULL, error_message = NULL, segments_total = 0,
                segments_done = 0, token_count = 0, updated_at = ?2 WHERE id = ?1",
        params![id, crate::time_util::now_rfc3339()],
    )?;
    if let Some(job) = &document.job_id {
        conn.execute(
            "UPDATE ingest_jobs SET status = 'running', finished_at = NULL WHERE id = ?1",
            [job],
        )?;
    }
    get_document(conn, dataset_id, id)
}

/// Cancels a pending document (its partial segments are dropped).
pub fn cancel(conn: &Connection, dataset_id: &str, id: &str) -> Result<Document, KnowledgeError> {
    let document = get_document(conn, dataset_id, id)?;
    if !document.status.is_pending() {
        return Err(KnowledgeError::StateConflict(format!(
            "only documents still being ingested can be cancelled; this one is {}",
            document.status.as_str()
        )));
    }
    mark_cancelled(conn, id)?;
    if let Some(job) = &document.job_id {
        finish_job_if_done(conn, job)?;
    }
    get_document(conn, dataset_id, id)
}

fn mark_cancelled(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM segments WHERE document_id = ?1", [id])?;
    conn.execute(
        "UPDATE documents SET status = 'cancelled', segments_done = 0, updated_at = ?2 WHERE id = ?1",
        params![id, crate::time_util::now_rfc3339()],
    )?;
    Ok(())
}

/// Cancels every unfinished document of a job.
pub fn cancel_job(conn: &Connection, job_id: &str) -> Result<Job, KnowledgeError> {
    let job = get_job(conn, job_id)?;
    let pending: Vec<String> = {
        let mut stmt = conn.prepare(&format!(
            "SELECT id FROM documents WHERE job_id = ?1 AND status IN {PENDING_STATES_SQL}"
        ))?;
        let rows = stmt.query_map([job_id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for id in &pending {
        mark_cancelled(conn, id)?;
    }
    if !pending.is_empty() || job.status == "running" {
        conn.execute(
            "UPDATE ingest_jobs SET status = 'cancelled' WHERE id = ?1",
            [job_id],
        )?;
    }
    finish_job_if_done(conn, job_id)?;
    get_job(conn, job_id)
}
