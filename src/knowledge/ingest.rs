//! The ingestion worker: takes queued documents through parsing, embedding and indexing.
//!
//! State is in the tenant database, never only in memory: a document's status, its segments (written
//! all at once after parsing) and each segment's vector (written batch by batch with the progress
//! counter). After a restart the worker finds unfinished documents (a scan of every tenant at start)
//! and carries on from the first segment without a vector.
//!
//! One worker task serves every tenant, one document at a time, rotating between tenants that have
//! work so one big upload does not starve the others. Parsing and SQL run on the blocking pool;
//! embeddings go through the inference service's batching thread like any other request.
//!
//! A document becomes `ready` only in the transaction that follows the index commit, guarded by its
//! status: a document cancelled or deleted meanwhile is taken out of the index again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, OptionalExtension};

use super::chunk::{ChunkSettings, TokenCounter};
use super::extract::{ExtractError, ExtractLimits};
use super::index::IndexedSegment;
use super::{store, DocumentStatus, KnowledgeError, PENDING_STATES_SQL};
use crate::inference::embedding::EmbeddingModel;
use crate::inference::service::ServiceError;
use crate::state::AppState;
use crate::tenancy::{TenantDb, TenantId};
use crate::usage::Metric;

/// How long to wait before retrying when the embedding model is loading or its queue is full.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// The queue of tenants with work, and the signal that wakes the worker.
#[derive(Default)]
pub struct Ingestor {
    tenants: Mutex<VecDeque<TenantId>>,
    wake: tokio::sync::Notify,
}

impl Ingestor {
    /// Tells the worker that `tenant` has queued documents.
    pub fn wake(&self, tenant: &TenantId) {
        {
            let mut tenants = self
                .tenants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !tenants.contains(tenant) {
                tenants.push_back(tenant.clone());
            }
        }
        self.wake.notify_one();
    }

    fn next_tenant(&self) -> Option<TenantId> {
        self.tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    }

    /// Starts the worker (and the scan for unfinished documents) on the current runtime.
    pub fn start(state: AppState) {
        let scan = state.clone();
        tokio::spawn(async move {
            let ingest = scan.ingest.clone();
            let found = tokio::task::spawn_blocking(move || tenants_with_work(&scan)).await;
            for tenant in found.unwrap_or_default() {
                ingest.wake(&tenant);
            }
        });
        tokio::spawn(async move {
            loop {
                let Some(tenant) = state.ingest.next_tenant() else {
                    state.ingest.wake.notified().await;
                    continue;
                };
                match work_on(&state, &tenant).await {
                    Ok(true) => state.ingest.wake(&tenant), // more to do: back of the queue
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(tenant = %tenant, error = %e, "ingestion failed; retrying in a while");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        state.ingest.wake(&tenant);
                    }
                }
            }
        });
    }
}

/// Tenants that have unfinished documents (checked at start-up).
fn tenants_with_work(state: &AppState) -> Vec<TenantId> {
    let Ok(records) = state.system.list_tenants() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for record in records {
        let Ok(id) = TenantId::parse(&record.id) else {
            continue;
        };
        let Ok((_, tenant)) = state.tenants.get(&id) else {
            continue;
        };
        tenant.knowledge().files().clean_incoming();
        let pending = tenant.db().read(|c| {
            c.query_row(
                &format!("SELECT 1 FROM documents WHERE status IN {PENDING_STATES_SQL} LIMIT 1"),
                [],
                |_| Ok(()),
            )
            .optional()
        });
        if matches!(pending, Ok(Some(()))) {
            out.push(id);
        }
    }
    out
}

