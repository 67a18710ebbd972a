-- Optional second factor: TOTP (RFC 6238). `totp_secret` is set once the person confirmed a code;
-- `totp_pending` holds a secret offered by setup but not confirmed yet. `totp_last_step` rejects a
-- code used twice. Recovery codes are stored as SHA-256 hashes, each usable once.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_pending TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_id, code_hash)
) WITHOUT ROWID;
