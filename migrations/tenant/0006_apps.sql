-- Chat apps: their configuration and versioned prompts, conversations with their messages and the
-- passages each answer cited, feedback, annotations (corrected answers reused for similar questions)
-- and the end users each app has seen.
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- The app's settings as JSON (`apps::AppConfig`): model, generation, knowledge bases, retrieval, ...
    config TEXT NOT NULL,
    -- The prompt version the app answers with.
    prompt_version INTEGER NOT NULL,
    published INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1)),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX apps_by_name ON apps (name COLLATE NOCASE);

-- Prompt versions are written once and never changed.
CREATE TABLE app_prompt_versions (
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    version INTEGER NOT NULL CHECK (version > 0),
    system_template TEXT NOT NULL,
    user_template TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (app_id, version)
) WITHOUT ROWID;

CREATE TABLE app_end_users (
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    end_user TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, end_user)
) WITHOUT ROWID;

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    end_user TEXT NOT NULL,
    -- web | api | debug | openai
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX conversations_by_user ON conversations (app_id, end_user, updated_at);

-- One exchange: the question and its answer. A rowid table: the rowid orders messages.
CREATE TABLE messages (
    id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    app_id TEXT NOT NULL,
    end_user TEXT NOT NULL,
    query TEXT NOT NULL,
    answer TEXT NOT NULL DEFAULT '',
    -- The input variables' values (JSON object).
    inputs TEXT NOT NULL DEFAULT '{}',
    -- complete | stopped | failed
    status TEXT NOT NULL,
    error TEXT,
    model TEXT NOT NULL,
    prompt_version INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms INTEGER NOT NULL DEFAULT 0,
    annotation_id TEXT,
    -- like | dislike | NULL
    rating TEXT CHECK (rating IN ('like', 'dislike')),
    comment TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id);
CREATE INDEX messages_by_app ON messages (app_id, created_at);
CREATE INDEX messages_by_user ON messages (app_id, end_user);

-- A copy of each passage an answer was given, so that a citation opens even after its document is gone.
CREATE TABLE message_citations (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    segment_id INTEGER NOT NULL,
    dataset_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    document_title TEXT NOT NULL,
    heading_path TEXT NOT NULL,
    page INTEGER,
    text TEXT NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (message_id, n)
) WITHOUT ROWID;

CREATE TABLE annotations (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    -- The question's embedding (little-endian f32, L2-normalised) and the model that made it.
    vector BLOB NOT NULL,
    embedding_model TEXT NOT NULL,
    message_id TEXT,
    hit_count INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX annotations_by_app ON annotations (app_id);
