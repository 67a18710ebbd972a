-- Knowledge bases: datasets, their documents (the uploaded file is kept under files/), the segments cut
-- from them with each segment's vector, and ingestion jobs (one per upload). Ingestion state lives here
-- so that a restart resumes it.
CREATE TABLE datasets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    embedding_model TEXT NOT NULL,
    chunk_max_tokens INTEGER NOT NULL CHECK (chunk_max_tokens > 0),
    chunk_overlap_tokens INTEGER NOT NULL CHECK (chunk_overlap_tokens >= 0),
    -- Bumped when a document becomes ready (additions) and when ready segments go away (removals):
    -- the in-memory vector cache compares them to know what to load.
    ready_version INTEGER NOT NULL DEFAULT 0,
    removal_version INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX datasets_by_name ON datasets (name COLLATE NOCASE);

CREATE TABLE ingest_jobs (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    -- running | done | cancelled
    status TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT
) WITHOUT ROWID;
CREATE INDEX ingest_jobs_by_dataset ON ingest_jobs (dataset_id, created_at);

-- A rowid table: the rowid orders documents of one upload the way they were sent.
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    job_id TEXT REFERENCES ingest_jobs (id) ON DELETE SET NULL,
    title TEXT NOT NULL,
    filename TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    checksum TEXT NOT NULL,
    -- queued | parsing | embedding | indexing | ready | failed | cancelled
    status TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    chunk_max_tokens INTEGER NOT NULL,
    chunk_overlap_tokens INTEGER NOT NULL,
    segments_total INTEGER NOT NULL DEFAULT 0,
    segments_done INTEGER NOT NULL DEFAULT 0,
    token_count INTEGER NOT NULL DEFAULT 0,
    -- Whether documents_ingested was counted (once per document, even across retries).
    metered INTEGER NOT NULL DEFAULT 0,
    -- The dataset's ready_version at which this document became ready.
    ready_version INTEGER,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX documents_by_checksum ON documents (dataset_id, checksum);
CREATE INDEX documents_by_status ON documents (status);
CREATE INDEX documents_by_job ON documents (job_id);

-- A segment's vector is int8 components with one f32 scale (little-endian, after the components):
-- component i is vector[i] * scale. NULL until the segment is embedded.
CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    dataset_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    heading_path TEXT NOT NULL,
    page INTEGER,
    token_count INTEGER NOT NULL,
    vector BLOB,
    UNIQUE (document_id, position)
);
CREATE INDEX segments_by_dataset ON segments (dataset_id);
