-- supportaccess sqlstore schema version 6 for PostgreSQL: the compare-and-set
-- append compares the head's hash; an index of each tenant's grants by
-- creation.
--
-- Version 6 makes the one-round-trip audit append compare the whole chain
-- head it chained from, its hash as well as its sequence number: after a
-- database came back without its last commits (a failover to a lagging
-- replica, a point-in-time restore), another writer could append at the
-- sequence number a store had cached, and the append chained from the
-- cached hash would fork the chain. PostgreSQL's append is a statement the
-- store sends, which compares both; MySQL's is the stored procedure this
-- version replaces; the statement needs no schema change.
--
-- It also adds grants_tenant_created, the index of one tenant's grants
-- newest first (List with a TenantID, the admin UI's page of grants):
-- without it the planners walked grants_created backwards from the newest
-- grant of any tenant, reading every grant other tenants had created
-- since. Building it locks writes to the grants table for as long as it
-- takes (run Migrate at a quiet time on a large table, or create the index
-- CONCURRENTLY beforehand under the same name: IF NOT EXISTS then skips it
-- — also an invalid index a failed CONCURRENTLY build left, so drop such
-- an index first).
CREATE INDEX IF NOT EXISTS {p}grants_tenant_created ON {p}grants (tenant_id, created_at, id);

-- And it adds audit_events_actor, the index of one actor's events in time
-- order (AuditFilter{ActorID} without a tenant: what one support engineer
-- did across tenants), which read every event before.
CREATE INDEX IF NOT EXISTS {p}audit_events_actor ON {p}audit_events (actor_id, occurred_at, tenant_id, seq);

INSERT INTO {p}schema_version (version) VALUES (6);
