package sqlstore

// Review 116: mutation testing of the store's plumbing (tx.go, errors.go,
// codec.go, migrate.go, store.go). Each test kills mutants the existing
// tests let survive; they are internal because the behaviour sits behind
// unexported seams (inTxRetry, wrap, lockKey) or needs a database the
// package's own helpers (sqltest imports this package) cannot open here.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // registers "sqlite"

	sa "github.com/supportaccess/supportaccess"
)

// review116SQLite opens a fresh SQLite file and a store on it.
func review116SQLite(t *testing.T, opts ...Option) (*sql.DB, *Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r116.db")
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s, err := New(db, SQLite, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return db, s, path
}

// TestReview116InTxRetryRetriesOnlyDeadlocks: a transaction the server
// aborted to break a deadlock (or a serialisation failure) is run again,
// any other error is returned at once, and the retries are bounded.
func TestReview116InTxRetryRetriesOnlyDeadlocks(t *testing.T) {
	_, s, _ := review116SQLite(t)
	ctx := context.Background()
	require.NoError(t, s.Migrate(ctx))

	for _, deadlock := range []error{
		&pgconn.PgError{Code: "40P01"},
		&pgconn.PgError{Code: "40001"},
		&mysql.MySQLError{Number: 1213},
		&mysql.MySQLError{Number: 1205},
	} {
		calls := 0
		err := s.inTxRetry(ctx, "op", func(*txn) error {
			calls++
			if calls == 1 {
				return deadlock
			}
			return nil
		})
		require.NoError(t, err, "%v: retried after the deadlock", deadlock)
		require.Equal(t, 2, calls, "%v", deadlock)
	}

	calls := 0
	other := errors.New("not a deadlock")
	err := s.inTxRetry(ctx, "op", func(*txn) error { calls++; return other })
	require.ErrorIs(t, err, other)
	require.Equal(t, 1, calls, "any other error is not retried")

	calls = 0
	err = s.inTxRetry(ctx, "op", func(*txn) error { calls++; return &pgconn.PgError{Code: "40P01"} })
	require.True(t, isDeadlock(err))
	require.Equal(t, maxDeadlockRetries+1, calls, "retries are bounded")
}

// TestReview116WrapSentinels: wrap gives callers the sentinel each driver
// error means, recognising go-sql-driver/mysql's and pgx's own error types
// (the package matches them by shape, importing neither).
func TestReview116WrapSentinels(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		err  error
		want error
	}{
		{&pgconn.PgError{Code: "40P01"}, sa.ErrConflict},
		{&pgconn.PgError{Code: "40001"}, sa.ErrConflict},
		{&mysql.MySQLError{Number: 1213}, sa.ErrConflict},
		{&mysql.MySQLError{Number: 1205}, sa.ErrConflict},
		{&pgconn.PgError{Code: "22001"}, sa.ErrInvalidInput},
		{&pgconn.PgError{Code: "54000"}, sa.ErrInvalidInput},
		{&mysql.MySQLError{Number: 1406, Message: "Data too long for column 'scopes' at row 1"}, sa.ErrInvalidInput},
		{&pgconn.PgError{Code: "22021"}, sa.ErrInvalidInput},
		{&pgconn.PgError{Code: "22P05"}, sa.ErrInvalidInput},
		{&mysql.MySQLError{Number: 1366, Message: "Incorrect string value: '\\xFF' for column 'reason' at row 1"}, sa.ErrInvalidInput},
		{&mysql.MySQLError{Number: 1300}, sa.ErrInvalidInput},
		{fmt.Errorf("exec: %w", errNULText), sa.ErrInvalidInput},
	} {
		got := wrap(ctx, "op", c.err)
		require.ErrorIs(t, got, c.want, "%v", c.err)
		require.ErrorIs(t, got, c.err, "the driver's error stays in the chain")
	}

	// Not every 1366 is about text: an incorrect integer value is the
	// server's failure, not the caller's malformed input.
	got := wrap(ctx, "op", &mysql.MySQLError{Number: 1366, Message: "Incorrect integer value: 'x' for column 'seq' at row 1"})
	require.False(t, errors.Is(got, sa.ErrInvalidInput), "%v", got)
	require.False(t, errors.Is(wrap(ctx, "op", &pgconn.PgError{Code: "23505"}), sa.ErrConflict))

	// A Number field of another package's error is not a MySQL error.
	require.Zero(t, mysqlNumber(fmt.Errorf("x: %w", &review116Err{Number: 1213})))
	require.False(t, isDeadlock(&review116Err{Number: 1213}))
	require.Equal(t, 1213, mysqlNumber(fmt.Errorf("x: %w", &mysql.MySQLError{Number: 1213})))

	// A missing table or procedure says to run Migrate.
	for _, err := range []error{
		&pgconn.PgError{Code: "42P01"},
		&mysql.MySQLError{Number: 1146},
		&mysql.MySQLError{Number: 1305, Message: "PROCEDURE test.x_audit_append does not exist"},
	} {
		require.Contains(t, wrap(ctx, "op", err).Error(), "run Migrate", "%v", err)
	}
	require.True(t, mayBeDuplicateKey(&mysql.MySQLError{Number: 1062}))
	require.True(t, mayBeDuplicateKey(&pgconn.PgError{Code: "23505"}))
	require.False(t, mayBeDuplicateKey(&mysql.MySQLError{Number: 1213}))
}

