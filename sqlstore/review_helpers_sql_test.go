package sqlstore_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Helpers of the MySQL/MariaDB review tests (rounds 37–40).

// mysqlWithParams opens the MySQL/MariaDB test database with extra DSN
// parameters (skipping like sqltest.Open when the server is not there).
func mysqlWithParams(t *testing.T, params string) *sql.DB {
	t.Helper()
	sqltest.Open(t, sqlstore.MySQL) // skips or fails with the how-to message
	base := sqltest.DSN(sqlstore.MySQL)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	db, err := sql.Open("mysql", base+sep+params)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// mysqlSharedConn returns a pool of one connection and a migrated store on
// it: what the host runs on db (SET autocommit=0, START TRANSACTION) is
// done on the store's connection. The host's transaction is committed and
// autocommit turned back on before the store's tables are dropped.
func mysqlSharedConn(t *testing.T) (*sql.DB, *sqlstore.Store) {
	t.Helper()
	db := sqltest.Open(t, sqlstore.MySQL)
	db.SetMaxOpenConns(1)
	a := sqltest.NewStoreOn(t, db, sqlstore.MySQL)
	t.Cleanup(func() {
		_, _ = db.ExecContext(context.Background(), "COMMIT")
		_, _ = db.ExecContext(context.Background(), "SET autocommit=1")
	})
	return db, a
}

// mysqlReplicas returns two Managers on one clock: ma on a, and mb on
// another replica, a store on a pool of its own with a's tables.
func mysqlReplicas(t *testing.T, a *sqlstore.Store) (ma, mb *sa.Manager) {
	t.Helper()
	b, err := sqlstore.New(sqltest.Open(t, sqlstore.MySQL), sqlstore.MySQL, sqlstore.WithTablePrefix(a.TablePrefix()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	clock := storetest.NewClock(storetest.Epoch)
	ma, err = sa.NewManager(a, sa.WithNow(clock.Now))
	require.NoError(t, err)
	mb, err = sa.NewManager(b, sa.WithNow(clock.Now))
	require.NoError(t, err)
	return ma, mb
}
