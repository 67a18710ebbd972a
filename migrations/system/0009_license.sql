-- The installed licence (the armoured file exactly as verified) and who installed it. No row: community.
CREATE TABLE license (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    armored TEXT NOT NULL,
    license_id TEXT NOT NULL,
    installed_at TEXT NOT NULL,
    installed_by TEXT NOT NULL
);

-- The licence clock: the newest time this installation has seen (a clock earlier than this by more
-- than an hour went backwards) and when a clock anomaly was first detected (NULL when none).
CREATE TABLE license_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    high_water TEXT NOT NULL,
    anomaly_since TEXT
);

-- Seat counting: one snapshot per UTC day, for the licence page and the signed usage report.
CREATE TABLE seat_snapshots (
    day TEXT PRIMARY KEY,
    billable_users INTEGER NOT NULL,
    active_users_30d INTEGER NOT NULL,
    tenants INTEGER NOT NULL,
    storage_bytes INTEGER NOT NULL,
    taken_at TEXT NOT NULL
) WITHOUT ROWID;

-- When the account last signed in or used a session (for "active users in 30 days").
ALTER TABLE users ADD COLUMN last_active_at TEXT;
