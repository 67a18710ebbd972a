-- Two-step tenant deletion: a tenant marked 'deleting' is hidden at once and purged (its directory
-- removed, its row deleted) after delete_after (Unix seconds); until then a system administrator can
-- restore it.
ALTER TABLE tenants ADD COLUMN delete_after INTEGER;
