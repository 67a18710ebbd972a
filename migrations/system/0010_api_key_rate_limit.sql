-- A key's own requests-per-minute limit, set by a tenant admin; NULL: the plan's default.
ALTER TABLE api_keys ADD COLUMN rate_limit_per_minute INTEGER CHECK (rate_limit_per_minute BETWEEN 1 AND 10000000);
