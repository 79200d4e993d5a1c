-- supportaccess sqlstore schema version 3 for PostgreSQL: access requests
-- and expiry hook tasks.
--
-- duration_ns is the requested duration in nanoseconds (9223372036854775807
-- for unlimited). status is the stored status: pending, approved, denied or
-- expired (a pending request past expires_at reads as expired).
CREATE TABLE IF NOT EXISTS {p}access_requests (
    id                UUID PRIMARY KEY,
    tenant_id         TEXT COLLATE "C" NOT NULL,
    requested_by_kind TEXT NOT NULL,
    requested_by_id   TEXT COLLATE "C" NOT NULL,
    requested_by_name TEXT NOT NULL,
    duration_ns       BIGINT NOT NULL,
    scopes            TEXT,
    reason            TEXT NOT NULL,
    ticket_ref        TEXT COLLATE "C" NOT NULL,
    starts_at         TIMESTAMPTZ,
    status            TEXT COLLATE "C" NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    decided_at        TIMESTAMPTZ,
    decided_by_kind   TEXT NOT NULL,
    decided_by_id     TEXT NOT NULL,
    decided_by_name   TEXT NOT NULL,
    decision_reason   TEXT NOT NULL,
    grant_id          UUID
);

-- ListRequests: newest first, per tenant or overall.
CREATE INDEX IF NOT EXISTS {p}access_requests_tenant_created ON {p}access_requests (tenant_id, created_at, id);

CREATE INDEX IF NOT EXISTS {p}access_requests_created ON {p}access_requests (created_at, id);

-- ClaimExpiredRequests: pending requests in order of expiry.
CREATE INDEX IF NOT EXISTS {p}access_requests_pending ON {p}access_requests (expires_at, id)
    WHERE status = 'pending';

-- One row per expired grant whose OnExpire hooks have not all succeeded.
-- done counts the hooks that succeeded; lease_token/lease_until hold the
-- claim of the replica running them ('' and NULL: none).
CREATE TABLE IF NOT EXISTS {p}hook_tasks (
    grant_id    UUID PRIMARY KEY,
    done        INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    next_at     TIMESTAMPTZ NOT NULL,
    last_error  TEXT NOT NULL,
    lease_token TEXT COLLATE "C" NOT NULL,
    lease_until TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS {p}hook_tasks_due ON {p}hook_tasks (next_at, grant_id);

INSERT INTO {p}schema_version (version) VALUES (3);
