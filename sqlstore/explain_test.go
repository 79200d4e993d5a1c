package sqlstore_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestCheckQueryUsesIndex asks each database for the plan of the Check
// query (FindActiveGrant) on a table of 5 000 grants over 500 tenants, with
// fresh statistics, and requires one range of the grants_tenant_expires
// index that covers both the tenant and the expiry (so expired grants are
// not read). The planners choose it on their own at this size; nothing is
// forced (no enable_seqscan = off, no FORCE INDEX).
func TestCheckQueryUsesIndex(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		s := sqltest.NewStoreOn(t, db, d)
		seed(t, s, 500, 10)
		ctx := context.Background()
		table := s.TablePrefix() + "grants"
		var explain string
		switch d {
		case sqlstore.Postgres:
			_, err := db.ExecContext(ctx, `ANALYZE `+table)
			require.NoError(t, err)
			explain = `EXPLAIN `
		case sqlstore.MySQL:
			_, err := db.ExecContext(ctx, `ANALYZE TABLE `+table)
			require.NoError(t, err)
			explain = `EXPLAIN `
		case sqlstore.SQLite:
			_, err := db.ExecContext(ctx, `ANALYZE`)
			require.NoError(t, err)
			explain = `EXPLAIN QUERY PLAN `
		}
		plan := queryText(t, db, explain+s.CheckQuery(), s.CheckArgs(fixtureTenant(42), storetest.Support.ID, fixtureNow)...)
		t.Logf("plan on %v:\n%s", d, plan)
		require.Contains(t, plan, s.TablePrefix()+"grants_tenant_expires", "Check uses the (tenant_id, expires_at) index")
		switch d {
		case sqlstore.Postgres:
			require.NotContains(t, plan, "Seq Scan")
			require.Contains(t, plan, "Index Cond: ((tenant_id = ", "expiry is part of the index condition")
			require.Contains(t, plan, "AND (COALESCE(expires_at, ")
		case sqlstore.SQLite:
			require.Contains(t, plan, "(tenant_id=? AND <expr>>?)", "expiry is part of the index search")
		case sqlstore.MySQL:
			require.Contains(t, plan, "| range |", "two ranges of the index, not all the tenant's rows")
		}
	})
}

// queryText runs q and returns every row, columns joined by " | ".
func queryText(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query(q, args...)
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var lines []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		var parts []string
		for _, v := range vals {
			parts = append(parts, v.String)
		}
		lines = append(lines, strings.Join(parts, " | "))
	}
	require.NoError(t, rows.Err())
	return strings.Join(lines, "\n")
}
