-- supportaccess sqlstore schema version 2 for MySQL/MariaDB: audit retention and the
-- per-tenant time index.
--
-- checkpoint_seq and checkpoint_hash are the sequence number and hash of
-- the last event PurgeAudit deleted from the tenant's chain (0 and NULL:
-- nothing purged); VerifyAudit continues the chain from them.
--
-- MySQL and MariaDB commit each DDL statement on its own, so a deploy can
-- die half-way through this file, and MySQL 8 has neither ADD COLUMN IF
-- NOT EXISTS nor CREATE INDEX IF NOT EXISTS (MariaDB has both). The
-- changes are therefore made by a procedure that adds each column and the
-- index only when information_schema does not list it yet, dropped again
-- at the end: the file can be applied again after stopping anywhere, by
-- Migrate or by a host's own tool (no session state is carried from one
-- statement to the next). The procedure needs the privileges migration 4
-- needs as well (CREATE ROUTINE, ALTER ROUTINE); its body follows the
-- convention of 0004_record_cas.sql (no body line ends in ";").
DROP PROCEDURE IF EXISTS {p}migrate_0002;

CREATE PROCEDURE {p}migrate_0002()
MODIFIES SQL DATA
SQL SECURITY INVOKER
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
        AND TABLE_NAME = '{p}audit_heads' AND COLUMN_NAME = 'checkpoint_seq') THEN
        ALTER TABLE {p}audit_heads ADD COLUMN checkpoint_seq BIGINT NOT NULL DEFAULT 0
  ; END IF
  ; IF NOT EXISTS (SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
        AND TABLE_NAME = '{p}audit_heads' AND COLUMN_NAME = 'checkpoint_hash') THEN
        ALTER TABLE {p}audit_heads ADD COLUMN checkpoint_hash VARBINARY(64) NULL
  ; END IF
    -- Events of one tenant in time order (AuditFilter{TenantID} pages).
  ; IF NOT EXISTS (SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
        AND TABLE_NAME = '{p}audit_events' AND INDEX_NAME = '{p}audit_events_tenant_time') THEN
        CREATE INDEX {p}audit_events_tenant_time ON {p}audit_events (tenant_id, occurred_at, seq)
  ; END IF
; END;

CALL {p}migrate_0002();

DROP PROCEDURE IF EXISTS {p}migrate_0002;

INSERT INTO {p}schema_version (version) VALUES (2);
