-- API keys: each belongs to one tenant and acts there with its scopes. Only the SHA-256 of the secret is
-- stored; `prefix` is the first characters of the key, shown to people to tell keys apart. Times are Unix seconds.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    last_used_at INTEGER,
    -- Set on the old key by a rotation: the key that replaces it.
    replaced_by TEXT
) WITHOUT ROWID;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
