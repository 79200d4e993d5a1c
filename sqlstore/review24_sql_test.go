package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Tests of the twenty-fourth review round (sqlstore) — prefix
// TestReview24SQL.

// TestReview24SQLMySQLIsolationCheckedOnceNotPerConnection: 10f6121's
// checkIsolation asks one connection of the pool, once per Store, and then
// trusts every connection for the Store's lifetime (isolationOK), on the
// premise that "the pool's connections share the DSN's settings". They do
// not have to: the isolation level is session state. A host that shares
// its *sql.DB with the store and runs a reporting query the usual MySQL
// way (SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED, "NOLOCK")
// leaves that pooled connection at READ-UNCOMMITTED; so does a DBA's SET
// GLOBAL for every connection the pool opens later. Check's autocommit
// SELECT on such a connection is a dirty read: here it finds, and allows
// write access on, a grant a CreateGrant has inserted but never commits
// (its audit event cannot be written) — the review23 scenario, after the
// store's one check passed. (One connection in the replica's pool makes
// the reuse deterministic.)
func TestReview24SQLMySQLIsolationCheckedOnceNotPerConnection(t *testing.T) {
	db := sqltest.Open(t, sqlstore.MySQL)
	s := sqltest.NewStoreOn(t, db, sqlstore.MySQL)

	shared, err := sql.Open(sqltest.DriverName(sqlstore.MySQL), sqltest.DSN(sqlstore.MySQL))
	require.NoError(t, err)
	t.Cleanup(func() { _ = shared.Close() })
	shared.SetMaxOpenConns(1)
	replica, err := sqlstore.New(shared, sqlstore.MySQL, sqlstore.WithTablePrefix(s.TablePrefix()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = replica.Close() })

	ctx := context.Background()
	now := fixtureNow
	ev := func() sa.Event {
		return sa.Event{ID: uuid.New(), Time: now, Type: sa.EventGrantCreated, TenantID: "acme", Actor: storetest.Customer}
	}
	require.NoError(t, s.Record(ctx, ev())) // the tenant's head row exists

	// The replica's first call: its session is at the server's default,
	// and the check passes (and is not made again).
	_, err = replica.FindActiveGrant(ctx, "acme", "anyone@v.example", sa.ScopeWrite, now)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)

	// The host's reporting query on the shared pool.
	_, err = shared.ExecContext(ctx, `SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED`)
	require.NoError(t, err)

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

	// Wait until CreateGrant has inserted the grant (a dirty read on the
	// shared connection, outside the store); it then waits for the head.
	for {
		var n int
		require.NoError(t, shared.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+s.TablePrefix()+`grants WHERE id = ?`, g.ID.String()).Scan(&n))
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

	require.Error(t, checkErr,
		"Check allowed write access on grant %s, which was never committed: a dirty read on a pooled connection at READ-UNCOMMITTED after the store's one isolation check passed", found.ID)
	require.Zero(t, found.ID)
	require.ErrorIs(t, checkErr, errors.ErrUnsupported, "Check reads the level of its own connection and says why it fails")
}
