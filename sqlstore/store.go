package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sa "github.com/supportaccess/supportaccess"
)

// DefaultTablePrefix is the table-name prefix used unless WithTablePrefix
// sets another.
const DefaultTablePrefix = "supportaccess_"

// DefaultBusyTimeout is how long an SQLite operation retries while the
// database is busy, unless WithBusyTimeout sets another duration.
const DefaultBusyTimeout = 30 * time.Second

// maxPrefixLen keeps every table and index name within PostgreSQL's 63-byte
// identifier limit and MySQL's 64.
const maxPrefixLen = 32

// Store is a supportaccess.Store, Auditor and AuditLog on a *sql.DB. It is
// safe for concurrent use. Create it with New; call Migrate before use and
// Close when done (Close does not close the *sql.DB, which the host owns).
type Store struct {
	db          *sql.DB
	d           *dialect
	prefix      string
	busyTimeout time.Duration
	q           queries

	mu     sync.RWMutex
	stmts  map[string]*sql.Stmt
	closed bool

	walMu   sync.Mutex
	walDone atomic.Bool

	// sessionOK: on MySQL, the session's settings were found to be ones
	// the store answers rightly at (see checkSession), read with the
	// variables sessionVars (a sessionVars).
	sessionOK   atomic.Bool
	sessionVars atomic.Int32

	// schemaOK: the database was found at SchemaVersion or later (see
	// checkSchema), or Migrate brought it there.
	schemaOK atomic.Bool

	// heads caches, on PostgreSQL and MySQL, each tenant's chain head as
	// this store last wrote or read it (tenant → head), for Record's
	// one-round-trip append. A stale entry only costs the fallback
	// transaction.
	heads sync.Map
}

var (
	_ sa.Store    = (*Store)(nil)
	_ sa.Auditor  = (*Store)(nil)
	_ sa.AuditLog = (*Store)(nil)

	_ sa.AuditChainReader = (*Store)(nil)
)

// Option configures a Store. A nil Option is ignored.
type Option interface{ apply(*config) }

type config struct {
	prefix      string
	busyTimeout time.Duration
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTablePrefix sets the prefix of every table and index name. Default:
// DefaultTablePrefix ("supportaccess_"). It must be 1–32 ASCII letters,
// digits and underscores and start with a letter or underscore; New returns
// an error wrapping supportaccess.ErrInvalidInput otherwise. On MySQL it
// must be lower case (the stored procedure of schema version 4 is named
// after it, and routine names ignore case while table names do not).
// PostgreSQL folds unquoted names to lower case, so use a lower-case prefix
// to get the same table names on every database.
func WithTablePrefix(prefix string) Option {
	return optionFunc(func(c *config) { c.prefix = prefix })
}

// WithBusyTimeout sets how long an operation on SQLite keeps retrying while
// the database is locked by another connection before it gives up with an
// error. Default: DefaultBusyTimeout (30 s). The context's deadline applies
// as well. Zero or negative values are ignored. Other dialects ignore it.
func WithBusyTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.busyTimeout = d
		}
	})
}

// New returns a Store that keeps its tables in db, written in dialect d. It
// does not touch the database; call Migrate (or apply Migrations yourself)
// before use.
//
// Errors (wrapping supportaccess.ErrInvalidInput): db is nil, d is not
// Postgres, MySQL or SQLite, or the table prefix is malformed.
func New(db *sql.DB, d Dialect, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, fmt.Errorf("sqlstore: new: %w: db is nil", sa.ErrInvalidInput)
	}
	dd, ok := dialects[d]
	if !ok {
		return nil, fmt.Errorf("sqlstore: new: %w: unknown dialect %v", sa.ErrInvalidInput, d)
	}
	c := config{prefix: DefaultTablePrefix, busyTimeout: DefaultBusyTimeout}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if err := validPrefix(c.prefix); err != nil {
		return nil, fmt.Errorf("sqlstore: new: %w", err)
	}
	if d == MySQL && strings.ToLower(c.prefix) != c.prefix {
		// Table names are case-sensitive on most MySQL servers, routine
		// names never: two prefixes differing in case would share one
		// audit_append procedure, writing into the other's tables.
		return nil, fmt.Errorf("sqlstore: new: %w: table prefix %q: on MySQL the prefix must be lower case", sa.ErrInvalidInput, c.prefix)
	}
	s := &Store{
		db:          db,
		d:           dd,
		prefix:      c.prefix,
		busyTimeout: c.busyTimeout,
		stmts:       make(map[string]*sql.Stmt),
	}
	s.q = newQueries(s)
	return s, nil
}

