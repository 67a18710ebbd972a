//! Knowledge bases: datasets of uploaded documents, cut into segments, embedded and indexed, and the
//! retrieval over them (docs/knowledge.md).
//!
//! - `extract` reads a file's text and structure (format sniffed from the content), `chunk` cuts it
//!   into segments with a token budget;
//! - `store` is the SQL of datasets, documents, segments and jobs in the tenant database, `files` the
//!   uploaded originals under `<tenant>/files/`;
//! - `index` is the tenant's Tantivy index (`tokenizer`: words plus CJK bigrams), `vectors` the
//!   int8 vectors held in memory for cosine search, `search` the three retrieval modes and the fusion;
//! - `ingest` is the background worker that takes queued documents through parsing, embedding and
//!   indexing, persisted so a restart resumes.
//!
//! Architecture Invariant: a document is searchable only when its status is `ready`, which is set in
//! the same transaction as the last of its state; every search joins on it, so a crash half-way leaves
//! nothing half-indexed visible, and a rebuild of the Tantivy index from the database is always correct.

pub mod chunk;
pub mod extract;
pub mod files;
pub mod index;
pub mod ingest;
pub mod search;
pub mod store;
pub mod tokenizer;
pub mod top;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::db::DbError;
use crate::error::{Code, ErrorCode};

pub use chunk::ChunkSettings;

/// The smallest `max_tokens` a dataset may use.
pub const MIN_CHUNK_TOKENS: usize = 16;

impl ChunkSettings {
    /// Checks the settings against the embedding model's input limit (`model_max`, special tokens
    /// included).
    pub fn validate(&self, model_max: usize) -> Result<(), KnowledgeError> {
        let most = model_max.saturating_sub(2).max(MIN_CHUNK_TOKENS);
        if !(MIN_CHUNK_TOKENS..=most).contains(&self.max_tokens) {
            return Err(KnowledgeError::Invalid(format!(
                "chunking.max_tokens must be between {MIN_CHUNK_TOKENS} and {most} (what the embedding model reads at once), not {}",
                self.max_tokens
            )));
        }
        if self.overlap_tokens * 2 > self.max_tokens {
            return Err(KnowledgeError::Invalid(format!(
                "chunking.overlap_tokens must be at most half of max_tokens ({}), not {}",
                self.max_tokens / 2,
                self.overlap_tokens
            )));
        }
        Ok(())
    }
}

/// A knowledge base.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Dataset {
    pub id: String,
    pub name: String,
    pub description: String,
    pub embedding_model: String,
    pub chunking: ChunkSettings,
    pub document_count: u64,
    pub ready_count: u64,
    pub segment_count: u64,
    pub size_bytes: u64,
    pub created_at: String,
    pub updated_at: String,
}

/// A per-document error: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DocumentError {
    pub code: String,
    pub message: String,
}

/// Where a document is in its ingestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Queued,
    Parsing,
    Embedding,
    Indexing,
    Ready,
    Failed,
    Cancelled,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Queued => "queued",
            DocumentStatus::Parsing => "parsing",
            DocumentStatus::Embedding => "embedding",
            DocumentStatus::Indexing => "indexing",
            DocumentStatus::Ready => "ready",
            DocumentStatus::Failed => "failed",
            DocumentStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<DocumentStatus> {
        [
            DocumentStatus::Queued,
            DocumentStatus::Parsing,
            DocumentStatus::Embedding,
            DocumentStatus::Indexing,
            DocumentStatus::Ready,
            DocumentStatus::Failed,
            DocumentStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the ingestion of a document in this state is still to finish.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            DocumentStatus::Queued
                | DocumentStatus::Parsing
                | DocumentStatus::Embedding
                | DocumentStatus::Indexing
        )
    }
}

/// The SQL list of pending states, for `status IN (...)`.
pub const PENDING_STATES_SQL: &str = "('queued','parsing','embedding','indexing')";

/// A document of a dataset.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Document {
    pub id: String,
    pub dataset_id: String,
    pub job_id: Option<String>,
    pub title: String,
    pub filename: String,
    pub mime_type: String,
    pub size_bytes: u64,
    /// SHA-256 of the file, hex.
    pub checksum: String,
    pub status: DocumentStatus,
    pub error: Option<DocumentError>,
    pub segments_total: u64,
    pub segments_done: u64,
    pub token_count: u64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A segment: a piece of a document's text, the unit that is embedded, indexed and found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Segment {
    pub id: i64,
    pub document_id: String,
    pub position: u32,
    pub text: String,
    pub heading_path: Vec<String>,
    pub token_count: u64,
    pub page: Option<u32>,
}

