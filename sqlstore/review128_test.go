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

// TestReview128UpperCaseFOnlyGrantIDIsTampering pins that a grant_id
// respelled in upper case is reported as tampering even when its only hex
// letters are f (canonicalUUID must treat 'F' as upper case, not only
// 'A' to 'E'). SQLite and MySQL/MariaDB only: they keep grant_id as text,
// PostgreSQL as a uuid with one spelling.
func TestReview128UpperCaseFOnlyGrantIDIsTampering(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			s := sqltest.NewStore(t, d)
			m, err := sa.NewManager(s)
			require.NoError(t, err)
			grant := uuid.MustParse("ffffffff-ffff-4fff-8fff-ffffffffffff") // digits and f only
			var changed sa.Event
			for n := 1; n <= 3; n++ {
				e := sa.Event{ID: uuid.New(), Time: storetest.Epoch.Add(time.Duration(n) * time.Second), Type: sa.EventSupportChange,
					TenantID: "acme", GrantID: grant, Actor: storetest.Support, Reason: fmt.Sprint("change ", n)}
				require.NoError(t, s.Record(ctx, e))
				if n == 2 {
					changed = e
				}
			}
			require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET grant_id = UPPER(grant_id) WHERE id = ?`, changed.ID))

			_, err = m.VerifyAudit(ctx, "acme")
			require.ErrorIs(t, err, sa.ErrTampered, "the respelled grant_id hides event 2 from AuditFilter{GrantID}")
			var brk *sa.ChainBreak
			require.ErrorAs(t, err, &brk)
			require.EqualValues(t, 2, brk.Seq)
			require.Equal(t, changed.ID, brk.EventID)
		})
	}
}

// TestReview128MalformedAttrsFailEvents pins that Events itself (not only
// VerifyAudit) fails with a *ChainBreak at the event whose attrs column
// cannot be decoded, instead of returning the event with its Attrs
// silently dropped.
func TestReview128MalformedAttrsFailEvents(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		s, _, evs := review22Chain(t, d, "acme", 4)
		require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET attrs = ? WHERE tenant_id = ? AND seq = 3`, `\`, "acme"))

		got, err := s.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventSupportRequest}})
		require.ErrorIs(t, err, sa.ErrTampered, "returned %d events", len(got))
		var brk *sa.ChainBreak
		require.ErrorAs(t, err, &brk)
		require.EqualValues(t, 3, brk.Seq)
		require.Equal(t, evs[2].ID, brk.EventID)
	})
}
