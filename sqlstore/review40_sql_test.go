package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Tests of the 40th review round (699edd1, 4cfce07) — prefix TestReview40.

// (TestReview40CursorOutsideStoredRange became the conformance case
// AuditCursorsOutsideStoredTimes.)

// TestReview40MariaDBTransientErrorDropsOpenTransactionCheck: 699edd1's
// checkSession (sqlstore/store.go:217-231) tries the four sessionVars in
// order and keeps the first whose query succeeds, treating every error
// that does not wrap ErrUnsupported as "the server does not know this
// variable". A transient failure of the variant that reads
// @@in_transaction (the one MariaDB answers) therefore moves on to the
// next variant, which omits it, and stores that choice for the Store's
// life (sessionOK): from then on neither Check nor Migrate reads
// @@in_transaction, and a transaction the host left open on a shared
// connection — the very case 699edd1 closed (review38) — is again read
// through: Check admits a grant another replica revoked. Only "unknown
// system variable" (MySQL error 1193) should move to the next variant;
// any other error should be returned (checkSession runs again at the next
// call).
func TestReview40MariaDBTransientErrorDropsOpenTransactionCheck(t *testing.T) {
	if err := sqltest.Available(sqlstore.MySQL); err != nil {
		t.Skip(err)
	}
	cfg, err := mysql.ParseDSN(sqltest.DSN(sqlstore.MySQL))
	require.NoError(t, err)
	inner, err := mysql.NewConnector(cfg)
	require.NoError(t, err)
	fc := &flakyConnector{inner: inner, match: "@@in_transaction, @@character_set_client"}
	db := sql.OpenDB(fc)
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1) // one connection: the host's transaction is the store's
	a, err := sqlstore.New(db, sqlstore.MySQL, sqlstore.WithTablePrefix(sqltest.NewPrefix()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = a.Close()
		_ = sqltest.DropTables(context.Background(), sqltest.Open(t, sqlstore.MySQL), sqlstore.MySQL, a.TablePrefix())
	})
	t.Cleanup(func() { _, _ = db.ExecContext(context.Background(), "COMMIT") })
	// Its first session check meets the transient error, which is
	// returned; the next asks again.
	require.Error(t, a.Migrate(context.Background()))
	require.NoError(t, a.Migrate(context.Background()))
	ma, mb := mysqlReplicas(t, a)
	ctx := context.Background()

	var inTx int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&inTx), "MariaDB only: MySQL has no @@in_transaction")

	g, err := mb.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "START TRANSACTION") // host code, left open
	require.NoError(t, err)
	require.True(t, fc.failed.Load(), "sanity: the store's first session check met the transient error")
	_, _ = ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead) // fixes the snapshot unless refused
	_, err = mb.Revoke(ctx, g.ID, storetest.Customer, "done")        // another replica
	require.NoError(t, err)
	got, err := ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, errors.ErrUnsupported,
		"one transient error at the store's first use made it stop reading @@in_transaction: Check on the connection with the host's open transaction admitted grant %s, revoked on another replica", got.ID)
}

// flakyConnector wraps go-sql-driver/mysql so that the first query whose
// text contains match and that the server answered fails instead, once,
// with a transient server error (1040, too many connections — what a pool
// opening a connection at a busy server's start-up meets; a KILL or a
// timeout looks the same to the caller).
type flakyConnector struct {
	inner  driver.Connector
	match  string
	failed atomic.Bool
}

func (c *flakyConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &flakyConn{Conn: conn, c: c}, nil
}

func (c *flakyConnector) Driver() driver.Driver { return c.inner.Driver() }

type flakyConn struct {
	driver.Conn
	c *flakyConnector
}

func (f *flakyConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := f.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
	if err == nil && strings.Contains(q, f.c.match) && f.c.failed.CompareAndSwap(false, true) {
		_ = rows.Close()
		return nil, &mysql.MySQLError{Number: 1040, Message: "Too many connections"}
	}
	return rows, err
}

func (f *flakyConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return f.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (f *flakyConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return f.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (f *flakyConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return f.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (f *flakyConn) Ping(ctx context.Context) error { return f.Conn.(driver.Pinger).Ping(ctx) }

func (f *flakyConn) ResetSession(ctx context.Context) error {
	return f.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (f *flakyConn) IsValid() bool { return f.Conn.(driver.Validator).IsValid() }

func (f *flakyConn) CheckNamedValue(nv *driver.NamedValue) error {
	return f.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}