// validPrefix reports a malformed table prefix.
func validPrefix(p string) error {
	if p == "" || len(p) > maxPrefixLen {
		return fmt.Errorf("%w: table prefix must be 1 to %d characters", sa.ErrInvalidInput, maxPrefixLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
		if !letter && !('0' <= c && c <= '9' && i > 0) {
			return fmt.Errorf("%w: table prefix %q may contain only letters, digits and underscores and may not start with a digit", sa.ErrInvalidInput, p)
		}
	}
	return nil
}

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.d.Dialect }

// TablePrefix returns the prefix of the store's table names.
func (s *Store) TablePrefix() string { return s.prefix }

// Close releases the prepared statements. It does not close the *sql.DB.
// Methods that access the database return an error when called after
// Close (Dialect, TablePrefix and Migrations, which do not, keep
// answering). Close is idempotent and always returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	stmts := s.stmts
	s.stmts = make(map[string]*sql.Stmt)
	s.mu.Unlock()
	for _, st := range stmts { // outside s.mu, see stmt
		_ = st.Close()
	}
	return nil
}

// sql renders a statement written with ? placeholders and {p} for the
// prefix (see dialect.render).
func (s *Store) sql(q string) string { return s.d.render(s.prefix, q) }

// ready returns ctx.Err() or errClosed, or on MySQL, until a check
// succeeded, checkSession's error.
func (s *Store) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return errClosed
	}
	if s.d.Dialect == MySQL && !s.sessionOK.Load() {
		return s.checkSession(ctx)
	}
	return nil
}

// readyForUse is ready, and then, until a check succeeded, checkSchema's
// error: every method but Migrate.
func (s *Store) readyForUse(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	if !s.schemaOK.Load() {
		return s.checkSchema(ctx)
	}
	return nil
}

// checkSchema reads the schema version the database records, once per
// Store until it is SchemaVersion or later (a later one is not refused
// here: in a rolling upgrade the replicas still on this release keep
// working while a newer one migrates; only Migrate refuses it). An older
// one is ErrSchemaTooOld; missing tables say to run Migrate (see wrap).
func (s *Store) checkSchema(ctx context.Context) error {
	var cur int
	err := s.whileBusy(ctx, func() error { // SQLite: another connection may hold the file's lock
		return s.db.QueryRowContext(ctx, s.sql(qSchemaVersion)).Scan(&cur)
	})
	if err != nil {
		return wrap(ctx, "read the schema version", err)
	}
	if cur < SchemaVersion {
		return fmt.Errorf("%w: the database (table prefix %q) is at version %d, this library needs %d: run Migrate", ErrSchemaTooOld, s.prefix, cur, SchemaVersion)
	}
	s.schemaOK.Store(true)
	return nil
}

// checkSession refuses, on MySQL, a session whose settings would make
// the store answer wrongly (see checkSessionVars): it asks one connection
// of the pool, once per Store; the pool's connections share the DSN's
// settings. It also finds out which of the session's variables the server
// knows (sessionVars).
//
// A session changed later (SET SESSION on a connection the host shares,
// SET GLOBAL for connections opened later, a transaction left open on a
// shared connection) is caught, for the isolation level, autocommit and
// (on MariaDB) an open transaction, by Check itself, whose query reads
// them on the connection it runs on (see FindActiveGrant), and by Migrate
// on its own.
func (s *Store) checkSession(ctx context.Context) error {
	var errs []error
	for v := range sessionVars(len(isolationVars) * 2) {
		err := checkSessionOn(ctx, s.db, v)
		if err == nil {
			s.sessionVars.Store(int32(v))
			s.sessionOK.Store(true)
			return nil
		}
		errs = append(errs, err)
		// Only a variable the server does not know moves on to the next
		// variants: after any other failure (a connection lost, too many
		// connections) a later variant would answer without a variable
		// this server has, and be kept for the Store's life.
		if mysqlNumber(err) != errUnknownSystemVariable {
			break
		}
	}
	err := errs[len(errs)-1]
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return err
	case mysqlNumber(err) == errUnknownSystemVariable:
		// No variant worked: a variable the host's DSN or session setup
		// sets is likely unknown to this server (every query fails).
		return fmt.Errorf("sqlstore: read the session's settings (is a variable your DSN sets unknown to this server? MariaDB before 11.1 names the isolation level tx_isolation, MySQL 8 transaction_isolation): %w", errs[0])
	}
	return fmt.Errorf("sqlstore: read the session's settings: %w", err)
}

