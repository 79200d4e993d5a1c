package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestAuditPagesUseIndexRanges asks each database for the plans of the
// Events queries that page the audit trail (a cursor in f.After), on 8 000
// events over 40 tenants with fresh statistics: each must start at the
// cursor in an index, so that a page costs the same on page 1 and page
// 10 000 (VerifyAudit and ExportAudit read whole chains this way). Nothing
// is forced.
func TestAuditPagesUseIndexRanges(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		s := sqltest.NewStoreOn(t, db, d)
		ctx := context.Background()
		now := storetest.Epoch.Truncate(time.Microsecond)
		const tenants, perTenant = 40, 200
		for ti := 0; ti < tenants; ti++ {
			var evs []sa.Event
			var prev []byte
			for i := 1; i <= perTenant; i++ {
				e := auditBenchEvent(fmt.Sprintf("tenant-%02d", ti), now.Add(time.Duration(i*tenants+ti)*time.Millisecond))
				e.Actor.ID = fmt.Sprintf("engineer-%02d@vendor.example", (i+ti)%20) // one actor's events in every tenant
				e.Seq, e.Hash = int64(i), e.ChainHash(prev)
				prev = e.Hash
				evs = append(evs, e)
			}
			require.NoError(t, sqlstore.SeedChain(ctx, s, evs))
		}
		table := s.TablePrefix() + "audit_events"
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
		at := &sa.AuditCursor{Time: now.Add(100 * tenants * time.Millisecond), TenantID: "tenant-07", Seq: 100}
		cases := []struct {
			name string
			f    sa.AuditFilter
			want map[sqlstore.Dialect][]string
		}{
			{"chain_one_tenant", sa.AuditFilter{TenantID: "tenant-07", Order: sa.AuditByChain, After: at, Limit: 100}, map[sqlstore.Dialect][]string{
				sqlstore.Postgres: {"Index Cond: ((tenant_id = ", "AND (seq > "},
				sqlstore.SQLite:   {"(tenant_id=? AND seq>?)"},
			}},
			{"chain_all_tenants", sa.AuditFilter{Order: sa.AuditByChain, After: at, Limit: 100}, map[sqlstore.Dialect][]string{
				sqlstore.Postgres: {"Index Cond: (ROW(tenant_id, seq) > ROW("},
				sqlstore.SQLite:   {"(tenant_id,seq)>(?,?)"},
			}},
			{"time_one_tenant", sa.AuditFilter{TenantID: "tenant-07", After: at, Limit: 100}, map[sqlstore.Dialect][]string{
				sqlstore.Postgres: {"audit_events_tenant_time", "ROW(occurred_at, seq) > ROW("},
				sqlstore.SQLite:   {"audit_events_tenant_time", "(tenant_id=? AND (occurred_at,seq)>(?,?))"},
			}},
			{"actor_all_tenants", sa.AuditFilter{ActorID: "engineer-03@vendor.example", After: at, Limit: 100}, map[sqlstore.Dialect][]string{
				sqlstore.Postgres: {"audit_events_actor", "actor_id = ", "ROW(occurred_at, tenant_id, seq) > ROW("},
				sqlstore.SQLite:   {"audit_events_actor", "(actor_id=? AND (occurred_at,tenant_id,seq)>(?,?,?))"},
				sqlstore.MySQL:    {"audit_events_actor"},
			}},
			{"time_all_tenants", sa.AuditFilter{After: at, Limit: 100}, map[sqlstore.Dialect][]string{
				sqlstore.Postgres: {"audit_events_time", "Index Cond: (ROW(occurred_at, tenant_id, seq) > ROW("},
				sqlstore.SQLite:   {"audit_events_time", "(occurred_at,tenant_id,seq)>(?,?,?)"},
			}},
		}
		for _, c := range cases {
			q, args := s.EventsQueryForTest(c.f)
			plan := queryText(t, db, explain+q, args...)
			t.Logf("%s on %v:\n%s", c.name, d, plan)
			for _, w := range c.want[d] {
				require.Contains(t, plan, w, c.name)
			}
			switch d {
			case sqlstore.Postgres:
				require.NotContains(t, plan, "Seq Scan", c.name)
				require.NotContains(t, plan, "Sort", c.name)
			case sqlstore.SQLite:
				require.NotContains(t, plan, "TEMP B-TREE", c.name)
				require.Contains(t, plan, "SEARCH", c.name)
			case sqlstore.MySQL:
				require.Contains(t, plan, "| range |", c.name)
				require.NotContains(t, plan, "filesort", c.name)
			}
			// And the query returns the page the cursor asks for.
			evs, err := s.Events(ctx, c.f)
			require.NoError(t, err)
			require.Len(t, evs, 100, c.name)
			require.Positive(t, c.f.Compare(&evs[0], &sa.Event{Time: at.Time, TenantID: at.TenantID, Seq: at.Seq}), c.name)
		}
	})
}
