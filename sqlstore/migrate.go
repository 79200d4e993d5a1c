package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFiles embed.FS

// migration is one versioned schema step.
type migration struct {
	version int
	name    string // file name, e.g. "0001_init.sql"
	text    string // with {p} for the prefix
}

// migrationsFor returns the dialect's migrations in version order. The file
// names start with the version number.
func migrationsFor(d Dialect) []migration {
	dir := path.Join("migrations", d.String())
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		panic(fmt.Sprintf("sqlstore: embedded migrations: %v", err)) // cannot happen: embedded at build time
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := migrationFiles.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			panic(fmt.Sprintf("sqlstore: embedded migrations: %v", err))
		}
		out = append(out, migration{version: v, name: e.Name(), text: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out
}

// SchemaVersion is the newest schema version this release of the package
// knows; Migrate brings a database to it.
const SchemaVersion = 6

// Migrations returns the migration files of dialect d rendered for the
// default table prefix, for hosts that apply migrations with their own
// tool. The files sit at the root of the returned file system, named
// NNNN_description.sql, to be applied in name order; each ends by recording
// its version in the schema_version table, so Migrate later recognises a
// database migrated this way. Statements are separated by lines ending in
// ";". For another prefix use (*Store).Migrations. It returns nil for an
// unknown dialect.
func Migrations(d Dialect) fs.FS {
	dd, ok := dialects[d]
	if !ok {
		return nil
	}
	return renderedMigrations(dd, DefaultTablePrefix)
}

// Migrations returns the store's migration files rendered for its dialect
// and table prefix (see the package-level Migrations).
func (s *Store) Migrations() fs.FS { return renderedMigrations(s.d, s.prefix) }

func renderedMigrations(d *dialect, prefix string) fs.FS {
	files := make(map[string][]byte)
	for _, m := range migrationsFor(d.Dialect) {
		files[m.name] = []byte(strings.ReplaceAll(m.text, "{p}", prefix))
	}
	return memFS(files)
}

// statements splits a migration into statements: lines starting with "--"
// are comments and a line ending in ";" ends a statement.
func statements(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		if strings.HasSuffix(t, ";") {
			cur.WriteString(strings.TrimSuffix(strings.TrimRight(line, " \t\r"), ";"))
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(strings.TrimRight(line, "\r"))
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// versionTable creates the schema_version table; the same statement opens
// migration 1 (a test keeps them equal).
var versionTable = map[Dialect]string{
	Postgres: "CREATE TABLE IF NOT EXISTS {p}schema_version (\n    version    INTEGER PRIMARY KEY,\n    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()\n)",
	MySQL:    "CREATE TABLE IF NOT EXISTS {p}schema_version (\n    version    INT NOT NULL PRIMARY KEY,\n    applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)\n) ENGINE=InnoDB",
	SQLite:   "CREATE TABLE IF NOT EXISTS {p}schema_version (\n    version    INTEGER PRIMARY KEY,\n    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP\n)",
}

// execer is what a migration runs on: a transaction or a connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Migrate creates or upgrades the store's tables to SchemaVersion and
// records the applied versions in the schema_version table. It is
// idempotent, and safe when several replicas call it at once: they
// serialise on a lock — a transaction-scoped advisory lock on PostgreSQL
// (where the whole upgrade is one transaction), GET_LOCK on MySQL (whose
// DDL is not transactional; each migration is written to be re-runnable),
// the write lock of an immediate transaction on SQLite, which Migrate also
// switches to WAL mode.
//
// Errors: ErrSchemaTooNew when the
// database is at a newer version than SchemaVersion; the database's error
// otherwise, with the version that failed.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	var err error
	switch s.d.Dialect {
	case Postgres:
		err = s.migratePostgres(ctx)
	case MySQL:
		err = s.migrateMySQL(ctx)
	case SQLite:
		err = s.migrateSQLite(ctx)
	}
	if err != nil {
		if errors.Is(err, ErrSchemaTooNew) {
			return err
		}
		return wrap(ctx, "migrate", err)
	}
	s.schemaOK.Store(true)
	return nil
}

// lockKey is the PostgreSQL advisory lock key of the store's migrations.
func (s *Store) lockKey() int64 {
	sum := sha256.Sum256([]byte("supportaccess.sqlstore.migrate:" + strings.ToLower(s.prefix)))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// migratePostgres applies the pending migrations in one transaction that
// holds the advisory lock. The transaction runs at READ COMMITTED
// (dialect.txDefault) whatever default_transaction_isolation says: at
// REPEATABLE READ or SERIALIZABLE the lock statement would fix the
// snapshot before waiting, and a replica that waited for another's
// migration would read schema_version from before that commit and apply
// the same migrations again.
func (s *Store) migratePostgres(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, s.d.txDefault)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey()); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if err := s.applyPending(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *Store) migrateMySQL(ctx context.Context) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The lock name is per database and prefix, at most 64 characters.
	const lockName = `CONCAT('supportaccess_migrate_', SHA1(CONCAT(DATABASE(), '.', ?)))`
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(`+lockName+`, 1)`, s.prefix).Scan(&got); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if !got.Valid {
			return fmt.Errorf("lock: GET_LOCK failed")
		}
		if got.Int64 == 1 {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, rerr := conn.ExecContext(rctx, `DO RELEASE_LOCK(`+lockName+`)`, s.prefix); rerr != nil {
			// Closing the session releases the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	// The connection's own settings (a host's SET SESSION, or a
	// transaction left open, on a shared connection): the schema versions
	// would stay uncommitted on it.
	if err := checkSessionOn(ctx, conn, sessionVars(s.sessionVars.Load())); err != nil {
		return err
	}
	return s.applyPending(ctx, conn)
}

func (s *Store) migrateSQLite(ctx context.Context) (err error) {
	if err := s.ensureWAL(ctx); err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := s.retryBusy(ctx, func() error {
		_, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`)
		return err
	}); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, rerr := conn.ExecContext(rctx, `ROLLBACK`); rerr != nil {
			// Never hand a connection with an open transaction back to
			// the pool.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if err := s.applyPending(ctx, conn); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return err
	}
	committed = true
	return nil
}

