-- supportaccess sqlstore schema version 6 for MySQL 8 and MariaDB 10.6+:
-- Record's one-round-trip append compares the whole chain head; an index
-- of each tenant's grants by creation.
--
-- {p}audit_append (version 4) appended an event if the tenant's chain head
-- was still at p_prev_seq. The hash is computed by the client from the
-- head it cached, so the head's sequence number alone is not enough: after
-- the database came back without its last commits (a failover to a
-- lagging replica, a point-in-time restore), another writer could append
-- at the cached sequence number with another hash, and the append would
-- chain from a hash no longer in the chain, forking it. The procedure now
-- takes the head's hash too (p_prev_hash) and moves the head only if both
-- match; otherwise nothing changes and Record takes its locking
-- transaction. A replica of an older release calls the procedure with one
-- argument fewer, which fails before it starts: that replica's Record
-- takes the locking transaction too, until it is upgraded.
--
-- Privileges, character sets and the statement convention are those of
-- version 4 (see 0004_record_cas.sql).
--
-- It also adds grants_tenant_created, the index of one tenant's grants
-- newest first (List with a TenantID, the admin UI's page of grants):
-- without it the planners walked grants_created backwards from the newest
-- grant of any tenant, reading every grant other tenants had created
-- since. And it adds audit_events_actor, the index of one actor's events
-- in time order (AuditFilter{ActorID} without a tenant: what one support
-- engineer did across tenants), which read every event before. As in
-- version 2, a procedure adds each index only when information_schema
-- does not list it yet, so the file can be applied again after stopping
-- anywhere.
DROP PROCEDURE IF EXISTS {p}audit_append;

CREATE PROCEDURE {p}audit_append(
    IN p_tenant_id    VARBINARY(512),
    IN p_prev_seq     BIGINT,
    IN p_prev_hash    VARBINARY(64),
    IN p_chain_hash   VARBINARY(64),
    IN p_id           CHAR(36) CHARACTER SET ascii,
    IN p_occurred_at  DATETIME(6),
    IN p_event_type   VARBINARY(255),
    IN p_grant_id     CHAR(36) CHARACTER SET ascii,
    IN p_actor_kind   VARBINARY(32),
    IN p_actor_id     VARBINARY(1280),
    IN p_actor_name   VARCHAR(1000) CHARACTER SET utf8mb4,
    IN p_reason       TEXT CHARACTER SET utf8mb4,
    IN p_attrs        MEDIUMTEXT CHARACTER SET utf8mb4,
    IN p_before_value LONGBLOB,
    IN p_after_value  LONGBLOB,
    IN p_session_id   VARBINARY(1280)
)
MODIFIES SQL DATA
SQL SECURITY INVOKER
BEGIN
    DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END
  ; START TRANSACTION
  ; UPDATE {p}audit_heads SET seq = p_prev_seq + 1, chain_hash = p_chain_hash
        WHERE tenant_id = p_tenant_id AND seq = p_prev_seq AND chain_hash = p_prev_hash
  ; IF ROW_COUNT() = 1 THEN
        INSERT INTO {p}audit_events (tenant_id, seq, id, occurred_at, event_type, grant_id,
            actor_kind, actor_id, actor_name, reason, attrs, before_value, after_value, chain_hash, session_id)
        VALUES (p_tenant_id, p_prev_seq + 1, p_id, p_occurred_at, p_event_type, p_grant_id,
            p_actor_kind, p_actor_id, p_actor_name, p_reason, p_attrs, p_before_value, p_after_value, p_chain_hash, p_session_id)
      ; COMMIT
      ; SELECT 1 AS applied
  ; ELSE
        ROLLBACK
      ; SELECT 0 AS applied
  ; END IF
; END;

DROP PROCEDURE IF EXISTS {p}migrate_0006;

CREATE PROCEDURE {p}migrate_0006()
MODIFIES SQL DATA
SQL SECURITY INVOKER
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
        AND TABLE_NAME = '{p}grants' AND INDEX_NAME = '{p}grants_tenant_created') THEN
        CREATE INDEX {p}grants_tenant_created ON {p}grants (tenant_id, created_at, id)
  ; END IF
  ; IF NOT EXISTS (SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
        AND TABLE_NAME = '{p}audit_events' AND INDEX_NAME = '{p}audit_events_actor') THEN
        CREATE INDEX {p}audit_events_actor ON {p}audit_events (actor_id, occurred_at, tenant_id, seq)
  ; END IF
; END;

CALL {p}migrate_0006();

DROP PROCEDURE IF EXISTS {p}migrate_0006;

INSERT INTO {p}schema_version (version) VALUES (6);
