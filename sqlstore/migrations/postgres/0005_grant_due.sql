-- supportaccess sqlstore schema version 5 for PostgreSQL: the pending
-- lifecycle transitions of grants in a narrow table of their own.
--
-- A grant has a row per transition (1 started, 2 expired) while that
-- transition is pending: the grant is not revoked and the transition has
-- not been claimed. due_at is the grant's starts_at or expires_at, and
-- 'infinity' for the expiry of an unlimited grant, so that a missing row
-- always means claimed or revoked. ClaimTransitions deletes the rows it
-- claims (a delete writes no index entries), where versions 1–4 updated
-- the wide grants row (a new row version and an entry in each of its
-- indexes). The claim reads the primary key in due order; writers of one
-- grant, and the foreign key's cascade when a host deletes grants, find
-- its rows by grant_due_grant. The grants' started_recorded and
-- expired_recorded columns are no longer read: the copy below sets them
-- on the grants it copies, and version 5 writes every new grant with both
-- set, so a flag still unset always means "pending, not yet copied".
-- Transitions claimed before this version are not copied, so they stay
-- claimed.
--
-- Releases before version 5 do not write grant_due: stop every replica of
-- an older release (not only its sweeper) before migrating, and start none
-- again. The copy updates the grants it copies, so it waits for a change
-- in flight (a revocation by a replica stopping) and copies what that
-- change left. What it copied is marked, so a tool that stopped half-way
-- can apply this file again, also after version 5 replicas have claimed
-- some of what it copied.
CREATE TABLE IF NOT EXISTS {p}grant_due (
    transition SMALLINT NOT NULL,
    due_at     TIMESTAMPTZ NOT NULL,
    grant_id   UUID NOT NULL REFERENCES {p}grants (id) ON DELETE CASCADE,
    PRIMARY KEY (transition, due_at, grant_id)
);

CREATE UNIQUE INDEX IF NOT EXISTS {p}grant_due_grant ON {p}grant_due (grant_id, transition);

WITH u AS (UPDATE {p}grants SET started_recorded = TRUE
    WHERE started_recorded = FALSE AND revoked_at IS NULL RETURNING id, starts_at)
INSERT INTO {p}grant_due (transition, due_at, grant_id) SELECT 1, starts_at, id FROM u
    ON CONFLICT DO NOTHING;

WITH u AS (UPDATE {p}grants SET expired_recorded = TRUE
    WHERE expired_recorded = FALSE AND revoked_at IS NULL RETURNING id, expires_at)
INSERT INTO {p}grant_due (transition, due_at, grant_id) SELECT 2, COALESCE(expires_at, 'infinity'::timestamptz), id FROM u
    ON CONFLICT DO NOTHING;

DROP INDEX IF EXISTS {p}grants_start_due;

DROP INDEX IF EXISTS {p}grants_expire_due;

INSERT INTO {p}schema_version (version) VALUES (5);
