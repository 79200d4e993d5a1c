package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/storetest"
)

// Tests of the thirty-eighth review round (c229dcf: the MySQL/MariaDB
// session checks) — prefix TestReview38.

// TestReview38MySQLOpenTransactionOnSharedConnection: c229dcf refuses
// autocommit=0 because "each Check would run in a transaction nothing
// commits and keep reading its first snapshot (a revocation would not be
// seen)", and Check's query reads @@autocommit on its own connection to
// catch a host's SET autocommit=0 on a connection it shares with the store
// (TestReview37MySQLAutocommitOffOnSharedConnection). A transaction the
// host opened on such a connection with a plain statement (START
// TRANSACTION or BEGIN through db.Exec, or on a *sql.Conn it closed
// without COMMIT — database/sql and go-sql-driver/mysql reset neither)
// has exactly that effect with autocommit still 1: at REPEATABLE-READ
// (the default) every Check on that connection reads the snapshot of its
// first read, checkLevel sees autocommit=1 and passes, and a grant revoked
// on another replica is admitted on it for as long as the connection
// lives. MariaDB says so in @@in_transaction; doc.go lists this case
// neither as detected nor as not detected.
func TestReview38MySQLOpenTransactionOnSharedConnection(t *testing.T) {
	db, a := mysqlSharedConn(t) // the host's transaction is the store's
	ma, mb := mysqlReplicas(t, a)
	ctx := context.Background()

	g, err := mb.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "START TRANSACTION") // host code, left open
	require.NoError(t, err)
	_, err = ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead) // would fix the snapshot
	require.ErrorIs(t, err, errors.ErrUnsupported, "refused on MariaDB (@@in_transaction)")
	_, err = mb.Revoke(ctx, g.ID, storetest.Customer, "done") // another replica
	require.NoError(t, err)
	_, err = ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.Error(t, err, "a Check on the connection with the host's open transaction admits the revoked grant")
	require.ErrorIs(t, a.Migrate(ctx), errors.ErrUnsupported)

	// Once the host ends its transaction the connection serves again, and
	// sees the revocation.
	_, err = db.ExecContext(ctx, "COMMIT")
	require.NoError(t, err)
	_, err = ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
}