/// An ingestion job: the documents of one upload.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub dataset_id: String,
    /// `running`, `done` or `cancelled`.
    pub status: String,
    pub documents_total: u64,
    pub documents_ready: u64,
    pub documents_failed: u64,
    pub documents_cancelled: u64,
    pub segments_total: u64,
    pub segments_done: u64,
    pub created_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// What can go wrong with knowledge bases.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{0}")]
    Invalid(String),
    #[error("no knowledge base with id {0:?} in this tenant")]
    DatasetNotFound(String),
    #[error("a knowledge base named {0:?} already exists in this tenant")]
    DatasetExists(String),
    #[error("no document with id {0:?} in this knowledge base")]
    DocumentNotFound(String),
    #[error("no ingestion job with id {0:?} in this tenant")]
    JobNotFound(String),
    #[error("{0}")]
    StateConflict(String),
    #[error("{message}")]
    Unreadable { code: &'static str, message: String },
    #[error(
        "embedding model {0:?} is not installed (`enclave models list` shows the installed ones)"
    )]
    ModelNotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("search index: {0}")]
    Index(String),
    #[error("file storage: {0}")]
    Io(String),
}

impl From<rusqlite::Error> for KnowledgeError {
    fn from(e: rusqlite::Error) -> Self {
        KnowledgeError::Db(DbError::Sqlite(e))
    }
}

impl From<tantivy::TantivyError> for KnowledgeError {
    fn from(e: tantivy::TantivyError) -> Self {
        KnowledgeError::Index(e.to_string())
    }
}

impl ErrorCode for KnowledgeError {
    fn code(&self) -> Code {
        match self {
            KnowledgeError::Invalid(_) => Code::InvalidRequest,
            KnowledgeError::DatasetNotFound(_) => Code::DatasetNotFound,
            KnowledgeError::DatasetExists(_) => Code::DatasetExists,
            KnowledgeError::DocumentNotFound(_) => Code::DocumentNotFound,
            KnowledgeError::JobNotFound(_) => Code::IngestJobNotFound,
            KnowledgeError::StateConflict(_) => Code::DocumentStateConflict,
            KnowledgeError::Unreadable { .. } => Code::DocumentUnreadable,
            KnowledgeError::ModelNotFound(_) => Code::ModelNotFound,
            KnowledgeError::Db(e) => e.code(),
            KnowledgeError::Index(_) | KnowledgeError::Io(_) => Code::Internal,
        }
    }

    fn public_message(&self) -> String {
        match self {
            KnowledgeError::Db(e) => e.public_message(),
            KnowledgeError::Index(_) | KnowledgeError::Io(_) => {
                "the knowledge base storage failed; the request id finds the cause in the server log"
                    .into()
            }
            other => other.to_string(),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            KnowledgeError::Unreadable { code, .. } => {
                Some(serde_json::json!({ "document_error": code }))
            }
            _ => None,
        }
    }
}

/// A new random id (hex).
pub fn new_id() -> String {
    hex::encode(crate::tenancy::random_bytes::<12>())
}

/// Everything of one tenant's knowledge bases that lives outside its database: the Tantivy index, the
/// vectors loaded for search and the files directory. Opened on first use; held by the tenant's
/// `TenantDb`, so it is reachable only through that tenant.
pub struct TenantKnowledge {
    dir: PathBuf,
    index: OnceLock<Arc<index::TenantIndex>>,
    pub vectors: vectors::VectorCache,
}

impl std::fmt::Debug for TenantKnowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKnowledge")
            .field("dir", &self.dir)
            .finish()
    }
}

impl TenantKnowledge {
    /// The knowledge of the tenant whose directory is `tenant_dir`.
    pub fn new(tenant_dir: &Path) -> TenantKnowledge {
        TenantKnowledge {
            dir: tenant_dir.to_path_buf(),
            index: OnceLock::new(),
            vectors: vectors::VectorCache::default(),
        }
    }

    /// The tenant's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Tantivy index, opened (or created) on first use. Blocking.
    pub fn index(&self) -> Result<Arc<index::TenantIndex>, KnowledgeError> {
        if let Some(index) = self.index.get() {
            return Ok(index.clone());
        }
        let opened = Arc::new(index::TenantIndex::open(&self.dir.join(index::INDEX_DIR))?);
        Ok(self.index.get_or_init(|| opened).clone())
    }

    /// Where uploaded files are kept.
    pub fn files(&self) -> files::FileStore {
        files::FileStore::new(&self.dir)
    }
}
