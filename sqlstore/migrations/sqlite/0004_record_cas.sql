-- supportaccess sqlstore schema version 4 for SQLite: nothing to change.
--
-- Version 4 adds MySQL's one-round-trip audit append (a stored procedure);
-- SQLite runs in-process and keeps the locking transaction. The version is
-- recorded so that every dialect has every version.
INSERT INTO {p}schema_version (version) VALUES (4);
