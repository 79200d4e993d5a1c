-- supportaccess sqlstore schema version 5 for SQLite: the pending
-- lifecycle transitions of grants in a narrow table of their own.
--
-- A grant has a row per transition (1 started, 2 expired) while that
-- transition is pending: the grant is not revoked and the transition has
-- not been claimed. due_at is the grant's starts_at or expires_at (Unix
-- microseconds), and the largest integer for the expiry of an unlimited
-- grant, so that a missing row always means claimed or revoked.
-- ClaimTransitions deletes the rows it claims instead of updating the
-- wide grants row. The claim reads the primary key in due order; writers
-- of one grant find its rows by grant_due_grant. The foreign key deletes
-- a deleted grant's rows where the connection enforces foreign keys
-- (PRAGMA foreign_keys); elsewhere the claim drops them. The grants'
-- started_recorded and expired_recorded columns are no longer read: the
-- copy below sets them on the grants it copies, and version 5 writes every
-- new grant with both set, so a flag still unset always means "pending,
-- not yet copied". Transitions claimed before this version are not copied,
-- so they stay claimed.
--
-- Releases before version 5 do not write grant_due: stop every replica of
-- an older release (not only its sweeper) before migrating, and start none
-- again. What the copy copied is marked (apply the file in one
-- transaction, as Migrate does), so a tool that stopped half-way can apply
-- it again.
CREATE TABLE IF NOT EXISTS {p}grant_due (
    transition INTEGER NOT NULL,
    due_at     INTEGER NOT NULL,
    grant_id   TEXT NOT NULL REFERENCES {p}grants (id) ON DELETE CASCADE,
    PRIMARY KEY (transition, due_at, grant_id)
);

CREATE UNIQUE INDEX IF NOT EXISTS {p}grant_due_grant ON {p}grant_due (grant_id, transition);

INSERT OR IGNORE INTO {p}grant_due (transition, due_at, grant_id)
    SELECT 1, starts_at, id FROM {p}grants WHERE started_recorded = FALSE AND revoked_at IS NULL;

UPDATE {p}grants SET started_recorded = TRUE WHERE started_recorded = FALSE AND revoked_at IS NULL;

INSERT OR IGNORE INTO {p}grant_due (transition, due_at, grant_id)
    SELECT 2, coalesce(expires_at, 9223372036854775807), id FROM {p}grants
    WHERE expired_recorded = FALSE AND revoked_at IS NULL;

UPDATE {p}grants SET expired_recorded = TRUE WHERE expired_recorded = FALSE AND revoked_at IS NULL;

DROP INDEX IF EXISTS {p}grants_start_due;

DROP INDEX IF EXISTS {p}grants_expire_due;

INSERT INTO {p}schema_version (version) VALUES (5);
