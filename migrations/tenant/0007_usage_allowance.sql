-- Durable allowances of the usage meter. A busy principal's counts are committed without waiting for
-- the disk; before such a commit is acknowledged, a row here, already on the disk, bounds the count
-- from above (`through`). After an operating-system crash or power loss (a different `boot_id`), start-up
-- raises the day's count to `through`, so no acknowledged event is lost; after a process crash on the
-- same boot the counts are exact and the rows are simply removed. Empty whenever the meter is idle.
CREATE TABLE usage_allowance (
    day TEXT NOT NULL,
    principal TEXT NOT NULL,
    metric TEXT NOT NULL,
    through INTEGER NOT NULL CHECK (through >= 0),
    boot_id TEXT NOT NULL,
    PRIMARY KEY (day, principal, metric)
) WITHOUT ROWID;
