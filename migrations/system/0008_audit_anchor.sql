-- Audit retention (`audit.retention_days`): when old entries are pruned, the anchor keeps the seq and
-- hash of the last removed entry, so `enclave audit verify` checks the rest of the chain from there.
-- The prune itself is an audited entry (`audit.prune`) naming the same seq and hash, so moving the
-- anchor to hide further deletions breaks the chain.
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    pruned_at TEXT NOT NULL
);
