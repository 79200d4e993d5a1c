// Package sqltest opens the databases that tests of sqlstore (and of the
// packages built on it) run against, and gives every test its own tables.
//
// The servers are found through SUPPORTACCESS_POSTGRES_DSN and
// SUPPORTACCESS_MYSQL_DSN, or the local defaults DefaultPostgresDSN and
// DefaultMySQLDSN. A server that does not answer skips the test with a
// message saying how to start it — unless SUPPORTACCESS_REQUIRE_BACKENDS=1,
// which makes it fail (CI sets it). SQLite needs no server: each database is
// a file in the test's temporary directory, opened by its plain path (no DSN
// parameters), as a host might.
//
// Stores made by NewStore live in the shared database under a fresh random
// table prefix ("t_<8 hex>_") and their tables are dropped when the test
// ends, so parallel test packages never see each other's rows.
//
// The package registers the drivers "pgx" (github.com/jackc/pgx/v5/stdlib),
// "mysql" (github.com/go-sql-driver/mysql) and "sqlite"
// (modernc.org/sqlite, pure Go).
package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/supportaccess/supportaccess/sqlstore"
)

// Environment variables read by the package.
const (
	EnvPostgresDSN     = "SUPPORTACCESS_POSTGRES_DSN"
	EnvMySQLDSN        = "SUPPORTACCESS_MYSQL_DSN"
	EnvRequireBackends = "SUPPORTACCESS_REQUIRE_BACKENDS"
)

// Default server addresses, used when the environment variables are unset.
const (
	DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test"
	DefaultMySQLDSN    = "root@tcp(127.0.0.1:3306)/test"
)

// How to start the servers, for skip messages.
const (
	startPostgres = "start PostgreSQL with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (database \"test\", user postgres, trust auth) or set " + EnvPostgresDSN
	startMySQL    = "start MariaDB with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` (database \"test\", user root) or set " + EnvMySQLDSN
)

// Dialects returns every dialect, SQLite first (it needs no server).
func Dialects() []sqlstore.Dialect {
	return []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres, sqlstore.MySQL}
}

// DriverName returns the database/sql driver name the package uses for d.
func DriverName(d sqlstore.Dialect) string {
	switch d {
	case sqlstore.Postgres:
		return "pgx"
	case sqlstore.MySQL:
		return "mysql"
	}
	return "sqlite"
}

// DSN returns the server DSN for d (from the environment or the default);
// "" for SQLite.
func DSN(d sqlstore.Dialect) string {
	switch d {
	case sqlstore.Postgres:
		if v := os.Getenv(EnvPostgresDSN); v != "" {
			return v
		}
		return DefaultPostgresDSN
	case sqlstore.MySQL:
		if v := os.Getenv(EnvMySQLDSN); v != "" {
			return v
		}
		return DefaultMySQLDSN
	}
	return ""
}

// RequireBackends reports whether SUPPORTACCESS_REQUIRE_BACKENDS=1: an
// unreachable server then fails the test instead of skipping it.
func RequireBackends() bool { return os.Getenv(EnvRequireBackends) == "1" }

var (
	reachMu sync.Mutex
	reach   = map[sqlstore.Dialect]error{}
)

// Available returns nil when the server for d answers (creating its
// database if the server says it does not exist), else why not. The answer
// is cached for the process.
func Available(d sqlstore.Dialect) error {
	if d == sqlstore.SQLite {
		return nil
	}
	reachMu.Lock()
	defer reachMu.Unlock()
	if err, ok := reach[d]; ok {
		return err
	}
	err := ping(d, DSN(d))
	if err != nil && missingDatabase(err) {
		if cerr := createDatabase(d, DSN(d)); cerr == nil {
			err = ping(d, DSN(d))
		}
	}
	reach[d] = err
	return err
}

