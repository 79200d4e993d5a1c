// Package sqlstore is a database/sql supportaccess.Store, Auditor and
// AuditLog for PostgreSQL, MySQL/MariaDB and SQLite.
//
// The host opens the *sql.DB with the driver of its choice (the package
// imports none; the tests use github.com/jackc/pgx/v5/stdlib,
// github.com/go-sql-driver/mysql and the pure-Go modernc.org/sqlite), hands
// it to New and calls Migrate once at start-up:
//
//	db, err := sql.Open("pgx", dsn)
//	…
//	store, err := sqlstore.New(db, sqlstore.Postgres)
//	…
//	if err := store.Migrate(ctx); err != nil { … }
//	m, err := supportaccess.NewManager(store)
//
// # Tables
//
// The store keeps its data in tables whose names start with a prefix
// (default "supportaccess_", see WithTablePrefix): grants, audit_events,
// audit_heads (chain heads and purge checkpoints), access_requests,
// hook_tasks (expiry-hook retry state), grant_due (pending lifecycle
// transitions; PostgreSQL and SQLite) and schema_version. Migrate creates and upgrades them;
// hosts with their own migration tool apply the files of Migrations
// instead. Until schema_version records SchemaVersion (or later: a newer
// release migrating in a rolling upgrade), every method but Migrate
// refuses to work — with ErrSchemaTooOld when an older version is
// recorded, with an error that says to run Migrate when the tables are
// missing — so Check fails closed and nothing is written to tables that
// lack what the store writes. Times are UTC with microsecond precision on every dialect
// (timestamptz on PostgreSQL, DATETIME(6) on MySQL, Unix microseconds in an
// INTEGER on SQLite); an unset time (unlimited ExpiresAt, RevokedAt) is
// NULL. On MySQL the store sends times as text and selects them as text, so
// the driver's parseTime and loc settings never change them (a loc with
// daylight saving time included).
//
// # Transactions
//
// Every write method stores the change and the audit events it is handed in
// one transaction, and chains the events per tenant (Event.Seq, Event.Hash)
// under a lock on the tenant's audit_heads row, so concurrent writers never
// fork a chain. Conditional updates (UpdateGrant, which Revoke and Extend
// use) lock the grant's row (SELECT … FOR UPDATE); ClaimTransitions uses
// FOR UPDATE SKIP LOCKED (at READ COMMITTED on MySQL) so that replicas
// sweeping at once claim disjoint grants. On PostgreSQL and SQLite (schema
// version 5) a grant's pending transitions — its start and its expiry, until
// claimed or revoked — are rows of the narrow grant_due table, written with
// the grant, and a claim deletes them; on MySQL/MariaDB a claim sets the
// grant's started_recorded or expired_recorded flag. Releases before
// version 5 neither write nor read grant_due: stop every replica of an
// older release before Migrate brings the schema to version 5, and start
// none afterwards (a grant one of them creates would never have its
// transitions recorded). On SQLite a write transaction
// takes the database write lock with its first statement, so writes are
// serialised. A deadlock or serialisation failure the server reports is
// an error wrapping supportaccess.ErrConflict (Record and CreateGrant,
// which run no caller code inside the transaction, retry it first). On
// PostgreSQL a standalone Record (the middleware's support.request) is a
// single statement while the store's cached chain head is current: it
// moves the head by compare-and-set and inserts the event only if that
// succeeded; otherwise it takes the locking transaction.
//
// # Check
//
// FindActiveGrant, behind Manager.Check, is one statement and one round
// trip. It reads from the grants_tenant_expires index only the tenant's
// unexpired grants — one index range of (tenant_id, COALESCE(expires_at,
// +infinity)) on PostgreSQL and SQLite, two ranges of (tenant_id,
// expires_at) on MySQL — and keeps those that are unrevoked, started, and
// open to any principal or name the principal, so its cost does not grow
// with the tenant's history of expired grants (revoked, scheduled and
// other principals' grants that have not expired yet are read and
// dropped), and supportaccess.GrantSelector picks among them as in every
// other store. Lists of one tenant's grants read the grants_tenant_created
// index (schema version 6), whatever other tenants create.
//
// # MySQL and MariaDB
//
// The sessions must have settings at which the store answers rightly:
//   - not READ-UNCOMMITTED (the server's or the DSN's
//     transaction_isolation, tx_isolation on MariaDB before 11.1): Check is a plain read, which would then see
//     grants not committed — and never created, when their audit event
//     fails;
//   - autocommit on (the default; not autocommit=0 in the DSN or the
//     server's configuration): each Check would otherwise run in an
//     implicit transaction nothing commits and keep reading its first
//     snapshot, where a revocation made since does not show, and Migrate's
//     last schema versions would stay uncommitted;
//   - the character sets of the client, the connection and the results
//     utf8mb4 (go-sql-driver/mysql's default) or binary, not utf8mb3
//     (charset=utf8), which cannot hold every character of a principal or
//     a reason;
//   - a strict sql_mode (STRICT_TRANS_TABLES, the default, or
//     STRICT_ALL_TABLES): otherwise the server stores a value it cannot
//     hold changed, with a warning only — a grantee "ops😀@…" would become
//     another principal, "ops????@…";
//   - no EMPTY_STRING_IS_NULL in sql_mode (MariaDB): it turns every empty
//     string the store writes or compares into NULL;
//   - sql_select_limit at its default (no limit): otherwise the server
//     returns only that many rows of a SELECT without a LIMIT, and
//     RevokeTenant would revoke only the grants it listed. (The store's
//     lists also carry an explicit LIMIT on MySQL, which overrides a
//     sql_select_limit set later.)
//
// Before its first operation the store asks one connection of the pool;
// with any other setting every operation, Migrate included, fails with an
// error wrapping errors.ErrUnsupported that names the setting (so Check
// fails closed). Check's query also reads the isolation level and
// autocommit of the connection it runs on (one changed later with SET
// SESSION or SET GLOBAL) and, on MariaDB, whether a transaction is open
// on it (a START TRANSACTION that host code left on a connection it
// shares with the store: Check would read that transaction's snapshot),
// and fails the same way when it finds a grant with any of them wrong;
// Migrate checks all the settings on its connection. Not detected: such an open
// transaction on MySQL, which has no variable that tells it; and
// a one-shot SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED (no SESSION
// or GLOBAL) left on a pooled connection the host shares with the store,
// which applies to that connection's next statement and shows in no
// variable; never issue it outside a transaction you start on the same
// connection (BeginTx with sql.TxOptions does that correctly). Nor is a
// character set or sql_mode changed later (SET GLOBAL, or SET SESSION on a
// shared connection): those are checked once per store.
//
// Migration 4 creates a stored procedure, <prefix>audit_append (replaced
// by migration 6, which compares the head's hash as well as its sequence
// number), that makes
// a standalone Record (the middleware's support.request) one CALL while the
// store's cached chain head is current: in one transaction it moves the
// head by compare-and-set and inserts the event only if that succeeded,
// else Record takes the locking transaction. Migrate's user therefore needs
// the CREATE ROUTINE privilege (and ALTER ROUTINE, which the creator is
// normally granted on the procedure, to replace it when the migration runs
// again); no SUPER or log_bin_trust_function_creators is needed, as it is a
// procedure, not a function or trigger. It runs with the caller's
// privileges (SQL SECURITY INVOKER) and the sql_mode in effect when it was
// created, and the store's user needs EXECUTE on it. If the CALL fails
// (procedure missing, EXECUTE denied) Record still succeeds through the
// locking transaction, at one more round trip. In the file of Migrations
// the procedure body separates its statements with a ";" at the start of a
// line, so that it stays one statement for tools that split at lines ending
// in ";"; the mysql command-line client needs DELIMITER around it. Because
// routine names ignore case while table names usually do not, the table
// prefix must be lower case on MySQL (New refuses another).
//
// # SQLite
//
// Several *sql.DB handles (or processes) may use one database file, also one
// opened by a plain path without DSN parameters: the store switches the
// file to WAL mode before its first write and retries operations that find
// the database busy or locked (SQLITE_BUSY, SQLITE_LOCKED) with a bounded
// backoff that honours the context, for up to the busy timeout (see
// WithBusyTimeout), so concurrent writers wait for each other instead of
// failing with "database is locked".
//
// An in-memory database (":memory:") is one database per connection: with
// database/sql's pool, Migrate creates the tables on one connection and
// other calls find none ("no such table"). Open it with
// db.SetMaxOpenConns(1), or as a shared cache ("file::memory:?cache=shared").
// The driver is the host's, for example modernc.org/sqlite (imported for
// its side effect, driver name "sqlite").
//
// # Statements
//
// Statements are prepared on first use and kept until Close; every value is
// a query parameter. A statement first used inside a transaction runs
// unprepared there and is prepared after the transaction, because preparing
// on the *sql.DB would need a second connection of the pool (a pool of one,
// common with SQLite, would deadlock). Round trips per operation are stated
// on each method for prepared statements (PostgreSQL and MySQL; on SQLite
// they are calls into the library). Prepared statements belong to a
// server session, so a pooler that hands each transaction another one
// (PgBouncer in transaction mode, say) needs its prepared-statement
// support (PgBouncer 1.21 and later: max_prepared_statements) or a pool
// in session mode.
package sqlstore
