-- supportaccess sqlstore schema version 1 for PostgreSQL.
--
-- {p} is the table prefix. Times are timestamptz (UTC, microseconds); NULL
-- means unset (an unlimited expires_at, a grant not revoked). grantees,
-- scopes and attrs are lists of strings, each element followed by a newline,
-- with backslash and newline inside an element escaped as \\ and \n; NULL is
-- a nil list. Identifiers compare and sort bytewise (COLLATE "C").
CREATE TABLE IF NOT EXISTS {p}schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {p}grants (
    id               UUID PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL,
    grantees         TEXT,
    scopes           TEXT,
    reason           TEXT NOT NULL,
    ticket_ref       TEXT COLLATE "C" NOT NULL,
    granted_by_kind  TEXT NOT NULL,
    granted_by_id    TEXT NOT NULL,
    granted_by_name  TEXT NOT NULL,
    request_id       UUID,
    created_at       TIMESTAMPTZ NOT NULL,
    starts_at        TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ,
    revoked_at       TIMESTAMPTZ,
    revoked_by_kind  TEXT NOT NULL,
    revoked_by_id    TEXT NOT NULL,
    revoked_by_name  TEXT NOT NULL,
    revoke_reason    TEXT NOT NULL,
    -- Lifecycle transitions recorded by ClaimTransitions.
    started_recorded BOOLEAN NOT NULL DEFAULT FALSE,
    expired_recorded BOOLEAN NOT NULL DEFAULT FALSE
);

-- Check: the unexpired grants of one tenant, unlimited ones (NULL) sorting
-- last, as one index range.
CREATE INDEX IF NOT EXISTS {p}grants_tenant_expires ON {p}grants (tenant_id, (COALESCE(expires_at, 'infinity'::timestamptz)));

-- List: newest first.
CREATE INDEX IF NOT EXISTS {p}grants_created ON {p}grants (created_at, id);

-- ClaimTransitions: due, unclaimed grants in order of the due time.
CREATE INDEX IF NOT EXISTS {p}grants_start_due ON {p}grants (starts_at, id)
    WHERE started_recorded = FALSE AND revoked_at IS NULL;

CREATE INDEX IF NOT EXISTS {p}grants_expire_due ON {p}grants (expires_at, id)
    WHERE expired_recorded = FALSE AND revoked_at IS NULL AND expires_at IS NOT NULL;

-- The head (last seq and hash) of each tenant's audit chain; writers lock
-- it while they append.
CREATE TABLE IF NOT EXISTS {p}audit_heads (
    tenant_id  TEXT COLLATE "C" PRIMARY KEY,
    seq        BIGINT NOT NULL,
    chain_hash BYTEA NOT NULL
);

-- before_value and after_value are kept byte for byte (not jsonb, which
-- would reformat them and break the hash chain).
-- session_id repeats attrs' "session_id" entry (NULL without one) for the
-- AuditFilter.SessionID filter. Events reads it back into the attrs, so a
-- session_id changed behind the store's back breaks the event's hash.
CREATE TABLE IF NOT EXISTS {p}audit_events (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    seq          BIGINT NOT NULL,
    id           UUID NOT NULL UNIQUE,
    occurred_at  TIMESTAMPTZ NOT NULL,
    event_type   TEXT COLLATE "C" NOT NULL,
    grant_id     UUID,
    actor_kind   TEXT COLLATE "C" NOT NULL,
    actor_id     TEXT COLLATE "C" NOT NULL,
    actor_name   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    attrs        TEXT,
    session_id   TEXT COLLATE "C",
    before_value BYTEA,
    after_value  BYTEA,
    chain_hash   BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE INDEX IF NOT EXISTS {p}audit_events_time ON {p}audit_events (occurred_at, tenant_id, seq);

CREATE INDEX IF NOT EXISTS {p}audit_events_grant ON {p}audit_events (grant_id);

CREATE INDEX IF NOT EXISTS {p}audit_events_session ON {p}audit_events (session_id);

INSERT INTO {p}schema_version (version) VALUES (1);
