-- supportaccess sqlstore schema version 6 for SQLite: an index of each
-- tenant's grants by creation.
--
-- Version 6 makes MySQL's one-round-trip audit append (a stored procedure)
-- compare the hash of the chain head it chained from as well as its
-- sequence number; SQLite keeps the locking transaction.
--
-- It also adds grants_tenant_created, the index of one tenant's grants
-- newest first (List with a TenantID, the admin UI's page of grants):
-- without it a List of one tenant could walk grants_created past every
-- grant other tenants had created since.
CREATE INDEX IF NOT EXISTS {p}grants_tenant_created ON {p}grants (tenant_id, created_at, id);

-- And it adds audit_events_actor, the index of one actor's events in time
-- order (AuditFilter{ActorID} without a tenant: what one support engineer
-- did across tenants), which read every event before.
CREATE INDEX IF NOT EXISTS {p}audit_events_actor ON {p}audit_events (actor_id, occurred_at, tenant_id, seq);

INSERT INTO {p}schema_version (version) VALUES (6);
