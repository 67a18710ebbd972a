-- Chargeback: internal prices per metric (set by system administrators) and the monthly statements.
-- A price is `unit_price_micros` (millionths of the currency) per `unit_size` units of the metric.
CREATE TABLE usage_prices (
    metric TEXT PRIMARY KEY,
    unit_size INTEGER NOT NULL CHECK (unit_size >= 1),
    unit_price_micros INTEGER NOT NULL CHECK (unit_price_micros >= 0),
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE billing_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    currency TEXT NOT NULL CHECK (length(currency) BETWEEN 1 AND 8)
);

-- Statements of closed months, per tenant: written once, never changed (the prices and quantities of
-- that month are frozen in `lines`). Kept in system.db so they outlive a purged tenant.
CREATE TABLE usage_statements (
    tenant_id TEXT NOT NULL,
    month TEXT NOT NULL,
    tenant_name TEXT NOT NULL,
    currency TEXT NOT NULL,
    lines TEXT NOT NULL CHECK (json_valid(lines)),
    total_micros INTEGER NOT NULL,
    generated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, month)
) WITHOUT ROWID;
