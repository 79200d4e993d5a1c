-- supportaccess sqlstore schema version 3 for MySQL 8 and MariaDB 10.6+:
-- access requests and expiry hook tasks.
--
-- duration_ns is the requested duration in nanoseconds (9223372036854775807
-- for unlimited). status is the stored status: pending, approved, denied or
-- expired (a pending request past expires_at reads as expired).
CREATE TABLE IF NOT EXISTS {p}access_requests (
    id                CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    tenant_id         VARBINARY(512) NOT NULL,
    requested_by_kind VARBINARY(32) NOT NULL,
    requested_by_id   VARBINARY(1280) NOT NULL,
    requested_by_name VARCHAR(1000) NOT NULL,
    duration_ns       BIGINT NOT NULL,
    scopes            TEXT,
    reason            TEXT NOT NULL,
    ticket_ref        VARBINARY(512) NOT NULL,
    starts_at         DATETIME(6),
    status            VARBINARY(16) NOT NULL,
    created_at        DATETIME(6) NOT NULL,
    expires_at        DATETIME(6) NOT NULL,
    decided_at        DATETIME(6),
    decided_by_kind   VARBINARY(32) NOT NULL,
    decided_by_id     VARBINARY(1280) NOT NULL,
    decided_by_name   VARCHAR(1000) NOT NULL,
    decision_reason   TEXT NOT NULL,
    grant_id          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin,
    PRIMARY KEY (id),
    KEY {p}access_requests_tenant_created (tenant_id, created_at, id),
    KEY {p}access_requests_created (created_at, id),
    KEY {p}access_requests_pending (status, expires_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per expired grant whose OnExpire hooks have not all succeeded.
-- done counts the hooks that succeeded; lease_token/lease_until hold the
-- claim of the replica running them ('' and NULL: none).
CREATE TABLE IF NOT EXISTS {p}hook_tasks (
    grant_id    CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    done        INT NOT NULL,
    attempts    INT NOT NULL,
    next_at     DATETIME(6) NOT NULL,
    last_error  TEXT NOT NULL,
    lease_token VARBINARY(255) NOT NULL,
    lease_until DATETIME(6),
    PRIMARY KEY (grant_id),
    KEY {p}hook_tasks_due (next_at, grant_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO {p}schema_version (version) VALUES (3);
