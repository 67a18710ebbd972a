-- External OpenAI-compatible inference endpoints (issue 7): the scale-out path when one CPU box is
-- not enough. A provider's models are routed to it by name; its API key is sealed with the instance
-- key (never returned by the API).
CREATE TABLE inference_providers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    base_url TEXT NOT NULL,
    api_key_sealed TEXT,
    -- JSON: [{"name": "<name here>", "upstream": "<name there>", "kind": "chat" | "embedding"}]
    models TEXT NOT NULL,
    timeout_secs INTEGER NOT NULL DEFAULT 120,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
