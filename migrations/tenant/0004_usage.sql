-- Metered usage: one row per UTC day, principal (`key:<id>` or `user:<name>`) and metric, with the day's
-- total. Months are sums of their days. Written by the group-commit meter only.
CREATE TABLE usage_daily (
    day TEXT NOT NULL,
    principal TEXT NOT NULL,
    metric TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (day, principal, metric)
) WITHOUT ROWID;
CREATE INDEX usage_daily_by_metric ON usage_daily (metric, day);

-- The tenant's own monthly quotas (set by its admins); the licence's limit caps them.
CREATE TABLE usage_quotas (
    metric TEXT PRIMARY KEY,
    monthly_limit INTEGER NOT NULL CHECK (monthly_limit >= 0),
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- Soft alerts: the first time a month's usage of a metric crossed 80 % or 100 % of its quota.
CREATE TABLE usage_alerts (
    month TEXT NOT NULL,
    metric TEXT NOT NULL,
    threshold_percent INTEGER NOT NULL,
    used INTEGER NOT NULL,
    quota INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (month, metric, threshold_percent)
) WITHOUT ROWID;
