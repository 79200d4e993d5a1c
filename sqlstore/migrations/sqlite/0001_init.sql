-- supportaccess sqlstore schema version 1 for SQLite.
--
-- {p} is the table prefix. Times are INTEGER Unix microseconds (UTC); NULL
-- means unset (an unlimited expires_at, a grant not revoked). grantees,
-- scopes and attrs are lists of strings, each element followed by a newline,
-- with backslash and newline inside an element escaped as \\ and \n; NULL is
-- a nil list. Text compares bytewise (BINARY collation).
CREATE TABLE IF NOT EXISTS {p}schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS {p}grants (
    id               TEXT NOT NULL PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    grantees         TEXT,
    scopes           TEXT,
    reason           TEXT NOT NULL,
    ticket_ref       TEXT NOT NULL,
    granted_by_kind  TEXT NOT NULL,
    granted_by_id    TEXT NOT NULL,
    granted_by_name  TEXT NOT NULL,
    request_id       TEXT,
    created_at       INTEGER NOT NULL,
    starts_at        INTEGER NOT NULL,
    expires_at       INTEGER,
    revoked_at       INTEGER,
    revoked_by_kind  TEXT NOT NULL,
    revoked_by_id    TEXT NOT NULL,
    revoked_by_name  TEXT NOT NULL,
    revoke_reason    TEXT NOT NULL,
    started_recorded INTEGER NOT NULL DEFAULT FALSE,
    expired_recorded INTEGER NOT NULL DEFAULT FALSE
);

-- Check: the unexpired grants of one tenant, unlimited ones (NULL) sorting
-- last, as one index range.
CREATE INDEX IF NOT EXISTS {p}grants_tenant_expires ON {p}grants (tenant_id, coalesce(expires_at, 9223372036854775807));

CREATE INDEX IF NOT EXISTS {p}grants_created ON {p}grants (created_at, id);

CREATE INDEX IF NOT EXISTS {p}grants_start_due ON {p}grants (starts_at, id)
    WHERE started_recorded = FALSE AND revoked_at IS NULL;

CREATE INDEX IF NOT EXISTS {p}grants_expire_due ON {p}grants (expires_at, id)
    WHERE expired_recorded = FALSE AND revoked_at IS NULL AND expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS {p}audit_heads (
    tenant_id  TEXT NOT NULL PRIMARY KEY,
    seq        INTEGER NOT NULL,
    chain_hash BLOB NOT NULL
);

-- session_id repeats attrs' "session_id" entry (NULL without one) for the
-- AuditFilter.SessionID filter. Events reads it back into the attrs, so a
-- session_id changed behind the store's back breaks the event's hash.
CREATE TABLE IF NOT EXISTS {p}audit_events (
    tenant_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL UNIQUE,
    occurred_at  INTEGER NOT NULL,
    event_type   TEXT NOT NULL,
    grant_id     TEXT,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    actor_name   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    attrs        TEXT,
    session_id   TEXT,
    before_value BLOB,
    after_value  BLOB,
    chain_hash   BLOB NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE INDEX IF NOT EXISTS {p}audit_events_time ON {p}audit_events (occurred_at, tenant_id, seq);

CREATE INDEX IF NOT EXISTS {p}audit_events_grant ON {p}audit_events (grant_id);

CREATE INDEX IF NOT EXISTS {p}audit_events_session ON {p}audit_events (session_id);

INSERT INTO {p}schema_version (version) VALUES (1);
