package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestRoundTrips counts the requests the store sends to the server for
// Check, Grant, Revoke and Record once its statements are prepared, and
// holds them to the numbers its doc comments state. A Record (the
// middleware's support.request) is one statement on PostgreSQL and one
// CALL of the audit_append procedure on MySQL once the store knows the
// tenant's chain head, so an impersonated request through the middleware
// costs 2 round trips: the check and the audit. A second store (another
// replica) appending to the same tenant makes the next Record take the
// locking transaction once. On MySQL without the procedure every Record is
// the failed CALL and the locking transaction.
func TestRoundTrips(t *testing.T) {
	want := map[sqlstore.Dialect]struct{ check, grant, revoke, record, fallback int64 }{
		// PostgreSQL's Revoke drops the grant's due rows (one statement);
		// every UpdateGrant reads whether the expiry is recorded (one).
		sqlstore.Postgres: {1, 6, 10, 1, 5}, // fallback: BEGIN, lock head, INSERT, UPDATE, COMMIT
		sqlstore.MySQL:    {1, 7, 10, 1, 6}, // and first INSERT … ON DUPLICATE KEY of the head row
	}
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			sqltest.Open(t, d) // skips (or fails) when the server is not there
			var n atomic.Int64
			var inner driver.Connector
			switch d {
			case sqlstore.Postgres:
				cfg, err := pgx.ParseConfig(sqltest.DSN(d))
				require.NoError(t, err)
				inner = stdlib.GetConnector(*cfg)
			case sqlstore.MySQL:
				cfg, err := mysql.ParseDSN(sqltest.DSN(d))
				require.NoError(t, err)
				inner, err = mysql.NewConnector(cfg)
				require.NoError(t, err)
			}
			db := sql.OpenDB(countingConnector{inner, &n})
			t.Cleanup(func() { _ = db.Close() })
			db.SetMaxOpenConns(1) // one connection: warm-up prepares on it
			s := sqltest.NewStoreOn(t, db, d)
			m, err := sa.NewManager(s)
			require.NoError(t, err)
			ctx := context.Background()
			count := func(f func()) int64 {
				before := n.Load()
				f()
				return n.Load() - before
			}
			ops := func() (check, grant, revoke, record int64) {
				var g sa.Grant
				grant = count(func() {
					g, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
					require.NoError(t, err)
				})
				check = count(func() {
					_, err := m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
					require.NoError(t, err)
				})
				revoke = count(func() {
					_, err := m.Revoke(ctx, g.ID, storetest.Customer, "")
					require.NoError(t, err)
				})
				record = count(func() {
					require.NoError(t, s.Record(ctx, sa.Event{ID: g.ID, Time: fixtureNow, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
				})
				return
			}
			ops() // prepares the statements
			ops()
			check, grant, revoke, record := ops()
			w := want[d]
			require.Equal(t, w.check, check, "Check")
			require.Equal(t, w.grant, grant, "Grant")
			require.Equal(t, w.revoke, revoke, "Revoke (a read, then the transaction)")
			require.Equal(t, w.record, record, "Record")

			// An impersonated request through the middleware: the check,
			// then the audit event.
			_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
			require.NoError(t, err)
			sess := sa.Session{TenantID: "acme", Principal: storetest.Support.ID, SessionID: "s-1"}
			h := m.Middleware(func(*http.Request) (sa.Session, bool) { return sess, true })(
				http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
			request := func() int64 {
				return count(func() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/settings", nil))
					require.Equal(t, http.StatusNoContent, rec.Code)
				})
			}
			request()
			require.EqualValues(t, 2, request(), "impersonated request: check + audit")

			// Another replica appends: the cached head is stale, the
			// compare-and-set changes nothing and the locking path runs.
			other, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(s.TablePrefix()))
			require.NoError(t, err)
			t.Cleanup(func() { _ = other.Close() })
			require.NoError(t, other.Record(ctx, sa.Event{ID: uuid.New(), Time: fixtureNow, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
			stale := count(func() {
				require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: fixtureNow, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
			})
			require.Equal(t, 1+w.fallback, stale, "failed compare-and-set, then the locking transaction")
			again := count(func() {
				require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: fixtureNow, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
			})
			require.EqualValues(t, 1, again)
			rep, err := m.VerifyAudit(ctx, "acme")
			require.NoError(t, err, "the chain holds: %+v", rep)

			if d != sqlstore.MySQL {
				return
			}
			// Without the procedure (a database migrated by a tool that
			// could not create it) Record still records, through the
			// locking transaction after the failed CALL.
			_, err = db.ExecContext(ctx, `DROP PROCEDURE `+s.TablePrefix()+`audit_append`)
			require.NoError(t, err)
			for range 2 {
				missing := count(func() {
					require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: fixtureNow, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
				})
				require.Equal(t, 1+w.fallback, missing, "failed CALL, then the locking transaction")
			}
			rep, err = m.VerifyAudit(ctx, "acme")
			require.NoError(t, err, "the chain holds: %+v", rep)
		})
	}
}

// countingConnector counts the requests that reach the server: prepare,
// execute or query, begin, commit and rollback.
type countingConnector struct {
	driver.Connector
	n *atomic.Int64
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{conn, c.n}, nil
}

type countingConn struct {
	driver.Conn
	n *atomic.Int64
}

func (c *countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	c.n.Add(1)
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	return &countingStmt{st, c.n}, nil
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.n.Add(1)
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return countingTx{tx, c.n}, nil
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	r, err := e.ExecContext(ctx, q, args)
	if !errors.Is(err, driver.ErrSkip) {
		c.n.Add(1)
	}
	return r, err
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	qc, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	r, err := qc.QueryContext(ctx, q, args)
	if !errors.Is(err, driver.ErrSkip) {
		c.n.Add(1)
	}
	return r, err
}

func (c *countingConn) CheckNamedValue(v *driver.NamedValue) error {
	if nc, ok := c.Conn.(driver.NamedValueChecker); ok {
		return nc.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

type countingStmt struct {
	driver.Stmt
	n *atomic.Int64
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.n.Add(1)
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.n.Add(1)
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (s *countingStmt) CheckNamedValue(v *driver.NamedValue) error {
	if nc, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return nc.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

type countingTx struct {
	driver.Tx
	n *atomic.Int64
}

func (t countingTx) Commit() error   { t.n.Add(1); return t.Tx.Commit() }
func (t countingTx) Rollback() error { t.n.Add(1); return t.Tx.Rollback() }