/// Processes the tenant's next pending document. `Ok(true)` when it may have more.
async fn work_on(state: &AppState, tenant_id: &TenantId) -> Result<bool, KnowledgeError> {
    let registry = state.tenants.clone();
    let id = tenant_id.clone();
    let opened = tokio::task::spawn_blocking(move || registry.get(&id))
        .await
        .map_err(|e| KnowledgeError::Io(format!("worker: {e}")))?;
    let (record, tenant) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(tenant = %tenant_id, error = %e, "ingestion skipped: the tenant is not available");
            return Ok(false);
        }
    };
    if record.status == "suspended" {
        return Ok(false);
    }
    let db = tenant.clone();
    let next: Option<String> = blocking(move || {
        db.db()
            .read(|c| {
                c.query_row(
                    &format!(
                        "SELECT id FROM documents WHERE status IN {PENDING_STATES_SQL}
                         ORDER BY created_at, rowid LIMIT 1"
                    ),
                    [],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(KnowledgeError::from)
    })
    .await?;
    let Some(document_id) = next else {
        let t = tenant.clone();
        let _ = blocking(move || {
            if let Ok(index) = t.knowledge().index() {
                index.release_writer();
            }
            Ok(())
        })
        .await;
        return Ok(false);
    };
    if let Err(failure) = ingest_document(state, &tenant, &document_id).await {
        match failure {
            Failure::Document { code, message } => {
                tracing::info!(tenant = %tenant_id, document = %document_id, code, "document failed");
                let t = tenant.clone();
                let doc = document_id.clone();
                blocking(move || mark_failed(&t, &doc, code, &message)).await?;
            }
            Failure::Later(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Why a document did not finish.
enum Failure {
    /// The document itself failed: recorded on it.
    Document { code: &'static str, message: String },
    /// Something outside the document (database, disk): retried later.
    Later(KnowledgeError),
}

impl From<KnowledgeError> for Failure {
    fn from(e: KnowledgeError) -> Self {
        Failure::Later(e)
    }
}

impl From<ExtractError> for Failure {
    fn from(e: ExtractError) -> Self {
        Failure::Document {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KnowledgeError> + Send + 'static,
) -> Result<T, KnowledgeError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(KnowledgeError::Io(format!("ingestion task panicked: {e}"))),
    }
}

struct Job {
    dataset_id: String,
    status: DocumentStatus,
    title: String,
    filename: String,
    embedding_model: String,
    chunking: ChunkSettings,
    created_by: String,
    metered: bool,
}

fn load_job(tenant: &TenantDb, document_id: &str) -> Result<Option<Job>, KnowledgeError> {
    Ok(tenant.db().read(|c| {
        c.query_row(
            "SELECT d.dataset_id, d.status, d.title, d.filename, s.embedding_model, d.chunk_max_tokens,
                    d.chunk_overlap_tokens, d.created_by, d.metered
             FROM documents d JOIN datasets s ON s.id = d.dataset_id WHERE d.id = ?1",
            [document_id],
            |r| {
                let status: String = r.get(1)?;
                Ok(Job {
                    dataset_id: r.get(0)?,
                    status: DocumentStatus::parse(&status).unwrap_or(DocumentStatus::Failed),
                    title: r.get(2)?,
                    filename: r.get(3)?,
                    embedding_model: r.get(4)?,
                    chunking: ChunkSettings {
                        max_tokens: r.get::<_, i64>(5)? as usize,
                        overlap_tokens: r.get::<_, i64>(6)? as usize,
                    },
                    created_by: r.get(7)?,
                    metered: r.get(8)?,
                })
            },
        )
        .optional()
    })?)
}

/// Counts tokens with the embedding model's tokenizer (special tokens left out).
pub struct ModelTokens<'a>(pub &'a EmbeddingModel);

impl TokenCounter for ModelTokens<'_> {
    fn count(&self, text: &str) -> usize {
        match self.0.count_tokens(text) {
            Ok(n) => n.saturating_sub(2),
            Err(_) => text.len().div_ceil(4),
        }
    }
}

/// The embedding model of a dataset, waiting while it loads.
async fn embedding_model(state: &AppState, name: &str) -> Result<Arc<EmbeddingModel>, Failure> {
    for _ in 0..240 {
        match state.inference.embedding_model(Some(name)) {
            Ok(model) => return Ok(model),
            Err(ServiceError::ModelNotReady { state: s, .. }) if s.contains("loading") => {
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(e) => {
                return Err(Failure::Document {
                    code: "embedding_failed",
                    message: format!("the embedding model is not usable: {e}"),
                })
            }
        }
    }
    Err(Failure::Later(KnowledgeError::Io(format!(
        "the embedding model {name:?} is still loading"
    ))))
}

/// The text that is embedded for a segment: where it is, then what it says.
pub fn embedding_input(title: &str, headings: &[String], text: &str) -> String {
    let mut out = String::with_capacity(title.len() + text.len() + 32);
    if !title.is_empty() {
        out.push_str(title);
        out.push('\n');
    }
    if !headings.is_empty() {
        out.push_str(&headings.join(" > "));
        out.push('\n');
    }
    out.push_str(text);
    out
}

async fn ingest_document(
    state: &AppState,
    tenant: &Arc<TenantDb>,
    document_id: &str,
) -> Result<(), Failure> {
    let t = tenant.clone();
    let id = document_id.to_string();
    let Some(job) = blocking(move || load_job(&t, &id)).await? else {
        return Ok(()); // deleted meanwhile
    };
    let model = embedding_model(state, &job.embedding_model).await?;

    // 1. Parse and chunk (unless a previous run got that far).
    if matches!(job.status, DocumentStatus::Queued | DocumentStatus::Parsing) {
        let t = tenant.clone();
        let id = document_id.to_string();
        let m = model.clone();
        let config = state.config.knowledge.clone();
        let dataset_id = job.dataset_id.clone();
        let filename = job.filename.clone();
        let fallback_title = job.title.clone();
        let chunking = job.chunking;
        blocking(move || {
            set_status(&t, &id, DocumentStatus::Parsing)?;
            let path = t.knowledge().files().path(&dataset_id, &id)?;
            let bytes = std::fs::read(&path)
                .map_err(|e| KnowledgeError::Io(format!("reading {}: {e}", path.display())))?;
            let limits = ExtractLimits {
                max_unpacked_bytes: config.max_unpacked_bytes,
                ..ExtractLimits::default()
            };
            if let Ok(format) = super::extract::sniff(&bytes, &filename) {
                t.db().write(|tx| {
                    tx.execute(
                        "UPDATE documents SET mime_type = ?2 WHERE id = ?1",
                        params![id, format.mime()],
                    )?;
                    Ok::<_, KnowledgeError>(())
                })?;
            }
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                super::extract::extract(&bytes, &filename, &limits)
            }));
            let extracted = match parsed {
                Ok(Ok(extracted)) => extracted,
                Ok(Err(e)) => return Ok(Err(Failure::from(e))),
                Err(_) => {
                    return Ok(Err(Failure::Document {
                        code: "corrupt_document",
                        message: "the file could not be read: it looks damaged".into(),
                    }))
                }
            };
            let chunks = super::chunk::chunk(&extracted.blocks, &chunking, &ModelTokens(&m));
            if chunks.is_empty() {
                return Ok(Err(Failure::Document {
                    code: "empty_document",
                    message: "no text was found in the document".into(),
                }));
            }
            if chunks.len() > config.max_segments_per_document {
                return Ok(Err(Failure::Document {
                    code: "too_many_segments",
                    message: format!(
                        "the document makes {} segments; the limit is {} (knowledge.max_segments_per_document)",
                        chunks.len(),
                        config.max_segments_per_document
                    ),
                }));
            }
            let title = extracted
                .title
                .filter(|t| !t.trim().is_empty())
                .unwrap_or(fallback_title);
            t.db().write(|tx| {
                let status: Option<String> = tx
                    .query_row("SELECT status FROM documents WHERE id = ?1", [&id], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if status.as_deref() != Some("parsing") {
                    return Ok::<_, KnowledgeError>(()); // cancelled or deleted meanwhile
                }
                tx.execute("DELETE FROM segments WHERE document_id = ?1", [&id])?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO segments (document_id, dataset_id, position, text, heading_path, page, token_count)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for c in &chunks {
                    insert.execute(params![
                        id,
                        dataset_id,
                        c.position,
                        c.text,
                        store::encode_headings(&c.heading_path),
                        c.page,
                        c.token_count as i64
                    ])?;
                }
                tx.execute(
                    "UPDATE documents SET status = 'embedding', title = ?2, mime_type = ?3, segments_total = ?4,
                            segments_done = 0, updated_at = ?5 WHERE id = ?1",
                    params![
                        id,
                        title,
                        extracted.format.mime(),
                        chunks.len() as i64,
                        crate::time_util::now_rfc3339()
                    ],
                )?;
                Ok(())
            })?;
            Ok(Ok(()))
        })
        .await??;
    }

    // 2. Embed, batch by batch.
    let batch_size = state.config.knowledge.embedding_batch;
    loop {
        let t = tenant.clone();
        let id = document_id.to_string();
        let batch = blocking(move || next_batch(&t, &id, batch_size)).await?;
        let Some(batch) = batch else {
            return Ok(()); // cancelled or deleted
        };
        if batch.segments.is_empty() {
            break;
        }
        let inputs: Vec<String> = batch
            .segments
            .iter()
            .map(|(_, headings, text, _)| embedding_input(&batch.title, headings, text))
            .collect();
        let estimate: u64 = batch
            .segments
            .iter()
            .map(|(_, _, _, tokens)| *tokens + 2)
            .sum::<u64>()
            .max(1);
        let reservation = reserve_tokens(state, tenant, &job.created_by, estimate).await?;
        let embedded = loop {
            match state.inference.embed(model.clone(), inputs.clone()).await {
                Ok(embedded) => break embedded,
                Err(ServiceError::Busy) => tokio::time::sleep(RETRY_DELAY).await,
                Err(e) => {
                    return Err(Failure::Document {
                        code: "embedding_failed",
                        message: format!("embedding failed: {e}"),
                    })
                }
            }
        };
        let tokens: u64 = embedded.iter().map(|e| e.tokens as u64).sum();
        reservation
            .commit(tokens)
            .await
            .map_err(|e| Failure::Later(KnowledgeError::Io(format!("usage meter: {e}"))))?;
        let t = tenant.clone();
        let id = document_id.to_string();
        let rows: Vec<(i64, Vec<u8>)> = batch
            .segments
            .iter()
            .zip(&embedded)
            .map(|((sid, _, _, _), e)| (*sid, super::vectors::encode(&e.vector)))
            .collect();
        let still = blocking(move || {
            t.db().write(|tx| {
                let mut update =
                    tx.prepare_cached("UPDATE segments SET vector = ?2 WHERE id = ?1")?;
                for (sid, blob) in &rows {
                    update.execute(params![sid, blob])?;
                }
                let n = tx.execute(
                    "UPDATE documents SET segments_done = segments_done + ?2, token_count = token_count + ?3,
                            updated_at = ?4 WHERE id = ?1 AND status = 'embedding'",
                    params![id, rows.len() as i64, tokens as i64, crate::time_util::now_rfc3339()],
                )?;
                Ok::<_, KnowledgeError>(n == 1)
            })
        })
        .await?;
        if !still {
            return Ok(());
        }
    }

    // 3. Index, then make it ready.
    let t = tenant.clone();
    let id = document_id.to_string();
    let title = job.title.clone();
    let ready = blocking(move || index_and_publish(&t, &id, &title)).await?;
    if ready && !job.metered {
        if let Err(e) = state
            .usage
            .meter
            .record(tenant, &job.created_by, Metric::DocumentsIngested, 1)
            .await
        {
            tracing::warn!(error = %e, "documents_ingested was not recorded");
        } else {
            let t = tenant.clone();
            let id = document_id.to_string();
            blocking(move || {
                t.db().write(|tx| {
                    tx.execute("UPDATE documents SET metered = 1 WHERE id = ?1", [&id])?;
                    Ok::<_, KnowledgeError>(())
                })
            })
            .await?;
        }
    }
    Ok(())
}

struct Batch {
    title: String,
    /// (segment id, heading path, text, token count)
    segments: Vec<(i64, Vec<String>, String, u64)>,
}

/// The next segments without a vector; `None` when the document is no longer being embedded.
fn next_batch(tenant: &TenantDb, id: &str, size: usize) -> Result<Option<Batch>, KnowledgeError> {
    Ok(tenant.db().read(|c| {
        let row: Option<(String, String)> = c
            .query_row(
                "SELECT status, title FROM documents WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((status, title)) = row else {
            return Ok(None);
        };
        if status != "embedding" && status != "indexing" {
            return Ok(None);
        }
        let mut stmt = c.prepare_cached(
            "SELECT id, heading_path, text, token_count FROM segments
             WHERE document_id = ?1 AND vector IS NULL ORDER BY position LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![id, size as i64], |r| {
            let headings: String = r.get(1)?;
            Ok((
                r.get::<_, i64>(0)?,
                store::decode_headings(&headings),
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)? as u64,
            ))
        })?;
        let segments = rows.collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Batch { title, segments }))
    })?)
}

/// Puts a fully embedded document into the index and, in one transaction, makes it ready.
/// Returns whether it became ready (not if it was cancelled or deleted meanwhile).
fn index_and_publish(tenant: &TenantDb, id: &str, title: &str) -> Result<bool, KnowledgeError> {
    let moved = tenant.db().write(|tx| {
        let n = tx.execute(
            "UPDATE documents SET status = 'indexing', updated_at = ?2 WHERE id = ?1 AND status IN ('embedding', 'indexing')",
            params![id, crate::time_util::now_rfc3339()],
        )?;
        Ok::<_, KnowledgeError>(n == 1)
    })?;
    if !moved {
        return Ok(false);
    }
    let (dataset_id, title, rows) = tenant.db().read(|c| {
        let (dataset_id, doc_title): (String, String) = c.query_row(
            "SELECT dataset_id, title FROM documents WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut stmt = c.prepare(
            "SELECT id, heading_path, text FROM segments WHERE document_id = ?1 ORDER BY position",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                let headings: String = r.get(1)?;
                Ok((
                    r.get::<_, i64>(0)?,
                    store::decode_headings(&headings).join(" > "),
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let title = if doc_title.is_empty() {
            title.to_string()
        } else {
            doc_title
        };
        Ok((dataset_id, title, rows))
    })?;
    let index = tenant.knowledge().index()?;
    let segments: Vec<IndexedSegment<'_>> = rows
        .iter()
        .map(|(sid, headings, text)| IndexedSegment {
            segment_id: *sid,
            dataset_id: &dataset_id,
            document_id: id,
            title: &title,
            headings,
            text,
        })
        .collect();
    index.replace_document(id, &segments)?;
    let published = tenant.db().write(|tx| {
        let n = tx.execute(
            "UPDATE documents SET status = 'ready', updated_at = ?2,
                    ready_version = (SELECT ready_version + 1 FROM datasets WHERE id = documents.dataset_id)
             WHERE id = ?1 AND status = 'indexing'",
            params![id, crate::time_util::now_rfc3339()],
        )?;
        if n == 1 {
            tx.execute(
                "UPDATE datasets SET ready_version = ready_version + 1 WHERE id = ?1",
                [&dataset_id],
            )?;
            store::finish_job_of_document(tx, id)?;
        }
        Ok::<_, KnowledgeError>(n == 1)
    })?;
    if !published {
        index.delete_document(id)?;
    }
    Ok(published)
}

fn set_status(tenant: &TenantDb, id: &str, status: DocumentStatus) -> Result<(), KnowledgeError> {
    tenant.db().write(|tx| {
        tx.execute(
            &format!(
                "UPDATE documents SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status IN {PENDING_STATES_SQL}"
            ),
            params![id, status.as_str(), crate::time_util::now_rfc3339()],
        )?;
        Ok(())
    })
}

fn mark_failed(
    tenant: &TenantDb,
    id: &str,
    code: &str,
    message: &str,
) -> Result<(), KnowledgeError> {
    tenant.db().write(|tx| {
        let n = tx.execute(
            &format!(
                "UPDATE documents SET status = 'failed', error_code = ?2, error_message = ?3, segments_done = 0,
                        updated_at = ?4 WHERE id = ?1 AND status IN {PENDING_STATES_SQL}"
            ),
            params![id, code, message, crate::time_util::now_rfc3339()],
        )?;
        if n == 1 {
            tx.execute("DELETE FROM segments WHERE document_id = ?1", [id])?;
            store::finish_job_of_document(tx, id)?;
        }
        Ok(())
    })
}

/// Reserves embedding tokens against the tenant's monthly quota; over it, the document fails.
async fn reserve_tokens(
    state: &AppState,
    tenant: &Arc<TenantDb>,
    principal: &str,
    quantity: u64,
) -> Result<crate::usage::meter::Reservation, Failure> {
    let quota = crate::usage::gate::tenant_quota(state, tenant, Metric::EmbeddingTokens)
        .await
        .map_err(|e| Failure::Later(KnowledgeError::Io(format!("quota: {}", e.message))))?;
    match state
        .usage
        .meter
        .reserve(tenant, principal, Metric::EmbeddingTokens, quantity, quota)
        .await
    {
        Ok(Ok(reservation)) => Ok(reservation),
        Ok(Err(over)) => Err(Failure::Document {
            code: "quota_exceeded",
            message: format!(
                "the monthly embedding_tokens quota is used up ({} of {}); retry the document next month or after the quota is raised",
                over.used, over.limit
            ),
        }),
        Err(e) => Err(Failure::Later(KnowledgeError::Io(format!("usage meter: {e}")))),
    }
}

/// Rebuilds a tenant's index from its database (ready documents only). Blocking.
pub fn rebuild_index(tenant: &TenantDb) -> Result<u64, KnowledgeError> {
    let index = tenant.knowledge().index()?;
    let conn = tenant.db().connection()?;
    let added = index.rebuild(|add| {
        let mut stmt = conn.prepare(
            "SELECT s.id, s.dataset_id, s.document_id, d.title, s.heading_path, s.text
             FROM segments s JOIN documents d ON d.id = s.document_id
             WHERE d.status = 'ready' ORDER BY s.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let headings: String = r.get(4)?;
            let headings = store::decode_headings(&headings).join(" > ");
            let dataset_id: String = r.get(1)?;
            let document_id: String = r.get(2)?;
            let title: String = r.get(3)?;
            let text: String = r.get(5)?;
            add(IndexedSegment {
                segment_id: r.get(0)?,
                dataset_id: &dataset_id,
                document_id: &document_id,
                title: &title,
                headings: &headings,
                text: &text,
            })?;
        }
        Ok(())
    })?;
    index.release_writer();
    Ok(added)
}
