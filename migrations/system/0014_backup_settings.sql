-- Backup settings saved from the Backups page (system administrators). When the row exists, these
-- take precedence over the [backup] section of the configuration file; the directory and the
-- passphrase file stay in the configuration (they are paths on the server).
CREATE TABLE backup_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schedule TEXT NOT NULL,
    keep_daily INTEGER NOT NULL CHECK (keep_daily BETWEEN 0 AND 366),
    keep_weekly INTEGER NOT NULL CHECK (keep_weekly BETWEEN 0 AND 520),
    drill_schedule TEXT NOT NULL,
    alert_webhook_url TEXT,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
