-- supportaccess sqlstore schema version 4 for MySQL 8 and MariaDB 10.6+:
-- Record's one-round-trip append.
--
-- {p}audit_append appends one event to its tenant's hash chain if the
-- chain head is still at p_prev_seq: in one transaction it moves the
-- audit_heads row from p_prev_seq to p_prev_seq + 1 and p_chain_hash and,
-- only if that changed the row, inserts the event with seq p_prev_seq + 1.
-- It returns one row, applied: 1 when the event was stored, 0 when the head
-- had moved or the tenant has no head row (nothing changed; Record then
-- takes its locking transaction). Any error rolls the transaction back and
-- is raised again. The head's row lock orders it with every other writer of
-- the tenant's chain. The hash is computed by the client, which is why the
-- head it chained from is the condition.
--
-- Creating the procedure needs the CREATE ROUTINE privilege (and ALTER
-- ROUTINE for the DROP when this file runs again); it runs with the
-- caller's privileges (SQL SECURITY INVOKER), so the store's user needs
-- EXECUTE on it besides its table privileges. Text parameters are declared
-- utf8mb4 like the columns, whatever the database's default character set.
--
-- The CREATE PROCEDURE is one statement for this file's convention (a line
-- ending in ";" ends a statement): inside its body the statements are
-- separated by a ";" that starts the next line, so no body line ends in
-- one. A client that splits at every ";" (the mysql command-line client)
-- needs DELIMITER around it.
DROP PROCEDURE IF EXISTS {p}audit_append;

CREATE PROCEDURE {p}audit_append(
    IN p_tenant_id    VARBINARY(512),
    IN p_prev_seq     BIGINT,
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
        WHERE tenant_id = p_tenant_id AND seq = p_prev_seq
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

INSERT INTO {p}schema_version (version) VALUES (4);
