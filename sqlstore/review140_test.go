package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 140: do the docs tell the truth? Claims of sqlstore/doc.go,
// SECURITY.md and sqlstore's exported doc comments, on every dialect.

// TestReview140SQLIDsCompareByteForByte pins SECURITY.md ("Tenant and
// principal IDs compare byte for byte; there is no pattern matching") on
// each database, whose default collations compare case- and
// accent-insensitively (MySQL/MariaDB's utf8mb4 collations; "ß" = "ss"
// under the unicode ones) and whose LIKE treats "%" and "_" as patterns.
func TestReview140SQLIDsCompareByteForByte(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			store := sqltest.NewStore(t, d)
			clock := storetest.NewClock(storetest.Epoch)
			m, err := sa.NewManager(store, sa.WithNow(clock.Now))
			require.NoError(t, err)
			ctx := context.Background()
			for _, in := range []sa.GrantInput{
				{TenantID: "straße", Grantees: []string{"eve@vendor.example"}},
				{TenantID: "acme_%"},
				{TenantID: "Café", Grantees: []string{"José@vendor.example"}},
			} {
				in.By = storetest.Customer
				_, err := m.Grant(ctx, in)
				require.NoError(t, err)
			}
			for _, c := range []struct{ tenant, principal string }{
				{"STRASSE", "eve@vendor.example"},
				{"strasse", "eve@vendor.example"},
				{"Straße", "eve@vendor.example"},
				{"STRAẞE", "eve@vendor.example"},
				{"straße", "EVE@vendor.example"},
				{"straße", "eve@vendor.example."},
				{"straße", "%"},
				{"acme_x", "support@vendor.example"},
				{"acme_%x", "support@vendor.example"},
				{"acme__", "support@vendor.example"},
				{"ACME_%", "support@vendor.example"},
				{"cafe", "José@vendor.example"},
				{"Cafe", "José@vendor.example"},
				{"CAFÉ", "José@vendor.example"},
				{"Café", "jose@vendor.example"},
				{"Café", "Jose@vendor.example"},
				{"Café", "JOSÉ@vendor.example"},
			} {
				_, err := m.Check(ctx, c.tenant, c.principal, sa.ScopeRead)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant, "%q %q", c.tenant, c.principal)
			}
			for _, c := range []struct{ tenant, principal string }{
				{"straße", "eve@vendor.example"},
				{"acme_%", "support@vendor.example"},
				{"Café", "José@vendor.example"},
			} {
				_, err := m.Check(ctx, c.tenant, c.principal, sa.ScopeRead)
				require.NoError(t, err, "%q %q", c.tenant, c.principal)
			}
			// Lists and filters are exact too.
			gs, err := m.List(ctx, sa.ListFilter{TenantID: "STRASSE"})
			require.NoError(t, err)
			require.Empty(t, gs)
			evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "cafe"})
			require.NoError(t, err)
			require.Empty(t, evs)
			evs, err = m.Events(ctx, sa.AuditFilter{TenantID: "acme__"})
			require.NoError(t, err)
			require.Empty(t, evs)
		})
	}
}

// TestReview140SQLNewTouchesNothingAndPrefixRules pins New's doc ("It
// does not touch the database") and WithTablePrefix's: 1–32 ASCII
// letters, digits and underscores starting with a letter or underscore,
// lower case on MySQL (sqlstore/doc.go: "New refuses another"), errors
// wrapping ErrInvalidInput. The databases here are unreachable: New must
// not need them.
func TestReview140SQLNewTouchesNothingAndPrefixRules(t *testing.T) {
	unreachable := map[sqlstore.Dialect]*sql.DB{}
	for d, dsn := range map[sqlstore.Dialect]string{
		sqlstore.Postgres: "postgres://nobody@127.0.0.1:1/none?connect_timeout=1",
		sqlstore.MySQL:    "nobody@tcp(127.0.0.1:1)/none?timeout=1s",
		sqlstore.SQLite:   filepath.Join(t.TempDir(), "missing-dir", "x.db"),
	} {
		db, err := sql.Open(sqltest.DriverName(d), dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		unreachable[d] = db
	}
	for d, db := range unreachable {
		for _, ok := range []string{"a", "_", "x_1", strings.Repeat("p", 32), "supportaccess_"} {
			s, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(ok))
			require.NoError(t, err, "%v %q", d, ok)
			require.Equal(t, ok, s.TablePrefix())
			require.NoError(t, s.Close())
		}
		for _, bad := range []string{"", "1a", "a-b", "a b", "a;DROP", strings.Repeat("p", 33), "é", "a.b", "a`b", "a\"b"} {
			_, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(bad))
			require.ErrorIs(t, err, sa.ErrInvalidInput, "%v %q", d, bad)
		}
		upper, err := sqlstore.New(db, d, sqlstore.WithTablePrefix("App_"))
		if d == sqlstore.MySQL {
			require.ErrorIs(t, err, sa.ErrInvalidInput, "on MySQL the prefix must be lower case")
		} else {
			require.NoError(t, err, "%v accepts an upper-case prefix", d)
			require.NoError(t, upper.Close())
		}
		s, err := sqlstore.New(db, d)
		require.NoError(t, err)
		require.Equal(t, sqlstore.DefaultTablePrefix, s.TablePrefix())
		require.Equal(t, "supportaccess_", sqlstore.DefaultTablePrefix)
		require.NoError(t, s.Close())
	}
	_, err := sqlstore.New(nil, sqlstore.SQLite)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "db is nil")
	_, err = sqlstore.New(unreachable[sqlstore.SQLite], sqlstore.Dialect(99))
	require.ErrorIs(t, err, sa.ErrInvalidInput, "unknown dialect")
}

