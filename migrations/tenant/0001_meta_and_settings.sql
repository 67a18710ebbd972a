-- Which tenant this database belongs to, stamped at creation and checked every time it is opened,
-- so a directory moved or copied under the wrong id is refused instead of served.
CREATE TABLE tenant_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tenant_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Tenant settings: one JSON value per key.
CREATE TABLE settings (
    key TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 64),
    value TEXT NOT NULL CHECK (json_valid(value)),
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
