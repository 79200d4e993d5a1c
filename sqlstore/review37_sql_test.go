package sqlstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Tests of the thirty-seventh review round (sqlstore, host database/sql
// configurations on MySQL/MariaDB) — prefix TestReview37.

// rw37Refused requires a store on a MySQL DSN with params to refuse every
// operation, Migrate and Check first, with errors.ErrUnsupported naming
// the setting, and to have created nothing.
func rw37Refused(t *testing.T, params, setting string) {
	t.Helper()
	db := mysqlWithParams(t, params)
	prefix := sqltest.NewPrefix()
	s, err := sqlstore.New(db, sqlstore.MySQL, sqlstore.WithTablePrefix(prefix))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	err = s.Migrate(ctx)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.ErrorContains(t, err, setting)
	_, err = s.FindActiveGrant(ctx, "acme", storetest.Support.ID, sa.ScopeRead, storetest.Epoch)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	tables, err := sqltest.Tables(ctx, sqltest.Open(t, sqlstore.MySQL), sqlstore.MySQL, prefix)
	require.NoError(t, err)
	require.Empty(t, tables, "a refused store creates no table")
}

// TestReview37MySQLSessionSettingsRefused: a DSN with autocommit=0 (every
// Check would run in an implicit transaction nothing commits and keep its
// first snapshot: a revocation on another replica would never be seen, and
// Migrate's last schema versions would stay uncommitted), a utf8mb3
// character set (charset=utf8: a principal or a reason with a character
// outside the BMP cannot be stored as given — in a lenient sql_mode it
// becomes "?", another principal) or an sql_mode that is not strict (the
// server stores what it cannot hold changed, with a warning only) is
// refused: the store fails closed, with an error naming the setting.
func TestReview37MySQLSessionSettingsRefused(t *testing.T) {
	for _, c := range []struct{ params, setting string }{
		{"autocommit=0", "autocommit"},
		{"charset=utf8", "character_set_client"},
		{"charset=utf8&sql_mode=%27%27", "character_set_client"},
		{"sql_mode=%27NO_ENGINE_SUBSTITUTION%27", "sql_mode"},
		{"sql_mode=%27%27", "sql_mode"},
		{"character_set_results=utf8mb3", "character_set_results"},
	} {
		t.Run(c.params, func(t *testing.T) { rw37Refused(t, c.params, c.setting) })
	}
	// Settings that are sound pass: the usual ones, and strict variants.
	for _, params := range []string{"charset=utf8mb4", "sql_mode=%27STRICT_ALL_TABLES%27", "autocommit=1&sql_mode=%27ANSI,STRICT_TRANS_TABLES%27"} {
		t.Run(params, func(t *testing.T) {
			s := sqltest.NewStoreOn(t, mysqlWithParams(t, params), sqlstore.MySQL)
			m, err := sa.NewManager(s, sa.WithNow(storetest.NewClock(storetest.Epoch).Now))
			require.NoError(t, err)
			g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour,
				Grantees: []string{"ops😀@vendor.example"}, Reason: "Fix 🔥 incident"})
			require.NoError(t, err)
			got, err := m.Check(context.Background(), "acme", "ops😀@vendor.example", sa.ScopeRead)
			require.NoError(t, err)
			require.Equal(t, g.Reason, got.Reason)
			_, err = m.Check(context.Background(), "acme", "ops????@vendor.example", sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)
			rep, err := m.VerifyAudit(context.Background(), "acme")
			require.NoError(t, err)
			require.Nil(t, rep.Break)
		})
	}
}

// TestReview37MySQLAutocommitOffOnSharedConnection: a host that turns
// autocommit off on a connection it shares with the store (SET autocommit
// = 0 after the store checked the pool) gets Check refused on that
// connection — it would read a snapshot that never sees the revocation
// made meanwhile on another replica — and Migrate refused there too.
func TestReview37MySQLAutocommitOffOnSharedConnection(t *testing.T) {
	db, a := mysqlSharedConn(t) // the host's SET is the store's
	ma, mb := mysqlReplicas(t, a)
	ctx := context.Background()

	g, err := mb.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
	require.NoError(t, err)
	got, err := ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.NoError(t, err)
	require.Equal(t, g.ID, got.ID)

	_, err = db.ExecContext(ctx, "SET autocommit=0")
	require.NoError(t, err)
	_, err = ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead) // opens the snapshot
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = mb.Revoke(ctx, g.ID, storetest.Customer, "done")
	require.NoError(t, err)
	_, err = ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.Error(t, err, "a Check on the autocommit-off connection allows the revoked grant")
	require.ErrorIs(t, a.Migrate(ctx), errors.ErrUnsupported)
}

// TestReview37UnknownDSNVariableSaidOnce: a DSN that sets a variable the
// server does not know (transaction_isolation on MariaDB before 11.1, as
// the docs of newer servers say) makes every query fail with error 1193:
// Migrate says so once, and names the other spelling.
func TestReview37UnknownDSNVariableSaidOnce(t *testing.T) {
	var v string
	if err := sqltest.Open(t, sqlstore.MySQL).QueryRowContext(context.Background(), "SELECT @@transaction_isolation").Scan(&v); err == nil {
		t.Skip("this server knows transaction_isolation")
	}
	s, err := sqlstore.New(mysqlWithParams(t, "transaction_isolation=%27READ-COMMITTED%27"), sqlstore.MySQL, sqlstore.WithTablePrefix(sqltest.NewPrefix()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	err = s.Migrate(context.Background())
	require.Error(t, err)
	require.ErrorContains(t, err, "tx_isolation")
	require.Equal(t, 1, strings.Count(err.Error(), "1193"), "said once: %v", err)
}