// TestReview140SQLSchemaTooOldFailsClosed pins sqlstore/doc.go ("Until
// schema_version records SchemaVersion ... every method but Migrate
// refuses to work with ErrSchemaTooOld — Check fails closed, nothing is
// written") and ErrSchemaTooOld's doc, on SQLite: a store whose tables
// record an older version (Migrate failed part of the way) refuses Check,
// Grant and Events; Migrate brings it back. Before any Migrate (no tables)
// Check fails closed too.
func TestReview140SQLSchemaTooOldFailsClosed(t *testing.T) {
	ctx := context.Background()
	db := sqltest.OpenSQLite(t, filepath.Join(t.TempDir(), "app.db"))
	prefix := sqltest.NewPrefix()
	fresh, err := sqlstore.New(db, sqlstore.SQLite, sqlstore.WithTablePrefix(prefix))
	require.NoError(t, err)
	t.Cleanup(func() { _ = fresh.Close() })
	m, err := sa.NewManager(fresh)
	require.NoError(t, err)
	_, err = m.Check(ctx, "acme", "support@vendor.example", sa.ScopeRead)
	require.Error(t, err, "no tables: Check fails closed")
	require.NotErrorIs(t, err, sa.ErrNoActiveGrant)

	require.NoError(t, fresh.Migrate(ctx))
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, fmt.Sprintf("DELETE FROM %sschema_version WHERE version = ?", prefix), sqlstore.SchemaVersion)
	require.NoError(t, err)

	old, err := sqlstore.New(db, sqlstore.SQLite, sqlstore.WithTablePrefix(prefix))
	require.NoError(t, err)
	t.Cleanup(func() { _ = old.Close() })
	mo, err := sa.NewManager(old)
	require.NoError(t, err)
	_, err = mo.Check(ctx, "acme", "support@vendor.example", sa.ScopeRead)
	require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld, "Check fails closed")
	// A fault, not malformed input (review 161: it wrapped ErrInvalidInput,
	// which counted an outage as "invalid" and answered 403).
	require.NotErrorIs(t, err, sa.ErrInvalidInput)
	_, err = mo.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
	require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
	_, err = mo.Events(ctx, sa.AuditFilter{})
	require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
	var grants int
	require.NoError(t, db.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %sgrants", prefix)).Scan(&grants))
	require.Equal(t, 1, grants, "nothing written")

	require.NoError(t, old.Migrate(ctx))
	_, err = mo.Check(ctx, "acme", "support@vendor.example", sa.ScopeRead)
	require.NoError(t, err)
}

// TestReview140SQLiteWALAndMicroseconds pins sqlstore/doc.go for SQLite: a
// database opened by a plain path is switched to WAL mode before the
// store's first write, and times keep microsecond precision in UTC (as
// Unix microseconds).
func TestReview140SQLiteWALAndMicroseconds(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plain.db")
	db := sqltest.OpenSQLite(t, path)
	store := sqltest.NewStoreOn(t, db, sqlstore.SQLite)
	at := time.Date(2026, 11, 28, 9, 0, 0, 123_456_789, time.FixedZone("X", -7*3600))
	m, err := sa.NewManager(store, sa.WithNow(func() time.Time { return at }))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour + time.Nanosecond*1500})
	require.NoError(t, err)
	var mode string
	require.NoError(t, sqltest.OpenSQLite(t, path).QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
	require.Equal(t, "wal", strings.ToLower(mode))

	got, err := store.GetGrant(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 28, 16, 0, 0, 123_456_000, time.UTC), got.StartsAt)
	require.Equal(t, time.UTC, got.StartsAt.Location())
	require.Equal(t, g.ExpiresAt, got.ExpiresAt)
	require.Zero(t, got.ExpiresAt.Nanosecond()%1000)
	var raw int64
	require.NoError(t, db.QueryRowContext(ctx, fmt.Sprintf("SELECT starts_at FROM %sgrants", store.TablePrefix())).Scan(&raw))
	require.Equal(t, got.StartsAt.UnixMicro(), raw, "Unix microseconds in an INTEGER")
}