// qSchemaVersion reads the schema version the database records (0: none).
const qSchemaVersion = `SELECT COALESCE(MAX(version), 0) FROM {p}schema_version`

// applyPending reads the schema version and applies the newer migrations,
// on a connection or transaction that holds the migration lock.
func (s *Store) applyPending(ctx context.Context, x execer) error {
	if _, err := x.ExecContext(ctx, s.sql(versionTable[s.d.Dialect])); err != nil {
		return fmt.Errorf("create version table: %w", err)
	}
	var cur int
	if err := x.QueryRowContext(ctx, s.sql(qSchemaVersion)).Scan(&cur); err != nil {
		return fmt.Errorf("read version: %w", err)
	}
	if cur > SchemaVersion {
		return fmt.Errorf("%w: database is at version %d, this library knows up to %d", ErrSchemaTooNew, cur, SchemaVersion)
	}
	for _, m := range migrationsFor(s.d.Dialect) {
		if m.version <= cur {
			continue
		}
		for _, stmt := range statements(m.text) {
			done, err := s.columnAdded(ctx, x, stmt)
			if err == nil && !done {
				_, err = x.ExecContext(ctx, s.sql(stmt))
			}
			if err != nil {
				return fmt.Errorf("version %d (%s): %w", m.version, m.name, err)
			}
		}
	}
	return nil
}

// addColumn matches a migration statement that adds one column to a table
// (SQLite's ALTER TABLE adds one per statement), capturing the table and
// the column.
var addColumn = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+([A-Za-z0-9_{}]+)\s+ADD\s+(?:COLUMN\s+)?([A-Za-z0-9_]+)\s`)

// columnAdded reports whether stmt, on SQLite, adds a column that its
// table already has.
//
// Each migration file is written so that it can be applied again after it
// stopped half-way: Migrate applies a file again when its version is not
// recorded, which on MySQL/MariaDB (DDL outside transactions) happens
// after a deploy died mid-file, and on every database after a host's own
// tool (see Migrations) stopped mid-file. PostgreSQL's statements say IF
// NOT EXISTS, MySQL's test information_schema inside a procedure
// (0002_audit_retention.sql); SQLite has no conditional ADD COLUMN, so
// Migrate skips the statement when pragma_table_info lists the column. (A
// failed ADD COLUMN changes nothing: SQLite's DDL is transactional.)
func (s *Store) columnAdded(ctx context.Context, x execer, stmt string) (bool, error) {
	if s.d.Dialect != SQLite {
		return false, nil
	}
	m := addColumn.FindStringSubmatch(stmt)
	if m == nil {
		return false, nil
	}
	var n int
	err := x.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ? COLLATE NOCASE`,
		s.sql(m[1]), m[2]).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look for column %s: %w", m[2], err)
	}
	return n > 0, nil
}
