package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestReview52GrantIDSpellingHidesEventFromGrantFilter: eventSelectCols
// (sqlstore/audit.go) promises that every column an AuditFilter condition
// compares is read back into the event, "so that a row changed behind the
// store's back breaks the event's hash … instead of only changing what the
// filters find". grant_id is read back through uuid.UUID.Scan, which
// parses any spelling uuid.Parse accepts (upper case; on SQLite also
// braces, "urn:uuid:" or no dashes), while the filter compares the text:
// `grant_id = ?` with the canonical lower-case argument. On SQLite (TEXT)
// and MySQL/MariaDB (CHAR(36) … COLLATE ascii_bin) an UPDATE that only
// respells grant_id therefore leaves the event's hash intact — VerifyAudit
// reports the chain intact — while the event vanishes from
// AuditFilter{GrantID: g} ("what did support do under this grant"), and
// the SQL store answers that filter differently from memstore and from
// AuditFilter.Match. (PostgreSQL's UUID column has one spelling.)
// Expected: as for the other filter columns (TestAuditTamperedFilterColumns,
// TestAuditBlobFilterColumnsSQLite), a grant_id that is not exactly the
// spelling the store writes fails the row with a ChainBreak at the event
// (VerifyAudit reports ErrTampered at seq 2), or the filter still finds it.
func TestReview52GrantIDSpellingHidesEventFromGrantFilter(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		sets := []string{`grant_id = UPPER(grant_id)`}
		if d == sqlstore.Postgres {
			// A uuid column keeps one spelling: respelled text is read back
			// as the same ID, and the filter still finds the event.
			sets = []string{`grant_id = UPPER(grant_id::text)::uuid`}
		}
		if d == sqlstore.SQLite {
			sets = append(sets, `grant_id = '{' || grant_id || '}'`, `grant_id = 'urn:uuid:' || grant_id`, `grant_id = REPLACE(grant_id, '-', '')`)
		}
		ctx := context.Background()
		s := sqltest.NewStore(t, d)
		m, err := sa.NewManager(s)
		require.NoError(t, err)
		for i, set := range sets {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				tenant := fmt.Sprintf("respelled-%d", i)
				grant := uuid.New()
				var changed sa.Event
				for n := 1; n <= 3; n++ {
					e := sa.Event{ID: uuid.New(), Time: storetest.Epoch.Add(time.Duration(n) * time.Second), Type: sa.EventSupportChange,
						TenantID: tenant, GrantID: grant, Actor: storetest.Support, Reason: fmt.Sprint("change ", n)}
					require.NoError(t, s.Record(ctx, e))
					if n == 2 {
						changed = e
					}
				}
				byGrant := sa.AuditFilter{TenantID: tenant, GrantID: grant, Order: sa.AuditByChain}
				evs, err := m.Events(ctx, byGrant)
				require.NoError(t, err)
				require.Len(t, evs, 3)

				require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET `+set+` WHERE id = ?`, changed.ID))

				_, verr := m.VerifyAudit(ctx, tenant)
				evs, err = m.Events(ctx, byGrant)
				if err == nil && len(evs) == 3 {
					return // the filter still finds it: nothing hidden
				}
				require.ErrorIs(t, verr, sa.ErrTampered,
					"%s hid event 2 from AuditFilter{GrantID} (%d of 3 events returned, err %v) while VerifyAudit reports the chain intact",
					set, len(evs), err)
				var brk *sa.ChainBreak
				require.ErrorAs(t, verr, &brk)
				require.EqualValues(t, 2, brk.Seq)
				require.Equal(t, changed.ID, brk.EventID)
			})
		}
	})
}
