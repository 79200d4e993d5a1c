-- supportaccess sqlstore schema version 2 for SQLite: audit retention and the
-- per-tenant time index.
--
-- checkpoint_seq and checkpoint_hash are the sequence number and hash of
-- the last event PurgeAudit deleted from the tenant's chain (0 and NULL:
-- nothing purged); VerifyAudit continues the chain from them.
--
-- SQLite has no ADD COLUMN IF NOT EXISTS. Apply the file in one
-- transaction (SQLite's DDL is transactional), as Migrate does; after a
-- tool applied only part of it outside a transaction, Migrate skips the
-- ADD COLUMN of a column the table already has.
ALTER TABLE {p}audit_heads ADD COLUMN checkpoint_seq INTEGER NOT NULL DEFAULT 0;

ALTER TABLE {p}audit_heads ADD COLUMN checkpoint_hash BLOB;

-- Events of one tenant in time order (AuditFilter{TenantID} pages).
CREATE INDEX IF NOT EXISTS {p}audit_events_tenant_time ON {p}audit_events (tenant_id, occurred_at, seq);

INSERT INTO {p}schema_version (version) VALUES (2);
