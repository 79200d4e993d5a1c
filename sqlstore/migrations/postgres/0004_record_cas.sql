-- supportaccess sqlstore schema version 4 for PostgreSQL: nothing to change.
--
-- Version 4 adds MySQL's one-round-trip audit append (a stored procedure);
-- PostgreSQL's is a single statement (a data-modifying CTE) that needs no
-- schema object. The version is recorded so that every dialect has every
-- version.
INSERT INTO {p}schema_version (version) VALUES (4);
