-- supportaccess sqlstore schema version 5 for MySQL 8 and MariaDB 10.6+:
-- nothing to change.
--
-- Version 5 moves the pending lifecycle transitions of PostgreSQL and
-- SQLite into a narrow grant_due table that claims delete from. MySQL and
-- MariaDB keep claiming by the grants' started_recorded and
-- expired_recorded flags: the delete-based claim deadlocked concurrent
-- MariaDB claimers. The version is recorded so that every dialect has
-- every version.
INSERT INTO {p}schema_version (version) VALUES (5);
