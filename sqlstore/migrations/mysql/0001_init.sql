-- supportaccess sqlstore schema version 1 for MySQL 8 and MariaDB 10.6+.
--
-- {p} is the table prefix. Times are DATETIME(6) holding UTC; NULL means
-- unset (an unlimited expires_at, a grant not revoked). grantees, scopes and
-- attrs are lists of strings, each element followed by a newline, with
-- backslash and newline inside an element escaped as \\ and \n; NULL is a
-- nil list. Columns compared in queries are VARBINARY, so they compare
-- exactly (no case folding, no trailing-space padding). applied_at is in
-- the session time zone.
CREATE TABLE IF NOT EXISTS {p}schema_version (
    version    INT NOT NULL PRIMARY KEY,
    applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS {p}grants (
    id               CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    tenant_id        VARBINARY(512) NOT NULL,
    grantees         MEDIUMTEXT,
    scopes           TEXT,
    reason           TEXT NOT NULL,
    ticket_ref       VARBINARY(512) NOT NULL,
    granted_by_kind  VARBINARY(32) NOT NULL,
    granted_by_id    VARBINARY(1280) NOT NULL,
    granted_by_name  VARCHAR(1000) NOT NULL,
    request_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin,
    created_at       DATETIME(6) NOT NULL,
    starts_at        DATETIME(6) NOT NULL,
    expires_at       DATETIME(6),
    revoked_at       DATETIME(6),
    revoked_by_kind  VARBINARY(32) NOT NULL,
    revoked_by_id    VARBINARY(1280) NOT NULL,
    revoked_by_name  VARCHAR(1000) NOT NULL,
    revoke_reason    TEXT NOT NULL,
    started_recorded BOOLEAN NOT NULL DEFAULT FALSE,
    expired_recorded BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (id),
    KEY {p}grants_tenant_expires (tenant_id, expires_at),
    KEY {p}grants_created (created_at, id),
    KEY {p}grants_start_due (started_recorded, starts_at, id),
    KEY {p}grants_expire_due (expired_recorded, expires_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {p}audit_heads (
    tenant_id  VARBINARY(512) NOT NULL,
    seq        BIGINT NOT NULL,
    chain_hash VARBINARY(64) NOT NULL,
    PRIMARY KEY (tenant_id)
) ENGINE=InnoDB;

-- session_id repeats attrs' "session_id" entry (NULL without one) for the
-- AuditFilter.SessionID filter. Events reads it back into the attrs, so a
-- session_id changed behind the store's back breaks the event's hash.
CREATE TABLE IF NOT EXISTS {p}audit_events (
    tenant_id    VARBINARY(512) NOT NULL,
    seq          BIGINT NOT NULL,
    id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    occurred_at  DATETIME(6) NOT NULL,
    event_type   VARBINARY(255) NOT NULL,
    grant_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin,
    actor_kind   VARBINARY(32) NOT NULL,
    actor_id     VARBINARY(1280) NOT NULL,
    actor_name   VARCHAR(1000) NOT NULL,
    reason       TEXT NOT NULL,
    attrs        MEDIUMTEXT,
    session_id   VARBINARY(1280),
    before_value LONGBLOB,
    after_value  LONGBLOB,
    chain_hash   VARBINARY(64) NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE KEY {p}audit_events_id (id),
    KEY {p}audit_events_time (occurred_at, tenant_id, seq),
    KEY {p}audit_events_grant (grant_id),
    KEY {p}audit_events_session (session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO {p}schema_version (version) VALUES (1);
