package sqlstore_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
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
		db, s, explain := seededForExplain(t, d)
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

// TestClaimQueryUsesIndex asks each database for the plan of the expiry
// claim on 5 000 grants, all due, with fresh statistics: it must read the
// due transitions in due order from an index (grant_due's primary key; on
// MySQL the grants' grants_expire_due), and on PostgreSQL find the grants
// by their primary key (also for the test of whether a skipped grant still
// exists) and delete the claimed rows by TID, without a sequential scan.
func TestClaimQueryUsesIndex(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db, s, explain := seededForExplain(t, d)
		q, args := s.ClaimQuery(sa.TransitionExpired, fixtureNow.Add(1000*time.Hour), 2000)
		plan := queryText(t, db, explain+q, args...)
		t.Logf("plan on %v:\n%s", d, plan)
		switch d {
		case sqlstore.Postgres:
			require.NotContains(t, plan, "Seq Scan")
			require.Contains(t, plan, "Index Scan using "+s.TablePrefix()+"grant_due_pkey", "due rows in due order")
			require.Contains(t, plan, "Tid Scan on "+s.TablePrefix()+"grant_due", "claimed rows deleted by TID")
			require.Contains(t, plan, s.TablePrefix()+"grant_due_grant", "the start's row looked up per due row…")
			require.Contains(t, plan, "Index Cond: (grant_id = x.grant_id)", "…by its grant")
			require.NotContains(t, plan, "Anti Join", "not a join over every pending start")
			require.Contains(t, plan, s.TablePrefix()+"grants_pkey", "grants by primary key")
		case sqlstore.SQLite:
			require.Contains(t, plan, "SEARCH x USING COVERING INDEX sqlite_autoindex_"+s.TablePrefix()+"grant_due_1 (transition=? AND due_at<?)", "due rows from an index range")
			require.Contains(t, plan, "SEARCH s USING COVERING INDEX "+s.TablePrefix()+"grant_due_grant (grant_id=?)", "the start's row by the grant index")
			require.NotContains(t, plan, "TEMP B-TREE", "in index order, no sort")
		case sqlstore.MySQL:
			require.Contains(t, plan, "| "+s.TablePrefix()+"grants_expire_due |", "the flag's index, not a scan")
		}
	})
}

// TestMySQLMarkClaimedUsesPrimaryKey: the UPDATE that sets the claim flag
// on MySQL/MariaDB must find its rows by primary-key lookups. For 2 000 of
// 5 000 grants MariaDB chose a scan of the whole primary key, which locks
// (waits for) the rows a concurrent claimer holds: two claimers then
// deadlocked in TestReviewConcurrentSweepsAndAppendsKeepChains.
func TestMySQLMarkClaimedUsesPrimaryKey(t *testing.T) {
	d := sqlstore.MySQL
	db, s, explain := seededForExplain(t, d)
	ids := firstGrantIDs(t, db, s, 2000)
	plan := queryText(t, db, explain+s.MarkClaimedQuery(sa.TransitionExpired, len(ids)), ids...)
	t.Logf("plan:\n%s", plan)
	require.Contains(t, plan, "| range | PRIMARY | PRIMARY |", "primary-key ranges, not a scan")
}

// TestMySQLClaimLocksByPrimaryKeyOnly: the locking step of the MySQL/MariaDB
// claim must reach its candidates through primary-key lookups alone. A
// locking read through the claim-flag index let MariaDB wait, despite SKIP
// LOCKED, for a row whose index entry it had locked while the row's holder
// waited for that entry in its flag UPDATE: concurrent claimers deadlocked
// (TestReviewConcurrentSweepsAndAppendsKeepChains, 4 of 40 runs).
func TestMySQLClaimLocksByPrimaryKeyOnly(t *testing.T) {
	d := sqlstore.MySQL
	db, s, explain := seededForExplain(t, d)
	ids := firstGrantIDs(t, db, s, 2000)
	args := append(ids, s.TimeArg(fixtureNow.Add(1000*time.Hour)))
	plan := queryText(t, db, explain+s.LockClaimQuery(sa.TransitionExpired, len(ids)), args...)
	t.Logf("plan:\n%s", plan)
	require.Contains(t, plan, "| range | PRIMARY | PRIMARY |", "primary-key ranges")
	require.NotContains(t, plan, "expire_due", "not through the claim-flag index")
}

// firstGrantIDs returns the IDs of the first n grants of s in ID order.
func firstGrantIDs(t *testing.T, db *sql.DB, s *sqlstore.Store, n int) []any {
	t.Helper()
	rows, err := db.Query(`SELECT id FROM `+s.TablePrefix()+`grants ORDER BY id LIMIT ?`, n)
	require.NoError(t, err)
	defer rows.Close()
	var ids []any
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, n)
	return ids
}

// seededForExplain returns a store of dialect d holding 5 000 grants over
// 500 tenants with fresh statistics, and the dialect's EXPLAIN prefix.
func seededForExplain(t *testing.T, d sqlstore.Dialect) (*sql.DB, *sqlstore.Store, string) {
	db := sqltest.Open(t, d)
	s := sqltest.NewStoreOn(t, db, d)
	seed(t, s, 500, 10)
	analyze, explain := `ANALYZE `+s.TablePrefix()+`grants`, `EXPLAIN `
	switch d {
	case sqlstore.Postgres:
		analyze += `, ` + s.TablePrefix() + `grant_due`
	case sqlstore.MySQL:
		analyze = `ANALYZE TABLE ` + s.TablePrefix() + `grants`
	case sqlstore.SQLite:
		analyze, explain = `ANALYZE`, `EXPLAIN QUERY PLAN `
	}
	_, err := db.ExecContext(context.Background(), analyze)
	require.NoError(t, err)
	return db, s, explain
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
