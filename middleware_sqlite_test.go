package supportaccess_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// The middleware on the SQL store (SQLite: a file, no server): another
// replica's revocation, and the database round trips of a request.

// mwSQLiteDriver returns the SQLite driver sqltest registers.
func mwSQLiteDriver(t *testing.T) driver.Driver {
	t.Helper()
	db, err := sql.Open(sqltest.DriverName(sqlstore.SQLite), "")
	require.NoError(t, err)
	defer db.Close()
	return db.Driver()
}

func TestMiddlewareSQLiteOtherReplicaRevokeIsPolled(t *testing.T) {
	// Two replicas: two *sql.DB on one SQLite file, a store and a Manager
	// each; the request runs on replica 1, replica 2 revokes.
	path := filepath.Join(t.TempDir(), "shared.db")
	prefix := sqltest.NewPrefix()
	store1 := sqltest.NewStoreOn(t, sqltest.OpenSQLite(t, path), sqlstore.SQLite, sqlstore.WithTablePrefix(prefix))
	store2 := sqltest.NewStoreOn(t, sqltest.OpenSQLite(t, path), sqlstore.SQLite, sqlstore.WithTablePrefix(prefix))
	m1, err := sa.NewManager(store1)
	require.NoError(t, err)
	m2, err := sa.NewManager(store2)
	require.NoError(t, err)
	g, err := m2.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer})
	require.NoError(t, err)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // the *sql.DB goroutines end at cleanup

	sessions := &mwSessions{}
	sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1"})
	ended := &mwEnded{}
	const interval = 200 * time.Millisecond
	s := newMWStream()
	h := m1.Middleware(sessions.resolve, sa.WithPollInterval(interval), sa.OnSessionEnded(ended.handle))(s)
	rec, finished := s.serve(t, h, mwReq(http.MethodGet, "/events", "generic"))

	time.Sleep(interval / 3)
	at := time.Now()
	_, err = m2.Revoke(context.Background(), g.ID, mwCustomer, "from the other replica")
	require.NoError(t, err)
	took := s.waitEnd(t, finished, at)
	t.Logf("replica 2's revoke to replica 1's cancellation (poll interval %s): %s", interval, took)
	require.Less(t, took, interval+150*time.Millisecond, "noticed within the poll interval (plus one check)")
	requireStreamCut(t, s, rec, "revoked")
	require.Equal(t, []string{"s-1:" + sa.SessionEndRevoked}, ended.all())

	evs, err := m2.Events(context.Background(), sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventSupportRequest}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "replica 1's audit event is in the shared trail")
}

// mwRoundTrips counts what a database/sql driver is asked to do: each
// prepare, query, exec, begin, commit and rollback is one round trip to
// the database (a network round trip for a server; a call into the engine
// for SQLite).
type mwRoundTrips struct {
	mu  sync.Mutex
	log []string
}

func (c *mwRoundTrips) add(kind, query string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := strings.Join(strings.Fields(query), " ")
	if len(q) > 60 {
		q = q[:60] + "..."
	}
	c.log = append(c.log, strings.TrimSpace(kind+" "+q))
}

func (c *mwRoundTrips) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.log
	c.log = nil
	return out
}

type mwCountConnector struct {
	drv driver.Driver
	dsn string
	c   *mwRoundTrips
}

func (k *mwCountConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := k.drv.Open(k.dsn)
	if err != nil {
		return nil, err
	}
	return &mwCountConn{Conn: conn, c: k.c}, nil
}

func (k *mwCountConnector) Driver() driver.Driver { return k.drv }

// mwCountConn forwards to the driver's connection (which implements the
// context interfaces, as modernc's does) and counts.
type mwCountConn struct {
	driver.Conn
	c *mwRoundTrips
}

func (k *mwCountConn) Prepare(q string) (driver.Stmt, error) {
	return k.PrepareContext(context.Background(), q)
}

func (k *mwCountConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	k.c.add("prepare", q)
	st, err := k.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	return &mwCountStmt{Stmt: st, c: k.c, q: q}, nil
}

func (k *mwCountConn) Begin() (driver.Tx, error) {
	return k.BeginTx(context.Background(), driver.TxOptions{})
}

func (k *mwCountConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	k.c.add("begin", "")
	tx, err := k.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &mwCountTx{Tx: tx, c: k.c}, nil
}

func (k *mwCountConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	k.c.add("exec", q)
	return k.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (k *mwCountConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	k.c.add("query", q)
	return k.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (k *mwCountConn) Ping(ctx context.Context) error {
	return k.Conn.(driver.Pinger).Ping(ctx)
}

func (k *mwCountConn) ResetSession(ctx context.Context) error {
	return k.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (k *mwCountConn) IsValid() bool { return k.Conn.(driver.Validator).IsValid() }

type mwCountTx struct {
	driver.Tx
	c *mwRoundTrips
}

func (t *mwCountTx) Commit() error {
	t.c.add("commit", "")
	return t.Tx.Commit()
}

func (t *mwCountTx) Rollback() error {
	t.c.add("rollback", "")
	return t.Tx.Rollback()
}

type mwCountStmt struct {
	driver.Stmt
	c *mwRoundTrips
	q string
}

func (s *mwCountStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.c.add("exec", s.q)
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *mwCountStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.c.add("query", s.q)
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func TestMiddlewareSQLiteRoundTrips(t *testing.T) {
	counts := &mwRoundTrips{}
	db := sql.OpenDB(&mwCountConnector{drv: mwSQLiteDriver(t), dsn: filepath.Join(t.TempDir(), "count.db"), c: counts})
	t.Cleanup(func() { _ = db.Close() })
	store := sqltest.NewStoreOn(t, db, sqlstore.SQLite)
	m, err := sa.NewManager(store)
	require.NoError(t, err)
	_, err = m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Scopes: []sa.Scope{sa.ScopeWrite}})
	require.NoError(t, err)

	sessions := &mwSessions{}
	sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1"})
	h := m.Middleware(sessions.resolve)(&mwOK{})
	serve := func(method string, token string) []string {
		counts.take()
		rec := mwDo(h, mwReq(method, "/settings", token))
		if token != "" {
			require.Equal(t, http.StatusOK, rec.Code)
		}
		return counts.take()
	}
	// Warm up: statements are prepared once per connection.
	serve(http.MethodGet, "generic")
	serve(http.MethodPost, "generic")

	require.Empty(t, serve(http.MethodGet, ""), "a request that is not impersonated touches no database")
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		trips := serve(method, "generic")
		t.Logf("%s, impersonated: %d round trips:\n  %s", method, len(trips), strings.Join(trips, "\n  "))
		require.True(t, strings.HasPrefix(trips[0], "query SELECT"), "first the check: %q", trips[0])
		require.Equal(t, "begin", trips[1], "then the audit: one transaction")
		require.Equal(t, "commit", trips[len(trips)-1])
		for _, tr := range trips[2 : len(trips)-1] {
			require.NotEqual(t, "begin", tr, "a single audit transaction")
			require.NotContains(t, tr, "grants", "the audit transaction only appends the event")
		}
	}
}