// review116Err is an error of another package with a Number field.
type review116Err struct{ Number uint16 }

func (e *review116Err) Error() string { return fmt.Sprint("error ", e.Number) }

// TestReview116ZeroBusyTimeoutIgnored: WithBusyTimeout documents that zero
// and negative durations are ignored (the default stays), not that zero
// makes a busy SQLite database fail at once.
func TestReview116ZeroBusyTimeoutIgnored(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		_, s, _ := review116SQLite(t, WithBusyTimeout(d))
		require.Equal(t, DefaultBusyTimeout, s.busyTimeout, "%v", d)
	}
	_, s, _ := review116SQLite(t, WithBusyTimeout(time.Second), WithBusyTimeout(0))
	require.Equal(t, time.Second, s.busyTimeout, "a later zero does not undo an earlier value")
}

// TestReview116LockKeyFollowsPostgresNames: PostgreSQL folds unquoted
// names to lower case, so prefixes differing only in case name the same
// tables and must serialise their migrations on one advisory lock; other
// prefixes get other locks.
func TestReview116LockKeyFollowsPostgresNames(t *testing.T) {
	key := func(prefix string) int64 {
		s, err := New(&sql.DB{}, Postgres, WithTablePrefix(prefix))
		require.NoError(t, err)
		return s.lockKey()
	}
	require.Equal(t, key("tenant_a_"), key("Tenant_A_"))
	require.NotEqual(t, key("tenant_a_"), key("tenant_b_"))
}

// TestReview116MigrateReportsFailure: a migration statement the database
// refuses makes Migrate fail, naming the version, and (SQLite's DDL is
// transactional) leaves nothing behind.
func TestReview116MigrateReportsFailure(t *testing.T) {
	db, s, _ := review116SQLite(t)
	ctx := context.Background()
	// A host's own table under the store's name, without the store's
	// columns: CREATE TABLE IF NOT EXISTS keeps it and the index fails.
	_, err := db.ExecContext(ctx, `CREATE TABLE `+s.prefix+`grants (x INTEGER)`)
	require.NoError(t, err)
	err = s.Migrate(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "version 1")
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = ?`, s.prefix+`schema_version`).Scan(&n))
	require.Zero(t, n, "rolled back: no version table, no version recorded")
}

// TestReview116ReadRetriesWhileBusy: on SQLite a read retries while the
// database is busy. A file still in rollback-journal mode (migrated by the
// host's own tool; only writes switch it to WAL) is unreadable while
// another connection holds an EXCLUSIVE lock: Check must wait for it, not
// fail with "database is locked".
func TestReview116ReadRetriesWhileBusy(t *testing.T) {
	db, s, path := review116SQLite(t)
	ctx := context.Background()
	mig := s.Migrations()
	names, err := fs.Glob(mig, "*.sql")
	require.NoError(t, err)
	for _, n := range names {
		b, err := fs.ReadFile(mig, n)
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, string(b))
		require.NoError(t, err)
	}

	other, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer other.Close()
	conn, err := other.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	var mode string
	require.NoError(t, conn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "delete", mode)
	_, err = conn.ExecContext(ctx, `BEGIN EXCLUSIVE`)
	require.NoError(t, err)
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(100 * time.Millisecond) // the lock holder's work, not a clock
		_, _ = conn.ExecContext(ctx, `COMMIT`)
	}()
	_, err = s.FindActiveGrant(ctx, "acme", "ann", sa.ScopeRead, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	<-released
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "answered once the lock was released")
}

// TestReview116CodecShapes: needle is the bound form the {covers} test
// looks for in "\n"+grantees (leading and trailing newline, escaped);
// bytesScanner tells NULL (nil) from an empty value (non-nil, empty).
func TestReview116CodecShapes(t *testing.T) {
	require.Equal(t, "\nann\n", needle("ann"))
	require.Equal(t, "\n"+`c\\d`+`\n`+"e\n", needle("c\\d\ne"))

	var b []byte
	require.NoError(t, bytesScanner{&b}.Scan(nil))
	require.Nil(t, b)
	require.NoError(t, bytesScanner{&b}.Scan([]byte{}))
	require.NotNil(t, b)
	require.Empty(t, b)
	src := []byte("xy")
	require.NoError(t, bytesScanner{&b}.Scan(src))
	src[0] = 'z'
	require.Equal(t, []byte("xy"), b, "a copy, not the driver's buffer")
	require.NoError(t, bytesScanner{&b}.Scan("s"))
	require.Equal(t, []byte("s"), b)
	require.Error(t, bytesScanner{&b}.Scan(3))
}
