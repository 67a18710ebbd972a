-- The installation itself: one row, created at first start.
CREATE TABLE instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    installation_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_started_at TEXT NOT NULL,
    -- The newest time this installation has seen; a clock earlier than this went backwards.
    last_seen_at TEXT NOT NULL
);

-- Tenants: the unit of isolation. Each has its own directory and database under tenants/<id>/.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 2 AND 63),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleting')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
