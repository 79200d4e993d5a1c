-- supportaccess sqlstore schema version 6 for SQLite: nothing to change.
--
-- Version 6 makes MySQL's one-round-trip audit append (a stored procedure)
-- compare the hash of the chain head it chained from as well as its
-- sequence number; SQLite keeps the locking transaction. The version is
-- recorded so that every dialect has every version.
INSERT INTO {p}schema_version (version) VALUES (6);