// errUnknownSystemVariable is MySQL's ER_UNKNOWN_SYSTEM_VARIABLE.
const errUnknownSystemVariable = 1193

// sessionVars says which MySQL variables tell a session's state:
// isolationVars[v/2] names its isolation level (MySQL 8 and MariaDB from
// 11.1 know only the first name, MariaDB before 11.1 only the second), and
// an even v also reads @@in_transaction (MariaDB; MySQL has no such
// variable). checkSession tries them in order.
type sessionVars int

// columns returns the select list of v's variables: the isolation level,
// autocommit and, when v has it, in_transaction.
func (v sessionVars) columns() string {
	c := `@@` + isolationVars[v/2] + `, @@autocommit`
	if v%2 == 0 {
		c += `, @@in_transaction`
	}
	return c
}

// scanState returns the destinations of v's columns, and the check of
// what they held.
func (v sessionVars) scanState() ([]any, func() error) {
	var level string
	var autocommit, inTx int64
	dest := []any{&level, &autocommit}
	if v%2 == 0 {
		dest = append(dest, &inTx)
	}
	return dest, func() error { return checkLevel(level, autocommit, inTx) }
}

// queryRower is a *sql.DB or a *sql.Conn.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkSessionOn reads and checks the session settings of a connection
// of q, with the variables v.
func checkSessionOn(ctx context.Context, q queryRower, v sessionVars) error {
	var mode, selectLimit string
	var client, conn, results sql.NullString
	dest, check := v.scanState()
	err := q.QueryRowContext(ctx, `SELECT `+v.columns()+`, @@character_set_client, @@character_set_connection, @@character_set_results, @@sql_mode, CAST(@@sql_select_limit AS CHAR)`).
		Scan(append(dest, &client, &conn, &results, &mode, &selectLimit)...)
	if err != nil {
		return err
	}
	if err := check(); err != nil {
		return err
	}
	if err := checkSessionVars([]sql.NullString{client, conn, results}, mode); err != nil {
		return err
	}
	return checkSelectLimit(selectLimit)
}

// noSelectLimit is MySQL's sql_select_limit when it limits nothing (its
// default, DEFAULT or the largest unsigned 64-bit integer).
const noSelectLimit = "18446744073709551615"

// checkSelectLimit refuses, wrapping errors.ErrUnsupported, a session
// whose sql_select_limit cuts short every SELECT without a LIMIT of its
// own: RevokeTenant would revoke only the grants it listed, and say
// nothing of the others.
func checkSelectLimit(v string) error {
	if v != noSelectLimit {
		return fmt.Errorf("sqlstore: %w: the session's sql_select_limit is %s, at which the server returns only that many rows of a list (RevokeTenant would revoke only those): leave it at its default (DEFAULT)", errors.ErrUnsupported, v)
	}
	return nil
}

// isolationVars are the names of MySQL's isolation level variable.
var isolationVars = [2]string{"transaction_isolation", "tx_isolation"}

// errReadUncommitted is the error of a MySQL session at READ-UNCOMMITTED.
var errReadUncommitted = fmt.Errorf("sqlstore: %w: the session's isolation level is READ-UNCOMMITTED, at which Check would see grants that are not committed: set it to READ-COMMITTED or REPEATABLE-READ (transaction_isolation; tx_isolation on MariaDB before 11.1)", errors.ErrUnsupported)

// errNoAutocommit is the error of a MySQL session with autocommit off.
var errNoAutocommit = fmt.Errorf("sqlstore: %w: the session's autocommit is off, at which each Check would run in a transaction nothing commits and keep reading its first snapshot (a revocation would not be seen): set autocommit=1", errors.ErrUnsupported)

