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

	// isolationOK: on MySQL, the session's isolation level was found to
	// be one without dirty reads (see checkIsolation), whose system
	// variable is isolationVars[isolationVar].
	isolationOK  atomic.Bool
	isolationVar atomic.Int32

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
// Methods called after Close return an error. Close is idempotent and
// always returns nil.
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
// succeeded, checkIsolation's error.
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
	if s.d.Dialect == MySQL && !s.isolationOK.Load() {
		return s.checkIsolation(ctx)
	}
	return nil
}

// checkIsolation refuses, on MySQL, a session at READ-UNCOMMITTED (the
// server's transaction_isolation, or the DSN's): Check's query is a plain
// read, which would then see grants another transaction inserted but has
// not committed — and may never commit, when their audit event fails. It
// asks one connection of the pool, once per Store; the pool's connections
// share the DSN's settings.
//
// A session changed later (SET SESSION on a connection the host shares,
// SET GLOBAL for connections opened later) is caught by Check itself,
// whose query reads the level of the connection it runs on (see
// FindActiveGrant).
func (s *Store) checkIsolation(ctx context.Context) error {
	var level string
	var errs []error
	for i, v := range isolationVars {
		// MySQL 8 knows only the first name, MariaDB before 11.1 only the
		// second.
		err := s.db.QueryRowContext(ctx, `SELECT @@`+v).Scan(&level)
		if err == nil {
			if err := checkLevel(level); err != nil {
				return err
			}
			s.isolationVar.Store(int32(i))
			s.isolationOK.Store(true)
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("sqlstore: read the session's isolation level: %w", errors.Join(errs...))
}

// isolationVars are the names of MySQL's isolation level variable.
var isolationVars = [2]string{"transaction_isolation", "tx_isolation"}

// errReadUncommitted is the error of a MySQL session at READ-UNCOMMITTED.
var errReadUncommitted = fmt.Errorf("sqlstore: %w: the session's isolation level is READ-UNCOMMITTED, at which Check would see grants that are not committed: set transaction_isolation to READ-COMMITTED or REPEATABLE-READ", errors.ErrUnsupported)

// checkLevel returns errReadUncommitted for READ-UNCOMMITTED.
func checkLevel(level string) error {
	if strings.EqualFold(strings.ReplaceAll(level, " ", "-"), "READ-UNCOMMITTED") {
		return errReadUncommitted
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
