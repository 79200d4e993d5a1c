package sqlstore_test

import (
	"context"
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

// Regression tests from the second review of the grant_due claim
// (eee6c40); each failed before the fix.

// R4-A: due rows of grants revoked by a writer that does not keep
// grant_due (the host's own SQL, or an older replica) are dropped by the
// claim, which returns no grant for them. A batch of only such rows must
// not end the Sweep ("an empty batch: nothing left") before the live
// grant behind them: PostgreSQL's claim now reports the revoked grants
// whose rows it dropped, and claimDue goes on, as SQLite's does.
func TestReview4DroppedDueRowsEndSweep(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		// The host revokes a tenant's grants with its own SQL.
		sweepsPastHostChange(t, d, "UPDATE {p}grants SET revoked_at = ?, revoked_by_kind = 'customer' WHERE tenant_id = ?",
			storetest.Epoch.UTC().Truncate(time.Microsecond).Add(time.Second))
	})
}

// R4-B: migration 5 may be applied again after a host tool stopped
// half-way, also when version 5 replicas have claimed transitions in
// between: its copy must not bring those back. (It selected grants by the
// old claim flags, which version 5 never set; the copy now sets them on
// what it copies, and version 5 writes new grants with both set.)
func TestReview4Migration5ReApplyResurrectsClaimed(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.SQLite} {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			db := sqltest.Open(t, d)
			s := atVersion4(t, db, d)
			t0 := storetest.Epoch.UTC().Truncate(time.Second)
			g := sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: "acme", GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
				CreatedAt: t0, StartsAt: t0, ExpiresAt: t0.Add(time.Hour)}
			require.NoError(t, s.InsertV4GrantsForTest(ctx, []sa.Grant{g}, nil))

			// The tool applies 0005 up to, not including, the version row.
			applySome(t, db, s, "0005_grant_due.sql", func(_ int, q string) bool { return !strings.Contains(q, "schema_version") })
			// The store now refuses a schema without version 5's row
			// (ErrSchemaTooOld, see TestUseRefusesAnOlderSchema); the
			// migration file's own promise is pinned past that check.
			s.AssumeSchemaForTest()

			m, err := sa.NewManager(s, sa.WithNow(func() time.Time { return t0.Add(2 * time.Hour) }))
			require.NoError(t, err)
			n, err := m.Sweep(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, n, "the expiry, recorded")

			applyFile(t, db, s, "0005_grant_due.sql") // the tool's retry, as the file's comment allows

			_, err = m.Sweep(ctx)
			require.NoError(t, err)
			evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme", GrantID: g.ID})
			require.NoError(t, err)
			count := map[sa.EventType]int{}
			for _, e := range evs {
				count[e.Type]++
			}
			require.Equal(t, 1, count[sa.EventGrantStarted], "grant.started recorded exactly once")
			require.Equal(t, 1, count[sa.EventGrantExpired], "grant.expired recorded exactly once")
		})
	}
}