// errOpenTransaction is the error of a MariaDB connection with a
// transaction open outside the store's own.
var errOpenTransaction = fmt.Errorf("sqlstore: %w: the connection has a transaction open that the store did not start (START TRANSACTION left on a connection shared with the store), whose snapshot Check would read (a revocation would not be seen): commit or roll back what you start", errors.ErrUnsupported)

// checkLevel returns errReadUncommitted for READ-UNCOMMITTED,
// errNoAutocommit when autocommit is 0 and errOpenTransaction when a
// transaction is open: the state Check's query reads with every row.
func checkLevel(level string, autocommit, inTx int64) error {
	switch {
	case strings.EqualFold(strings.ReplaceAll(level, " ", "-"), "READ-UNCOMMITTED"):
		return errReadUncommitted
	case autocommit == 0:
		return errNoAutocommit
	case inTx != 0:
		return errOpenTransaction
	}
	return nil
}

// checkSessionVars refuses, wrapping errors.ErrUnsupported, the MySQL
// session settings besides checkLevel's at which the store would answer
// wrongly: a character set of the client, the connection or the results
// other than utf8mb4 or binary (utf8mb3 cannot hold every character of a
// principal or a reason); an sql_mode without STRICT_TRANS_TABLES or
// STRICT_ALL_TABLES (the server would then store such a value changed,
// with a warning only); and MariaDB's EMPTY_STRING_IS_NULL.
func checkSessionVars(charsets []sql.NullString, mode string) error {
	for i, cs := range charsets {
		if cs.Valid && !strings.EqualFold(cs.String, "utf8mb4") && !strings.EqualFold(cs.String, "binary") {
			name := [...]string{"client", "connection", "results"}[i]
			return fmt.Errorf("sqlstore: %w: the session's character_set_%s is %s, which cannot hold every character the store keeps: use charset=utf8mb4 (go-sql-driver/mysql's default)", errors.ErrUnsupported, name, cs.String)
		}
	}
	strict := false
	for _, m := range strings.Split(strings.ToUpper(mode), ",") {
		strict = strict || m == "STRICT_TRANS_TABLES" || m == "STRICT_ALL_TABLES"
		if m == "EMPTY_STRING_IS_NULL" {
			return fmt.Errorf("sqlstore: %w: the session's sql_mode %q has EMPTY_STRING_IS_NULL, at which the server turns every empty string the store writes or compares (an empty reason, a grant without named grantees) into NULL: remove it from sql_mode", errors.ErrUnsupported, mode)
		}
	}
	if !strict {
		return fmt.Errorf("sqlstore: %w: the session's sql_mode %q has neither STRICT_TRANS_TABLES nor STRICT_ALL_TABLES, at which the server would store a value it cannot hold changed, with a warning only: add STRICT_TRANS_TABLES to it (the server's default; in the DSN, sql_mode='STRICT_TRANS_TABLES,...') or drop sql_mode from the DSN", errors.ErrUnsupported, mode)
	}
	return nil
}

// cachedStmt returns the prepared statement for the rendered query q, or
// nil when it is not prepared yet (or the store is closed).
func (s *Store) cachedStmt(q string) *sql.Stmt {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	return s.stmts[q]
}

// stmt returns the prepared statement for the rendered query q, preparing
// it on first use. It needs a connection of the pool: never call it while
// holding one (inside a transaction use txn's methods).
func (s *Store) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	s.mu.RLock()
	st, closed := s.stmts[q], s.closed
	s.mu.RUnlock()
	if closed {
		return nil, errClosed
	}
	if st != nil {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	// Never close a statement while holding s.mu: sql.Stmt.Close waits for
	// every connection it was prepared on, one of which may be running a
	// query that waits for a row lock held by a transaction whose
	// goroutine needs s.mu (a deadlock the database cannot see).
	s.mu.Lock()
	closed, prev := s.closed, s.stmts[q]
	if !closed && prev == nil {
		s.stmts[q] = st
	}
	s.mu.Unlock()
	switch {
	case closed:
		_ = st.Close()
		return nil, errClosed
	case prev != nil:
		_ = st.Close()
		return prev, nil
	}
	return st, nil
}
