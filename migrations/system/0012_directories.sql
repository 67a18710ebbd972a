-- LDAP / Active Directory sign-in (issue 6). A directory's settings are one JSON document; its service
-- password is kept apart, sealed with the instance key (never returned by the API).
CREATE TABLE directories (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    priority INTEGER NOT NULL DEFAULT 100,
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    settings TEXT NOT NULL,
    bind_password_sealed TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- Accounts that sign in through a directory: keyed by the directory's stable id of the entry
-- (entryUUID / objectGUID), never by e-mail or name.
ALTER TABLE users ADD COLUMN directory_id TEXT REFERENCES directories (id) ON DELETE SET NULL;
ALTER TABLE users ADD COLUMN external_id TEXT;
ALTER TABLE users ADD COLUMN directory_dn TEXT;
CREATE UNIQUE INDEX users_by_external_id ON users (directory_id, external_id) WHERE external_id IS NOT NULL;

-- One row per synchronisation run, kept for the UI and the audit trail.
CREATE TABLE directory_sync_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    directory_id TEXT NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'refused', 'failed')),
    checked INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    deactivated INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX directory_sync_runs_by_directory ON directory_sync_runs (directory_id, id);
