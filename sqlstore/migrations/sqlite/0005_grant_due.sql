-- supportaccess sqlstore schema version 5 for SQLite: the due transitions
-- of grants in a narrow table of their own.
--
-- The claim reads the primary key in due order; writers of one grant find
-- its rows by grant_due_grant. A grant's row for a transition (1 started, 2 expired) exists while the
-- transition is pending: the grant is not revoked, the transition has not
-- been claimed and, for expiry, the grant has an expiry. due_at is the
-- grant's starts_at or expires_at (Unix microseconds). ClaimTransitions
-- deletes the rows it claims instead of updating the wide grants row. The
-- grants' started_recorded and expired_recorded columns are no longer read
-- or written; rows claimed before this version are not copied here, so
-- they stay claimed.
--
-- Upgrade with the sweepers of older releases stopped: they would still
-- claim by the old columns, and a transition could be recorded twice.
CREATE TABLE IF NOT EXISTS {p}grant_due (
    transition INTEGER NOT NULL,
    due_at     INTEGER NOT NULL,
    grant_id   TEXT NOT NULL,
    PRIMARY KEY (transition, due_at, grant_id)
);

CREATE UNIQUE INDEX IF NOT EXISTS {p}grant_due_grant ON {p}grant_due (transition, grant_id);

INSERT INTO {p}grant_due (transition, due_at, grant_id)
    SELECT 1, starts_at, id FROM {p}grants WHERE started_recorded = FALSE AND revoked_at IS NULL;

INSERT INTO {p}grant_due (transition, due_at, grant_id)
    SELECT 2, expires_at, id FROM {p}grants
    WHERE expired_recorded = FALSE AND revoked_at IS NULL AND expires_at IS NOT NULL;

DROP INDEX IF EXISTS {p}grants_start_due;

DROP INDEX IF EXISTS {p}grants_expire_due;

INSERT INTO {p}schema_version (version) VALUES (5);
