-- Invitations to a tenant: a single-use link with an expiry, for a person named by username or e-mail.
-- Only the SHA-256 of the link's token is stored. Times are Unix seconds.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    invitee TEXT NOT NULL COLLATE NOCASE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    accepted_at INTEGER,
    accepted_by TEXT,
    revoked_at INTEGER
) WITHOUT ROWID;
CREATE INDEX invitations_by_tenant ON invitations (tenant_id);
