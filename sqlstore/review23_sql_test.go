package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Tests of the twenty-third review round (sqlstore).

// TestReview23SQLMySQLCheckSeesUncommittedGrant: FindActiveGrant (grants.go)
// runs its SELECT as an autocommit statement at whatever isolation level the
// connection's session has. PostgreSQL has no dirty reads and the store
// forces READ COMMITTED for its own write transactions (dialect.txDefault,
// "whatever the server's default"), but on MySQL/MariaDB txDefault is nil
// and reads are never wrapped: a server or DSN whose isolation level is
// READ-UNCOMMITTED (tx_isolation / transaction_isolation) makes Check read
// grant rows that a CreateGrant has inserted but not committed.
//
// Here CreateGrant inserts the grant and then waits for the tenant's chain
// head (another transaction holds it); a replica's Check in that window
// finds the grant and allows write access. The CreateGrant then fails
// (its context ends, as it would if its audit event could not be written)
// and the grant never exists — DESIGN: "a grant whose audit event cannot
// be written is not created", "Fail closed". Check must not have granted
// access on it: a store on a READ-UNCOMMITTED session refuses to work
// (errors.ErrUnsupported, checkSession).
func TestReview23SQLMySQLCheckSeesUncommittedGrant(t *testing.T) {
	db := sqltest.Open(t, sqlstore.MySQL)
	s := sqltest.NewStoreOn(t, db, sqlstore.MySQL)

	// A replica whose server (or DSN) defaults to READ-UNCOMMITTED.
	dsn := sqltest.DSN(sqlstore.MySQL)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	ru, err := sql.Open(sqltest.DriverName(sqlstore.MySQL), dsn+sep+"tx_isolation=%27READ-UNCOMMITTED%27")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ru.Close() })
	var iso string
	require.NoError(t, ru.QueryRow(`SELECT @@tx_isolation`).Scan(&iso))
	require.Equal(t, "READ-UNCOMMITTED", iso)
	replica, err := sqlstore.New(ru, sqlstore.MySQL, sqlstore.WithTablePrefix(s.TablePrefix()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = replica.Close() })

	found, checkErr := rw23CheckDuringUncommittedGrant(t, db, s, ru, replica)
	require.Error(t, checkErr, "Check allowed write access on grant %s, which was never committed (dirty read at READ-UNCOMMITTED)", found.ID)
	require.Zero(t, found.ID)
	require.ErrorIs(t, checkErr, errors.ErrUnsupported, "a store on a READ-UNCOMMITTED session refuses to work")

	// So does every other call, Migrate included; the other store, at the
	// server's default level, works.
	ctx := context.Background()
	require.ErrorIs(t, replica.Migrate(ctx), errors.ErrUnsupported)
	_, err = replica.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = s.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
}

// rw23CheckDuringUncommittedGrant runs replica's Check of write in acme
// while s's CreateGrant of a read+write grant has inserted it but not
// committed (another transaction of db holds the tenant's chain head, so
// the creation waits there; dirty, a pool at READ-UNCOMMITTED, sees the
// row), then fails that creation (as when its audit event cannot be
// written) and makes sure the grant never existed. It returns the Check's
// answer.
func rw23CheckDuringUncommittedGrant(t *testing.T, db *sql.DB, s *sqlstore.Store, dirty *sql.DB, replica *sqlstore.Store) (sa.Grant, error) {
	t.Helper()
	ctx := context.Background()
	now := fixtureNow
	ev := func() sa.Event {
		return sa.Event{ID: uuid.New(), Time: now, Type: sa.EventGrantCreated, TenantID: "acme", Actor: storetest.Customer}
	}
	require.NoError(t, s.Record(ctx, ev())) // the tenant's head row exists

	// Another writer of the tenant's trail holds its chain head.
	hold, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = hold.Rollback() }()
	var seq int64
	require.NoError(t, hold.QueryRowContext(ctx, `SELECT seq FROM `+s.TablePrefix()+`audit_heads WHERE tenant_id = 'acme' FOR UPDATE`).Scan(&seq))

	g := sa.Grant{ID: uuid.New(), TenantID: "acme", Scopes: []sa.Scope{sa.ScopeRead, sa.ScopeWrite}, GrantedBy: storetest.Customer,
		CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour)}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.CreateGrant(cctx, g, []sa.Event{ev()}) }()

	// Wait until CreateGrant has inserted the grant (a dirty read, outside
	// the store); it then waits for the chain head.
	for {
		var n int
		require.NoError(t, dirty.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+s.TablePrefix()+`grants WHERE id = ?`, g.ID.String()).Scan(&n))
		if n > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("CreateGrant returned before waiting for the chain head: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	found, checkErr := replica.FindActiveGrant(ctx, "acme", "anyone@v.example", sa.ScopeWrite, now)

	cancel() // the creation fails: no grant, no event
	require.NoError(t, hold.Rollback())
	require.Error(t, <-done)
	_, err = s.GetGrant(ctx, g.ID)
	require.ErrorIs(t, err, sa.ErrNotFound, "the grant was never created")
	return found, checkErr
}

// TestReview23SQLUnmigratedStoreSaysRunMigrate: a host that forgot Migrate
// (or gave another table prefix) got the driver's bare "no such table"
// from Grant, Check and Record. The error now says what to do, on every
// dialect, and a Check still fails (closed).
func TestReview23SQLUnmigratedStoreSaysRunMigrate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		s, err := sqlstore.New(sqltest.Open(t, d), d, sqlstore.WithTablePrefix(sqltest.NewPrefix()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		ctx := context.Background()
		_, err = s.FindActiveGrant(ctx, "acme", "eve@vendor.example", sa.ScopeRead, fixtureNow)
		require.Error(t, err)
		require.NotErrorIs(t, err, sa.ErrNoActiveGrant)
		require.ErrorContains(t, err, "run Migrate")
		err = s.Record(ctx, sa.Event{ID: uuid.New(), Time: fixtureNow, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support})
		require.ErrorContains(t, err, "run Migrate")
	})
}
