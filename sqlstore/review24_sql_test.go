package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// Tests of the twenty-fourth review round (sqlstore) — prefix
// TestReview24SQL.

// TestReview24SQLMySQLIsolationCheckedOnceNotPerConnection: 10f6121's
// checkSession asks one connection of the pool, once per Store, and then
// trusts every connection for the Store's lifetime (sessionOK), on the
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
	// The replica's first call: its session is at the server's default,
	// and the check passes (and is not made again).
	_, err = replica.FindActiveGrant(ctx, "acme", "anyone@v.example", sa.ScopeWrite, fixtureNow)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)

	// The host's reporting query on the shared pool.
	_, err = shared.ExecContext(ctx, `SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED`)
	require.NoError(t, err)

	found, checkErr := rw23CheckDuringUncommittedGrant(t, db, s, shared, replica)
	require.Error(t, checkErr,
		"Check allowed write access on grant %s, which was never committed: a dirty read on a pooled connection at READ-UNCOMMITTED after the store's one isolation check passed", found.ID)
	require.Zero(t, found.ID)
	require.ErrorIs(t, checkErr, errors.ErrUnsupported, "Check reads the level of its own connection and says why it fails")
}