func ping(d sqlstore.Dialect, dsn string) error {
	db, err := sql.Open(DriverName(d), dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// missingDatabase recognises "database does not exist" (PostgreSQL
// SQLSTATE 3D000, MySQL error 1049).
func missingDatabase(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) && pg.SQLState() == "3D000" {
		return true
	}
	return strings.Contains(err.Error(), "Error 1049")
}

// createDatabase creates the database named in dsn through the server's
// default database.
func createDatabase(d sqlstore.Dialect, dsn string) error {
	var admin, name, create string
	switch d {
	case sqlstore.Postgres:
		u, err := url.Parse(dsn)
		if err != nil || u.Scheme == "" {
			return fmt.Errorf("cannot parse %q as a URL", dsn)
		}
		name = strings.TrimPrefix(u.Path, "/")
		u.Path = "/postgres"
		admin = u.String()
		create = `CREATE DATABASE "` + strings.ReplaceAll(name, `"`, `""`) + `"`
	case sqlstore.MySQL:
		slash := strings.LastIndex(dsn, "/")
		if slash < 0 {
			return fmt.Errorf("no database in %q", dsn)
		}
		name, _, _ = strings.Cut(dsn[slash+1:], "?")
		admin = dsn[:slash+1] + strings.TrimPrefix(dsn[slash+1:], name)
		create = "CREATE DATABASE IF NOT EXISTS `" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	if name == "" {
		return fmt.Errorf("no database in %q", dsn)
	}
	db, err := sql.Open(DriverName(d), admin)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, create)
	return err
}

// skip skips or fails t because the server for d is unreachable.
func skip(t testing.TB, d sqlstore.Dialect, err error) {
	t.Helper()
	how := startPostgres
	if d == sqlstore.MySQL {
		how = startMySQL
	}
	msg := fmt.Sprintf("%v server not reachable at %s: %v; %s", d, DSN(d), err, how)
	if RequireBackends() {
		t.Fatalf("%s (%s=1: backends are required)", msg, EnvRequireBackends)
	}
	t.Skip(msg)
}

// Open returns a database for d, closed when the test ends: for SQLite a
// new file in t.TempDir() opened by its plain path, for PostgreSQL and
// MySQL the server's test database (skipping or failing the test when it
// does not answer, see the package comment).
func Open(t testing.TB, d sqlstore.Dialect) *sql.DB {
	t.Helper()
	if d == sqlstore.SQLite {
		return OpenSQLite(t, filepath.Join(t.TempDir(), "supportaccess.db"))
	}
	if err := Available(d); err != nil {
		skip(t, d, err)
	}
	db, err := sql.Open(DriverName(d), DSN(d))
	if err != nil {
		t.Fatalf("sqltest: open %v: %v", d, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// OpenSQLite opens the SQLite database file at path (a plain path, no DSN
// parameters) with a new *sql.DB, closed when the test ends. Several
// handles on one file model several processes or replicas.
func OpenSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("sqltest: open sqlite %s: %v", path, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// NewPrefix returns a fresh table prefix "t_<8 hex digits>_".
func NewPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "t_" + hex.EncodeToString(b[:]) + "_"
}

// NewStore returns a migrated store for d on a database from Open, with
// its own fresh table prefix (opts may add options; a WithTablePrefix among
// them wins). Its tables are dropped and the store closed when the test
// ends.
func NewStore(t testing.TB, d sqlstore.Dialect, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	return NewStoreOn(t, Open(t, d), d, opts...)
}

// NewStoreOn is NewStore on a database the caller opened.
func NewStoreOn(t testing.TB, db *sql.DB, d sqlstore.Dialect, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	opts = append([]sqlstore.Option{sqlstore.WithTablePrefix(NewPrefix())}, opts...)
	s, err := sqlstore.New(db, d, opts...)
	if err != nil {
		t.Fatalf("sqltest: new store: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := DropTables(ctx, db, d, s.TablePrefix()); err != nil {
			t.Errorf("sqltest: drop tables %s*: %v", s.TablePrefix(), err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("sqltest: migrate: %v", err)
	}
	return s
}

// Tables returns the names of the tables whose names start with prefix.
func Tables(ctx context.Context, db *sql.DB, d sqlstore.Dialect, prefix string) ([]string, error) {
	var q string
	switch d {
	case sqlstore.Postgres:
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND left(tablename, length($1)) = $1 ORDER BY tablename`
		prefix = strings.ToLower(prefix)
	case sqlstore.MySQL:
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND LEFT(table_name, CHAR_LENGTH(?)) = ? ORDER BY table_name`
	default:
		q = `SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, length(?)) = ? ORDER BY name`
	}
	args := []any{prefix, prefix}
	if d == sqlstore.Postgres {
		args = args[:1]
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// DropTables drops every table whose name starts with prefix and, on
// MySQL, the prefix's audit_append procedure.
func DropTables(ctx context.Context, db *sql.DB, d sqlstore.Dialect, prefix string) error {
	if !validIdent(prefix) {
		return fmt.Errorf("sqltest: bad prefix %q", prefix)
	}
	if d == sqlstore.MySQL {
		// Schema version 4 adds a stored procedure per prefix.
		if _, err := db.ExecContext(ctx, "DROP PROCEDURE IF EXISTS `"+prefix+"audit_append`"); err != nil {
			return err
		}
	}
	tables, err := Tables(ctx, db, d, prefix)
	if err != nil || len(tables) == 0 {
		return err
	}
	quoted := make([]string, len(tables))
	for i, n := range tables {
		if !validIdent(n) {
			return fmt.Errorf("sqltest: unexpected table name %q", n)
		}
		if d == sqlstore.MySQL {
			quoted[i] = "`" + n + "`"
		} else {
			quoted[i] = `"` + n + `"`
		}
	}
	switch d {
	case sqlstore.SQLite:
		for _, q := range quoted {
			if _, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS `+q); err != nil {
				return err
			}
		}
		return nil
	case sqlstore.Postgres:
		_, err = db.ExecContext(ctx, `DROP TABLE IF EXISTS `+strings.Join(quoted, ", ")+` CASCADE`)
	default:
		_, err = db.ExecContext(ctx, `DROP TABLE IF EXISTS `+strings.Join(quoted, ", "))
	}
	return err
}

func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
